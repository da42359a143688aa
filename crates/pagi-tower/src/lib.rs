//! # pagi-tower — PAGI and tower, both ways
//!
//! Two bridges, each a thin adapter over the events:
//!
//! - [`ServiceApp`]: any `tower::Service<http::Request<RequestBody>>`, an axum
//!   `Router` for instance, as a PAGI [`App`](pagi::App), so it runs on
//!   `pagi-server` next to (or routed before) PAGI apps. Request and response
//!   bodies stream; declared trailers pass when the client accepts them
//!   (see [`ServiceApp`]); the scope's
//!   client address, lifespan state and extensions (`tls`) are request
//!   extensions ([`ScopeInfo`], [`ClientAddr`], [`pagi::State`]).
//! - [`PagiService`]: a PAGI app as a `tower::Service`, so it can be nested
//!   in an axum `Router` and served by `axum::serve` or any hyper server
//!   (HTTP and SSE scopes; for WebSocket scopes inside axum, route the path
//!   to `pagi_server::embed::WebSocketHost`, which runs the server's own
//!   session over hyper's upgraded connection).
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use pagi_tower::{PagiService, ServiceApp};
//!
//! # async fn run(config: pagi_server::Config, pagi_app: pagi::SharedApp) -> Result<(), pagi::BoxError> {
//! // An axum Router served by pagi-server:
//! let router = Router::new().route("/", get(|| async { "hello from axum" }));
//! let app = pagi::app_fn(ServiceApp::new(router));
//! pagi_server::Server::bind(config, app).await?.run().await?;
//!
//! // A PAGI app nested in axum, served by axum::serve:
//! let router = Router::new().nest_service("/live", PagiService::new(pagi_app));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, router).await?;
//! # Ok(()) }
//! ```
//!
//! Where the two models differ, the bridges say so: a tower service has no
//! lifespan (startup and shutdown are acknowledged) and no WebSocket
//! upgrade outside hyper (a WebSocket scope goes to the PAGI app given with
//! [`ServiceApp::websocket`], or is refused with 403).

mod headers;
mod service;
mod service_app;

pub use service::{PagiService, ResponseBody};
pub use service_app::{ClientAddr, RequestBody, ScopeInfo, ServiceApp};
