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

/// Closes a connection that starts nothing for a whole period: one timer
/// per connection, checked against a count of what was started (requests,
/// streams) instead of being reset for each. Shared by HTTP/1.1 and HTTP/2.
pub(crate) struct Watchdog {
    timer: Timer,
    period: Duration,
    /// The count when the timer was last armed.
    seen: u64,
}

impl Watchdog {
    /// `None` when there is no period (no watchdog).
    pub(crate) fn new(period: Option<Duration>) -> Option<Watchdog> {
        period.map(|period| Watchdog {
            timer: Timer::after(period),
            period,
            seen: 0,
        })
    }

    /// Whether a whole period passed with `started` unchanged. Each time
    /// the timer fires it is armed again for the next period (a caller
    /// that keeps the connection, say for streams still open, is asked
    /// again then).
    pub(crate) fn quiet(&mut self, cx: &mut Context<'_>, started: u64) -> bool {
        if !self.timer.fired(cx) {
            return false;
        }
        let quiet = started == self.seen;
        self.seen = started;
        self.timer.reset(Instant::now() + self.period);
        let _ = self.timer.fired(cx);
        quiet
    }

    /// The period.
    pub(crate) fn period(&self) -> Duration {
        self.period
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
