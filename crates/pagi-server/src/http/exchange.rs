//! One HTTP request/response exchange: the app's receive source, its send
//! sink, and the response body hyper pulls from. The app future is driven
//! from inside hyper's connection task (no task per request); if hyper drops
//! it early (client gone, or the app still running after the response
//! ended) the rest of the app is moved to a task of its own, where its
//! `receive` returns `http.disconnect` and its sends are no-ops.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use pagi::{
    Body, BoxError, BoxFuture, Connection, EventSink, EventSource, Headers, ReceiveEvent,
    SendError, SendEvent, Transport,
};

use crate::ctx::{LiveGuard, RequestGuard};
use crate::wire::response::{header_map, response_head, Head};

/// How far the app got with its response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Progress {
    /// No `http.response.start` yet.
    #[default]
    NotStarted,
    /// Started: body events may follow (and then trailers, if announced).
    Body { trailers: bool },
    /// The body (and the trailers) are all queued.
    Done,
}

/// Whether the exchange still talks to the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Link {
    #[default]
    Open,
    /// The client is gone, or the exchange was abandoned: sends are no-ops.
    Closed,
    /// The server gave up on the request because of the client (413: body
    /// too large, 408: body stalled). This status answers it if no response
    /// started; otherwise the connection is cut.
    Refused(StatusCode),
}

#[derive(Default)]
struct Inner {
    head: Option<Head>,
    progress: Progress,
    link: Link,
    frames: Frames,
    /// The task polling the app (service future or response body).
    driver: Option<Waker>,
    /// An app waiting in `receive` for the end of the exchange.
    receiver: Option<Waker>,
    /// SSE keepalive: interval and the comment to send; `keepalive_gen`
    /// tells the response body it changed.
    keepalive: Option<(Duration, Bytes)>,
    keepalive_gen: u64,
    /// SSE: `sse_idle_timeout`, and when the app last sent something.
    idle_limit: Option<Duration>,
    last_send: Option<tokio::time::Instant>,
    /// The request's header map, emptied, for the response head: hyper
    /// keeps a response's map for parsing the next request, so one
    /// allocation serves a keep-alive connection's every request.
    spare_headers: Option<HeaderMap>,
}

impl Inner {
    /// The state of a fresh exchange, field by field (the pattern names
    /// every field, so a new one cannot be forgotten): cheaper than dropping
    /// and rebuilding it, and the frame queue keeps its room.
    fn reset(&mut self, spare: HeaderMap) {
        let Inner {
            head,
            progress,
            link,
            frames,
            driver,
            receiver,
            keepalive,
            keepalive_gen,
            idle_limit,
            last_send,
            spare_headers,
        } = self;
        *head = None;
        *progress = Progress::NotStarted;
        *link = Link::Open;
        frames.clear();
        *driver = None;
        *receiver = None;
        *keepalive = None;
        *keepalive_gen = 0;
        *idle_limit = None;
        *last_send = None;
        *spare_headers = Some(spare);
    }

    fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }
}

/// The response frames queued for hyper, in order, and the bytes of their
/// data. The first one is held inline: most responses are a single body
/// chunk, which then costs no allocation. (Bounded by the transport's
/// watermarks, like every send.)
#[derive(Default)]
struct Frames {
    first: Option<Frame<Bytes>>,
    rest: VecDeque<Frame<Bytes>>,
    bytes: usize,
}

impl Frames {
    fn push_back(&mut self, f: Frame<Bytes>) {
        if let Some(d) = f.data_ref() {
            self.bytes += d.len();
        }
        if self.first.is_none() {
            self.first = Some(f);
        } else {
            self.rest.push_back(f);
        }
    }

    fn pop_front(&mut self) -> Option<Frame<Bytes>> {
        let f = self.first.take()?;
        self.first = self.rest.pop_front();
        if let Some(d) = f.data_ref() {
            self.bytes -= d.len();
        }
        Some(f)
    }

