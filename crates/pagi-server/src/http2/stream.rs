//! One HTTP/2 stream as an exchange with the app: the scope, the request
//! body read from the stream when the app asks for it, and the response
//! head and body handed to hyper as frames (files read in chunks, trailers
//! as a trailing HEADERS frame).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::{Request, Response};
use pagi::{BoxError, Headers};

use super::{ResponseFuture, StreamGuard};
use crate::access_log::{Entry, RequestLine};
use crate::ctx::{Ctx, Phase, PhaseWatch};
use crate::file_body::FileReader;
use crate::http::exchange::{AppDriver, Exchange, Link, Out, ResponseHead, SseTimers};
use crate::listener::ConnInfo;
use crate::timer::Timer;
use crate::wire::h1::head::method_name;
use crate::wire::{self, request};

/// A file body is read in chunks of this size.
const FILE_CHUNK: usize = 64 * 1024;

/// A response body: a short one the server makes, or the app's.
pub(crate) enum H2Body {
    Canned(Option<Bytes>),
    App(Box<AppBody>),
}

impl H2Body {
    pub(crate) fn canned(body: Option<Bytes>) -> H2Body {
        H2Body::Canned(body.filter(|b| !b.is_empty()))
    }
}

impl HttpBody for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            H2Body::Canned(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            H2Body::App(a) => a.poll_body(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            H2Body::Canned(b) => b.is_none(),
            H2Body::App(a) => a.ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            H2Body::Canned(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            H2Body::App(a) => a.hint,
        }
    }
}

/// A short `text/plain` response the server makes itself.
pub(crate) fn canned(status: u16, why: &str) -> Response<H2Body> {
    wire::h2::canned(status, why).map(|b| H2Body::canned(Some(b)))
}

/// Start the exchange for a request stream; the future resolves with the
/// response head (its body drives the rest).
pub(crate) fn respond(
    req: Request<Incoming>,
    ctx: &Arc<Ctx>,
    info: &Arc<ConnInfo>,
    guard: StreamGuard,
) -> ResponseFuture {
    let (parts, body) = req.into_parts();
    let cfg = &ctx.config;
    let limit = cfg.max_body_size;
    if limit > 0 && body.size_hint().exact().is_some_and(|n| n > limit) {
        return Box::pin(async move {
            drop(guard);
            Ok(canned(413, "Payload Too Large"))
        });
    }
    // The header list's size is bounded by h2 (`max_header_size`); its
    // count as on HTTP/1.1.
    if parts.headers.len() > cfg.max_header_count {
        return Box::pin(async move {
            drop(guard);
            Ok(canned(431, "Request Header Fields Too Large"))
        });
    }
    let method = method_name(parts.method.as_str());
    let scope_head = request::from_h2(&parts);
    let log = ctx.access_log.as_ref().map(|l| {
        let client = info.identity(&scope_head.headers, &cfg.proxy).0;
        l.entry(
            RequestLine {
                method: &method,
                path: &scope_head.raw_path,
                query: &scope_head.query_string,
                version: "HTTP/2.0",
                headers: &scope_head.headers,
            },
            client,
        )
    });
    let head_request = parts.method == http::Method::HEAD;
    let mut started = crate::http::start(scope_head, method, ctx, info);
    // The stream stays counted by its connection as long as its app runs.
    started.app.hold(Box::new(guard));
    let ex = started.app.exchange().clone();
    let input = if body.is_end_stream() {
        ex.give_body(Bytes::new(), true);
        None
    } else {
        Some(body)
    };
    let stream = Box::new(Stream {
        app: started.app,
        ex,
        input,
        body_read: 0,
        max_body: limit,
        stall_limit: cfg.request_timeout,
        stall: None,
        sse: started.sse,
        sse_timers: SseTimers::default(),
        phase: None,
        draining: false,
        notified: false,
        head_request,
        log,
        ctx: ctx.clone(),
    });
    Box::pin(Head(Some(stream)))
}

/// What a stream's exchange needs while it runs.
struct Stream {
    app: AppDriver,
    ex: Arc<Exchange>,
    /// The request body still to read (`None` once it ended).
    input: Option<Incoming>,
    body_read: u64,
    max_body: u64,
    stall_limit: Option<Duration>,
    /// `request_timeout` while the app waits for body bytes.
    stall: Option<Timer>,
    sse: bool,
    sse_timers: SseTimers,
    /// The server's phase, watched from the first time the stream waits
    /// (most requests are answered before they ever do).
    phase: Option<PhaseWatch>,
    /// The server is shutting down.
    draining: bool,
    /// The shutdown notice was given.
    notified: bool,
    head_request: bool,
    log: Option<Entry>,
    ctx: Arc<Ctx>,
}

