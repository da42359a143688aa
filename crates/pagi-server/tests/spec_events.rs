//! Core obligations of the PAGI spec about events, checked end to end
//! (the conformance table in `docs/conformance.md` names them): the
//! `pagi` version on every scope (C1), sends the scope does not take or
//! that come out of order (C3, X3), sends after the client left (C5), and
//! an app that never answers a client that already left (C8).

mod common;

use std::time::Duration;

use common::{captured_logs, http_raw, within, RawWs, TestServer, STEP};
use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use pagi_server::{Config, LifespanMode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A send's outcome as a line: `what: ok` or `what: <the error>`.
fn outcome(what: &str, r: Result<(), pagi::SendError>) -> String {
    format!(
        "{what}: {}",
        r.map_or_else(|e| e.to_string(), |()| "ok".into())
    )
}

#[tokio::test]
async fn every_scope_says_pagi_version_0_3() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let info = scope.pagi();
            let _ = tx.send(format!(
                "{} {} {}",
                scope.type_name(),
                info.version,
                info.spec_version
            ));
            match scope {
                Scope::Lifespan(_) => {
                    assert_eq!(receive.recv().await, ReceiveEvent::LifespanStartup);
                    send.send(SendEvent::LifespanStartupComplete).await?;
                    while !matches!(receive.recv().await, ReceiveEvent::LifespanShutdown) {}
                    send.send(SendEvent::LifespanShutdownComplete).await?;
                }
                Scope::WebSocket(_) => {
                    assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
                    send.send(SendEvent::accept()).await?;
                    send.send(SendEvent::close(1000, "")).await?;
                }
                Scope::Sse(_) => {
                    send.send(SendEvent::SseStart {
                        status: 200,
                        headers: Headers::new(),
                    })
                    .await?;
                    send.send(SendEvent::SseClose { reason: None }).await?;
                }
                _ => {
                    send.send(SendEvent::response_start(200, Headers::new()))
                        .await?;
                    send.send(SendEvent::response_body("ok", false)).await?;
                }
            }
            Ok::<(), BoxError>(())
        }
    });
    let config = Config {
        lifespan: LifespanMode::On,
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    http_raw(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    let _ = within(STEP, "the close", ws.read_frame()).await;
    server.shutdown(STEP).await;
    let mut seen = Vec::new();
    while let Ok(line) = rx.try_recv() {
        seen.push(line);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "http 0.3 0.3",
            "lifespan 0.3 0.3",
            "sse 0.3 0.3",
            "websocket 0.3 0.3"
        ]
    );
}

