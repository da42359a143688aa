//! A future that is polled only after its own waker fired.
//!
//! An HTTP/1.1 connection task looks at the server's phase (a watch
//! channel) on every wake-up, that is at least once per request. Polling a
//! watch receiver that has nothing new still takes a lock; wrapped in
//! [`WhenWoken`], it costs one atomic swap per wake-up until it was really
//! notified.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// Polls `F` with a waker of its own, and only once that waker fired (or on
/// the first poll); otherwise returns `Pending` at once.
pub(crate) struct WhenWoken<F> {
    fut: F,
    signal: Arc<Signal>,
    /// The signal as a waker, made once.
    waker: Waker,
    /// The task waker last handed to `signal` (compared without locking).
    task: Option<Waker>,
}

struct Signal {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(t) = task {
            t.wake();
        }
    }
}

impl<F: Future + Unpin> WhenWoken<F> {
    pub(crate) fn new(fut: F) -> Self {
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        WhenWoken {
            fut,
            waker: Waker::from(signal.clone()),
            signal,
            task: None,
        }
    }
}

impl<F: Future + Unpin> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if !this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            let w = cx.waker().clone();
            *this.signal.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(w.clone());
            this.task = Some(w);
        }
        if !this.signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        Pin::new(&mut this.fut).poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `ready` is set, waking through the
    /// waker it was last polled with.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        ready: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    struct ProbeFut(Arc<Probe>);

    impl Future for ProbeFut {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.polls.fetch_add(1, Ordering::SeqCst);
            if self.0.ready.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[derive(Default)]
    struct TaskWakes(AtomicUsize);
    impl Wake for TaskWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_inner_future_is_polled_only_after_its_waker_fired() {
        let probe = Arc::new(Probe::default());
        let mut f = WhenWoken::new(ProbeFut(probe.clone()));
        let wakes = Arc::new(TaskWakes::default());
        let task = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&task);

        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(
            probe.polls.load(Ordering::SeqCst),
            1,
            "first poll registers"
        );
        for _ in 0..10 {
            assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        }
        assert_eq!(
            probe.polls.load(Ordering::SeqCst),
            1,
            "not polled while quiet"
        );

        probe.ready.store(true, Ordering::SeqCst);
        let w = probe.waker.lock().unwrap().take().unwrap();
        w.wake();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the task was woken");
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
        assert_eq!(probe.polls.load(Ordering::SeqCst), 2);
    }
}
