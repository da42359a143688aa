//! A PAGI app as a tower service.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;

use crate::headers::{to_map, to_pagi};
use http_body::{Body, Frame, SizeHint};
use pagi::server::{ConnectionControl, TransportControl};
use pagi::{
    BoxError, BoxFuture, EventSink, EventSource, Headers, HttpScope, HttpVersion, ReceiveEvent,
    Receiver, RequestInfo, Scope, SendError, SendEvent, Sender, SharedApp, State,
};
use tokio::sync::oneshot;
use tower_service::Service;

/// A PAGI app as a `tower::Service<http::Request<B>>`: nest it in an axum
/// `Router` (`Router::nest_service`, `fallback_service`) or serve it with
/// any hyper server. One app call per request, on a task of its own; the
/// response head goes out with the first body event (as ASGI servers do),
/// so a whole response gets a `Content-Length`.
///
/// Requests whose `Accept` asks for `text/event-stream` get an `sse` scope.
/// The response body is queued up to `high_water_mark` bytes (default
/// 64 KiB): the app's `send` then waits until hyper has taken it below
/// `low_water_mark` (16 KiB). Dropping the response body (the client left)
/// ends the request: `receive` returns the disconnect (`client_closed`) and
/// `send.closed()` resolves.
#[derive(Clone)]
pub struct PagiService {
    app: SharedApp,
    state: Option<State>,
    root_path: String,
    scheme: &'static str,
    high_water_mark: usize,
    low_water_mark: usize,
}

impl std::fmt::Debug for PagiService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagiService")
            .field("state", &self.state)
            .field("root_path", &self.root_path)
            .field("scheme", &self.scheme)
            .field("high_water_mark", &self.high_water_mark)
            .field("low_water_mark", &self.low_water_mark)
            .finish_non_exhaustive()
    }
}

impl PagiService {
    /// Serve `app`.
    pub fn new(app: SharedApp) -> Self {
        PagiService {
            app,
            state: None,
            root_path: String::new(),
            scheme: "http",
            high_water_mark: 64 * 1024,
            low_water_mark: 16 * 1024,
        }
    }

    /// The lifespan-style state every request scope gets a copy of (the
    /// host runs no lifespan; fill it yourself).
    pub fn with_state(mut self, state: State) -> Self {
        self.state = Some(state);
        self
    }

    /// The prefix the host mounted this service under (default none).
    /// axum's `nest_service("/live", ..)` strips `/live` from the path
    /// before the service sees it; given the same prefix here, the app sees
    /// `root_path` `/live` and the whole `path` (`/live/...`), as behind a
    /// mount on pagi-server, and routes on `route_path()`.
    ///
    /// ```
    /// # fn app() -> pagi::SharedApp { pagi::app_fn(|_, _, _| async { Ok::<(), pagi::BoxError>(()) }) }
    /// let service = pagi_tower::PagiService::new(app()).with_root_path("/live");
    /// let router: axum::Router = axum::Router::new().nest_service("/live", service);
    /// ```
    ///
    /// The prefix is a decoded path (`/café`, not `/caf%C3%A9`); a missing
    /// leading `/` is added and trailing ones are dropped. axum hands a
    /// request for the bare prefix (`/live`) over as `/`: the app sees
    /// `/live/`.
    pub fn with_root_path(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let trimmed = prefix.trim_matches('/');
        self.root_path = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// The scope's `scheme` when the request URI has none (HTTP/1.1 sends
    /// only the path): `true` for `https`, when the host terminates TLS.
    /// Default `http`; an HTTP/2 request's own `:scheme` wins.
    pub fn with_https(mut self, https: bool) -> Self {
        self.scheme = if https { "https" } else { "http" };
        self
    }

    /// Outbound queue marks: `send` waits from `high` until below `low`.
    pub fn with_watermarks(mut self, high: usize, low: usize) -> Self {
        self.high_water_mark = high;
        self.low_water_mark = low;
        self
    }
}

impl<B> Service<http::Request<B>> for PagiService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<ResponseBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let headers = to_pagi(&parts.headers);
        let sse = pagi::sse_wire::wants_event_stream(&headers);
        let (head_tx, head_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                stage: Stage::Init,
                head: None,
                head_tx: Some(head_tx),
                frames: VecDeque::new(),
                bytes: 0,
                failed: false,
                body_waker: None,
                keepalive: None,
            }),
            conn: ConnectionControl::new(),
            transport: TransportControl::new(self.high_water_mark, self.low_water_mark),
            sse,
        });
        let scope = scope_of(self, &parts, headers, &shared);
        let scope = if sse {
            Scope::Sse(Box::new(scope))
        } else {
            Scope::Http(Box::new(scope))
        };
        let receive = Receiver::new(Source {
            body: Some(Box::pin(body)),
            shared: shared.clone(),
        });
        let app = self.app.call(scope, receive, Sender::new(shared.clone()));
        let task_shared = shared.clone();
        tokio::spawn(async move {
            // A panicking app counts as a failed one (the guard reports it
            // while unwinding), so the request never hangs on it.
            let returned = AppReturn(Some(task_shared));
            let failed = app.await.is_err();
            returned.report(failed);
        });
        Box::pin(async move {
            // Until the head is here, dropping this future (a reset
            // stream, a timeout layer) is the client leaving.
            let waiting = Waiting(Some(shared));
            let head = head_rx.await.ok();
            let shared = waiting.done();
            Ok(match head {
                Some((status, headers)) => {
                    let body = ResponseBody {
                        shared,
                        keepalive: None,
                        finished: false,
                    };
                    let mut response = http::Response::new(body);
                    *response.status_mut() = status;
                    *response.headers_mut() = headers;
                    response
                }
                None => {
                    // The app ended (or failed) without a response.
                    shared.end(Some("server_error"));
                    let body = ResponseBody {
                        shared,
                        keepalive: None,
                        finished: true,
                    };
                    let mut response = http::Response::new(body);
                    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                    response
                }
            })
        })
    }
}