impl Stream {
    /// Give the app the next piece of body if it waits for one; true if
    /// anything changed.
    fn feed(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.ex.wants_body() {
            return false;
        }
        let Some(input) = &mut self.input else {
            return false;
        };
        loop {
            match Pin::new(&mut *input).poll_frame(cx) {
                Poll::Pending => {
                    if !self.ex.body_stalled(&mut self.stall, self.stall_limit, cx) {
                        return false;
                    }
                    self.input = None;
                    return true;
                }
                Poll::Ready(None) => {
                    self.input = None;
                    self.ex.give_body(Bytes::new(), true);
                    return true;
                }
                Poll::Ready(Some(Err(e))) => {
                    // The client reset the stream, or broke the protocol (a
                    // body longer or shorter than its content-length: h2
                    // resets the stream itself).
                    tracing::debug!("HTTP/2 request body: {e}");
                    self.input = None;
                    let h2 =
                        std::error::Error::source(&e).and_then(|s| s.downcast_ref::<h2::Error>());
                    let reason = match h2 {
                        Some(h) if !h.is_remote() && !h.is_io() => "protocol_error",
                        _ => "client_closed",
                    };
                    self.ex.close(reason);
                    return true;
                }
                Poll::Ready(Some(Ok(frame))) => {
                    self.stall = None;
                    let Ok(data) = frame.into_data() else {
                        continue; // request trailers are not part of PAGI
                    };
                    self.body_read += data.len() as u64;
                    if self.max_body > 0 && self.body_read > self.max_body {
                        self.input = None;
                        self.ex.refuse(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "Payload Too Large",
                            "body_too_large",
                        );
                        return true;
                    }
                    let last = input.is_end_stream();
                    if data.is_empty() && !last {
                        continue;
                    }
                    if last {
                        self.input = None;
                    }
                    self.ex.give_body(data, last);
                    return true;
                }
            }
        }
    }

    /// The server shuts down: an event stream ends now, a streaming
    /// response's app is told.
    /// (A response not started yet is left to finish, as on HTTP/1.1; it
    /// is told if it starts streaming.)
    /// Returns whether the notice was given just now.
    fn watch_phase(&mut self, cx: &mut Context<'_>, started: bool) -> bool {
        if !self.draining {
            let phase = self.phase.get_or_insert_with(|| PhaseWatch::new(&self.ctx));
            if let Poll::Ready(p) = phase.poll_change(cx) {
                self.draining = p >= Phase::Draining;
            }
        }
        if self.draining && started && !self.notified {
            self.notified = true;
            self.ex.shut_down(self.sse);
            return true;
        }
        false
    }

    fn log_end(&mut self, status: u16, bytes: u64) {
        if let (Some(entry), Some(log)) = (self.log.take(), &self.ctx.access_log) {
            log.write(entry, status, bytes);
        }
    }
}

/// The response future: runs the app until it starts its response.
struct Head(Option<Box<Stream>>);

impl Future for Head {
    type Output = Result<Response<H2Body>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = &mut self.get_mut().0;
        let s = slot.as_mut().expect("polled after completion");
        loop {
            let mut progress = s.app.poll(cx);
            progress |= s.feed(cx);
            if s.app.failed() {
                // Failed before anything reached the client: a 500.
                drop(s.ex.take_head());
                let result = s.app.take_result().unwrap_or(Ok(()));
                return Poll::Ready(Ok(no_response(s, result)));
            }
            if let Some(head) = s.ex.take_head() {
                let s = slot.take().expect("checked above");
                return Poll::Ready(Ok(start_body(s, head)));
            }
            if let Link::Refused(status, why) = s.ex.link() {
                s.log_end(status.as_u16(), 0);
                return Poll::Ready(Ok(canned(status.as_u16(), why)));
            }
            if let Some(result) = s.app.take_result() {
                return Poll::Ready(Ok(no_response(s, result)));
            }
            if !progress {
                let _ = s.watch_phase(cx, false);
                s.ex.watch(cx);
                return Poll::Pending;
            }
        }
    }
}

