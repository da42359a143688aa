//! HTTP/1.1 (RFC 9112) as pure functions over bytes: request heads in,
//! request bodies decoded, response heads and body framing out. The
//! connection that drives them over a socket is `crate::http1`.

pub(crate) mod body;
pub(crate) mod encode;
pub(crate) mod head;