#[tokio::test]
async fn sends_the_scope_does_not_take_or_out_of_order_fail_and_leave_the_response_intact() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope: Scope, _: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let Scope::Http(http) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            let report = |what: &str, r| {
                let _ = tx.send(outcome(what, r));
            };
            report(
                "fullflush advertised",
                if http.extensions.contains("fullflush") {
                    Ok(())
                } else {
                    Err(pagi::SendError::invalid("no"))
                },
            );
            report("websocket.send", send.send(SendEvent::text("x")).await);
            report(
                "sse.send",
                send.send(SendEvent::SseComment {
                    comment: "x".into(),
                })
                .await,
            );
            report("fullflush", send.send(SendEvent::HttpFullflush).await);
            report(
                "body before start",
                send.send(SendEvent::response_body("x", false)).await,
            );
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            report(
                "start twice",
                send.send(SendEvent::response_start(500, Headers::new()))
                    .await,
            );
            send.send(SendEvent::response_body("intact", false)).await?;
            report(
                "body after the end",
                send.send(SendEvent::response_body("x", false)).await,
            );
            Ok::<(), BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let (resp, _) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "intact");
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(within(STEP, "a report", rx.recv()).await.unwrap());
    }
    assert_eq!(
        seen,
        [
            "fullflush advertised: no",
            "websocket.send: Unrecognized event type 'websocket.send' for http protocol",
            "sse.send: Unrecognized event type 'sse.comment' for http protocol",
            "fullflush: Extension not enabled: fullflush",
            "body before start: http.response.body before http.response.start",
            "start twice: http.response.start sent twice",
            "body after the end: response body sent after the response ended",
        ]
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn sends_after_the_client_left_are_no_ops() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |_: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            while !receive.recv().await.is_disconnect() {}
            let start = send
                .send(SendEvent::response_start(200, Headers::new()))
                .await;
            let body = send.send(SendEvent::response_body("late", false)).await;
            let _ = tx.send(format!("{start:?} {body:?}"));
            Ok::<(), BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(s);
    let report = within(STEP, "the app's sends", rx.recv()).await.unwrap();
    assert_eq!(report, "Ok(()) Ok(())");
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn an_app_that_never_answers_a_client_that_left_is_not_an_error() {
    let logs = captured_logs();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |_: Scope, mut receive: Receiver, _: Sender| {
        let tx = tx.clone();
        async move {
            while !receive.recv().await.is_disconnect() {}
            let _ = tx.send(());
            Ok::<(), BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.shutdown().await.unwrap();
    assert!(
        read_to_end(&mut s).await.is_empty(),
        "no 500 for a client that left"
    );
    within(STEP, "the app to end", rx.recv()).await.unwrap();
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        !text.contains("returned without starting a response"),
        "{text}"
    );
}

/// An SSE app per path, reporting each send's outcome.
fn sse_app(tx: mpsc::UnboundedSender<String>) -> pagi::SharedApp {
    pagi::app_fn(move |scope: Scope, _: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let Scope::Sse(sse) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            let report = |what: &str, r| {
                let _ = tx.send(outcome(what, r));
            };
            let event = |data: &str| SendEvent::SseSend {
                event: Some("é".into()),
                data: data.into(),
                id: Some("ü".into()),
                retry: None,
            };
            match sse.path.as_str() {
                "/fail" => return Err("failed before sse.start".into()),
                "/decline" => {
                    send.send(SendEvent::SseHttpResponseStart {
                        status: 403,
                        headers: Headers::new().with("content-length", "2"),
                    })
                    .await?;
                    report(
                        "start after decline",
                        send.send(SendEvent::SseStart {
                            status: 200,
                            headers: Headers::new(),
                        })
                        .await,
                    );
                    report("send after decline", send.send(event("x")).await);
                    send.send(SendEvent::SseHttpResponseBody {
                        body: "no".into(),
                        more: false,
                    })
                    .await?;
                }
                _ => {
                    report("send before start", send.send(event("x")).await);
                    send.send(SendEvent::SseStart {
                        status: 200,
                        headers: Headers::new(),
                    })
                    .await?;
                    report(
                        "decline after start",
                        send.send(SendEvent::SseHttpResponseStart {
                            status: 403,
                            headers: Headers::new(),
                        })
                        .await,
                    );
                    send.send(event("café ☕\nsecond line")).await?;
                    send.send(SendEvent::SseClose {
                        reason: Some("secret-reason".into()),
                    })
                    .await?;
                    report("send after close", send.send(event("x")).await);
                    report(
                        "comment after close",
                        send.send(SendEvent::SseComment {
                            comment: "x".into(),
                        })
                        .await,
                    );
                    report(
                        "second close",
                        send.send(SendEvent::SseClose { reason: None }).await,
                    );
                    // Still running while the client sees the end.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = tx.send("app done".into());
                }
            }
            Ok::<(), BoxError>(())
        }
    })
}

async fn sse_request(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    s
}

async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    within(
        STEP,
        "the stream's end",
        tokio::io::AsyncReadExt::read_to_end(s, &mut out),
    )
    .await
    .unwrap();
    out
}

