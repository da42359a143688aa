//! TLS: HTTPS and WSS with a test CA made here, the scope's `scheme` and
//! `tls` extension (Spec-Tls.pod), client certificates (optional and
//! required), ALPN, certificate reload without dropping connections, a
//! handshake timeout, and clear errors for bad files. The client is rustls
//! (tokio-rustls) with the test CA as its only root.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{within, STEP};
use futures_util::{SinkExt, StreamExt};
use pagi::{BoxError, ReceiveEvent, Receiver, Scope, SendEvent, Sender, Value};
use pagi_server::{ClientCertMode, Config, Listen, ListenAddr, Server, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

/// A CA, a server certificate for `localhost`, two client certificates
/// (one from the CA, one self-signed) and a stray key, as PEM files.
struct Certs {
    dir: PathBuf,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Certs {
    fn new(name: &str) -> Certs {
        let dir = std::env::temp_dir().join(format!("pagi-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "pagi test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let certs = Certs {
            dir,
            ca_pem,
            issuer: Issuer::new(ca, ca_key),
        };
        std::fs::write(certs.path("ca.pem"), &certs.ca_pem).unwrap();
        certs.server("server", "localhost");
        // A client certificate from the CA, with a subject that needs
        // RFC 4514 escaping; one that no CA signed.
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        // A fresh name (the default one holds a common name, first).
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CountryName, "US");
        p.distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        p.distinguished_name.push(DnType::CommonName, "alice");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &certs.issuer).unwrap();
        std::fs::write(certs.path("alice.pem"), cert.pem()).unwrap();
        std::fs::write(certs.path("alice.key"), key.serialize_pem()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "mallory");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(certs.path("mallory.pem"), cert.pem()).unwrap();
        std::fs::write(certs.path("mallory.key"), key.serialize_pem()).unwrap();
        std::fs::write(
            certs.path("other.key"),
            KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        certs
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A server certificate for `host` from the CA, as `{name}.pem`/`.key`.
    fn server(&self, name: &str, host: &str) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![host.to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, host);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    fn tls(&self, client_cert: ClientCertMode) -> TlsConfig {
        TlsConfig {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: Some(self.path("ca.pem")),
            client_cert,
        }
    }

    /// An HTTP/1.1 client (ALPN `http/1.1` only) trusting only the test
    /// CA, presenting `{client}.pem` if given.
    fn connector(&self, client: Option<&str>) -> tokio_rustls::TlsConnector {
        self.connector_alpn(client, &[b"http/1.1"])
    }

    fn connector_alpn(&self, client: Option<&str>, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(self.path("ca.pem")).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let mut config = match client {
            Some(name) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_file(self.path(&format!("{name}.pem"))).unwrap()],
                    PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the app saw of its scope, as text lines `key=value`.
fn report_app() -> pagi::SharedApp {
    pagi::app_fn(
        |scope: Scope, mut receive: Receiver, send: Sender| async move {
            let (scheme, ext) = match &scope {
                Scope::Http(h) => (h.scheme.to_string(), h.extensions.clone()),
                Scope::WebSocket(w) => (w.scheme.to_string(), w.extensions.clone()),
                _ => return Err(pagi::unsupported_scope(&scope)),
            };
            let mut lines = vec![format!("scheme={scheme}")];
            if let Some(tls) = ext.get("tls") {
                for (k, v) in tls {
                    let v = match v {
                        Value::Null => "undef".to_owned(),
                        Value::Int(n) => format!("{n:#06x}"),
                        Value::Str(s) => s.replace('\n', "|"),
                        Value::List(l) => format!("list:{}", l.len()),
                        other => format!("{other:?}"),
                    };
                    lines.push(format!("tls.{k}={v}"));
                }
            } else {
                lines.push("no-tls".into());
            }
            let text = lines.join("\n");
            match scope {
                Scope::Http(_) => {
                    while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
                    send.send(SendEvent::response_start(
                        200,
                        [("content-length", text.len().to_string())],
                    ))
                    .await?;
                    send.send(SendEvent::response_body(text, false)).await?;
                }
                _ => {
                    assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
                    send.send(SendEvent::accept()).await?;
                    send.send(SendEvent::text(text)).await?;
                    while let ReceiveEvent::WebSocketReceive(m) = receive.recv().await {
                        send.send(m).await?;
                    }
                }
            }
            Ok::<(), BoxError>(())
        },
    )
}

struct TlsServer {
    handle: pagi_server::ServerHandle,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<Result<(), pagi_server::Error>>,
}

impl TlsServer {
    async fn start(tls: TlsConfig, app: pagi::SharedApp) -> TlsServer {
        Self::start_with(tls, app, |_| {}).await
    }

    async fn start_with(
        tls: TlsConfig,
        app: pagi::SharedApp,
        tweak: impl FnOnce(&mut Config),
    ) -> TlsServer {
        let mut config = Config {
            listen: vec![Listen {
                addr: ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
                tls: Some(tls),
            }],
            tls_handshake_timeout: Duration::from_millis(500),
            // No keepalive pings: a test of output must not be helped by
            // the writes a ping makes.
            ws_ping_interval: None,
            ..common::config()
        };
        tweak(&mut config);
        let server = within(STEP, "bind", Server::bind(config, app))
            .await
            .expect("bind");
        let handle = server.handle();
        let addr = handle.local_addr().unwrap();
        let task = tokio::spawn(server.run_until(std::future::pending()));
        TlsServer { handle, addr, task }
    }

    async fn shutdown(self) {
        self.handle.shutdown();
        within(STEP, "server to stop", self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

async fn connect(
    server: &TlsServer,
    connector: &tokio_rustls::TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(server.addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    within(STEP, "TLS handshake", connector.connect(name, tcp)).await
}

/// GET / over `stream` (Connection: close) and the body as text.
async fn get(mut stream: TlsStream<TcpStream>) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    within(STEP, "response", stream.read_to_end(&mut out))
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn field<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

#[tokio::test]
async fn alpn_prefers_h2_and_offers_only_http11_when_http2_is_off() {
    let certs = Certs::new("alpn");
    let both = certs.connector_alpn(None, &[b"http/1.1", b"h2"]);
    let server = TlsServer::start(certs.tls(ClientCertMode::None), report_app()).await;
    let stream = connect(&server, &both).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    server.shutdown().await;
    let server = TlsServer::start_with(certs.tls(ClientCertMode::None), report_app(), |c| {
        c.http2 = false
    })
    .await;
    let stream = connect(&server, &both).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    // A client that offers only h2 is refused rather than misunderstood.
    let h2_only = certs.connector_alpn(None, &[b"h2"]);
    assert!(connect(&server, &h2_only).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn https_scopes_report_scheme_and_the_tls_extension() {
    let certs = Certs::new("scope");
    let server = TlsServer::start(certs.tls(ClientCertMode::None), report_app()).await;
    let stream = connect(&server, &certs.connector(None)).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let report = get(stream).await;
    assert_eq!(field(&report, "scheme"), "https");
    assert_eq!(field(&report, "tls.tls_version"), "0x0304");
    assert_ne!(field(&report, "tls.cipher_suite"), "undef");
    let server_pem = std::fs::read_to_string(certs.path("server.pem")).unwrap();
    let pem_of = |s: &str| s.replace(['\n', '\r'], "").replace('|', "");
    assert_eq!(
        pem_of(field(&report, "tls.server_cert")),
        pem_of(&server_pem)
    );
    assert_eq!(field(&report, "tls.client_cert_chain"), "list:0");
    assert_eq!(field(&report, "tls.client_cert_name"), "undef");
    assert_eq!(field(&report, "tls.client_cert_error"), "undef");
    server.shutdown().await;
}

#[tokio::test]
async fn cleartext_scopes_have_no_tls_key() {
    let server = common::TestServer::start(report_app()).await;
    let (resp, _) = common::http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(resp.body_text().contains("scheme=http\nno-tls"), "{resp:?}");
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn wss_runs_a_websocket_session_with_scheme_wss() {
    let certs = Certs::new("wss");
    let server = TlsServer::start(certs.tls(ClientCertMode::None), report_app()).await;
    let stream = connect(&server, &certs.connector(None)).await.unwrap();
    let (mut ws, resp) = within(
        STEP,
        "WebSocket handshake",
        tokio_tungstenite::client_async("wss://localhost/", stream),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 101);
    let first = within(STEP, "report", ws.next()).await.unwrap().unwrap();
    let report = first.into_text().unwrap();
    assert_eq!(field(&report, "scheme"), "wss");
    assert_eq!(field(&report, "tls.tls_version"), "0x0304");
    for i in 0..50 {
        let msg = format!("over tls {i} {}", "x".repeat(i * 100));
        ws.send(Message::text(msg.clone())).await.unwrap();
        let echo = within(STEP, "echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), msg);
    }
    ws.close(None).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn optional_client_certificates_are_reported_and_bad_ones_explained() {
    let certs = Certs::new("optional");
    let server = TlsServer::start(certs.tls(ClientCertMode::Optional), report_app()).await;
    // A certificate from the CA: verified, named in RFC 4514 form.
    let report = get(connect(&server, &certs.connector(Some("alice")))
        .await
        .unwrap())
    .await;
    assert_eq!(field(&report, "tls.client_cert_chain"), "list:1");
    assert_eq!(
        field(&report, "tls.client_cert_name"),
        r"CN=alice,O=Acme\, Inc.,C=US"
    );
    assert_eq!(field(&report, "tls.client_cert_error"), "undef");
    // No certificate: served, nothing reported.
    let report = get(connect(&server, &certs.connector(None)).await.unwrap()).await;
    assert_eq!(field(&report, "tls.client_cert_chain"), "list:0");
    // A certificate no CA vouches for: served, with the reason.
    let report = get(connect(&server, &certs.connector(Some("mallory")))
        .await
        .unwrap())
    .await;
    assert_eq!(field(&report, "tls.client_cert_name"), "CN=mallory");
    let error = field(&report, "tls.client_cert_error");
    assert!(error.contains("UnknownIssuer"), "{error}");
    server.shutdown().await;
}

#[tokio::test]
async fn required_client_certificates_refuse_clients_without_a_valid_one() {
    let certs = Certs::new("required");
    let server = TlsServer::start(certs.tls(ClientCertMode::Required), report_app()).await;
    let report = get(connect(&server, &certs.connector(Some("alice")))
        .await
        .unwrap())
    .await;
    assert_eq!(field(&report, "tls.client_cert_error"), "undef");
    for who in [None, Some("mallory")] {
        // TLS 1.3: the client learns of the refusal on its first read.
        let refused = match connect(&server, &certs.connector(who)).await {
            Err(_) => true,
            Ok(mut s) => {
                let _ = s
                    .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .await;
                let mut buf = [0u8; 64];
                !matches!(s.read(&mut buf).await, Ok(n) if n > 0)
            }
        };
        assert!(refused, "{who:?} was served");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn reloading_changes_the_certificate_for_new_connections_only() {
    let certs = Certs::new("reload");
    let server = TlsServer::start(certs.tls(ClientCertMode::None), report_app()).await;
    let connector = certs.connector(None);
    let peer_cert =
        |s: &TlsStream<TcpStream>| s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let mut old = connect(&server, &connector).await.unwrap();
    let before = peer_cert(&old);
    // New files in place; a reload picks them up.
    certs.server("server", "localhost");
    server.handle.reload_tls().unwrap();
    let fresh = connect(&server, &connector).await.unwrap();
    assert_ne!(
        peer_cert(&fresh),
        before,
        "new handshakes use the new certificate"
    );
    drop(fresh);
    // The connection made before still works.
    old.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = BytesMut::with_capacity(8192);
    within(
        STEP,
        "response on the old connection",
        old.read_buf(&mut buf),
    )
    .await
    .unwrap();
    assert!(buf.starts_with(b"HTTP/1.1 200"));
    // A bad file: the reload fails and the current certificate stays.
    let current = peer_cert(&connect(&server, &connector).await.unwrap());
    std::fs::write(certs.path("server.pem"), "not a certificate").unwrap();
    let err = server.handle.reload_tls().unwrap_err();
    assert!(err.is_tls(), "{err}");
    let after = peer_cert(&connect(&server, &connector).await.unwrap());
    assert_eq!(after, current);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_completes_the_handshake_is_closed() {
    let certs = Certs::new("timeout");
    let server = TlsServer::start(certs.tls(ClientCertMode::None), report_app()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let t0 = Instant::now();
    assert!(common::eof_within(&mut tcp, Duration::from_secs(5)).await);
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    // Garbage instead of a ClientHello: closed too, the server still serves.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(common::eof_within(&mut tcp, Duration::from_secs(5)).await);
    let report = get(connect(&server, &certs.connector(None)).await.unwrap()).await;
    assert_eq!(field(&report, "scheme"), "https");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_certificate_files_fail_with_clear_errors() {
    let certs = Certs::new("errors");
    let bind = |cert: &Path, key: &Path| {
        let config = Config {
            listen: vec![Listen {
                addr: ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
                tls: Some(TlsConfig {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    client_ca: None,
                    client_cert: ClientCertMode::None,
                }),
            }],
            ..common::config()
        };
        async move {
            match Server::bind(config, report_app()).await {
                Ok(_) => panic!("bound with bad TLS files"),
                Err(e) => {
                    assert!(e.is_tls(), "{e}");
                    e.to_string()
                }
            }
        }
    };
    let missing = certs.path("missing.pem");
    let msg = bind(&missing, &certs.path("server.key")).await;
    assert!(
        msg.contains("missing.pem") && msg.contains("cannot read"),
        "{msg}"
    );
    std::fs::write(
        certs.path("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let msg = bind(&certs.path("garbage.pem"), &certs.path("server.key")).await;
    assert!(msg.contains("garbage.pem") && msg.contains("PEM"), "{msg}");
    let msg = bind(&certs.path("server.pem"), &certs.path("server.pem")).await;
    assert!(msg.contains("no private key"), "{msg}");
    let msg = bind(&certs.path("server.pem"), &certs.path("other.key")).await;
    assert!(msg.contains("does not match"), "{msg}");
    // Client certificates without a CA.
    let config = Config {
        listen: vec![Listen {
            addr: ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
            tls: Some(TlsConfig {
                client_ca: None,
                ..certs.tls(ClientCertMode::Required)
            }),
        }],
        ..common::config()
    };
    let err = Server::bind(config, report_app()).await.err().unwrap();
    assert!(err.to_string().contains("CA"), "{err}");
}

#[tokio::test]
async fn the_end_of_a_large_message_reaches_a_slow_wss_client_without_further_sends() {
    // TLS takes bytes the socket cannot take yet; only a flush sends them
    // once the client reads. Nothing else is sent here (no pings, no more
    // messages), so a missing flush would leave the tail behind forever.
    let certs = Certs::new("wss-flush");
    let big = vec![7u8; 1 << 20];
    let payload = big.clone();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let payload = payload.clone();
        async move {
            let Scope::WebSocket(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
            send.send(SendEvent::accept()).await?;
            send.send(SendEvent::binary(payload)).await?;
            while !receive.recv().await.is_disconnect() {}
            Ok::<(), BoxError>(())
        }
    });
    let server = TlsServer::start(certs.tls(ClientCertMode::None), app).await;
    let stream = connect(&server, &certs.connector(None)).await.unwrap();
    let (mut ws, _) = within(
        STEP,
        "WebSocket handshake",
        tokio_tungstenite::client_async("wss://localhost/", stream),
    )
    .await
    .unwrap();
    // Let the server fill the socket and block.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = within(STEP, "the whole message", ws.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.into_data().len(), big.len());
    ws.close(None).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_file_body_goes_out_through_tls_whole() {
    // No sendfile over TLS: the file is read in chunks (without blocking
    // on a cold page cache) and encrypted.
    let certs = Certs::new("file");
    let path = certs.path("data.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 249) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let file_path = path.clone();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let file_path = file_path.clone();
        async move {
            let Scope::Http(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
            send.send(SendEvent::response_start(200, Vec::<(&str, &str)>::new()))
                .await?;
            send.send(SendEvent::HttpResponseBody {
                body: pagi::Body::File {
                    path: file_path,
                    offset: 5,
                    length: None,
                },
                more: false,
            })
            .await?;
            Ok::<(), BoxError>(())
        }
    });
    let server = TlsServer::start(certs.tls(ClientCertMode::None), app).await;
    let mut stream = connect(&server, &certs.connector(None)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = bytes::BytesMut::new();
    let resp = common::read_response(&mut stream, &mut buf).await;
    assert_eq!(resp.status, 200);
    assert!(resp.body == data[5..], "{} bytes", resp.body.len());
    server.shutdown().await;
}
