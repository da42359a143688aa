//! mini-framework – "Nano": a web framework in some sixty lines, and an
//! app built with it.
//!
//! PAGI is deliberately low level: an app is one async function that gets
//! the raw scope and event stream. Frameworks are layered on top, and the
//! layer can be thin. [`Nano`] routes on method and path patterns whose
//! `:name` segments capture parameters, gives the handler a [`Request`]
//! (the parameters and the whole body), sends the [`Response`] it returns,
//! and answers `404` when no route matches. Handlers are async, so a slow
//! one (`/slow/:n` sleeps `n` ms) holds up only its own request.
//!
//! Routes: `GET /`, `GET /hello/:name`, `GET /slow/:n`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pagi::{BoxError, BoxFuture, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

// ----------------------------------------------------------------- Nano ---

/// What a handler gets: the route's path parameters and the request body.
#[derive(Debug)]
pub struct Request {
    /// Values of the route's `:name` segments (percent-decoded).
    pub params: HashMap<String, String>,
    /// The whole request body.
    pub body: Vec<u8>,
}

/// What a handler returns: a status and a plain-text body.
#[derive(Debug)]
pub struct Response(pub u16, pub String);

type Handler = Box<dyn Fn(Request) -> BoxFuture<Response> + Send + Sync>;

/// A router: routes are tried in the order they were added.
#[derive(Default)]
pub struct Nano(Vec<(&'static str, Vec<&'static str>, Handler)>);

impl std::fmt::Debug for Nano {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes: Vec<_> = self
            .0
            .iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        f.debug_struct("Nano").field("routes", &routes).finish()
    }
}

impl Nano {
    /// Add a route: a method, a path pattern whose `:name` segments
    /// capture, and an async handler.
    pub fn route<F, Fut>(mut self, method: &'static str, pattern: &'static str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let handler: Handler = Box::new(move |req| Box::pin(handler(req)));
        self.0.push((method, segments(pattern).collect(), handler));
        self
    }

    fn find(&self, method: &str, path: &str) -> Option<(&Handler, HashMap<String, String>)> {
        let path: Vec<&str> = segments(path).collect();
        self.0.iter().find_map(|(m, pattern, handler)| {
            let mut params = HashMap::new();
            let fits = *m == method
                && pattern.len() == path.len()
                && pattern
                    .iter()
                    .zip(&path)
                    .all(|(p, s)| match p.strip_prefix(':') {
                        Some(name) => params.insert(name.to_owned(), s.to_string()).is_none(),
                        None => p == s,
                    });
            fits.then_some((handler, params))
        })
    }

    /// Serve one PAGI connection (HTTP only): read the body, route, respond.
    pub async fn dispatch(
        &self,
        scope: Scope,
        mut receive: Receiver,
        send: Sender,
    ) -> Result<(), BoxError> {
        let Scope::Http(http) = scope else {
            return Err(pagi::unsupported_scope(&scope));
        };
        let mut body = Vec::new();
        while let ReceiveEvent::HttpRequest { body: chunk, more } = receive.recv().await {
            body.extend_from_slice(&chunk);
            if !more {
                break;
            }
        }
        let Response(status, text) = match self.find(&http.method, &http.path) {
            Some((handler, params)) => handler(Request { params, body }).await,
            None => Response(404, format!("Not found: {}\n", http.path)),
        };
        let headers = Headers::new()
            .with("content-type", "text/plain; charset=utf-8")
            .with("content-length", text.len().to_string());
        send.send(SendEvent::response_start(status, headers))
            .await?;
        send.send(SendEvent::response_body(text, false)).await?;
        Ok(())
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

// ------------------------------------------------------------- the app ---

/// The app's routes.
pub fn routes() -> Nano {
    Nano::default()
        .route("GET", "/", |_| async {
            Response(
                200,
                "Hello from Nano! Try /hello/yourname or /slow/500\n".into(),
            )
        })
        .route("GET", "/hello/:name", |req| async move {
            Response(200, format!("Hello, {}!\n", req.params["name"]))
        })
        .route("GET", "/slow/:n", |req| async move {
            match req.params["n"].parse::<u64>() {
                Ok(ms) if ms <= 10_000 => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Response(200, format!("Slept {ms} ms\n"))
                }
                _ => Response(
                    400,
                    "n must be a number of milliseconds, at most 10000\n".into(),
                ),
            }
        })
}

/// The app: the routes, built once, serving every request.
pub async fn app(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    static NANO: OnceLock<Nano> = OnceLock::new();
    NANO.get_or_init(routes)
        .dispatch(scope, receive, send)
        .await
}
