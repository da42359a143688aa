//! HTTP/1.1 exchanges over real sockets: hyper's client for the ordinary
//! cases, a raw TCP client where the wire format matters.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{eof_within, http_raw, read_response, within, TestServer, STEP};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendError, SendEvent, Sender};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

type Client = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn client(server: &TestServer) -> Client {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

async fn fetch(
    client: &mut Client,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, http::HeaderMap, Bytes) {
    within(STEP, "request", async {
        client.ready().await.expect("connection usable");
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "test")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = client.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body)
    })
    .await
}

async fn respond(send: &Sender, status: u16, body: impl Into<Bytes>) -> Result<(), BoxError> {
    let body = body.into();
    send.send(SendEvent::response_start(
        status,
        Headers::from([
            ("content-type", "text/plain".to_owned()),
            ("content-length", body.len().to_string()),
        ]),
    ))
    .await?;
    send.send(SendEvent::response_body(body, false)).await?;
    Ok(())
}

/// Read the whole request body; returns it and the `more` flags seen, or
/// None if `http.disconnect` came first.
async fn try_read_body(receive: &mut Receiver) -> Option<(Vec<u8>, Vec<bool>)> {
    let mut body = Vec::new();
    let mut flags = Vec::new();
    loop {
        match receive.recv().await {
            ReceiveEvent::HttpRequest { body: b, more } => {
                body.extend_from_slice(&b);
                flags.push(more);
                if !more {
                    return Some((body, flags));
                }
            }
            ReceiveEvent::HttpDisconnect => return None,
            other => panic!("unexpected {other:?} while reading the body"),
        }
    }
}

async fn read_body(receive: &mut Receiver) -> (Vec<u8>, Vec<bool>) {
    try_read_body(receive)
        .await
        .expect("http.disconnect while reading the body")
}

