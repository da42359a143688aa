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
/// Clones share state. This is the app's view: it reads the state and
/// registers callbacks. What changes the state (the response completed, the
/// client left) lives on [`crate::server::ConnectionControl`], which only the
/// server (or a middleware standing in for one) holds.
///
/// ```
/// use pagi::server::ConnectionControl;
/// let control = ConnectionControl::new(); // the server's half
/// let conn = control.view();              // what the app gets in its scope
/// assert!(conn.is_connected());
/// conn.on_disconnect(|reason| assert_eq!(reason, "client_closed"));
/// control.disconnect("client_closed");
/// assert!(!conn.is_connected());
/// assert_eq!(conn.disconnect_reason().as_deref(), Some("client_closed"));
/// ```
///
/// An app cannot end its own request through the view:
///
/// ```compile_fail
/// let conn = pagi::Connection::default();
/// conn.disconnect("client_closed"); // no such method on the app's view
/// ```
#[derive(Clone)]
pub struct Connection(Arc<Mutex<Inner>>);

/// A detached connection: connected, and nothing will ever end it (for
/// scopes built by hand).
impl Default for Connection {
    fn default() -> Self {
        ConnectionControl::new().view()
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // Callbacks never run under the lock, so poisoning cannot leave the
    // state half-updated; recover rather than propagate a panic.
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connection {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.0)
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
}

/// The server's half of `pagi.connection`: it marks the response started
/// and complete, or the request ended abnormally. Apps get [`Connection`]
/// views ([`ConnectionControl::view`]) and cannot reach this.
///
/// ```
/// use pagi::server::ConnectionControl;
/// let control = ConnectionControl::new();
/// let conn = control.view();
/// control.mark_response_started();
/// control.mark_complete();
/// assert!(conn.response_started() && !conn.is_connected());
/// ```
pub struct ConnectionControl(Arc<Mutex<Inner>>);

impl Default for ConnectionControl {
    fn default() -> Self {
        ConnectionControl::new()
    }
}

impl ConnectionControl {
    /// A connected request with no response yet.
    pub fn new() -> Self {
        ConnectionControl(Arc::new(Mutex::new(Inner {
            connected: true,
            ..Inner::default()
        })))
    }

    /// The app's view of this connection.
    pub fn view(&self) -> Connection {
        Connection(self.0.clone())
    }

    /// The abnormal-disconnect reason, if there was one.
    pub fn disconnect_reason(&self) -> Option<String> {
        self.lock().reason.clone()
    }

    /// Whether the request is still going (neither complete nor ended).
    pub fn is_connected(&self) -> bool {
        self.lock().connected
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.0)
    }

    /// Make this the fresh connection of a new request, if no other
    /// handle to it exists (returns `false`, changing nothing, otherwise).
    /// Lets a server reuse one allocation across the requests of a
    /// keep-alive connection.
    ///
    /// ```
    /// let mut conn = pagi::server::ConnectionControl::new();
    /// conn.mark_complete();
    /// assert!(conn.reset());
    /// let view = conn.view();
    /// assert!(view.is_connected() && !view.response_started());
    /// assert!(!conn.reset()); // shared: the app may still look at it
    /// # drop(view);
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

    /// The response start was emitted.
    pub fn mark_response_started(&self) {
        self.lock().response_started = true;
    }

    /// The response was fully delivered. Fires `on_complete` once,
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

    /// An abnormal disconnect with a standard `reason`. Updates state
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

impl fmt::Debug for ConnectionControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("ConnectionControl")
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
        let control = ConnectionControl::new();
        let c = control.view();
        let (h1, h2) = (hits.clone(), hits.clone());
        c.on_disconnect(move |_| {
            h1.fetch_add(100, Ordering::SeqCst);
        });
        c.on_complete(move || {
            h2.fetch_add(1, Ordering::SeqCst);
        });
        control.mark_complete();
        control.disconnect("client_closed");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(c.disconnect_reason(), None);
        assert!(!c.is_connected());
    }

    #[test]
    fn late_disconnect_callback_runs_immediately() {
        let control = ConnectionControl::new();
        control.disconnect("server_error");
        control.disconnect("client_closed"); // first reason wins
        let c = control.view();
        let seen = Arc::new(Mutex::new(String::new()));
        let s = seen.clone();
        c.on_disconnect(move |r| *s.lock().unwrap() = r.to_owned());
        assert_eq!(*seen.lock().unwrap(), "server_error");
    }

    #[tokio::test]
    async fn disconnected_future_resolves_with_reason() {
        let c = ConnectionControl::new();
        let c2 = c.view();
        let t = tokio::spawn(async move { c2.disconnected().await });
        tokio::task::yield_now().await;
        c.disconnect("client_closed");
        assert_eq!(t.await.unwrap(), "client_closed");
    }
}
