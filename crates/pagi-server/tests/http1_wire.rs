//! HTTP/1.1 to the letter, over raw sockets: the statuses the server answers
//! for bad requests (with short text bodies), the framing rules for
//! responses, trailers, 100-continue, pipelining, persistence, and what the
//! app sees (`http.disconnect` with the standard reasons).

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{
    eof_within, http_raw, read_head_response, read_response, record_end, within, Ends, TestServer,
    STEP,
};
use pagi::{Body, BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use pagi_server::Config;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// One app for every case, chosen by path.
fn app() -> (pagi::SharedApp, Ends) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let Scope::Http(http) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            let path = http.path.clone();
            record_end(&http.connection, &path, &tx);
            handle(&path, &http, &mut receive, &send).await
        }
    });
    (app, rx)
}

async fn read_body(receive: &mut Receiver) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        match receive.recv().await {
            ReceiveEvent::HttpRequest { body: b, more } => {
                body.extend_from_slice(&b);
                if !more {
                    return Some(body);
                }
            }
            _ => return None,
        }
    }
}

async fn handle(
    path: &str,
    http: &pagi::HttpScope,
    receive: &mut Receiver,
    send: &Sender,
) -> Result<(), BoxError> {
    let text = |s: &str| {
        Headers::new()
            .with("content-type", "text/plain")
            .with("x-path", s.to_owned())
    };
    match path {
        "/echo" => {
            let Some(body) = read_body(receive).await else {
                return Ok(());
            };
            send.send(SendEvent::response_start(200, text("echo")))
                .await?;
            send.send(SendEvent::response_body(body, false)).await?;
        }
        "/ignore-body" => {
            send.send(SendEvent::response_start(
                200,
                text("ignore").with("content-length", "2"),
            ))
            .await?;
            send.send(SendEvent::response_body("ok", false)).await?;
        }
        "/host" => {
            read_body(receive).await;
            let host = http.headers.get("host").cloned().unwrap_or_default();
            send.send(SendEvent::response_start(200, text("host")))
                .await?;
            send.send(SendEvent::response_body(host, false)).await?;
        }
        p if p.starts_with("/status/") => {
            read_body(receive).await;
            let status: u16 = p["/status/".len()..].parse()?;
            send.send(SendEvent::response_start(
                status,
                text("status").with("content-length", "11"),
            ))
            .await?;
            send.send(SendEvent::response_body("hello world", false))
                .await?;
        }
        "/trailers" => {
            read_body(receive).await;
            send.send(SendEvent::HttpResponseStart {
                status: 200,
                headers: text("trailers"),
                trailers: true,
            })
            .await?;
            for part in ["one ", "two ", "three"] {
                send.send(SendEvent::response_body(part, true)).await?;
            }
            send.send(SendEvent::HttpResponseTrailers {
                headers: Headers::new().with("x-checksum", "abc123"),
            })
            .await?;
        }
        "/bad-trailer" => {
            read_body(receive).await;
            send.send(SendEvent::HttpResponseStart {
                status: 200,
                headers: text("bad-trailer"),
                trailers: true,
            })
            .await?;
            let refused = send
                .send(SendEvent::HttpResponseTrailers {
                    headers: Headers::new().with("content-length", "5"),
                })
                .await;
            assert!(refused.is_err());
            send.send(SendEvent::HttpResponseTrailers {
                headers: Headers::new(),
            })
            .await?;
        }
        "/final-1xx" => {
            read_body(receive).await;
            send.send(SendEvent::response_start(103, text("1xx")))
                .await?;
        }
        "/too-long" => {
            read_body(receive).await;
            send.send(SendEvent::response_start(
                200,
                text("too-long").with("content-length", "3"),
            ))
            .await?;
            send.send(SendEvent::response_body("abcdefghij", false))
                .await?;
        }
        "/too-short" => {
            read_body(receive).await;
            send.send(SendEvent::response_start(
                200,
                text("too-short").with("content-length", "30"),
            ))
            .await?;
            send.send(SendEvent::response_body("abc", false)).await?;
        }
        "/stream" => {
            read_body(receive).await;
            send.send(SendEvent::response_start(200, text("stream")))
                .await?;
            send.send(SendEvent::response_body("first", true)).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            send.send(SendEvent::response_body("second", false)).await?;
        }
        "/file" | "/fh" => {
            read_body(receive).await;
            let q = String::from_utf8_lossy(&http.query_string).into_owned();
            let arg = |k: &str| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(str::to_owned)
            };
            let file_path = std::path::PathBuf::from(arg("path").unwrap_or_default());
            let offset = arg("offset").map_or(0, |o| o.parse().unwrap());
            let length = arg("length").map(|l| l.parse().unwrap());
            let body = if path == "/file" {
                Body::File {
                    path: file_path,
                    offset,
                    length,
                }
            } else {
                Body::Handle {
                    file: std::fs::File::open(&file_path)?,
                    offset,
                    length,
                }
            };
            send.send(SendEvent::response_start(200, text("file")))
                .await?;
            send.send(SendEvent::HttpResponseBody { body, more: false })
                .await?;
        }
        _ => {
            read_body(receive).await;
            send.send(SendEvent::response_start(404, text("none")))
                .await?;
            send.send(SendEvent::response_body("not found", false))
                .await?;
        }
    }
    Ok(())
}

