//! The socket side of an accepted WebSocket: reads into a buffer allocated
//! on demand (released when drained, so idle connections hold none),
//! decodes with the sans-IO `pagi_ws::Session`, and writes everything the
//! app queued in one vectored write per wake-up (no flush per message).

use std::future::Future;
use std::io::IoSlice;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use pagi_ws::{Event, Session, State};
use tokio::io::{AsyncReadExt, ReadBuf};
use tokio::time::Instant;

use super::shared::{from_ws, Half, Inner, Keepalive, WsShared};
use crate::config::QueuePolicy;
use crate::ctx::Ctx;
use crate::listener::Io;
use crate::read_pool::{self, ReadSize};
use crate::timer::{poll_timer, Timer};

/// What each decoded event counts against `DECODE_PER_WAKE` besides its
/// payload: a flood of empty messages or control frames is bounded too.
const EVENT_COST: usize = 64;
/// Leftover input up to this size is moved out of a larger read buffer
/// when the driver goes to sleep (see `shrink_read_buffer`).
const LEFTOVER_MAX: usize = 1024;
/// Most slices handed to one `writev`.
const MAX_SLICES: usize = 64;
/// Most payload bytes (after decompression) decoded per wake-up of a
/// session; then it yields to other tasks. Bounds how long one connection
/// can keep a worker thread busy (a deflate bomb, a flood of small messages).
const DECODE_PER_WAKE: usize = 256 * 1024;

/// Where the driver is in the connection's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Frames flow both ways; the session says when it is finished.
    Running,
    /// The peer violated the protocol: the Close waits until the app has
    /// taken the messages that came before (see `defer_failure_close`).
    FailureHeld,
    /// The session is over: our side of the TCP connection is being shut.
    ShuttingDown,
    /// FIN sent: input is read and discarded until the peer closes too.
    Draining,
}

/// Why the driver is not taking more input from the socket right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    /// Reading.
    Open,
    /// The app's queue is full (by count or by `ws_max_receive_bytes`): the
    /// app's next `receive` wakes the driver.
    AppQueue,
    /// The server's buffer budget has no room: woken when it has again.
    Budget,
    /// This wake-up decoded its share (`DECODE_PER_WAKE`): come back after
    /// other tasks had their turn.
    Yield,
    /// Output is above the high watermark (control replies included): the
    /// socket's writability wakes the driver.
    Output,
}

/// The keepalive ping: when the next one is due and, while one is
/// unanswered, when its pong is. One timer serves both.
struct Pinger {
    interval: Duration,
    timeout: Option<Duration>,
    next_ping: Instant,
    pong_due: Option<Instant>,
    timer: Timer,
}

enum PingDue {
    Nothing,
    Ping,
    PongMissing,
}

impl Pinger {
    /// `None` for a zero interval (no keepalive).
    fn new(interval: Duration, timeout: Option<Duration>) -> Option<Pinger> {
        if interval.is_zero() {
            return None;
        }
        let next_ping = Instant::now() + interval;
        Some(Pinger {
            interval,
            timeout: timeout.filter(|t| !t.is_zero()),
            next_ping,
            pong_due: None,
            timer: Timer::at(next_ping),
        })
    }

    #[inline]
    fn poll(&mut self, cx: &mut Context<'_>) -> PingDue {
        if !self.timer.fired(cx) {
            return PingDue::Nothing;
        }
        self.due(cx)
    }

    /// The timer fired: what is due now, and the timer set for what is next.
    fn due(&mut self, cx: &mut Context<'_>) -> PingDue {
        let now = Instant::now();
        if self.pong_due.is_some_and(|due| due <= now) {
            return PingDue::PongMissing;
        }
        let ping = self.next_ping <= now;
        if ping {
            self.next_ping = now + self.interval;
            if let Some(t) = self.timeout {
                self.pong_due.get_or_insert(now + t);
            }
        }
        let next = self
            .pong_due
            .map_or(self.next_ping, |d| d.min(self.next_ping));
        self.timer.reset(next);
        // Register for the new deadline.
        let _ = self.timer.fired(cx);
        if ping {
            PingDue::Ping
        } else {
            PingDue::Nothing
        }
    }