    fn clear(&mut self) {
        self.first = None;
        self.rest.clear();
        self.bytes = 0;
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Data bytes queued.
    fn bytes(&self) -> usize {
        self.bytes
    }

    fn all_data(&self) -> bool {
        self.first.iter().chain(&self.rest).all(Frame::is_data)
    }
}

/// State shared by the source, the sink and the response body.
pub(crate) struct Exchange {
    inner: Mutex<Inner>,
    pub(crate) conn: Connection,
    pub(crate) transport: Transport,
    protocol: &'static str,
}

impl Exchange {
    /// The exchange for the next request on a connection: `last` (the
    /// previous request's) reset in place if nothing else holds it any more
    /// (its app and response are done), or a new one. A keep-alive
    /// connection then reuses one set of allocations for all its requests.
    ///
    /// `spare_headers` (the request's map, emptied) is kept for the response
    /// head.
    pub(crate) fn recycle(
        last: Option<Arc<Self>>,
        high_water: usize,
        low_water: usize,
        protocol: &'static str,
        spare_headers: HeaderMap,
    ) -> Arc<Self> {
        if let Some(mut last) = last {
            if let Some(ex) = Arc::get_mut(&mut last) {
                if ex.conn.reset() && ex.transport.reset() {
                    ex.inner
                        .get_mut()
                        .unwrap_or_else(|e| e.into_inner())
                        .reset(spare_headers);
                    ex.protocol = protocol;
                    return last;
                }
            }
        }
        Arc::new(Exchange {
            inner: Mutex::new(Inner {
                spare_headers: Some(spare_headers),
                ..Inner::default()
            }),
            conn: Connection::new(),
            transport: Transport::new(high_water, low_water),
            protocol,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The status the server answers with because it gave up on the request
    /// (413, 408), if it did.
    pub(crate) fn refusal(&self) -> Option<StatusCode> {
        match self.lock().link {
            Link::Refused(status) => Some(status),
            _ => None,
        }
    }

    /// The client went away (or the exchange was abandoned).
    pub(crate) fn close(&self, reason: &str) {
        self.end(Link::Closed, reason);
    }

    /// The server gives up on the request because of the client: `status`
    /// answers it unless a response started (then the connection is cut).
    pub(crate) fn refuse(&self, status: StatusCode, reason: &str) {
        self.end(Link::Refused(status), reason);
    }

    fn end(&self, link: Link, reason: &str) {
        let wakers = {
            let mut inner = self.lock();
            if inner.link == Link::Open {
                inner.link = link;
            }
            inner.frames.clear();
            [inner.driver.take(), inner.receiver.take()]
        };
        self.conn.disconnect(reason);
        self.transport.close();
        wakers.into_iter().flatten().for_each(Waker::wake);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().link != Link::Open
    }

    pub(crate) fn set_keepalive(&self, interval: Duration, comment: Bytes) {
        let mut inner = self.lock();
        inner.keepalive = Some((interval, comment));
        inner.keepalive_gen += 1;
        inner.wake_driver();
    }

    /// SSE: end the stream when the app sends nothing for `limit`.
    pub(crate) fn set_idle_limit(&self, limit: Duration) {
        self.lock().idle_limit = Some(limit);
    }

    pub(crate) fn start(
        &self,
        status: u16,
        headers: Headers,
        trailers: bool,
    ) -> Result<(), SendError> {
        let mut inner = self.lock();
        if inner.link != Link::Open {
            return Ok(());
        }
        if inner.progress != Progress::NotStarted {
            return Err(SendError::new(format!(
                "{}.response.start sent twice",
                self.protocol
            )));
        }
        let map = inner.spare_headers.take().unwrap_or_default();
        let head = response_head(status, headers, map)?;
        inner.progress = Progress::Body { trailers };
        inner.head = Some(head);
        if inner.idle_limit.is_some() {
            inner.last_send = Some(tokio::time::Instant::now());
        }
        self.conn.mark_response_started();
        inner.wake_driver();
        Ok(())
    }

    pub(crate) fn push_body(&self, chunk: Bytes, more: bool) -> Result<(), SendError> {
        let mut inner = self.lock();
        if inner.link != Link::Open {
            return Ok(());
        }
        let trailers = match inner.progress {
            Progress::Body { trailers } => trailers,
            Progress::NotStarted => {
                return Err(SendError::new(format!(
                    "{}.response.body before {}.response.start",
                    self.protocol, self.protocol
                )))
            }
            Progress::Done => {
                return Err(SendError::new(
                    "response body sent after the response ended",
                ))
            }
        };
        if !chunk.is_empty() {
            inner.frames.push_back(Frame::data(chunk));
        }
        if inner.idle_limit.is_some() {
            inner.last_send = Some(tokio::time::Instant::now());
        }
        if !more && !trailers {
            inner.progress = Progress::Done;
        }
        inner.wake_driver();
        // Published under the lock so counts arrive in order.
        self.transport.set_buffered(inner.frames.bytes());
        Ok(())
    }

    fn push_trailers(&self, headers: Headers) -> Result<(), SendError> {
        let mut inner = self.lock();
        if inner.link != Link::Open {
            return Ok(());
        }
        if inner.progress != (Progress::Body { trailers: true }) {
            return Err(SendError::new(
                "http.response.trailers without http.response.start trailers=1",
            ));
        }
        let map = header_map(headers, false, HeaderMap::new())?;
        inner.frames.push_back(Frame::trailers(map));
        inner.progress = Progress::Done;
        inner.wake_driver();
        Ok(())
    }
}

/// The exchange is the app's `send` for an http scope.
impl EventSink for Exchange {
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.transport.poll_writable(cx)
    }

    fn start_send(&self, event: SendEvent) -> Result<(), SendError> {
        match event {
            SendEvent::HttpResponseStart {
                status,
                headers,
                trailers,
            } => self.start(status, headers, trailers),
            SendEvent::HttpResponseBody { body, more } => match body {
                Body::Bytes(b) => self.push_body(b, more),
                _ => Err(SendError::new(
                    "file and fh response bodies are not supported by this server yet",
                )),
            },
            SendEvent::HttpResponseTrailers { headers } => self.push_trailers(headers),
            SendEvent::HttpFullflush => Err(SendError::new("Extension not enabled: fullflush")),
            other => Err(SendError::unrecognized(&other, "http")),
        }
    }
}

/// The app's `receive` for an http exchange: the request body as
/// `http.request` events, then `http.disconnect` once the response is done
/// or the client is gone.
pub(crate) struct HttpSource {
    pub(crate) body: Incoming,
    pub(crate) ex: Arc<Exchange>,
    pub(crate) limit: u64,
    pub(crate) read: u64,
    pub(crate) body_finished: bool,
    /// Speak `sse.request`/`sse.disconnect` instead of the http events.
    pub(crate) sse: bool,
    /// `request_timeout`: the longest the app waits for the next body byte.
    pub(crate) stall_limit: Option<Duration>,
    /// Made the first time the body makes the app wait (most bodies never
    /// do: they arrive with the head).
    pub(crate) stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `stall` runs for the current wait: set when a wait starts
    /// (the app's own time between reads is not the client's stall),
    /// cleared when a chunk ends it.
    pub(crate) stall_armed: bool,
}

impl EventSource for HttpSource {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        self.poll_http(cx).map(|e| match (self.sse, e) {
            (false, e) => e,
            (true, ReceiveEvent::HttpRequest { body, more }) => {
                ReceiveEvent::SseRequest { body, more }
            }
            (true, _) => ReceiveEvent::SseDisconnect {
                reason: self
                    .ex
                    .conn
                    .disconnect_reason()
                    .unwrap_or_else(|| "client_closed".into()),
            },
        })
    }
}

impl HttpSource {
    fn poll_http(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        loop {
            if self.body_finished {
                let mut inner = self.ex.lock();
                if inner.link != Link::Open || inner.progress == Progress::Done {
                    return Poll::Ready(ReceiveEvent::HttpDisconnect);
                }
                inner.receiver = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if self.ex.is_closed() {
                self.body_finished = true;
                continue;
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => {
                    let Some(limit) = self.stall_limit else {
                        return Poll::Pending;
                    };
                    let stall = self
                        .stall
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                    if !std::mem::replace(&mut self.stall_armed, true) {
                        stall.as_mut().reset(tokio::time::Instant::now() + limit);
                    }
                    if stall.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    tracing::debug!("request body stalled for {limit:?}: closing");
                    self.body_finished = true;
                    self.ex
                        .refuse(StatusCode::REQUEST_TIMEOUT, "client_timeout");
                    return Poll::Ready(ReceiveEvent::HttpDisconnect);
                }
                Poll::Ready(None) => {
                    self.body_finished = true;
                    return Poll::Ready(ReceiveEvent::HttpRequest {
                        body: Bytes::new(),
                        more: false,
                    });
                }
                Poll::Ready(Some(Err(_))) => {
                    self.body_finished = true;
                    self.ex.close("client_closed");
                    return Poll::Ready(ReceiveEvent::HttpDisconnect);
                }
                Poll::Ready(Some(Ok(frame))) => {
                    self.stall_armed = false;
                    let Ok(data) = frame.into_data() else {
                        continue; // request trailers are not part of PAGI
                    };
                    self.read += data.len() as u64;
                    if self.limit > 0 && self.read > self.limit {
                        self.body_finished = true;
                        self.ex
                            .refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
                        return Poll::Ready(ReceiveEvent::HttpDisconnect);
                    }
                    let more = !self.body.is_end_stream();
                    self.body_finished = !more;
                    if data.is_empty() && more {
                        continue;
                    }
                    return Poll::Ready(ReceiveEvent::HttpRequest { body: data, more });
                }
            }
        }
    }
}

/// Owns the running app future. Dropping it early moves the app to a task
/// of its own (see the module docs) instead of cancelling it mid-flight.
pub(crate) struct AppDriver {
    fut: Option<BoxFuture<Result<(), BoxError>>>,
    result: Option<Result<(), BoxError>>,
    ex: Arc<Exchange>,
    /// Keeps the connection counted while the app runs.
    live: Option<LiveGuard>,
    /// Marks the request in flight for the connection's watchdog.
    _request: RequestGuard,
}

/// What the app did before the response could be built.
pub(crate) enum Outcome {
    /// The response head, and the body's exact size if the app already
    /// queued all of it (hyper then sends `Content-Length`, not chunks).
    Started(Head, Option<u64>),
    Finished(Result<(), BoxError>),
    /// The server gave up on the request (see [`Link::Refused`]); the app,
    /// if still running, continues on its own.
    Refused(StatusCode),
}

impl AppDriver {
    pub(crate) fn new(
        fut: BoxFuture<Result<(), BoxError>>,
        ex: Arc<Exchange>,
        live: LiveGuard,
        request: RequestGuard,
    ) -> Self {
        AppDriver {
            fut: Some(fut),
            result: None,
            ex,
            live: Some(live),
            _request: request,
        }
    }

