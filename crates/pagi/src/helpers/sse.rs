//! Server-Sent Events helpers: start the stream, send typed events.
//!
//! ```
//! use pagi::{sse, BoxError, Receiver, Scope, Sender};
//!
//! async fn app(scope: Scope, _: Receiver, send: Sender) -> Result<(), BoxError> {
//!     let Scope::Sse(_) = scope else { return Err(pagi::unsupported_scope(&scope)) };
//!     let stream = sse::start(&send).await?;
//!     for n in 1..=3 {
//!         stream.send(sse::Event::new(n.to_string()).event("count").id(n.to_string())).await?;
//!     }
//!     stream.close().await?;
//!     Ok(())
//! }
//! # let _ = pagi::app_fn(app);
//! ```

use std::time::Duration;

use crate::{Headers, SendError, SendEvent, Sender};

/// One SSE dispatch: `data` plus the optional `event`, `id` and `retry`
/// fields.
///
/// ```
/// let e = pagi::sse::Event::new("42").event("answer").retry(3000);
/// assert_eq!(e.data(), "42");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    data: String,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
}

impl Event {
    /// An event carrying `data` (several lines become several `data:` lines).
    pub fn new(data: impl Into<String>) -> Self {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// An event whose data is `value` as JSON.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Event::new(serde_json::to_string(value)?))
    }

    /// Set the `event:` field (the browser's event type).
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.event = Some(name.into());
        self
    }

    /// Set the `id:` field (sent back as `Last-Event-ID` on reconnect).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Set the `retry:` field, in milliseconds.
    pub fn retry(mut self, millis: u64) -> Self {
        self.retry = Some(millis);
        self
    }

    /// The data.
    pub fn data(&self) -> &str {
        &self.data
    }
}

impl From<Event> for SendEvent {
    fn from(e: Event) -> Self {
        SendEvent::SseSend {
            event: e.event,
            data: e.data,
            id: e.id,
            retry: e.retry,
        }
    }
}

/// Send `sse.start` (status 200, the server's default headers) and return
/// the stream.
pub async fn start(send: &Sender) -> Result<EventStream, SendError> {
    start_with(send, 200, Headers::new()).await
}

/// Send `sse.start` with a status and extra headers.
pub async fn start_with(
    send: &Sender,
    status: u16,
    headers: impl Into<Headers>,
) -> Result<EventStream, SendError> {
    send.send(SendEvent::SseStart {
        status,
        headers: headers.into(),
    })
    .await?;
    Ok(EventStream { send: send.clone() })
}

/// A started event stream; clone it for each branch that sends.
#[derive(Clone, Debug)]
pub struct EventStream {
    send: Sender,
}

impl EventStream {
    /// Send one event.
    pub async fn send(&self, event: Event) -> Result<(), SendError> {
        self.send.send(event).await
    }

    /// Send a `:` comment line.
    pub async fn comment(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.send
            .send(SendEvent::SseComment {
                comment: text.into(),
            })
            .await
    }

    /// Have the server send a comment every `interval` (zero stops).
    pub async fn keepalive(&self, interval: Duration) -> Result<(), SendError> {
        self.send
            .send(SendEvent::SseKeepalive {
                interval,
                comment: String::new(),
            })
            .await
    }

    /// End the stream.
    pub async fn close(&self) -> Result<(), SendError> {
        self.send.send(SendEvent::SseClose { reason: None }).await
    }

    /// Resolves once the client is gone or the stream ended.
    pub async fn closed(&self) {
        self.send.closed().await
    }

    /// Whether the client is gone or the stream ended.
    pub fn is_closed(&self) -> bool {
        self.send.is_closed()
    }
}
