//! WebSocket apps with concurrent branches, over real sockets: whole
//! frames from concurrent senders, disconnects cancelling the app, graceful
//! shutdown, and outbound flow control.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    eventually, next_close, within, RawWs, TestServer, FIN, OP_BINARY, OP_CLOSE, OP_TEXT, STEP,
};
use futures_util::{SinkExt, StreamExt};
use pagi::{BoxError, Message, ReceiveEvent, Receiver, Scope, SendEvent, Sender, Transport};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn expect_connect(receive: &mut Receiver) {
    assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
}

// ---------------------------------------------------------------------------
// Two branches sending large messages at once
// ---------------------------------------------------------------------------

const BIG: usize = 1024 * 1024;
const BIG_COUNT: u32 = 12;
const MID: usize = 300 * 1024;
const MID_COUNT: u32 = 40;

/// A message whose every byte depends on its branch, sequence number and
/// position, so any mix-up or truncation shows.
fn payload(tag: u8, seq: u32, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = tag;
    p[1..5].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(5) {
        *b = (i as u32)
            .wrapping_mul(31)
            .wrapping_add(seq * 7 + tag as u32) as u8;
    }
    p
}

async fn two_senders_app(
    scope: Scope,
    mut receive: Receiver,
    send: Sender,
) -> Result<(), BoxError> {
    let Scope::WebSocket(_) = scope else {
        return Err(pagi::unsupported_scope(&scope));
    };
    expect_connect(&mut receive).await;
    send.send(SendEvent::accept()).await?;
    let branch = |tag: u8, len: usize, count: u32| {
        let send = send.clone();
        async move {
            for seq in 0..count {
                send.send(SendEvent::binary(payload(tag, seq, len))).await?;
            }
            Ok::<(), BoxError>(())
        }
    };
    // Two tasks, so on a multi-thread runtime the sends really race.
    let a = tokio::spawn(branch(b'A', BIG, BIG_COUNT));
    let b = tokio::spawn(branch(b'B', MID, MID_COUNT));
    a.await??;
    b.await??;
    send.send(SendEvent::close(1000, "done")).await?;
    // Wait for the client's Close.
    while !receive.recv().await.is_disconnect() {}
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_sends_arrive_as_whole_uninterleaved_frames() {
    let server = TestServer::start(pagi::app_fn(two_senders_app)).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    let (close, frames) =
        within(Duration::from_secs(30), "all frames", ws.read_until_close()).await;
    assert_eq!(close.close_parts(), (Some(1000), b"done".to_vec()));

    let mut next = [0u32; 2];
    let mut order = Vec::new();
    for f in &frames {
        assert!(f.fin && f.rsv == 0 && !f.masked, "fragmented or odd frame");
        assert_eq!(f.opcode, OP_BINARY);
        let tag = f.payload[0];
        let (i, len) = match tag {
            b'A' => (0, BIG),
            b'B' => (1, MID),
            t => panic!("frame with unknown tag {t:#x} (interleaved?)"),
        };
        let seq = u32::from_be_bytes(f.payload[1..5].try_into().unwrap());
        assert_eq!(seq, next[i], "branch {} out of order", tag as char);
        next[i] += 1;
        assert_eq!(
            f.payload.len(),
            len,
            "branch {} #{seq} has the wrong length",
            tag as char
        );
        assert!(
            f.payload == payload(tag, seq, len),
            "branch {} #{seq} corrupted",
            tag as char
        );
        order.push(tag);
    }
    assert_eq!(next, [BIG_COUNT, MID_COUNT], "missing messages");
    // The branches really ran at the same time: their messages alternate.
    let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches >= 4, "branches did not overlap: {order:?}");

    ws.send_close(Some(1000), b"").await;
    assert!(
        ws.closed_within(STEP).await,
        "server kept the TCP connection open"
    );
    drop(ws);
    assert!(server.idle_within(STEP).await, "connection still live");
    server.shutdown(STEP).await;
}

