//! The same exchanges over HTTP/1.1 and HTTP/2: every test here runs once
//! per protocol (`both!`), with hyper's client and tokio-tungstenite (over
//! an upgrade, or over an RFC 8441 extended CONNECT on an h2 stream).
//! HTTP/1.1's wire details are in `http1_wire.rs`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::proto::{read_whole, ws_connect, ws_try, Client, Proto};
use common::{record_end, within, Ends, TestServer, STEP};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use pagi_server::Config;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Reports on what the app saw, by path.
fn app() -> (pagi::SharedApp, Ends) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            match scope {
                Scope::Http(http) => {
                    let path = http.path.clone();
                    record_end(&http.connection, &path, &tx);
                    let mut body = Vec::new();
                    loop {
                        match receive.recv().await {
                            ReceiveEvent::HttpRequest { body: b, more } => {
                                body.extend_from_slice(&b);
                                if !more {
                                    break;
                                }
                            }
                            _ => return Ok(()),
                        }
                    }
                    match path.as_str() {
                        "/fail" => Err("the app failed".into()),
                        "/trailers" => {
                            send.send(SendEvent::HttpResponseStart {
                                status: 200,
                                headers: Headers::new().with("content-type", "text/plain"),
                                trailers: true,
                            })
                            .await?;
                            for part in ["one ", "two"] {
                                send.send(SendEvent::response_body(part, true)).await?;
                            }
                            send.send(SendEvent::HttpResponseTrailers {
                                headers: Headers::new().with("x-checksum", "42"),
                            })
                            .await?;
                            Ok(())
                        }
                        "/empty-trailers" => {
                            send.send(SendEvent::HttpResponseStart {
                                status: 200,
                                headers: Headers::new(),
                                trailers: true,
                            })
                            .await?;
                            send.send(SendEvent::response_body("body", true)).await?;
                            send.send(SendEvent::HttpResponseTrailers {
                                headers: Headers::new(),
                            })
                            .await?;
                            Ok(())
                        }
                        "/late" => {
                            // Starts streaming only after a while (then runs
                            // until told the client or the server is going).
                            let _ = tx.send(("/late:started".into(), None));
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            send.send(SendEvent::response_start(200, Headers::new()))
                                .await?;
                            loop {
                                send.send(SendEvent::response_body("tick\n", true)).await?;
                                tokio::select! {
                                    ev = receive.recv() => if ev.is_disconnect() { return Ok(()) },
                                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                                }
                            }
                        }
                        "/hang" => {
                            // Ignores the client leaving for a while.
                            let _ = tx.send(("/hang:started".into(), None));
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            Ok(())
                        }
                        "/whole" => {
                            // No length of its own: the body, queued whole.
                            send.send(SendEvent::response_start(200, Headers::new()))
                                .await?;
                            send.send(SendEvent::response_body("0123456789", false))
                                .await?;
                            Ok(())
                        }
                        "/nocontent" => {
                            send.send(SendEvent::response_start(
                                204,
                                Headers::new().with("content-length", "11"),
                            ))
                            .await?;
                            send.send(SendEvent::response_body("hello world", false))
                                .await?;
                            Ok(())
                        }
                        "/slow" => {
                            send.send(SendEvent::response_start(200, Headers::new()))
                                .await?;
                            for _ in 0..200 {
                                send.send(SendEvent::response_body("tick\n", true)).await?;
                                tokio::select! {
                                    ev = receive.recv() => if ev.is_disconnect() { return Ok(()) },
                                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                                }
                            }
                            send.send(SendEvent::response_body("", false)).await?;
                            Ok(())
                        }
                        _ => {
                            let text = format!(
                                "{} {} {} {} host={} body={}",
                                http.method,
                                path,
                                match http.http_version {
                                    pagi::HttpVersion::Http10 => "1.0",
                                    pagi::HttpVersion::Http11 => "1.1",
                                    pagi::HttpVersion::Http2 => "2",
                                },
                                http.scheme,
                                String::from_utf8_lossy(
                                    http.headers.get("host").map_or(&b""[..], |h| &h[..])
                                ),
                                body.len(),
                            );
                            send.send(SendEvent::response_start(
                                200,
                                Headers::new().with("content-length", text.len().to_string()),
                            ))
                            .await?;
                            send.send(SendEvent::response_body(text, false)).await?;
                            Ok(())
                        }
                    }
                }
                Scope::Sse(_) => {
                    send.send(SendEvent::SseStart {
                        status: 200,
                        headers: Headers::new(),
                    })
                    .await?;
                    for n in 1..=3 {
                        send.send(SendEvent::SseSend {
                            event: Some("n".into()),
                            data: n.to_string(),
                            id: Some(n.to_string()),
                            retry: None,
                        })
                        .await?;
                    }
                    send.send(SendEvent::SseClose { reason: None }).await?;
                    Ok(())
                }
                Scope::WebSocket(ws) => {
                    assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
                    if ws.path == "/deny" {
                        send.send(SendEvent::close(1000, "")).await?;
                        return Ok(());
                    }
                    send.send(SendEvent::accept()).await?;
                    let version = match ws.http_version {
                        pagi::HttpVersion::Http2 => "2",
                        _ => "1.1",
                    };
                    send.send(SendEvent::text(format!("hello over {version}")))
                        .await?;
                    while let ReceiveEvent::WebSocketReceive(m) = receive.recv().await {
                        send.send(m).await?;
                    }
                    Ok::<(), BoxError>(())
                }
                other => Err(pagi::unsupported_scope(&other)),
            }
        }
    });
    (app, rx)
}

