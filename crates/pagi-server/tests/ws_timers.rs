//! Keepalive pings, the idle timeout, and the inbound queue policies.

mod common;

use std::time::{Duration, Instant};

use common::{within, RawWs, TestServer, FIN, OP_PING, OP_PONG, OP_TEXT, STEP};
use pagi::{BoxError, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use pagi_server::{Config, QueuePolicy};
use tokio::sync::{mpsc, oneshot};

/// An app that accepts, optionally enables keepalive, then waits (without
/// reading) until `go` fires, then reports everything it receives.
fn reporting_app(
    keepalive: Option<(Duration, Option<Duration>)>,
    go: Option<oneshot::Receiver<()>>,
) -> (pagi::SharedApp, mpsc::UnboundedReceiver<ReceiveEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let go = std::sync::Mutex::new(go);
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        let go = go.lock().unwrap().take();
        async move {
            let Scope::WebSocket(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
            send.send(SendEvent::accept()).await?;
            if let Some((interval, timeout)) = keepalive {
                send.send(SendEvent::WebSocketKeepalive { interval, timeout })
                    .await?;
            }
            if let Some(go) = go {
                let _ = go.await;
            }
            loop {
                let ev = receive.recv().await;
                let done = ev.is_disconnect();
                let _ = tx.send(ev);
                if done {
                    return Ok::<(), BoxError>(());
                }
            }
        }
    });
    (app, rx)
}

async fn next_disconnect(rx: &mut mpsc::UnboundedReceiver<ReceiveEvent>) -> (u16, String) {
    loop {
        match within(STEP, "app event", rx.recv()).await {
            Some(ReceiveEvent::WebSocketDisconnect { code, reason }) => return (code, reason),
            Some(_) => {}
            None => panic!("app ended without a disconnect"),
        }
    }
}

/// The app got the text messages `m0`..`m{n-1}`, in order.
async fn expect_in_order(rx: &mut mpsc::UnboundedReceiver<ReceiveEvent>, n: u32) {
    for i in 0..n {
        let got = within(STEP, "message", rx.recv()).await.unwrap();
        assert_eq!(
            got,
            ReceiveEvent::WebSocketReceive(pagi::Message::Text(format!("m{i}").into())),
            "message {i}"
        );
    }
}

#[tokio::test]
async fn keepalive_pings_and_a_missing_pong_ends_with_keepalive_timeout() {
    let ka = Some((Duration::from_millis(100), Some(Duration::from_millis(200))));
    let (app, mut events) = reporting_app(ka, None);
    let server = TestServer::start_with(common::config(), app).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    // The server pings on its own; we never answer.
    let ping = ws.read_frame().await.expect("a ping");
    assert_eq!(ping.opcode, OP_PING);
    assert!(ws.closed_within(Duration::from_secs(3)).await, "not closed");
    assert_eq!(
        next_disconnect(&mut events).await,
        (1006, "keepalive_timeout".into())
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn keepalive_answered_with_pongs_keeps_the_session() {
    let ka = Some((Duration::from_millis(100), Some(Duration::from_millis(250))));
    let (app, mut events) = reporting_app(ka, None);
    let server = TestServer::start_with(common::config(), app).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(900) {
        let f = ws.read_frame().await.expect("still open");
        if f.opcode == OP_PING {
            pings += 1;
            ws.send(FIN | OP_PONG, &f.payload).await;
        }
    }
    assert!(
        pings >= 5,
        "only {pings} pings in 0.9 s at a 100 ms interval"
    );
    ws.send(FIN | OP_TEXT, b"still here").await;
    let got = within(STEP, "message", events.recv()).await.unwrap();
    assert_eq!(
        got,
        ReceiveEvent::WebSocketReceive(pagi::Message::Text("still here".into()))
    );
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn idle_timeout_closes_a_silent_session() {
    let (app, mut events) = reporting_app(None, None);
    let config = Config {
        ws_idle_timeout: Some(Duration::from_millis(300)),
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    let t0 = Instant::now();
    assert!(ws.closed_within(Duration::from_secs(3)).await, "not closed");
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
    assert_eq!(
        next_disconnect(&mut events).await,
        (1006, "idle_timeout".into())
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn full_queue_with_backpressure_loses_nothing() {
    let (go_tx, go_rx) = oneshot::channel();
    let (app, mut events) = reporting_app(None, Some(go_rx));
    let config = Config {
        ws_max_receive_queue: 4,
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    // Far more than the queue holds, while the app is not reading.
    for i in 0..500u32 {
        ws.send(FIN | OP_TEXT, format!("m{i}").as_bytes()).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    go_tx.send(()).unwrap();
    expect_in_order(&mut events, 500).await;
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn full_queue_with_close_policy_closes_1008_queue_overflow() {
    let (go_tx, go_rx) = oneshot::channel();
    let (app, mut events) = reporting_app(None, Some(go_rx));
    let config = Config {
        ws_max_receive_queue: 2,
        ws_queue_policy: QueuePolicy::Close,
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    for i in 0..5u32 {
        ws.send(FIN | OP_TEXT, format!("m{i}").as_bytes()).await;
    }
    let (close, _) = ws.read_until_close().await;
    assert_eq!(close.close_parts().0, Some(1008));
    go_tx.send(()).unwrap();
    assert_eq!(
        next_disconnect(&mut events).await,
        (1008, "queue_overflow".into())
    );
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn a_client_whose_messages_wait_for_a_slow_app_is_not_closed_for_missing_pongs() {
    // Keepalive 300 ms / 300 ms; the app does not read for 2 s while the
    // queue is full, so the server reads nothing (pongs included).
    let (go_tx, go_rx) = oneshot::channel();
    let (app, mut events) = reporting_app(
        Some((Duration::from_millis(300), Some(Duration::from_millis(300)))),
        Some(go_rx),
    );
    let config = Config {
        ws_max_receive_queue: 2,
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    for i in 0..20u32 {
        ws.send(FIN | OP_TEXT, format!("m{i}").as_bytes()).await;
    }
    // A live client: it keeps sending (unsolicited) pongs, which wait
    // unread behind its messages.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        ws.send(FIN | OP_PONG, b"").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    go_tx.send(()).unwrap();
    expect_in_order(&mut events, 20).await;
    drop(ws);
    server.shutdown(STEP).await;
}