    /// A pong could not be read in time because reads were paused: wait for
    /// one again after the next ping.
    fn excuse(&mut self, cx: &mut Context<'_>) {
        self.pong_due = None;
        let now = Instant::now();
        if self.next_ping <= now {
            self.next_ping = now + self.interval;
        }
        self.timer.reset(self.next_ping);
        let _ = self.timer.fired(cx);
    }

    fn pong(&mut self) {
        // The timer may still be set for the old pong deadline; it then
        // finds nothing due and moves on to the next ping.
        self.pong_due = None;
    }
}

pub(crate) struct Driver<S> {
    stream: S,
    rbuf: BytesMut,
    shared: Arc<WsShared>,
    stage: Stage,
    policy: QueuePolicy,
    /// `ws_max_receive_bytes` (at least one maximum message).
    max_receive_bytes: usize,
    /// Output above which the driver stops reading (`pagi.transport`'s high
    /// watermark): replies to what it reads could otherwise pile up.
    output_limit: usize,
    close_timeout: Duration,
    idle_timeout: Option<Duration>,
    keepalive_gen: u64,
    pinger: Option<Pinger>,
    idle: Option<Timer>,
    close_deadline: Option<Timer>,
    /// Room for the next read, adapted to the peer's messages (a hint:
    /// the buffer itself is released when drained).
    read_size: ReadSize,
    /// The allocation `rbuf` lives in (its capacity when taken or grown):
    /// the session splits a message off it without a copy only if the
    /// message is at least a quarter of it.
    rbuf_allocation: usize,
    /// Payload this wake-up may still decode (see `DECODE_PER_WAKE`).
    decode_left: usize,
    /// Bytes were written since the last successful flush: a TLS stream may
    /// hold them (its `poll_write` accepts data the socket would not take
    /// yet), and only a flush pushes them out when the socket drains.
    unflushed: bool,
}

/// The socket driver of a session, made when the handshake starts: from
/// then on it owns the stream (boxed, so neither the connection's future
/// nor the session's holds a copy of it; a TLS stream is over a kilobyte).
pub(crate) fn prepare<S: Io>(stream: S, shared: Arc<WsShared>, ctx: &Ctx) -> Box<Driver<S>> {
    let cfg = &ctx.config;
    Box::new(Driver {
        stream,
        rbuf: BytesMut::new(),
        shared,
        stage: Stage::Running,
        policy: cfg.ws_queue_policy,
        max_receive_bytes: cfg.ws_max_receive_bytes.max(cfg.ws_max_message_size),
        output_limit: cfg.ws_write_high_watermark.max(1),
        close_timeout: cfg.ws_close_timeout,
        idle_timeout: cfg.ws_idle_timeout,
        keepalive_gen: 0,
        pinger: cfg
            .ws_ping_interval
            .and_then(|every| Pinger::new(every, cfg.ws_ping_timeout)),
        idle: cfg.ws_idle_timeout.map(Timer::after),
        close_deadline: None,
        read_size: ReadSize::default(),
        rbuf_allocation: 0,
        decode_left: 0,
        unflushed: false,
    })
}

impl<S: Io> Driver<S> {
    /// The stream, for the handshake's answer.
    pub(crate) fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Bytes the client sent right behind its handshake, decoded first
    /// (copied: they may be a slice of a larger buffer, which would
    /// otherwise stay pinned).
    pub(crate) fn set_early(&mut self, early: &[u8]) {
        if !early.is_empty() {
            self.rbuf = BytesMut::from(early);
        }
    }

    /// Run the accepted session: ready once it closed.
    pub(crate) fn poll_session(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        std::task::ready!(self.poll(cx));
        finish(&self.shared);
        Poll::Ready(())
    }
}

