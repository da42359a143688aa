//! In-memory handles for testing apps and middleware without a server.
//!
//! ```
//! # tokio_test();
//! # fn tokio_test() {
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! use pagi::{testing, ReceiveEvent, SendEvent};
//! let (receive, feed, send, sent) = testing::pair(8);
//! feed.push(ReceiveEvent::WebSocketConnect);
//! let mut receive = receive;
//! assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
//! send.send(SendEvent::text("hi")).await.unwrap();
//! assert_eq!(sent.take().len(), 1);
//! # });
//! # }
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::{EventSink, EventSource, ReceiveEvent, Receiver, SendError, SendEvent, Sender};

#[derive(Default, Debug)]
struct Inbox {
    events: VecDeque<ReceiveEvent>,
    /// Returned forever once `events` is empty and the feed is closed.
    closed_with: Option<ReceiveEvent>,
    waker: Option<Waker>,
}

/// Feeds events to the [`Receiver`] made by [`pair`].
#[derive(Clone, Debug)]
pub struct Feed(Arc<Mutex<Inbox>>);

impl Feed {
    /// Queue an event for the app.
    pub fn push(&self, event: ReceiveEvent) {
        let mut inbox = self.0.lock().unwrap();
        inbox.events.push_back(event);
        if let Some(w) = inbox.waker.take() {
            w.wake();
        }
    }

    /// End the connection: once the queue is drained, `recv` returns
    /// `last` forever (the protocol's disconnect event).
    pub fn close(&self, last: ReceiveEvent) {
        let mut inbox = self.0.lock().unwrap();
        inbox.closed_with = Some(last);
        if let Some(w) = inbox.waker.take() {
            w.wake();
        }
    }
}

struct FeedSource(Arc<Mutex<Inbox>>);

impl EventSource for FeedSource {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        let mut inbox = self.0.lock().unwrap();
        if let Some(e) = inbox.events.pop_front() {
            return Poll::Ready(e);
        }
        if let Some(last) = &inbox.closed_with {
            return Poll::Ready(last.clone());
        }
        inbox.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[derive(Default)]
struct Outbox {
    events: Vec<SendEvent>,
    capacity: usize,
    waiters: Vec<Waker>,
    /// Set by [`Sent::close`]: sends are dropped from then on.
    closed: bool,
    close_waiters: Vec<Waker>,
}

/// Collects what the app sent through the [`Sender`] made by [`pair`].
#[derive(Clone)]
pub struct Sent(Arc<Mutex<Outbox>>);

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let out = self.0.lock().unwrap();
        f.debug_struct("Sent")
            .field("events", &out.events.len())
            .field("closed", &out.closed)
            .finish()
    }
}

impl Sent {
    /// Take every event sent so far, making room for more.
    pub fn take(&self) -> Vec<SendEvent> {
        let mut out = self.0.lock().unwrap();
        for w in out.waiters.drain(..) {
            w.wake();
        }
        std::mem::take(&mut out.events)
    }

    /// The peer is gone: the [`Sender`]'s `closed()` resolves, waiting
    /// sends complete, and later sends are dropped (as a server does).
    pub fn close(&self) {
        let mut out = self.0.lock().unwrap();
        out.closed = true;
        let mut waiters = std::mem::take(&mut out.waiters);
        waiters.append(&mut out.close_waiters);
        drop(out);
        waiters.into_iter().for_each(Waker::wake);
    }
}

impl EventSink for Sent {
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut out = self.0.lock().unwrap();
        if out.closed || out.events.len() < out.capacity {
            Poll::Ready(())
        } else {
            out.waiters.push(cx.waker().clone());
            Poll::Pending
        }
    }

    fn start_send(&self, event: SendEvent) -> Result<(), SendError> {
        let mut out = self.0.lock().unwrap();
        if !out.closed {
            out.events.push(event);
        }
        Ok(())
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut out = self.0.lock().unwrap();
        if out.closed {
            return Poll::Ready(());
        }
        if !out.close_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            out.close_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn is_closed(&self) -> bool {
        self.0.lock().unwrap().closed
    }
}

/// A receive/send pair backed by memory: push events with the [`Feed`],
/// read what the app sent with [`Sent::take`]. The sender holds at most
/// `capacity` untaken events and waits beyond that, like a server's queue.
pub fn pair(capacity: usize) -> (Receiver, Feed, Sender, Sent) {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let sent = Sent(Arc::new(Mutex::new(Outbox {
        capacity: capacity.max(1),
        ..Outbox::default()
    })));
    (
        Receiver::new(FeedSource(inbox.clone())),
        Feed(inbox),
        Sender::new(Arc::new(sent.clone())),
        sent,
    )
}