// ---------------------------------------------------------------------------
// Disconnect cancels the app
// ---------------------------------------------------------------------------

/// Counts its own drop: proves the outgoing branch was cancelled.
struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
struct Probe {
    /// Outgoing branches dropped.
    dropped: Arc<AtomicUsize>,
    /// Apps returned.
    finished: Arc<AtomicUsize>,
    /// Every `websocket.disconnect` the app saw.
    disconnects: Arc<Mutex<Vec<(u16, String)>>>,
}

impl Probe {
    fn disconnects(&self) -> Vec<(u16, String)> {
        self.disconnects.lock().unwrap().clone()
    }
}

/// The seed app's shape: an echo branch and a ticking branch joined by
/// select!, instrumented.
fn ticking_app(probe: Probe, tick: Duration) -> pagi::SharedApp {
    pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let probe = probe.clone();
        async move {
            let Scope::WebSocket(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            expect_connect(&mut receive).await;
            send.send(SendEvent::accept()).await?;
            let incoming = async {
                loop {
                    match receive.recv().await {
                        ReceiveEvent::WebSocketReceive(Message::Text(t)) => {
                            send.send(SendEvent::text(t.to_uppercase())).await?;
                        }
                        ReceiveEvent::WebSocketDisconnect { code, reason } => {
                            probe.disconnects.lock().unwrap().push((code, reason));
                            return Ok::<(), BoxError>(());
                        }
                        _ => {}
                    }
                }
            };
            let outgoing = async {
                let _guard = DropGuard(probe.dropped.clone());
                for n in 1u64.. {
                    tokio::time::sleep(tick).await;
                    send.send(SendEvent::text(format!("tick {n}"))).await?;
                }
                Ok::<(), BoxError>(())
            };
            let r = tokio::select! {
                r = incoming => r,
                r = outgoing => r,
            };
            probe.finished.fetch_add(1, Ordering::SeqCst);
            r
        }
    })
}

async fn assert_app_ended(server: &TestServer, probe: &Probe) {
    let p = probe.clone();
    assert!(
        eventually(STEP, move || p.dropped.load(Ordering::SeqCst) == 1).await,
        "outgoing branch not cancelled"
    );
    assert_eq!(
        probe.finished.load(Ordering::SeqCst),
        1,
        "app did not return"
    );
    assert!(
        server.idle_within(Duration::from_secs(3)).await,
        "live_connections stuck at {}",
        server.handle.live_connections()
    );
}

