//! Transports and identity: Unix sockets (scope `server` is the path, no
//! `client`; stale socket files replaced, live ones refused, the file removed
//! on shutdown), several listeners at once, proxy headers from trusted peers
//! only, the PROXY protocol (v1 and v2, from raw bytes), and `root_path`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use common::{read_response, within, TestServer, STEP};
use pagi::{BoxError, ReceiveEvent, Receiver, Scope, SendEvent, Sender, ServerAddr};
use pagi_server::{Config, Listen, ListenAddr, ProxyConfig, Server};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Answers with what its scope says about the connection, one `key=value`
/// per line; WebSocket sessions send that as their first message.
fn identity_app() -> pagi::SharedApp {
    pagi::app_fn(
        |scope: Scope, mut receive: Receiver, send: Sender| async move {
            let (scheme, client, server, root) = match &scope {
                Scope::Http(h) => (
                    h.scheme.clone(),
                    h.client,
                    h.server.clone(),
                    h.root_path.clone(),
                ),
                Scope::WebSocket(w) => (
                    w.scheme.clone(),
                    w.client,
                    w.server.clone(),
                    w.root_path.clone(),
                ),
                _ => return Err(pagi::unsupported_scope(&scope)),
            };
            let server = match server {
                Some(ServerAddr::Tcp(a)) => format!("tcp:{a}"),
                Some(ServerAddr::Unix(p)) => format!("unix:{}", p.display()),
                None => "none".into(),
            };
            let client = client.map_or_else(|| "none".into(), |c| c.to_string());
            let text =
                format!("scheme={scheme}\nclient={client}\nserver={server}\nroot_path={root}");
            if let Scope::WebSocket(_) = scope {
                assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
                send.send(SendEvent::accept()).await?;
                send.send(SendEvent::text(text)).await?;
                while !receive.recv().await.is_disconnect() {}
                return Ok(());
            }
            while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
            send.send(SendEvent::response_start(
                200,
                [("content-length", text.len().to_string())],
            ))
            .await?;
            send.send(SendEvent::response_body(text, false)).await?;
            Ok::<(), BoxError>(())
        },
    )
}

fn field(report: &str, key: &str) -> String {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        .to_owned()
}

