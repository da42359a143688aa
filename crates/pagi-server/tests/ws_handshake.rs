//! The WebSocket handshake: request validation, what the app does before
//! and after accepting, subprotocols and the denial-response extension.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    eof_within, http_raw, upgrade_request, RawWs, TestServer, OP_TEXT, SAMPLE_ACCEPT, STEP,
};
use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// One app, its behaviour picked by the request path. `calls` counts
/// websocket scopes it was called with.
fn behaviours(calls: Arc<AtomicUsize>) -> pagi::SharedApp {
    pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let calls = calls.clone();
        async move {
            let Scope::WebSocket(ws) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
            match ws.path.as_str() {
                "/close-before-accept" => {
                    send.send(SendEvent::close(1000, "")).await?;
                    Ok(())
                }
                "/fail-before-accept" => Err("boom before accept".into()),
                "/return-before-accept" => Ok(()),
                "/fail-after-accept" => {
                    send.send(SendEvent::accept()).await?;
                    Err::<(), BoxError>("boom after accept".into())
                }
                "/return-after-accept" => {
                    send.send(SendEvent::accept()).await?;
                    Ok(())
                }
                "/subprotocol" => {
                    assert_eq!(ws.subprotocols, ["chat", "superchat", "v3"]);
                    send.send(SendEvent::WebSocketAccept {
                        subprotocol: Some("superchat".into()),
                        headers: Headers::from([("x-extra", "yes")]),
                    })
                    .await?;
                    while !receive.recv().await.is_disconnect() {}
                    Ok(())
                }
                "/deny" => {
                    assert!(ws.extensions.contains("websocket.http.response"));
                    send.send(SendEvent::WebSocketHttpResponseStart {
                        status: 401,
                        headers: Headers::from([
                            ("content-type", "application/json"),
                            ("www-authenticate", "Bearer"),
                        ]),
                    })
                    .await?;
                    for (part, more) in [("{\"error\":", true), ("\"unauthorized\"}", false)] {
                        send.send(SendEvent::WebSocketHttpResponseBody {
                            body: part.into(),
                            more,
                        })
                        .await?;
                    }
                    Ok(())
                }
                "/extensions" => {
                    send.send(SendEvent::accept()).await?;
                    let names: Vec<&str> = ws.extensions.names().collect();
                    send.send(SendEvent::text(names.join(","))).await?;
                    while !receive.recv().await.is_disconnect() {}
                    Ok(())
                }
                other => Err(format!("no behaviour for {other}").into()),
            }
        }
    })
}

async fn server() -> (TestServer, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    (TestServer::start(behaviours(calls.clone())).await, calls)
}

