//! An in-process test client: drives an app through the real server's
//! connection code over in-memory streams (no sockets, no ports), so the
//! app sees exactly what it would see behind `pagi-server` — the same
//! ordering rules, checks, backstops and close codes.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use pagi_server::testing::TestClient;
//!
//! let app = pagi::app_fn(|scope: pagi::Scope, _: pagi::Receiver, send: pagi::Sender| async move {
//!     pagi::http::Response::text(200, format!("hi from {}", scope.path())).send(&send).await?;
//!     Ok::<_, pagi::BoxError>(())
//! });
//! let client = TestClient::start(app).await.unwrap();
//! let response = client.get("/there").await;
//! assert_eq!((response.status, response.text().as_str()), (200, "hi from /there"));
//! client.shutdown().await;
//! # });
//! ```
//!
//! Lifespan runs as configured (`Config::lifespan`, `auto` by default):
//! [`TestClient::start`] runs startup and fails as the server would;
//! [`TestClient::shutdown`] runs shutdown.

mod ws_client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use pagi::{ServerAddr, SharedApp};
use tokio::sync::watch;

use crate::ctx::{Ctx, Phase};
use crate::lifespan::Lifespan;
use crate::listener::{ConnInfo, Io};
use crate::{Config, Error};

pub use ws_client::{TestWebSocket, WsFrame};

/// Bytes an in-memory connection holds in each direction before the writer
/// waits (as a socket buffer would): an app streaming to a test that does
/// not read is pushed back, as over TCP.
pub const DUPLEX_BUFFER: usize = 64 * 1024;

/// How long a request may take by default ([`TestClient::with_timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The address a test request comes from (as Starlette's `testclient`).
pub const CLIENT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50000);

/// An in-memory stream is an [`Io`] with the trait's defaults (always
/// readable; no sendfile).
impl Io for tokio::io::DuplexStream {}

/// Drives one app in process. Each request opens a fresh in-memory
/// connection served by the server's HTTP/1.1 code.
pub struct TestClient {
    ctx: Arc<Ctx>,
    phase: watch::Sender<Phase>,
    lifespan: Option<Lifespan>,
    /// How long one request (head and whole body) may take.
    timeout: Duration,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("lifespan", &self.lifespan.is_some())
            .finish_non_exhaustive()
    }
}

/// A response, read whole.
#[derive(Debug, Clone, Default)]
pub struct TestResponse {
    /// Status code.
    pub status: u16,
    /// Headers, lower-case names, in order.
    pub headers: Vec<(String, Bytes)>,
    /// The body, de-chunked.
    pub body: Bytes,
    /// Trailer fields, if the response had any.
    pub trailers: Vec<(String, Bytes)>,
    /// Why the response ended early (the connection closed mid-body, or
    /// before any response): `None` for a whole response.
    pub error: Option<String>,
}

impl TestResponse {
    /// The first value of header `name` as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One event of an SSE stream as the client parses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (empty for the default `message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// `id:`, if sent.
    pub id: Option<String>,
}

impl TestClient {
    /// Start with the default config (lifespan `auto`).
    pub async fn start(app: SharedApp) -> Result<TestClient, Error> {
        TestClient::start_with(Config::default(), app).await
    }

    /// Start with `config` (its `listen` addresses are not used).
    pub async fn start_with(config: Config, app: SharedApp) -> Result<TestClient, Error> {
        config.h2.check().map_err(Error::config)?;
        let lifespan = crate::lifespan::startup(&app, &config).await?;
        let state = lifespan.as_ref().map(Lifespan::state_snapshot);
        let (ctx, phase) = Ctx::new(app, config, state, None);
        Ok(TestClient {
            ctx,
            phase,
            lifespan,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// How long [`TestClient::request`] (and `get`, `post`, `sse`) waits
    /// for a whole response before it panics (default 30 s), so a test of
    /// an app that never answers fails instead of hanging.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A new in-memory connection, served by the server's code on a task.
    fn connect(&self) -> TokioIo<tokio::io::DuplexStream> {
        let (client, server) = tokio::io::duplex(DUPLEX_BUFFER);
        let info = ConnInfo {
            client: Some(CLIENT_ADDR),
            proxy_trusted: false,
            local: Some(ServerAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 80)))),
            tls: None,
        };
        let live = self.ctx.live.guard();
        let serve = crate::http1::serve(server, info, self.ctx.clone());
        tokio::spawn(async move {
            serve.await;
            drop(live);
        });
        TokioIo::new(client)
    }

