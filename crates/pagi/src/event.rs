//! The events that flow through `receive` and `send`.

use bytes::Bytes;
use bytestring::ByteString;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Headers, Value};

/// A WebSocket message: text (valid UTF-8, decoded) or binary.
///
/// Both are cheap to clone. A text message is a [`ByteString`], UTF-8 validated once, that
/// derefs to `&str`. From pagi-server, a large (4 KiB or more), uncompressed, single-frame
/// message shares the buffer it arrived in instead of being copied out of it.
///
/// ```
/// use pagi::Message;
///
/// let m = Message::Text("hello".into());
/// assert_eq!(m.as_text(), Some("hello"));
/// if let Message::Text(t) = &m {
///     assert_eq!(t.to_uppercase(), "HELLO"); // `t` derefs to `&str`
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (`text` key).
    Text(ByteString),
    /// A binary message (`bytes` key).
    Binary(Bytes),
}

impl Message {
    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(s) => Some(s),
            Message::Binary(_) => None,
        }
    }

    /// The payload as bytes (text as its UTF-8 encoding).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An event from the client, returned by [`crate::Receiver::recv`]; or,
/// as [`ReceiveEvent::Custom`], one a middleware injects into the `receive`
/// it hands the app.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ReceiveEvent {
    /// `http.request`: a de-chunked request body fragment; `more` is true
    /// while further fragments follow.
    HttpRequest {
        /// The body chunk.
        body: Bytes,
        /// Whether more body follows.
        more: bool,
    },
    /// `http.disconnect`: the client went away, or the response was sent.
    HttpDisconnect,
    /// `websocket.connect`: the first event of every WebSocket scope; answer
    /// with `websocket.accept`, `websocket.close` (HTTP 403) or a denial
    /// response.
    WebSocketConnect,
    /// `websocket.receive`: a complete message from the client.
    WebSocketReceive(Message),
    /// `websocket.disconnect`: the session ended. `code` is the peer's close
    /// code (1005 if its Close had none), the code the server sent for a
    /// protocol violation, or 1006 for an abnormal drop; `reason` is the
    /// peer's reason text, or a standard token such as `client_closed`,
    /// `keepalive_timeout`, `server_shutdown`, `protocol_error`.
    /// Receiving again after it returns it again.
    WebSocketDisconnect {
        /// RFC 6455 close code.
        code: u16,
        /// Peer reason text or standard reason token.
        reason: String,
    },
    /// `sse.request`: request body for an SSE scope (one empty event with
    /// `more == false` for a bodiless request).
    SseRequest {
        /// The body chunk.
        body: Bytes,
        /// Whether more body follows.
        more: bool,
    },
    /// `sse.disconnect`: the client went away or the server shut the stream.
    SseDisconnect {
        /// Standard reason token.
        reason: String,
    },
    /// `lifespan.startup`.
    LifespanStartup,
    /// `lifespan.shutdown`.
    LifespanShutdown,
    /// An event of a type the spec does not define, made by a middleware
    /// that wraps `receive` (its own event source, e.g. a timer's `tick`).
    /// Servers never produce it.
    ///
    /// ```
    /// use pagi::{ReceiveEvent, Value};
    /// let tick = ReceiveEvent::custom("tick", Value::Int(3));
    /// assert_eq!(tick.type_name(), "tick");
    /// assert!(!tick.is_disconnect());
    /// ```
    Custom {
        /// The event's `type`, e.g. `tick` (by convention not one of the
        /// spec's, which have variants of their own).
        kind: std::borrow::Cow<'static, str>,
        /// Whatever the event carries.
        data: Value,
    },
}

impl ReceiveEvent {
    /// The event's `type` string, e.g. `websocket.receive`.
    pub fn type_name(&self) -> &str {
        match self {
            ReceiveEvent::HttpRequest { .. } => "http.request",
            ReceiveEvent::HttpDisconnect => "http.disconnect",
            ReceiveEvent::WebSocketConnect => "websocket.connect",
            ReceiveEvent::WebSocketReceive(_) => "websocket.receive",
            ReceiveEvent::WebSocketDisconnect { .. } => "websocket.disconnect",
            ReceiveEvent::SseRequest { .. } => "sse.request",
            ReceiveEvent::SseDisconnect { .. } => "sse.disconnect",
            ReceiveEvent::LifespanStartup => "lifespan.startup",
            ReceiveEvent::LifespanShutdown => "lifespan.shutdown",
            ReceiveEvent::Custom { kind, .. } => kind,
        }
    }

