//! Hostile clients: a few bytes from a client must never cost the server
//! megabytes, and slow or silent clients must not hold slots forever. One
//! test per attack, asserting on the server's own counters
//! (`ServerHandle::buffered_bytes`, `pagi.transport`) rather than on RSS.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    eventually, http_raw, within, RawWs, TestServer, FIN, OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT,
    STEP,
};
use flate2::{Compress, Compression, FlushCompress};
use pagi::{BoxError, ReceiveEvent, Receiver, Scope, SendEvent, Sender, Transport};
use pagi_server::Config;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};

/// What the WebSocket test app saw and holds.
#[derive(Clone, Default)]
struct Seen {
    /// Set on `/hold`: the app waits for it before it reads anything.
    go: Arc<Notify>,
    received: Arc<AtomicUsize>,
    transport: Arc<Mutex<Option<Transport>>>,
    disconnects: Arc<Mutex<Vec<(u16, String)>>>,
}

/// `/hold` accepts and does not read until `go` is notified, then counts
/// messages; any other path echoes. Both record the disconnect.
fn ws_app(seen: Seen) -> pagi::SharedApp {
    pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let seen = seen.clone();
        async move {
            let Scope::WebSocket(ws) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
            send.send(SendEvent::accept()).await?;
            *seen.transport.lock().unwrap() = ws.transport.clone();
            if ws.path == "/hold" {
                seen.go.notified().await;
            }
            loop {
                match receive.recv().await {
                    ReceiveEvent::WebSocketReceive(m) => {
                        seen.received.fetch_add(1, Ordering::SeqCst);
                        if ws.path != "/hold" {
                            send.send(m).await?;
                        }
                    }
                    ReceiveEvent::WebSocketDisconnect { code, reason } => {
                        seen.disconnects.lock().unwrap().push((code, reason));
                        return Ok::<(), BoxError>(());
                    }
                    _ => {}
                }
            }
        }
    })
}

/// An app-side view of the last disconnect, waited for.
async fn disconnect_of(seen: &Seen) -> (u16, String) {
    let d = seen.disconnects.clone();
    assert!(
        eventually(STEP, move || !d.lock().unwrap().is_empty()).await,
        "the app saw no disconnect"
    );
    seen.disconnects.lock().unwrap()[0].clone()
}

/// A client frame header announcing `len` payload bytes (masked, key zero),
/// without the payload.
fn header_only(b0: u8, len: u64) -> Vec<u8> {
    let mut v = vec![b0, 0x80 | 127];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v
}

