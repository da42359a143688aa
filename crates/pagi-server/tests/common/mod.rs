//! Shared helpers for the integration tests: a server on an ephemeral port,
//! time bounds, a raw (hand-framed) WebSocket client and a raw HTTP/1.1
//! response reader. Every helper is bounded in time.

#![allow(dead_code, unreachable_pub)]

pub mod proto;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pagi::SharedApp;
use pagi_server::{Config, LifespanMode, Listen, Server, ServerHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The default bound for one step of a test.
pub const STEP: Duration = Duration::from_secs(10);

/// Await `fut`, failing the test if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Poll `cond` every 10 ms until it holds; false if `limit` passes first.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A test config: an ephemeral loopback port, no lifespan.
pub fn config() -> Config {
    Config {
        listen: vec![Listen::tcp("127.0.0.1:0".parse().unwrap())],
        lifespan: LifespanMode::Off,
        shutdown_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// A running server and the task serving it.
pub struct TestServer {
    pub handle: ServerHandle,
    pub addr: SocketAddr,
    task: JoinHandle<Result<(), pagi_server::Error>>,
}

impl TestServer {
    pub async fn start(app: SharedApp) -> TestServer {
        TestServer::start_with(config(), app).await
    }

    pub async fn start_with(config: Config, app: SharedApp) -> TestServer {
        let server = within(STEP, "bind", Server::bind(config, app))
            .await
            .expect("bind");
        let handle = server.handle();
        // (A server on Unix sockets only has no TCP address: tests use its paths.)
        let addr = handle
            .local_addr()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let task = tokio::spawn(server.run_until(std::future::pending()));
        TestServer { handle, addr, task }
    }

    /// Whether the live-connection count drops to zero within `limit`.
    pub async fn idle_within(&self, limit: Duration) -> bool {
        let h = self.handle.clone();
        eventually(limit, move || h.live_connections() == 0).await
    }

    /// Graceful shutdown; the run task must finish within `limit`.
    pub async fn shutdown(self, limit: Duration) {
        self.handle.shutdown();
        within(limit, "server run task to finish", self.task)
            .await
            .expect("server task panicked")
            .expect("server run failed");
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

// ---------------------------------------------------------------------------
// Raw WebSocket client
// ---------------------------------------------------------------------------

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;
pub const FIN: u8 = 0x80;

/// A frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// The three RSV bits, as `0b0RRR_0000` of the first byte.
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// For a Close frame: the code (None for an empty payload) and reason.
    pub fn close_parts(&self) -> (Option<u16>, Vec<u8>) {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        match self.payload.len() {
            0 => (None, Vec::new()),
            1 => panic!("close frame with a 1-byte payload"),
            _ => (
                Some(u16::from_be_bytes([self.payload[0], self.payload[1]])),
                self.payload[2..].to_vec(),
            ),
        }
    }
}

/// Read a tokio-tungstenite client until the server's Close arrives (other
/// messages, e.g. ticks still in flight, are skipped); bounded by `STEP`.
pub async fn next_close<S>(
    ws: &mut S,
    what: &str,
) -> Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    within(STEP, what, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f,
                Some(Ok(_)) => continue,
                other => panic!("{what}: no close frame: {other:?}"),
            }
        }
    })
    .await
}

#[path = "../../../pagi-ws/examples/support/client_frame.rs"]
mod frame_encoder;

/// Encode a client frame: `b0` is the first byte (FIN/RSV/opcode); the
/// payload is masked with a fixed key unless `mask` is false.
pub fn client_frame(b0: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    frame_encoder::client_frame(b0, payload, mask.then_some([0x37, 0xfa, 0x21, 0x3d]))
}

/// A WebSocket client that writes hand-built frames and reads frames as
/// they are on the wire (no reassembly, no automatic replies).
pub struct RawWs {
    pub stream: TcpStream,
    buf: BytesMut,
    /// The 101 response head.
    pub response: RawResponse,
}

pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// RFC 6455's accept value for [`SAMPLE_KEY`].
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

