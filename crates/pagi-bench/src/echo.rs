//! `echo` mode: N connections x D messages in flight, every echo verified.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::args::Args;
use crate::target::{self, Target};
use crate::{percentile, Errors};

/// How long a connection may take to connect + handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After the measured window, in-flight echoes are drained for at most this long.
const DRAIN_GRACE: Duration = Duration::from_secs(3);

struct Cfg {
    target: Target,
    /// With `wss://`: the connector trusting `--ca`.
    tls: Option<tokio_rustls::TlsConnector>,
    /// WebSocket over HTTP/2 (RFC 8441): one h2 connection per WebSocket, opened with an
    /// extended CONNECT (cleartext, prior knowledge).
    h2: bool,
    conns: usize,
    depth: usize,
    secs: f64,
    warmup: f64,
}

/// Deterministic message content: a fixed ASCII filler whose first (up to 16) bytes are
/// replaced by the low hex digits of the per-connection sequence number.
pub(crate) struct Payload {
    base: Vec<u8>,
    text: bool,
}

impl Payload {
    pub(crate) fn new(size: usize, text: bool) -> Self {
        let base = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        Payload { base, text }
    }

    fn seq_len(&self) -> usize {
        self.base.len().min(16)
    }

    fn write_seq(seq: u64, out: &mut [u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = out.len();
        for (i, b) in out.iter_mut().enumerate() {
            let shift = 4 * (n - 1 - i);
            *b = HEX[((seq >> shift) & 0xf) as usize];
        }
    }

    pub(crate) fn bytes(&self, seq: u64) -> Vec<u8> {
        let mut v = self.base.clone();
        let p = self.seq_len();
        Self::write_seq(seq, &mut v[..p]);
        v
    }

    pub(crate) fn message(&self, seq: u64) -> Message {
        let v = self.bytes(seq);
        if self.text {
            // The filler and the hex digits are ASCII, so this cannot fail.
            Message::Text(String::from_utf8(v).unwrap_or_default().into())
        } else {
            Message::Binary(v.into())
        }
    }

    pub(crate) fn check(&self, seq: u64, data: &[u8]) -> bool {
        let p = self.seq_len();
        if data.len() != self.base.len() {
            return false;
        }
        let mut want = [0u8; 16];
        Self::write_seq(seq, &mut want[..p]);
        data[..p] == want[..p] && data[p..] == self.base[p..]
    }
}

#[derive(Default)]
struct ConnStats {
    connected: bool,
    counted: u64,
    rtts_us: Vec<u64>,
    errors: Errors,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

pub(crate) fn run(a: Args) -> Result<(), String> {
    a.only(&[
        "url", "conns", "size", "text", "binary", "depth", "secs", "warmup", "threads", "ca", "h2",
    ])?;
    let url = a.str("url").ok_or("--url is required")?;
    let target = target::parse(url)?;
    let tls = tls_connector(&target, a.str("ca"))?;
    let h2 = a.flag("h2");
    if h2 && target.tls {
        return Err("--h2 is for ws:// (h2c) targets".into());
    }
    if a.flag("text") && a.flag("binary") {
        return Err("--text and --binary are exclusive".into());
    }
    let text = a.flag("text");
    let conns: usize = a.num("conns", 64)?;
    let size: usize = a.num("size", 64)?;
    let depth: usize = a.num("depth", 1)?;
    let secs: f64 = a.num("secs", 10.0)?;
    let warmup: f64 = a.num("warmup", 2.0)?;
    let threads: usize = a.num("threads", 1)?;
    if conns == 0 || depth == 0 || size == 0 {
        return Err("--conns, --depth and --size must be >= 1".into());
    }
    if !(0.001..=3600.0).contains(&secs) || !(0.0..=600.0).contains(&warmup) {
        return Err("--secs must be in (0, 3600] and --warmup in [0, 600]".into());
    }
    let cfg = Arc::new(Cfg {
        target,
        tls,
        h2,
        conns,
        depth,
        secs,
        warmup,
    });
    let payload = Arc::new(Payload::new(size, text));
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("runtime: {e}"))?;
    let (stats, connected) = rt.block_on(drive(cfg.clone(), payload));

