//! One HTTP request/response exchange between an app and its connection:
//! the app's `receive` (the request body, then the disconnect), its `send`
//! (the response), and the state the connection reads and feeds. Nothing
//! here touches a socket: the connection hands request body pieces in when
//! the app asks for them, and takes the response head and body out.
//!
//! The app future is polled from the task that serves the exchange (the
//! HTTP/1.1 connection's own task, or hyper's task for an HTTP/2 stream;
//! no task of ours per request); if that task lets go of it early (client gone, response
//! done while the app still works), the rest of the app moves to a task
//! of its own, where its `receive` returns the disconnect and its sends
//! are no-ops.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use pagi::server::{ConnectionControl, TransportControl};
use pagi::{
    Body, BoxError, BoxFuture, EventSink, EventSource, Headers, ReceiveEvent, SendError, SendEvent,
};

use crate::ctx::LiveGuard;
use crate::wire::response::{check_final_status, check_headers, check_trailers};

/// The app's response head, checked.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) headers: Headers,
    /// `http.response.trailers` will follow the body.
    pub(crate) trailers: bool,
}

/// An open file to send as (the rest of) the body.
#[derive(Debug)]
pub(crate) struct FileBody {
    pub(crate) file: std::fs::File,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// One piece of response output, in order.
#[derive(Debug)]
pub(crate) enum Out {
    Data(Bytes),
    File(FileBody),
    Trailers(Headers),
}

impl Out {
    /// Body bytes it stands for.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Out::Data(b) => b.len() as u64,
            Out::File(f) => f.len,
            Out::Trailers(_) => 0,
        }
    }
}

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
pub(crate) enum Link {
    #[default]
    Open,
    /// The server is shutting down: the app's `receive` says so
    /// (`server_shutdown`) while its sends still go out, so it can finish
    /// its response.
    Notified,
    /// The stream is being ended cleanly by the server (an SSE stream at
    /// shutdown): what is queued goes out, then the end; the app's sends
    /// are no-ops.
    Ending,
    /// The client is gone, or the exchange was abandoned: sends are no-ops
    /// and queued output is dropped.
    Closed,
    /// The server gave up on the request because of the client (400: bad
    /// framing, 408: body stalled, 413: body too large). This status
    /// answers it if no response started; otherwise the connection is cut.
    Refused(StatusCode, &'static str),
}

/// The request body between the connection and the app's `receive`.
#[derive(Debug, Default)]
enum Input {
    /// Nothing asked for, nothing waiting.
    #[default]
    Idle,
    /// The app waits for body bytes: the connection reads them.
    Wanted,
    /// A piece for the app; `last` when it ends the body.
    Ready { data: Bytes, last: bool },
    /// All of the body went to the app.
    Finished,
}

#[derive(Default)]
struct Inner {
    head: Option<ResponseHead>,
    progress: Progress,
    link: Link,
    out: VecDeque<Out>,
    /// Body bytes in `out` (files count their length).
    out_bytes: u64,
    /// Bytes the connection took from `out` but has not written yet.
    in_flight: u64,
    input: Input,
    /// The connection's task (to read body, or write what was queued).
    driver: Option<Waker>,
    /// An app waiting in `receive`.
    receiver: Option<Waker>,
    /// SSE keepalive: interval and the comment to send; `keepalive_gen`
    /// tells the connection it changed.
    keepalive: Option<(Duration, Bytes)>,
    keepalive_gen: u64,
    /// SSE: `sse_idle_timeout`, and when the app last sent something.
    idle_limit: Option<Duration>,
    last_send: Option<tokio::time::Instant>,
}

impl Inner {
    fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    fn wake_receiver(&mut self) {
        if let Some(w) = self.receiver.take() {
            w.wake();
        }
    }

    fn push(&mut self, out: Out) {
        self.out_bytes += out.len();
        self.out.push_back(out);
    }