fn version(proto: Proto) -> &'static str {
    match proto {
        Proto::H1 => "1.1",
        Proto::H2 => "2",
    }
}

both!(a_request_gets_its_scope_and_a_response, |proto| {
    let (app, _) = app();
    let server = TestServer::start(app).await;
    let mut c = Client::connect(server.addr, proto).await;
    let r = c.get("/hello").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!("GET /hello {} http host=test body=0", version(proto))
    );
    assert!(r.headers.contains_key("date"));
    // A second request on the same connection.
    let r = c.fetch("POST", "/again", &[], vec![7u8; 100_000]).await;
    assert!(r.text().ends_with("body=100000"), "{}", r.text());
    drop(c);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
});

both!(trailers_follow_a_streamed_body, |proto| {
    let (app, mut ends) = app();
    let server = TestServer::start(app).await;
    let mut c = Client::connect(server.addr, proto).await;
    let r = c.get("/trailers").await;
    assert_eq!(r.text(), "one two");
    let trailers = r.trailers.expect("trailers");
    assert_eq!(trailers["x-checksum"], "42");
    let end = within(STEP, "end", ends.recv()).await.unwrap();
    assert_eq!(end, ("/trailers".into(), None));
    server.shutdown(STEP).await;
});

both!(
    announced_trailers_left_empty_send_no_trailer_section,
    |proto| {
        let (app, mut ends) = app();
        let server = TestServer::start(app).await;
        let mut c = Client::connect(server.addr, proto).await;
        let r = c.get("/empty-trailers").await;
        assert_eq!(r.text(), "body");
        // (Over HTTP/2 an empty HEADERS frame would show as an empty map.)
        assert!(r.trailers.is_none(), "{:?}", r.trailers);
        let end = within(STEP, "end", ends.recv()).await.unwrap();
        assert_eq!(end, ("/empty-trailers".into(), None));
        server.shutdown(STEP).await;
    }
);

both!(an_app_failing_before_its_response_is_a_500, |proto| {
    let (app, mut ends) = app();
    let server = TestServer::start(app).await;
    let mut c = Client::connect(server.addr, proto).await;
    let r = c.get("/fail").await;
    assert_eq!(r.status, 500);
    let end = within(STEP, "end", ends.recv()).await.unwrap();
    assert_eq!(end, ("/fail".into(), Some("server_error".into())));
    server.shutdown(STEP).await;
});

