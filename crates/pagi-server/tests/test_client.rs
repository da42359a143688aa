//! Examples driven by the in-process test client (`pagi_server::testing`):
//! HTTP, SSE, WebSocket and lifespan through the server's own connection
//! code, with no sockets. (These were socket tests in `examples.rs`.)

use std::time::{Duration, Instant};

use bytes::Bytes;
use pagi::Message;
use pagi_examples as ex;
use pagi_server::testing::{SseEvent, TestClient, WsFrame};
use pagi_server::{Config, LifespanMode};

fn lifespan(mode: LifespanMode) -> Config {
    Config {
        lifespan: mode,
        shutdown_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

async fn client(app: pagi::SharedApp) -> TestClient {
    TestClient::start_with(lifespan(LifespanMode::Off), app)
        .await
        .expect("start")
}

#[tokio::test]
async fn seed_session_ticks_and_echoes_uppercased() {
    let client = client(pagi::app_fn(ex::bidirectional_websocket::app)).await;
    let mut ws = client.websocket("/", &[]).await.expect("accepted");
    ws.send_text("hello").await;
    assert_eq!(ws.recv_text().await, "you said: HELLO");
    assert_eq!(ws.recv_text().await, "server tick #1");
    ws.close(1000, "bye").await;
    assert!(matches!(ws.recv().await, Some(WsFrame::Close(1000, _))));
    // The seed declines plain HTTP: the server's backstop answers 500.
    assert_eq!(client.get("/").await.status, 500);
    client.shutdown().await;
}

#[tokio::test]
async fn websocket_echo_returns_text_and_binary_and_shutdown_sends_1001() {
    let client = client(pagi::app_fn(ex::websocket_echo::app)).await;
    let mut ws = client.websocket("/", &[]).await.expect("accepted");
    ws.send_text("héllo").await;
    assert_eq!(
        ws.recv().await,
        Some(WsFrame::Message(Message::Text("héllo".into())))
    );
    ws.send_binary(&[0, 1, 2]).await;
    assert_eq!(
        ws.recv().await,
        Some(WsFrame::Message(Message::Binary(Bytes::from_static(&[
            0, 1, 2
        ]))))
    );
    client.begin_shutdown();
    assert!(matches!(ws.recv().await, Some(WsFrame::Close(1001, _))));
    client.shutdown().await;
}

#[tokio::test]
async fn streaming_response_sends_chunks_then_trailers() {
    let client = client(pagi::app_fn(ex::streaming_response::app)).await;
    let started = Instant::now();
    let response = client
        .request(
            http::Request::get("/")
                .header("te", "trailers")
                .body(Bytes::new())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status, 200);
    assert!(
        response.text().contains("chunk 1") && response.text().contains("chunk 3"),
        "{response:?}"
    );
    assert!(!response.trailers.is_empty(), "{response:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "chunks a second apart"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn sse_broadcaster_page_and_plain_requests() {
    let client = client(pagi::app_fn(ex::sse_broadcaster::app)).await;
    let page = client.get("/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains("new EventSource(\"/events\""), "{html}");
    assert!(html.contains("addEventListener(\"update\""), "{html}");
    assert_eq!(client.get("/elsewhere").await.status, 404);
    client.shutdown().await;
}

#[tokio::test]
async fn sse_broadcaster_streams_numbered_updates_then_done() {
    let client = client(pagi::app_fn(ex::sse_broadcaster::app)).await;
    let started = Instant::now();
    let (head, events) = client.sse("/events?n=3").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let expect = |n: u32| SseEvent {
        event: "update".into(),
        data: format!("update {n} of 3"),
        id: Some(n.to_string()),
    };
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[..3], [expect(1), expect(2), expect(3)]);
    assert_eq!(events[3].event, "done");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "500 ms apart"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn sse_broadcaster_resumes_after_last_event_id() {
    let client = client(pagi::app_fn(ex::sse_broadcaster::app)).await;
    let request = http::Request::get("/events?n=3")
        .header("accept", "text/event-stream")
        .header("last-event-id", "2")
        .body(Bytes::new())
        .unwrap();
    let response = client.request(request).await;
    let text = response.text();
    assert!(
        text.contains("id: 3\n") && !text.contains("id: 2\n"),
        "{text}"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn lifespan_state_reaches_requests_and_shutdown_completes() {
    let app = pagi::app_fn(ex::lifespan_state::app);
    let client = TestClient::start_with(lifespan(LifespanMode::On), app)
        .await
        .unwrap();
    for n in 1..=2 {
        let response = client.get("/").await;
        assert_eq!(response.status, 200);
        let greeting = ex::lifespan_state::GREETING;
        assert_eq!(
            response.text(),
            format!("{greeting}\nrequest #{n} since startup\n")
        );
    }
    // A lifespan that never answered `lifespan.shutdown` would take 5 s.
    let t = Instant::now();
    client.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn lifespan_state_without_lifespan_says_so() {
    let client = client(pagi::app_fn(ex::lifespan_state::app)).await;
    let response = client.get("/").await;
    assert_eq!(response.status, 503);
    assert!(response.text().contains("without lifespan"), "{response:?}");
}

#[tokio::test]
async fn a_failing_lifespan_startup_fails_the_client_start() {
    let app = pagi::app_fn(
        |_: pagi::Scope, mut receive: pagi::Receiver, send: pagi::Sender| async move {
            let _startup = receive.recv().await;
            send.send(pagi::SendEvent::LifespanStartupFailed {
                message: "no database".into(),
            })
            .await?;
            Ok::<_, pagi::BoxError>(())
        },
    );
    let err = TestClient::start_with(lifespan(LifespanMode::On), app)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no database"), "{err}");
}

#[tokio::test]
async fn mini_framework_routes_params_and_404() {
    let client = client(pagi::app_fn(ex::mini_framework::app)).await;
    let cases: [(&str, &str, u16, &str); 6] = [
        ("GET", "/", 200, "Hello from Nano!"),
        ("GET", "/hello/Ada", 200, "Hello, Ada!\n"),
        ("GET", "/hello/caf%C3%A9", 200, "Hello, café!\n"),
        ("GET", "/hello", 404, "Not found: /hello\n"),
        ("POST", "/hello/Ada", 404, "Not found"),
        ("GET", "/slow/soon", 400, "milliseconds"),
    ];
    for (method, path, status, text) in cases {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .body(Bytes::new())
            .unwrap();
        let response = client.request(request).await;
        assert_eq!(response.status, status, "{method} {path}: {response:?}");
        assert!(
            response.text().contains(text),
            "{method} {path}: {response:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_websocket_is_a_403_response() {
    let app = pagi::app_fn(
        |_: pagi::Scope, mut receive: pagi::Receiver, send: pagi::Sender| async move {
            let _connect = receive.recv().await;
            send.send(pagi::SendEvent::close(1000, "")).await?;
            Ok::<_, pagi::BoxError>(())
        },
    );
    let client = client(app).await;
    let refused = client.websocket("/", &[]).await.unwrap_err();
    assert_eq!(refused.status, 403);
}
