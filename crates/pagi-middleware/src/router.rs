//! Routing by path: prefix mounts and patterns with parameters.

use std::fmt;
use std::sync::Arc;

use pagi::{App, BoxError, BoxFuture, Headers, Receiver, Scope, Sender, SharedApp, StateKey};

/// The `:name` segments a [`Router`] route matched, percent-decoded (the
/// scope's `path` already is), in pattern order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathParams(Vec<(String, String)>);

impl PathParams {
    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All parameters, in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Where a [`Router`] puts the parameters, in the scope's `custom` keys.
const PATH_PARAMS: StateKey<PathParams> = StateKey::new("pagi.path_params");

/// The path parameters the router matched for this scope.
pub fn path_params(scope: &Scope) -> Option<Arc<PathParams>> {
    scope.info()?.custom.value(&PATH_PARAMS)
}

enum Target {
    /// Everything under a prefix (segment-wise): `root_path` grows by it.
    Mount(Vec<String>),
    /// A whole path; `:name` segments match any one segment.
    Route {
        segments: Vec<String>,
        methods: Option<Vec<String>>,
    },
}

/// Routes a request to the first matching entry, in the order added:
/// [`Router::mount`] for a prefix, [`Router::route`] / [`Router::route_for`]
/// for a pattern. Paths are matched on the scope's route path (`path`
/// minus `root_path`, so routers nest). No match: HTTP 404, an event
/// stream declined with 404, a WebSocket refused (403); a path matched with
/// another method: 405 with `Allow`.
///
/// Lifespan goes to the app given with [`Router::lifespan`]; without one,
/// the router acknowledges startup and shutdown itself.
#[derive(Default)]
pub struct Router {
    entries: Vec<(Target, SharedApp)>,
    fallback: Option<SharedApp>,
    lifespan: Option<SharedApp>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|(t, _)| match t {
                Target::Mount(p) => format!("mount /{}", p.join("/")),
                Target::Route { segments, methods } => {
                    format!("route /{} {:?}", segments.join("/"), methods)
                }
            })
            .collect();
        f.debug_struct("Router")
            .field("entries", &entries)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

fn segments(pattern: &str) -> Vec<String> {
    pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Router::default()
    }

    /// Hand every path under `prefix` (`/static` matches `/static` and
    /// `/static/...`, not `/staticky`) to `app`, with `root_path` extended
    /// by the prefix.
    pub fn mount(mut self, prefix: &str, app: SharedApp) -> Self {
        self.entries.push((Target::Mount(segments(prefix)), app));
        self
    }

    /// Hand requests whose whole route path matches `pattern` to `app`,
    /// any method. `:name` segments match one segment each.
    pub fn route(mut self, pattern: &str, app: SharedApp) -> Self {
        self.entries.push((
            Target::Route {
                segments: segments(pattern),
                methods: None,
            },
            app,
        ));
        self
    }

    /// [`Router::route`] for the listed methods only (WebSocket scopes
    /// count as `GET`).
    pub fn route_for(mut self, methods: &[&str], pattern: &str, app: SharedApp) -> Self {
        self.entries.push((
            Target::Route {
                segments: segments(pattern),
                methods: Some(methods.iter().map(|m| m.to_ascii_uppercase()).collect()),
            },
            app,
        ));
        self
    }

    /// The app for requests nothing else matched (instead of the 404).
    pub fn fallback(mut self, app: SharedApp) -> Self {
        self.fallback = Some(app);
        self
    }

    /// The app that gets the lifespan scope.
    pub fn lifespan(mut self, app: SharedApp) -> Self {
        self.lifespan = Some(app);
        self
    }
}

/// The start of `route_path` that holds its first `segments` segments,
/// slashes as sent (`//static/a` with one segment: `//static`), so that
/// `root_path` plus what is left is still the whole path.
fn covered(route_path: &str, segments: usize) -> &str {
    if segments == 0 {
        return "";
    }
    let (mut seen, mut in_segment) = (0, false);
    for (i, b) in route_path.bytes().enumerate() {
        if b != b'/' {
            in_segment = true;
        } else if std::mem::take(&mut in_segment) {
            seen += 1;
            if seen == segments {
                return &route_path[..i];
            }
        }
    }
    route_path // the last segment runs to the end
}

/// What routing decided for one scope.
enum Decision {
    Call(SharedApp, Option<String>, PathParams),
    WrongMethod(Vec<String>),
    NotFound,
}

