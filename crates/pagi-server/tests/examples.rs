//! The bundled example apps over real sockets: each one's documented
//! behaviour, as a client on 127.0.0.1 sees it. Every step is bounded in
//! time; example timers are shortened through their query parameters or
//! constructors where they have them.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use common::{http_raw, read_head, within, RawResponse, RawWs, TestServer, FIN, OP_TEXT, STEP};
use pagi_examples as ex;
use pagi_server::{Config, LifespanMode, Listen, ListenAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

fn with_lifespan(mode: LifespanMode) -> Config {
    Config {
        lifespan: mode,
        ..common::config()
    }
}

/// A GET with `Connection: close` and extra header lines.
fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n").into_bytes()
}

async fn read_some<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> usize {
    buf.reserve(16 * 1024);
    stream.read_buf(buf).await.unwrap_or(0)
}

// ---------------------------------------------------------------------------
// A minimal SSE client: response head, de-chunking, event parsing.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq)]
struct SseEvent {
    event: Option<String>,
    data: String,
    id: Option<String>,
}

struct SseClient<S = TcpStream> {
    stream: S,
    /// Bytes read and not yet de-chunked.
    raw: BytesMut,
    /// De-chunked body not yet parsed into events.
    body: Vec<u8>,
    chunked: bool,
    ended: bool,
    head: RawResponse,
}

impl SseClient {
    async fn connect(addr: SocketAddr, path: &str, extra: &str) -> SseClient {
        let stream = within(STEP, "connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        SseClient::over(stream, path, extra).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SseClient<S> {
    async fn over(mut stream: S, path: &str, extra: &str) -> SseClient<S> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n{extra}\r\n"
        );
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut raw = BytesMut::new();
        let head = within(STEP, "response head", read_head(&mut stream, &mut raw))
            .await
            .expect("EOF before the response head");
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
        SseClient {
            stream,
            raw,
            body: Vec::new(),
            chunked,
            ended: false,
            head,
        }
    }

    /// Move complete chunks from `raw` to `body`.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.body.extend_from_slice(&self.raw.split());
            return;
        }
        while !self.ended {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let line = std::str::from_utf8(&self.raw[..eol]).expect("chunk size line");
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                self.ended = true;
                return;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            self.raw.advance(eol + 2);
            self.body.extend_from_slice(&self.raw[..size]);
            assert_eq!(
                &self.raw[size..size + 2],
                b"\r\n",
                "chunk not CRLF-terminated"
            );
            self.raw.advance(size + 2);
        }
    }

    /// Parse one event (comments skipped) from `body`, if a whole one is there.
    fn parse(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.body.windows(2).position(|w| w == b"\n\n")?;
            let block: Vec<u8> = self.body.drain(..end + 2).collect();
            let text = String::from_utf8(block).expect("event stream is UTF-8");
            let mut ev = SseEvent::default();
            let mut data: Vec<&str> = Vec::new();
            for line in text.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => ev.event = Some(value.to_owned()),
                    "data" => data.push(value),
                    "id" => ev.id = Some(value.to_owned()),
                    _ => {} // comments, retry
                }
            }
            if !data.is_empty() {
                ev.data = data.join("\n");
                return Some(ev);
            }
        }
    }

    /// The next event, or None when the stream ends. Bounded by [`STEP`].
    async fn next_event(&mut self) -> Option<SseEvent> {
        within(STEP, "next SSE event", async {
            loop {
                self.dechunk();
                if let Some(ev) = self.parse() {
                    return Some(ev);
                }
                if self.ended || read_some(&mut self.stream, &mut self.raw).await == 0 {
                    return None;
                }
            }
        })
        .await
    }

    /// Every event until the stream ends.
    async fn all_events(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(ev) = self.next_event().await {
            events.push(ev);
        }
        events
    }
}

// ---------------------------------------------------------------------------
// 02-streaming-response
// ---------------------------------------------------------------------------

