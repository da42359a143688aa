//! The socket side of an accepted WebSocket: reads into a buffer allocated
//! on demand (released when drained, so idle connections hold none),
//! decodes with the sans-IO `pagi_ws::Session`, and writes everything the
//! app queued in one vectored write per wake-up (no flush per message).

use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pagi_ws::{Event, State};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{sleep, Instant, Sleep};

use super::shared::{from_ws, Inner, Keepalive, WsShared};
use crate::config::QueuePolicy;
use crate::server::Ctx;

/// Bytes reserved per read at first; doubled while reads fill the buffer
/// (large messages then arrive in one read and no reallocation), up to
/// `MAX_READ_CHUNK`, and halved again while reads use under a quarter of it.
/// The size is a per-connection hint: the buffer itself is released when
/// drained.
const READ_CHUNK: usize = 16 * 1024;
const MAX_READ_CHUNK: usize = 128 * 1024;
/// Most slices handed to one `writev`.
const MAX_SLICES: usize = 64;

struct Driver {
    stream: TcpStream,
    rbuf: BytesMut,
    shared: Arc<WsShared>,
    policy: QueuePolicy,
    close_timeout: Duration,
    idle_timeout: Option<Duration>,
    keepalive_gen: u64,
    ping_interval: Duration,
    pong_timeout: Option<Duration>,
    ping: Option<Pin<Box<Sleep>>>,
    pong_deadline: Option<Pin<Box<Sleep>>>,
    idle: Option<Pin<Box<Sleep>>>,
    close_deadline: Option<Pin<Box<Sleep>>>,
    /// Current read reservation (see `READ_CHUNK`).
    read_size: usize,
    /// The peer violated the protocol; the Close waits until the app has
    /// taken the messages that came before (see `defer_failure_close`).
    failure_pending: bool,
    /// The session is over; FIN sent (once `fin_sent`), draining input.
    lingering: bool,
    fin_sent: bool,
}

/// Run an accepted session on `stream` until it closes. `early` holds
/// bytes the client sent right behind its handshake.
pub(crate) async fn drive(stream: TcpStream, early: Bytes, shared: Arc<WsShared>, ctx: Arc<Ctx>) {
    let cfg = &ctx.config;
    // Copy, then drop at once: `early` is a slice of hyper's read buffer and
    // would otherwise pin that buffer (8 KiB+) for the whole session.
    let rbuf = if early.is_empty() {
        BytesMut::new()
    } else {
        BytesMut::from(&early[..])
    };
    drop(early);
    let mut d = Driver {
        stream,
        rbuf,
        shared: shared.clone(),
        policy: cfg.ws_queue_policy,
        close_timeout: cfg.ws_close_timeout,
        idle_timeout: cfg.ws_idle_timeout,
        keepalive_gen: 0,
        ping_interval: Duration::ZERO,
        pong_timeout: None,
        ping: None,
        pong_deadline: None,
        idle: cfg.ws_idle_timeout.map(|t| Box::pin(sleep(t))),
        close_deadline: None,
        failure_pending: false,
        read_size: READ_CHUNK,
        lingering: false,
        fin_sent: false,
    };
    poll_fn(|cx| d.poll(cx)).await;
    finish(&shared);
}

fn finish(shared: &WsShared) {
    shared.end(1006, "client_closed"); // no-op if already ended
}