    /// A [`ReceiveEvent::Custom`] event.
    pub fn custom(kind: impl Into<std::borrow::Cow<'static, str>>, data: Value) -> Self {
        ReceiveEvent::Custom {
            kind: kind.into(),
            data,
        }
    }

    /// Whether this is a disconnect event of any protocol.
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            ReceiveEvent::HttpDisconnect
                | ReceiveEvent::WebSocketDisconnect { .. }
                | ReceiveEvent::SseDisconnect { .. }
        )
    }
}

/// The content of an `http.response.body` event: exactly one of `body`,
/// `file` or `fh`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Body {
    /// `body`: bytes to send.
    Bytes(Bytes),
    /// `file`: a path the server opens, streams from `offset` for `length`
    /// bytes (to EOF when `None`), and closes. Implicitly the last body event.
    File {
        /// Absolute path.
        path: PathBuf,
        /// Start offset in bytes.
        offset: u64,
        /// Number of bytes, or to end of file.
        length: Option<u64>,
    },
    /// `fh`: an already open file; ownership passes to the server, which
    /// closes it once streamed. Implicitly the last body event.
    Handle {
        /// The open file.
        file: std::fs::File,
        /// Start offset in bytes.
        offset: u64,
        /// Number of bytes, or to end of file.
        length: Option<u64>,
    },
}

/// An event for the client, given to [`crate::Sender::send`].
#[derive(Debug)]
#[non_exhaustive]
pub enum SendEvent {
    /// `http.response.start`.
    HttpResponseStart {
        /// Status code.
        status: u16,
        /// Response headers (validated by the server: no CR/LF/NUL).
        headers: Headers,
        /// Whether `http.response.trailers` will follow the body.
        trailers: bool,
    },
    /// `http.response.body`.
    HttpResponseBody {
        /// The content.
        body: Body,
        /// Whether more body events follow (ignored for files).
        more: bool,
    },
    /// `http.response.trailers` (only after a start with `trailers`).
    HttpResponseTrailers {
        /// Trailer headers.
        headers: Headers,
    },
    /// `http.fullflush` (only where the `fullflush` extension is advertised).
    HttpFullflush,
    /// `websocket.accept`: complete the handshake (HTTP 101).
    WebSocketAccept {
        /// The chosen subprotocol, sent as `Sec-WebSocket-Protocol`.
        subprotocol: Option<String>,
        /// Extra response headers.
        headers: Headers,
    },
    /// `websocket.send`: one message.
    WebSocketSend(Message),
    /// `websocket.close`: before accept, reject with HTTP 403; after, send a
    /// Close frame with `code` (default 1000) and `reason`.
    WebSocketClose {
        /// Close code.
        code: u16,
        /// Close reason (at most 123 bytes go on the wire).
        reason: String,
    },
    /// `websocket.keepalive`: ping every `interval` (zero stops); with a
    /// `timeout`, a missing pong closes with 1006 `keepalive_timeout`.
    WebSocketKeepalive {
        /// Ping interval; zero disables.
        interval: Duration,
        /// How long to wait for a pong.
        timeout: Option<Duration>,
    },
    /// `websocket.http.response.start`: deny the handshake with a custom
    /// HTTP response (extension `websocket.http.response`).
    WebSocketHttpResponseStart {
        /// Status code.
        status: u16,
        /// Headers.
        headers: Headers,
    },
    /// `websocket.http.response.body`: body of the denial response.
    WebSocketHttpResponseBody {
        /// Body chunk.
        body: Bytes,
        /// Whether more follows.
        more: bool,
    },
    /// `sse.start`: begin the event stream.
    SseStart {
        /// Status code (default 200).
        status: u16,
        /// Headers.
        headers: Headers,
    },
    /// `sse.send`: one SSE dispatch.
    SseSend {
        /// `event:` field (no newlines).
        event: Option<String>,
        /// `data:` payload; split on newlines into several `data:` lines.
        data: String,
        /// `id:` field (no newlines).
        id: Option<String>,
        /// `retry:` in milliseconds.
        retry: Option<u64>,
    },
    /// `sse.comment`: a `:` comment line.
    SseComment {
        /// Comment text.
        comment: String,
    },
    /// `sse.keepalive`: send comment lines every `interval` (zero stops).
    SseKeepalive {
        /// Interval; zero disables.
        interval: Duration,
        /// Comment text.
        comment: String,
    },
    /// `sse.close`: end the stream now.
    SseClose {
        /// Server-side reason (never sent to the client).
        reason: Option<String>,
    },
    /// `sse.http.response.start`: decline the stream with a normal response.
    SseHttpResponseStart {
        /// Status code.
        status: u16,
        /// Headers.
        headers: Headers,
    },
    /// `sse.http.response.body`: body of the declining response.
    SseHttpResponseBody {
        /// Body chunk.
        body: Bytes,
        /// Whether more follows.
        more: bool,
    },
    /// `lifespan.startup.complete`.
    LifespanStartupComplete,
    /// `lifespan.startup.failed`: the server aborts startup.
    LifespanStartupFailed {
        /// Why.
        message: String,
    },
    /// `lifespan.shutdown.complete`.
    LifespanShutdownComplete,
    /// `lifespan.shutdown.failed`.
    LifespanShutdownFailed {
        /// Why.
        message: String,
    },
}