#[tokio::test]
async fn hello_app_answers_200_with_body() {
    let server = TestServer::start(pagi::app_fn(pagi_examples::hello_http::app)).await;
    let mut c = client(&server).await;
    let (status, headers, body) = fetch(&mut c, "GET", "/", vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(body, "Hello from PAGI!\n");
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn keep_alive_serves_two_requests_on_one_connection() {
    // The app reports the client port: both answers must name the same one.
    let app = pagi::app_fn(
        |scope: Scope, mut receive: Receiver, send: Sender| async move {
            let Scope::Http(h) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            read_body(&mut receive).await;
            let port = h.client.map(|c| c.port()).unwrap_or(0);
            respond(&send, 200, format!("{} {}", h.path, port)).await
        },
    );
    let server = TestServer::start(app).await;
    let mut c = client(&server).await;
    let (s1, _, b1) = fetch(&mut c, "GET", "/one", vec![]).await;
    let (s2, _, b2) = fetch(&mut c, "GET", "/two", vec![]).await;
    assert_eq!((s1, s2), (200, 200));
    let (p1, p2) = (
        String::from_utf8_lossy(&b1).into_owned(),
        String::from_utf8_lossy(&b2).into_owned(),
    );
    assert!(
        p1.starts_with("/one ") && p2.starts_with("/two "),
        "{p1} {p2}"
    );
    assert_eq!(
        p1[5..],
        p2[5..],
        "second request came on another connection"
    );
    assert_eq!(server.handle.live_connections(), 1);
    drop(c);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn keep_alive_requests_get_fresh_connection_state_even_when_an_app_keeps_the_old_one() {
    // The server reuses a finished request's state for the next request on
    // the connection; a handle the app kept must not see that happen.
    let kept: Arc<Mutex<Vec<pagi::Connection>>> = Arc::default();
    let k = kept.clone();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let kept = k.clone();
        async move {
            let Scope::Http(h) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            read_body(&mut receive).await;
            let fresh = h.connection.is_connected()
                && !h.connection.response_started()
                && h.transport
                    .as_ref()
                    .is_some_and(|t| t.buffered_amount() == 0);
            if h.path == "/keep" {
                kept.lock().unwrap().push(h.connection.clone());
            }
            respond(&send, 200, if fresh { "fresh" } else { "stale" }).await
        }
    });
    let server = TestServer::start(app).await;
    let mut c = client(&server).await;
    for path in ["/a", "/b", "/keep", "/c", "/d"] {
        let (status, _, body) = fetch(&mut c, "GET", path, vec![]).await;
        assert_eq!((status, &body[..]), (200, &b"fresh"[..]), "{path}");
    }
    // The kept handle still describes its own, completed request.
    let old = kept.lock().unwrap().pop().expect("kept");
    assert!(common::eventually(STEP, || old.response_complete() == Some(true)).await);
    assert!(!old.is_connected() && old.response_started());
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn on_complete_fires_for_a_response_with_content_length() {
    // hyper does not poll a body of known length after its last byte; the
    // completion must still be reported (exactly once, and no disconnect).
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let (done, gone) = (tx.clone(), tx.clone());
        async move {
            let Scope::Http(h) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            h.connection.on_complete(move || {
                let _ = done.send("complete");
            });
            h.connection.on_disconnect(move |_| {
                let _ = gone.send("disconnect");
            });
            read_body(&mut receive).await;
            respond(&send, 200, "sized").await
        }
    });
    let server = TestServer::start(app).await;
    let mut c = client(&server).await;
    for _ in 0..2 {
        let (status, headers, _) = fetch(&mut c, "GET", "/", vec![]).await;
        assert_eq!(
            (status, &headers["content-length"]),
            (200, &"5".parse::<http::HeaderValue>().unwrap())
        );
        let seen = within(STEP, "on_complete", rx.recv()).await;
        assert_eq!(seen, Some("complete"));
    }
    drop(c);
    assert!(server.idle_within(STEP).await);
    assert!(rx.try_recv().is_err(), "a second callback fired");
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn streamed_response_without_length_is_chunked() {
    let app = pagi::app_fn(
        |scope: Scope, mut receive: Receiver, send: Sender| async move {
            let Scope::Http(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            read_body(&mut receive).await;
            send.send(SendEvent::response_start(
                200,
                [("content-type", "text/plain")],
            ))
            .await?;
            for part in ["alpha ", "beta ", "gamma"] {
                tokio::time::sleep(Duration::from_millis(20)).await;
                send.send(SendEvent::response_body(part, true)).await?;
            }
            send.send(SendEvent::response_body("", false)).await?;
            Ok(())
        },
    );
    let server = TestServer::start(app).await;
    let (resp, _) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(resp.status, 200);
    assert!(resp.chunked, "{resp:?}");
    assert!(resp.header("content-length").is_none());
    assert_eq!(resp.body_text(), "alpha beta gamma");
    server.shutdown(STEP).await;
}

/// Echoes the size and a checksum of the request body and how many
/// `http.request` events carried it.
fn body_app() -> pagi::SharedApp {
    pagi::app_fn(
        |scope: Scope, mut receive: Receiver, send: Sender| async move {
            let Scope::Http(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            let Some((body, flags)) = try_read_body(&mut receive).await else {
                return Ok(()); // e.g. body_too_large
            };
            // Every event but the last says more=true.
            let ok = flags[..flags.len() - 1].iter().all(|m| *m) && !flags[flags.len() - 1];
            let sum: u64 = body
                .iter()
                .enumerate()
                .map(|(i, b)| (i as u64 + 1) * *b as u64)
                .sum();
            respond(
                &send,
                200,
                format!("{} {} {} {}", body.len(), sum, flags.len(), ok),
            )
            .await
        },
    )
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn expected(body: &[u8]) -> (usize, u64) {
    let sum = body
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u64 + 1) * *b as u64)
        .sum();
    (body.len(), sum)
}

#[tokio::test]
async fn post_body_of_100kb_arrives_as_http_request_events() {
    let server = TestServer::start(body_app()).await;
    let body = pattern(100_000);
    let (len, sum) = expected(&body);
    let mut c = client(&server).await;
    let (status, _, resp) = fetch(&mut c, "POST", "/upload", body).await;
    assert_eq!(status, 200);
    let resp = String::from_utf8(resp.to_vec()).unwrap();
    let fields: Vec<&str> = resp.split(' ').collect();
    assert_eq!(fields[0], len.to_string(), "{resp}");
    assert_eq!(fields[1], sum.to_string(), "{resp}");
    assert_eq!(fields[3], "true", "more flags wrong: {resp}");
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn chunked_post_body_arrives_whole() {
    let server = TestServer::start(body_app()).await;
    let body = pattern(100_000);
    let (len, sum) = expected(&body);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    for piece in body.chunks(7_000) {
        stream
            .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(piece).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let resp = read_response(&mut stream, &mut Default::default()).await;
    assert_eq!(resp.status, 200);
    let text = resp.body_text();
    let fields: Vec<&str> = text.split(' ').collect();
    assert_eq!(fields[..2], [len.to_string(), sum.to_string()], "{text}");
    assert!(
        fields[2].parse::<usize>().unwrap() > 1,
        "one event only: {text}"
    );
    assert_eq!(fields[3], "true", "more flags wrong: {text}");
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn app_error_before_start_is_500_and_connection_closes() {
    let app = pagi::app_fn(|_: Scope, _: Receiver, _: Sender| async move {
        Err::<(), BoxError>("kaboom".into())
    });
    let server = TestServer::start(app).await;
    let (resp, mut stream) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(resp.status, 500);
    assert!(
        !resp.body_text().contains("kaboom"),
        "error leaked to the client"
    );
    assert!(eof_within(&mut stream, Duration::from_secs(3)).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn app_returning_without_response_is_500() {
    let app =
        pagi::app_fn(|_: Scope, _: Receiver, _: Sender| async move { Ok::<(), BoxError>(()) });
    let server = TestServer::start(app).await;
    let (resp, mut stream) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(resp.status, 500);
    assert!(eof_within(&mut stream, Duration::from_secs(3)).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn crlf_in_response_header_fails_the_send_and_client_gets_500() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<(), SendError>>();
    let app = pagi::app_fn(move |_: Scope, _: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let r = send
                .send(SendEvent::response_start(
                    200,
                    [("x-evil", "a\r\nSet-Cookie: pwned=1")],
                ))
                .await;
            let _ = tx.send(r.clone());
            r?;
            send.send(SendEvent::response_body("should not be sent", false))
                .await?;
            Ok::<(), BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let (resp, _) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let sent = within(STEP, "app result", rx.recv()).await.unwrap();
    assert!(sent.is_err(), "send accepted a CR/LF header");
    assert_eq!(resp.status, 500);
    assert!(resp.header("set-cookie").is_none());
    assert!(resp.header("x-evil").is_none());
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn body_over_max_body_size_is_413() {
    let config = pagi_server::Config {
        max_body_size: 1_000,
        ..common::config()
    };
    let server = TestServer::start_with(config, body_app()).await;
    // Declared too large: refused up front.
    let mut req = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n".to_vec();
    req.extend(pattern(5000));
    let (resp, _) = http_raw(server.addr, &req).await;
    assert_eq!(resp.status, 413);
    // Chunked, growing past the limit.
    let mut req = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..5 {
        req.extend(b"258\r\n"); // 600 bytes
        req.extend(vec![b'z'; 600]);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    let (resp, _) = http_raw(server.addr, &req).await;
    assert_eq!(resp.status, 413);
    // At the limit: fine.
    let mut c = client(&server).await;
    let (status, _, _) = fetch(&mut c, "POST", "/", pattern(1_000)).await;
    assert_eq!(status, 200);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn connection_reports_disconnect_when_client_leaves_mid_body() {
    let seen = Arc::new(Mutex::new(None::<(bool, Option<String>, ReceiveEvent)>));
    let s = seen.clone();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, _: Sender| {
        let s = s.clone();
        async move {
            let Scope::Http(h) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            let first = receive.recv().await;
            assert!(
                matches!(first, ReceiveEvent::HttpRequest { more: true, .. }),
                "{first:?}"
            );
            let next = receive.recv().await;
            let reason = within(STEP, "disconnected()", h.connection.disconnected()).await;
            *s.lock().unwrap() = Some((h.connection.is_connected(), Some(reason), next));
            Ok::<(), BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    let s = seen.clone();
    assert!(
        common::eventually(STEP, move || s.lock().unwrap().is_some()).await,
        "app never saw the disconnect"
    );
    let (connected, reason, next) = seen.lock().unwrap().take().unwrap();
    assert!(!connected);
    assert_eq!(reason.as_deref(), Some("client_closed"));
    assert_eq!(next, ReceiveEvent::HttpDisconnect);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn connection_reports_disconnect_while_app_works_without_reading() {
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, bool)>();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, _: Sender| {
        let tx = tx.clone();
        async move {
            let Scope::Http(h) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            read_body(&mut receive).await;
            // A long computation racing the client going away.
            tokio::select! {
                reason = h.connection.disconnected() => {
                    let _ = tx.send((reason, h.connection.is_connected()));
                }
                () = tokio::time::sleep(Duration::from_secs(5)) => {
                    let _ = tx.send(("still connected after 5 s".into(), true));
                }
            }
            Ok::<(), BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    let (reason, connected) = within(STEP, "app report", rx.recv()).await.unwrap();
    assert_eq!(reason, "client_closed");
    assert!(!connected);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

// Found at HEAD: a panicking app unwound through hyper's connection task
// (client got EOF, no 500) and AppDriver::drop re-polled the panicked future.
#[tokio::test]
async fn app_panic_before_start_is_500() {
    let app = pagi::app_fn(|scope: Scope, _: Receiver, _: Sender| async move {
        if scope.path() == "/panic" {
            panic!("app panicked on purpose");
        }
        Ok::<(), BoxError>(())
    });
    let server = TestServer::start(app).await;
    let (resp, mut stream) = http_raw(server.addr, b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(resp.status, 500);
    assert!(eof_within(&mut stream, Duration::from_secs(3)).await);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

/// Open an SSE request on a raw socket.
async fn open_sse(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    stream
}

/// Read the raw stream until `done` holds for what arrived; returns it.
async fn read_until(stream: &mut TcpStream, what: &str, done: impl Fn(&str) -> bool) -> String {
    within(STEP, what, async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let text = String::from_utf8_lossy(&buf).into_owned();
            if done(&text) {
                return text;
            }
            let n = tokio::io::AsyncReadExt::read(stream, &mut chunk)
                .await
                .unwrap();
            assert!(n > 0, "stream ended: {text:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
}

/// An SSE app: starts the stream, sets a keepalive every `every`, then
/// after `then` sends one `data: after` event (if given), and waits for
/// the client to leave.
fn keepalive_app(every: Duration, then: Option<Duration>) -> pagi::SharedApp {
    pagi::app_fn(
        move |scope: Scope, mut receive: Receiver, send: Sender| async move {
            let Scope::Sse(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            send.send(SendEvent::SseKeepalive {
                interval: every,
                comment: "ka".into(),
            })
            .await?;
            if let Some(wait) = then {
                tokio::time::sleep(wait).await;
                send.send(SendEvent::SseSend {
                    event: None,
                    data: "after".into(),
                    id: None,
                    retry: None,
                })
                .await?;
            }
            while !receive.recv().await.is_disconnect() {}
            Ok::<_, BoxError>(())
        },
    )
}

#[tokio::test]
async fn sse_keepalive_comments_repeat_at_the_interval() {
    let server = TestServer::start(keepalive_app(Duration::from_millis(30), None)).await;
    let mut stream = open_sse(server.addr).await;
    let seen = read_until(&mut stream, "two keepalive comments", |t| {
        t.matches(":ka\n\n").count() >= 2
    })
    .await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.contains("text/event-stream"), "{seen}");
    drop(stream);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn sse_events_sent_after_a_keepalive_are_delivered() {
    // Several keepalives go out before the event.
    let app = keepalive_app(Duration::from_millis(20), Some(Duration::from_millis(120)));
    let server = TestServer::start(app).await;
    let mut stream = open_sse(server.addr).await;
    read_until(&mut stream, "the event after the keepalives", |t| {
        t.contains("data: after")
    })
    .await;
    drop(stream);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn an_event_stream_says_keep_alive_yet_closes_when_it_ends_and_a_decline_says_close() {
    let app = pagi::app_fn(|scope: Scope, _: Receiver, send: Sender| async move {
        let Scope::Sse(sse) = scope else {
            return Err(pagi::unsupported_scope(&scope));
        };
        if sse.path == "/decline" {
            send.send(SendEvent::SseHttpResponseStart {
                status: 403,
                headers: Headers::new().with("content-length", "2"),
            })
            .await?;
            send.send(SendEvent::SseHttpResponseBody {
                body: "no".into(),
                more: false,
            })
            .await?;
            return Ok(());
        }
        send.send(SendEvent::SseStart {
            status: 200,
            headers: Headers::new(),
        })
        .await?;
        send.send(SendEvent::SseSend {
            event: None,
            data: "one".into(),
            id: None,
            retry: None,
        })
        .await?;
        send.send(SendEvent::SseClose {
            reason: Some("done".into()),
        })
        .await?;
        Ok::<_, BoxError>(())
    });
    let server = TestServer::start(app).await;
    let mut stream = open_sse(server.addr).await;
    // (Queued whole before its head went out, the stream has a length.)
    let seen = read_until(&mut stream, "the event", |t| t.contains("data: one\n\n")).await;
    let head = seen.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("\r\nconnection: keep-alive"), "{head}");
    assert!(seen.contains("data: one"), "{seen}");
    assert!(
        eof_within(&mut stream, STEP).await,
        "closed after sse.close"
    );
    let (resp, mut stream) = http_raw(
        server.addr,
        b"GET /decline HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(
        eof_within(&mut stream, STEP).await,
        "closed after a decline"
    );
    server.shutdown(STEP).await;
}

// Found in the conformance audit (C6/W14): with request body left unread
// the connection did not read at all, so an app that never asks for the
// body and has nothing to write never heard that its client left.
#[tokio::test]
async fn an_app_that_never_reads_the_body_still_hears_the_client_leave() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope: Scope, _: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let Scope::Http(http) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            let (gone_tx, gone) = tokio::sync::oneshot::channel::<String>();
            let gone_tx = std::sync::Mutex::new(Some(gone_tx));
            http.connection.on_disconnect(move |why| {
                if let Some(t) = gone_tx.lock().unwrap().take() {
                    let _ = t.send(why.to_owned());
                }
            });
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::response_body("working\n", true))
                .await?;
            // Nothing more to write, and the body is never asked for.
            let why = tokio::time::timeout(Duration::from_secs(10), gone).await;
            let _ = tx.send(format!("{why:?}"));
            Ok::<_, BoxError>(())
        }
    });
    let server = TestServer::start(app).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nsome of it")
        .await
        .unwrap();
    read_until(&mut stream, "the first chunk", |t| t.contains("working")).await;
    drop(stream);
    let why = within(STEP, "the app to hear", rx.recv()).await.unwrap();
    assert_eq!(why, r#"Ok(Ok("client_closed"))"#);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}
