//! `idle` mode: many connections that only receive the server's pushed ticks.
//!
//! Timeline: connect phase (all N connections, at most C handshakes at a time, spread over
//! source addresses 127.0.0.1..127.0.0.K, bounded by --connect-timeout), then --warmup
//! seconds, then the --secs measured window. For every connection we track the worst gap
//! between two received messages that ends inside the window, plus the tail gap from its last
//! message to the end of the window (so a connection that stops receiving is not hidden).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::args::Args;
use crate::target::{self, Target};
use crate::{percentile, self_rss_kib, Errors};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

const PENDING: u8 = 0;
const ALIVE: u8 = 1;
const DEAD: u8 = 2;
const FAILED: u8 = 3;

/// Per-connection shared state (read by the main task at the end of the window).
#[derive(Default)]
struct Slot {
    state: AtomicU8,
    /// Nanoseconds since `Shared::t0` of the last received message (or of the connect).
    last_ns: AtomicU64,
    /// Worst gap (ns) ending at or after the start of the measured window.
    max_gap_ns: AtomicU64,
    msgs: AtomicU64,
    /// Why a connection failed or died (index into ERROR_KINDS).
    error: AtomicU8,
}

const ERROR_KINDS: &[&str] = &[
    "none",
    "socket",
    "connect",
    "handshake",
    "handshake_timeout",
    "closed_by_server",
    "ws_error",
];