/// Reports the app's end to the exchange, also when it panicked.
struct AppReturn(Option<Arc<Shared>>);

impl AppReturn {
    fn report(mut self, failed: bool) {
        if let Some(shared) = self.0.take() {
            shared.app_returned(failed);
        }
    }
}

impl Drop for AppReturn {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.app_returned(true);
        }
    }
}

/// The service future waiting for the head; dropped early, it ends the
/// exchange for the app (`client_closed`).
struct Waiting(Option<Arc<Shared>>);

impl Waiting {
    fn done(mut self) -> Arc<Shared> {
        self.0.take().expect("taken once")
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.end(Some("client_closed"));
        }
    }
}

fn scope_of(
    service: &PagiService,
    parts: &http::request::Parts,
    headers: Headers,
    shared: &Shared,
) -> HttpScope {
    let root = &service.root_path;
    let (path, raw_path) = mounted(root, parts.uri.path());
    HttpScope {
        info: RequestInfo {
            http_version: match parts.version {
                http::Version::HTTP_10 => HttpVersion::Http10,
                http::Version::HTTP_2 => HttpVersion::Http2,
                _ => HttpVersion::Http11,
            },
            scheme: match parts.uri.scheme() {
                Some(s) if *s == http::uri::Scheme::HTTPS => "https".into(),
                Some(_) => "http".into(),
                None => service.scheme.into(),
            },
            root_path: root.clone(),
            path,
            raw_path,
            query_string: Bytes::copy_from_slice(parts.uri.query().unwrap_or("").as_bytes()),
            headers,
            client: parts.extensions.get::<crate::ClientAddr>().map(|c| c.0),
            state: service.state.clone(),
            transport: Some(shared.transport.view()),
            ..RequestInfo::default()
        },
        method: parts.method.as_str().to_owned().into(),
        connection: shared.conn.view(),
    }
}

/// Characters a path segment cannot carry as they are.
const PATH_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The scope's decoded `path` and `raw_path` for a request to `uri_path`
/// (raw, as the host passed it) under the mount point `root` (decoded).
fn mounted(root: &str, uri_path: &str) -> (String, Bytes) {
    let decoded = percent_encoding::percent_decode_str(uri_path).decode_utf8_lossy();
    let path = format!("{root}{decoded}");
    let raw = format!(
        "{}{uri_path}",
        percent_encoding::utf8_percent_encode(root, PATH_ESCAPES)
    );
    (path, Bytes::from(raw))
}

