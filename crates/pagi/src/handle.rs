//! The receive and send handles given to an app, and the traits a server
//! implements behind them.

use std::fmt;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::{ReceiveEvent, SendEvent};

/// The server side of a [`Receiver`]: yields the connection's next event.
///
/// Once the connection has ended, implementations keep returning the
/// protocol's disconnect event.
pub trait EventSource: Send + 'static {
    /// Poll for the next event from the client.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent>;
}

/// The server side of a [`Sender`]: a bounded outbound queue.
pub trait EventSink: Send + Sync + 'static {
    /// Ready when the queue can take another event (it is below its limit),
    /// or when the connection is closed (sends are then no-ops).
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()>;
    /// Hand one event to the queue. Fails for an event that is invalid for
    /// the protocol or its current state (e.g. a body before the response
    /// start, a header with CR/LF). After the connection closed, accepts and
    /// drops the event.
    fn start_send(&self, event: SendEvent) -> Result<(), SendError>;
}

/// The app's `receive`: awaits the next event from the client.
///
/// [`Receiver::recv`] is cancel-safe: dropping its future (for example when
/// another branch of a `tokio::select!` wins) loses no event.
pub struct Receiver {
    source: Box<dyn EventSource>,
}

impl Receiver {
    /// Wrap a server's event source.
    pub fn new(source: impl EventSource) -> Self {
        Receiver {
            source: Box::new(source),
        }
    }

    /// The next event from the client. After the connection has ended this
    /// returns the disconnect event again, so loops always terminate.
    pub async fn recv(&mut self) -> ReceiveEvent {
        poll_fn(|cx| self.source.poll_recv(cx)).await
    }

    /// Poll form of [`Receiver::recv`], for hand-written futures.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        self.source.poll_recv(cx)
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// The app's `send`: emits events to the client.
///
/// Cheap to clone, so several branches or tasks of one app can send; the
/// server writes each event whole, never interleaved with another. `send`
/// completes when the event is accepted by the connection's bounded outbound
/// queue: while the queue is full (for WebSocket: above the high-water mark,
/// until it drains below the low-water mark) it waits. It is cancel-safe: an
/// event is either fully handed over or not at all.
///
/// A send after the connection closed is a no-op that returns `Ok(())`; apps
/// learn about the close from the disconnect event.
#[derive(Clone)]
pub struct Sender {
    sink: Arc<dyn EventSink>,
}

impl Sender {
    /// Wrap a server's event sink.
    pub fn new(sink: Arc<dyn EventSink>) -> Self {
        Sender { sink }
    }

    /// Send one event, waiting for room in the outbound queue.
    ///
    /// (A plain function returning the future rather than an `async fn`,
    /// which would store the event twice in its state.)
    pub fn send(
        &self,
        event: impl Into<SendEvent>,
    ) -> impl Future<Output = Result<(), SendError>> + Send + '_ {
        let mut event = Some(event.into());
        poll_fn(move |cx| {
            std::task::ready!(self.sink.poll_ready(cx));
            let event = event.take().expect("send future polled after completion");
            Poll::Ready(self.sink.start_send(event))
        })
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// Why a send failed: the event was invalid for the protocol or its state.
/// (A send after the connection closed is not an error.)
#[derive(Clone, PartialEq, Eq)]
pub struct SendError {
    message: Box<str>,
}

impl SendError {
    /// An error with `message`, for servers implementing [`EventSink`].
    pub fn new(message: impl Into<String>) -> Self {
        SendError {
            message: message.into().into_boxed_str(),
        }
    }

    /// The standard error for an event type the scope does not accept:
    /// `Unrecognized event type '<type>' for <protocol> protocol`.
    pub fn unrecognized(event: &SendEvent, protocol: &str) -> Self {
        SendError::new(format!(
            "Unrecognized event type '{}' for {protocol} protocol",
            event.type_name()
        ))
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SendError({:?})", self.message)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SendError {}