/// One request (`extra` header lines) over any stream; the response body.
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, prefix: &[u8], extra: &str) -> String {
    s.write_all(prefix).await.unwrap();
    s.write_all(format!("GET /who HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes())
        .await
        .unwrap();
    let resp = read_response(&mut s, &mut BytesMut::new()).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    resp.body_text()
}

fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pagi-{name}-{}.sock", std::process::id()))
}

async fn start(listen: Vec<Listen>, proxy: ProxyConfig, root_path: &str) -> TestServer {
    let config = Config {
        listen,
        proxy,
        root_path: root_path.to_owned(),
        ..common::config()
    };
    TestServer::start_with(config, identity_app()).await
}

#[tokio::test]
async fn unix_socket_scopes_name_the_path_and_no_client() {
    let path = socket_path("unix");
    let listen = Listen {
        addr: ListenAddr::Unix {
            path: path.clone(),
            mode: Some(0o660),
        },
        tls: None,
    };
    let server = start(vec![listen], ProxyConfig::default(), "").await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let report = ask(UnixStream::connect(&path).await.unwrap(), b"", "").await;
    assert_eq!(field(&report, "server"), format!("unix:{}", path.display()));
    assert_eq!(field(&report, "client"), "none");
    assert_eq!(field(&report, "scheme"), "http");
    // A WebSocket over the Unix socket.
    let stream = UnixStream::connect(&path).await.unwrap();
    let (mut ws, _) = within(
        STEP,
        "handshake",
        tokio_tungstenite::client_async("ws://localhost/", stream),
    )
    .await
    .unwrap();
    use futures_util::StreamExt;
    let first = within(STEP, "report", ws.next()).await.unwrap().unwrap();
    assert_eq!(field(first.to_text().unwrap(), "scheme"), "ws");
    drop(ws);
    server.shutdown(STEP).await;
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_and_a_live_one_refused() {
    let path = socket_path("stale");
    let listen = || Listen {
        addr: ListenAddr::Unix {
            path: path.clone(),
            mode: None,
        },
        tls: None,
    };
    // A socket file nobody listens on, as a crashed run leaves it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = start(vec![listen()], ProxyConfig::default(), "").await;
    // A second server on the same live path is an error.
    let config = Config {
        listen: vec![listen()],
        ..common::config()
    };
    let err = match Server::bind(config, identity_app()).await {
        Ok(_) => panic!("bound a live socket twice"),
        Err(e) => e,
    };
    assert!(err.is_addr_in_use(), "{err}");
    // The first one is unharmed.
    let report = ask(UnixStream::connect(&path).await.unwrap(), b"", "").await;
    assert!(report.contains("server=unix:"));
    server.shutdown(STEP).await;
    // A path that is not a socket is never removed.
    std::fs::write(&path, "precious").unwrap();
    let config = Config {
        listen: vec![listen()],
        ..common::config()
    };
    assert!(Server::bind(config, identity_app()).await.is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn several_listeners_serve_at_once() {
    let path = socket_path("multi");
    let listen = vec![
        Listen::tcp("127.0.0.1:0".parse().unwrap()),
        Listen::tcp("[::1]:0".parse().unwrap()),
        Listen {
            addr: ListenAddr::Unix {
                path: path.clone(),
                mode: None,
            },
            tls: None,
        },
    ];
    let server = start(listen, ProxyConfig::default(), "").await;
    let addrs = server.handle.listen_addrs().to_vec();
    assert_eq!(addrs.len(), 3);
    for a in &addrs {
        let report = match a {
            ServerAddr::Tcp(sa) => ask(TcpStream::connect(sa).await.unwrap(), b"", "").await,
            ServerAddr::Unix(p) => ask(UnixStream::connect(p).await.unwrap(), b"", "").await,
        };
        let want = match a {
            ServerAddr::Tcp(sa) => format!("tcp:{sa}"),
            ServerAddr::Unix(p) => format!("unix:{}", p.display()),
        };
        assert_eq!(field(&report, "server"), want);
    }
    server.shutdown(STEP).await;
}

fn proxy(headers: bool, protocol: bool, trusted: &str) -> ProxyConfig {
    ProxyConfig {
        headers,
        protocol,
        trusted: trusted.parse().unwrap(),
    }
}

#[tokio::test]
async fn proxy_headers_from_a_trusted_peer_set_client_and_scheme() {
    let server = start(
        vec![Listen::tcp("127.0.0.1:0".parse().unwrap())],
        proxy(true, false, "127.0.0.1"),
        "/app",
    )
    .await;
    let tcp = || TcpStream::connect(server.addr);
    let report = ask(
        tcp().await.unwrap(),
        b"",
        "X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\nX-Forwarded-Proto: https\r\n",
    )
    .await;
    assert_eq!(field(&report, "client"), "203.0.113.7:0");
    assert_eq!(field(&report, "scheme"), "https");
    assert_eq!(field(&report, "root_path"), "/app");
    let report = ask(
        tcp().await.unwrap(),
        b"",
        "Forwarded: for=\"[2001:db8::9]:4711\";proto=https\r\n",
    )
    .await;
    assert_eq!(field(&report, "client"), "[2001:db8::9]:4711");
    // A WebSocket behind a TLS proxy is wss.
    let stream = tcp().await.unwrap();
    let req = http::Request::get("ws://localhost/")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-For", "198.51.100.4")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "13")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Host", "localhost")
        .body(())
        .unwrap();
    let (mut ws, _) = within(
        STEP,
        "handshake",
        tokio_tungstenite::client_async(req, stream),
    )
    .await
    .unwrap();
    use futures_util::StreamExt;
    let first = within(STEP, "report", ws.next()).await.unwrap().unwrap();
    assert_eq!(field(first.to_text().unwrap(), "scheme"), "wss");
    assert_eq!(field(first.to_text().unwrap(), "client"), "198.51.100.4:0");
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn proxy_headers_from_an_untrusted_peer_are_ignored_entirely() {
    // Only 10.9.9.9 is trusted; the test client is 127.0.0.1.
    let server = start(
        vec![Listen::tcp("127.0.0.1:0".parse().unwrap())],
        proxy(true, false, "10.9.9.9"),
        "",
    )
    .await;
    let report = ask(
        TcpStream::connect(server.addr).await.unwrap(),
        b"",
        "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nForwarded: for=192.0.2.1\r\n",
    )
    .await;
    assert!(
        field(&report, "client").starts_with("127.0.0.1:"),
        "{report}"
    );
    assert_eq!(field(&report, "scheme"), "http");
    server.shutdown(STEP).await;
    // And without --proxy-headers nobody is believed.
    let server = start(
        vec![Listen::tcp("127.0.0.1:0".parse().unwrap())],
        proxy(false, false, "*"),
        "",
    )
    .await;
    let report = ask(
        TcpStream::connect(server.addr).await.unwrap(),
        b"",
        "X-Forwarded-For: 203.0.113.7\r\n",
    )
    .await;
    assert!(
        field(&report, "client").starts_with("127.0.0.1:"),
        "{report}"
    );
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn the_proxy_protocol_gives_the_client_address() {
    let server = start(
        vec![Listen::tcp("127.0.0.1:0".parse().unwrap())],
        proxy(false, true, "127.0.0.1"),
        "",
    )
    .await;
    let tcp = || TcpStream::connect(server.addr);
    let report = ask(
        tcp().await.unwrap(),
        b"PROXY TCP4 203.0.113.7 127.0.0.1 56324 443\r\n",
        "",
    )
    .await;
    assert_eq!(field(&report, "client"), "203.0.113.7:56324");
    // v2, IPv6, with a TLV.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21".to_vec();
    let mut body = Vec::new();
    body.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.extend_from_slice(&[0x1f, 0x90, 0x01, 0xbb, 0x04, 0x00, 0x01, 0x00]);
    v2.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v2.extend_from_slice(&body);
    let report = ask(tcp().await.unwrap(), &v2, "").await;
    assert_eq!(field(&report, "client"), "[2001:db8::7]:8080");
    // LOCAL (a health check): the real peer.
    let report = ask(
        tcp().await.unwrap(),
        b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00",
        "",
    )
    .await;
    assert!(field(&report, "client").starts_with("127.0.0.1:"));
    // A trusted peer that sends no header is refused.
    let mut s = tcp().await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert!(common::eof_within(&mut s, STEP).await);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn the_proxy_protocol_is_not_expected_from_untrusted_peers() {
    let server = start(
        vec![Listen::tcp("127.0.0.1:0".parse().unwrap())],
        proxy(false, true, "10.9.9.9"),
        "",
    )
    .await;
    // A PROXY header from an untrusted peer is not stripped: it is read as
    // the request and refused, never believed.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let resp = within(
        STEP,
        "response",
        read_response(&mut s, &mut BytesMut::new()),
    )
    .await;
    assert_eq!(resp.status, 400);
    // A plain request from it is served as usual.
    let report = ask(TcpStream::connect(server.addr).await.unwrap(), b"", "").await;
    assert!(field(&report, "client").starts_with("127.0.0.1:"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn behind_a_proxy_protocol_proxy_the_clients_own_forwarded_headers_are_not_believed() {
    // The PROXY header's source (203.0.113.7) is an end client, not a
    // trusted proxy: what it says in X-Forwarded-* is its own invention.
    let server = start(
        vec![Listen::tcp("127.0.0.1:0".parse().unwrap())],
        proxy(true, true, "127.0.0.1,10.0.0.0/8"),
        "",
    )
    .await;
    let tcp = || TcpStream::connect(server.addr);
    let forged = "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n";
    let report = ask(
        tcp().await.unwrap(),
        b"PROXY TCP4 203.0.113.7 127.0.0.1 56324 443\r\n",
        forged,
    )
    .await;
    assert_eq!(field(&report, "client"), "203.0.113.7:56324");
    assert_eq!(field(&report, "scheme"), "http");
    // A source that is itself a trusted proxy (an L7 proxy behind an L4
    // one) is believed.
    let report = ask(
        tcp().await.unwrap(),
        b"PROXY TCP4 10.0.0.5 127.0.0.1 56324 443\r\n",
        forged,
    )
    .await;
    assert_eq!(field(&report, "client"), "1.2.3.4:0");
    assert_eq!(field(&report, "scheme"), "https");
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn a_socket_file_another_server_took_over_is_left_alone_at_shutdown() {
    let path = socket_path("taken-over");
    let server = start(
        vec![Listen {
            addr: ListenAddr::Unix {
                path: path.clone(),
                mode: None,
            },
            tls: None,
        }],
        ProxyConfig::default(),
        "",
    )
    .await;
    // An operator removed our socket file and started something else there.
    std::fs::remove_file(&path).unwrap();
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    server.shutdown(STEP).await;
    assert!(path.exists(), "the other server's socket was removed");
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    drop(other);
    std::fs::remove_file(&path).unwrap();
}