    let mut errors = Errors::default();
    let mut rtts = Vec::new();
    let mut msgs = 0u64;
    for s in &stats {
        errors.merge(&s.errors);
        msgs += s.counted;
    }
    for s in stats {
        rtts.extend(s.rtts_us);
    }
    rtts.sort_unstable();
    let rate = msgs as f64 / cfg.secs;
    let (p50, p99, max) = (
        percentile(&rtts, 50.0),
        percentile(&rtts, 99.0),
        rtts.last().copied().unwrap_or(0),
    );
    println!(
        "echo {}: {connected}/{conns} connected, {size} B {}, depth {depth}: {rate:.0} msgs/s, \
         rtt p50 {p50} us p99 {p99} us max {max} us, errors {}",
        cfg.target.url,
        if text { "text" } else { "binary" },
        errors.describe()
    );
    println!(
        "RESULT mode=echo conns={conns} connected={connected} size={size} text={} depth={depth} \
         secs={} msgs={msgs} msgs_per_s={rate:.0} rtt_p50_us={p50} rtt_p99_us={p99} \
         rtt_max_us={max} errors={} error_kinds={}",
        u8::from(text),
        cfg.secs,
        errors.total(),
        errors.describe()
    );
    Ok(())
}

/// The TLS connector for a `wss://` target (trusting the `--ca` file).
pub(crate) fn tls_connector(
    target: &Target,
    ca: Option<&str>,
) -> Result<Option<tokio_rustls::TlsConnector>, String> {
    match (target.tls, ca) {
        (false, _) => Ok(None),
        (true, Some(ca)) => pagi_bench::tls::connector(std::path::Path::new(ca)).map(Some),
        (true, None) => {
            Err("wss:// needs --ca FILE (the CA that signed the server's certificate)".into())
        }
    }
}

async fn drive(cfg: Arc<Cfg>, payload: Arc<Payload>) -> (Vec<ConnStats>, usize) {
    let (ctx, mut crx) = mpsc::channel::<bool>(cfg.conns);
    let (wtx, wrx) = watch::channel::<Option<Window>>(None);
    let mut handles = Vec::with_capacity(cfg.conns);
    for _ in 0..cfg.conns {
        handles.push(tokio::spawn(conn(
            cfg.clone(),
            payload.clone(),
            ctx.clone(),
            wrx.clone(),
        )));
    }
    drop(ctx);
    let mut connected = 0;
    let mut reported = 0;
    let connect_deadline = Instant::now() + CONNECT_TIMEOUT + Duration::from_secs(5);
    while reported < cfg.conns {
        match tokio::time::timeout_at(connect_deadline.into(), crx.recv()).await {
            Ok(Some(ok)) => {
                reported += 1;
                connected += usize::from(ok);
            }
            _ => break,
        }
    }
    let start = Instant::now() + Duration::from_secs_f64(cfg.warmup);
    let end = start + Duration::from_secs_f64(cfg.secs);
    let _ = wtx.send(Some(Window { start, end }));
    tokio::time::sleep_until(start.into()).await;
    println!("MARK start");
    tokio::time::sleep_until(end.into()).await;
    println!("MARK end");
    let mut stats = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(s) => stats.push(s),
            Err(_) => {
                let mut s = ConnStats::default();
                s.errors.add("task_panic");
                stats.push(s);
            }
        }
    }
    (stats, connected)
}

