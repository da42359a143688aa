//! `pagi.connection`: per-request disconnect detection and response progress.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

type DisconnectCallback = Box<dyn FnOnce(&str) + Send>;
type CompleteCallback = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Inner {
    connected: bool,
    reason: Option<String>,
    completed: bool,
    response_started: bool,
    response_complete: bool,
    on_disconnect: Vec<DisconnectCallback>,
    on_complete: Vec<CompleteCallback>,
    waiters: Vec<Waker>,
}

/// The `pagi.connection` object of one HTTP request: synchronous,
/// non-destructive disconnect checks (no need to consume `receive`), and
/// the response's progress. Exactly one of `on_disconnect` (abnormal end) and
/// `on_complete` (response fully delivered) fires per request.
///
/// Clones share state. The `mark_*` and [`Connection::disconnect`] methods are
/// for servers.
///
/// ```
/// let conn = pagi::Connection::new();
/// assert!(conn.is_connected());
/// conn.on_disconnect(|reason| assert_eq!(reason, "client_closed"));
/// conn.disconnect("client_closed");
/// assert!(!conn.is_connected());
/// assert_eq!(conn.disconnect_reason().as_deref(), Some("client_closed"));
/// ```
#[derive(Clone)]
pub struct Connection(Arc<Mutex<Inner>>);

impl Default for Connection {
    fn default() -> Self {
        Connection::new()
    }
}