impl Router {
    fn decide(&self, route_path: &str, method: &str) -> Decision {
        let path: Vec<&str> = route_path.split('/').filter(|s| !s.is_empty()).collect();
        let mut allowed = Vec::new();
        for (target, app) in &self.entries {
            match target {
                Target::Mount(prefix) => {
                    if path.len() >= prefix.len() && prefix.iter().zip(&path).all(|(p, s)| p == s) {
                        let mount = covered(route_path, prefix.len()).to_owned();
                        return Decision::Call(app.clone(), Some(mount), PathParams::default());
                    }
                }
                Target::Route { segments, methods } => {
                    if segments.len() != path.len() {
                        continue;
                    }
                    let mut params = Vec::new();
                    let matched =
                        segments
                            .iter()
                            .zip(&path)
                            .all(|(pat, seg)| match pat.strip_prefix(':') {
                                Some(name) => {
                                    params.push((name.to_owned(), (*seg).to_owned()));
                                    true
                                }
                                None => pat == seg,
                            });
                    if !matched {
                        continue;
                    }
                    // HEAD is GET without the body (RFC 9110 §9.3.2).
                    let fits = |m: &String| m == method || (method == "HEAD" && m == "GET");
                    match methods {
                        Some(m) if !m.iter().any(fits) => {
                            allowed.extend(m.iter().cloned());
                        }
                        _ => return Decision::Call(app.clone(), None, PathParams(params)),
                    }
                }
            }
        }
        match &self.fallback {
            Some(app) if allowed.is_empty() => {
                Decision::Call(app.clone(), None, PathParams::default())
            }
            _ if !allowed.is_empty() => Decision::WrongMethod(allowed),
            _ => Decision::NotFound,
        }
    }
}

impl App for Router {
    fn call(
        &self,
        mut scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> BoxFuture<Result<(), BoxError>> {
        if let Scope::Lifespan(_) = scope {
            return match &self.lifespan {
                Some(app) => app.call(scope, receive, send),
                None => Box::pin(pagi::lifespan::acknowledge(receive, send)),
            };
        }
        let method = scope.method().unwrap_or("GET").to_owned();
        let decision = match scope.info() {
            Some(info) => self.decide(info.route_path(), &method),
            None => return Box::pin(async move { Err(pagi::unsupported_scope(&scope)) }),
        };
        match decision {
            Decision::Call(app, mount, params) => {
                if let Some(info) = scope.info_mut() {
                    if let Some(mount) = mount {
                        info.root_path.push_str(&mount);
                    }
                    if !params.0.is_empty() {
                        info.custom.set(&PATH_PARAMS, params);
                    }
                }
                app.call(scope, receive, send)
            }
            Decision::WrongMethod(mut allowed) => {
                if allowed.iter().any(|m| m == "GET") {
                    allowed.push("HEAD".into());
                }
                allowed.sort();
                allowed.dedup();
                let headers = Headers::new().with("allow", allowed.join(", "));
                Box::pin(refuse(
                    scope,
                    receive,
                    send,
                    405,
                    "Method Not Allowed",
                    headers,
                ))
            }
            Decision::NotFound => Box::pin(refuse(
                scope,
                receive,
                send,
                404,
                "Not Found",
                Headers::new(),
            )),
        }
    }
}

/// Answer a scope nothing handles, in its own protocol.
async fn refuse(
    scope: Scope,
    receive: Receiver,
    send: Sender,
    status: u16,
    text: &'static str,
    headers: Headers,
) -> Result<(), BoxError> {
    let answer = pagi::http::Response::text(status, format!("{text}\n")).with_headers(headers);
    match scope {
        Scope::WebSocket(_) => pagi::ws::refuse(receive, send).await?,
        Scope::Sse(_) => answer.send_declining(&send).await?,
        _ => answer.send(&send).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> SharedApp {
        pagi::app_fn(|_: Scope, _: Receiver, _: Sender| async { Ok::<(), BoxError>(()) })
    }

    fn called(d: Decision) -> (Option<String>, Vec<(String, String)>) {
        match d {
            Decision::Call(_, mount, params) => (mount, params.0),
            Decision::WrongMethod(m) => panic!("405 {m:?}"),
            Decision::NotFound => panic!("404"),
        }
    }

    #[test]
    fn mounts_match_whole_segments_and_routes_bind_parameters() {
        let r = Router::new()
            .mount("/static", app())
            .route("/users/:id/posts/:post", app())
            .route_for(&["POST"], "/login", app());
        assert_eq!(
            called(r.decide("/static/a.css", "GET")).0.as_deref(),
            Some("/static")
        );
        assert_eq!(
            called(r.decide("/static", "GET")).0.as_deref(),
            Some("/static")
        );
        assert!(matches!(r.decide("/staticky", "GET"), Decision::NotFound));
        let (_, params) = called(r.decide("/users/7/posts/x y", "GET"));
        assert_eq!(
            params,
            [("id".into(), "7".into()), ("post".into(), "x y".into())]
        );
        assert!(matches!(
            r.decide("/users/7/posts", "GET"),
            Decision::NotFound
        ));
        assert!(matches!(r.decide("/login", "GET"), Decision::WrongMethod(m) if m == ["POST"]));
        assert!(called(r.decide("/login", "POST")).1.is_empty());
        // Extra slashes stay in the mount, so root_path + rest == path.
        assert_eq!(
            called(r.decide("//static//a.css", "GET")).0.as_deref(),
            Some("//static")
        );
        assert_eq!(covered("/a/b/c", 2), "/a/b");
        assert_eq!(covered("/a/b", 2), "/a/b");
    }

    #[test]
    fn head_fits_get_routes_and_allow_lists_both() {
        let r = Router::new().route_for(&["GET"], "/x", app());
        assert!(matches!(r.decide("/x", "HEAD"), Decision::Call(..)));
        assert!(matches!(r.decide("/x", "POST"), Decision::WrongMethod(m) if m == ["GET"]));
    }
}