#[tokio::test]
async fn streaming_response_sends_chunks_apart_then_trailers() {
    let server = TestServer::start(pagi::app_fn(ex::streaming_response::app)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(&get("/?delay_ms=200", "")).await.unwrap();
    let mut buf = BytesMut::new();
    let (mut first, mut second) = (None, None);
    within(STEP, "the whole response", async {
        while read_some(&mut stream, &mut buf).await > 0 {
            let text = String::from_utf8_lossy(&buf);
            if first.is_none() && text.contains("chunk 1 of 3") {
                first = Some(Instant::now());
            }
            if second.is_none() && text.contains("chunk 2 of 3") {
                second = Some(Instant::now());
            }
        }
    })
    .await;
    let text = String::from_utf8(buf.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked"), "{head}");
    assert!(lower.contains("trailer: x-chunks"), "{head}");
    // Three data chunks, the last chunk, the trailer field, the end.
    for n in 1..=3 {
        assert!(body.contains(&format!("chunk {n} of 3\n")), "{body:?}");
    }
    assert!(
        body.ends_with("\r\n0\r\nx-chunks: 3\r\n\r\n"),
        "no trailer section at the end: {body:?}"
    );
    let gap = second.unwrap() - first.unwrap();
    assert!(
        gap >= Duration::from_millis(150),
        "chunks 1 and 2 arrived {gap:?} apart"
    );
}

#[tokio::test]
async fn streaming_response_stops_when_the_client_leaves() {
    let server = TestServer::start(pagi::app_fn(ex::streaming_response::app)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(&get("/?delay_ms=1500", "")).await.unwrap();
    let mut buf = BytesMut::new();
    within(STEP, "the first chunk", async {
        while !String::from_utf8_lossy(&buf).contains("chunk 1 of 3") {
            assert!(read_some(&mut stream, &mut buf).await > 0, "EOF");
        }
    })
    .await;
    drop(stream);
    // Finishing the stream would take 3 s; the app returns at the disconnect.
    assert!(
        server.idle_within(Duration::from_millis(700)).await,
        "the app kept streaming after the client left"
    );
}

// ---------------------------------------------------------------------------
// 03-request-body
// ---------------------------------------------------------------------------

#[tokio::test]
async fn request_body_echoes_a_large_body_with_its_length() {
    let server = TestServer::start(pagi::app_fn(ex::request_body::app)).await;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: application/x-test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let (resp, _) = http_raw(server.addr, &req).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/x-test"));
    assert_eq!(resp.header("x-body-bytes"), Some("300000"));
    assert_eq!(resp.header("content-length"), Some("300000"));
    assert!(resp.body == body, "echoed body differs");
}

#[tokio::test]
async fn request_body_collects_chunks_that_arrive_apart() {
    let server = TestServer::start(pagi::app_fn(ex::request_body::app)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    for piece in ["hello, ", "chunked ", "world"] {
        let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
        stream.write_all(chunk.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let resp = common::read_response(&mut stream, &mut BytesMut::new()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "hello, chunked world");
    assert_eq!(resp.header("x-body-bytes"), Some("20"));
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    let events: u32 = resp.header("x-body-events").unwrap().parse().unwrap();
    assert!(events >= 3, "pieces 60 ms apart came in {events} events");
}

// ---------------------------------------------------------------------------
// 05-sse-broadcaster
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sse_broadcaster_stops_on_disconnect() {
    let server = TestServer::start(pagi::app_fn(ex::sse_broadcaster::app)).await;
    let mut sse = SseClient::connect(server.addr, "/events?n=100", "").await;
    assert_eq!(sse.next_event().await.unwrap().id.as_deref(), Some("1"));
    drop(sse);
    assert!(
        server.idle_within(Duration::from_millis(400)).await,
        "the stream went on after the client left"
    );
}

// ---------------------------------------------------------------------------
// 06-lifespan-state
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// 12-utf8
// ---------------------------------------------------------------------------

async fn utf8_post(addr: SocketAddr, target: &str, extra: &str, body: &[u8]) -> RawResponse {
    let mut req = format!(
        "POST {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let resp = http_raw(addr, &req).await.0;
    // Content-Length counts bytes: the reader took exactly that many.
    let declared: usize = resp.header("content-length").unwrap().parse().unwrap();
    assert_eq!(declared, resp.body.len());
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    resp
}

#[tokio::test]
async fn utf8_round_trip_of_path_query_and_body() {
    let server = TestServer::start(pagi::app_fn(ex::utf8::app)).await;
    let resp = utf8_post(
        server.addr,
        "/caf%C3%A9%20%E2%98%95?drink=caf%C3%A9+%E2%98%95&empty",
        "",
        "café ☕".as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 200);
    let text = String::from_utf8(resp.body.clone()).expect("response is UTF-8");
    assert!(text.chars().count() < resp.body.len(), "{text}");
    for line in [
        "path: /café ☕\n",
        "raw_path: /caf%C3%A9%20%E2%98%95\n",
        "query_string: drink=caf%C3%A9+%E2%98%95&empty\n",
        "query drink = café ☕\n",
        "query empty = \n",
        "body: café ☕ (6 characters, 9 bytes)\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in {text:?}");
    }
}

#[tokio::test]
async fn utf8_form_body_and_invalid_body() {
    let server = TestServer::start(pagi::app_fn(ex::utf8::app)).await;
    let resp = utf8_post(
        server.addr,
        "/form",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        b"greeting=%E2%98%95+na%C3%AFve&x=%zz",
    )
    .await;
    assert_eq!(resp.status, 200);
    let text = resp.body_text();
    assert!(text.contains("form greeting = ☕ naïve\n"), "{text}");
    assert!(text.contains("form x = %zz\n"), "{text}");

    let resp = utf8_post(server.addr, "/", "", b"caf\xe9").await;
    assert_eq!(resp.status, 400);
    assert!(
        resp.body_text()
            .contains("not valid UTF-8 (bad byte at offset 3)"),
        "{resp:?}"
    );
}

#[tokio::test]
async fn utf8_raw_path_keeps_the_bytes_path_replaces_bad_ones() {
    let server = TestServer::start(pagi::app_fn(ex::utf8::app)).await;
    let (resp, _) = http_raw(
        server.addr,
        b"GET /caf\xc3\xa9/%FF HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200);
    let text = resp.body_text();
    assert!(text.contains("path: /caf\u{e9}/\u{fffd}\n"), "{text}");
    assert!(text.contains("raw_path: /caf\\xc3\\xa9/%FF\n"), "{text}");
}

// ---------------------------------------------------------------------------
// 13-flow-control
// ---------------------------------------------------------------------------

fn json_field(data: &str, key: &str) -> u64 {
    let start = data
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {data}"))
        + key.len()
        + 3;
    data[start..]
        .split([',', '}'])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("bad {key} in {data}"))
}

#[tokio::test]
async fn flow_control_skips_readings_while_the_client_does_not_read() {
    // Over a Unix socket: its kernel buffers have a fixed size (about
    // 200 KB), so a client that stops reading backs the server's own queue
    // (`buffered_amount`) up within a fraction of a second. (Loopback TCP
    // grows its send buffer up to megabytes first.)
    let path = std::env::temp_dir().join(format!("pagi-ex13-{}.sock", std::process::id()));
    let config = Config {
        listen: vec![Listen {
            addr: ListenAddr::Unix {
                path: path.clone(),
                mode: None,
            },
            tls: None,
        }],
        ..common::config()
    };
    let server = TestServer::start_with(config, pagi::app_fn(ex::flow_control::app)).await;
    let stream = within(STEP, "connect", UnixStream::connect(&path))
        .await
        .unwrap();
    let mut sse = SseClient::over(stream, "/feed?every_ms=2&pad=2000", "").await;
    assert_eq!(sse.head.status, 200);

    // Reading along.
    let mut last = 0;
    for _ in 0..5 {
        let ev = sse.next_event().await.unwrap();
        assert_eq!(ev.event.as_deref(), Some("reading"));
        last = json_field(&ev.data, "seq");
        assert_eq!(ev.id, Some(last.to_string()));
    }
    assert!(last < 50, "the feed started at reading {last}");

    // Stop reading for 800 ms: ~400 readings are produced meanwhile. Those
    // the buffers hold arrive in sequence, then the ids jump to the present:
    // the rest were skipped, and each event says how many before it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stalled_at = last;
    let (mut prev, mut skipped_total, mut biggest) = (last, 0, 0);
    within(Duration::from_secs(2), "the jump to the present", async {
        while biggest < 50 {
            let ev = sse.next_event().await.expect("stream ended");
            let seq = json_field(&ev.data, "seq");
            let skipped = json_field(&ev.data, "skipped");
            assert!(seq > prev, "readings out of order: {prev} then {seq}");
            assert_eq!(seq - prev - 1, skipped, "wrong skipped count: {}", ev.data);
            assert_eq!(ev.id, Some(seq.to_string()));
            skipped_total += skipped;
            biggest = biggest.max(skipped);
            prev = seq;
        }
    })
    .await;
    let sent = prev - stalled_at - skipped_total;
    assert!(
        skipped_total >= 200,
        "from reading {stalled_at} to {prev}: {skipped_total} skipped, {sent} sent"
    );
    drop(sse);
    assert!(server.idle_within(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn flow_control_plain_http_gets_an_explanation() {
    let server = TestServer::start(pagi::app_fn(ex::flow_control::app)).await;
    let (resp, _) = http_raw(server.addr, &get("/", "")).await;
    assert_eq!(resp.status, 200);
    assert!(resp.body_text().contains("text/event-stream"), "{resp:?}");
}

// ---------------------------------------------------------------------------
// 14-periodic-events
// ---------------------------------------------------------------------------

#[tokio::test]
async fn periodic_events_poll_and_stream_share_the_lifespan_ticker() {
    let app = ex::periodic_events::with_period(Duration::from_millis(100));
    let server = TestServer::start_with(with_lifespan(LifespanMode::On), app).await;

    let t = Instant::now();
    let (resp, _) = http_raw(server.addr, &get("/poll", "")).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let body = resp.body_text();
    assert!(body.starts_with("tick "), "{body}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let polled: u64 = body["tick ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let mut sse = SseClient::connect(server.addr, "/stream?n=3", "").await;
    assert_eq!(sse.head.status, 200);
    let events = sse.all_events().await;
    assert_eq!(events.len(), 3, "{events:?}");
    let ids: Vec<u64> = events
        .iter()
        .map(|e| {
            assert_eq!(e.event.as_deref(), Some("tick"));
            e.id.as_ref().unwrap().parse().unwrap()
        })
        .collect();
    assert!(ids[0] > polled, "{ids:?} after {polled}");
    assert_eq!([ids[1], ids[2]], [ids[0] + 1, ids[0] + 2]);

    // The ticker stops at `lifespan.shutdown` and acknowledges it (the test
    // config would wait 5 s for an answer).
    let t = Instant::now();
    server.shutdown(STEP).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn periodic_events_without_lifespan_say_so() {
    let server = TestServer::start(pagi::app_fn(ex::periodic_events::app)).await; // lifespan off
    let (resp, _) = http_raw(server.addr, &get("/poll", "")).await;
    assert_eq!(resp.status, 503);
    assert!(resp.body_text().contains("without lifespan"), "{resp:?}");
    // The event stream is declined with an ordinary response.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(&get("/stream", "Accept: text/event-stream\r\n"))
        .await
        .unwrap();
    let resp = common::read_response(&mut stream, &mut BytesMut::new()).await;
    assert_eq!(resp.status, 503);
    assert!(resp.body_text().contains("without lifespan"), "{resp:?}");
}

// ---------------------------------------------------------------------------
// 17-event-middleware
// ---------------------------------------------------------------------------

fn fast_ticks() -> pagi::SharedApp {
    std::sync::Arc::new(ex::event_middleware::with_ticks(
        ex::event_middleware::echo,
        Duration::from_millis(100),
    ))
}

async fn next_text(ws: &mut RawWs) -> String {
    let frame = ws.read_frame().await.expect("connection ended");
    assert_eq!(frame.opcode, OP_TEXT, "{frame:?}");
    String::from_utf8(frame.payload).unwrap()
}

#[tokio::test]
async fn event_middleware_ticks_and_echoes_over_websocket() {
    let server = TestServer::start(fast_ticks()).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    ws.send(FIN | OP_TEXT, b"hello").await;
    let mut ticks = Vec::new();
    let mut echoed = false;
    within(Duration::from_secs(2), "an echo and three ticks", async {
        while !echoed || ticks.len() < 3 {
            let text = next_text(&mut ws).await;
            if text == "echo: hello" {
                echoed = true;
            } else if let Some(n) = text.strip_prefix("tick ") {
                ticks.push(n.parse::<u64>().unwrap());
            } else {
                panic!("unexpected message {text:?}");
            }
        }
    })
    .await;
    assert_eq!(ticks, [1, 2, 3]);
    // Echoes keep working between ticks.
    ws.send(FIN | OP_TEXT, b"again").await;
    within(Duration::from_secs(1), "the second echo", async {
        while next_text(&mut ws).await != "echo: again" {}
    })
    .await;
    ws.send_close(Some(1000), b"").await;
    let (close, _) = ws.read_until_close().await;
    assert_eq!(close.close_parts().0, Some(1000));
    // The server closes the TCP connection (and, lingering, waits for the
    // client to close its side too).
    assert!(
        ws.closed_within(Duration::from_secs(1)).await,
        "TCP not closed"
    );
    drop(ws);
    assert!(server.idle_within(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn event_middleware_ticks_over_sse_and_passes_http_through() {
    let server = TestServer::start(fast_ticks()).await;
    let mut sse = SseClient::connect(server.addr, "/", "").await;
    for n in 1..=3 {
        let ev = sse.next_event().await.unwrap();
        assert_eq!(ev.event.as_deref(), Some("tick"));
        assert_eq!(ev.data, format!("tick {n}"));
    }
    drop(sse);
    assert!(server.idle_within(Duration::from_secs(1)).await);
    let (resp, _) = http_raw(server.addr, &get("/", "")).await;
    assert_eq!(resp.status, 200);
    assert!(resp.body_text().contains("WebSocket"), "{resp:?}");
}

#[tokio::test]
async fn event_middleware_default_app_ticks_every_second() {
    let server = TestServer::start(pagi::app_fn(ex::event_middleware::app)).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    let t = Instant::now();
    ws.send(FIN | OP_TEXT, b"hi").await;
    assert_eq!(next_text(&mut ws).await, "echo: hi");
    assert!(t.elapsed() < Duration::from_millis(500));
    assert_eq!(next_text(&mut ws).await, "tick 1");
    let at = t.elapsed();
    assert!(
        (Duration::from_millis(800)..Duration::from_millis(1500)).contains(&at),
        "first tick after {at:?}"
    );
}

// ---------------------------------------------------------------------------
// mini-framework
// ---------------------------------------------------------------------------

#[tokio::test]
async fn mini_framework_slow_handlers_run_concurrently() {
    let server = TestServer::start(pagi::app_fn(ex::mini_framework::app)).await;
    let t = Instant::now();
    let slow = |_| {
        http_raw(
            server.addr,
            b"GET /slow/300 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
    };
    let (a, b) = tokio::join!(slow(1), slow(2));
    let took = t.elapsed();
    for (resp, _) in [a, b] {
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_text(), "Slept 300 ms\n");
    }
    assert!(
        (Duration::from_millis(290)..Duration::from_millis(550)).contains(&took),
        "two 300 ms requests took {took:?}"
    );
}

// ---------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------

#[test]
fn every_example_is_registered_and_found_by_its_name() {
    let names: Vec<&str> = ex::ALL.iter().map(|e| e.name).collect();
    for name in [
        "01-hello-http",
        "02-streaming-response",
        "03-request-body",
        "04-websocket-echo",
        "05-sse-broadcaster",
        "06-lifespan-state",
        "07-sse-clock",
        "08-tls-introspection",
        "12-utf8",
        "13-flow-control",
        "14-periodic-events",
        "17-event-middleware",
        "18-bidirectional-websocket",
        "mini-framework",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
        assert_eq!(
            ex::find(&format!("examples/{name}/app.rs")).unwrap().name,
            name
        );
    }
    assert_eq!(ex::find("13").unwrap().name, "13-flow-control");
    assert_eq!(
        ex::find("event-middleware").unwrap().name,
        "17-event-middleware"
    );
}

/// A directory with a 1 MiB file and an index page, for 10-static-files.
fn static_dir(name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("pagi-static-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    std::fs::write(dir.join("sub/index.html"), "<h1>index</h1>").unwrap();
    (dir, data)
}

#[tokio::test]
async fn static_files_serve_whole_files_ranges_and_revalidation() {
    let (dir, data) = static_dir("serve");
    let server = TestServer::start(ex::static_files::serving(dir.clone())).await;
    let (r, _) = http_raw(server.addr, &get("/big.bin", "")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.body == data, "the body differs");
    let etag = r.header("etag").unwrap().to_owned();
    // Revalidation.
    let (r, _) = http_raw(
        server.addr,
        &get("/big.bin", &format!("If-None-Match: {etag}\r\n")),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (304, 0));
    // Ranges: from the start, a suffix, past the end.
    let (r, _) = http_raw(server.addr, &get("/big.bin", "Range: bytes=100-199\r\n")).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/1048576"));
    assert!(r.body == data[100..200]);
    let (r, _) = http_raw(server.addr, &get("/big.bin", "Range: bytes=-10\r\n")).await;
    assert!(r.status == 206 && r.body == data[data.len() - 10..]);
    let (r, _) = http_raw(server.addr, &get("/big.bin", "Range: bytes=2000000-\r\n")).await;
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */1048576"))
    );
    // If-Range with another version: the whole file.
    let (r, _) = http_raw(
        server.addr,
        &get("/big.bin", "Range: bytes=0-9\r\nIf-Range: \"other\"\r\n"),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (200, data.len()));
    // HEAD: the length, no body.
    let (mut s, mut buf) = (
        TcpStream::connect(server.addr).await.unwrap(),
        BytesMut::new(),
    );
    s.write_all(b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let head = within(STEP, "head", read_head(&mut s, &mut buf))
        .await
        .unwrap();
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("1048576"))
    );
    // A directory's index; nothing outside the root.
    let (r, _) = http_raw(server.addr, &get("/sub/", "")).await;
    assert_eq!((r.status, r.body_text().as_str()), (200, "<h1>index</h1>"));
    let (r, _) = http_raw(server.addr, &get("/../../etc/passwd", "")).await;
    assert_eq!(r.status, 404);
    let (r, _) = http_raw(server.addr, &get("/%2e%2e/%2e%2e/etc/passwd", "")).await;
    assert_eq!(r.status, 404);
    server.shutdown(STEP).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