impl Connection {
    /// A connected request with no response yet.
    pub fn new() -> Self {
        Connection(Arc::new(Mutex::new(Inner {
            connected: true,
            ..Inner::default()
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Callbacks never run under the lock, so poisoning cannot leave the
        // state half-updated; recover rather than propagate a panic.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True until the connection closes, for any reason; never true again after.
    pub fn is_connected(&self) -> bool {
        self.lock().connected
    }

    /// The abnormal-disconnect reason (`client_closed`, `server_error`, …),
    /// or `None` while connected or after a normal completion.
    pub fn disconnect_reason(&self) -> Option<String> {
        self.lock().reason.clone()
    }

    /// Whether `http.response.start` was emitted for this request (by the
    /// app, a middleware, or the server's own backstop response).
    pub fn response_started(&self) -> bool {
        self.lock().response_started
    }

    /// Whether the response body has been fully sent. Always `Some`: this
    /// server tracks completion.
    pub fn response_complete(&self) -> Option<bool> {
        Some(self.lock().response_complete)
    }

    /// Register a callback for an abnormal disconnect; called with the
    /// reason. Runs at once if the disconnect already happened.
    pub fn on_disconnect(&self, callback: impl FnOnce(&str) + Send + 'static) {
        let mut inner = self.lock();
        match inner.reason.clone() {
            Some(reason) => {
                drop(inner);
                callback(&reason);
            }
            None if inner.completed => {}
            None => inner.on_disconnect.push(Box::new(callback)),
        }
    }

    /// Register a callback for successful completion. Runs at once if the
    /// request already completed.
    pub fn on_complete(&self, callback: impl FnOnce() + Send + 'static) {
        let mut inner = self.lock();
        if inner.completed {
            drop(inner);
            callback();
        } else if inner.reason.is_none() {
            inner.on_complete.push(Box::new(callback));
        }
    }

    /// Resolves with the reason on abnormal disconnect (the spec's
    /// `disconnect_future`); never resolves if the request completes.
    pub async fn disconnected(&self) -> String {
        poll_fn(|cx| {
            let mut inner = self.lock();
            match &inner.reason {
                Some(r) => Poll::Ready(r.clone()),
                None => {
                    if !inner.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        inner.waiters.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Server: make this the fresh connection of a new request, if no other
    /// handle to it exists (returns `false`, changing nothing, otherwise).
    /// Lets a server reuse one allocation across the requests of a
    /// keep-alive connection.
    ///
    /// ```
    /// let mut conn = pagi::Connection::new();
    /// conn.mark_complete();
    /// assert!(conn.reset());
    /// assert!(conn.is_connected() && !conn.response_started());
    /// let other = conn.clone();
    /// assert!(!conn.reset()); // shared: the app may still look at it
    /// # drop(other);
    /// ```
    pub fn reset(&mut self) -> bool {
        match Arc::get_mut(&mut self.0) {
            Some(m) => {
                // Field by field (the pattern names every field, so a new
                // one cannot be forgotten): cheaper than dropping and
                // rebuilding the whole state, and the lists keep their room.
                let Inner {
                    connected,
                    reason,
                    completed,
                    response_started,
                    response_complete,
                    on_disconnect,
                    on_complete,
                    waiters,
                } = m.get_mut().unwrap_or_else(|e| e.into_inner());
                *connected = true;
                *reason = None;
                *completed = false;
                *response_started = false;
                *response_complete = false;
                on_disconnect.clear();
                on_complete.clear();
                waiters.clear();
                true
            }
            None => false,
        }
    }

    /// Server: the response start was emitted.
    pub fn mark_response_started(&self) {
        self.lock().response_started = true;
    }

    /// Server: the response was fully delivered. Fires `on_complete` once,
    /// unless the request already ended abnormally.
    pub fn mark_complete(&self) {
        let callbacks = {
            let mut inner = self.lock();
            if inner.completed || inner.reason.is_some() {
                return;
            }
            inner.response_complete = true;
            inner.completed = true;
            inner.connected = false;
            inner.on_disconnect.clear();
            std::mem::take(&mut inner.on_complete)
        };
        for cb in callbacks {
            cb();
        }
    }

    /// Server: an abnormal disconnect with a standard `reason`. Updates state
    /// in the spec's order (connected, reason, future, callbacks); a no-op if
    /// the request already ended.
    pub fn disconnect(&self, reason: &str) {
        let (callbacks, waiters) = {
            let mut inner = self.lock();
            if inner.completed || inner.reason.is_some() {
                return;
            }
            inner.connected = false;
            inner.reason = Some(reason.to_owned());
            inner.on_complete.clear();
            (
                std::mem::take(&mut inner.on_disconnect),
                std::mem::take(&mut inner.waiters),
            )
        };
        waiters.into_iter().for_each(Waker::wake);
        for cb in callbacks {
            cb(reason);
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Connection")
            .field("connected", &inner.connected)
            .field("reason", &inner.reason)
            .field("response_started", &inner.response_started)
            .field("response_complete", &inner.response_complete)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn exactly_one_of_complete_and_disconnect_fires() {
        let hits = Arc::new(AtomicUsize::new(0));
        let c = Connection::new();
        let (h1, h2) = (hits.clone(), hits.clone());
        c.on_disconnect(move |_| {
            h1.fetch_add(100, Ordering::SeqCst);
        });
        c.on_complete(move || {
            h2.fetch_add(1, Ordering::SeqCst);
        });
        c.mark_complete();
        c.disconnect("client_closed");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(c.disconnect_reason(), None);
        assert!(!c.is_connected());
    }

    #[test]
    fn late_disconnect_callback_runs_immediately() {
        let c = Connection::new();
        c.disconnect("server_error");
        c.disconnect("client_closed"); // first reason wins
        let seen = Arc::new(Mutex::new(String::new()));
        let s = seen.clone();
        c.on_disconnect(move |r| *s.lock().unwrap() = r.to_owned());
        assert_eq!(*seen.lock().unwrap(), "server_error");
    }

    #[tokio::test]
    async fn disconnected_future_resolves_with_reason() {
        let c = Connection::new();
        let c2 = c.clone();
        let t = tokio::spawn(async move { c2.disconnected().await });
        tokio::task::yield_now().await;
        c.disconnect("client_closed");
        assert_eq!(t.await.unwrap(), "client_closed");
    }
}
