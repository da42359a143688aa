//! Connection scopes: what the server tells the app about a connection.

use bytes::Bytes;
use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
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

    /// What the request scopes share (`None` for lifespan).
    pub fn info(&self) -> Option<&RequestInfo> {
        match self {
            Scope::Http(s) | Scope::Sse(s) => Some(&s.info),
            Scope::WebSocket(s) => Some(&s.info),
            Scope::Lifespan(_) => None,
        }
    }

    /// Mutable access to what the request scopes share, for middleware
    /// that rewrites a path or adds a custom key (`None` for lifespan).
    pub fn info_mut(&mut self) -> Option<&mut RequestInfo> {
        match self {
            Scope::Http(s) | Scope::Sse(s) => Some(&mut s.info),
            Scope::WebSocket(s) => Some(&mut s.info),
            Scope::Lifespan(_) => None,
        }
    }

    /// The request method for HTTP and SSE scopes.
    pub fn method(&self) -> Option<&str> {
        match self {
            Scope::Http(s) | Scope::Sse(s) => Some(&s.method),
            _ => None,
        }
    }

    /// The request headers (empty for lifespan).
    pub fn headers(&self) -> &Headers {
        static EMPTY: Headers = Headers::new();
        self.info().map_or(&EMPTY, |i| &i.headers)
    }

    /// The first value of header `name` (case-insensitive) as text.
    ///
    /// ```
    /// let mut http = pagi::HttpScope::default();
    /// http.headers.push("accept", "text/html");
    /// let scope = pagi::Scope::Http(Box::new(http));
    /// assert_eq!(scope.header("Accept"), Some("text/html"));
    /// assert_eq!(scope.path(), "");
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.info()?.header(name)
    }

    /// The decoded request path (`""` for lifespan).
    pub fn path(&self) -> &str {
        self.info().map_or("", |i| &i.path)
    }

    /// The mount point (`""` for lifespan or when not mounted).
    pub fn root_path(&self) -> &str {
        self.info().map_or("", |i| &i.root_path)
    }

    /// The raw query string (empty for lifespan).
    pub fn query_string(&self) -> &[u8] {
        self.info().map_or(&[], |i| &i.query_string)
    }

    /// The parsed query string (see [`RequestInfo::query`]).
    pub fn query(&self) -> Query {
        Query::parse(self.query_string())
    }

    /// The client's address, where known.
    pub fn client(&self) -> Option<SocketAddr> {
        self.info()?.client
    }

    /// The lifespan state this request sees (`None` if lifespan did not
    /// run, and for the lifespan scope itself, whose state is
    /// [`LifespanScope::state`]).
    pub fn state(&self) -> Option<&State> {
        self.info()?.state.as_ref()
    }

    /// A typed value from the lifespan state (see [`StateKey`]).
    pub fn state_value<T: Any + Send + Sync>(&self, key: &StateKey<T>) -> Option<Arc<T>> {
        self.state()?.value(key)
    }

    /// The extensions the server offers on this scope.
    pub fn extensions(&self) -> Option<&Extensions> {
        self.info().map(|i| &i.extensions)
    }

    /// `pagi.connection` of an HTTP or SSE request.
    pub fn connection(&self) -> Option<&Connection> {
        match self {
            Scope::Http(s) | Scope::Sse(s) => Some(&s.connection),
            _ => None,
        }
    }

    /// `pagi.transport`, where the server offers it.
    pub fn transport(&self) -> Option<&Transport> {
        self.info()?.transport.as_ref()
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

/// What HTTP, SSE and WebSocket scopes share: the request line's parts, the
/// headers, the addresses, the lifespan state. [`HttpScope`] and
/// [`WebSocketScope`] hold one and dereference to it, so `http.path` reads
/// the same on either; [`Scope`] has accessors that work on any scope.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    /// `scope.pagi`.
    pub pagi: PagiInfo,
    /// `http_version` (of the request, or of the WebSocket handshake).
    pub http_version: HttpVersion,
    /// `http`/`https` (or `ws`/`wss` for a WebSocket scope).
    pub scheme: Cow<'static, str>,
    /// The percent-decoded path. Bytes that are not UTF-8 after decoding are
    /// replaced (U+FFFD); `raw_path` keeps the original bytes.
    pub path: String,
    /// The path exactly as sent, still percent-encoded.
    pub raw_path: Bytes,
    /// The query string after `?`, percent-encoded, without the `?`
    /// ([`RequestInfo::query`] parses it).
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
    /// `pagi.transport`: outbound flow-control introspection, where known.
    pub transport: Option<Transport>,
    /// Keys added by middleware (the spec's custom scope keys).
    pub custom: State,
}

impl RequestInfo {
    /// The query string parsed as `application/x-www-form-urlencoded`:
    /// `+` is a space, percent escapes are decoded (invalid UTF-8 becomes
    /// U+FFFD), repeated keys are kept in order.
    ///
    /// ```
    /// let mut info = pagi::RequestInfo::default();
    /// info.query_string = "name=J%C3%BCrgen&tag=a&tag=b+c&flag".into();
    /// let q = info.query();
    /// assert_eq!(q.get("name"), Some("Jürgen"));
    /// assert_eq!(q.get_all("tag").collect::<Vec<_>>(), ["a", "b c"]);
    /// assert_eq!(q.get("flag"), Some(""));
    /// assert_eq!(q.get("missing"), None);
    /// ```
    pub fn query(&self) -> Query {
        Query::parse(&self.query_string)
    }