async fn conn(
    cfg: Arc<Cfg>,
    payload: Arc<Payload>,
    connected: mpsc::Sender<bool>,
    window: watch::Receiver<Option<Window>>,
) -> ConnStats {
    let mut st = ConnStats::default();
    let wscfg = WebSocketConfig::default()
        .read_buffer_size(read_buffer_size(payload.base.len(), cfg.depth))
        .write_buffer_size(64 * 1024);
    if cfg.h2 {
        match tokio::time::timeout(CONNECT_TIMEOUT, connect_h2(&cfg.target, wscfg)).await {
            Ok(Ok(ws)) => session(ws, &cfg, &payload, connected, window, st).await,
            Ok(Err(_)) | Err(_) => {
                st.errors.add("connect");
                let _ = connected.send(false).await;
                st
            }
        }
    } else {
        let attempt = async {
            let tcp = TcpStream::connect(cfg.target.addr).await?;
            tcp.set_nodelay(true)?;
            let io = pagi_bench::tls::client(cfg.tls.as_ref(), tcp).await?;
            tokio_tungstenite::client_async_with_config(cfg.target.url.as_str(), io, Some(wscfg))
                .await
                .map_err(std::io::Error::other)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok((ws, _resp))) => session(ws, &cfg, &payload, connected, window, st).await,
            Ok(Err(_)) | Err(_) => {
                st.errors.add("connect");
                let _ = connected.send(false).await;
                st
            }
        }
    }
}

/// A WebSocket over a fresh HTTP/2 connection (h2c, prior knowledge): an extended CONNECT
/// with `:protocol websocket` (RFC 8441), then frames on that stream.
async fn connect_h2(
    target: &Target,
    wscfg: WebSocketConfig,
) -> std::io::Result<WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>> {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    let path = target.url.splitn(4, '/').nth(3).unwrap_or("");
    let mut req = hyper::Request::builder()
        .method("CONNECT")
        .uri(format!("http://{}/{path}", target.addr))
        .version(hyper::Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(std::io::Error::other)?;
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut resp = send
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(std::io::Error::other(format!(
            "CONNECT answered {}",
            resp.status()
        )));
    }
    let upgraded = hyper::upgrade::on(&mut resp)
        .await
        .map_err(std::io::Error::other)?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(wscfg)).await)
}