    fn poll_app(&mut self, cx: &mut Context<'_>) {
        if let Some(fut) = &mut self.fut {
            let Poll::Ready(ready) = crate::app_poll::poll_app(fut, cx) else {
                return;
            };
            self.fut = None;
            self.result = Some(ready);
        }
    }

    /// Drive the app until it starts the response or finishes.
    pub(crate) fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        self.poll_app(cx);
        let mut inner = self.ex.lock();
        if let Some(head) = inner.head.take() {
            let complete = inner.progress == Progress::Done && inner.frames.all_data();
            let size = complete.then_some(inner.frames.bytes() as u64);
            return Poll::Ready(Outcome::Started(head, size));
        }
        if let Link::Refused(status) = inner.link {
            return Poll::Ready(Outcome::Refused(status));
        }
        if let Some(r) = self.result.take() {
            return Poll::Ready(Outcome::Finished(r));
        }
        inner.driver = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn exchange(&self) -> &Arc<Exchange> {
        &self.ex
    }

    /// The response body; `size` as given with [`Outcome::Started`].
    pub(crate) fn body(self, size: Option<u64>) -> AppBody {
        AppBody {
            driver: self,
            ended: false,
            hint: size,
            sse: SseTimers::default(),
        }
    }
}

impl Drop for AppDriver {
    fn drop(&mut self) {
        let Some(fut) = self.fut.take() else {
            return;
        };
        // Hyper let go before the app finished: the client left, or the
        // response ended while the app still has work to do.
        self.ex.close("client_closed");
        let live = self.live.take();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = fut.await {
                    tracing::debug!("PAGI application error after the client left: {e}");
                }
                drop(live);
            });
        }
    }
}

