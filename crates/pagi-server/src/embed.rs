//! PAGI WebSockets inside another HTTP server: a host built on hyper (axum,
//! say) hands WebSocket handshakes to a [`WebSocketHost`], which runs the
//! PAGI app's session with everything `pagi-server` gives one — the
//! `websocket` scope, permessage-deflate, the inbound and outbound budgets,
//! keepalive, Close codes — over the connection hyper hands over.
//!
//! ```no_run
//! # async fn run(app: pagi::SharedApp) -> Result<(), Box<dyn std::error::Error>> {
//! use pagi_server::embed::WebSocketHost;
//! let ws = WebSocketHost::new(pagi_server::Config::default(), app)?;
//! let router = axum::Router::new().route_service("/live", ws.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, router).await?;
//! ws.shutdown(); // open sessions get Close 1001
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use pagi::SharedApp;
use tokio::sync::watch;

use crate::ctx::{Ctx, Phase};
use crate::listener::ConnInfo;
use crate::ws::{serve_tunnel, Tunnel};
use crate::{Config, Error};

/// The client's address, for a host that knows it: put it in the request's
/// extensions and the scope's `client` says it (the host's own
/// `ConnectInfo` is not visible here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Runs PAGI WebSocket sessions for a host's HTTP server. A `tower`
/// service (cheap to clone): give it `GET` + `Upgrade: websocket` requests
/// (HTTP/1.1; the host must serve connections with upgrades, as
/// `axum::serve` does) or extended `CONNECT` requests (HTTP/2, RFC 8441).
/// Other requests get 400.
///
/// `Config`'s WebSocket limits apply (`ws_*`, `max_buffered_bytes`,
/// keepalive); its listeners, TLS and lifespan do not (the host has its
/// own). The scope's `server` is `None`; `client` comes from a
/// [`ClientAddr`] extension when the host sets one.
#[derive(Clone)]
pub struct WebSocketHost {
    ctx: Arc<Ctx>,
    phase: Arc<watch::Sender<Phase>>,
}

impl std::fmt::Debug for WebSocketHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketHost")
            .field("sessions", &self.ctx.live.count())
            .finish_non_exhaustive()
    }
}

impl WebSocketHost {
    /// A host for `app` with `config`'s WebSocket settings.
    pub fn new(config: Config, app: SharedApp) -> Result<WebSocketHost, Error> {
        config.h2.check().map_err(Error::config)?;
        let (ctx, phase) = Ctx::new(app, config, None, None);
        Ok(WebSocketHost {
            ctx,
            phase: Arc::new(phase),
        })
    }

    /// Whether `request` is a WebSocket handshake this host answers.
    pub fn is_websocket<B>(request: &http::Request<B>) -> bool {
        tunnel_of(request).is_some()
    }

    /// Sessions still running.
    pub fn sessions(&self) -> usize {
        self.ctx.live.count()
    }

    /// Close every session with 1001 (`server_shutdown`), as the server
    /// does when it drains; handshakes from now on are answered 503.
    pub fn shutdown(&self) {
        self.phase.send_replace(Phase::Draining);
    }

    /// Resolves once no session runs (after [`WebSocketHost::shutdown`],
    /// say).
    pub async fn drained(&self) {
        self.ctx.live.wait_zero().await;
    }

    /// Answer one handshake; the session runs on a task of its own once the
    /// host sent the answer and handed over the connection.
    pub fn handshake<B>(
        &self,
        request: http::Request<B>,
    ) -> pagi::BoxFuture<http::Response<Full<Bytes>>> {
        let tunnel = match tunnel_of(&request) {
            None => Err((400, "Not a WebSocket handshake")),
            Some(_) if *self.phase.borrow() != Phase::Running => Err((503, "Shutting down")),
            Some(tunnel) => Ok(tunnel),
        };
        let tunnel = match tunnel {
            Ok(tunnel) => tunnel,
            Err((status, why)) => {
                let resp = crate::wire::h2::canned(status, why).map(Full::new);
                return Box::pin(async move { resp });
            }
        };
        let info = Arc::new(ConnInfo {
            client: request.extensions().get::<ClientAddr>().map(|c| c.0),
            proxy_trusted: false,
            local: None,
            tls: None,
        });
        // Each session holds the phase sender: a host dropped by its
        // router does not cut the sessions still running (a closed watch
        // means "stopped" to them).
        let hold = Box::new(self.phase.clone());
        let answer = serve_tunnel(request, tunnel, self.ctx.clone(), info, hold);
        Box::pin(async move { answer.await.map(|b| Full::new(b.unwrap_or_default())) })
    }
}

fn tunnel_of<B>(request: &http::Request<B>) -> Option<Tunnel> {
    let upgrade_ws = request
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    match *request.method() {
        http::Method::CONNECT if crate::ws::protocol_is_websocket(request) => Some(Tunnel::H2),
        _ if upgrade_ws && request.version() <= http::Version::HTTP_11 => Some(Tunnel::H1),
        _ => None,
    }
}

impl<B> tower_service::Service<http::Request<B>> for WebSocketHost {
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = pagi::BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.handshake(request);
        Box::pin(async move { Ok(answer.await) })
    }
}