#[tokio::test]
async fn sse_sends_are_first_send_wins_and_close_ends_the_stream_at_once() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = TestServer::start(sse_app(tx)).await;
    let mut s = sse_request(server.addr, "/events").await;
    let wire = read_to_end(&mut s).await;
    // The stream ended while the app still runs.
    let mut seen = Vec::new();
    while let Ok(r) = rx.try_recv() {
        seen.push(r);
    }
    assert!(!seen.iter().any(|r| r == "app done"), "{seen:?}");
    let text = String::from_utf8(wire).unwrap();
    assert!(
        text.contains("event: é\nid: ü\ndata: café ☕\ndata: second line\n\n"),
        "UTF-8 fields on the wire: {text:?}"
    );
    assert!(!text.contains("secret-reason"), "{text}");
    while seen.len() < 6 {
        seen.push(within(STEP, "a report", rx.recv()).await.unwrap());
    }
    assert_eq!(
        seen,
        [
            "send before start: cannot send 'sse.send' before sse.start",
            "decline after start: cannot decline with sse.http.response.start after sse.start",
            "send after close: cannot send 'sse.send' after sse.close",
            "comment after close: cannot send 'sse.comment' after sse.close",
            "second close: ok",
            "app done",
        ]
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn an_sse_decline_is_sent_then_closed_and_stream_events_after_it_fail() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = TestServer::start(sse_app(tx)).await;
    let mut s = sse_request(server.addr, "/decline").await;
    let text = String::from_utf8(read_to_end(&mut s).await).unwrap();
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(text.ends_with("\r\n\r\nno"), "{text}");
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(within(STEP, "a report", rx.recv()).await.unwrap());
    }
    assert_eq!(
        seen,
        [
            "start after decline: cannot send 'sse.start' after sse.http.response.start",
            "send after decline: cannot send 'sse.send' after sse.http.response.start",
        ]
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn an_sse_app_failing_before_sse_start_gets_500_and_a_close() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let server = TestServer::start(sse_app(tx)).await;
    let mut s = sse_request(server.addr, "/fail").await;
    let text = String::from_utf8(read_to_end(&mut s).await).unwrap();
    assert!(text.starts_with("HTTP/1.1 500"), "{text}");
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn two_set_cookie_headers_reach_the_wire_separately_in_order() {
    let app = pagi::app_fn(|_: Scope, _: Receiver, send: Sender| async move {
        send.send(SendEvent::response_start(
            200,
            Headers::new()
                .with("set-cookie", "a=1; Path=/")
                .with("set-cookie", "b=2"),
        ))
        .await?;
        send.send(SendEvent::response_body("", false)).await?;
        Ok::<(), BoxError>(())
    });
    let server = TestServer::start(app).await;
    let (resp, _) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let cookies: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn without_the_header_subprotocols_are_empty_and_the_101_names_none() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let Scope::WebSocket(ws) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            let _ = tx.send(ws.subprotocols.len());
            assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
            send.send(SendEvent::accept()).await?;
            send.send(SendEvent::close(1000, "")).await?;
            Ok::<(), BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let ws = RawWs::connect(server.addr, "/").await;
    assert_eq!(ws.response.header("sec-websocket-protocol"), None);
    assert_eq!(within(STEP, "the scope", rx.recv()).await.unwrap(), 0);
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn crlf_in_sse_or_websocket_headers_fails_the_send_and_injects_nothing() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let evil = Headers::new().with("x-evil", "a\r\nset-cookie: stolen=1");
            let r = match scope {
                Scope::Sse(_) => {
                    send.send(SendEvent::SseStart {
                        status: 200,
                        headers: evil,
                    })
                    .await
                }
                Scope::WebSocket(_) => {
                    assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
                    send.send(SendEvent::WebSocketAccept {
                        subprotocol: None,
                        headers: evil,
                    })
                    .await
                }
                _ => return Err(pagi::unsupported_scope(&scope)),
            };
            let _ = tx.send(r.is_err());
            // The app gives up: the spec's backstop answers.
            r.map_err(BoxError::from)
        }
    });
    let server = TestServer::start(app).await;
    let (sse, _) = http_raw(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await;
    assert_eq!(sse.status, 500);
    assert!(sse.header("set-cookie").is_none());
    let (ws, _) = http_raw(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert_eq!(ws.status, 500);
    assert!(ws.header("set-cookie").is_none());
    for _ in 0..2 {
        assert!(within(STEP, "the send's outcome", rx.recv()).await.unwrap());
    }
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn trailers_need_the_flag_and_end_the_body() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope: Scope, _: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let with_flag = scope.path() == "/flag";
            send.send(SendEvent::HttpResponseStart {
                status: 200,
                headers: Headers::new(),
                trailers: with_flag,
            })
            .await?;
            send.send(SendEvent::response_body("body", true)).await?;
            let trailers = SendEvent::HttpResponseTrailers {
                headers: Headers::new().with("x-sum", "1"),
            };
            let r = send.send(trailers).await;
            let _ = tx.send(outcome("trailers", r));
            if with_flag {
                let late = send.send(SendEvent::response_body("late", false)).await;
                let _ = tx.send(outcome("body after trailers", late));
            } else {
                send.send(SendEvent::response_body("", false)).await?;
            }
            Ok::<(), BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let (plain, _) = http_raw(server.addr, b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(plain.body_text(), "body");
    assert!(plain.trailers.is_empty());
    let first = within(STEP, "a report", rx.recv()).await.unwrap();
    assert!(
        first.starts_with("trailers: ") && !first.ends_with(": ok"),
        "{first}"
    );
    let (flag, _) = http_raw(server.addr, b"GET /flag HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(flag.body_text(), "body");
    assert_eq!(flag.trailers, [("x-sum".to_owned(), "1".to_owned())]);
    assert_eq!(
        within(STEP, "a report", rx.recv()).await.unwrap(),
        "trailers: ok"
    );
    let late = within(STEP, "a report", rx.recv()).await.unwrap();
    assert!(
        late.starts_with("body after trailers: ") && !late.ends_with(": ok"),
        "{late}"
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn denial_events_after_accept_are_ignored() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |_: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
            send.send(SendEvent::accept()).await?;
            let start = send
                .send(SendEvent::WebSocketHttpResponseStart {
                    status: 403,
                    headers: Headers::new(),
                })
                .await;
            let body = send
                .send(SendEvent::WebSocketHttpResponseBody {
                    body: "no".into(),
                    more: false,
                })
                .await;
            let _ = tx.send(format!("{start:?} {body:?}"));
            while let ReceiveEvent::WebSocketReceive(m) = receive.recv().await {
                send.send(m).await?;
            }
            Ok::<(), BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    assert_eq!(ws.response.status, 101);
    assert_eq!(
        within(STEP, "the app", rx.recv()).await.unwrap(),
        "Ok(()) Ok(())"
    );
    ws.send(0x81, b"still here").await;
    let echo = within(STEP, "the echo", ws.read_frame()).await.unwrap();
    assert_eq!((echo.opcode, &echo.payload[..]), (1, &b"still here"[..]));
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn sse_keepalive_last_setting_wins_and_zero_stops_it() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |_: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let keepalive = |ms: u64, comment: &str| SendEvent::SseKeepalive {
                interval: Duration::from_millis(ms),
                comment: comment.into(),
            };
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            send.send(keepalive(20, "a")).await?;
            send.send(keepalive(0, "")).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            send.send(keepalive(20, "b")).await?;
            // The client leaves: its reason.
            loop {
                if let ReceiveEvent::SseDisconnect { reason } = receive.recv().await {
                    let _ = tx.send(reason);
                    break;
                }
            }
            Ok::<(), BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let mut s = sse_request(server.addr, "/").await;
    let mut wire = Vec::new();
    within(STEP, "two :b comments", async {
        let mut chunk = [0u8; 1024];
        while String::from_utf8_lossy(&wire).matches(":b\n\n").count() < 2 {
            let n = tokio::io::AsyncReadExt::read(&mut s, &mut chunk)
                .await
                .unwrap();
            assert!(n > 0);
            wire.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&wire);
    assert!(
        !text.contains(":a"),
        "zero stopped the first keepalive: {text:?}"
    );
    drop(s);
    let reason = within(STEP, "the disconnect", rx.recv()).await.unwrap();
    assert_eq!(reason, "client_closed");
    server.shutdown(STEP).await;
}