impl Driver {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.lingering {
                return self.poll_linger(cx);
            }
            let shared = self.shared.clone();
            let mut guard = shared.lock();
            let inner = &mut *guard;
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
            let mut progressed = self.parse(inner);
            if self.failure_pending && (inner.inbound.is_empty() || inner.app_failed.is_some()) {
                self.failure_pending = false;
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
                    Poll::Ready(Ok(w)) if w > 0 => session.advance(w),
                    Poll::Ready(_) => {
                        WsShared::set_ended(inner, 1006, "write_error");
                        return Poll::Ready(());
                    }
                    Poll::Pending => break,
                }
            }
            let buffered = session.buffered();
            if (session.state() != State::Open || self.failure_pending)
                && self.close_deadline.is_none()
            {
                self.close_deadline = Some(Box::pin(sleep(self.close_timeout)));
            }
            if session.is_finished() && buffered == 0 {
                let (code, reason) = inner.local_close.unwrap_or((1000, ""));
                WsShared::set_ended(inner, code, reason);
                self.shared.transport.set_buffered(0);
                drop(guard);
                self.lingering = true;
                continue;
            }

            // Read, unless the app's queue is full (TCP then pushes back).
            let room =
                inner.inbound.len() < self.shared.queue_limit || self.policy == QueuePolicy::Close;
            if room {
                match self.stream.poll_read_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        if self.rbuf.capacity() == 0 {
                            self.rbuf = read_pool::take(self.read_size);
                        } else if self.rbuf.capacity() - self.rbuf.len() < 1024 {
                            self.rbuf.reserve(self.read_size);
                        }
                        let spare = self.rbuf.capacity() - self.rbuf.len();
                        // `read_buf` goes through tokio's `poll_read`, which
                        // treats a short read as "socket drained" and clears
                        // the readiness: no extra `recv` that only returns
                        // EAGAIN (`try_read_buf` would make one per wake-up).
                        let read = pin!(self.stream.read_buf(&mut self.rbuf)).poll(cx);
                        match read {
                            Poll::Ready(Ok(0)) => {
                                WsShared::set_ended(inner, 1006, "client_closed");
                                return Poll::Ready(());
                            }
                            Poll::Ready(Ok(n)) => {
                                if n == spare {
                                    self.read_size = (self.read_size * 2).min(MAX_READ_CHUNK);
                                } else if n < self.read_size / 4 {
                                    self.read_size = (self.read_size / 2).max(READ_CHUNK);
                                }
                                if let (Some(idle), Some(t)) = (&mut self.idle, self.idle_timeout) {
                                    idle.as_mut().reset(Instant::now() + t);
                                }
                                progressed = true;
                            }
                            // Spurious readiness: cleared, the waker is registered.
                            Poll::Pending => {}
                            Poll::Ready(Err(_)) => {
                                WsShared::set_ended(inner, 1006, "read_error");
                                return Poll::Ready(());
                            }
                        }
                    }
                    Poll::Ready(Err(_)) => {
                        WsShared::set_ended(inner, 1006, "read_error");
                        return Poll::Ready(());
                    }
                    Poll::Pending => {}
                }
            }

            // Timers.
            if poll_timer(&mut self.pong_deadline, cx) {
                tracing::warn!("WebSocket keepalive timeout - no pong received");
                WsShared::set_ended(inner, 1006, "keepalive_timeout");
                return Poll::Ready(());
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
            if let Some(ping) = &mut self.ping {
                if ping.as_mut().poll(cx).is_ready() {
                    let session = inner.session.as_mut().expect("session");
                    let _ = session.ping(Bytes::new());
                    ping.as_mut().reset(Instant::now() + self.ping_interval);
                    if let (None, Some(t)) = (&self.pong_deadline, self.pong_timeout) {
                        self.pong_deadline = Some(Box::pin(sleep(t)));
                    }
                    progressed = true;
                }
            }
            // Published under the lock, like the app's sends do: a stale
            // count published after a newer one could leave backpressure
            // engaged over an empty buffer (senders parked forever).
            if progressed {
                self.shared.transport.set_buffered(buffered);
                drop(guard);
                continue;
            }
            if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
                // Idle: hand the read buffer back (to this thread's pool).
                read_pool::give(std::mem::take(&mut self.rbuf));
            }
            WsShared::set_driver_waker(inner, cx);
            self.shared.transport.set_buffered(buffered);
            drop(guard);
            return Poll::Pending;
        }
    }

    /// Decode what is buffered into events for the app, while its queue has room.
    fn parse(&mut self, inner: &mut Inner) -> bool {
        let mut progressed = false;
        loop {
            let full = inner.inbound.len() >= self.shared.queue_limit;
            if full && self.policy == QueuePolicy::Backpressure {
                return progressed;
            }
            let session = inner.session.as_mut().expect("session");
            let Some(event) = session.read_event(&mut self.rbuf) else {
                return progressed;
            };
            progressed = true;
            match event {
                Event::Message(m) if full => {
                    drop(m);
                    if session.close(1008, "message queue overflow").is_ok() {
                        inner.local_close = Some((1008, "queue_overflow"));
                    }
                    WsShared::set_ended(inner, 1008, "queue_overflow");
                }
                Event::Message(m) => WsShared::push_inbound(inner, from_ws(m)),
                Event::Ping(_) => {}
                Event::Pong(_) => self.pong_deadline = None,
                Event::Close { code, reason } => match inner.local_close {
                    Some((c, token)) if !token.is_empty() => WsShared::set_ended(inner, c, token),
                    _ => WsShared::set_ended(inner, code, &reason),
                },
                Event::Failed { code, .. } => {
                    self.failure_pending = true;
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

    fn apply_keepalive(&mut self, k: Keepalive) {
        self.keepalive_gen = k.generation;
        self.ping_interval = k.interval;
        self.pong_timeout = k.timeout.filter(|t| !t.is_zero());
        self.pong_deadline = None;
        self.ping = (!k.interval.is_zero()).then(|| Box::pin(sleep(k.interval)));
    }

    /// After the close: send FIN, then read and discard until the peer
    /// closes too (bounded), so unread input never turns our close into a
    /// reset that could destroy the Close frame in flight.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.fin_sent {
            match Pin::new(&mut self.stream).poll_shutdown(cx) {
                Poll::Ready(_) => self.fin_sent = true,
                Poll::Pending => return Poll::Pending,
            }
            self.rbuf = BytesMut::new();
            self.close_deadline = Some(Box::pin(sleep(self.close_timeout)));
        }
        let mut scratch = [0u8; 2048];
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => match self.stream.try_read(&mut scratch) {
                    Ok(0) => return Poll::Ready(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return Poll::Ready(()),
                },
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

/// Poll an optional timer; true (and cleared) once it fired.
fn poll_timer(timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
    let fired = timer
        .as_mut()
        .is_some_and(|t| t.as_mut().poll(cx).is_ready());
    if fired {
        *timer = None;
    }
    fired
}

/// A small per-thread cache of empty read buffers. Every connection gives
/// its buffer back whenever it has drained it (so idle connections hold
/// none); without the cache, a connection with one message in flight would
/// pay an allocation and a free of its read buffer per message. Bounded:
/// at most `MAX_POOLED_BYTES` of buffers per worker thread.
mod read_pool {
    use std::cell::RefCell;

    use bytes::BytesMut;

    use super::{MAX_READ_CHUNK, READ_CHUNK};

    const MAX_POOLED_BYTES: usize = 1024 * 1024;

    #[derive(Default)]
    struct Pool {
        bufs: Vec<BytesMut>,
        bytes: usize,
    }

    thread_local! {
        static POOL: RefCell<Pool> = RefCell::new(Pool::default());
    }

    /// An empty buffer with room for at least `min` bytes.
    pub(super) fn take(min: usize) -> BytesMut {
        let pooled = POOL.with(|p| {
            let mut p = p.borrow_mut();
            let b = p.bufs.pop()?;
            p.bytes -= b.capacity();
            Some(b)
        });
        match pooled {
            Some(b) if b.capacity() >= min => b,
            _ => BytesMut::with_capacity(min),
        }
    }

    /// Keep a drained buffer for the next `take` on this thread, if it is of
    /// a usual size and the cache has room; otherwise free it.
    pub(super) fn give(mut buf: BytesMut) {
        buf.clear();
        // Decoding advanced the buffer's start: move it back to the front of
        // its allocation (no copy, it is empty). Fails when the allocation is
        // shared with a message split off it; such a buffer is not kept.
        if !buf.try_reclaim(READ_CHUNK) || buf.capacity() > 2 * MAX_READ_CHUNK {
            return;
        }
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.bytes + buf.capacity() <= MAX_POOLED_BYTES {
                p.bytes += buf.capacity();
                p.bufs.push(buf);
            }
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn pooled_bytes() -> usize {
            POOL.with(|p| p.borrow().bytes)
        }

        #[test]
        fn buffers_are_reused_and_the_pool_is_bounded() {
            let mut b = take(READ_CHUNK);
            let ptr = b.as_ptr();
            // Used: filled and consumed, as the decoder does.
            b.extend_from_slice(&[1; 1000]);
            let _ = b.split_to(1000);
            give(b);
            let again = take(READ_CHUNK);
            assert_eq!(again.as_ptr(), ptr, "reused");
            assert!(again.is_empty() && again.capacity() >= READ_CHUNK);
            assert_eq!(pooled_bytes(), 0);
            // Too large to keep.
            give(BytesMut::with_capacity(4 * MAX_READ_CHUNK));
            assert_eq!(pooled_bytes(), 0);
            // Shared with a message still alive: not kept.
            let mut shared = again;
            shared.extend_from_slice(&[2; 100]);
            let msg = shared.split_to(100).freeze();
            give(shared);
            assert_eq!(pooled_bytes(), 0);
            drop(msg);
            // Asked for more than the pooled one holds: a new buffer.
            give(BytesMut::with_capacity(READ_CHUNK));
            assert!(take(4 * READ_CHUNK).capacity() >= 4 * READ_CHUNK);
            for _ in 0..1000 {
                give(BytesMut::with_capacity(READ_CHUNK));
            }
            assert!(pooled_bytes() <= MAX_POOLED_BYTES);
            assert!(pooled_bytes() > MAX_POOLED_BYTES - 2 * READ_CHUNK);
        }
    }
}
