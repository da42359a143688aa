//! `pagi.transport`: outbound flow control with high/low watermarks.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

type Callback = Box<dyn FnMut() + Send>;

struct Inner {
    buffered: AtomicUsize,
    /// Mirror of `Hysteresis::engaged` (written under the lock) so the
    /// common case, no edge, needs no lock.
    engaged: AtomicBool,
    high: usize,
    low: usize,
    state: Mutex<Hysteresis>,
}

#[derive(Default)]
struct Hysteresis {
    /// Backpressure engaged: reached `high`, not yet back below `low`.
    engaged: bool,
    closed: bool,
    on_high: Vec<Callback>,
    on_drain: Vec<Callback>,
    waiters: Vec<Waker>,
    /// Tasks waiting for the close ([`TransportControl::poll_closed`]).
    close_waiters: Vec<Waker>,
}

/// The `pagi.transport` handle: how many bytes the server has queued for
/// the client but not yet written, and the watermark hysteresis that drives
/// backpressure. A `send` waits from the moment the buffer reaches the high
/// mark until it falls back below the low mark.
///
/// Clones share state. This is the app's view: it reads the counts and
/// registers callbacks. The server moves the count and closes the transport
/// through [`crate::server::TransportControl`], which apps cannot reach.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// let control = pagi::server::TransportControl::new(64 * 1024, 16 * 1024);
/// let t = control.view(); // what the app finds in its scope
/// let highs = Arc::new(AtomicUsize::new(0));
/// let h = highs.clone();
/// t.on_high_water(move || { h.fetch_add(1, Ordering::SeqCst); });
/// control.set_buffered(70_000); // crosses the high mark
/// control.set_buffered(20_000); // between the marks: still engaged
/// control.set_buffered(1_000);  // below the low mark: drained
/// assert_eq!(highs.load(Ordering::SeqCst), 1);
/// assert_eq!(t.buffered_amount(), 1_000);
/// ```
#[derive(Clone)]
pub struct Transport(Arc<Inner>);

/// The server's half of `pagi.transport`: publishes the buffered byte
/// count, lets the server's `send` wait for room, and closes the transport
/// when the connection ends. Apps get [`Transport`] views.
pub struct TransportControl(Arc<Inner>);

fn lock(inner: &Inner) -> MutexGuard<'_, Hysteresis> {
    // Callbacks never run under the lock; recover from poisoning.
    inner.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Transport {
    fn lock(&self) -> MutexGuard<'_, Hysteresis> {
        lock(&self.0)
    }

    /// Bytes queued for the client and not yet written to the network.
    pub fn buffered_amount(&self) -> usize {
        self.0.buffered.load(Ordering::Relaxed)
    }

    /// The threshold at which sends start to wait.
    pub fn high_water_mark(&self) -> Option<usize> {
        Some(self.0.high)
    }

    /// The threshold the buffer must fall below before sends resume.
    pub fn low_water_mark(&self) -> Option<usize> {
        Some(self.0.low)
    }

    /// Register a callback for when backpressure engages; runs at once if it
    /// is engaged now.
    pub fn on_high_water(&self, mut callback: impl FnMut() + Send + 'static) {
        let mut st = self.lock();
        if st.engaged {
            drop(st);
            callback();
            self.lock().on_high.push(Box::new(callback));
        } else {
            st.on_high.push(Box::new(callback));
        }
    }

    /// Register a callback for when the buffer drains below the low mark
    /// after having reached the high mark.
    pub fn on_drain(&self, callback: impl FnMut() + Send + 'static) {
        self.lock().on_drain.push(Box::new(callback));
    }
}

impl TransportControl {
    /// A transport with the given marks (`low` is clamped to at most `high`).
    pub fn new(high_water_mark: usize, low_water_mark: usize) -> Self {
        TransportControl(Arc::new(Inner {
            buffered: AtomicUsize::new(0),
            engaged: AtomicBool::new(false),
            high: high_water_mark,
            low: low_water_mark.min(high_water_mark),
            state: Mutex::new(Hysteresis::default()),
        }))
    }

    /// The app's view of this transport.
    pub fn view(&self) -> Transport {
        Transport(self.0.clone())
    }