impl SendEvent {
    /// The spec's `type` string, e.g. `http.response.start`.
    pub fn type_name(&self) -> &'static str {
        match self {
            SendEvent::HttpResponseStart { .. } => "http.response.start",
            SendEvent::HttpResponseBody { .. } => "http.response.body",
            SendEvent::HttpResponseTrailers { .. } => "http.response.trailers",
            SendEvent::HttpFullflush => "http.fullflush",
            SendEvent::WebSocketAccept { .. } => "websocket.accept",
            SendEvent::WebSocketSend(_) => "websocket.send",
            SendEvent::WebSocketClose { .. } => "websocket.close",
            SendEvent::WebSocketKeepalive { .. } => "websocket.keepalive",
            SendEvent::WebSocketHttpResponseStart { .. } => "websocket.http.response.start",
            SendEvent::WebSocketHttpResponseBody { .. } => "websocket.http.response.body",
            SendEvent::SseStart { .. } => "sse.start",
            SendEvent::SseSend { .. } => "sse.send",
            SendEvent::SseComment { .. } => "sse.comment",
            SendEvent::SseKeepalive { .. } => "sse.keepalive",
            SendEvent::SseClose { .. } => "sse.close",
            SendEvent::SseHttpResponseStart { .. } => "sse.http.response.start",
            SendEvent::SseHttpResponseBody { .. } => "sse.http.response.body",
            SendEvent::LifespanStartupComplete => "lifespan.startup.complete",
            SendEvent::LifespanStartupFailed { .. } => "lifespan.startup.failed",
            SendEvent::LifespanShutdownComplete => "lifespan.shutdown.complete",
            SendEvent::LifespanShutdownFailed { .. } => "lifespan.shutdown.failed",
        }
    }

    /// `http.response.start` with `status` and `headers`, no trailers.
    pub fn response_start(status: u16, headers: impl Into<Headers>) -> Self {
        SendEvent::HttpResponseStart {
            status,
            headers: headers.into(),
            trailers: false,
        }
    }

    /// `http.response.body` with bytes.
    pub fn response_body(body: impl Into<Bytes>, more: bool) -> Self {
        SendEvent::HttpResponseBody {
            body: Body::Bytes(body.into()),
            more,
        }
    }

    /// `websocket.accept` with no subprotocol and no extra headers.
    pub fn accept() -> Self {
        SendEvent::WebSocketAccept {
            subprotocol: None,
            headers: Headers::new(),
        }
    }

    /// `websocket.send` with a text message (a `String`, a `&str` or a [`ByteString`]).
    pub fn text(text: impl Into<ByteString>) -> Self {
        SendEvent::WebSocketSend(Message::Text(text.into()))
    }

    /// `websocket.send` with a binary message.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        SendEvent::WebSocketSend(Message::Binary(bytes.into()))
    }

    /// `websocket.close` with `code` and `reason`.
    pub fn close(code: u16, reason: impl Into<String>) -> Self {
        SendEvent::WebSocketClose {
            code,
            reason: reason.into(),
        }
    }
}

impl From<Message> for SendEvent {
    fn from(m: Message) -> Self {
        SendEvent::WebSocketSend(m)
    }
}