both!(a_body_over_the_limit_is_413, |proto| {
    let (app, _) = app();
    let config = Config {
        max_body_size: 1000,
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    let mut c = Client::connect(server.addr, proto).await;
    let r = c.fetch("POST", "/x", &[], vec![1u8; 5000]).await;
    assert_eq!(r.status, 413);
    server.shutdown(STEP).await;
});

both!(a_client_leaving_mid_response_is_client_closed, |proto| {
    let (app, mut ends) = app();
    let server = TestServer::start(app).await;
    let mut c = Client::connect(server.addr, proto).await;
    let uri = c.uri("/slow");
    let mut req = http::Request::get(uri);
    if proto == Proto::H1 {
        req = req.header("host", "test");
    }
    let resp = c.send(req.body(Full::new(Bytes::new())).unwrap()).await;
    let mut body = resp.into_body();
    let first = within(STEP, "first chunk", body.frame()).await;
    assert!(first.is_some());
    // Leave: over h2 this resets the stream, over h1 closes the socket.
    drop(body);
    drop(c);
    let end = within(STEP, "end", ends.recv()).await.unwrap();
    assert_eq!(end, ("/slow".into(), Some("client_closed".into())));
    server.shutdown(STEP).await;
});

both!(an_event_stream_delivers_events_in_order, |proto| {
    let (app, _) = app();
    let server = TestServer::start(app).await;
    let mut c = Client::connect(server.addr, proto).await;
    let r = c
        .fetch(
            "GET",
            "/events",
            &[("accept", "text/event-stream")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(
        r.text(),
        "event: n\nid: 1\ndata: 1\n\nevent: n\nid: 2\ndata: 2\n\nevent: n\nid: 3\ndata: 3\n\n"
    );
    server.shutdown(STEP).await;
});

both!(a_websocket_session_echoes, |proto| {
    let (app, _) = app();
    let server = TestServer::start(app).await;
    let mut ws = ws_connect(server.addr, proto, "/ws").await;
    let hello = within(STEP, "hello", ws.next()).await.unwrap().unwrap();
    assert_eq!(
        hello.into_text().unwrap().as_str(),
        format!("hello over {}", version(proto))
    );
    for size in [5usize, 70_000, 1 << 20] {
        let msg = "x".repeat(size);
        ws.send(WsMessage::text(msg.clone())).await.unwrap();
        let echo = within(STEP, "echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().len(), size);
    }
    ws.send(WsMessage::binary(vec![1u8, 2, 3])).await.unwrap();
    let echo = within(STEP, "binary echo", ws.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echo.into_data().as_ref(), &[1u8, 2, 3]);
    ws.close(None).await.unwrap();
    server.shutdown(STEP).await;
});

both!(a_websocket_closed_before_accept_is_403, |proto| {
    let (app, _) = app();
    let server = TestServer::start(app).await;
    let (status, _, ws) = ws_try(server.addr, proto, "/deny", &[]).await;
    assert_eq!(status, 403);
    assert!(ws.is_none());
    server.shutdown(STEP).await;
});

both!(the_seed_session_runs, |proto| {
    let server = TestServer::start(pagi::app_fn(pagi_examples::bidirectional_websocket::app)).await;
    let mut ws = ws_connect(server.addr, proto, "/").await;
    let tick = within(STEP, "tick", ws.next()).await.unwrap().unwrap();
    assert_eq!(tick.into_text().unwrap().as_str(), "server tick #1");
    ws.send(WsMessage::text("hello")).await.unwrap();
    let reply = within(STEP, "reply", async {
        loop {
            let m = ws.next().await.unwrap().unwrap().into_text().unwrap();
            if !m.starts_with("server tick") {
                return m;
            }
        }
    })
    .await;
    assert_eq!(reply.as_str(), "you said: HELLO");
    ws.close(None).await.unwrap();
    server.shutdown(STEP).await;
});

#[tokio::test]
async fn h2_multiplexes_websockets_and_requests_on_one_connection() {
    let (app, _) = app();
    let server = TestServer::start(app).await;
    // One h2 connection: two WebSockets and a request, interleaved.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut s = send.clone();
        let mut req = http::Request::builder()
            .method("CONNECT")
            .uri("http://test/ws")
            .header("sec-websocket-version", "13");
        req.extensions_mut()
            .unwrap()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        s.ready().await.unwrap();
        let mut resp = s
            .send_request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let upgraded = hyper::upgrade::on(&mut resp).await.unwrap();
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        sockets.push(ws);
    }
    let mut s = send.clone();
    s.ready().await.unwrap();
    let resp = s
        .send_request(
            http::Request::get("http://test/plain")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let r = read_whole(resp).await;
    assert!(r.text().starts_with("GET /plain 2 http"), "{}", r.text());
    for (i, ws) in sockets.iter_mut().enumerate() {
        let _hello = within(STEP, "hello", ws.next()).await.unwrap().unwrap();
        ws.send(WsMessage::text(format!("stream {i}")))
            .await
            .unwrap();
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        let echo = within(STEP, "echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), format!("stream {i}"));
    }
    assert_eq!(
        server.handle.live_connections(),
        3,
        "one connection and two sessions"
    );
    for mut ws in sockets {
        ws.close(None).await.unwrap();
    }
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn h2_plain_connect_is_501() {
    let (app, _) = app();
    let server = TestServer::start(app).await;
    let mut c = Client::connect(server.addr, Proto::H2).await;
    let resp = c
        .send(
            http::Request::builder()
                .method("CONNECT")
                .uri("example.com:443")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), 501);
    server.shutdown(STEP).await;
}

both!(
    shutdown_closes_websockets_with_1001_and_tells_requests,
    |proto| {
        let (app, mut ends) = app();
        let server = TestServer::start(app).await;
        let mut ws = ws_connect(server.addr, proto, "/").await;
        let hello = within(STEP, "hello", ws.next()).await.unwrap().unwrap();
        assert_eq!(
            hello,
            WsMessage::text(format!("hello over {}", version(proto)))
        );
        let mut c = Client::connect(server.addr, proto).await;
        let mut req = http::Request::get(c.uri("/slow"));
        if proto == Proto::H1 {
            req = req.header("host", "test");
        }
        let mut body = c
            .send(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .into_body();
        assert!(within(STEP, "first chunk", body.frame()).await.is_some());
        let started = std::time::Instant::now();
        let stop = tokio::spawn(server.shutdown(STEP));
        loop {
            match within(STEP, "the close", ws.next()).await {
                Some(Ok(WsMessage::Close(Some(f)))) => {
                    assert_eq!(u16::from(f.code), 1001);
                    break;
                }
                Some(Ok(_)) => continue,
                other => panic!("expected a Close frame, got {other:?}"),
            }
        }
        let end = within(STEP, "the request's end", ends.recv())
            .await
            .unwrap();
        assert_eq!(end, ("/slow".into(), Some("server_shutdown".into())));
        drop((body, c, ws));
        within(STEP, "the server to stop", stop).await.unwrap();
        assert!(started.elapsed() < STEP, "{:?}", started.elapsed());
    }
);

both!(
    a_response_started_after_shutdown_began_is_told_and_ends,
    |proto| {
        let (app, mut ends) = app();
        let server = TestServer::start(app).await;
        let mut c = Client::connect(server.addr, proto).await;
        let mut req = http::Request::get(c.uri("/late"));
        if proto == Proto::H1 {
            req = req.header("host", "test");
        }
        let req = req.body(Full::new(Bytes::new())).unwrap();
        let pending = tokio::spawn(async move {
            let resp = c.send(req).await;
            read_whole(resp).await
        });
        // The app is still deciding when the server starts draining.
        let first = within(STEP, "the app to start", ends.recv()).await.unwrap();
        assert_eq!(first, ("/late:started".into(), None));
        let started = std::time::Instant::now();
        let stop = tokio::spawn(server.shutdown(STEP));
        let end = within(STEP, "the stream's end", ends.recv()).await.unwrap();
        assert_eq!(end, ("/late".into(), Some("server_shutdown".into())));
        let resp = within(STEP, "the response", pending).await.unwrap();
        assert_eq!(resp.status, 200);
        assert!(resp.text().starts_with("tick\n"), "{:?}", resp.text());
        within(STEP, "the server to stop", stop).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
);

both!(head_and_204_follow_the_length_rules, |proto| {
    let (app, _) = app();
    let server = TestServer::start(app).await;
    let mut c = Client::connect(server.addr, proto).await;
    let get = c.get("/whole").await;
    assert_eq!(get.text(), "0123456789");
    let head = c.fetch("HEAD", "/whole", &[], Bytes::new()).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // HEAD says what GET would have carried.
    assert_eq!(head.header("content-length"), Some("10"));
    let none = c.get("/nocontent").await;
    assert_eq!(none.status, 204);
    assert!(none.body.is_empty());
    assert_eq!(none.header("content-length"), None, "RFC 9110 §8.6");
    server.shutdown(STEP).await;
});

#[tokio::test]
async fn h2_streams_reset_while_their_apps_run_are_bounded() {
    let (app, mut ends) = app();
    let mut config = common::config();
    config.h2.max_concurrent_streams = 2;
    let server = TestServer::start_with(config, app).await;
    let mut c = Client::connect(server.addr, Proto::H2).await;
    // Four /hang requests whose apps ignore the client leaving; once each
    // app runs, the client drops its response, which resets the stream
    // (RST_STREAM CANCEL) and frees it for the next.
    for _ in 0..4 {
        let req = http::Request::get(c.uri("/hang"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let Client::H2(send) = &mut c else {
            unreachable!()
        };
        send.ready().await.unwrap();
        let response = send.send_request(req);
        let started = async {
            loop {
                if let Some((path, _)) = ends.recv().await {
                    if path == "/hang:started" {
                        return;
                    }
                }
            }
        };
        tokio::select! {
            _ = response => panic!("/hang answered"),
            () = started => {}
            () = tokio::time::sleep(STEP) => panic!("/hang did not start"),
        }
    }
    let shed = c.get("/x").await;
    assert_eq!(shed.status, 503, "{}", shed.text());
    // Once those apps finished, streams are served again.
    within(STEP, "a 200 again", async {
        while c.get("/x").await.status != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn h2_a_connection_carrying_only_a_websocket_is_not_idle() {
    let (app, _) = app();
    let mut config = common::config();
    config.header_read_timeout = Some(Duration::from_millis(100));
    let server = TestServer::start_with(config, app).await;
    let mut c = Client::connect(server.addr, Proto::H2).await;
    let Client::H2(send) = &mut c else {
        unreachable!()
    };
    let mut req = http::Request::builder()
        .method("CONNECT")
        .uri("http://test/")
        .version(http::Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    send.ready().await.unwrap();
    let mut resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let upgraded = hyper::upgrade::on(&mut resp).await.unwrap();
    // Several watchdog periods with only the WebSocket open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The connection still takes new streams.
    assert_eq!(c.get("/x").await.status, 200);
    drop(upgraded);
    server.shutdown(STEP).await;
}