impl RawWs {
    /// Handshake on `path`; panics unless the server answers 101.
    pub async fn connect(addr: SocketAddr, path: &str) -> RawWs {
        let stream = within(STEP, "tcp connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        RawWs::handshake(stream, path, "").await
    }

    /// Handshake over an existing stream, with extra header lines (each
    /// ending in CRLF).
    pub async fn handshake(mut stream: TcpStream, path: &str, extra: &str) -> RawWs {
        let req = upgrade_request(path, extra);
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut buf = BytesMut::new();
        let response = within(STEP, "handshake response", read_head(&mut stream, &mut buf))
            .await
            .expect("handshake response head");
        assert_eq!(response.status, 101, "handshake refused: {response:?}");
        assert_eq!(
            response.header("sec-websocket-accept"),
            Some(SAMPLE_ACCEPT),
            "{response:?}"
        );
        RawWs {
            stream,
            buf,
            response,
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Send one masked frame.
    pub async fn send(&mut self, b0: u8, payload: &[u8]) {
        let f = client_frame(b0, payload, true);
        self.write(&f).await;
    }

    /// Send a Close frame with `code` and `reason` (no payload if `code` is None).
    pub async fn send_close(&mut self, code: Option<u16>, reason: &[u8]) {
        let mut p = Vec::new();
        if let Some(c) = code {
            p.extend_from_slice(&c.to_be_bytes());
            p.extend_from_slice(reason);
        }
        self.send(FIN | OP_CLOSE, &p).await;
    }

    /// The next frame, or None at EOF (or a reset). Bounded by [`STEP`].
    pub async fn read_frame(&mut self) -> Option<Frame> {
        within(STEP, "read a frame", self.read_frame_unbounded()).await
    }

    async fn read_frame_unbounded(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = parse_frame(&mut self.buf) {
                return Some(f);
            }
            self.buf.reserve(64 * 1024);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Read frames until a Close; panics on EOF first. Data frames seen on
    /// the way are returned too.
    pub async fn read_until_close(&mut self) -> (Frame, Vec<Frame>) {
        let mut seen = Vec::new();
        loop {
            match self.read_frame().await {
                Some(f) if f.opcode == OP_CLOSE => return (f, seen),
                Some(f) => seen.push(f),
                None => panic!("connection ended without a Close frame; saw {seen:?}"),
            }
        }
    }

    /// Whether the server closes the TCP connection within `limit`
    /// (EOF or reset), discarding anything else it sends.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut scratch = [0u8; 4096];
        tokio::time::timeout(limit, async {
            loop {
                match self.stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }
}

fn parse_frame(buf: &mut BytesMut) -> Option<Frame> {
    if buf.len() < 2 {
        return None;
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let masked = b1 & 0x80 != 0;
    let (len, mut hl) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let mut key = None;
    if masked {
        if buf.len() < hl + 4 {
            return None;
        }
        key = Some([buf[hl], buf[hl + 1], buf[hl + 2], buf[hl + 3]]);
        hl += 4;
    }
    if buf.len() < hl + len {
        return None;
    }
    buf.advance(hl);
    let mut payload = buf.split_to(len).to_vec();
    if let Some(k) = key {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= k[i % 4]);
    }
    Some(Frame {
        fin: b0 & 0x80 != 0,
        rsv: b0 & 0x70,
        opcode: b0 & 0x0f,
        masked,
        payload,
    })
}

// ---------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------

/// A response as read off the wire.
#[derive(Debug, Clone, Default)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body used chunked framing.
    pub chunked: bool,
    /// Trailer fields after a chunked body (lower-cased names).
    pub trailers: Vec<(String, String)>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> std::io::Result<usize> {
    buf.reserve(16 * 1024);
    stream.read_buf(buf).await
}

/// Read a response head (status line and headers) from `stream`; leftover
/// bytes stay in `buf`. None on EOF before a full head.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Option<RawResponse> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf.split_to(end + 4);
            let text = std::str::from_utf8(&head).expect("response head is not UTF-8");
            let mut lines = text.split("\r\n");
            let status_line = lines.next().unwrap();
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
            let headers = lines
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (n, v) = l.split_once(':').expect("header line");
                    (n.trim().to_ascii_lowercase(), v.trim().to_owned())
                })
                .collect();
            return Some(RawResponse {
                status,
                headers,
                ..Default::default()
            });
        }
        match fill(stream, buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn read_exact_buf<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    n: usize,
) -> Vec<u8> {
    while buf.len() < n {
        let got = fill(stream, buf).await.expect("read body");
        assert!(got > 0, "EOF inside the body");
    }
    buf.split_to(n).to_vec()
}

async fn read_line<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> String {
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = buf.split_to(end + 2);
            return String::from_utf8_lossy(&line[..end]).into_owned();
        }
        let got = fill(stream, buf).await.expect("read chunk line");
        assert!(got > 0, "EOF inside a chunked body");
    }
}

/// Read one whole response (head and body: content-length, chunked, or to
/// EOF when neither is given). Bounded by [`STEP`].
pub async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> RawResponse {
    within(STEP, "read a response", async {
        let mut resp = read_head(stream, buf).await.expect("EOF before a response");
        if resp.status == 101 || resp.status == 204 || resp.status == 304 {
            return resp;
        }
        if let Some(n) = resp.header("content-length") {
            let n: usize = n.parse().expect("content-length");
            resp.body = read_exact_buf(stream, buf, n).await;
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            resp.chunked = true;
            loop {
                let line = read_line(stream, buf).await;
                let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                if size == 0 {
                    // Trailers (if any) end with an empty line.
                    loop {
                        let line = read_line(stream, buf).await;
                        if line.is_empty() {
                            break;
                        }
                        let (n, v) = line.split_once(':').expect("trailer line");
                        resp.trailers
                            .push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                    break;
                }
                let data = read_exact_buf(stream, buf, size).await;
                resp.body.extend_from_slice(&data);
                assert_eq!(
                    read_line(stream, buf).await,
                    "",
                    "chunk not CRLF-terminated"
                );
            }
        } else {
            loop {
                match fill(stream, buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            resp.body = buf.split().to_vec();
        }
        resp
    })
    .await
}

/// Read the response to a HEAD request: its head only (the length it
/// declares has no body behind it).
pub async fn read_head_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> RawResponse {
    within(STEP, "read a response head", read_head(stream, buf))
        .await
        .expect("EOF before a response")
}

/// Open a connection, send `request` as is, read one response.
pub async fn http_raw(addr: SocketAddr, request: &[u8]) -> (RawResponse, TcpStream) {
    let mut stream = within(STEP, "tcp connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    stream.write_all(request).await.expect("write request");
    let mut buf = BytesMut::new();
    let resp = read_response(&mut stream, &mut buf).await;
    (resp, stream)
}

/// Whether the peer closes `stream` (EOF or reset) within `limit`,
/// discarding anything it still sends.
pub async fn eof_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut scratch = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A valid upgrade request for `path`, with `extra` header lines.
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Log lines the server writes, as text (one subscriber for this test
/// binary).
pub fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> =
        std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buf.clone();
        let make = move || Writer(sink.clone());
        tracing_subscriber::fmt()
            .with_writer(make)
            .with_ansi(false)
            .init();
        buf
    })
    .clone()
}

struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How each request ended, as `pagi.connection` reports it: the path, and
/// the disconnect reason (`None` for a completed response).
pub type Ends = tokio::sync::mpsc::UnboundedReceiver<(String, Option<String>)>;

/// Report the end of the request at `path` (its `on_disconnect` or
/// `on_complete`) to `tx`.
pub fn record_end(
    conn: &pagi::Connection,
    path: &str,
    tx: &tokio::sync::mpsc::UnboundedSender<(String, Option<String>)>,
) {
    let (p1, t1) = (path.to_owned(), tx.clone());
    conn.on_disconnect(move |why| drop(t1.send((p1, Some(why.to_owned())))));
    let (p2, t2) = (path.to_owned(), tx.clone());
    conn.on_complete(move || drop(t2.send((p2, None))));
}
