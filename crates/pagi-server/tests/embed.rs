//! PAGI WebSocket apps inside axum (`pagi_server::embed::WebSocketHost`
//! as a service of an axum `Router` on `axum::serve`), with
//! tokio-tungstenite as the client: the seed's session, refusals, the
//! host's shutdown.

mod common;

use std::time::Duration;

use axum::routing::get;
use common::{within, STEP};
use futures_util::{SinkExt, StreamExt};
use pagi::{BoxError, Receiver, Scope, Sender};
use pagi_examples as ex;
use pagi_server::embed::WebSocketHost;
use pagi_server::Config;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

async fn axum_with(host: WebSocketHost) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let router = axum::Router::new()
        .route("/", get(|| async { "axum here" }))
        .route_service("/seed", host.clone())
        .route_service("/refuse", host);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (addr, task)
}

/// The seed on `/seed`; `/refuse` closes before accepting.
fn app() -> pagi::SharedApp {
    pagi::app_fn(
        |scope: Scope, mut receive: Receiver, send: Sender| async move {
            if scope.path() == "/refuse" {
                let _connect = receive.recv().await;
                send.send(pagi::SendEvent::close(1000, "")).await?;
                return Ok::<(), BoxError>(());
            }
            ex::bidirectional_websocket::app(scope, receive, send).await
        },
    )
}

#[tokio::test]
async fn the_seed_runs_inside_axum_and_the_host_shuts_sessions_down() {
    let host = WebSocketHost::new(Config::default(), app()).unwrap();
    let (addr, server) = axum_with(host.clone()).await;

    let (mut ws, response) = within(
        STEP,
        "handshake",
        tokio_tungstenite::connect_async(format!("ws://{addr}/seed")),
    )
    .await
    .expect("accepted");
    assert_eq!(response.status(), 101);
    // Negotiated by pagi-server's session, not axum's.
    ws.send(Message::text("hello")).await.unwrap();
    let reply = within(STEP, "echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "you said: HELLO");
    let tick = within(STEP, "tick", ws.next()).await.unwrap().unwrap();
    assert_eq!(tick.into_text().unwrap().as_str(), "server tick #1");
    assert_eq!(host.sessions(), 1);

    // The rest of the router is axum's.
    let (status, body) = plain_get(addr, "/").await;
    assert_eq!((status, body.as_str()), (200, "axum here"));
    let (status, _) = plain_get(addr, "/seed").await;
    assert_eq!(status, 400, "not a handshake");

    // A refusal before accept is a 403 the client sees.
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/refuse")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("expected a 403, got {other:?}"),
    }

    // A refusal on a connection the client keeps open does not keep its
    // session alive (hyper holds a refused upgrade until the connection
    // ends; the session must not wait for it).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"GET /refuse HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = [0u8; 12];
        within(STEP, "the refusal", s.read_exact(&mut head))
            .await
            .unwrap();
        assert_eq!(&head, b"HTTP/1.1 403");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while host.sessions() > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(host.sessions(), 1, "only the seed's session runs");
        drop(s);
    }

    host.shutdown();
    let (status, _) = plain_get_upgrade(addr, "/seed").await;
    assert_eq!(status, 503, "no new sessions while shutting down");
    loop {
        match within(STEP, "the host's close", ws.next()).await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Away);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected Close 1001, got {other:?}"),
        }
    }
    drop(ws);
    within(STEP, "every session ended", host.drained()).await;
    assert_eq!(host.sessions(), 0);
    server.abort();
}

async fn plain_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    within(STEP, "response", s.read_to_end(&mut raw))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

async fn plain_get_upgrade(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    within(STEP, "an answer", s.read_exact(&mut head))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&head).into_owned();
    (text[9..12].parse().unwrap(), text)
}
