//! The server as a library: spawnability, the connection limit, and
//! graceful shutdown of idle HTTP connections.

mod common;

use std::time::Duration;

use common::{eof_within, http_raw, within, RawWs, TestServer, STEP};
use pagi::{BoxError, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use pagi_server::{Config, Server};
use tokio::io::AsyncWriteExt;

fn assert_send<T: Send>(_: &T) {}

// Regression: `run_until` kept tokio's watch `Ref` (not `Send`) in its
// select! output across an await, so `tokio::spawn(server.run())` did not
// compile and the server could only be driven with `block_on`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_run_future_is_send_and_runs_on_a_spawned_task() {
    let config = common::config();
    let server = Server::bind(config, pagi::app_fn(pagi_examples::hello_http::app))
        .await
        .unwrap();
    let handle = server.handle();
    let run = server.run_until(std::future::pending());
    assert_send(&run);
    let task = tokio::spawn(run);
    let (resp, _) = http_raw(
        handle.local_addr().unwrap(),
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200);
    handle.shutdown();
    within(STEP, "run to finish", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let app = pagi::app_fn(
        |scope: Scope, mut receive: Receiver, send: Sender| async move {
            let Scope::WebSocket(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
            send.send(SendEvent::accept()).await?;
            while !receive.recv().await.is_disconnect() {}
            Ok::<(), BoxError>(())
        },
    );
    let config = Config {
        max_connections: 1,
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    let ws = RawWs::connect(server.addr, "/").await;
    let (resp, _) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("retry-after"), Some("5"));
    drop(ws);
    assert!(server.idle_within(STEP).await);
    // Room again.
    let ws = RawWs::connect(server.addr, "/").await;
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_promptly() {
    let server = TestServer::start(pagi::app_fn(pagi_examples::hello_http::app)).await;
    let (resp, mut idle) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(resp.status, 200);
    assert_eq!(server.handle.live_connections(), 1);
    let handle = server.handle.clone();
    let started = std::time::Instant::now();
    server.shutdown(STEP).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown waited {:?} for an idle connection",
        started.elapsed()
    );
    assert!(eof_within(&mut idle, Duration::from_secs(1)).await);
    assert_eq!(handle.live_connections(), 0);
    // No longer accepting.
    let refused = tokio::net::TcpStream::connect(handle.local_addr().unwrap()).await;
    if let Ok(mut s) = refused {
        // Raced the listener close: at least nothing answers.
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert!(eof_within(&mut s, Duration::from_secs(2)).await);
    }
}

// The per-connection watchdog (which replaced hyper's timer per request):
// a connection that sends no request for a whole period is closed, and one
// that keeps sending requests is not.
#[tokio::test]
async fn idle_connection_is_closed_by_the_watchdog_but_a_busy_one_is_not() {
    let config = Config {
        header_read_timeout: Some(Duration::from_millis(300)),
        ..common::config()
    };
    let server = TestServer::start_with(config, pagi::app_fn(pagi_examples::hello_http::app)).await;
    // Idle after one request: closed within two periods (plus slack).
    let (resp, mut idle) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(resp.status, 200);
    // Busy: a request every 100 ms for ~1 s keeps it open.
    let (_, mut busy) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let mut buf = bytes::BytesMut::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        busy.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let resp = common::read_response(&mut busy, &mut buf).await;
        assert_eq!(resp.status, 200);
    }
    assert!(
        eof_within(&mut idle, Duration::from_millis(300)).await,
        "idle connection still open"
    );
    // A silent client that never completes its request head is cut too.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    assert!(
        eof_within(&mut slow, Duration::from_millis(1200)).await,
        "slow head kept open"
    );
    server.shutdown(STEP).await;
}
