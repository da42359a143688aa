//! Rewriting what an app sends.

use std::fmt;
use std::task::{Context, Poll};

use pagi::{EventSink, SendError, SendEvent, Sender};

/// A `send` for an inner app that passes each event through `f` before
/// `send` gets it. Backpressure and `closed()` are `send`'s.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use pagi::SendEvent;
/// let (_receive, _feed, send, sent) = pagi::testing::pair(8);
/// let tagged = pagi_middleware::map_send(send, |event| match event {
///     SendEvent::HttpResponseStart { status, mut headers, trailers } => {
///         headers.push("x-served-by", "pagi");
///         SendEvent::HttpResponseStart { status, headers, trailers }
///     }
///     other => other,
/// });
/// tagged.send(SendEvent::response_start(200, pagi::Headers::new())).await.unwrap();
/// let SendEvent::HttpResponseStart { headers, .. } = &sent.take()[0] else { panic!() };
/// assert!(headers.contains("x-served-by"));
/// # });
/// ```
pub fn map_send<F>(send: Sender, f: F) -> Sender
where
    F: Fn(SendEvent) -> SendEvent + Send + Sync + 'static,
{
    Sender::new(std::sync::Arc::new(MapSend { send, f }))
}

struct MapSend<F> {
    send: Sender,
    f: F,
}

impl<F> fmt::Debug for MapSend<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapSend").finish_non_exhaustive()
    }
}

impl<F> EventSink for MapSend<F>
where
    F: Fn(SendEvent) -> SendEvent + Send + Sync + 'static,
{
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.send.poll_ready(cx)
    }

    fn start_send(&self, event: SendEvent) -> Result<(), SendError> {
        self.send.start_send((self.f)(event))
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.send.poll_closed(cx)
    }

    fn is_closed(&self) -> bool {
        self.send.is_closed()
    }
}
