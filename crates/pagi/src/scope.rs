//! Connection scopes: what the server tells the app about a connection.

use bytes::Bytes;
use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::{Connection, Extensions, Headers, Transport, PAGI_VERSION};

/// The scope an app is called with: which protocol the connection speaks,
/// and everything known about it. Apps match on it and decline scope types
/// they do not handle with [`crate::unsupported_scope`].
///
/// Each variant's scope is boxed, so a `Scope` is two words: an app's
/// future stores its arguments (twice, as `async fn`s do), and the server
/// moves the scope several times on the way to the app.
///
/// ```
/// use pagi::{Scope, HttpScope};
/// let scope = Scope::Http(Box::new(HttpScope::default()));
/// if let Scope::Http(http) = &scope {
///     assert_eq!(http.path, "");
/// }
/// assert_eq!(std::mem::size_of::<Scope>(), 16);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Scope {
    /// An HTTP request (`type => 'http'`), one scope per request.
    Http(Box<HttpScope>),
    /// A WebSocket session (`type => 'websocket'`), one scope per session.
    WebSocket(Box<WebSocketScope>),
    /// A Server-Sent Events request (`type => 'sse'`): an HTTP request whose
    /// `Accept` includes `text/event-stream`. Same keys as HTTP.
    Sse(Box<HttpScope>),
    /// The process lifespan (`type => 'lifespan'`), once per server.
    Lifespan(Box<LifespanScope>),
}

impl Scope {
    /// The spec's `type` string: `http`, `websocket`, `sse` or `lifespan`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Scope::Http(_) => "http",
            Scope::WebSocket(_) => "websocket",
            Scope::Sse(_) => "sse",
            Scope::Lifespan(_) => "lifespan",
        }
    }

    /// `scope.pagi`: spec versions.
    pub fn pagi(&self) -> &PagiInfo {
        match self {
            Scope::Http(s) | Scope::Sse(s) => &s.pagi,
            Scope::WebSocket(s) => &s.pagi,
            Scope::Lifespan(s) => &s.pagi,
        }
    }

    /// The request headers (empty for lifespan).
    pub fn headers(&self) -> &Headers {
        static EMPTY: Headers = Headers::new();
        match self {
            Scope::Http(s) | Scope::Sse(s) => &s.headers,
            Scope::WebSocket(s) => &s.headers,
            Scope::Lifespan(_) => &EMPTY,
        }
    }

    /// The decoded request path (`""` for lifespan).
    pub fn path(&self) -> &str {
        match self {
            Scope::Http(s) | Scope::Sse(s) => &s.path,
            Scope::WebSocket(s) => &s.path,
            Scope::Lifespan(_) => "",
        }
    }
}

/// `scope.pagi`: the core spec version and the sub-spec version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagiInfo {
    /// Core PAGI spec version, `"0.3"`.
    pub version: &'static str,
    /// Protocol sub-spec version, `"0.3"`.
    pub spec_version: &'static str,
    /// Lifespan only: `Some(1)` in a worker of a multi-process deployment.
    pub is_worker: Option<i64>,
    /// Lifespan only: the worker's number in a multi-process deployment.
    pub worker_num: Option<i64>,
}

impl Default for PagiInfo {
    fn default() -> Self {
        PagiInfo {
            version: PAGI_VERSION,
            spec_version: PAGI_VERSION,
            is_worker: None,
            worker_num: None,
        }
    }
}

/// The HTTP version of a request or of a WebSocket handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    #[default]
    Http11,
    /// HTTP/2
    Http2,
}

impl HttpVersion {
    /// The spec's string: `"1.0"`, `"1.1"` or `"2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "1.0",
            HttpVersion::Http11 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }
}

