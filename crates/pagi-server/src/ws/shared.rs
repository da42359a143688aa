//! State shared by a WebSocket app's `receive`/`send` and the connection
//! driver. The app's sends are encoded straight into the session's output
//! queue (whole frames, so concurrent senders never interleave); the driver
//! writes that queue to the socket and feeds decoded messages back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pagi::server::TransportControl;
use pagi::{EventSink, EventSource, Headers, Message, ReceiveEvent, SendError, SendEvent};
use pagi_ws::{Session, SessionConfig};

use crate::budget::Account;
use crate::wire::handshake::check_subprotocol;
use crate::wire::response::{check_final_status, check_headers};

/// How the app answered `websocket.connect`.
pub(crate) enum Decision {
    Accept {
        subprotocol: Option<String>,
        /// Checked extra response headers.
        headers: Headers,
    },
    /// `websocket.close` before accept: HTTP 403.
    Reject,
    /// The denial-response extension: a checked status and headers.
    Deny {
        status: u16,
        headers: Headers,
        body: Bytes,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    Handshake,
    Open,
    Done,
}

/// The app's `websocket.keepalive` setting; `generation` tells the driver
/// it changed.
#[derive(Clone, Copy, Default)]
pub(crate) struct Keepalive {
    pub(crate) interval: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) generation: u64,
}

/// Decoded messages waiting for the app's `receive`; owns their byte count.
#[derive(Default)]
pub(crate) struct Inbound {
    messages: VecDeque<Message>,
    bytes: usize,
}

impl Inbound {
    fn push(&mut self, m: Message) {
        self.bytes += m.len();
        self.messages.push_back(m);
    }

    fn pop(&mut self) -> Option<Message> {
        let m = self.messages.pop_front()?;
        self.bytes -= m.len();
        Some(m)
    }

    fn clear(&mut self) {
        self.messages.clear();
        self.bytes = 0;
    }

