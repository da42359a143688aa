//! Cross-origin resource sharing.

use std::fmt;
use std::sync::Arc;

use pagi::{App, BoxError, BoxFuture, Headers, Receiver, Scope, SendEvent, Sender};

use crate::map_send;

/// Which origins may call.
#[derive(Clone, Debug)]
enum Origins {
    Any,
    List(Vec<String>),
}

#[derive(Clone, Debug)]
struct Policy {
    origins: Origins,
    methods: String,
    headers: Option<String>,
    expose: Option<String>,
    credentials: bool,
    max_age: Option<u64>,
}

/// CORS around an app (the Fetch standard's CORS protocol):
///
/// - a preflight (`OPTIONS` with `Origin` and
///   `Access-Control-Request-Method`) is answered here, 204 with the
///   allowed methods and headers, or 403 for an origin not allowed; the
///   inner app never sees it;
/// - any other request with an allowed `Origin` goes to the inner app, and
///   its response (`http.response.start`, `sse.start`, or the declining
///   `sse.http.response.start`) gets `Access-Control-Allow-Origin`,
///   `Vary: Origin` and the configured extras; a request from an origin not
///   allowed passes through without them (the browser then hides the
///   response);
/// - a WebSocket handshake whose `Origin` is not allowed is refused (403):
///   browsers send WebSockets anywhere, and this is what stops a page on
///   another site from opening one with the user's cookies.
///
/// Defaults: no origin allowed; methods `GET, HEAD, POST`; request headers:
/// whatever the preflight asks for; no credentials; no max-age.
///
/// ```
/// let app = pagi_middleware::Cors::new(
///     |_: pagi::Scope, _: pagi::Receiver, _: pagi::Sender| async { Ok::<(), pagi::BoxError>(()) },
/// )
/// .allow_origins(["https://app.example"])
/// .allow_methods(["GET", "POST", "DELETE"])
/// .allow_credentials(true)
/// .max_age(600);
/// # let _ = pagi::app_fn(app);
/// ```
pub struct Cors<A> {
    inner: A,
    policy: Arc<Policy>,
}

impl<A> fmt::Debug for Cors<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cors")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<A: App> Cors<A> {
    /// Wrap `inner`, allowing no origin yet.
    pub fn new(inner: A) -> Self {
        Cors {
            inner,
            policy: Arc::new(Policy {
                origins: Origins::List(Vec::new()),
                methods: "GET, HEAD, POST".into(),
                headers: None,
                expose: None,
                credentials: false,
                max_age: None,
            }),
        }
    }

    fn policy(&mut self) -> &mut Policy {
        Arc::make_mut(&mut self.policy)
    }

    /// Allow these origins (`scheme://host[:port]`, compared exactly).
    pub fn allow_origins<S: AsRef<str>>(mut self, origins: impl IntoIterator<Item = S>) -> Self {
        self.policy().origins =
            Origins::List(origins.into_iter().map(|o| normal(o.as_ref())).collect());
        self
    }

    /// Allow every origin (`Access-Control-Allow-Origin: *`).
    ///
    /// # Panics
    ///
    /// With [`allow_credentials(true)`](Cors::allow_credentials): browsers
    /// refuse `*` with credentials, and echoing every origin instead would
    /// let any site read responses made with the user's cookies. List the
    /// origins instead.
    pub fn allow_any_origin(mut self) -> Self {
        assert!(
            !self.policy.credentials,
            "Cors: allow_any_origin with allow_credentials(true) would let every site \
             read responses made with the user's credentials; list the origins"
        );
        self.policy().origins = Origins::Any;
        self
    }

    /// The methods a preflight allows.
    pub fn allow_methods<'a>(mut self, methods: impl IntoIterator<Item = &'a str>) -> Self {
        self.policy().methods = methods.into_iter().collect::<Vec<_>>().join(", ");
        self
    }

    /// The request headers a preflight allows (default: the ones it asks for).
    pub fn allow_headers<'a>(mut self, headers: impl IntoIterator<Item = &'a str>) -> Self {
        self.policy().headers = Some(headers.into_iter().collect::<Vec<_>>().join(", "));
        self
    }

    /// Response headers the page's script may read.
    pub fn expose_headers<'a>(mut self, headers: impl IntoIterator<Item = &'a str>) -> Self {
        self.policy().expose = Some(headers.into_iter().collect::<Vec<_>>().join(", "));
        self
    }

    /// Let requests carry cookies and credentials.
    ///
    /// # Panics
    ///
    /// With `true` after [`allow_any_origin`](Cors::allow_any_origin) (see
    /// there).
    pub fn allow_credentials(mut self, yes: bool) -> Self {
        assert!(
            !(yes && matches!(self.policy.origins, Origins::Any)),
            "Cors: allow_credentials(true) with allow_any_origin would let every site \
             read responses made with the user's credentials; list the origins"
        );
        self.policy().credentials = yes;
        self
    }

    /// How long a browser may cache a preflight, in seconds.
    pub fn max_age(mut self, seconds: u64) -> Self {
        self.policy().max_age = Some(seconds);
        self
    }
}