/// The app finished without starting a response: the spec's 500 backstop
/// (nothing is logged if the client already left).
fn no_response(s: &mut Stream, result: Result<(), BoxError>) -> Response<H2Body> {
    if s.ex.link() != Link::Closed {
        match result {
            Ok(()) => tracing::error!("PAGI application returned without starting a response"),
            Err(e) => tracing::error!("PAGI application error: {e}"),
        }
    }
    s.ex.conn.mark_response_started();
    s.ex.close("server_error");
    s.log_end(500, 0);
    canned(500, "Internal Server Error")
}

/// The response head from the app's, and the body that runs the rest.
fn start_body(s: Box<Stream>, head: ResponseHead) -> Response<H2Body> {
    let status = head.status;
    let bodiless = s.head_request || matches!(status, 204 | 205 | 304);
    let mut map = HeaderMap::with_capacity(head.headers.len() + 1);
    // The server frames the body, and writes the length itself (one
    // value, never on 204/205).
    let app_length = wire::h2::append_taking_length(&mut map, &head.headers);
    let (done, known) = s.ex.queued_length();
    // What the Content-Length says: the app's; else, for a bodiless
    // response, what a GET would have carried (HEAD) or nothing; else the
    // body's size when the app already queued all of it.
    let length = match status {
        204 => None,
        205 => Some(0),
        _ if bodiless => app_length.or(known.filter(|&n| s.head_request && n > 0)),
        _ => app_length.or(known.filter(|_| done && !head.trailers)),
    };
    if let Some(n) = length {
        map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    // The hint is what hyper frames by; a bodiless response sends none.
    let hint = match length {
        Some(n) if !bodiless => SizeHint::with_exact(n),
        _ => SizeHint::default(),
    };
    let body = AppBody {
        stream: s,
        queue: VecDeque::new(),
        file: None,
        limit: if bodiless { Some(0) } else { app_length },
        bodiless,
        sent: 0,
        status,
        done: false,
        streaming: !done,
        ended: false,
        hint,
    };
    let mut resp = Response::new(H2Body::App(Box::new(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *resp.headers_mut() = map;
    resp
}

/// The response body hyper pulls: drives the app and yields what it sent.
pub(crate) struct AppBody {
    stream: Box<Stream>,
    /// Output taken from the exchange, not yet handed to hyper.
    queue: VecDeque<Out>,
    /// A file body being read.
    file: Option<FileReader>,
    /// The most body bytes the response may carry (its Content-Length;
    /// zero for HEAD, 204, 205, 304).
    limit: Option<u64>,
    /// HEAD, 204, 205 or 304: no body, no trailers.
    bodiless: bool,
    sent: u64,
    status: u16,
    /// The app queued all of its body: what is in `queue` is the rest.
    done: bool,
    /// The body was not all queued when the head went out: the server's
    /// phase is watched on every poll (a stream hyper always finds output
    /// for would otherwise never wait, and never hear of a shutdown).
    streaming: bool,
    /// The end went to hyper (or goes with the frame just handed out):
    /// nothing left for `drop`.
    ended: bool,
    hint: SizeHint,
}

impl AppBody {
    /// The end of the body: the request is complete.
    fn finish(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.ended = true;
        if let Some(n) = self.limit.filter(|&n| self.sent < n && n > 0) {
            tracing::error!(
                "PAGI application sent {} bytes of a {n}-byte body: resetting the stream",
                self.sent
            );
            self.stream.ex.close("server_error");
            return Poll::Ready(Some(Err(
                "response body shorter than its Content-Length".into()
            )));
        }
        self.complete();
        Poll::Ready(None)
    }

    /// The response went out whole: the request is complete, and an app
    /// still working no longer counts as an open stream.
    fn complete(&mut self) {
        self.ended = true;
        self.stream.ex.finish();
        self.stream.app.release_hold();
        self.stream.log_end(self.status, self.sent);
    }

    /// Hand out a piece of body; when it is the last (the app is done and
    /// nothing else waits), the request completes with it and hyper sends
    /// it with END_STREAM rather than an empty frame after it.
    fn give(&mut self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.report_in_flight();
        let complete = self.limit.is_none_or(|n| self.sent >= n);
        if self.done && self.queue.is_empty() && self.file.is_none() && complete {
            self.complete();
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    /// Cut `data` to what the response may still carry.
    fn within_limit(&mut self, mut data: Bytes) -> Option<Bytes> {
        if let Some(n) = self.limit {
            let room = n - self.sent.min(n);
            if (data.len() as u64) > room {
                if n > 0 {
                    tracing::error!(
                        "PAGI application sent more than its Content-Length ({n}): the rest is dropped"
                    );
                }
                data.truncate(room as usize);
            }
        }
        self.sent += data.len() as u64;
        (!data.is_empty()).then_some(data)
    }

    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.streaming {
            let _ = self.stream.watch_phase(cx, true);
        }
        loop {
            let s = &mut self.stream;
            s.app.poll(cx);
            s.feed(cx);
            match s.ex.link() {
                Link::Closed if s.ex.conn.disconnect_reason().is_some() => {
                    // The client reset the stream, or the app failed.
                    self.ended = true;
                    return Poll::Ready(Some(Err("stream abandoned".into())));
                }
                Link::Refused(..) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err("request refused".into())));
                }
                _ => {}
            }
            if let Some(file) = &mut self.file {
                match std::task::ready!(file.poll_chunk(cx, FILE_CHUNK)) {
                    Some(Ok(chunk)) => {
                        if let Some(data) = self.within_limit(chunk) {
                            return self.give(data);
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        self.ended = true;
                        self.stream.ex.close("server_error");
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    None => {
                        self.file = None;
                        continue;
                    }
                }
            }
            if let Some(out) = self.queue.pop_front() {
                match out {
                    Out::Data(b) => {
                        if let Some(data) = self.within_limit(b) {
                            return self.give(data);
                        }
                    }
                    Out::File(f) => {
                        // Read only what the response may carry (nothing
                        // for HEAD).
                        let room = self.limit.map_or(f.len, |n| n.saturating_sub(self.sent));
                        let len = f.len.min(room);
                        if len > 0 {
                            self.file = Some(FileReader::new(f.file, f.offset, len));
                        }
                    }
                    // Announced but empty: the stream just ends (no empty
                    // HEADERS frame).
                    Out::Trailers(t) if !self.bodiless && !t.is_empty() => {
                        self.complete();
                        return Poll::Ready(Some(Ok(Frame::trailers(trailer_map(&t)))));
                    }
                    Out::Trailers(_) => {}
                }
                continue;
            }
            let queue = &mut self.queue;
            self.done = self.stream.ex.take_output(|o| queue.push_back(o));
            if !self.queue.is_empty() {
                continue;
            }
            self.report_in_flight();
            if self.done {
                return self.finish();
            }
            let s = &mut self.stream;
            if let Some(Err(e)) = s.app.take_result() {
                tracing::error!("PAGI application error (after response started): {e}");
                s.ex.close("server_error");
                s.log_end(self.status, self.sent);
                self.ended = true;
                // Every event of a stream is whole: end it cleanly; any other
                // body cannot be finished honestly.
                return if s.sse {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(e)))
                };
            }
            if s.sse && s.ex.poll_sse_timers(&mut s.sse_timers, cx) {
                tracing::debug!("SSE idle timeout - closing the stream");
                s.ex.close("idle_timeout");
                s.log_end(self.status, self.sent);
                self.ended = true;
                return Poll::Ready(None);
            }
            if s.sse && s.ex.has_output() {
                // Keepalive comments were queued: take them.
                continue;
            }
            // Waiting: for the app, or the server shutting down.
            if s.watch_phase(cx, true) {
                continue;
            }
            s.ex.watch(cx);
            return Poll::Pending;
        }
    }

    /// What `buffered_amount` counts: taken from the app, not yet handed
    /// to hyper.
    fn report_in_flight(&self) {
        let queued: u64 = self.queue.iter().map(Out::len).sum();
        let file = self.file.as_ref().map_or(0, FileReader::left);
        self.stream.ex.set_in_flight(queued + file);
    }
}

/// A body dropped before it handed out its end: the stream was reset (or
/// the connection went away).
impl Drop for AppBody {
    fn drop(&mut self) {
        if !self.ended {
            self.stream.ex.close("client_closed");
        }
    }
}

/// Trailers as hyper sends them (checked when the app sent them).
fn trailer_map(t: &Headers) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(t.len());
    wire::h2::append(&mut map, t);
    map
}
