//! The app author's layer over real sockets: `Sender::closed` ends
//! push-only branches when the client leaves, `SendError` says what kind of
//! mistake a send was, the scope's accessors and query parsing read the
//! request, and the ws/http/sse helpers run against the real server.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{http_raw, read_head_response, within, TestServer, STEP};
use futures_util::StreamExt;
use pagi::{http, sse, ws, BoxError, Receiver, Scope, SendEvent, Sender};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Push until `closed()` says the client is gone; report how many pushes.
async fn push_until_closed(
    scope: Scope,
    receive: Receiver,
    send: Sender,
    done: mpsc::UnboundedSender<u32>,
) -> Result<(), BoxError> {
    let mut pushed = 0;
    match scope {
        Scope::WebSocket(_) => {
            // The receiving half is never read: only `closed()` can end this.
            let (_incoming, tx) = ws::accept(receive, send).await?;
            loop {
                tokio::select! {
                    _ = tx.closed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {
                        tx.text(format!("push {pushed}")).await?;
                        pushed += 1;
                    }
                }
            }
            assert!(tx.is_closed());
        }
        Scope::Http(_) => {
            let mut body = http::stream(&send, 200, [("content-type", "text/plain")]).await?;
            loop {
                tokio::select! {
                    _ = body.closed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {
                        body.write("push\n").await?;
                        pushed += 1;
                    }
                }
            }
        }
        Scope::Sse(_) => {
            let stream = sse::start(&send).await?;
            loop {
                tokio::select! {
                    _ = stream.closed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {
                        stream.send(sse::Event::new(pushed.to_string())).await?;
                        pushed += 1;
                    }
                }
            }
        }
        other => return Err(pagi::unsupported_scope(&other)),
    }
    let _ = done.send(pushed);
    Ok(())
}

fn pusher() -> (pagi::SharedApp, mpsc::UnboundedReceiver<u32>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope, receive, send| {
        push_until_closed(scope, receive, send, tx.clone())
    });
    (app, rx)
}

#[tokio::test]
async fn a_push_only_websocket_branch_ends_when_the_client_closes() {
    let (app, mut done) = pusher();
    let server = TestServer::start(app).await;
    let (mut client, _) = within(
        STEP,
        "connect",
        tokio_tungstenite::connect_async(server.ws_url("/")),
    )
    .await
    .expect("handshake");
    for _ in 0..3 {
        let msg = within(STEP, "a push", client.next())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(msg, WsMessage::Text(t) if t.starts_with("push ")));
    }
    client.close(None).await.unwrap();
    let pushed = within(STEP, "the app saw the close", done.recv())
        .await
        .unwrap();
    assert!(pushed >= 3);
    // The server answers the Close and ends the connection.
    while let Some(m) = within(STEP, "the server's close", client.next()).await {
        assert!(m.unwrap().is_close());
    }
    drop(client);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn a_push_only_response_ends_when_the_client_leaves() {
    for (path, accept) in [("/stream", "*/*"), ("/events", "text/event-stream")] {
        let (app, mut done) = pusher();
        let server = TestServer::start(app).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nAccept: {accept}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = BytesMut::new();
        let head = read_head_response(&mut stream, &mut buf).await;
        assert_eq!(head.status, 200, "{path}");
        drop(stream); // leave mid-stream
        let pushed = within(STEP, "the app saw the client leave", done.recv())
            .await
            .unwrap();
        assert!(pushed >= 1, "{path}");
        server.shutdown(STEP).await;
    }
}

/// Each wrong send is classified; then the helpers answer with what the
/// scope's accessors read.
async fn mistakes_then_answer(
    scope: Scope,
    mut receive: Receiver,
    send: Sender,
    closed_after: mpsc::UnboundedSender<bool>,
) -> Result<(), BoxError> {
    let mut report = Vec::new();
    let e = send.send(SendEvent::text("x")).await.unwrap_err();
    report.push(format!(
        "ws event on http: unrecognized={}",
        e.is_unrecognized()
    ));
    let e = send
        .send(SendEvent::response_body("x", false))
        .await
        .unwrap_err();
    report.push(format!(
        "body before start: out_of_order={}",
        e.is_out_of_order()
    ));
    let e = send
        .send(SendEvent::response_start(200, [("x-bad", "a\r\nb")]))
        .await
        .unwrap_err();
    report.push(format!("CRLF in a header: invalid={}", e.is_invalid()));
    let body = http::read_body(&mut receive, 1024).await?;
    let query = scope.query();
    report.push(format!(
        "{} {} tags={:?} name={:?} host={:?} body={}",
        scope.method().unwrap_or("-"),
        scope.path(),
        query.get_all("tag").collect::<Vec<_>>(),
        query.get("name"),
        scope.header("host"),
        String::from_utf8_lossy(&body),
    ));
    assert!(!send.is_closed());
    http::Response::text(200, report.join("\n"))
        .send(&send)
        .await?;
    let closed = tokio::time::timeout(STEP, send.closed()).await.is_ok();
    let _ = closed_after.send(closed && send.is_closed());
    Ok(())
}

#[tokio::test]
async fn send_errors_are_classified_and_accessors_read_the_request() {
    let (closed_tx, mut closed_after) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope, receive, send| {
        mistakes_then_answer(scope, receive, send, closed_tx.clone())
    });
    let server = TestServer::start(app).await;
    let request = b"POST /a%20b?tag=x&tag=y+z&name=J%C3%BCrgen HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    let (resp, _) = http_raw(server.addr, request).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.body_text(),
        "ws event on http: unrecognized=true\n\
         body before start: out_of_order=true\n\
         CRLF in a header: invalid=true\n\
         POST /a b tags=[\"x\", \"y z\"] name=Some(\"Jürgen\") host=Some(\"example\") body=hello"
    );
    let closed = within(STEP, "the app's report", closed_after.recv()).await;
    assert_eq!(
        closed,
        Some(true),
        "send.closed() resolves once the response is out"
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn read_body_stops_at_its_limit() {
    let app = pagi::app_fn(
        |_scope: Scope, mut receive: Receiver, send: Sender| async move {
            match http::read_body(&mut receive, 10).await {
                Err(http::BodyError::TooLarge { limit }) => {
                    http::Response::text(413, format!("over {limit}"))
                        .send(&send)
                        .await?
                }
                other => {
                    http::Response::text(500, format!("{other:?}"))
                        .send(&send)
                        .await?
                }
            }
            Ok::<_, BoxError>(())
        },
    );
    let server = TestServer::start(app).await;
    let request =
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world";
    let (resp, _) = http_raw(server.addr, request).await;
    assert_eq!((resp.status, resp.body_text().as_str()), (413, "over 10"));
    server.shutdown(STEP).await;
}