fn request(method: &str, headers: &[&str]) -> Vec<u8> {
    let mut r = format!("{method} /return-after-accept HTTP/1.1\r\nHost: test\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const VERSION: &str = "Sec-WebSocket-Version: 13";
const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";

#[tokio::test]
async fn invalid_handshakes_are_400_and_never_reach_the_app() {
    let (server, calls) = server().await;
    let cases: [(&str, &str, Vec<&str>); 6] = [
        ("missing key", "GET", vec![UPGRADE, CONNECTION, VERSION]),
        (
            "short key",
            "GET",
            vec![UPGRADE, CONNECTION, VERSION, "Sec-WebSocket-Key: AAAA"],
        ),
        (
            "key not base64",
            "GET",
            vec![
                UPGRADE,
                CONNECTION,
                VERSION,
                "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==",
            ],
        ),
        (
            "two keys",
            "GET",
            vec![UPGRADE, CONNECTION, VERSION, KEY, KEY],
        ),
        (
            "POST",
            "POST",
            vec![UPGRADE, CONNECTION, VERSION, KEY, "Content-Length: 0"],
        ),
        (
            "no Connection: upgrade",
            "GET",
            vec![UPGRADE, "Connection: keep-alive", VERSION, KEY],
        ),
    ];
    for (what, method, headers) in cases {
        let (resp, _) = http_raw(server.addr, &request(method, &headers)).await;
        assert_eq!(resp.status, 400, "{what}: {resp:?}");
        assert!(resp.header("sec-websocket-accept").is_none(), "{what}");
    }
    // HTTP/1.0 (hyper does not mark it as an upgrade): still a refused
    // handshake, not a plain request for the app.
    let http10 = String::from_utf8(request("GET", &[UPGRADE, CONNECTION, VERSION, KEY]))
        .unwrap()
        .replacen("HTTP/1.1", "HTTP/1.0", 1);
    let (resp, _) = http_raw(server.addr, http10.as_bytes()).await;
    assert_eq!(resp.status, 400, "HTTP/1.0: {resp:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the app was called");
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn wrong_version_is_426_with_supported_version() {
    let (server, calls) = server().await;
    for version in ["Sec-WebSocket-Version: 8", "Sec-WebSocket-Version: 14"] {
        let (resp, _) = http_raw(
            server.addr,
            &request("GET", &[UPGRADE, CONNECTION, version, KEY]),
        )
        .await;
        assert_eq!(resp.status, 426, "{resp:?}");
        assert_eq!(resp.header("sec-websocket-version"), Some("13"), "{resp:?}");
    }
    let (resp, _) = http_raw(server.addr, &request("GET", &[UPGRADE, CONNECTION, KEY])).await;
    assert!(
        [400, 426].contains(&resp.status),
        "missing version: {resp:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn close_before_accept_is_403() {
    let (server, _) = server().await;
    let (resp, mut stream) = http_raw(
        server.addr,
        upgrade_request("/close-before-accept", "").as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 403, "{resp:?}");
    assert!(eof_within(&mut stream, Duration::from_secs(3)).await);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn app_failing_or_returning_before_accept_is_500() {
    let (server, calls) = server().await;
    for path in ["/fail-before-accept", "/return-before-accept"] {
        let (resp, mut stream) = http_raw(server.addr, upgrade_request(path, "").as_bytes()).await;
        assert_eq!(resp.status, 500, "{path}: {resp:?}");
        assert!(
            eof_within(&mut stream, Duration::from_secs(3)).await,
            "{path}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

async fn close_code_after_accept(path: &str) -> Option<u16> {
    let (server, _) = server().await;
    let mut ws = RawWs::connect(server.addr, path).await;
    let (close, data) = ws.read_until_close().await;
    assert!(data.is_empty(), "{data:?}");
    // Complete the closing handshake.
    ws.send_close(close.close_parts().0, b"").await;
    assert!(ws.closed_within(Duration::from_secs(3)).await);
    drop(ws);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
    close.close_parts().0
}

#[tokio::test]
async fn app_failing_after_accept_closes_1011() {
    assert_eq!(
        close_code_after_accept("/fail-after-accept").await,
        Some(1011)
    );
}

#[tokio::test]
async fn app_returning_after_accept_closes_1000() {
    assert_eq!(
        close_code_after_accept("/return-after-accept").await,
        Some(1000)
    );
}

#[tokio::test]
async fn subprotocol_chosen_by_app_is_in_the_101() {
    let (server, _) = server().await;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let ws = RawWs::handshake(
        stream,
        "/subprotocol",
        "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: v3\r\n",
    )
    .await;
    assert_eq!(
        ws.response.header("sec-websocket-protocol"),
        Some("superchat")
    );
    assert_eq!(
        ws.response.header("sec-websocket-accept"),
        Some(SAMPLE_ACCEPT)
    );
    assert_eq!(ws.response.header("x-extra"), Some("yes"));
    drop(ws);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn denial_response_carries_the_apps_status_headers_and_body() {
    let (server, _) = server().await;
    let (resp, mut stream) = http_raw(server.addr, upgrade_request("/deny", "").as_bytes()).await;
    assert_eq!(resp.status, 401, "{resp:?}");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    assert_eq!(resp.body_text(), "{\"error\":\"unauthorized\"}");
    assert!(resp.header("sec-websocket-accept").is_none());
    assert!(eof_within(&mut stream, Duration::from_secs(3)).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn denial_extension_is_advertised_in_scope() {
    let (server, _) = server().await;
    let mut ws = RawWs::connect(server.addr, "/extensions").await;
    let f = ws.read_frame().await.unwrap();
    assert_eq!(f.opcode, OP_TEXT);
    let names = String::from_utf8(f.payload).unwrap();
    assert!(
        names.split(',').any(|n| n == "websocket.http.response"),
        "extensions: {names:?}"
    );
    drop(ws);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

fn panicking_app() -> pagi::SharedApp {
    pagi::app_fn(
        |scope: Scope, mut receive: Receiver, send: Sender| async move {
            assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
            if scope.path() == "/panic-after-accept" {
                send.send(SendEvent::accept()).await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("app panicked on purpose");
            #[allow(unreachable_code)]
            Ok::<(), BoxError>(())
        },
    )
}

#[tokio::test]
async fn app_panic_before_accept_is_500() {
    let server = TestServer::start(panicking_app()).await;
    let (resp, mut stream) = http_raw(
        server.addr,
        upgrade_request("/panic-before-accept", "").as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 500, "{resp:?}");
    assert!(eof_within(&mut stream, Duration::from_secs(3)).await);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn app_panic_after_accept_closes_1011() {
    let server = TestServer::start(panicking_app()).await;
    let mut ws = RawWs::connect(server.addr, "/panic-after-accept").await;
    let (close, _) = ws.read_until_close().await;
    assert_eq!(close.close_parts().0, Some(1011));
    ws.send_close(Some(1011), b"").await;
    assert!(ws.closed_within(Duration::from_secs(3)).await);
    drop(ws);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
}
