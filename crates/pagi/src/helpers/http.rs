//! HTTP helpers: read a request body with a limit, answer with a status,
//! headers and a body, or stream a body (with trailers). Each is a few
//! events underneath.
//!
//! ```
//! use pagi::{http, BoxError, Receiver, Scope, Sender};
//!
//! async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
//!     let Scope::Http(_) = scope else { return Err(pagi::unsupported_scope(&scope)) };
//!     let body = http::read_body(&mut receive, 64 * 1024).await?;
//!     http::Response::new(200)
//!         .header("content-type", "text/plain")
//!         .body(format!("{} bytes", body.len()))
//!         .send(&send)
//!         .await?;
//!     Ok(())
//! }
//! # let _ = pagi::app_fn(app);
//! ```

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::{Body, Headers, ReceiveEvent, Receiver, SendError, SendEvent, Sender};

/// Why [`read_body`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is longer than the limit (answer 413).
    TooLarge {
        /// The limit that was passed.
        limit: usize,
    },
    /// The client left before the body ended.
    Disconnected,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { limit } => write!(f, "request body over {limit} bytes"),
            BodyError::Disconnected => f.write_str("client disconnected during the request body"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Read the whole request body (`http.request` or `sse.request` events),
/// holding at most `limit` bytes: a longer body fails with
/// [`BodyError::TooLarge`] as soon as it passes the limit.
pub async fn read_body(receive: &mut Receiver, limit: usize) -> Result<Bytes, BodyError> {
    let mut whole = BytesMut::new();
    let mut first: Option<Bytes> = None;
    loop {
        let (body, more) = match receive.recv().await {
            ReceiveEvent::HttpRequest { body, more } | ReceiveEvent::SseRequest { body, more } => {
                (body, more)
            }
            e if e.is_disconnect() => return Err(BodyError::Disconnected),
            _ => continue,
        };
        let held = first.as_ref().map_or(0, Bytes::len) + whole.len();
        if held + body.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        // A body in one piece (the common case) is handed on without a copy.
        match first.take() {
            None if whole.is_empty() => first = Some(body),
            prev => {
                if let Some(prev) = prev {
                    whole.extend_from_slice(&prev);
                }
                whole.extend_from_slice(&body);
            }
        }
        if !more {
            return Ok(first.unwrap_or_else(|| whole.freeze()));
        }
    }
}

/// A whole response: status, headers, body. Sent as `http.response.start`
/// and one `http.response.body`.
///
/// ```
/// let r = pagi::http::Response::text(404, "no such page");
/// assert_eq!(r.status(), 404);
/// ```
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: Headers,
    body: Body,
}

impl Response {
    /// A response with `status`, no headers, an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Headers::new(),
            body: Body::Bytes(Bytes::new()),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.into())
    }

    /// A `text/html; charset=utf-8` response.
    pub fn html(status: u16, html: impl Into<String>) -> Self {
        Response::new(status)
            .header("content-type", "text/html; charset=utf-8")
            .body(html.into())
    }

    /// An `application/json` response with `value` serialized.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(
        status: u16,
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Response::new(status)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(value)?))
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Add every header of `headers`, after those already set.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        for (name, value) in headers {
            self.headers.push(name, value);
        }
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }

    /// Set a file as the body (the server opens and streams it).
    pub fn file(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// Send it as an `sse` scope's declining response
    /// (`sse.http.response.start` and `.body`): the answer of an event-stream
    /// request that gets no stream. A file body is not allowed there.
    pub async fn send_declining(self, send: &Sender) -> Result<(), SendError> {
        let Body::Bytes(body) = self.body else {
            return Err(SendError::invalid(
                "a declining SSE response has no file body",
            ));
        };
        send.send(SendEvent::SseHttpResponseStart {
            status: self.status,
            headers: self.headers,
        })
        .await?;
        send.send(SendEvent::SseHttpResponseBody { body, more: false })
            .await
    }

    /// Send it.
    pub async fn send(self, send: &Sender) -> Result<(), SendError> {
        send.send(SendEvent::response_start(self.status, self.headers))
            .await?;
        send.send(SendEvent::HttpResponseBody {
            body: self.body,
            more: false,
        })
        .await
    }
}

/// Start a streamed response; write the body piece by piece, then
/// [`finish`](BodyWriter::finish).
///
/// ```
/// # async fn f(send: pagi::Sender) -> Result<(), pagi::SendError> {
/// let mut body = pagi::http::stream(&send, 200, [("content-type", "text/plain")]).await?;
/// body.write("one\n").await?;
/// body.finish().await?;
/// # Ok(()) }
/// ```
pub async fn stream(
    send: &Sender,
    status: u16,
    headers: impl Into<Headers>,
) -> Result<BodyWriter, SendError> {
    start_stream(send, status, headers.into(), false).await
}

/// Start a streamed response that announces trailers (send them with
/// [`finish_with_trailers`](BodyWriter::finish_with_trailers)). Only for
/// clients that accept them: HTTP/2, or `TE: trailers` on HTTP/1.1.
///
/// ```
/// # async fn f(send: pagi::Sender) -> Result<(), pagi::SendError> {
/// let mut body =
///     pagi::http::stream_with_trailers(&send, 200, [("content-type", "text/plain")]).await?;
/// body.write("one\n").await?;
/// body.write("two\n").await?;
/// body.finish_with_trailers([("x-checksum", "abc")]).await?;
/// # Ok(()) }
/// ```
pub async fn stream_with_trailers(
    send: &Sender,
    status: u16,
    headers: impl Into<Headers>,
) -> Result<BodyWriter, SendError> {
    start_stream(send, status, headers.into(), true).await
}

async fn start_stream(
    send: &Sender,
    status: u16,
    headers: Headers,
    trailers: bool,
) -> Result<BodyWriter, SendError> {
    send.send(SendEvent::HttpResponseStart {
        status,
        headers,
        trailers,
    })
    .await?;
    Ok(BodyWriter {
        send: send.clone(),
        trailers,
    })
}

/// The body of a response started with [`stream`] or
/// [`stream_with_trailers`].
#[derive(Debug)]
pub struct BodyWriter {
    send: Sender,
    trailers: bool,
}

impl BodyWriter {
    /// Send a piece of the body.
    pub async fn write(&mut self, chunk: impl Into<Bytes>) -> Result<(), SendError> {
        self.send.send(SendEvent::response_body(chunk, true)).await
    }

    /// End the body (and send empty trailers if they were announced).
    pub async fn finish(self) -> Result<(), SendError> {
        if self.trailers {
            return self.finish_with_trailers(Headers::new()).await;
        }
        self.send
            .send(SendEvent::response_body(Bytes::new(), false))
            .await
    }

    /// End the body with trailers (the response must have announced them:
    /// [`stream_with_trailers`]).
    pub async fn finish_with_trailers(self, trailers: impl Into<Headers>) -> Result<(), SendError> {
        self.send
            .send(SendEvent::response_body(Bytes::new(), false))
            .await?;
        self.send
            .send(SendEvent::HttpResponseTrailers {
                headers: trailers.into(),
            })
            .await
    }

    /// Resolves once the client is gone or the response is complete.
    pub async fn closed(&self) {
        self.send.closed().await
    }
}

/// Read the request body (at most `limit` bytes) and parse it as JSON.
#[cfg(feature = "json")]
pub async fn read_json<T: serde::de::DeserializeOwned>(
    receive: &mut Receiver,
    limit: usize,
) -> Result<T, crate::BoxError> {
    let body = read_body(receive, limit).await?;
    Ok(serde_json::from_slice(&body)?)
}
