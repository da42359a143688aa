//! Pure translations between the wire and PAGI, with unit tests fed plain
//! values: HTTP/1.1 heads, bodies and framing, request heads into scope
//! fields, app response heads checked (the SSE format is `pagi::sse_wire`), WebSocket handshake
//! checks, and what a proxy says about the client. Nothing here touches a
//! socket or a task, and nothing here imports the connection code.

pub(crate) mod h1;
pub(crate) mod h2;
pub(crate) mod handshake;
pub(crate) mod proxy;
pub(crate) mod request;
pub(crate) mod response;