    /// Messages queued.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Payload bytes queued.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

pub(crate) struct Inner {
    pub(crate) phase: Phase,
    connect_delivered: bool,
    /// Boxed: only used during the handshake, and large.
    pub(crate) decision: Option<Box<Decision>>,
    deny: Option<Box<(u16, Headers, BytesMut)>>,
    /// The server is draining: the driver sends Close 1001.
    pub(crate) shutdown_requested: bool,
    pub(crate) session: Option<Session>,
    pub(crate) inbound: Inbound,
    /// What the session holds for its peer against the server's budget:
    /// the queue, plus `driver_held`.
    account: Account,
    /// Bytes the driver holds outside the queue (the message being received
    /// and input not decoded yet), as it last reported them.
    driver_held: usize,
    /// The driver stopped reading until the app takes a message.
    pub(crate) read_paused: bool,
    /// `websocket.disconnect`, returned forever once the inbound queue drains.
    pub(crate) ended: Option<(u16, String)>,
    pub(crate) keepalive: Keepalive,
    /// Some once the app's future finished: whether it failed.
    pub(crate) app_failed: Option<bool>,
    /// A Close the server initiated itself (shutdown, app close): the code
    /// and the reason token to report if the peer never answers.
    pub(crate) local_close: Option<(u16, &'static str)>,
    recv_waker: Option<Waker>,
    /// Senders waiting in `send.closed()` for the session to end.
    closed_wakers: Vec<Waker>,
    driver_waker: Option<Waker>,
    /// The session task (app + driver) is inside its poll loop, with this
    /// waker. A wake aimed at that task is then turned into a bit in
    /// `WsShared::dirty`, which makes the loop poll that half again, instead
    /// of a trip through the scheduler (two per echoed message otherwise).
    polling: Option<Waker>,
    /// Which halves were woken while the session task was polling
    /// (`Half::bit`s); each half clears its bit when it runs.
    pub(crate) dirty: u8,
    handshake_waker: Option<Waker>,
}

pub(crate) struct WsShared {
    inner: Mutex<Inner>,
    pub(crate) transport: TransportControl,
    session_config: SessionConfig,
    offered: Vec<String>,
    pub(crate) queue_limit: usize,
}

impl WsShared {
    pub(crate) fn new(
        transport: TransportControl,
        session_config: SessionConfig,
        offered: Vec<String>,
        queue_limit: usize,
        account: Account,
    ) -> Arc<Self> {
        Arc::new(WsShared {
            inner: Mutex::new(Inner {
                phase: Phase::Handshake,
                connect_delivered: false,
                decision: None,
                deny: None,
                shutdown_requested: false,
                session: None,
                inbound: Inbound::default(),
                account,
                driver_held: 0,
                read_paused: false,
                ended: None,
                keepalive: Keepalive::default(),
                app_failed: None,
                local_close: None,
                recv_waker: None,
                closed_wakers: Vec::new(),
                driver_waker: None,
                polling: None,
                dirty: 0,
                handshake_waker: None,
            }),
            transport,
            session_config,
            offered,
            queue_limit: queue_limit.max(1),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session ended with `code`/`reason` (first call wins); wakes the
    /// app's `receive` and the transport's waiting senders.
    pub(crate) fn end(&self, code: u16, reason: &str) {
        {
            let mut inner = self.lock();
            if inner.ended.is_none() {
                inner.ended = Some((code, reason.to_owned()));
            }
            inner.phase = Phase::Done;
            wake_closed(&mut inner);
            notify(&mut inner, Half::App);
            notify(&mut inner, Half::Driver);
            wake(&mut inner.handshake_waker);
        }
        self.transport.close();
    }

    /// Driver-side form of [`WsShared::end`], under the lock.
    pub(crate) fn set_ended(inner: &mut Inner, code: u16, reason: &str) {
        if inner.ended.is_none() {
            inner.ended = Some((code, reason.to_owned()));
        }
        wake_closed(inner);
        notify(inner, Half::App);
        wake(&mut inner.handshake_waker);
    }

    /// The server is draining: ask the driver to send Close 1001.
    pub(crate) fn begin_shutdown(&self) {
        let mut inner = self.lock();
        inner.shutdown_requested = true;
        notify(&mut inner, Half::Driver);
    }

    /// The app's future finished.
    pub(crate) fn app_finished(&self, failed: bool) {
        let mut inner = self.lock();
        inner.app_failed = Some(failed);
        // Nobody will receive what is still queued.
        inner.inbound.clear();
        inner.sync_account();
        notify(&mut inner, Half::Driver);
        wake(&mut inner.handshake_waker);
    }

    /// For the upgrade handler: the app's decision, or `Err(failed)` if the
    /// app finished (or the session ended) without one.
    pub(crate) fn poll_decision(&self, cx: &mut Context<'_>) -> Poll<Result<Decision, bool>> {
        let mut inner = self.lock();
        if let Some(d) = inner.decision.take() {
            return Poll::Ready(Ok(*d));
        }
        if let Some(failed) = inner.app_failed {
            return Poll::Ready(Err(failed));
        }
        if inner.phase == Phase::Done {
            return Poll::Ready(Err(false));
        }
        inner.handshake_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// For the driver: register to be woken by app-side changes.
    pub(crate) fn set_driver_waker(inner: &mut Inner, cx: &Context<'_>) {
        match &inner.driver_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.driver_waker = Some(cx.waker().clone()),
        }
    }

    /// For the driver: a decoded message for the app.
    pub(crate) fn push_inbound(inner: &mut Inner, msg: Message) {
        inner.inbound.push(msg);
        notify(inner, Half::App);
    }

    fn send(&self, event: SendEvent) -> Result<(), SendError> {
        let mut inner = self.lock();
        let buffered = match event {
            SendEvent::WebSocketSend(msg) => match inner.phase {
                Phase::Handshake => {
                    return Err(SendError::out_of_order(
                        "websocket.send before websocket.accept",
                    ))
                }
                Phase::Done => return Ok(()),
                Phase::Open => {
                    let session = inner.session.as_mut().expect("open session");
                    // Err means a Close was already sent or received: a no-op.
                    let _ = session.send(to_ws(msg));
                    session.buffered()
                }
            },
            SendEvent::WebSocketAccept {
                subprotocol,
                headers,
            } => {
                match inner.phase {
                    Phase::Done => return Ok(()),
                    Phase::Open => {
                        return Err(SendError::out_of_order("websocket.accept sent twice"))
                    }
                    Phase::Handshake => {}
                }
                if let Some(p) = &subprotocol {
                    check_subprotocol(p, &self.offered).map_err(SendError::invalid)?;
                }
                check_headers(&headers)?;
                inner.decision = Some(Box::new(Decision::Accept {
                    subprotocol,
                    headers,
                }));
                inner.session = Some(Session::new(self.session_config.clone()));
                inner.phase = Phase::Open;
                wake(&mut inner.handshake_waker);
                return Ok(());
            }
            SendEvent::WebSocketClose { code, reason } => match inner.phase {
                Phase::Done => return Ok(()),
                Phase::Handshake => {
                    inner.decision = Some(Box::new(Decision::Reject));
                    inner.phase = Phase::Done;
                    inner.ended = Some((1006, String::new()));
                    wake_closed(&mut inner);
                    wake(&mut inner.handshake_waker);
                    return Ok(());
                }
                Phase::Open => {
                    if !pagi_ws::is_valid_close_code(code) {
                        return Err(SendError::invalid(format!(
                            "Invalid close code {code}: use 1000-1003, 1007-1014 or 3000-4999"
                        )));
                    }
                    let session = inner.session.as_mut().expect("open session");
                    // (The session cuts the reason to 123 bytes.)
                    if session.close(code, &reason).is_ok() {
                        inner.local_close.get_or_insert((code, ""));
                    }
                    inner.session.as_ref().map_or(0, Session::buffered)
                }
            },
            SendEvent::WebSocketKeepalive { interval, timeout } => {
                let g = inner.keepalive.generation + 1;
                inner.keepalive = Keepalive {
                    interval,
                    timeout,
                    generation: g,
                };
                notify(&mut inner, Half::Driver);
                return Ok(());
            }
            SendEvent::WebSocketHttpResponseStart { status, headers } => {
                if inner.phase != Phase::Handshake {
                    return Ok(()); // invalid after accept: ignored, as the spec says
                }
                if inner.deny.is_some() {
                    return Err(SendError::out_of_order(
                        "websocket.http.response.start sent twice",
                    ));
                }
                check_final_status(status)?;
                check_headers(&headers)?;
                inner.deny = Some(Box::new((status, headers, BytesMut::new())));
                return Ok(());
            }
            SendEvent::WebSocketHttpResponseBody { body, more } => {
                if inner.phase != Phase::Handshake {
                    return Ok(());
                }
                let Some(deny) = inner.deny.as_mut() else {
                    return Err(SendError::out_of_order(
                        "websocket.http.response.body before websocket.http.response.start",
                    ));
                };
                deny.2.extend_from_slice(&body);
                if !more {
                    let (status, headers, body) = *inner.deny.take().expect("deny started");
                    inner.decision = Some(Box::new(Decision::Deny {
                        status,
                        headers,
                        body: body.freeze(),
                    }));
                    inner.phase = Phase::Done;
                    inner.ended = Some((1006, String::new()));
                    wake_closed(&mut inner);
                    wake(&mut inner.handshake_waker);
                }
                return Ok(());
            }
            other => return Err(SendError::unrecognized(&other, "websocket")),
        };
        notify(&mut inner, Half::Driver);
        // Under the lock, so counts reach the transport in the order the
        // session changed (the driver publishes under it too); otherwise a
        // stale count could re-engage backpressure after the driver drained
        // the buffer, and every sender would wait forever.
        self.transport.set_buffered(buffered);
        drop(inner);
        Ok(())
    }
}

impl Inner {
    /// For the driver: it holds `n` bytes outside the queue now.
    pub(crate) fn set_driver_held(&mut self, n: usize) {
        self.driver_held = n;
        self.sync_account();
    }

    fn sync_account(&mut self) {
        let held = self.inbound.bytes() + self.driver_held;
        self.account.set(held);
    }

    /// How many more bytes the server's budget lets this session take.
    pub(crate) fn budget_room(&self) -> usize {
        self.account.room()
    }

    /// Wake the driver once the server's budget has room again.
    pub(crate) fn wait_for_budget(&mut self, cx: &Context<'_>) {
        self.account.wait(cx);
    }
}

/// One half of a session task.
#[derive(Clone, Copy)]
pub(crate) enum Half {
    App,
    Driver,
}

impl Half {
    pub(crate) const BOTH: u8 = 0b11;

    pub(crate) fn bit(self) -> u8 {
        match self {
            Half::App => 0b01,
            Half::Driver => 0b10,
        }
    }
}

/// The session ended: release the app's `send.closed()` waiters.
fn wake_closed(inner: &mut Inner) {
    inner.closed_wakers.drain(..).for_each(Waker::wake);
}

/// Wake the app's `receive` or the driver, unless the session task is
/// polling right now and the waker is that task's: then mark that half
/// dirty.
fn notify(inner: &mut Inner, half: Half) {
    let slot = match half {
        Half::App => &mut inner.recv_waker,
        Half::Driver => &mut inner.driver_waker,
    };
    if let (Some(task), Some(w)) = (&inner.polling, slot.as_ref()) {
        if w.will_wake(task) {
            inner.dirty |= half.bit();
            return;
        }
    }
    wake(slot);
}

impl WsShared {
    /// Enter the session task's poll loop.
    pub(crate) fn begin_poll(&self, cx: &Context<'_>) {
        let mut inner = self.lock();
        inner.dirty = 0;
        inner.polling = Some(cx.waker().clone());
    }

    /// Leave the poll loop unless a half was woken meanwhile and has not run
    /// since: returns the halves to poll again (`Half::bit`s), zero when the
    /// loop may end.
    pub(crate) fn end_poll(&self) -> u8 {
        let mut inner = self.lock();
        let dirty = std::mem::take(&mut inner.dirty);
        if dirty == 0 {
            inner.polling = None;
        }
        dirty
    }

    /// Leave the poll loop unconditionally (the caller re-wakes the task).
    pub(crate) fn end_poll_now(&self) {
        let mut inner = self.lock();
        inner.dirty = 0;
        inner.polling = None;
    }
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

fn to_ws(m: Message) -> pagi_ws::Message {
    match m {
        Message::Text(s) => pagi_ws::Message::Text(s),
        Message::Binary(b) => pagi_ws::Message::Binary(b),
    }
}

pub(crate) fn from_ws(m: pagi_ws::Message) -> Message {
    match m {
        pagi_ws::Message::Text(s) => Message::Text(s),
        pagi_ws::Message::Binary(b) => Message::Binary(b),
    }
}

/// The shared state is the app's `send` for a websocket scope.
impl EventSink for WsShared {
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.transport.poll_writable(cx)
    }

    fn start_send(&self, event: SendEvent) -> Result<(), SendError> {
        self.send(event)
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        if inner.ended.is_some() {
            return Poll::Ready(());
        }
        if !inner.closed_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            inner.closed_wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn is_closed(&self) -> bool {
        self.lock().ended.is_some()
    }
}

/// The app's `receive` for a websocket scope.
pub(crate) struct WsSource(pub(crate) Arc<WsShared>);

impl EventSource for WsSource {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        let mut inner = self.0.lock();
        // The app runs: whatever woke it is being looked at now.
        inner.dirty &= !Half::App.bit();
        if !inner.connect_delivered {
            inner.connect_delivered = true;
            return Poll::Ready(ReceiveEvent::WebSocketConnect);
        }
        if let Some(m) = inner.inbound.pop() {
            inner.sync_account();
            if std::mem::take(&mut inner.read_paused) {
                notify(&mut inner, Half::Driver);
            }
            return Poll::Ready(ReceiveEvent::WebSocketReceive(m));
        }
        if let Some((code, reason)) = &inner.ended {
            return Poll::Ready(ReceiveEvent::WebSocketDisconnect {
                code: *code,
                reason: reason.clone(),
            });
        }
        match &inner.recv_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.recv_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