    /// Bytes queued for the client and not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.0.buffered.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Hysteresis> {
        lock(&self.0)
    }

    /// The buffer now holds `n` bytes. Fires the edge-triggered
    /// callbacks and wakes waiting senders on drain.
    pub fn set_buffered(&self, n: usize) {
        self.0.buffered.store(n, Ordering::Relaxed);
        let engaged = self.0.engaged.load(Ordering::Acquire);
        let (high, low) = (self.0.high, self.0.low.max(1));
        if (!engaged && (n < high || high == 0)) || (engaged && n >= low) {
            return; // no edge
        }
        let edge = {
            let mut st = self.lock();
            if !st.engaged && n >= self.0.high && self.0.high > 0 {
                st.engaged = true;
                self.0.engaged.store(true, Ordering::Release);
                Some((true, std::mem::take(&mut st.on_high), Vec::new()))
            } else if st.engaged && n < self.0.low.max(1) {
                st.engaged = false;
                self.0.engaged.store(false, Ordering::Release);
                let waiters = std::mem::take(&mut st.waiters);
                Some((false, std::mem::take(&mut st.on_drain), waiters))
            } else {
                None
            }
        };
        if let Some((high, mut callbacks, waiters)) = edge {
            waiters.into_iter().for_each(Waker::wake);
            callbacks.iter_mut().for_each(|cb| cb());
            // Put the callbacks back, keeping any registered meanwhile after them.
            let mut st = self.lock();
            let list = if high {
                &mut st.on_high
            } else {
                &mut st.on_drain
            };
            callbacks.append(list);
            *list = callbacks;
        }
    }

    /// Ready when a sender may queue more (backpressure not
    /// engaged, or the transport closed); otherwise registers the waker.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.0.engaged.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let mut st = self.lock();
        if !st.engaged || st.closed {
            return Poll::Ready(());
        }
        if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Empty and unengaged again, with no callbacks, for the next
    /// request of a keep-alive connection, if no other handle to it exists
    /// (returns `false`, changing nothing, otherwise).
    ///
    /// ```
    /// let mut t = pagi::server::TransportControl::new(100, 10);
    /// t.set_buffered(500);
    /// assert!(t.reset());
    /// assert_eq!(t.buffered_amount(), 0);
    /// ```
    pub fn reset(&mut self) -> bool {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => {
                *inner.buffered.get_mut() = 0;
                *inner.engaged.get_mut() = false;
                // Field by field, as in `Connection::reset`.
                let Hysteresis {
                    engaged,
                    closed,
                    on_high,
                    on_drain,
                    waiters,
                    close_waiters,
                } = inner.state.get_mut().unwrap_or_else(|e| e.into_inner());
                *engaged = false;
                *closed = false;
                on_high.clear();
                on_drain.clear();
                waiters.clear();
                close_waiters.clear();
                true
            }
            None => false,
        }
    }

    /// The connection is gone; release every waiting sender.
    pub fn close(&self) {
        let waiters = {
            let mut st = self.lock();
            st.closed = true;
            let mut waiters = std::mem::take(&mut st.waiters);
            waiters.append(&mut st.close_waiters);
            waiters
        };
        waiters.into_iter().for_each(Waker::wake);
    }

    /// Ready once the transport is closed (the connection is gone, or the
    /// exchange ended): what [`crate::Sender::closed`] waits for.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if st.closed {
            return Poll::Ready(());
        }
        if !st.close_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.close_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Whether [`TransportControl::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("buffered", &self.buffered_amount())
            .field("high", &self.0.high)
            .field("low", &self.0.low)
            .finish()
    }
}

impl fmt::Debug for TransportControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportControl")
            .field("buffered", &self.buffered_amount())
            .field("high", &self.0.high)
            .field("low", &self.0.low)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn hysteresis_cycles_and_rearms() {
        let t = TransportControl::new(100, 10);
        let v = t.view();
        let drains = Arc::new(AtomicUsize::new(0));
        let highs = Arc::new(AtomicUsize::new(0));
        let (d, h) = (drains.clone(), highs.clone());
        v.on_drain(move || {
            d.fetch_add(1, Ordering::SeqCst);
        });
        v.on_high_water(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        t.set_buffered(5); // below low, never engaged: no drain
        assert_eq!(drains.load(Ordering::SeqCst), 0);
        for _ in 0..2 {
            t.set_buffered(150);
            t.set_buffered(120);
            t.set_buffered(50);
            t.set_buffered(0);
        }
        assert_eq!(highs.load(Ordering::SeqCst), 2);
        assert_eq!(drains.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn writable_waits_while_engaged() {
        let t = TransportControl::new(100, 10);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(t.poll_writable(&mut cx).is_ready());
        t.set_buffered(100);
        assert!(t.poll_writable(&mut cx).is_pending());
        t.set_buffered(50);
        assert!(t.poll_writable(&mut cx).is_pending());
        t.set_buffered(9);
        assert!(t.poll_writable(&mut cx).is_ready());
        t.set_buffered(200);
        t.close();
        assert!(t.poll_writable(&mut cx).is_ready());
    }
}