/// The response body hyper pulls: drives the app and yields what it sent.
pub(crate) struct AppBody {
    driver: AppDriver,
    /// The end was handed to hyper (last frame or `None`) and the request
    /// marked complete or closed: nothing left for `drop`.
    ended: bool,
    hint: Option<u64>,
    sse: SseTimers,
}

/// The response body's SSE timers: the keepalive comment (its interval and
/// comment stay in `Inner`) and the idle timeout.
#[derive(Default)]
struct SseTimers {
    /// The `Inner::keepalive_gen` the keepalive timer was set up for.
    gen: u64,
    keepalive: Option<Pin<Box<tokio::time::Sleep>>>,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A body dropped before it handed out its end: complete if everything was
/// queued and taken (e.g. an empty body of known length, which hyper never
/// polls), otherwise the client went away.
impl Drop for AppBody {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let ex = &self.driver.ex;
        let delivered = {
            let inner = ex.lock();
            if inner.link != Link::Open {
                return;
            }
            inner.progress == Progress::Done && inner.frames.is_empty()
        };
        if delivered {
            ex.conn.mark_complete();
        } else if self.driver.fut.is_none() {
            // (An app still running is handled by the driver's own drop.)
            ex.close("client_closed");
        }
    }
}

impl SseTimers {
    /// Queue the keepalive comment each time its interval elapses.
    fn poll_keepalive(&mut self, inner: &mut Inner, cx: &mut Context<'_>) {
        if inner.keepalive_gen != self.gen {
            self.gen = inner.keepalive_gen;
            self.keepalive = match &inner.keepalive {
                Some((every, _)) if !every.is_zero() => Some(Box::pin(tokio::time::sleep(*every))),
                _ => None,
            };
        }
        let (Some(timer), Some((every, comment))) = (&mut self.keepalive, &inner.keepalive) else {
            return;
        };
        while timer.as_mut().poll(cx).is_ready() {
            if matches!(inner.progress, Progress::Body { .. }) && inner.link == Link::Open {
                inner.frames.push_back(Frame::data(comment.clone()));
            }
            timer.as_mut().reset(tokio::time::Instant::now() + *every);
        }
    }