/// An origin as compared: lower-case, no trailing slash.
fn normal(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl Policy {
    /// The `Access-Control-Allow-Origin` value for `origin`, if allowed.
    /// The opaque origin `null` (sandboxed frames, `file:` pages) is only
    /// allowed by `*` (never with credentials: the builder refuses that).
    fn allow(&self, origin: &str) -> Option<String> {
        match &self.origins {
            Origins::Any => Some("*".into()),
            _ if origin.trim() == "null" => None,
            Origins::List(list) => {
                let origin_n = normal(origin);
                list.contains(&origin_n).then(|| origin.to_owned())
            }
        }
    }

    /// Whether the answer depends on `Origin` (all but a plain `*`): then
    /// every response says `Vary: Origin`, so no cache hands one origin's
    /// answer to another.
    fn varies(&self) -> bool {
        !matches!(self.origins, Origins::Any)
    }

    /// The CORS headers of a response to `allowed` (the app's own
    /// `Access-Control-Allow-Origin`, if any, is replaced: two values
    /// would make browsers refuse it), or just `Vary` for anyone else.
    fn decorate(&self, allowed: Option<&str>, headers: &mut Headers) {
        if self.varies() {
            headers.push("vary", "Origin");
        }
        let Some(allowed) = allowed else { return };
        headers.remove("access-control-allow-origin");
        headers.push("access-control-allow-origin", allowed.to_owned());
        if self.credentials {
            headers.push("access-control-allow-credentials", "true");
        }
        if let Some(expose) = &self.expose {
            headers.push("access-control-expose-headers", expose.clone());
        }
    }
}

impl<A: App> App for Cors<A> {
    fn call(
        &self,
        scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> BoxFuture<Result<(), BoxError>> {
        let origin = scope.header("origin");
        let has_origin = origin.is_some();
        let allowed = origin.and_then(|o| self.policy.allow(o));
        match &scope {
            Scope::WebSocket(_) if has_origin && allowed.is_none() => {
                return Box::pin(pagi::ws::refuse(receive, send));
            }
            Scope::Http(_)
                if has_origin
                    && scope.method() == Some("OPTIONS")
                    && scope.header("access-control-request-method").is_some() =>
            {
                let asked = scope
                    .header("access-control-request-headers")
                    .map(str::to_owned);
                return Box::pin(preflight(self.policy.clone(), allowed, asked, send));
            }
            Scope::WebSocket(_) | Scope::Lifespan(_) => {
                return self.inner.call(scope, receive, send);
            }
            _ => {}
        }
        if allowed.is_none() && !self.policy.varies() {
            return self.inner.call(scope, receive, send);
        }
        let policy = self.policy.clone();
        let send = map_send(send, move |event| match event {
            SendEvent::HttpResponseStart {
                status,
                mut headers,
                trailers,
            } => {
                policy.decorate(allowed.as_deref(), &mut headers);
                SendEvent::HttpResponseStart {
                    status,
                    headers,
                    trailers,
                }
            }
            SendEvent::SseStart {
                status,
                mut headers,
            } => {
                policy.decorate(allowed.as_deref(), &mut headers);
                SendEvent::SseStart { status, headers }
            }
            SendEvent::SseHttpResponseStart {
                status,
                mut headers,
            } => {
                policy.decorate(allowed.as_deref(), &mut headers);
                SendEvent::SseHttpResponseStart { status, headers }
            }
            other => other,
        });
        self.inner.call(scope, receive, send)
    }
}

async fn preflight(
    policy: Arc<Policy>,
    allowed: Option<String>,
    asked: Option<String>,
    send: Sender,
) -> Result<(), BoxError> {
    let mut headers = Headers::new();
    policy.decorate(allowed.as_deref(), &mut headers);
    if allowed.is_none() {
        pagi::http::Response::text(403, "origin not allowed\n")
            .with_headers(headers)
            .send(&send)
            .await?;
        return Ok(());
    }
    headers.push("access-control-allow-methods", policy.methods.clone());
    if let Some(h) = policy.headers.clone().or(asked) {
        headers.push("access-control-allow-headers", h);
    }
    if let Some(age) = policy.max_age {
        headers.push("access-control-max-age", age.to_string());
    }
    pagi::http::Response::new(204)
        .with_headers(headers)
        .send(&send)
        .await?;
    Ok(())
}
