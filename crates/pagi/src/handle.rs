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
    /// Ready once the connection is closed for sending: the peer is gone
    /// or the exchange ended, so further events are dropped. Registers the
    /// waker otherwise.
    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()>;
    /// Whether [`EventSink::poll_closed`] would be ready now.
    fn is_closed(&self) -> bool;
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
/// A send after the connection closed is a no-op that returns `Ok(())`, as
/// the spec requires; apps learn about the close from the disconnect event,
/// or, in a branch that only sends, from [`Sender::closed`].
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

    /// Resolves once the connection is closed for sending (the client left,
    /// the session ended, the response is complete): from then on sends are
    /// dropped. A push-only loop selects on it to end with the connection.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let (_receive, _feed, send, sent) = pagi::testing::pair(8);
    /// let pusher = async {
    ///     let mut n = 0;
    ///     loop {
    ///         tokio::select! {
    ///             _ = send.closed() => return n, // the client left
    ///             _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => {
    ///                 n += 1;
    ///                 send.send(pagi::SendEvent::text(format!("tick {n}"))).await.unwrap();
    ///             }
    ///         }
    ///     }
    /// };
    /// let closer = async {
    ///     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    ///     sent.close();
    /// };
    /// let (n, ()) = tokio::join!(pusher, closer);
    /// assert!(n > 0 && send.is_closed());
    /// # });
    /// ```
    pub async fn closed(&self) {
        poll_fn(|cx| self.sink.poll_closed(cx)).await
    }

    /// Whether the connection is closed for sending (see [`Sender::closed`]).
    pub fn is_closed(&self) -> bool {
        self.sink.is_closed()
    }

    /// Poll form of the wait in [`Sender::send`], for a middleware whose
    /// own [`EventSink`] forwards to this sender.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.sink.poll_ready(cx)
    }

    /// Hand over one event after [`Sender::poll_ready`] was ready (the
    /// second half of [`Sender::send`]).
    pub fn start_send(&self, event: SendEvent) -> Result<(), SendError> {
        self.sink.start_send(event)
    }

    /// Poll form of [`Sender::closed`].
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.sink.poll_closed(cx)
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// Why a send failed. A send after the connection closed is not an error;
/// these are mistakes in what the app sent, told apart by the `is_*`
/// predicates (the message says exactly what was wrong).
///
/// ```
/// let e = pagi::SendError::unrecognized(&pagi::SendEvent::accept(), "http");
/// assert!(e.is_unrecognized() && !e.is_out_of_order());
/// assert_eq!(e.to_string(), "Unrecognized event type 'websocket.accept' for http protocol");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SendError {
    kind: Kind,
    message: Box<str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Unrecognized,
    OutOfOrder,
    Invalid,
    Io,
}

impl SendError {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        SendError {
            kind,
            message: message.into().into_boxed_str(),
        }
    }

    /// An event type the scope does not accept:
    /// `Unrecognized event type '<type>' for <protocol> protocol`.
    pub fn unrecognized(event: &SendEvent, protocol: &str) -> Self {
        SendError::new(
            Kind::Unrecognized,
            format!(
                "Unrecognized event type '{}' for {protocol} protocol",
                event.type_name()
            ),
        )
    }

    /// An extension's event where the server does not offer the extension:
    /// `Extension not enabled: <name>`.
    pub fn not_offered(extension: &str) -> Self {
        SendError::new(
            Kind::Unrecognized,
            format!("Extension not enabled: {extension}"),
        )
    }

    /// An event this protocol knows, sent at the wrong moment (a body
    /// before the start, an accept sent twice, an event after a close).
    pub fn out_of_order(message: impl Into<String>) -> Self {
        SendError::new(Kind::OutOfOrder, message)
    }

    /// An event with a value the protocol forbids (a header with CR/LF, a
    /// status out of range, a subprotocol the client did not offer).
    pub fn invalid(message: impl Into<String>) -> Self {
        SendError::new(Kind::Invalid, message)
    }

    /// A file body that could not be opened or read.
    pub fn io(message: impl Into<String>) -> Self {
        SendError::new(Kind::Io, message)
    }

    /// The event type is not one this scope accepts (or an extension's
    /// event where the extension is not offered).
    pub fn is_unrecognized(&self) -> bool {
        self.kind == Kind::Unrecognized
    }

    /// The event came at the wrong point of the protocol.
    pub fn is_out_of_order(&self) -> bool {
        self.kind == Kind::OutOfOrder
    }

    /// The event carried a forbidden value.
    pub fn is_invalid(&self) -> bool {
        self.kind == Kind::Invalid
    }

    /// A file body could not be opened or read.
    pub fn is_io(&self) -> bool {
        self.kind == Kind::Io
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SendError({:?}: {:?})", self.kind, self.message)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SendError {}