    /// Send `request` and read the whole response. A request without a
    /// `Host` header gets `Host: testserver`. Panics if it takes longer than
    /// the client's timeout.
    pub async fn request(&self, request: http::Request<Bytes>) -> TestResponse {
        let what = format!("{} {}", request.method(), request.uri());
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(response) => response,
            Err(_) => panic!("{what}: no whole response within {:?}", self.timeout),
        }
    }

    async fn exchange(&self, mut request: http::Request<Bytes>) -> TestResponse {
        if !request.headers().contains_key(http::header::HOST) {
            request.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_static("testserver"),
            );
        }
        let (mut sender, conn) = hyper::client::conn::http1::handshake(self.connect())
            .await
            .expect("in-memory handshake");
        tokio::spawn(conn);
        let response = match sender.send_request(request.map(Full::new)).await {
            Ok(r) => r,
            // The server closed without a response (it does, for some
            // framing errors): a status-0 response saying why.
            Err(e) => {
                return TestResponse {
                    error: Some(e.to_string()),
                    ..TestResponse::default()
                }
            }
        };
        let (parts, body) = response.into_parts();
        let mut out = TestResponse {
            status: parts.status.as_u16(),
            headers: fields(&parts.headers),
            ..TestResponse::default()
        };
        let mut data = Vec::new();
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    out.error = Some(e.to_string());
                    break;
                }
            };
            match frame.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        out.trailers = fields(&t);
                    }
                }
            }
        }
        out.body = data.into();
        out
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(
            http::Request::get(path)
                .body(Bytes::new())
                .expect("a valid path"),
        )
        .await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> TestResponse {
        self.request(
            http::Request::post(path)
                .body(body.into())
                .expect("a valid path"),
        )
        .await
    }

    /// `GET path` with `Accept: text/event-stream`, read to the end of the
    /// stream, parsed into events.
    pub async fn sse(&self, path: &str) -> (TestResponse, Vec<SseEvent>) {
        let request = http::Request::get(path)
            .header(http::header::ACCEPT, "text/event-stream")
            .body(Bytes::new())
            .expect("a valid path");
        let response = self.request(request).await;
        let events = parse_sse(&response.text());
        (response, events)
    }

    /// Open a WebSocket to `path` (with extra handshake `headers`). `Err`
    /// carries the response when the app refused the handshake. The
    /// handshake, and each `recv` on the socket, panic after the client's
    /// timeout.
    pub async fn websocket(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<TestWebSocket, TestResponse> {
        let open = ws_client::open(self.connect(), path, headers, self.timeout);
        match tokio::time::timeout(self.timeout, open).await {
            Ok(result) => result,
            Err(_) => panic!(
                "WebSocket {path}: no handshake answer within {:?}",
                self.timeout
            ),
        }
    }

    /// Begin the server's shutdown: open WebSockets get Close 1001 and
    /// SSE streams end, as on SIGTERM.
    pub fn begin_shutdown(&self) {
        self.phase.send_replace(Phase::Draining);
    }

    /// Shut down as the server does: drain (bounded by
    /// `shutdown_timeout`, then force-close), then run `lifespan.shutdown`.
    pub async fn shutdown(self) {
        self.begin_shutdown();
        let timeout = self.ctx.config.shutdown_timeout;
        let live = &self.ctx.live;
        if tokio::time::timeout(timeout, live.wait_zero())
            .await
            .is_err()
        {
            self.phase.send_replace(Phase::Stopped);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), live.wait_zero()).await;
        }
        if let Some(lifespan) = self.lifespan {
            lifespan.shutdown(timeout).await;
        }
    }
}

fn fields(map: &http::HeaderMap) -> Vec<(String, Bytes)> {
    map.iter()
        .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
        .collect()
}

/// Parse a whole `text/event-stream` body (comments dropped).
fn parse_sse(text: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut current = SseEvent::default();
    let mut data: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if line.is_empty() {
            if !data.is_empty() {
                current.data = data.join("\n");
                events.push(std::mem::take(&mut current));
                data.clear();
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => current.event = value.to_owned(),
            "data" => data.push(value),
            "id" => current.id = Some(value.to_owned()),
            _ => {}
        }
    }
    events
}