/// Where the app is in its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Nothing sent yet.
    Init,
    /// `http.response.start` sent: body events follow (then trailers, if
    /// announced).
    Body { trailers: bool },
    /// The body ended; the announced trailers are due.
    Trailers,
    /// `sse.start` sent: events follow.
    Events,
    /// `sse.http.response.start` sent: its body follows.
    Declined,
    /// The response is all queued.
    Done,
}

type Head = (http::StatusCode, HeaderMap);

struct Inner {
    stage: Stage,
    /// The head, held until the first body event (or the end).
    head: Option<Head>,
    head_tx: Option<oneshot::Sender<Head>>,
    frames: VecDeque<Frame<Bytes>>,
    /// Data bytes in `frames`.
    bytes: usize,
    /// The app failed after its response started: the body ends in error.
    failed: bool,
    body_waker: Option<Waker>,
    /// SSE keepalive: interval and comment bytes, and a generation.
    keepalive: Option<(Duration, Bytes, u64)>,
}

impl Inner {
    /// Hand the head to the service future (once).
    fn release_head(&mut self) {
        if let (Some(head), Some(tx)) = (self.head.take(), self.head_tx.take()) {
            let _ = tx.send(head);
        }
    }

    fn wake_body(&mut self) {
        if let Some(w) = self.body_waker.take() {
            w.wake();
        }
    }

    fn push(&mut self, frame: Frame<Bytes>) {
        if let Some(d) = frame.data_ref() {
            self.bytes += d.len();
        }
        self.frames.push_back(frame);
        self.wake_body();
    }
}

struct Shared {
    inner: Mutex<Inner>,
    conn: ConnectionControl,
    transport: TransportControl,
    sse: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn app_returned(&self, failed: bool) {
        let mut inner = self.lock();
        match inner.stage {
            // No response: the service future answers 500.
            Stage::Init => {
                inner.head_tx = None;
            }
            Stage::Done => {}
            // Failed before anything was committed: the future answers 500.
            _ if failed && inner.head_tx.is_some() => {
                inner.head = None;
                inner.head_tx = None;
            }
            _ if failed => inner.failed = true,
            _ => {
                inner.stage = Stage::Done;
                inner.release_head();
            }
        }
        inner.wake_body();
    }

    /// The exchange is over for the app: complete (`None`) or disconnected
    /// for `reason`; either way its sends turn into no-ops.
    fn end(&self, disconnect: Option<&'static str>) {
        match disconnect {
            None => self.conn.mark_complete(),
            Some(reason) => self.conn.disconnect(reason),
        }
        self.transport.close();
    }

    fn start(
        &self,
        inner: &mut Inner,
        status: u16,
        headers: &Headers,
        next: Stage,
    ) -> Result<(), SendError> {
        let status = http::StatusCode::from_u16(status)
            .ok()
            .filter(|s| !s.is_informational())
            .ok_or_else(|| SendError::invalid(format!("Invalid status code {status}")))?;
        let map = to_map(headers, "header")?;
        inner.head = Some((status, map));
        inner.stage = next;
        self.conn.mark_response_started();
        if next == Stage::Events {
            inner.release_head(); // an event stream's head goes out at once
        }
        Ok(())
    }

    fn body(&self, inner: &mut Inner, data: Bytes, more: bool, trailers: bool) {
        if !data.is_empty() {
            inner.push(Frame::data(data));
        }
        if !more {
            inner.stage = if trailers {
                Stage::Trailers
            } else {
                Stage::Done
            };
            if !trailers {
                inner.wake_body();
            }
        }
        inner.release_head();
        self.transport.set_buffered(inner.bytes);
    }
}

