//! A timer for connection tasks that costs one atomic load on most polls.
//!
//! A `Sleep` keeps the waker it was last polled with, and a connection
//! task's waker does not change, so the timer is registered once per arming
//! and afterwards only checked with `Sleep::is_elapsed`. Connection tasks
//! poll their timers on every wake-up (that is, for every message or
//! request), which makes the difference.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub(crate) struct Timer {
    sleep: Pin<Box<Sleep>>,
    registered: bool,
}

impl Timer {
    pub(crate) fn at(deadline: Instant) -> Timer {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            registered: false,
        }
    }

    pub(crate) fn after(delay: Duration) -> Timer {
        Timer::at(Instant::now() + delay)
    }

    pub(crate) fn reset(&mut self, deadline: Instant) {
        self.sleep.as_mut().reset(deadline);
        self.registered = false;
    }

    /// Whether the deadline passed; registers the task for it otherwise.
    #[inline]
    pub(crate) fn fired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.registered && !self.sleep.is_elapsed() {
            return false;
        }
        self.registered = true;
        self.sleep.as_mut().poll(cx).is_ready()
    }
}

/// Poll an optional timer; true (and cleared) once it fired.
pub(crate) fn poll_timer(timer: &mut Option<Timer>, cx: &mut Context<'_>) -> bool {
    let fired = timer.as_mut().is_some_and(|t| t.fired(cx));
    if fired {
        *timer = None;
    }
    fired
}
