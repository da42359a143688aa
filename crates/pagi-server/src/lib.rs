//! # pagi-server
//!
//! The PAGI server for Rust: runs a [`pagi::App`] over HTTP/1.1, WebSocket
//! and Server-Sent Events, with the lifespan protocol and graceful
//! shutdown, on TCP and Unix sockets, with or without TLS, behind a proxy or
//! not. This crate is the server as a library; the `pagi-server` command
//! line is the `pagi-cli` crate.
//!
//! How a connection flows (see `docs/architecture.md`): a listener
//! (`listener/`) accepts a stream, which `conn.rs` takes through its PROXY
//! header and TLS handshake when its listener wants them and hands to the
//! HTTP/1.1 connection (`http1/`), which reads request heads and bodies
//! with the pure codec in `wire::h1` and runs one exchange at a time: an
//! `http` or `sse` exchange (`http/`: the app is polled inside the
//! connection's task, its sends become framed response bytes) or a
//! WebSocket handshake (`ws/`: the app decides accept/reject, then the
//! session runs the app next to a socket driver built on the sans-IO
//! `pagi_ws::Session`). `wire/` holds the pure translations between the
//! wire and PAGI; `ctx.rs` what every connection shares.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pagi_server::Error> {
//! async fn app(scope: pagi::Scope, _: pagi::Receiver, _: pagi::Sender) -> Result<(), pagi::BoxError> {
//!     Err(pagi::unsupported_scope(&scope))
//! }
//! let config = pagi_server::Config {
//!     listen: vec![pagi_server::Listen::tcp("127.0.0.1:8000".parse().unwrap())],
//!     ..Default::default()
//! };
//! pagi_server::Server::bind(config, pagi::app_fn(app)).await?.run().await
//! # }
//! ```

mod access_log;
mod app_poll;
mod budget;
mod config;
mod conn;
mod ctx;
pub mod embed;
mod error;
mod file_body;
mod http;
mod http1;
mod http2;
mod lifespan;
mod listener;
mod read_pool;
mod server;
pub mod testing;
mod timer;
mod when_woken;
mod wire;
mod ws;

pub use access_log::InvalidLogFormat;
pub use config::{
    AccessLogConfig, ClientCertMode, Config, DeflateConfig, H2Config, InvalidTrustedProxies,
    LifespanMode, Listen, ListenAddr, LogTarget, ProxyConfig, QueuePolicy, TlsConfig,
    TrustedProxies,
};
pub use error::Error;
pub use server::{Server, ServerHandle};

/// How many listening sockets the service manager passed to this process
/// (systemd socket activation: `LISTEN_FDS` for this `LISTEN_PID`); use them
/// as [`ListenAddr::Inherited`]`(0..n)`.
///
/// The first call (or the first bind of an inherited listener) takes the
/// descriptors and removes `LISTEN_FDS`/`LISTEN_PID` from the environment,
/// so that child processes do not inherit them. Changing the environment
/// races with other threads reading it (C's `getenv`), so a program that
/// uses socket activation calls this before it starts a multi-threaded
/// runtime, as `pagi-server` does.
pub fn inherited_sockets() -> usize {
    listener::inherited_count()
}