fn finish(shared: &WsShared) {
    shared.end(1006, "client_closed"); // no-op if already ended
}

impl<S: Io> Driver<S> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.decode_left = DECODE_PER_WAKE;
        loop {
            if matches!(self.stage, Stage::ShuttingDown | Stage::Draining) {
                return self.poll_linger(cx);
            }
            let shared = self.shared.clone();
            let mut guard = shared.lock();
            let inner = &mut *guard;
            // The driver runs: whatever woke it is being looked at now.
            inner.dirty &= !Half::Driver.bit();
            if inner.keepalive.generation != self.keepalive_gen {
                self.apply_keepalive(inner.keepalive);
            }
            if inner.session.is_none() {
                return Poll::Ready(());
            }
            if std::mem::take(&mut inner.shutdown_requested) {
                // Graceful shutdown: Close 1001 and let the handshake finish.
                let session = inner.session.as_mut().expect("session");
                if session.close(1001, "server shutdown").is_ok() {
                    inner.local_close = Some((1001, "server_shutdown"));
                }
            }
            self.close_if_app_finished(inner);
            let (mut progressed, mut gate) = self.parse(inner);
            if self.stage == Stage::FailureHeld
                && (inner.inbound.is_empty() || inner.app_failed.is_some())
            {
                self.stage = Stage::Running;
                inner
                    .session
                    .as_mut()
                    .expect("session")
                    .send_failure_close();
            }

            // Write everything queued.
            let session = inner.session.as_mut().expect("session");
            while session.buffered() > 0 {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = session.chunks_vectored(&mut slices);
                // One slice: plain `write` (the kernel skips the iovec import).
                let stream = Pin::new(&mut self.stream);
                let written = if n == 1 {
                    stream.poll_write(cx, &slices[0])
                } else {
                    stream.poll_write_vectored(cx, &slices[..n])
                };
                match written {
                    Poll::Ready(Ok(w)) if w > 0 => {
                        session.advance(w);
                        self.unflushed = true;
                    }
                    Poll::Ready(_) => {
                        WsShared::set_ended(inner, 1006, "write_error");
                        return Poll::Ready(());
                    }
                    Poll::Pending => break,
                }
            }
            let buffered = session.buffered();
            if buffered == 0 && self.unflushed {
                // Pending: the stream registered for writability.
                match Pin::new(&mut self.stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(_)) => {
                        WsShared::set_ended(inner, 1006, "write_error");
                        return Poll::Ready(());
                    }
                    Poll::Pending => {}
                }
            }
            if (session.state() != State::Open || self.stage == Stage::FailureHeld)
                && self.close_deadline.is_none()
            {
                self.close_deadline = Some(Timer::after(self.close_timeout));
            }
            if session.is_finished() && buffered == 0 {
                let (code, reason) = inner.local_close.unwrap_or((1000, ""));
                WsShared::set_ended(inner, code, reason);
                self.shared.transport.set_buffered(0);
                drop(guard);
                self.stage = Stage::ShuttingDown;
                // Shutting a TLS stream down first flushes what it holds:
                // bounded like the rest of the close.
                self.close_deadline = Some(Timer::after(self.close_timeout));
                continue;
            }
            if gate == Gate::Open && buffered >= self.output_limit {
                gate = Gate::Output;
            }

            // What decoding left over is published before the budget is
            // asked for room: a stale figure would let a loop of reads
            // overrun it.
            inner.set_driver_held(self.held(inner));
            // Read, unless something above says not to (TCP then pushes back).
            // Input read but not decoded counts against the same budgets.
            if gate == Gate::Open {
                match self.read_room(inner) {
                    Err(full) => gate = full,
                    Ok(room) => match self.read(cx, room) {
                        Ok(true) => progressed = true,
                        Ok(false) => {}
                        Err(reason) => {
                            WsShared::set_ended(inner, 1006, reason);
                            return Poll::Ready(());
                        }
                    },
                }
            }
            // Published under the lock, like the app's sends do: a stale
            // count published after a newer one could leave backpressure
            // engaged over an empty buffer (senders parked forever).
            if progressed && gate != Gate::Yield {
                self.shared.transport.set_buffered(buffered);
                drop(guard);
                continue;
            }
            // About to wait: keep no more read buffer than a partial frame
            // needs, publish what is held, and look at the timers.
            self.shrink_read_buffer();
            inner.set_driver_held(self.held(inner));

            // Timers. While reads are paused for the app or the budget, the
            // client's pongs and traffic sit unread: that is not its silence.
            let reads_paused = matches!(gate, Gate::AppQueue | Gate::Budget);
            if reads_paused {
                if let (Some(idle), Some(t)) = (&mut self.idle, self.idle_timeout) {
                    idle.reset(Instant::now() + t);
                }
            }
            if let Some(pinger) = &mut self.pinger {
                match pinger.poll(cx) {
                    PingDue::Nothing => {}
                    PingDue::Ping => {
                        let session = inner.session.as_mut().expect("session");
                        let _ = session.ping(Bytes::new());
                        progressed = true;
                    }
                    PingDue::PongMissing if reads_paused => pinger.excuse(cx),
                    PingDue::PongMissing => {
                        tracing::warn!("WebSocket keepalive timeout - no pong received");
                        WsShared::set_ended(inner, 1006, "keepalive_timeout");
                        return Poll::Ready(());
                    }
                }
            }
            if poll_timer(&mut self.idle, cx) {
                tracing::warn!("WebSocket idle timeout - closing connection");
                WsShared::set_ended(inner, 1006, "idle_timeout");
                return Poll::Ready(());
            }
            if poll_timer(&mut self.close_deadline, cx) {
                let (code, reason) = inner.local_close.unwrap_or((1006, "client_timeout"));
                WsShared::set_ended(inner, code, reason);
                return Poll::Ready(());
            }
            let buffered = inner.session.as_ref().map_or(0, Session::buffered);
            if progressed && gate != Gate::Yield {
                // A ping was queued.
                self.shared.transport.set_buffered(buffered);
                drop(guard);
                continue;
            }
            match gate {
                Gate::AppQueue => inner.read_paused = true,
                // The app taking a message also makes room (its own share).
                Gate::Budget => {
                    inner.read_paused = true;
                    inner.wait_for_budget(cx);
                }
                // Come back after the scheduler ran other tasks.
                Gate::Yield => cx.waker().wake_by_ref(),
                Gate::Open | Gate::Output => {}
            }
            WsShared::set_driver_waker(inner, cx);
            self.shared.transport.set_buffered(buffered);
            drop(guard);
            return Poll::Pending;
        }
    }

    /// How much the next read may add: what the app's queue and the
    /// server's budget have room for (the queue only once it holds
    /// something, as in `parse`); with no room, what waits on it.
    fn read_room(&self, inner: &Inner) -> Result<usize, Gate> {
        let held = inner.inbound.bytes() + self.held(inner);
        // Once our Close is out, input is only searched for the peer's
        // Close and discarded: the app's queue does not limit it.
        let open = inner
            .session
            .as_ref()
            .is_some_and(|s| s.state() == State::Open);
        let local = if inner.inbound.is_empty() || !open {
            usize::MAX
        } else {
            self.max_receive_bytes.saturating_sub(held)
        };
        match (local, inner.budget_room()) {
            (0, _) => Err(Gate::AppQueue),
            (_, 0) => Err(Gate::Budget),
            (local, room) => Ok(local.min(room)),
        }
    }

    /// What the driver holds outside the app's queue: the read buffer's
    /// whole allocation (not just its unread bytes) and the message being
    /// received.
    fn held(&self, inner: &Inner) -> usize {
        self.rbuf.capacity() + inner.session.as_ref().map_or(0, Session::partial_len)
    }

    /// Before the driver sleeps: an empty read buffer goes back to this
    /// thread's pool (idle connections hold none), and a few leftover bytes
    /// (a partial frame) move to a buffer of their own size, so a client
    /// that stops mid-frame pins only what it sent.
    fn shrink_read_buffer(&mut self) {
        let len = self.rbuf.len();
        if len == 0 {
            if self.rbuf.capacity() > 0 {
                read_pool::give(std::mem::take(&mut self.rbuf));
            }
            return;
        }
        if len <= LEFTOVER_MAX && self.rbuf.capacity() > 2 * LEFTOVER_MAX {
            let small = BytesMut::from(&self.rbuf[..]);
            self.rbuf_allocation = small.capacity();
            read_pool::give(std::mem::replace(&mut self.rbuf, small));
        }
    }

    /// One read into the buffer, of at most `room` bytes. `Ok(true)` when
    /// bytes arrived; `Err` with the disconnect reason when the connection
    /// ended.
    fn read(&mut self, cx: &mut Context<'_>, room: usize) -> Result<bool, &'static str> {
        match self.stream.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Err("read_error"),
            Poll::Pending => return Ok(false),
        }
        let want = self.read_size.get();
        let free = self.rbuf.capacity() - self.rbuf.len();
        if self.rbuf.capacity() == 0 {
            self.rbuf = read_pool::take(want);
            self.rbuf_allocation = self.rbuf.capacity();
        } else if self.read_size.wants_more_than(free) && room > free {
            // Back to the front of its allocation when nothing split off it
            // is still alive (moving a partial frame's few bytes)...
            if !self.rbuf.try_reclaim(want) {
                if self.rbuf.is_empty() {
                    // ...else, when its messages were split off and still
                    // live in the app or the write queue, a fresh buffer
                    // (the old memory goes with the last of them), so the
                    // next message arrives in one read...
                    self.rbuf = read_pool::take(want);
                } else {
                    // ...or, under a partial frame, a larger one.
                    self.rbuf.reserve(want);
                }
            }
            self.rbuf_allocation = self.rbuf.capacity();
        }
        let free = self.rbuf.capacity() - self.rbuf.len();
        let spare = free.min(room);
        // `read_buf` goes through tokio's `poll_read`, which treats a short
        // read as "socket drained" and clears the readiness: no extra `recv`
        // that only returns EAGAIN (`try_read_buf` would make one per wake-up).
        let mut limited = (&mut self.rbuf).limit(spare);
        match pin!(self.stream.read_buf(&mut limited)).poll(cx) {
            Poll::Ready(Ok(0)) => Err("client_closed"),
            Poll::Ready(Ok(n)) => {
                self.read_size.record(n, spare, spare < free);
                if let (Some(idle), Some(t)) = (&mut self.idle, self.idle_timeout) {
                    idle.reset(Instant::now() + t);
                }
                Ok(true)
            }
            // Spurious readiness: cleared, the waker is registered.
            Poll::Pending => Ok(false),
            Poll::Ready(Err(_)) => Err("read_error"),
        }
    }

    /// Decode what is buffered into events for the app, as far as its queue
    /// and the budgets allow. Returns whether anything was decoded, and what
    /// stops the driver from taking more input.
    fn parse(&mut self, inner: &mut Inner) -> (bool, Gate) {
        let mut progressed = false;
        loop {
            let session = inner.session.as_ref().expect("session");
            let queued = inner.inbound.bytes() + session.partial_len();
            let count_full = inner.inbound.len() >= self.shared.queue_limit;
            let bytes_full = !inner.inbound.is_empty() && queued >= self.max_receive_bytes;
            // (Once our Close is out, the session only looks for the peer's.)
            if (count_full || bytes_full) && session.state() == State::Open {
                match self.policy {
                    QueuePolicy::Backpressure => return (progressed, Gate::AppQueue),
                    // By count, the next message overflows; by bytes, this one does.
                    QueuePolicy::Close if bytes_full => {
                        overflow(inner);
                        progressed = true;
                        continue;
                    }
                    QueuePolicy::Close => {}
                }
            }
            if self.decode_left == 0 {
                return (progressed, Gate::Yield);
            }
            let room = inner.budget_room();
            if room == 0 {
                return (progressed, Gate::Budget);
            }
            // Until the queue holds something, the message size limit bounds
            // what one message may take.
            let local = if inner.inbound.is_empty() {
                usize::MAX
            } else {
                self.max_receive_bytes - queued
            };
            // The smallest of the three limits is what a pause waits on.
            let mut grant = self.decode_left;
            let mut gate = Gate::Yield;
            if room < grant {
                (grant, gate) = (room, Gate::Budget);
            }
            if local < grant {
                (grant, gate) = (local, Gate::AppQueue);
            }
            let session = inner.session.as_mut().expect("session");
            session.set_read_budget(grant);
            session.set_input_allocation(self.rbuf_allocation);
            let event = session.read_event(&mut self.rbuf);
            let paused = session.read_budget() == 0;
            self.decode_left -= grant - session.read_budget();
            let Some(event) = event else {
                // Out of input, or out of budget (then the input waits).
                return (progressed, if paused { gate } else { Gate::Open });
            };
            progressed = true;
            self.decode_left = self.decode_left.saturating_sub(EVENT_COST);
            match event {
                Event::Message(_) if count_full => overflow(inner),
                Event::Message(m) => WsShared::push_inbound(inner, from_ws(m)),
                Event::Ping(_) => {}
                Event::Pong(_) => {
                    if let Some(p) = &mut self.pinger {
                        p.pong();
                    }
                }
                Event::Close { code, reason } => match inner.local_close {
                    Some((c, token)) if !token.is_empty() => WsShared::set_ended(inner, c, token),
                    _ => WsShared::set_ended(inner, code, &reason),
                },
                Event::Failed { code, .. } => {
                    self.stage = Stage::FailureHeld;
                    let token = if code == 1009 {
                        "body_too_large"
                    } else {
                        "protocol_error"
                    };
                    WsShared::set_ended(inner, code, token);
                }
            }
        }
    }

    /// The app returned: close 1000, or 1011 if it failed.
    fn close_if_app_finished(&mut self, inner: &mut Inner) {
        let Some(failed) = inner.app_failed else {
            return;
        };
        let session = inner.session.as_mut().expect("session");
        if session.state() == State::Open {
            let code = if failed { 1011 } else { 1000 };
            if session.close(code, "").is_ok() {
                inner.local_close.get_or_insert((code, ""));
            }
        }
    }

    /// The app's `websocket.keepalive` replaces the server's setting.
    fn apply_keepalive(&mut self, k: Keepalive) {
        self.keepalive_gen = k.generation;
        self.pinger = Pinger::new(k.interval, k.timeout);
    }

    /// After the close: send FIN, then read and discard until the peer
    /// closes too (bounded), so unread input never turns our close into a
    /// reset that could destroy the Close frame in flight.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.stage == Stage::ShuttingDown {
            if Pin::new(&mut self.stream).poll_shutdown(cx).is_pending() {
                // (A TLS stream flushes first; a peer that reads nothing
                // must not keep the task alive.)
                return if poll_timer(&mut self.close_deadline, cx) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                };
            }
            self.stage = Stage::Draining;
            self.rbuf = BytesMut::new();
            self.shared.lock().set_driver_held(0);
            self.close_deadline = Some(Timer::after(self.close_timeout));
        }
        let mut scratch = [0u8; 2048];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => break,
            }
        }
        if poll_timer(&mut self.close_deadline, cx) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// The app's queue overflowed under `QueuePolicy::Close`: Close 1008.
fn overflow(inner: &mut Inner) {
    let session = inner.session.as_mut().expect("session");
    if session.close(1008, "message queue overflow").is_ok() {
        inner.local_close = Some((1008, "queue_overflow"));
    }
    WsShared::set_ended(inner, 1008, "queue_overflow");
}