struct Shared {
    t0: Instant,
    /// Start of the measured window in ns since t0 (u64::MAX until known).
    window_start_ns: AtomicU64,
    slots: Vec<Slot>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

pub(crate) fn run(a: Args) -> Result<(), String> {
    a.only(&[
        "url",
        "conns",
        "secs",
        "warmup",
        "src-ips",
        "connect-concurrency",
        "connect-timeout",
        "ca",
    ])?;
    let url = a.str("url").ok_or("--url is required")?;
    let target = target::parse(url)?;
    let tls = crate::echo::tls_connector(&target, a.str("ca"))?;
    let conns: usize = a.num("conns", 1000)?;
    let secs: f64 = a.num("secs", 20.0)?;
    let warmup: f64 = a.num("warmup", 5.0)?;
    let src_ips: u8 = a.num("src-ips", 8)?;
    let concurrency: usize = a.num("connect-concurrency", 256)?;
    let connect_timeout: f64 = a.num("connect-timeout", 120.0)?;
    if conns == 0 || src_ips == 0 || concurrency == 0 || src_ips == 255 {
        return Err("--conns, --connect-concurrency >= 1; --src-ips in 1..=254".into());
    }
    if !(0.001..=3600.0).contains(&secs)
        || !(0.0..=600.0).contains(&warmup)
        || !(0.001..=600.0).contains(&connect_timeout)
    {
        return Err("--secs in (0,3600], --warmup in [0,600], --connect-timeout in (0,600]".into());
    }
    if src_ips > 1 && !target.addr.is_ipv4() {
        return Err("--src-ips > 1 needs an IPv4 (127.x) target".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        window_start_ns: AtomicU64::new(u64::MAX),
        slots: (0..conns).map(|_| Slot::default()).collect(),
    });
    let params = Params {
        target,
        tls,
        src_ips,
        concurrency,
        connect_timeout: Duration::from_secs_f64(connect_timeout),
        warmup: Duration::from_secs_f64(warmup),
        secs: Duration::from_secs_f64(secs),
    };
    let (connect_s, end_ns) = rt.block_on(drive(&params, shared.clone()));

    // Snapshot at the end of the window (tasks are still parked on their sockets).
    let mut connected = 0usize;
    let mut alive = 0usize;
    let mut msgs = 0u64;
    let mut gaps_ms = Vec::with_capacity(conns);
    let mut errors = Errors::default();
    for s in &shared.slots {
        let state = s.state.load(Relaxed);
        let err = s.error.load(Relaxed) as usize;
        if err != 0 {
            errors.add(ERROR_KINDS.get(err).copied().unwrap_or("other"));
        }
        if state == PENDING && err == 0 {
            errors.add("connect_phase_timeout");
        }
        if state != ALIVE && state != DEAD {
            continue;
        }
        connected += 1;
        alive += usize::from(state == ALIVE);
        msgs += s.msgs.load(Relaxed);
        let tail = end_ns.saturating_sub(s.last_ns.load(Relaxed));
        let gap = s.max_gap_ns.load(Relaxed).max(tail);
        gaps_ms.push(gap / 1_000_000);
    }
    gaps_ms.sort_unstable();
    let (p50, p99, max) = (
        percentile(&gaps_ms, 50.0),
        percentile(&gaps_ms, 99.0),
        gaps_ms.last().copied().unwrap_or(0),
    );
    let rss = self_rss_kib();
    println!(
        "idle {}: {connected}/{conns} connected in {connect_s:.1}s, {alive} alive at end, \
         {msgs} msgs received; worst tick gap per conn p50 {p50} ms p99 {p99} ms max {max} ms; \
         client RSS {rss} KiB; errors {}",
        params.target.url,
        errors.describe()
    );
    println!(
        "RESULT mode=idle conns={conns} connected={connected} alive_at_end={alive} \
         msgs_recv={msgs} connect_s={connect_s:.2} secs={secs} max_gap_p50_ms={p50} \
         max_gap_p99_ms={p99} max_gap_max_ms={max} client_rss_kib={rss} errors={} error_kinds={}",
        errors.total(),
        errors.describe()
    );
    // Exit without tearing 20k tasks down one by one; the kernel closes the sockets.
    std::process::exit(0);
}

struct Params {
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    src_ips: u8,
    concurrency: usize,
    connect_timeout: Duration,
    warmup: Duration,
    secs: Duration,
}

/// Returns (connect phase seconds, window end in ns since t0).
async fn drive(p: &Params, shared: Arc<Shared>) -> (f64, u64) {
    let n = shared.slots.len();
    let sem = Arc::new(Semaphore::new(p.concurrency));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let wscfg = WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0);
    for i in 0..n {
        let src = if p.src_ips > 1 {
            Some(IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                1 + (i % p.src_ips as usize) as u8,
            )))
        } else {
            None
        };
        tokio::spawn(conn(
            i,
            src,
            p.target.clone(),
            p.tls.clone(),
            wscfg,
            shared.clone(),
            sem.clone(),
            done_tx.clone(),
        ));
    }
    drop(done_tx);
    let started = Instant::now();
    let deadline = started + p.connect_timeout;
    let mut done = 0usize;
    let mut next_progress = started + Duration::from_secs(2);
    while done < n {
        let until = next_progress.min(deadline);
        match tokio::time::timeout_at(until.into(), done_rx.recv()).await {
            Ok(Some(())) => done += 1,
            Ok(None) => break,
            Err(_) if Instant::now() >= deadline => {
                eprintln!("idle: connect phase timed out with {done}/{n} attempts finished");
                break;
            }
            Err(_) => {
                eprintln!(
                    "idle: connecting {done}/{n} ({:.0}s)",
                    started.elapsed().as_secs_f64()
                );
                next_progress += Duration::from_secs(2);
            }
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    let start = Instant::now() + p.warmup;
    let end = start + p.secs;
    shared
        .window_start_ns
        .store((start - shared.t0).as_nanos() as u64, Relaxed);
    tokio::time::sleep_until(start.into()).await;
    println!("MARK start");
    tokio::time::sleep_until(end.into()).await;
    println!("MARK end");
    (connect_s, (end - shared.t0).as_nanos() as u64)
}

#[allow(clippy::too_many_arguments)]
async fn conn(
    i: usize,
    src: Option<IpAddr>,
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    wscfg: WebSocketConfig,
    shared: Arc<Shared>,
    sem: Arc<Semaphore>,
    done: mpsc::UnboundedSender<()>,
) {
    let slot = &shared.slots[i];
    let fail = |kind: u8| {
        slot.error.store(kind, Relaxed);
        slot.state.store(FAILED, Relaxed);
    };
    let permit = sem.acquire().await;
    let sock = match target.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    };
    let sock = match sock {
        Ok(s) => s,
        Err(_) => {
            fail(1);
            let _ = done.send(());
            return;
        }
    };
    if let Some(ip) = src {
        if sock.bind(SocketAddr::new(ip, 0)).is_err() {
            fail(1);
            let _ = done.send(());
            return;
        }
    }
    let tcp = match sock.connect(target.addr).await {
        Ok(t) => t,
        Err(_) => {
            fail(2);
            let _ = done.send(());
            return;
        }
    };
    // Boxed so the (large) handshake state does not stay in this long-lived task's future.
    let hs = Box::pin(async {
        let io = pagi_bench::tls::client(tls.as_ref(), tcp).await?;
        tokio_tungstenite::client_async_with_config(target.url.as_str(), io, Some(wscfg))
            .await
            .map_err(std::io::Error::other)
    });
    let mut ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, hs).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(_)) => {
            fail(3);
            let _ = done.send(());
            return;
        }
        Err(_) => {
            fail(4);
            let _ = done.send(());
            return;
        }
    };
    drop(permit);
    slot.last_ns.store(shared.now_ns(), Relaxed);
    slot.state.store(ALIVE, Relaxed);
    let _ = done.send(());
    drop(done);
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                let t = shared.now_ns();
                let last = slot.last_ns.load(Relaxed);
                if t >= shared.window_start_ns.load(Relaxed) {
                    let gap = t.saturating_sub(last);
                    if gap > slot.max_gap_ns.load(Relaxed) {
                        slot.max_gap_ns.store(gap, Relaxed);
                    }
                }
                slot.last_ns.store(t, Relaxed);
                slot.msgs.fetch_add(1, Relaxed);
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                slot.error.store(6, Relaxed);
                slot.state.store(DEAD, Relaxed);
                return;
            }
            None => {
                slot.error.store(5, Relaxed);
                slot.state.store(DEAD, Relaxed);
                return;
            }
        }
    }
}