    /// Whether the app sent nothing for `sse_idle_timeout` (keepalive
    /// comments do not count).
    fn idle_expired(&mut self, inner: &Inner, cx: &mut Context<'_>) -> bool {
        let (Some(limit), Some(last)) = (inner.idle_limit, inner.last_send) else {
            return false;
        };
        let deadline = last + limit;
        let timer = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

impl HttpBody for AppBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        this.driver.poll_app(cx);
        let ex = &this.driver.ex;
        let mut inner = ex.lock();
        this.sse.poll_keepalive(&mut inner, cx);
        if let Some(frame) = inner.frames.pop_front() {
            ex.transport.set_buffered(inner.frames.bytes());
            // hyper does not poll a body of known length after its last
            // frame, so the last frame is where the response completes.
            let last = inner.progress == Progress::Done && inner.frames.is_empty();
            drop(inner);
            if last {
                this.ended = true;
                ex.conn.mark_complete();
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Link::Refused(status) = inner.link {
            drop(inner);
            this.ended = true;
            // An error makes hyper drop the connection without the
            // terminating chunk: the response cannot be finished honestly.
            return Poll::Ready(Some(Err(format!("request refused ({status})").into())));
        }
        if this.sse.idle_expired(&inner, cx) {
            drop(inner);
            tracing::debug!("SSE idle timeout - closing the stream");
            ex.close("idle_timeout");
            this.ended = true;
            return Poll::Ready(None);
        }
        if inner.progress == Progress::Done || inner.link == Link::Closed {
            drop(inner);
            this.ended = true;
            ex.conn.mark_complete();
            return Poll::Ready(None);
        }
        match this.driver.result.take() {
            Some(Err(e)) => {
                drop(inner);
                tracing::error!("PAGI application error (after response started): {e}");
                this.ended = true;
                ex.close("server_error");
                // An error frame makes hyper drop the connection without
                // the terminating chunk: the client sees a truncated body.
                Poll::Ready(Some(Err(e)))
            }
            Some(Ok(())) => {
                // The app returned: its response is finished.
                inner.progress = Progress::Done;
                drop(inner);
                this.ended = true;
                ex.conn.mark_complete();
                Poll::Ready(None)
            }
            None => {
                inner.driver = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.hint {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_exchange_state_is_fresh() {
        let mut inner = Inner {
            head: Some(response_head(200, Headers::new(), HeaderMap::new()).unwrap()),
            progress: Progress::Done,
            link: Link::Refused(StatusCode::PAYLOAD_TOO_LARGE),
            keepalive: Some((Duration::from_secs(1), Bytes::from_static(b":\n"))),
            keepalive_gen: 3,
            idle_limit: Some(Duration::from_secs(1)),
            last_send: Some(tokio::time::Instant::now()),
            ..Inner::default()
        };
        inner
            .frames
            .push_back(Frame::data(Bytes::from_static(b"a")));
        inner
            .frames
            .push_back(Frame::data(Bytes::from_static(b"b")));
        let mut spare = HeaderMap::new();
        spare.reserve(8);
        inner.reset(spare);
        assert!(inner.head.is_none() && inner.frames.is_empty() && inner.keepalive.is_none());
        assert_eq!(
            (inner.progress, inner.link),
            (Progress::NotStarted, Link::Open)
        );
        assert!(inner.idle_limit.is_none() && inner.last_send.is_none());
        assert_eq!((inner.frames.bytes(), inner.keepalive_gen), (0, 0));
        assert!(inner.spare_headers.is_some_and(|m| m.capacity() >= 8));
    }

    #[test]
    fn frames_keep_their_order_and_count_their_bytes() {
        let mut q = Frames::default();
        assert!(q.pop_front().is_none() && q.all_data());
        for i in 0..5u8 {
            q.push_back(Frame::data(Bytes::from(vec![i; usize::from(i) + 1])));
        }
        assert_eq!(q.bytes(), 1 + 2 + 3 + 4 + 5);
        assert_eq!(q.pop_front().unwrap().into_data().unwrap()[0], 0);
        assert_eq!(q.bytes(), 2 + 3 + 4 + 5);
        q.push_back(Frame::trailers(HeaderMap::new()));
        assert!(!q.all_data());
        let rest: Vec<bool> = std::iter::from_fn(|| q.pop_front())
            .map(|f| f.is_data())
            .collect();
        assert_eq!(rest, [true, true, true, true, false]);
        assert_eq!(q.bytes(), 0);
        q.push_back(Frame::data(Bytes::from_static(b"x")));
        q.clear();
        assert!(q.pop_front().is_none());
        assert_eq!(q.bytes(), 0);
    }
}