async fn server() -> (TestServer, Ends) {
    let (app, ends) = app();
    (TestServer::start(app).await, ends)
}

async fn end_of(ends: &mut Ends) -> (String, Option<String>) {
    within(STEP, "the app's end", ends.recv()).await.unwrap()
}

/// The response to `request`, and whether the server then closed.
async fn ask(addr: std::net::SocketAddr, request: &[u8]) -> (common::RawResponse, bool) {
    let (resp, mut stream) = http_raw(addr, request).await;
    let closed = eof_within(&mut stream, Duration::from_millis(500)).await;
    (resp, closed)
}

fn assert_text_error(resp: &common::RawResponse, status: u16) {
    assert_eq!(resp.status, status, "{resp:?}");
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{resp:?}"
    );
    assert!(!resp.body.is_empty(), "an empty {status} body");
    assert_eq!(resp.header("connection"), Some("close"));
}

#[tokio::test]
async fn malformed_chunked_bodies_are_400_and_the_app_sees_a_protocol_error() {
    let (server, mut ends) = server().await;
    for (bad, why) in [
        ("zz\r\n", "Invalid chunk size"),
        ("-1\r\n", "Invalid chunk size"),
        ("11111111111111111\r\nx", "Chunk size too large"),
        ("5\nhello\r\n0\r\n\r\n", "Invalid chunk size"),
        ("5\r\nhelloXX0\r\n\r\n", "Invalid chunk framing"),
    ] {
        let req =
            format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{bad}");
        let (resp, closed) = ask(server.addr, req.as_bytes()).await;
        assert_text_error(&resp, 400);
        assert!(
            resp.body_text().starts_with(why),
            "{bad:?}: {}",
            resp.body_text()
        );
        assert!(closed, "{bad:?}: the connection stays open");
        assert_eq!(
            end_of(&mut ends).await,
            ("/echo".into(), Some("protocol_error".into())),
            "{bad:?}"
        );
    }
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn bad_heads_get_short_text_answers_and_the_connection_closes() {
    let (server, _ends) = server().await;
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"BLAH\r\n\r\n".to_vec(), 400),
        (long_target.into_bytes(), 414),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n".to_vec(), 400),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(), 501),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc".to_vec(), 400),
        (b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), 400),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 2\r\n\r\n".to_vec(), 400),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(), 501),
        (b"PUT /echo HTTP/1.1\r\nHost: t\r\nExpect: something-else\r\n\r\n".to_vec(), 417),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n".to_vec(), 413),
    ];
    for (req, status) in cases {
        let (resp, closed) = ask(server.addr, &req).await;
        assert_text_error(&resp, status);
        assert!(closed, "{status}: the connection stays open");
    }
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn the_header_size_limit_is_exact() {
    let (app, _ends) = app();
    let config = Config {
        max_header_size: 65536,
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    let head = |filler: usize| {
        format!(
            "GET /host HTTP/1.1\r\nHost: t\r\nX-Fill: {}\r\n\r\n",
            "x".repeat(filler)
        )
    };
    let base = head(0).len();
    let (resp, _) = ask(server.addr, head(65536 - base).as_bytes()).await;
    assert_eq!(resp.status, 200, "a head of exactly the limit");
    let (resp, _) = ask(server.addr, head(65536 - base + 1).as_bytes()).await;
    assert_text_error(&resp, 431);
    let (resp, _) = ask(server.addr, head(100_000).as_bytes()).await;
    assert_text_error(&resp, 431);
    let many: String = (0..101).map(|i| format!("h{i}: v\r\n")).collect();
    let (resp, _) = ask(
        server.addr,
        format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_text_error(&resp, 431);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn host_and_the_absolute_form() {
    let (server, _ends) = server().await;
    let (resp, _) = ask(
        server.addr,
        b"GET http://example.org:8080/host HTTP/1.1\r\nHost: other\r\n\r\n",
    )
    .await;
    assert_eq!(
        (resp.status, resp.body_text().as_str()),
        (200, "example.org:8080")
    );
    // HTTP/1.0 may leave Host out.
    let (resp, _) = ask(server.addr, b"GET /host HTTP/1.0\r\n\r\n").await;
    assert_eq!(resp.status, 200);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn bodiless_statuses_carry_no_body_whatever_the_app_sends() {
    let (server, _ends) = server().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = BytesMut::new();
    // 204: no content-length, no body; the connection stays usable.
    s.write_all(b"GET /status/204 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None);
    assert!(r.header("transfer-encoding").is_none());
    // 205: content-length 0.
    s.write_all(b"GET /status/205 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!((r.status, r.header("content-length")), (205, Some("0")));
    assert!(r.body.is_empty());
    // 304: the representation's length, no body.
    s.write_all(b"GET /status/304 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!((r.status, r.header("content-length")), (304, Some("11")));
    // HEAD: the length GET would have, no body.
    s.write_all(b"HEAD /status/200 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = read_head_response(&mut s, &mut buf).await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("11")));
    // Nothing of those bodies was sent: the next response starts right here.
    s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!((r.status, r.body_text().as_str()), (200, "hello world"));
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn a_1xx_final_status_is_the_spec_backstop_500() {
    let (server, mut ends) = server().await;
    let (resp, closed) = ask(server.addr, b"GET /final-1xx HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_text_error(&resp, 500);
    assert!(closed);
    let (path, reason) = end_of(&mut ends).await;
    assert_eq!(
        (path.as_str(), reason.as_deref()),
        ("/final-1xx", Some("server_error"))
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn trailers_reach_the_wire_without_being_announced() {
    let (server, mut ends) = server().await;
    let (resp, _) = ask(server.addr, b"GET /trailers HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(resp.chunked);
    assert_eq!(resp.body_text(), "one two three");
    assert_eq!(
        resp.trailers,
        [("x-checksum".to_owned(), "abc123".to_owned())]
    );
    assert_eq!(end_of(&mut ends).await, ("/trailers".into(), None));
    // A field that must not be a trailer fails the send.
    let (resp, _) = ask(server.addr, b"GET /bad-trailer HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(resp.status, 200);
    assert!(resp.trailers.is_empty());
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_when_the_app_reads() {
    let (server, _ends) = server().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    let interim = within(STEP, "100", common::read_head(&mut s, &mut buf))
        .await
        .unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(b"hello").await.unwrap();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!((r.status, r.body_text().as_str()), (200, "hello"));
    // An app that answers without reading: no 100, and the connection
    // closes (the client may never send the body).
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /ignore-body HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (server, _ends) = server().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\noneGET /status/200 HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    for want in ["one", "hello world", "two"] {
        let r = read_response(&mut s, &mut buf).await;
        assert_eq!(r.body_text(), want);
    }
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn an_unread_body_is_drained_when_small_and_closes_the_connection_when_not() {
    let (server, _ends) = server().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = BytesMut::new();
    // 1 KiB the app never reads: dropped, the connection serves on.
    let body = "x".repeat(1024);
    s.write_all(
        format!("POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n{body}")
            .as_bytes(),
    )
    .await
    .unwrap();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!((r.status, r.header("connection")), (200, None));
    s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!(r.body_text(), "hello world");
    // 1 MiB the app never reads: not worth reading, the connection closes.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\nxx")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!(r.header("connection"), Some("close"));
    assert!(eof_within(&mut s, STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn http10_clients_get_a_length_or_a_close_never_chunks() {
    let (server, _ends) = server().await;
    let (r, closed) = ask(
        server.addr,
        b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    assert!(!r.chunked && r.header("transfer-encoding").is_none());
    assert_eq!(r.body_text(), "firstsecond");
    assert!(closed, "a close-delimited body ends with the connection");
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /status/200 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!(r.header("connection"), Some("keep-alive"));
    s.write_all(b"GET /status/200 HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!(r.body_text(), "hello world");
    assert!(
        eof_within(&mut s, STEP).await,
        "1.0 without keep-alive closes"
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn a_body_longer_than_its_length_is_cut_and_a_shorter_one_closes() {
    let (server, _ends) = server().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = BytesMut::new();
    s.write_all(b"GET /too-long HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!(r.body_text(), "abc");
    // The cut bytes did not leak into the next response.
    s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, &mut buf).await;
    assert_eq!(r.body_text(), "hello world");
    // Fewer bytes than promised: the connection ends (the client sees a
    // short body, never a wrong one).
    let (mut s, mut buf) = (
        TcpStream::connect(server.addr).await.unwrap(),
        BytesMut::new(),
    );
    s.write_all(b"GET /too-short HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let head = within(STEP, "head", common::read_head(&mut s, &mut buf))
        .await
        .unwrap();
    assert_eq!(head.header("content-length"), Some("30"));
    assert!(eof_within(&mut s, STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn file_bodies_honour_offset_and_length_and_fail_when_unopenable() {
    let (server, mut ends) = server().await;
    let path = std::env::temp_dir().join(format!("pagi-file-body-{}", std::process::id()));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let p = path.display();
    for route in ["file", "fh"] {
        for (query, want) in [
            (String::new(), &data[..]),
            ("&offset=1000&length=70000".to_owned(), &data[1000..71000]),
            ("&offset=299990".to_owned(), &data[299_990..]),
            ("&offset=400000".to_owned(), &data[..0]),
            ("&offset=10&length=999999999".to_owned(), &data[10..]),
        ] {
            let req = format!("GET /{route}?path={p}{query} HTTP/1.1\r\nHost: t\r\n\r\n");
            let (r, _) = ask(server.addr, req.as_bytes()).await;
            assert_eq!(r.status, 200);
            assert!(r.body == want, "{route}{query}: {} bytes", r.body.len());
            let (_, reason) = end_of(&mut ends).await;
            assert_eq!(reason, None);
        }
    }
    // An unopenable file fails the send: the app's error is the 500.
    let req = "GET /file?path=/nonexistent/pagi HTTP/1.1\r\nHost: t\r\n\r\n";
    let (r, _) = ask(server.addr, req.as_bytes()).await;
    assert_eq!(r.status, 500);
    std::fs::remove_file(&path).unwrap();
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn a_client_leaving_mid_body_is_client_closed() {
    let (server, mut ends) = server().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    assert_eq!(
        end_of(&mut ends).await,
        ("/echo".into(), Some("client_closed".into()))
    );
    let _ = Bytes::new();
    server.shutdown(STEP).await;
}

// Found in review: a connection that sent part of the HTTP/2 preface and
// then nothing escaped the header read timeout (the wait for the rest of
// the preface skipped the watchdog).
#[tokio::test]
async fn a_partial_h2_preface_is_closed_by_the_header_read_timeout() {
    let app = pagi::app_fn(|_: Scope, _: Receiver, _: Sender| async { Ok::<(), BoxError>(()) });
    let config = Config {
        header_read_timeout: Some(Duration::from_millis(100)),
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert!(eof_within(&mut s, Duration::from_secs(2)).await);
    server.shutdown(STEP).await;
}
