//! # pagi — the PAGI protocol for Rust
//!
//! PAGI (spec 0.3) says an application is one async function called once per
//! connection with a [`Scope`] describing the connection, a [`Receiver`] that
//! yields the client's events and a [`Sender`] that emits events to the
//! client. Receiving and sending are independent, so one app can do both at
//! the same time (a server push next to an echo loop, say). The scopes are
//! `http` (requests, streamed responses, trailers, files), `websocket`,
//! `sse` (Server-Sent Events: `sse.start`, `sse.send`, keepalive comments)
//! and `lifespan`.
//!
//! This crate holds only the protocol: scope and event types, the [`App`]
//! trait, the handles, and the shared per-connection state objects
//! (`pagi.connection` → [`Connection`], `pagi.transport` → [`Transport`]).
//! It has no sockets and no runtime; servers such as `pagi-server` implement
//! [`EventSource`] and [`EventSink`] to drive it.
//!
//! ```
//! use pagi::{Scope, Receiver, Sender, SendEvent, ReceiveEvent, BoxError};
//!
//! async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
//!     match scope {
//!         Scope::Http(_) => {
//!             send.send(SendEvent::response_start(200, [("content-type", "text/plain")])).await?;
//!             send.send(SendEvent::response_body("Hello from PAGI!", false)).await?;
//!             Ok(())
//!         }
//!         Scope::WebSocket(_) => {
//!             let _connect = receive.recv().await; // websocket.connect
//!             send.send(SendEvent::accept()).await?;
//!             while let ReceiveEvent::WebSocketReceive(msg) = receive.recv().await {
//!                 send.send(SendEvent::WebSocketSend(msg)).await?;
//!             }
//!             Ok(())
//!         }
//!         Scope::Sse(_) => {
//!             send.send(SendEvent::SseStart { status: 200, headers: Default::default() }).await?;
//!             let event = SendEvent::SseSend {
//!                 event: Some("greeting".into()),
//!                 data: "hello".into(),
//!                 id: None,
//!                 retry: None,
//!             };
//!             send.send(event).await?;
//!             Ok(())
//!         }
//!         other => Err(pagi::unsupported_scope(&other)),
//!     }
//! }
//! # let _ = pagi::app_fn(app);
//! ```

mod app;
mod connection;
mod event;
mod handle;
mod headers;
#[path = "helpers/http.rs"]
pub mod http;
#[path = "helpers/lifespan.rs"]
pub mod lifespan;
mod scope;
#[path = "helpers/sse.rs"]
pub mod sse;
#[path = "helpers/sse_wire.rs"]
pub mod sse_wire;
pub mod testing;
mod transport;
mod value;
#[path = "helpers/ws.rs"]
pub mod ws;

/// The text of a WebSocket message: UTF-8 on shared [`bytes::Bytes`] storage, derefs to `&str`
/// (re-exported from the `bytestring` crate).
pub use bytestring::ByteString;

pub use app::{app_fn, branch, unsupported_scope, App, BoxError, BoxFuture, SharedApp};
pub use connection::Connection;
pub use event::{Body, Message, ReceiveEvent, SendEvent};
pub use handle::{EventSink, EventSource, Receiver, SendError, Sender};
pub use headers::{validate_header, Headers, InvalidHeader};
pub use scope::{
    HttpScope, HttpVersion, LifespanScope, PagiInfo, Query, RequestInfo, Scope, ServerAddr,
    SharedState, State, StateKey, WebSocketScope,
};
pub use transport::Transport;

/// For servers, and for middleware that stands in for one: the halves of
/// `pagi.connection` and `pagi.transport` that change their state. Apps get
/// the read-only views ([`crate::Connection`], [`crate::Transport`]) in their
/// scope and never see these.
pub mod server {
    pub use crate::connection::ConnectionControl;
    pub use crate::transport::TransportControl;
}
pub use value::{ExtensionData, Extensions, Value};

/// The PAGI core specification version this crate implements (`scope.pagi.version`).
pub const PAGI_VERSION: &str = "0.3";