#[tokio::test]
async fn clean_client_close_cancels_outgoing_branch_with_peer_code_and_reason() {
    let probe = Probe::default();
    let server = TestServer::start(ticking_app(probe.clone(), Duration::from_millis(50))).await;
    let (mut ws, _) = within(
        STEP,
        "connect",
        tokio_tungstenite::connect_async(server.ws_url("/")),
    )
    .await
    .unwrap();
    // The outgoing branch runs.
    let first = within(STEP, "tick", ws.next()).await.unwrap().unwrap();
    assert_eq!(first, WsMessage::text("tick 1"));
    assert_eq!(server.handle.live_connections(), 1);
    assert_eq!(probe.dropped.load(Ordering::SeqCst), 0);

    ws.close(Some(CloseFrame {
        code: CloseCode::Library(4001),
        reason: "bye now".into(),
    }))
    .await
    .unwrap();
    // Ticks may still be in flight; then the server's echo of our code.
    let echoed = next_close(&mut ws, "close echo").await;
    assert_eq!(echoed.map(|f| u16::from(f.code)), Some(4001));
    within(STEP, "eof", async { while ws.next().await.is_some() {} }).await;
    drop(ws);

    assert_app_ended(&server, &probe).await;
    assert_eq!(probe.disconnects(), [(4001, "bye now".to_owned())]);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn abrupt_tcp_drop_cancels_outgoing_branch_with_1006_client_closed() {
    let probe = Probe::default();
    // Slow ticks so nothing is unread when we drop (a clean FIN, not a RST).
    let server = TestServer::start(ticking_app(probe.clone(), Duration::from_millis(400))).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    let f = ws.read_frame().await.expect("a tick");
    assert_eq!((f.opcode, f.payload.as_slice()), (OP_TEXT, &b"tick 1"[..]));
    assert_eq!(probe.dropped.load(Ordering::SeqCst), 0);
    drop(ws);

    assert_app_ended(&server, &probe).await;
    assert_eq!(probe.disconnects(), [(1006, "client_closed".to_owned())]);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn tcp_reset_cancels_outgoing_branch_with_1006() {
    let probe = Probe::default();
    let server = TestServer::start(ticking_app(probe.clone(), Duration::from_millis(20))).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    ws.read_frame().await.expect("a tick");
    ws.stream.set_zero_linger().unwrap();
    drop(ws); // RST

    assert_app_ended(&server, &probe).await;
    let seen = probe.disconnects();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, 1006, "{seen:?}");
    assert!(
        ["client_closed", "read_error", "write_error"].contains(&seen[0].1.as_str()),
        "{seen:?}"
    );
    server.shutdown(STEP).await;
}

// ---------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_sends_close_1001_and_app_sees_disconnect() {
    let probe = Probe::default();
    let server = TestServer::start(ticking_app(probe.clone(), Duration::from_millis(100))).await;
    let (mut ws, _) = within(
        STEP,
        "connect",
        tokio_tungstenite::connect_async(server.ws_url("/")),
    )
    .await
    .unwrap();
    within(STEP, "tick", ws.next()).await.unwrap().unwrap();

    let handle = server.handle.clone();
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(server.shutdown(STEP));
    handle.shutdown();
    let close = next_close(&mut ws, "close 1001").await;
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    within(STEP, "eof", async { while ws.next().await.is_some() {} }).await;
    drop(ws);

    within(STEP, "server stop", stopping).await.unwrap();
    // Well inside the 5 s shutdown timeout: nothing was force-closed.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(probe.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(probe.finished.load(Ordering::SeqCst), 1);
    let seen = probe.disconnects();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].1, "server_shutdown", "{seen:?}");
    assert!([1001, 1006].contains(&seen[0].0), "{seen:?}");
    assert_eq!(handle.live_connections(), 0);
}

// ---------------------------------------------------------------------------
// Flow control
// ---------------------------------------------------------------------------

const CHUNK: usize = 16 * 1024;

#[derive(Clone, Default)]
struct Flood {
    sent: Arc<AtomicUsize>,
    max_buffered: Arc<AtomicUsize>,
    transport: Arc<Mutex<Option<Transport>>>,
}

/// `/flood` sends 16 KiB messages as fast as `send` lets it; any other
/// path echoes.
fn flood_app(flood: Flood) -> pagi::SharedApp {
    pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let flood = flood.clone();
        async move {
            let Scope::WebSocket(ws) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            expect_connect(&mut receive).await;
            send.send(SendEvent::accept()).await?;
            if ws.path != "/flood" {
                while let ReceiveEvent::WebSocketReceive(m) = receive.recv().await {
                    send.send(m).await?;
                }
                return Ok(());
            }
            let transport = ws.transport.clone().expect("pagi.transport");
            *flood.transport.lock().unwrap() = Some(transport.clone());
            let outgoing = async {
                let chunk = bytes::Bytes::from(vec![b'x'; CHUNK]);
                loop {
                    send.send(SendEvent::binary(chunk.clone())).await?;
                    flood.sent.fetch_add(1, Ordering::SeqCst);
                    flood
                        .max_buffered
                        .fetch_max(transport.buffered_amount(), Ordering::SeqCst);
                    // After a disconnect sends are no-ops: let `incoming` run.
                    tokio::task::yield_now().await;
                }
                #[allow(unreachable_code)]
                Ok::<(), BoxError>(())
            };
            let incoming = async { while !receive.recv().await.is_disconnect() {} };
            tokio::select! {
                r = outgoing => r,
                () = incoming => Ok(()),
            }
        }
    })
}