    /// The first value of the header `name` (case-insensitive) as text, if
    /// present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.headers.get(name)?).ok()
    }

    /// The path below the mount point: `path` minus `root_path` (the
    /// spec's `PATH_INFO`), what an app mounted at a prefix routes on.
    /// Always starts with `/`.
    ///
    /// ```
    /// let mut info = pagi::RequestInfo::default();
    /// info.path = "/api/users/7".into();
    /// info.root_path = "/api".into();
    /// assert_eq!(info.route_path(), "/users/7");
    /// info.root_path = "/api/users/7".into();
    /// assert_eq!(info.route_path(), "/");
    /// ```
    pub fn route_path(&self) -> &str {
        let rest = self
            .path
            .strip_prefix(self.root_path.as_str())
            .unwrap_or(&self.path);
        if rest.starts_with('/') {
            rest
        } else if rest.is_empty() {
            "/"
        } else {
            // A root path that is not a segment boundary of the path
            // (`/api` against `/apiary`): the whole path.
            &self.path
        }
    }
}

/// A parsed query string: `(name, value)` pairs in order, duplicates kept.
/// Made by [`RequestInfo::query`] or [`Scope::query`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parse a query string (without the `?`).
    pub fn parse(query_string: &[u8]) -> Self {
        Query(
            query_string
                .split(|&b| b == b'&')
                .filter(|part| !part.is_empty())
                .map(|part| {
                    let (name, value) = match part.iter().position(|&b| b == b'=') {
                        Some(i) => (&part[..i], &part[i + 1..]),
                        None => (part, &b""[..]),
                    };
                    (form_decode(name), form_decode(value))
                })
                .collect(),
        )
    }

    /// The first value for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value for `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One form-encoded component: `+` is a space, then percent-decoding.
fn form_decode(part: &[u8]) -> String {
    let spaced: Cow<'_, [u8]> = if part.contains(&b'+') {
        Cow::Owned(
            part.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(part)
    };
    let decoded: Cow<'_, [u8]> = percent_encoding::percent_decode(&spaced).into();
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The scope of one HTTP (or SSE) request.
///
/// It dereferences to its [`RequestInfo`], so `http.path`, `http.headers`
/// and the other shared fields read directly.
#[derive(Clone, Debug, Default)]
pub struct HttpScope {
    /// What every request scope has.
    pub info: RequestInfo,
    /// Upper-case request method (borrowed for the standard methods).
    pub method: Cow<'static, str>,
    /// `pagi.connection`: disconnect detection and response progress.
    pub connection: Connection,
}

/// The scope of one WebSocket session; dereferences to its [`RequestInfo`].
#[derive(Clone, Debug, Default)]
pub struct WebSocketScope {
    /// What every request scope has (`scheme` is `ws` or `wss`).
    pub info: RequestInfo,
    /// Subprotocols the client offered in `Sec-WebSocket-Protocol`, split on
    /// commas and trimmed; empty when the header is absent.
    pub subprotocols: Vec<String>,
}

macro_rules! deref_info {
    ($($scope:ty),*) => {$(
        impl std::ops::Deref for $scope {
            type Target = RequestInfo;
            fn deref(&self) -> &RequestInfo {
                &self.info
            }
        }
        impl std::ops::DerefMut for $scope {
            fn deref_mut(&mut self) -> &mut RequestInfo {
                &mut self.info
            }
        }
    )*};
}
deref_info!(HttpScope, WebSocketScope);

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

    /// Set the typed `key` to `value` in this copy.
    pub fn set<T: Any + Send + Sync>(&mut self, key: &StateKey<T>, value: T) {
        self.insert(key.name, value);
    }

    /// The value of the typed `key` (`None` if absent, or if the name holds
    /// another type, set through the string-keyed methods).
    pub fn value<T: Any + Send + Sync>(&self, key: &StateKey<T>) -> Option<Arc<T>> {
        self.get(key.name)
    }

    /// The key names, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|m| m.keys()).map(String::as_str)
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self.0.iter().flat_map(|m| m.keys()).collect();
        keys.sort();
        f.debug_struct("State").field("keys", &keys).finish()
    }
}

/// A typed key into a [`State`]: its name (what the spec sees) and the type
/// of its value, so reading it needs no turbofish and cannot ask for the
/// wrong type. Declare keys as constants next to the code that owns them.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use pagi::{State, StateKey};
///
/// const HITS: StateKey<AtomicU64> = StateKey::new("hits");
///
/// let mut state = State::default();
/// state.set(&HITS, AtomicU64::new(0));
/// let hits = state.value(&HITS).unwrap(); // an Arc<AtomicU64>
/// hits.fetch_add(1, Ordering::Relaxed);
/// assert_eq!(state.value(&HITS).unwrap().load(Ordering::Relaxed), 1);
/// assert_eq!(state.keys().collect::<Vec<_>>(), ["hits"]);
/// ```
pub struct StateKey<T> {
    name: &'static str,
    // `fn() -> T`: the key neither owns a T nor limits Send/Sync.
    _value: PhantomData<fn() -> T>,
}

impl<T> StateKey<T> {
    /// A key named `name`.
    pub const fn new(name: &'static str) -> Self {
        StateKey {
            name,
            _value: PhantomData,
        }
    }

    /// The key's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> fmt::Debug for StateKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StateKey({:?}: {})",
            self.name,
            std::any::type_name::<T>()
        )
    }
}

impl<T> Clone for StateKey<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for StateKey<T> {}

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

    /// Set the typed `key` to `value`.
    pub fn set<T: Any + Send + Sync>(&self, key: &StateKey<T>, value: T) {
        self.lock().set(key, value);
    }

    /// The value of the typed `key`.
    pub fn value<T: Any + Send + Sync>(&self, key: &StateKey<T>) -> Option<Arc<T>> {
        self.lock().value(key)
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