impl EventSink for Shared {
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.transport.poll_writable(cx)
    }

    fn start_send(&self, event: SendEvent) -> Result<(), SendError> {
        if self.transport.is_closed() {
            return Ok(()); // the client left: a no-op
        }
        let protocol = if self.sse { "sse" } else { "http" };
        let mut inner = self.lock();
        let type_name = event.type_name();
        let wrong_time = || SendError::out_of_order(format!("'{type_name}' is out of order here"));
        match (event, inner.stage, self.sse) {
            (
                SendEvent::HttpResponseStart {
                    status,
                    headers,
                    trailers,
                },
                Stage::Init,
                false,
            ) => self.start(&mut inner, status, &headers, Stage::Body { trailers }),
            (SendEvent::HttpResponseBody { body, more }, Stage::Body { trailers }, false) => {
                let pagi::Body::Bytes(data) = body else {
                    return Err(SendError::not_offered("file bodies in pagi-tower"));
                };
                self.body(&mut inner, data, more, trailers && !more);
                Ok(())
            }
            (SendEvent::HttpResponseTrailers { headers }, Stage::Trailers, false) => {
                inner.push(Frame::trailers(to_map(&headers, "trailer")?));
                inner.stage = Stage::Done;
                inner.release_head();
                Ok(())
            }
            (SendEvent::SseStart { status, headers }, Stage::Init, true) => {
                let mut headers = headers;
                pagi::sse_wire::add_default_headers(&mut headers);
                self.start(&mut inner, status, &headers, Stage::Events)
            }
            (
                SendEvent::SseSend {
                    event,
                    data,
                    id,
                    retry,
                },
                Stage::Events,
                true,
            ) => {
                let frame =
                    pagi::sse_wire::format_event(event.as_deref(), &data, id.as_deref(), retry)?;
                self.body(&mut inner, frame, true, false);
                Ok(())
            }
            (SendEvent::SseComment { comment }, Stage::Events, true) => {
                self.body(
                    &mut inner,
                    pagi::sse_wire::format_comment(&comment),
                    true,
                    false,
                );
                Ok(())
            }
            (SendEvent::SseKeepalive { interval, comment }, Stage::Init | Stage::Events, true) => {
                let generation = inner.keepalive.as_ref().map_or(0, |k| k.2) + 1;
                inner.keepalive = Some((
                    interval,
                    pagi::sse_wire::format_comment(&comment),
                    generation,
                ));
                inner.wake_body();
                Ok(())
            }
            (SendEvent::SseClose { .. }, Stage::Events, true) => {
                self.body(&mut inner, Bytes::new(), false, false);
                Ok(())
            }
            (SendEvent::SseHttpResponseStart { status, headers }, Stage::Init, true) => {
                self.start(&mut inner, status, &headers, Stage::Declined)
            }
            (SendEvent::SseHttpResponseBody { body, more }, Stage::Declined, true) => {
                self.body(&mut inner, body, more, false);
                Ok(())
            }
            (SendEvent::SseClose { .. }, Stage::Done, true) => Ok(()),
            (
                e @ (SendEvent::HttpResponseStart { .. }
                | SendEvent::HttpResponseBody { .. }
                | SendEvent::HttpResponseTrailers { .. }),
                _,
                sse,
            )
            | (
                e @ (SendEvent::SseStart { .. }
                | SendEvent::SseSend { .. }
                | SendEvent::SseComment { .. }
                | SendEvent::SseKeepalive { .. }
                | SendEvent::SseClose { .. }
                | SendEvent::SseHttpResponseStart { .. }
                | SendEvent::SseHttpResponseBody { .. }),
                _,
                sse,
            ) if sse == e.type_name().starts_with("sse.") => Err(wrong_time()),
            (other, _, _) => Err(SendError::unrecognized(&other, protocol)),
        }
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.transport.poll_closed(cx)
    }

    fn is_closed(&self) -> bool {
        self.transport.is_closed()
    }
}

/// The app's `receive`: the request body, then the disconnect once the
/// response is done or the client left.
struct Source<B> {
    body: Option<Pin<Box<B>>>,
    shared: Arc<Shared>,
}