/// Wait until `sent` holds still for 300 ms; returns its value.
async fn stalled(sent: &AtomicUsize) -> usize {
    within(STEP, "sends to stall", async {
        let mut last = sent.load(Ordering::SeqCst);
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = sent.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            last = now;
        }
    })
    .await
}

#[tokio::test]
async fn slow_reader_blocks_send_near_high_watermark_and_spares_other_connections() {
    let flood = Flood::default();
    let config = common::config();
    let (high, low) = (
        config.ws_write_high_watermark,
        config.ws_write_low_watermark,
    );
    let server = TestServer::start_with(config, flood_app(flood.clone())).await;

    // A client that reads nothing, with a small receive window.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let stream = within(STEP, "connect", socket.connect(server.addr))
        .await
        .unwrap();
    let mut slow = RawWs::handshake(stream, "/flood", "").await;

    let stuck_at = stalled(&flood.sent).await;
    let transport = flood.transport.lock().unwrap().clone().unwrap();
    let buffered = transport.buffered_amount();
    let max = flood.max_buffered.load(Ordering::SeqCst);
    // The app is parked in `send`; the server holds about one watermark.
    assert!(
        max <= high + CHUNK + 64,
        "buffered up to {max} (high {high})"
    );
    assert!(
        buffered >= low,
        "send is waiting with only {buffered} buffered"
    );
    // What left the server fits in the socket buffers: nothing unbounded.
    assert!(
        stuck_at * CHUNK < 16 * 1024 * 1024,
        "{stuck_at} messages accepted by a client that reads nothing"
    );

    // Another connection is unaffected.
    let (mut other, _) = within(
        STEP,
        "connect",
        tokio_tungstenite::connect_async(server.ws_url("/echo")),
    )
    .await
    .unwrap();
    for i in 0..5 {
        let t0 = std::time::Instant::now();
        other.send(WsMessage::text(format!("m{i}"))).await.unwrap();
        let back = within(STEP, "echo", other.next()).await.unwrap().unwrap();
        assert_eq!(back, WsMessage::text(format!("m{i}")));
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "echo took {:?}",
            t0.elapsed()
        );
    }
    assert_eq!(
        flood.sent.load(Ordering::SeqCst),
        stuck_at,
        "flood resumed by itself"
    );

    // Reading resumes the sender: it was blocked, not dead.
    let mut frames = 0;
    while flood.sent.load(Ordering::SeqCst) < stuck_at + 50 {
        let f = slow.read_frame().await.expect("flood frame");
        assert_eq!((f.opcode, f.payload.len()), (OP_BINARY, CHUNK));
        frames += 1;
        assert!(frames < 100_000, "sender never resumed");
    }

    other.close(None).await.unwrap();
    within(STEP, "eof", async { while other.next().await.is_some() {} }).await;
    drop(other);
    slow.send(FIN | OP_CLOSE, &1000u16.to_be_bytes()).await;
    drop(slow);
    assert!(server.idle_within(STEP).await, "connections still live");
    server.shutdown(STEP).await;
}

// Regression: the app's send and the socket driver published the buffered
// byte count to `pagi.transport` after releasing the session lock, so under
// CPU contention a stale count (one whole message) could land after the
// driver had drained the buffer and published zero: backpressure stayed
// engaged over an empty buffer and every sender waited forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_senders_never_stall_on_a_drained_buffer() {
    let server = TestServer::start(pagi::app_fn(two_senders_app)).await;
    // The client reads on the test's own thread, next to the two workers.
    for _ in 0..8 {
        let mut ws = RawWs::connect(server.addr, "/").await;
        let (close, frames) = within(
            Duration::from_secs(20),
            "every message",
            ws.read_until_close(),
        )
        .await;
        assert_eq!(close.close_parts().0, Some(1000));
        assert_eq!(frames.len(), (BIG_COUNT + MID_COUNT) as usize);
        ws.send_close(Some(1000), b"").await;
    }
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}