#[tokio::test]
async fn a_frame_announcing_16_mib_holds_only_the_bytes_that_arrived() {
    let seen = Seen::default();
    let server = TestServer::start(ws_app(seen.clone())).await;
    let mut clients = Vec::new();
    for _ in 0..50 {
        let mut ws = RawWs::connect(server.addr, "/").await;
        let mut bytes = header_only(FIN | OP_BINARY, 16 << 20);
        bytes.push(b'x');
        ws.write(&bytes).await;
        clients.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One byte each arrived; the buffers holding it are allowed to be a
    // little larger, never the announced 16 MiB (nor a 1 MiB reservation).
    let held = server.handle.buffered_bytes();
    assert!(
        held <= 50 * 1024,
        "{held} bytes held for 50 one-byte frames"
    );
    drop(clients);
    assert!(server.idle_within(STEP).await);
    assert_eq!(server.handle.buffered_bytes(), 0);
    server.shutdown(STEP).await;
}

/// Raw-deflate `data` as a client with context takeover would, minus the
/// `00 00 ff ff` tail.
fn deflate(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let before = c.total_in() as usize;
        c.compress_vec(
            &data[before.min(data.len())..],
            &mut out,
            FlushCompress::Sync,
        )
        .unwrap();
        if c.total_in() as usize >= data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

const DEFLATE_OFFER: &str =
    "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n";

async fn deflate_client(server: &TestServer, path: &str) -> RawWs {
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let ws = RawWs::handshake(stream, path, DEFLATE_OFFER).await;
    assert!(
        ws.response
            .header("sec-websocket-extensions")
            .is_some_and(|e| e.contains("permessage-deflate")),
        "{:?}",
        ws.response
    );
    ws
}

#[tokio::test]
async fn compressed_messages_for_an_app_that_does_not_read_stay_within_the_receive_budget() {
    let seen = Seen::default();
    let config = Config {
        ws_max_message_size: 1 << 20,
        ws_max_receive_bytes: 2 << 20,
        // This test is about the byte budget, not the ratio limit.
        ws_max_inflate_ratio: 0,
        ..common::config()
    };
    let server = TestServer::start_with(config, ws_app(seen.clone())).await;
    let mut ws = deflate_client(&server, "/hold").await;
    // 40 messages that each inflate to 1 MiB, about 1 KiB each on the wire.
    let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
    let bomb = deflate(&mut c, &vec![b'a'; 1 << 20]);
    assert!(bomb.len() < 4096, "{}", bomb.len());
    for _ in 0..40 {
        c.reset();
        ws.send(FIN | 0x40 | OP_BINARY, &bomb).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = server.handle.buffered_bytes();
    // The budget, plus at most the growth of the message being received.
    assert!(held <= (2 << 20) + (2 << 20), "{held} bytes held");
    assert!(
        held >= 1 << 20,
        "{held}: the app's queue should hold something"
    );
    // Nothing is lost: once the app reads, every message arrives.
    seen.go.notify_one();
    let r = seen.received.clone();
    assert!(eventually(STEP, move || r.load(Ordering::SeqCst) == 40).await);
    assert!(eventually(STEP, || server.handle.buffered_bytes() == 0).await);
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn a_deflate_bomb_is_refused_with_1009_after_little_work() {
    let seen = Seen::default();
    let server = TestServer::start(ws_app(seen.clone())).await;
    let mut ws = deflate_client(&server, "/hold").await;
    // 16 MiB of zeros: about 16 KiB on the wire, a ratio of about 1000.
    let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
    let bomb = deflate(&mut c, &vec![0u8; 16 << 20]);
    assert!(bomb.len() < 20_000, "{}", bomb.len());
    ws.send(FIN | 0x40 | OP_BINARY, &bomb).await;
    let (close, _) = ws.read_until_close().await;
    assert_eq!(close.close_parts().0, Some(1009));
    seen.go.notify_one();
    assert_eq!(disconnect_of(&seen).await, (1009, "body_too_large".into()));
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn many_stuck_connections_stay_within_the_global_budget_and_others_are_served() {
    let seen = Seen::default();
    let config = Config {
        ws_max_message_size: 256 * 1024,
        ws_max_receive_bytes: 1 << 20,
        max_buffered_bytes: 4 << 20,
        ..common::config()
    };
    let server = TestServer::start_with(config, ws_app(seen.clone())).await;
    // Ten connections whose app never reads, each offering 2 MiB.
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..10 {
        let mut ws = RawWs::connect(server.addr, "/hold").await;
        let frames: Vec<u8> = (0..32)
            .flat_map(|_| common::client_frame(FIN | OP_BINARY, &chunk, true))
            .collect();
        // The server stops reading: the write may never finish.
        tokio::spawn(async move {
            let _ = ws.stream.write_all(&frames).await;
            tokio::time::sleep(STEP).await;
            drop(ws);
        });
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Allowed over: what one connection's buffer may grow by at once (the
    // figure counts buffer capacity, which grows by doubling).
    let slack = 10 * 64 * 1024;
    let held = server.handle.buffered_bytes();
    assert!(held <= (4 << 20) + slack, "{held} bytes held, budget 4 MiB");
    assert!(
        held >= 2 << 20,
        "{held}: the stuck apps should hold a good part of it"
    );
    // A well-behaved client still gets its echoes.
    let mut echo = RawWs::connect(server.addr, "/").await;
    for i in 0..20u32 {
        let msg = format!("hello {i}");
        echo.send(FIN | OP_TEXT, msg.as_bytes()).await;
        let f = echo.read_frame().await.expect("an echo");
        assert_eq!(f.payload, msg.as_bytes());
    }
    assert!(server.handle.buffered_bytes() <= (4 << 20) + slack);
    // When the stuck apps start reading, the paused connections resume and
    // every message arrives.
    let received_before = seen.received.load(Ordering::SeqCst);
    seen.go.notify_waiters();
    let r = seen.received.clone();
    assert!(
        eventually(STEP, move || r.load(Ordering::SeqCst)
            == received_before + 10 * 32)
        .await,
        "{} of {} messages arrived",
        seen.received.load(Ordering::SeqCst) - received_before,
        10 * 32
    );
    assert!(eventually(STEP, || server.handle.buffered_bytes() == 0).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn a_ping_flood_from_a_client_that_never_reads_costs_one_pending_pong() {
    let seen = Seen::default();
    let server = TestServer::start(ws_app(seen.clone())).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let mut ws = RawWs::handshake(stream, "/hold", "").await;
    let transport = seen.transport.lock().unwrap().clone().unwrap();
    // Watch the server's output queue while the flood goes on.
    let most = Arc::new(AtomicUsize::new(0));
    let watch = {
        let (t, most) = (transport.clone(), most.clone());
        tokio::spawn(async move {
            loop {
                most.fetch_max(t.buffered_amount(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // 30 MB of pings, three million: every pong kept would be 18 MB, far
    // more than the client's window and the kernel's buffers take.
    let ping = common::client_frame(FIN | OP_PING, b"1234", true);
    let flood: Vec<u8> = ping.repeat(100_000);
    within(STEP, "the flood to be taken", async {
        for _ in 0..30 {
            ws.stream.write_all(&flood).await.unwrap();
        }
    })
    .await;
    // Then close: once the Close echo comes back, every ping was handled.
    ws.send_close(Some(1000), b"").await;
    let (close, pongs) = ws.read_until_close().await;
    watch.abort();
    assert_eq!(close.close_parts().0, Some(1000));
    assert!(pongs
        .iter()
        .all(|f| f.opcode == 0xA && f.payload == b"1234"));
    assert!(
        pongs.len() < 1_000_000,
        "{} pongs for 3M pings",
        pongs.len()
    );
    let most = most.load(Ordering::SeqCst);
    assert!(
        most <= pagi_ws::PONG_BACKLOG + 2 * 127,
        "up to {most} bytes of pongs queued"
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn a_silent_client_is_reaped_by_the_servers_keepalive_without_the_app_asking() {
    let seen = Seen::default();
    let config = Config {
        ws_ping_interval: Some(Duration::from_millis(150)),
        ws_ping_timeout: Some(Duration::from_millis(200)),
        ..common::config()
    };
    let server = TestServer::start_with(config, ws_app(seen.clone())).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    let ping = ws.read_frame().await.expect("a ping");
    assert_eq!(ping.opcode, OP_PING);
    // Never answered: the session ends.
    assert!(ws.closed_within(Duration::from_secs(3)).await, "not closed");
    assert_eq!(
        disconnect_of(&seen).await,
        (1006, "keepalive_timeout".into())
    );
    // A client that answers keeps its session.
    let mut alive = RawWs::connect(server.addr, "/").await;
    let until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < until {
        let f = alive.read_frame().await.expect("still open");
        assert_eq!(f.opcode, OP_PING);
        alive.send(FIN | 0xA, &f.payload).await;
    }
    alive.send(FIN | OP_TEXT, b"still here").await;
    assert_eq!(alive.read_frame().await.unwrap().payload, b"still here");
    alive.send_close(Some(1000), b"").await;
    let (close, _) = alive.read_until_close().await;
    assert_eq!(close.opcode, OP_CLOSE);
    server.shutdown(STEP).await;
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// Reads the whole body, then answers with its length; reports how the
/// request ended.
fn body_app(ends: mpsc::UnboundedSender<Option<String>>) -> pagi::SharedApp {
    pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let ends = ends.clone();
        async move {
            let Scope::Http(http) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            let mut n = 0;
            loop {
                match receive.recv().await {
                    ReceiveEvent::HttpRequest { body, more } => {
                        n += body.len();
                        if http.path == "/slow-app" {
                            // The app's own work between reads.
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        if http.path == "/early" && n > 0 {
                            // Answer before the body is complete.
                            send.send(SendEvent::response_start(200, Vec::<(&str, &str)>::new()))
                                .await?;
                            send.send(SendEvent::response_body("started", true)).await?;
                        }
                        if !more {
                            break;
                        }
                    }
                    _ => {
                        let _ = ends.send(http.connection.disconnect_reason());
                        return Ok::<(), BoxError>(());
                    }
                }
            }
            send.send(SendEvent::response_start(200, Vec::<(&str, &str)>::new()))
                .await?;
            send.send(SendEvent::response_body(Bytes::from(n.to_string()), false))
                .await?;
            let _ = ends.send(None);
            Ok(())
        }
    })
}

#[tokio::test]
async fn a_stalled_request_body_gets_408_within_the_request_timeout() {
    let (tx, mut ends) = mpsc::unbounded_channel();
    let config = Config {
        request_timeout: Some(Duration::from_millis(300)),
        max_connections: 4,
        ..common::config()
    };
    let server = TestServer::start_with(config, body_app(tx)).await;
    // Content-Length 10, three bytes, then nothing.
    let t0 = Instant::now();
    let (resp, mut stream) = http_raw(
        server.addr,
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
    )
    .await;
    assert_eq!(resp.status, 408);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(common::eof_within(&mut stream, STEP).await);
    let why = within(STEP, "app end", ends.recv()).await.unwrap();
    assert_eq!(why.as_deref(), Some("client_timeout"));
    // A body that keeps coming, slowly but within the timeout, is fine.
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    for b in b"12345" {
        tokio::time::sleep(Duration::from_millis(150)).await;
        s.write_all(&[*b]).await.unwrap();
    }
    let resp = common::read_response(&mut s, &mut bytes::BytesMut::new()).await;
    assert_eq!((resp.status, resp.body_text()), (200, "5".to_owned()));
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn the_request_timeout_counts_only_the_apps_wait_not_its_work() {
    let (tx, _ends) = mpsc::unbounded_channel();
    let config = Config {
        request_timeout: Some(Duration::from_millis(300)),
        ..common::config()
    };
    let server = TestServer::start_with(config, body_app(tx)).await;
    // The app works 500 ms on every chunk; the client sends the next one
    // 200 ms after the app starts waiting for it (700 ms after the last).
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /slow-app HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\na")
        .await
        .unwrap();
    for b in b"bc" {
        tokio::time::sleep(Duration::from_millis(700)).await;
        s.write_all(&[*b]).await.unwrap();
    }
    let resp = common::read_response(&mut s, &mut bytes::BytesMut::new()).await;
    assert_eq!((resp.status, resp.body_text()), (200, "3".to_owned()));
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn a_body_stalling_after_the_response_started_closes_the_connection() {
    let (tx, mut ends) = mpsc::unbounded_channel();
    let config = Config {
        request_timeout: Some(Duration::from_millis(300)),
        ..common::config()
    };
    let server = TestServer::start_with(config, body_app(tx)).await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    assert!(common::eof_within(&mut s, Duration::from_secs(3)).await);
    let why = within(STEP, "app end", ends.recv()).await.unwrap();
    assert_eq!(why.as_deref(), Some("client_timeout"));
    server.shutdown(STEP).await;
}

/// Starts an event stream and then sends nothing.
fn silent_sse_app(ends: mpsc::UnboundedSender<ReceiveEvent>) -> pagi::SharedApp {
    pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let ends = ends.clone();
        async move {
            let Scope::Sse(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Default::default(),
            })
            .await?;
            loop {
                let ev = receive.recv().await;
                if ev.is_disconnect() {
                    let _ = ends.send(ev);
                    return Ok::<(), BoxError>(());
                }
            }
        }
    })
}

#[tokio::test]
async fn a_silent_sse_stream_ends_at_the_sse_idle_timeout() {
    let (tx, mut ends) = mpsc::unbounded_channel();
    let config = Config {
        sse_idle_timeout: Some(Duration::from_millis(300)),
        ..common::config()
    };
    let server = TestServer::start_with(config, silent_sse_app(tx)).await;
    let t0 = Instant::now();
    let (resp, _stream) = http_raw(
        server.addr,
        b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await;
    // The stream ended cleanly (the reader saw the chunked terminator).
    assert_eq!(resp.status, 200);
    assert!(resp.chunked && resp.body.is_empty(), "{resp:?}");
    assert!(t0.elapsed() >= Duration::from_millis(250));
    let ev = within(STEP, "app end", ends.recv()).await.unwrap();
    assert_eq!(
        ev,
        ReceiveEvent::SseDisconnect {
            reason: "idle_timeout".into()
        }
    );
    server.shutdown(STEP).await;
}