/// One connection's measured session, over whatever stream its WebSocket runs on.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    cfg: &Cfg,
    payload: &Payload,
    connected: mpsc::Sender<bool>,
    mut window: watch::Receiver<Option<Window>>,
    mut st: ConnStats,
) -> ConnStats {
    st.connected = true;
    let _ = connected.send(true).await;
    drop(connected);
    let w = match window.wait_for(Option::is_some).await {
        Ok(w) => (*w).unwrap_or_else(unreachable_window),
        Err(_) => return st,
    };
    drop(window);

    let hard = tokio::time::sleep_until((w.end + DRAIN_GRACE).into());
    tokio::pin!(hard);
    let mut inflight: VecDeque<Instant> = VecDeque::with_capacity(cfg.depth);
    let mut next_send = 0u64;
    let next_recv = 0u64;
    for _ in 0..cfg.depth {
        if ws.feed(payload.message(next_send)).await.is_err() {
            st.errors.add("send");
            return st;
        }
        inflight.push_back(Instant::now());
        next_send += 1;
    }
    if ws.flush().await.is_err() {
        st.errors.add("send");
        return st;
    }
    let mut seqs = Seqs {
        inflight,
        next_send,
        next_recv,
        out: Vec::with_capacity(cfg.depth),
    };
    'outer: loop {
        let first = tokio::select! {
            biased;
            m = ws.next() => m,
            _ = &mut hard => {
                st.errors.add("timeout");
                break 'outer;
            }
        };
        let mut res = seqs.handle(first, payload, w, &mut st);
        // Take whatever else is already readable before writing (batches pipelined echoes).
        while matches!(res, Ok(true)) {
            match ws.next().now_or_never() {
                Some(m) => res = seqs.handle(m, payload, w, &mut st),
                None => break,
            }
        }
        if !seqs.out.is_empty() {
            for m in seqs.out.drain(..) {
                if ws.feed(m).await.is_err() {
                    st.errors.add("send");
                    break 'outer;
                }
            }
            // One send timestamp per message queued since the last flush.
            let now = Instant::now();
            let outstanding = (seqs.next_send - seqs.next_recv) as usize;
            while seqs.inflight.len() < outstanding {
                seqs.inflight.push_back(now);
            }
            if ws.flush().await.is_err() {
                st.errors.add("send");
                break;
            }
        }
        match res {
            Ok(true) => {}
            Ok(false) => break,
            Err(kind) => {
                st.errors.add(kind);
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    st
}

/// The client's read buffer: what one read can bring (the echoes in flight, with frame
/// headers), between 4 and 64 KiB. tungstenite zero-fills the buffer up to this size before
/// every read, so a buffer far larger than a read costs a memset per read: with 64 KiB at
/// 64 B x depth 8 that was a tenth of the client's CPU (`perf`), and the client is what bounds
/// raw msgs/s on the small-message workloads.
fn read_buffer_size(size: usize, depth: usize) -> usize {
    ((size + 14) * depth.max(1)).clamp(4 * 1024, 64 * 1024)
}

/// Per-connection sequencing: what is in flight and what comes next.
struct Seqs {
    inflight: VecDeque<Instant>,
    next_send: u64,
    next_recv: u64,
    /// Messages to send at the next flush.
    out: Vec<Message>,
}

impl Seqs {
    /// Ok(true): keep going; Ok(false): finished draining; Err(kind): stop with an error.
    fn handle(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        payload: &Payload,
        w: Window,
        st: &mut ConnStats,
    ) -> Result<bool, &'static str> {
        let data: bytes::Bytes = match msg {
            Some(Ok(Message::Binary(b))) if !payload.text => b,
            Some(Ok(Message::Text(t))) if payload.text => t.into(),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => return Ok(true),
            Some(Ok(Message::Close(_))) | None => {
                return if self.inflight.is_empty() && Instant::now() >= w.end {
                    Ok(false)
                } else {
                    Err("closed_by_server")
                };
            }
            Some(Ok(_)) => return Err("wrong_type"),
            Some(Err(_)) => return Err("ws_error"),
        };
        // Echoes of messages still in `out` cannot arrive, so `inflight` covers every reply.
        let sent_at = self.inflight.pop_front().ok_or("unexpected_message")?;
        if !payload.check(self.next_recv, &data) {
            return Err("mismatch");
        }
        self.next_recv += 1;
        let now = Instant::now();
        if now >= w.start && now < w.end {
            st.counted += 1;
            st.rtts_us.push((now - sent_at).as_micros() as u64);
        }
        if now < w.end {
            self.out.push(payload.message(self.next_send));
            self.next_send += 1;
            Ok(true)
        } else {
            Ok(!self.inflight.is_empty())
        }
    }
}

fn unreachable_window() -> Window {
    let now = Instant::now();
    Window {
        start: now,
        end: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_fits_the_echoes_in_flight() {
        assert_eq!(read_buffer_size(64, 1), 4 * 1024);
        assert_eq!(read_buffer_size(64, 8), 4 * 1024);
        assert_eq!(read_buffer_size(16 * 1024, 1), 16 * 1024 + 14);
        assert_eq!(read_buffer_size(16 * 1024, 8), 64 * 1024);
    }

    #[test]
    fn payload_roundtrip() {
        for size in [1usize, 5, 16, 64, 16384] {
            for text in [false, true] {
                let p = Payload::new(size, text);
                let b = p.bytes(0x1234_5678_9abc);
                assert_eq!(b.len(), size);
                assert!(p.check(0x1234_5678_9abc, &b));
                if size >= 2 {
                    assert!(!p.check(0x1234_5678_9abd, &b), "size {size}");
                }
                let mut bad = b.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert!(!p.check(0x1234_5678_9abc, &bad));
                assert!(!p.check(0x1234_5678_9abc, &b[..size - 1]));
            }
        }
    }

    #[test]
    fn text_payload_is_text() {
        let p = Payload::new(64, true);
        assert!(matches!(p.message(7), Message::Text(_)));
        let p = Payload::new(64, false);
        assert!(matches!(p.message(7), Message::Binary(_)));
    }
}
