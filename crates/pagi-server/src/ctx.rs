//! What every connection shares with the server: the app, the settings, the
//! server's phase (connections watch it to drain), the live-connection count
//! (the server waits on it) and the buffer budget. Nothing here touches a
//! socket.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use pagi::{SharedApp, State};
use tokio::sync::{watch, Notify};

use crate::budget::BufferBudget;
use crate::Config;

/// Where the server is in its life; connections watch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    /// Stop accepting; close idle keep-alives; send WebSockets Close 1001.
    Draining,
    /// The shutdown timeout ran out: drop whatever is left.
    Stopped,
}

/// Everything a connection needs, shared by all of them.
pub(crate) struct Ctx {
    pub(crate) app: SharedApp,
    pub(crate) config: Config,
    pub(crate) state: Option<State>,
    pub(crate) phase: watch::Receiver<Phase>,
    pub(crate) live: Arc<Live>,
    /// Bytes held on clients' behalf, process-wide (`max_buffered_bytes`).
    pub(crate) budget: Arc<BufferBudget>,
}

/// The count of live connections (including apps still running after
/// their connection closed).
#[derive(Default)]
pub(crate) struct Live {
    count: AtomicUsize,
    zero: Notify,
}

impl Live {
    pub(crate) fn guard(self: &Arc<Self>) -> LiveGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.clone())
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub(crate) async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts one live connection or app until dropped.
pub(crate) struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

/// Requests on one HTTP connection, for its watchdog.
#[derive(Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    /// Requests started so far.
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Requests not finished yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self.clone())
    }
}

/// One request in flight (until its response body is done).
pub(crate) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