    /// What `buffered_amount` says: queued here plus taken, not written.
    fn buffered(&self) -> usize {
        usize::try_from(self.out_bytes + self.in_flight).unwrap_or(usize::MAX)
    }
}

/// State shared by the app's handles and the connection.
pub(crate) struct Exchange {
    inner: Mutex<Inner>,
    pub(crate) conn: ConnectionControl,
    pub(crate) transport: TransportControl,
    protocol: &'static str,
}

impl Exchange {
    /// A new exchange; `protocol` (`http` or `sse`) words the app's errors.
    pub(crate) fn new(transport: TransportControl, protocol: &'static str) -> Arc<Self> {
        Arc::new(Exchange {
            inner: Mutex::new(Inner::default()),
            conn: ConnectionControl::new(),
            transport,
            protocol,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics under this lock; recover rather than propagate.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- the connection's side ------------------------------------------

    /// The link's state.
    pub(crate) fn link(&self) -> Link {
        self.lock().link
    }

    /// The client went away (or the exchange was abandoned), for `reason`.
    pub(crate) fn close(&self, reason: &str) {
        self.end(Link::Closed, reason);
    }

    /// The server gives up on the request because of the client: `status`
    /// answers it unless a response started (then the connection is cut).
    pub(crate) fn refuse(&self, status: StatusCode, why: &'static str, reason: &str) {
        self.end(Link::Refused(status, why), reason);
    }

    fn end(&self, link: Link, reason: &str) {
        // The reason is set before the state flips (the spec's order).
        self.conn.disconnect(reason);
        let wakers = {
            let mut inner = self.lock();
            if matches!(inner.link, Link::Open | Link::Notified | Link::Ending) {
                inner.link = link;
            }
            inner.out.clear();
            inner.out_bytes = 0;
            [inner.driver.take(), inner.receiver.take()]
        };
        self.transport.close();
        wakers.into_iter().flatten().for_each(Waker::wake);
    }

    /// The server is shutting down. The app's `receive` reports the
    /// disconnect (`server_shutdown`). An event stream (`end_now`) is ended
    /// cleanly after what is queued; a response the app is still streaming
    /// may be finished by the app.
    pub(crate) fn shut_down(&self, end_now: bool) {
        self.conn.disconnect("server_shutdown");
        let mut inner = self.lock();
        if !matches!(inner.link, Link::Open) {
            return;
        }
        if end_now {
            inner.link = Link::Ending;
            inner.progress = Progress::Done;
        } else {
            inner.link = Link::Notified;
        }
        inner.wake_receiver();
        inner.wake_driver();
    }

    /// The response head, once the app started it (taken once).
    pub(crate) fn take_head(&self) -> Option<ResponseHead> {
        self.lock().head.take()
    }

    /// Whether the app queued its whole body (and trailers), and how many
    /// bytes that body has if it is all data in the queue.
    pub(crate) fn queued_length(&self) -> (bool, Option<u64>) {
        let inner = self.lock();
        let done = inner.progress == Progress::Done;
        let all_data = inner.out.iter().all(|o| matches!(o, Out::Data(_)));
        (done, (done && all_data).then_some(inner.out_bytes))
    }

    /// Hand the queued output, in order, to `each` (the connection); it
    /// counts as in flight until the connection says it was written.
    /// Returns whether the body (and trailers) are all queued.
    pub(crate) fn take_output(&self, mut each: impl FnMut(Out)) -> bool {
        let mut inner = self.lock();
        while let Some(out) = inner.out.pop_front() {
            each(out);
        }
        inner.in_flight += std::mem::take(&mut inner.out_bytes);
        inner.progress == Progress::Done
    }

    /// Whether output waits to be taken (an SSE keepalive queued by the
    /// timers, say).
    pub(crate) fn has_output(&self) -> bool {
        !self.lock().out.is_empty()
    }

    /// The response went out entirely: the request is complete, and the
    /// app's `receive` now returns the disconnect.
    pub(crate) fn finish(&self) {
        self.conn.mark_complete();
        let mut inner = self.lock();
        if matches!(inner.link, Link::Open | Link::Notified | Link::Ending) {
            inner.link = Link::Closed;
        }
        inner.in_flight = 0;
        self.transport.set_buffered(0);
        // Sends are no-ops from here: the app's `send.closed()` resolves.
        self.transport.close();
        inner.wake_receiver();
    }

    /// The connection wrote some of what it holds: `in_flight` is left.
    pub(crate) fn set_in_flight(&self, in_flight: u64) {
        let mut inner = self.lock();
        inner.in_flight = in_flight;
        self.transport.set_buffered(inner.buffered());
    }

    /// Register the connection's task for the app's next step (a head, a
    /// body piece, a wish for request body).
    pub(crate) fn watch(&self, cx: &Context<'_>) {
        store(&mut self.lock().driver, cx);
    }

    /// Whether the app waits for request body.
    pub(crate) fn wants_body(&self) -> bool {
        matches!(self.lock().input, Input::Wanted)
    }

    /// The app waits for body and the client sends none: after `limit`
    /// of silence (counted in `stall` from when the app started waiting)
    /// the request is refused with 408 `client_timeout`. True when it was.
    pub(crate) fn body_stalled(
        &self,
        stall: &mut Option<crate::timer::Timer>,
        limit: Option<Duration>,
        cx: &mut Context<'_>,
    ) -> bool {
        let Some(limit) = limit else {
            return false;
        };
        if !stall
            .get_or_insert_with(|| crate::timer::Timer::after(limit))
            .fired(cx)
        {
            return false;
        }
        *stall = None;
        tracing::debug!("request body stalled for {limit:?}: closing");
        self.refuse(
            StatusCode::REQUEST_TIMEOUT,
            "Request Timeout",
            "client_timeout",
        );
        true
    }

    /// Whether a body piece is waiting for the app (the connection then
    /// reads no more).
    pub(crate) fn body_pending(&self) -> bool {
        matches!(self.lock().input, Input::Ready { .. })
    }

    /// Hand the app a piece of request body (`last` ends it).
    pub(crate) fn give_body(&self, data: Bytes, last: bool) {
        let mut inner = self.lock();
        debug_assert!(!matches!(
            inner.input,
            Input::Ready { .. } | Input::Finished
        ));
        inner.input = Input::Ready { data, last };
        inner.wake_receiver();
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

    /// SSE: queue the keepalive comment when due; true when the app sent
    /// nothing for `sse_idle_timeout`.
    pub(crate) fn poll_sse_timers(&self, timers: &mut SseTimers, cx: &mut Context<'_>) -> bool {
        let mut inner = self.lock();
        timers.poll_keepalive(&mut inner, cx);
        timers.idle_expired(&inner, cx)
    }

    // ---- the app's side -------------------------------------------------

    pub(crate) fn is_closed(&self) -> bool {
        !matches!(self.lock().link, Link::Open | Link::Notified)
    }

    pub(crate) fn start(
        &self,
        status: u16,
        headers: Headers,
        trailers: bool,
    ) -> Result<(), SendError> {
        check_final_status(status)?;
        check_headers(&headers)?;
        let mut inner = self.lock();
        if !matches!(inner.link, Link::Open | Link::Notified) {
            return Ok(());
        }
        if inner.progress != Progress::NotStarted {
            return Err(SendError::out_of_order(format!(
                "{}.response.start sent twice",
                self.protocol
            )));
        }
        inner.progress = Progress::Body { trailers };
        inner.head = Some(ResponseHead {
            status,
            headers,
            trailers,
        });
        if inner.idle_limit.is_some() {
            inner.last_send = Some(tokio::time::Instant::now());
        }
        self.conn.mark_response_started();
        inner.wake_driver();
        Ok(())
    }

    /// Queue a body piece; `more == false` ends the body (unless trailers
    /// were announced).
    pub(crate) fn push_body(&self, body: Out, more: bool) -> Result<(), SendError> {
        let mut inner = self.lock();
        if !matches!(inner.link, Link::Open | Link::Notified) {
            return Ok(());
        }
        let trailers = match inner.progress {
            Progress::Body { trailers } => trailers,
            Progress::NotStarted => {
                return Err(SendError::out_of_order(format!(
                    "{}.response.body before {}.response.start",
                    self.protocol, self.protocol
                )))
            }
            Progress::Done => {
                return Err(SendError::out_of_order(
                    "response body sent after the response ended",
                ))
            }
        };
        if body.len() > 0 {
            inner.push(body);
        }
        if inner.idle_limit.is_some() {
            inner.last_send = Some(tokio::time::Instant::now());
        }
        if !more && !trailers {
            inner.progress = Progress::Done;
        }
        inner.wake_driver();
        // Published under the lock so counts arrive in order.
        self.transport.set_buffered(inner.buffered());
        Ok(())
    }

    fn push_trailers(&self, headers: Headers) -> Result<(), SendError> {
        check_trailers(&headers)?;
        let mut inner = self.lock();
        if !matches!(inner.link, Link::Open | Link::Notified) {
            return Ok(());
        }
        if inner.progress != (Progress::Body { trailers: true }) {
            return Err(SendError::out_of_order(
                "http.response.trailers without http.response.start trailers=1",
            ));
        }
        inner.push(Out::Trailers(headers));
        inner.progress = Progress::Done;
        inner.wake_driver();
        Ok(())
    }

    /// The app returned: a response it started is complete.
    pub(crate) fn app_returned(&self) {
        let mut inner = self.lock();
        if matches!(inner.progress, Progress::Body { .. }) {
            inner.progress = Progress::Done;
            inner.wake_driver();
        }
    }
}

fn store(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// Open what an `http.response.body` with `file` or `fh` names: the send
/// fails at once for a file that cannot be opened or read (the spec's
/// rule). An offset past the end sends nothing.
fn open_body(body: Body) -> Result<Out, SendError> {
    let (file, offset, length) = match body {
        Body::Bytes(b) => return Ok(Out::Data(b)),
        Body::File {
            path,
            offset,
            length,
        } => {
            let file = std::fs::File::open(&path)
                .map_err(|e| SendError::io(format!("Cannot open file {}: {e}", path.display())))?;
            (file, offset, length)
        }
        Body::Handle {
            file,
            offset,
            length,
        } => (file, offset, length),
        _ => return Err(SendError::invalid("unsupported response body")),
    };
    let meta = file
        .metadata()
        .map_err(|e| SendError::io(format!("Cannot stat file: {e}")))?;
    if !meta.is_file() {
        return Err(SendError::io("Cannot send a file body: not a regular file"));
    }
    let available = meta.len().saturating_sub(offset);
    let len = length.map_or(available, |l| l.min(available));
    Ok(Out::File(FileBody { file, offset, len }))
}

/// The exchange is the app's `send` for an http scope.
impl EventSink for Exchange {
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.transport.poll_writable(cx)
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.transport.poll_closed(cx)
    }

    fn is_closed(&self) -> bool {
        self.transport.is_closed()
    }

    fn start_send(&self, event: SendEvent) -> Result<(), SendError> {
        match event {
            SendEvent::HttpResponseStart {
                status,
                headers,
                trailers,
            } => self.start(status, headers, trailers),
            SendEvent::HttpResponseBody { body, more } => {
                // A file is the last body event (the spec's rule).
                let is_file = !matches!(body, Body::Bytes(_));
                let out = open_body(body)?;
                self.push_body(out, more && !is_file)
            }
            SendEvent::HttpResponseTrailers { headers } => self.push_trailers(headers),
            SendEvent::HttpFullflush => Err(SendError::not_offered("fullflush")),
            other => Err(SendError::unrecognized(&other, "http")),
        }
    }
}

/// The app's `receive` for an exchange: the request body as `http.request`
/// (`sse.request`) events, then `http.disconnect` (`sse.disconnect`) once
/// the response is done or the client is gone.
pub(crate) struct HttpSource {
    pub(crate) ex: Arc<Exchange>,
    /// Speak `sse.request`/`sse.disconnect` instead of the http events.
    pub(crate) sse: bool,
    body_finished: bool,
}

impl HttpSource {
    pub(crate) fn new(ex: Arc<Exchange>, sse: bool) -> Self {
        HttpSource {
            ex,
            sse,
            body_finished: false,
        }
    }
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
        let mut inner = self.ex.lock();
        if inner.link != Link::Open {
            self.body_finished = true;
            return Poll::Ready(ReceiveEvent::HttpDisconnect);
        }
        if self.body_finished {
            // Until the response is out (`finish`) or the client leaves.
            store(&mut inner.receiver, cx);
            return Poll::Pending;
        }
        match std::mem::take(&mut inner.input) {
            Input::Ready { data, last } => {
                inner.input = if last { Input::Finished } else { Input::Idle };
                self.body_finished = last;
                Poll::Ready(ReceiveEvent::HttpRequest {
                    body: data,
                    more: !last,
                })
            }
            Input::Finished => {
                inner.input = Input::Finished;
                self.body_finished = true;
                drop(inner);
                self.poll_http(cx)
            }
            Input::Idle | Input::Wanted => {
                inner.input = Input::Wanted;
                store(&mut inner.receiver, cx);
                inner.wake_driver();
                Poll::Pending
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
    /// Keeps the server waiting for the app, and whatever else must last
    /// as long as it (an HTTP/2 stream's place in its connection's count),
    /// wherever the app ends up running.
    live: Option<(LiveGuard, Option<Box<dyn Any + Send>>)>,
}

impl AppDriver {
    pub(crate) fn new(
        fut: BoxFuture<Result<(), BoxError>>,
        ex: Arc<Exchange>,
        live: LiveGuard,
    ) -> Self {
        AppDriver {
            fut: Some(fut),
            result: None,
            ex,
            live: Some((live, None)),
        }
    }

    /// Keep `held` until the app has finished (even if it finishes on a
    /// task of its own after the connection let go).
    pub(crate) fn hold(&mut self, held: Box<dyn Any + Send>) {
        if let Some((_, slot)) = &mut self.live {
            *slot = Some(held);
        }
    }

    /// Let go of what `hold` kept: the exchange is complete, and the app
    /// is only doing its own work now.
    pub(crate) fn release_hold(&mut self) {
        if let Some((_, slot)) = &mut self.live {
            *slot = None;
        }
    }

    /// Poll the app (if it still runs); true when it just finished.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(fut) = &mut self.fut else {
            return false;
        };
        let Poll::Ready(result) = crate::app_poll::poll_app(fut, cx) else {
            return false;
        };
        self.fut = None;
        if result.is_ok() {
            self.ex.app_returned();
        }
        self.result = Some(result);
        true
    }

    /// Whether the app finished with an error (not taken yet).
    pub(crate) fn failed(&self) -> bool {
        matches!(self.result, Some(Err(_)))
    }

    /// The app's result, once it finished (taken once).
    pub(crate) fn take_result(&mut self) -> Option<Result<(), BoxError>> {
        self.result.take()
    }

    pub(crate) fn exchange(&self) -> &Arc<Exchange> {
        &self.ex
    }
}

impl Drop for AppDriver {
    fn drop(&mut self) {
        let Some(fut) = self.fut.take() else {
            return;
        };
        // The connection let go before the app finished: the client left,
        // or the response ended while the app still has work to do. Its
        // `receive` now says disconnect (with the reason already set, if
        // any) and its sends are no-ops.
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

/// An exchange's SSE timers: the keepalive comment (its interval and
/// comment stay in the exchange) and the idle timeout.
#[derive(Default)]
pub(crate) struct SseTimers {
    /// The keepalive generation the timer was set up for.
    gen: u64,
    keepalive: Option<Pin<Box<tokio::time::Sleep>>>,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
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
        let every = *every;
        let comment = comment.clone();
        while timer.as_mut().poll(cx).is_ready() {
            if matches!(inner.progress, Progress::Body { .. }) && inner.link == Link::Open {
                inner.push(Out::Data(comment.clone()));
            }
            timer.as_mut().reset(tokio::time::Instant::now() + every);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    fn cx_waker() -> Waker {
        Waker::from(Arc::new(Noop))
    }

    #[test]
    fn body_pieces_reach_the_app_in_order_and_end_with_more_false() {
        let ex = Exchange::new(TransportControl::new(64, 16), "http");
        let mut src = HttpSource::new(ex.clone(), false);
        let waker = cx_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(src.poll_recv(&mut cx).is_pending());
        assert!(ex.wants_body());
        ex.give_body(Bytes::from("ab"), false);
        assert!(!ex.wants_body() && ex.body_pending());
        assert_eq!(
            src.poll_recv(&mut cx),
            Poll::Ready(ReceiveEvent::HttpRequest {
                body: Bytes::from("ab"),
                more: true
            })
        );
        assert!(src.poll_recv(&mut cx).is_pending());
        ex.give_body(Bytes::from("c"), true);
        assert_eq!(
            src.poll_recv(&mut cx),
            Poll::Ready(ReceiveEvent::HttpRequest {
                body: Bytes::from("c"),
                more: false
            })
        );
        // Then it waits for the end of the exchange.
        assert!(src.poll_recv(&mut cx).is_pending());
        ex.close("client_closed");
        ex.close("protocol_error"); // the first reason stays
        assert_eq!(
            src.poll_recv(&mut cx),
            Poll::Ready(ReceiveEvent::HttpDisconnect)
        );
        assert_eq!(
            ex.conn.disconnect_reason().as_deref(),
            Some("client_closed")
        );
    }

    #[test]
    fn output_counts_toward_buffered_amount_until_written() {
        let ex = Exchange::new(TransportControl::new(64, 16), "http");
        ex.start(200, Headers::new(), false).unwrap();
        ex.push_body(Out::Data(Bytes::from(vec![0; 10])), true)
            .unwrap();
        ex.push_body(Out::Data(Bytes::from(vec![0; 5])), false)
            .unwrap();
        assert_eq!(ex.transport.buffered_amount(), 15);
        assert_eq!(ex.queued_length(), (true, Some(15)));
        let mut taken = Vec::new();
        let done = ex.take_output(|o| taken.push(o));
        assert!(done && taken.len() == 2);
        ex.set_in_flight(15 + 8);
        assert_eq!(ex.transport.buffered_amount(), 23, "held by the connection");
        ex.set_in_flight(0);
        assert_eq!(ex.transport.buffered_amount(), 0);
        ex.finish();
        assert_eq!(ex.conn.view().response_complete(), Some(true));
    }

    #[test]
    fn shutdown_notice_keeps_sends_but_ends_receive() {
        let ex = Exchange::new(TransportControl::new(64, 16), "http");
        let mut src = HttpSource::new(ex.clone(), false);
        ex.start(200, Headers::new(), false).unwrap();
        ex.shut_down(false);
        let waker = cx_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(
            src.poll_recv(&mut cx),
            Poll::Ready(ReceiveEvent::HttpDisconnect)
        );
        assert_eq!(
            ex.conn.disconnect_reason().as_deref(),
            Some("server_shutdown")
        );
        ex.push_body(Out::Data(Bytes::from("last")), false).unwrap();
        assert_eq!(ex.queued_length(), (true, Some(4)));
        // An event stream is ended by the server: later sends are no-ops.
        let sse = Exchange::new(TransportControl::new(64, 16), "sse");
        sse.start(200, Headers::new(), false).unwrap();
        sse.shut_down(true);
        assert!(sse.queued_length().0 && sse.link() == Link::Ending);
        sse.push_body(Out::Data(Bytes::from("late")), true).unwrap();
        assert_eq!(sse.queued_length(), (true, Some(0)));
    }

    #[test]
    fn file_bodies_are_checked_when_sent() {
        let ex = Exchange::new(TransportControl::new(64, 16), "http");
        ex.start(200, Headers::new(), false).unwrap();
        let missing = ex.start_send(SendEvent::HttpResponseBody {
            body: Body::File {
                path: "/nonexistent/pagi-test".into(),
                offset: 0,
                length: None,
            },
            more: false,
        });
        assert!(missing
            .unwrap_err()
            .message()
            .starts_with("Cannot open file"));
        let dir = ex.start_send(SendEvent::HttpResponseBody {
            body: Body::File {
                path: std::env::temp_dir(),
                offset: 0,
                length: None,
            },
            more: false,
        });
        assert!(dir.is_err());
        let path = std::env::temp_dir().join(format!("pagi-exchange-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        // Past the end: nothing; a length beyond the end: what exists.
        for (offset, length, expect) in [(20, None, 0), (4, Some(100), 6), (2, Some(3), 3)] {
            match open_body(Body::File {
                path: path.clone(),
                offset,
                length,
            })
            .unwrap()
            {
                Out::File(f) => assert_eq!(f.len, expect, "{offset} {length:?}"),
                other => panic!("{other:?}"),
            }
        }
        std::fs::remove_file(&path).unwrap();
    }
}
