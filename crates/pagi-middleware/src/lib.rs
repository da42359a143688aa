//! # pagi-middleware — apps that wrap apps
//!
//! A PAGI middleware is an [`App`](pagi::App) that holds another app and
//! calls it with the same three arguments, changed where it needs to:
//!
//! - **the scope**: rewrite it before the call (a router moves the mount
//!   prefix from `path` into `root_path` and adds path parameters to
//!   `custom`);
//! - **`receive`**: hand the inner app a [`Receiver`](pagi::Receiver) over an
//!   [`EventSource`](pagi::EventSource) of its own, to intercept the
//!   client's events or inject new ones ([`ReceiveEvent::Custom`](pagi::ReceiveEvent::Custom));
//! - **`send`**: hand it a [`Sender`](pagi::Sender) over an
//!   [`EventSink`](pagi::EventSink) of its own, to observe or rewrite what it
//!   sends ([`map_send`] does the common case: a function per event);
//! - or **answer itself** and never call the inner app (a preflight, a 404).
//!
//! The rules: the inner app must see a consistent protocol (rewrite events
//! into events of the same scope type, in the same order), `send` must stay
//! bounded (forward `poll_ready`), and `closed()` must keep working (forward
//! `poll_closed`). A middleware that stands in for the server completely
//! (a test double, a bridge) makes its own `pagi::server` controls.
//!
//! Three middleware ship here:
//! - [`Router`]: mount apps at path prefixes (`root_path` adjusted) and
//!   route patterns with `:name` parameters ([`path_params`]);
//! - [`StaticFiles`]: a directory, with `Range`, `ETag`/`If-None-Match`,
//!   `Last-Modified`/`If-Modified-Since`, content types, and no way out of
//!   the root;
//! - [`Cors`]: preflights answered, `Access-Control-Allow-*` added to the
//!   inner app's responses, and WebSocket handshakes from other origins
//!   refused.
//!
//! ```
//! use pagi_middleware::{Cors, Router, StaticFiles};
//!
//! async fn api(scope: pagi::Scope, _: pagi::Receiver, send: pagi::Sender) -> Result<(), pagi::BoxError> {
//!     let id = pagi_middleware::path_params(&scope).and_then(|p| p.get("id").map(str::to_owned));
//!     pagi::http::Response::text(200, format!("user {id:?}")).send(&send).await?;
//!     Ok(())
//! }
//!
//! let app = Router::new()
//!     .route("/users/:id", pagi::app_fn(api))
//!     .mount("/static", pagi::app_fn(StaticFiles::new("./public")));
//! let app = Cors::new(app).allow_origins(["https://example.com"]);
//! let _shared = pagi::app_fn(app);
//! ```

mod cors;
mod map_send;
mod router;
mod static_files;

pub use cors::Cors;
pub use map_send::map_send;
pub use router::{path_params, PathParams, Router};
pub use static_files::StaticFiles;