impl<B> EventSource for Source<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        let sse = self.shared.sse;
        let request = |body: Bytes, more: bool| {
            if sse {
                ReceiveEvent::SseRequest { body, more }
            } else {
                ReceiveEvent::HttpRequest { body, more }
            }
        };
        while let Some(body) = self.body.as_mut() {
            match std::task::ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let more = !body.is_end_stream();
                        if !more {
                            self.body = None;
                        }
                        return Poll::Ready(request(data, more));
                    }
                    // (Request trailers have no PAGI event: skipped.)
                }
                None => {
                    self.body = None;
                    return Poll::Ready(request(Bytes::new(), false));
                }
                Some(Err(_)) => {
                    self.body = None;
                    self.shared.end(Some("client_closed"));
                }
            }
        }
        std::task::ready!(self.shared.transport.poll_closed(cx));
        Poll::Ready(if sse {
            ReceiveEvent::SseDisconnect {
                reason: self
                    .shared
                    .conn
                    .disconnect_reason()
                    .unwrap_or_else(|| "client_closed".into()),
            }
        } else {
            ReceiveEvent::HttpDisconnect
        })
    }
}

/// The response body of a [`PagiService`] response: what the app sends,
/// as `http_body` frames.
pub struct ResponseBody {
    shared: Arc<Shared>,
    keepalive: Option<(tokio::time::Interval, Bytes, u64)>,
    finished: bool,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let shared = &this.shared;
        let mut inner = shared.lock();
        if let Some(frame) = inner.frames.pop_front() {
            if let Some(d) = frame.data_ref() {
                inner.bytes -= d.len();
            }
            shared.transport.set_buffered(inner.bytes);
            if inner.stage == Stage::Done && inner.frames.is_empty() {
                // The last frame: hyper may not poll again (a known length
                // is satisfied), so the request completes here.
                this.finished = true;
                shared.end(None);
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if inner.failed {
            this.finished = true;
            shared.end(Some("server_error"));
            return Poll::Ready(Some(Err("the PAGI app failed during its response".into())));
        }
        if inner.stage == Stage::Done {
            this.finished = true;
            shared.end(None);
            return Poll::Ready(None);
        }
        inner.body_waker = Some(cx.waker().clone());
        // SSE keepalive comments, on the body's own clock, while the
        // event stream runs (never into a declining response). The
        // setting is copied out only when its generation changed.
        let current = this.keepalive.as_ref().map(|k| k.2);
        let changed = if inner.stage == Stage::Events {
            inner
                .keepalive
                .as_ref()
                .filter(|k| Some(k.2) != current)
                .cloned()
        } else {
            this.keepalive = None;
            None
        };
        drop(inner);
        if let Some((interval, comment, generation)) = changed {
            // A new setting: restart the clock (a zero interval stops it).
            this.keepalive = (!interval.is_zero()).then(|| {
                let start = tokio::time::Instant::now() + interval;
                let mut timer = tokio::time::interval_at(start, interval);
                timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                (timer, comment, generation)
            });
        }
        if let Some((timer, comment, _)) = this.keepalive.as_mut() {
            if timer.poll_tick(cx).is_ready() {
                return Poll::Ready(Some(Ok(Frame::data(comment.clone()))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.finished || {
            let inner = self.shared.lock();
            inner.stage == Stage::Done && inner.frames.is_empty()
        }
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.shared.lock();
        let whole = inner.stage == Stage::Done && inner.frames.iter().all(Frame::is_data);
        if whole {
            SizeHint::with_exact(inner.bytes as u64)
        } else {
            SizeHint::default()
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if !self.finished {
            // A response the app finished was all hyper wanted (a HEAD, a
            // known length); otherwise hyper let go early: the client left.
            let done = {
                let inner = self.shared.lock();
                inner.stage == Stage::Done && !inner.failed
            };
            self.shared
                .end(if done { None } else { Some("client_closed") });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_a_mount_point() {
        assert_eq!(
            mounted("", "/a%20b"),
            ("/a b".into(), Bytes::from("/a%20b"))
        );
        assert_eq!(
            mounted("/live", "/x"),
            ("/live/x".into(), Bytes::from("/live/x"))
        );
        assert_eq!(
            mounted("/café 1", "/x%2Fy"),
            ("/café 1/x/y".into(), Bytes::from("/caf%C3%A9%201/x%2Fy"))
        );
        let app = pagi::app_fn(|_, _, _| async { Ok::<(), pagi::BoxError>(()) });
        for (given, root) in [("live", "/live"), ("/live/", "/live"), ("/", ""), ("", "")] {
            let s = PagiService::new(app.clone()).with_root_path(given);
            assert_eq!(s.root_path, root, "{given:?}");
        }
    }
}
