//! # pagi-server
//!
//! The PAGI server for Rust: runs a [`pagi::App`] over HTTP/1.1 and
//! WebSocket, with the lifespan protocol and graceful shutdown.
//!
//! How a connection flows (see `docs/architecture.md`): [`Server`] accepts
//! a TCP stream and hands it to hyper's HTTP/1.1 connection; each request
//! becomes either an `http` exchange (the app is driven inside hyper's task,
//! its sends become response frames) or a WebSocket upgrade (the app decides
//! accept/reject, then one task runs the app next to a socket driver built
//! on the sans-IO `pagi_ws::Session`).
//!
//! The [`cli`] module is the `pagi-server` command line as a library, so
//! your own binary gets the same flags around your own app:
//!
//! ```no_run
//! async fn app(scope: pagi::Scope, _: pagi::Receiver, _: pagi::Sender) -> Result<(), pagi::BoxError> {
//!     Err(pagi::unsupported_scope(&scope))
//! }
//! fn main() -> std::process::ExitCode {
//!     pagi_server::cli::run(pagi::app_fn(app))
//! }
//! ```

mod app_poll;
mod budget;
pub mod cli;
mod config;
mod error;
mod http;
mod lifespan;
mod server;
mod when_woken;
mod ws;

pub use config::{Config, DeflateConfig, LifespanMode, QueuePolicy};
pub use error::Error;
pub use server::{Server, ServerHandle};