impl fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the server accepted the connection (`scope.server`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAddr {
    /// A TCP listener: `[host, port]`.
    Tcp(SocketAddr),
    /// A Unix-domain socket: `[path, undef]`.
    Unix(PathBuf),
}

/// The scope of one HTTP (or SSE) request.
#[derive(Clone, Debug, Default)]
pub struct HttpScope {
    /// `scope.pagi`.
    pub pagi: PagiInfo,
    /// `http_version`.
    pub http_version: HttpVersion,
    /// Upper-case request method (borrowed for the standard methods).
    pub method: Cow<'static, str>,
    /// `http` or `https`.
    pub scheme: Cow<'static, str>,
    /// The percent-decoded path. Bytes that are not UTF-8 after decoding are
    /// replaced (U+FFFD); `raw_path` keeps the original bytes.
    pub path: String,
    /// The path exactly as sent, still percent-encoded.
    pub raw_path: Bytes,
    /// The query string after `?`, percent-encoded, without the `?`.
    pub query_string: Bytes,
    /// The application's mount point (`SCRIPT_NAME`), default `""`.
    pub root_path: String,
    /// Request headers with lower-case names, in arrival order; multiple
    /// `cookie` headers are joined with `"; "` into one.
    pub headers: Headers,
    /// The client's address.
    pub client: Option<SocketAddr>,
    /// The listener's address.
    pub server: Option<ServerAddr>,
    /// A shallow copy of the lifespan state (`None` if lifespan did not run).
    pub state: Option<State>,
    /// Capabilities the server offers on this request.
    pub extensions: Extensions,
    /// `pagi.connection`: disconnect detection and response progress.
    pub connection: Connection,
    /// `pagi.transport`: outbound flow-control introspection, where known.
    pub transport: Option<Transport>,
    /// Keys added by middleware (the spec's custom scope keys).
    pub custom: State,
}

/// The scope of one WebSocket session.
#[derive(Clone, Debug, Default)]
pub struct WebSocketScope {
    /// `scope.pagi`.
    pub pagi: PagiInfo,
    /// HTTP version of the handshake.
    pub http_version: HttpVersion,
    /// `ws` or `wss`.
    pub scheme: Cow<'static, str>,
    /// The percent-decoded path (see [`HttpScope::path`]).
    pub path: String,
    /// The path exactly as sent.
    pub raw_path: Bytes,
    /// The query string, percent-encoded, without the `?`.
    pub query_string: Bytes,
    /// The application's mount point, default `""`.
    pub root_path: String,
    /// The handshake's headers (lower-case names, arrival order).
    pub headers: Headers,
    /// The client's address.
    pub client: Option<SocketAddr>,
    /// The listener's address.
    pub server: Option<ServerAddr>,
    /// Subprotocols the client offered in `Sec-WebSocket-Protocol`, split on
    /// commas and trimmed; empty when the header is absent.
    pub subprotocols: Vec<String>,
    /// A shallow copy of the lifespan state.
    pub state: Option<State>,
    /// Capabilities the server offers (e.g. `websocket.http.response`).
    pub extensions: Extensions,
    /// `pagi.transport`: outbound flow-control introspection.
    pub transport: Option<Transport>,
    /// Keys added by middleware.
    pub custom: State,
}

/// The lifespan scope, given once per process.
#[derive(Clone, Debug, Default)]
pub struct LifespanScope {
    /// `scope.pagi` (with `is_worker`/`worker_num` where applicable).
    pub pagi: PagiInfo,
    /// The namespace the app fills at startup; each later request scope gets
    /// a shallow copy of it as `state`.
    pub state: SharedState,
}

/// A string-keyed namespace of shared values: the lifespan `state` and the
/// custom keys middleware adds. Cloning is shallow, as the spec asks: the
/// top-level keys are private to each copy, the values (behind `Arc`) are
/// shared, so mutate shared data through the value (a pool, a `Mutex`),
/// never by replacing a key.
///
/// ```
/// let mut state = pagi::State::default();
/// state.insert("greeting", String::from("hi"));
/// let copy = state.clone();
/// assert_eq!(copy.get::<String>("greeting").as_deref().map(String::as_str), Some("hi"));
/// assert!(copy.get::<u32>("greeting").is_none()); // wrong type
/// ```
#[derive(Clone, Default)]
pub struct State(Option<Arc<StateMap>>);

type StateMap = HashMap<String, Arc<dyn Any + Send + Sync>>;

// Copy-on-write: the server gives every request a copy of the lifespan
// state, so a copy is a reference count until one copy changes a key. An
// empty state allocates nothing.
impl State {
    /// Set `key` to `value` in this copy.
    pub fn insert<T: Any + Send + Sync>(&mut self, key: impl Into<String>, value: T) {
        self.insert_arc(key, Arc::new(value));
    }

    /// Set `key` to an already shared value.
    pub fn insert_arc<T: Any + Send + Sync>(&mut self, key: impl Into<String>, value: Arc<T>) {
        let map = Arc::make_mut(self.0.get_or_insert_with(Default::default));
        map.insert(key.into(), value);
    }

    /// The value at `key`, if present and of type `T`.
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        self.0.as_ref()?.get(key).cloned()?.downcast::<T>().ok()
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.as_ref().is_some_and(|m| m.contains_key(key))
    }

    /// Remove `key` from this copy.
    pub fn remove(&mut self, key: &str) {
        if let Some(map) = &mut self.0 {
            if map.contains_key(key) {
                Arc::make_mut(map).remove(key);
            }
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self.0.iter().flat_map(|m| m.keys()).collect();
        keys.sort();
        f.debug_struct("State").field("keys", &keys).finish()
    }
}

/// The lifespan's `state`, shared between the lifespan app (which fills it
/// at startup) and the server (which copies it into every request scope).
#[derive(Clone, Default, Debug)]
pub struct SharedState(Arc<Mutex<State>>);

impl SharedState {
    /// Set `key` to `value`.
    pub fn insert<T: Any + Send + Sync>(&self, key: impl Into<String>, value: T) {
        self.lock().insert(key, value);
    }

    /// The value at `key`, if present and of type `T`.
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        self.lock().get(key)
    }

    /// A shallow copy of the current state, as given to each request.
    pub fn snapshot(&self) -> State {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State half-written
        // (HashMap insert/remove are atomic from our point of view).
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_copies_share_values_but_not_keys() {
        let mut base = State::default();
        assert!(base.is_empty() && base.get::<u32>("a").is_none());
        base.insert("a", 1u32);
        let mut copy = base.clone();
        copy.insert("b", 2u32);
        copy.remove("a");
        assert_eq!(base.len(), 1);
        assert_eq!(base.get::<u32>("a").as_deref(), Some(&1));
        assert!(!base.contains_key("b"));
        assert_eq!(copy.len(), 1);
        assert!(copy.contains_key("b") && !copy.contains_key("a"));
        // Values stay shared between copies.
        let shared = Arc::new(Mutex::new(0));
        base.insert_arc("m", shared.clone());
        let copy = base.clone();
        *copy.get::<Mutex<i32>>("m").unwrap().lock().unwrap() = 7;
        assert_eq!(*shared.lock().unwrap(), 7);
    }

    #[test]
    fn removing_a_missing_key_leaves_a_shared_state_shared() {
        let mut base = State::default();
        base.insert("a", 1u32);
        let mut copy = base.clone();
        copy.remove("zzz");
        assert!(Arc::ptr_eq(
            base.0.as_ref().unwrap(),
            copy.0.as_ref().unwrap()
        ));
    }
}
