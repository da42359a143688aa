//! The seed app (18-bidirectional-websocket) over real sockets with an
//! independent client (tokio-tungstenite): tick timing, echo while ticking,
//! and per-connection counters under 100 concurrent clients.

mod common;

use std::time::{Duration, Instant};

use common::{within, TestServer, STEP};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

async fn seed_server() -> TestServer {
    TestServer::start(pagi::app_fn(pagi_examples::bidirectional_websocket::app)).await
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message (pings and pongs skipped), bounded by `limit`.
async fn next_text(ws: &mut Client, limit: Duration) -> String {
    within(limit, "next text message", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn first_tick_after_one_second_then_every_second_and_echo_while_ticking() {
    let server = seed_server().await;
    let (mut ws, resp) = within(
        STEP,
        "connect",
        tokio_tungstenite::connect_async(server.ws_url("/")),
    )
    .await
    .expect("handshake");
    let accepted = Instant::now();
    assert_eq!(resp.status(), 101);

    assert_eq!(next_text(&mut ws, STEP).await, "server tick #1");
    let first = accepted.elapsed();
    assert!(
        (Duration::from_millis(800)..=Duration::from_millis(1500)).contains(&first),
        "first tick after {first:?}, expected about 1 s"
    );

    // Echo in between ticks: the reply comes at once, not with the next tick.
    let sent_at = Instant::now();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_text(&mut ws, STEP).await, "you said: HELLO");
    assert!(
        sent_at.elapsed() < Duration::from_millis(500),
        "echo took {:?}",
        sent_at.elapsed()
    );

    // Ticks keep coming, once a second.
    let mut last = first;
    for n in 2..=3 {
        assert_eq!(next_text(&mut ws, STEP).await, format!("server tick #{n}"));
        let at = accepted.elapsed();
        let gap = at - last;
        assert!(
            (Duration::from_millis(800)..=Duration::from_millis(1500)).contains(&gap),
            "tick #{n} came {gap:?} after the previous one"
        );
        last = at;
    }
    ws.send(Message::text("héllo again")).await.unwrap();
    assert_eq!(next_text(&mut ws, STEP).await, "you said: HÉLLO AGAIN");

    ws.close(None).await.unwrap();
    within(STEP, "close", async { while ws.next().await.is_some() {} }).await;
    drop(ws);
    assert!(server.idle_within(STEP).await, "connection still live");
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn hundred_clients_each_get_their_own_tick_counter() {
    let server = seed_server().await;
    let url = server.ws_url("/");
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let (mut ws, _) = within(STEP, "connect", tokio_tungstenite::connect_async(url))
                    .await
                    .unwrap_or_else(|e| panic!("client {i}: handshake failed: {e}"));
                let a = next_text(&mut ws, STEP).await;
                let b = next_text(&mut ws, STEP).await;
                ws.close(None).await.unwrap();
                // Drain until the server's Close (or EOF).
                within(STEP, "close", async { while ws.next().await.is_some() {} }).await;
                (a, b)
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let (a, b) = within(Duration::from_secs(20), "client", c).await.unwrap();
        assert_eq!(
            (a.as_str(), b.as_str()),
            ("server tick #1", "server tick #2"),
            "client {i}"
        );
    }
    assert!(server.idle_within(STEP).await, "connections still live");
    server.shutdown(STEP).await;
}
