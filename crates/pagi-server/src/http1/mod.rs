//! An HTTP/1.1 connection: request heads and bodies read off the socket
//! with the pure codec in `wire::h1`, one exchange at a time with the app
//! (polled inline in this task: no task per request), responses written
//! with vectored writes and files with `sendfile(2)` (see `output`). A
//! WebSocket handshake hands the socket to `crate::ws`.
//!
//! The connection is a state machine polled by one task:
//!
//! - `Idle`: reading the next request head (a watchdog closes a
//!   connection that starts no request for `header_read_timeout`);
//! - `Busy`: an exchange runs: the app is polled, request body is read
//!   only when the app asks for it (TCP pushes back otherwise), the
//!   response is framed and written as the app sends it;
//! - `Closing`: the last response (or a refusal) is written, then the
//!   socket is shut and what the client still sends is read and dropped
//!   for a moment (a lingering close: an RST would destroy the response).

mod output;

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncReadExt, ReadBuf};

use crate::access_log::Entry;
use crate::ctx::{Ctx, Phase, PhaseWatch};
use crate::http::exchange::{AppDriver, Exchange, Link, Out, SseTimers};
use crate::http2::PREFACE;
use crate::listener::{ConnInfo, Io};
use crate::read_pool::{self, READ_CHUNK};
use crate::timer::{Timer, Watchdog};
use crate::wire::h1::body::{BodyDecoder, Decoded};
use crate::wire::h1::encode::{self, BodyFraming, ResponseInfo};
use crate::wire::h1::head::{Framing, Head, HeadParser, Limits, Version};
use crate::wire::request;
use output::Output;

/// Body left unread after a response that is still read and dropped so
/// the connection can serve another request; a larger rest closes it.
const DRAIN_MAX: u64 = 64 * 1024;
/// How long a closing connection reads (and drops) what the client still
/// sends before it lets go.
const LINGER: Duration = Duration::from_secs(2);
/// Input buffered beyond the current request (pipelined requests), at
/// most: then the connection stops reading until the exchange is done.
const READ_AHEAD_MAX: usize = 64 * 1024;

/// Serve HTTP/1.1 on `io` until the connection closes (or becomes a
/// WebSocket session).
///
/// The connection's state is boxed before the future is made (so the
/// future holds no second copy of the stream), and so is a WebSocket
/// session: the connection task's own future stays small (every
/// connection, idle ones included, holds one).
pub(crate) fn serve<I: Io>(
    io: I,
    info: ConnInfo,
    ctx: Arc<Ctx>,
) -> impl Future<Output = ()> + Send {
    let mut conn = Box::new(Conn::new(io, info, ctx));
    async move {
        match poll_fn(|cx| conn.poll(cx)).await {
            End::Closed => {}
            // Made in one call: no part of the connection is a local here.
            End::Upgrade(head) => (*conn).upgrade(head).await,
            End::H2 => (*conn).h2().await,
        }
    }
}

/// How a connection's HTTP/1.1 life ended.
enum End {
    Closed,
    /// A WebSocket handshake to answer (valid as far as the head shows).
    Upgrade(Box<Head>),
    /// The client opened with the HTTP/2 preface (h2c with prior
    /// knowledge): the read buffer starts with it.
    H2,
}

/// What a step of the state machine says next.
enum Step {
    /// Something changed: run again.
    Again,
    /// Wait for a wake-up.
    Wait,
    Done(End),
}

/// The socket side: the stream, what was read, what is to be written.
struct Wire<I> {
    io: I,
    rbuf: BytesMut,
    out: Output,
}

/// The result of trying to read.
enum Read {
    Data,
    Eof,
    Pending,
    Failed,
}

impl<I: Io> Wire<I> {
    /// One read of at most `max` bytes into `rbuf` (a buffer is taken only
    /// once the socket has bytes: idle connections hold none).
    fn read(&mut self, cx: &mut Context<'_>, max: usize) -> Read {
        match self.io.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Read::Failed,
            Poll::Pending => return Read::Pending,
        }
        if self.rbuf.capacity() == 0 {
            self.rbuf = read_pool::take(READ_CHUNK);
        } else if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(READ_CHUNK);
        }
        let spare = (self.rbuf.capacity() - self.rbuf.len()).min(max);
        let mut limited = bytes::BufMut::limit(&mut self.rbuf, spare);
        match pin!(self.io.read_buf(&mut limited)).poll(cx) {
            Poll::Ready(Ok(0)) => Read::Eof,
            Poll::Ready(Ok(_)) => Read::Data,
            Poll::Ready(Err(_)) => Read::Failed,
            Poll::Pending => Read::Pending,
        }
    }

    /// Hand an empty read buffer back to the pool (before sleeping).
    fn release_idle_buffer(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            read_pool::give(std::mem::take(&mut self.rbuf));
        }
    }
}

/// Where the connection is.
enum State {
    Idle,
    Busy(Box<Active>),
    /// Reading and dropping the small rest of a body the app left unread,
    /// before the next request.
    Drain(BodyDecoder),
    Closing(Closing),
}

/// The end of a connection: write what is left, shut, and linger if the
/// client may still be sending (unread input would turn the close into a
/// reset, which can destroy the response before the client reads it).
enum Closing {
    Flushing { linger: bool },
    Shutting { linger: bool },
    Lingering(Timer),
}

/// The request's side of an exchange, as framing needs it.
#[derive(Clone, Copy)]
struct Request {
    head_request: bool,
    http10: bool,
    /// The client wants the connection kept (RFC 9112 §9.3).
    keep_alive: bool,
    sse: bool,
}

/// `Expect: 100-continue` (RFC 9110 §10.1.1).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Continue {
    /// Not asked for, or already sent.
    No,
    /// The client waits for it before sending the body: sent when the app
    /// first asks for body, never after a final response started.
    Owed,
}

/// Where the response is.
enum Response {
    /// Waiting for the app's `http.response.start`.
    Waiting,
    /// The head is out; the body follows.
    Body(BodyOut),
}

struct BodyOut {
    framing: BodyFraming,
    /// Body bytes queued so far (for `Length`: what the app promised).
    sent: u64,
    keep_alive: bool,
    status: u16,
    /// The end (last chunk, trailers) is queued.
    ended: bool,
}

/// One exchange in progress.
struct Active {
    app: AppDriver,
    ex: Arc<Exchange>,
    req: Request,
    body: BodyDecoder,
    body_read: u64,
    expect: Continue,
    response: Response,
    /// `request_timeout` while the app waits for body bytes.
    stall: Option<Timer>,
    sse: SseTimers,
    /// The shutdown notice was given to this exchange.
    notified: bool,
    log: Option<Entry>,
}

struct Conn<I> {
    wire: Wire<I>,
    state: State,
    parser: HeadParser,
    limits: Limits,
    ctx: Arc<Ctx>,
    info: Arc<ConnInfo>,
    /// Closes a connection that starts no request for a whole period
    /// (idle keep-alive or a slow head).
    watchdog: Option<Watchdog>,
    /// Requests started on this connection (what the watchdog watches).
    requests: u64,
    phase: PhaseWatch,
    draining: bool,
    /// A client may start with the HTTP/2 preface (cleartext, `http2` on).
    h2c: bool,
}

impl<I: Io> Conn<I> {
    fn new(io: I, info: ConnInfo, ctx: Arc<Ctx>) -> Self {
        let cfg = &ctx.config;
        let limits = Limits {
            max_head: cfg.max_header_size,
            max_headers: cfg.max_header_count,
            max_request_line: cfg.max_request_line,
        };
        Conn {
            wire: Wire {
                io,
                rbuf: BytesMut::new(),
                out: Output::default(),
            },
            state: State::Idle,
            parser: HeadParser::default(),
            limits,
            watchdog: Watchdog::new(cfg.header_read_timeout),
            requests: 0,
            phase: PhaseWatch::new(&ctx),
            h2c: cfg.http2 && info.tls.is_none(),
            draining: false,
            info: Arc::new(info),
            ctx,
        }
    }

    /// HTTP/2 takes the connection over, with what was read so far.
    fn h2(self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // (hyper reads into its own buffers.)
        let (io, prefix, ctx, info) = self.hand_over();
        let info = Arc::try_unwrap(info).unwrap_or_else(|shared| (*shared).clone());
        crate::http2::serve(io, prefix, info, ctx)
    }

    /// The WebSocket session that takes the connection over; the rest of
    /// the connection is dropped now.
    fn upgrade(self, head: Box<Head>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // (What the client sent behind the head should be nothing.)
        let (io, early, ctx, info) = self.hand_over();
        crate::ws::serve_h1(io, early, head, ctx, info)
    }

    /// The socket and what was read but not parsed (copied out: the read
    /// buffer goes back to this thread's pool), for the protocol that takes
    /// the connection over.
    fn hand_over(self) -> (I, Bytes, Arc<Ctx>, Arc<ConnInfo>) {
        let Conn {
            wire, ctx, info, ..
        } = self;
        let Wire { io, rbuf, .. } = wire;
        let unread = Bytes::copy_from_slice(&rbuf);
        read_pool::give(rbuf);
        (io, unread, ctx, info)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        loop {
            if let Poll::Ready(phase) = self.phase.poll_change(cx) {
                if phase == Phase::Stopped {
                    return Poll::Ready(End::Closed);
                }
                self.draining = true;
                if let State::Busy(a) = &mut self.state {
                    a.notify_shutdown();
                }
            }
            let step = match self.state {
                State::Idle => self.poll_idle(cx),
                State::Busy(_) => self.poll_busy(cx),
                State::Drain(_) => self.poll_drain(cx),
                State::Closing(_) => self.poll_closing(cx),
            };
            match step {
                Step::Again => {}
                Step::Wait => return Poll::Pending,
                Step::Done(end) => return Poll::Ready(end),
            }
        }
    }

    /// Close after the current output: no more requests. It lingers if
    /// input is left unread (or `unread`: more may be on its way).
    fn close(&mut self, unread: bool) -> Step {
        let linger = unread || !self.wire.rbuf.is_empty();
        self.state = State::Closing(Closing::Flushing { linger });
        Step::Again
    }

    /// Answer with a short text response the server makes, then close
    /// (lingering: the rest of the request may be on its way).
    fn refuse(&mut self, status: StatusCode, why: &str) -> Step {
        encode::canned(status.as_u16(), why, false, self.wire.out.tail());
        self.close(true)
    }

    // ---- between requests ------------------------------------------------

    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Step {
        if self.draining {
            return self.close(false);
        }
        // Cleartext HTTP/2 starts with its preface instead of a request;
        // while only part of it is here, wait for the rest (the watchdog
        // still bounds the wait).
        let mut partial_preface = false;
        if self.h2c && self.requests == 0 && !self.wire.rbuf.is_empty() {
            let n = self.wire.rbuf.len().min(PREFACE.len());
            if self.wire.rbuf[..n] == PREFACE[..n] {
                if n == PREFACE.len() {
                    return Step::Done(End::H2);
                }
                partial_preface = true;
            }
        }
        if !partial_preface {
            match self.parser.parse(&mut self.wire.rbuf, &self.limits) {
                Err(rejection) => {
                    tracing::debug!("bad request: {}", rejection.why);
                    return self.refuse(rejection.status, rejection.why);
                }
                Ok(Some(head)) => {
                    self.requests += 1;
                    return self.dispatch(head);
                }
                Ok(None) => {}
            }
        }
        match self.wire.read(cx, usize::MAX) {
            Read::Data => Step::Again,
            Read::Eof | Read::Failed => Step::Done(End::Closed),
            Read::Pending => {
                if self.watchdog_expired(cx) {
                    tracing::debug!(
                        "connection: no request within the header read timeout, closing"
                    );
                    return Step::Done(End::Closed);
                }
                self.wire.release_idle_buffer();
                Step::Wait
            }
        }
    }

    /// Whether a whole header-read period passed with no request started.
    fn watchdog_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let requests = self.requests;
        self.watchdog
            .as_mut()
            .is_some_and(|w| w.quiet(cx, requests))
    }

    /// Start what a request head asks for.
    fn dispatch(&mut self, mut head: Head) -> Step {
        if head.websocket {
            return Step::Done(End::Upgrade(Box::new(head)));
        }
        let req = Request {
            head_request: head.method == "HEAD",
            http10: head.version == Version::Http10,
            keep_alive: head.keep_alive,
            sse: false,
        };
        let limit = self.ctx.config.max_body_size;
        if let Framing::Length(n) = head.body {
            if limit > 0 && n > limit {
                return self.refuse(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large");
            }
        }
        let log = self.ctx.access_log.as_ref().map(|log| {
            let client = self.info.identity(&head.headers, &self.ctx.config.proxy).0;
            log.entry((&head).into(), client)
        });
        let body = BodyDecoder::new(head.body);
        let expect = if head.expect_continue {
            Continue::Owed
        } else {
            Continue::No
        };
        let method = std::mem::take(&mut head.method);
        let scope_head = request::from_h1(&mut head);
        let started = crate::http::start(scope_head, method, &self.ctx, &self.info);
        let ex = started.app.exchange().clone();
        if body.is_done() {
            ex.give_body(Bytes::new(), true);
        }
        let mut active = Active {
            app: started.app,
            ex,
            req: Request {
                sse: started.sse,
                ..req
            },
            body,
            body_read: 0,
            expect,
            response: Response::Waiting,
            stall: None,
            sse: SseTimers::default(),
            notified: false,
            log,
        };
        if self.draining {
            active.notify_shutdown();
        }
        self.state = State::Busy(Box::new(active));
        Step::Again
    }

    // ---- an exchange -----------------------------------------------------

    fn poll_busy(&mut self, cx: &mut Context<'_>) -> Step {
        let State::Busy(a) = &mut self.state else {
            unreachable!("busy without an exchange");
        };
        let cfg = &self.ctx.config;
        let wire = &mut self.wire;
        let mut progress = a.app.poll(cx);

        // The request body, when the app asks for it.
        if a.ex.wants_body() {
            progress |= a.feed_body(wire, cfg.max_body_size, cfg.request_timeout, cx);
        }

        // The response head, or what answers instead of it.
        if let Response::Waiting = a.response {
            if a.app.failed() {
                // It failed before any of its response reached the wire (a
                // file that cannot be sent, say): the head it started is
                // dropped, the failure answered like any other.
                drop(a.ex.take_head());
                let result = a.app.take_result().unwrap_or(Ok(()));
                return self.no_response(result);
            }
            if let Some(head) = a.ex.take_head() {
                let keep = a.req.keep_alive && !self.draining && a.can_keep_alive();
                let (done, known) = a.ex.queued_length();
                let info = ResponseInfo {
                    status: head.status,
                    head_request: a.req.head_request,
                    http10: a.req.http10,
                    keep_alive: keep,
                    event_stream: a.req.sse,
                    known_length: known.filter(|_| done),
                    trailers: head.trailers,
                };
                let encoded = encode::encode_head(&info, &head.headers, wire.out.tail());
                a.response = Response::Body(BodyOut {
                    framing: encoded.framing,
                    sent: 0,
                    keep_alive: encoded.keep_alive,
                    status: head.status,
                    ended: false,
                });
                if self.draining {
                    a.notify_shutdown();
                }
                // The client waited for 100 Continue and got a final
                // response instead: it may or may not send the body now.
                a.expect = Continue::No;
                progress = true;
            } else if let Link::Refused(status, why) = a.ex.link() {
                log_end(&mut a.log, status.as_u16(), 0, &self.ctx);
                return self.refuse(status, why);
            } else if let Some(result) = a.app.take_result() {
                return self.no_response(result);
            } else if a.ex.link() == Link::Closed {
                // The client left before a response.
                return Step::Done(End::Closed);
            }
        }

        // The response body.
        let State::Busy(a) = &mut self.state else {
            unreachable!()
        };
        if let Response::Body(out) = &mut a.response {
            match a.ex.link() {
                Link::Closed => {
                    wire.out.clear();
                    return Step::Done(End::Closed);
                }
                Link::Refused(..) => {
                    // The response started: it cannot be finished honestly.
                    wire.out.clear();
                    return Step::Done(End::Closed);
                }
                Link::Open | Link::Notified | Link::Ending => {}
            }
            if !out.ended {
                let done = a.ex.take_output(|piece| out.queue(piece, &mut wire.out));
                if done {
                    out.end(&mut wire.out);
                    progress = true;
                } else if let Some(Err(e)) = a.app.take_result() {
                    // The app failed mid-response.
                    tracing::error!("PAGI application error (after response started): {e}");
                    a.ex.close("server_error");
                    log_end(&mut a.log, out.status, out.sent, &self.ctx);
                    if a.req.sse {
                        // Every event sent is whole: end the stream cleanly.
                        out.end(&mut wire.out);
                        return self.close(false);
                    }
                    wire.out.clear();
                    return Step::Done(End::Closed);
                }
                if a.req.sse && !out.ended && a.ex.poll_sse_timers(&mut a.sse, cx) {
                    tracing::debug!("SSE idle timeout - closing the stream");
                    a.ex.close("idle_timeout");
                    out.end(&mut wire.out);
                    log_end(&mut a.log, out.status, out.sent, &self.ctx);
                    return self.close(false);
                }
            }
        }

        // Write.
        match wire.out.poll_write(&mut wire.io, cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => {
                tracing::debug!("connection: write failed: {e}");
                a.ex.close("write_error");
                return Step::Done(End::Closed);
            }
            Poll::Pending => {}
        }
        a.ex.set_in_flight(wire.out.pending());

        // Complete?
        if let Response::Body(out) = &a.response {
            if out.ended && wire.out.is_empty() {
                return self.complete();
            }
        }

        // Watch the socket for the client leaving (and buffer what it
        // pipelines, or body bytes the app has not asked for, up to
        // READ_AHEAD_MAX): an app that never reads the body still learns
        // when its client is gone. While the app waits for body, feeding
        // it does the reading.
        let State::Busy(a) = &mut self.state else {
            unreachable!()
        };
        let body_read_by_feed = !a.body.is_done() && a.ex.wants_body();
        if !body_read_by_feed && !a.ex.body_pending() && self.wire.rbuf.len() < READ_AHEAD_MAX {
            match self.wire.read(cx, READ_AHEAD_MAX - self.wire.rbuf.len()) {
                Read::Data => progress = true,
                Read::Pending => {}
                Read::Eof => {
                    a.ex.close("client_closed");
                    progress = true;
                }
                Read::Failed => {
                    a.ex.close("read_error");
                    progress = true;
                }
            }
        }
        if progress {
            return Step::Again;
        }
        a.ex.watch(cx);
        Step::Wait
    }

    /// The app finished without starting a response.
    fn no_response(&mut self, result: Result<(), pagi::BoxError>) -> Step {
        let State::Busy(a) = &mut self.state else {
            unreachable!()
        };
        if !a.ex.conn.is_connected() && a.ex.link() == Link::Closed {
            // The client already left: not an application error.
            return Step::Done(End::Closed);
        }
        match result {
            Ok(()) => tracing::error!("PAGI application returned without starting a response"),
            Err(e) => tracing::error!("PAGI application error: {e}"),
        }
        a.ex.conn.mark_response_started();
        a.ex.close("server_error");
        log_end(&mut a.log, 500, 0, &self.ctx);
        self.refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }

    /// The response is out: the request is complete. Serve the next one,
    /// or close.
    fn complete(&mut self) -> Step {
        let State::Busy(mut a) = std::mem::replace(&mut self.state, State::Idle) else {
            unreachable!()
        };
        let Response::Body(out) = &a.response else {
            unreachable!()
        };
        let short = matches!(out.framing, BodyFraming::Length(n) if out.sent < n);
        if short {
            // Fewer bytes than the Content-Length said: the client cannot
            // tell where this response ends, so the connection does.
            tracing::error!(
                "PAGI application sent {} bytes of a {}-byte body: closing the connection",
                out.sent,
                match out.framing {
                    BodyFraming::Length(n) => n,
                    _ => 0,
                }
            );
            a.ex.close("server_error");
            return Step::Done(End::Closed);
        }
        a.ex.finish();
        let (status, sent, keep) = (out.status, out.sent, out.keep_alive && !self.draining);
        log_end(&mut a.log, status, sent, &self.ctx);
        if !keep {
            return self.close(!a.body.is_done());
        }
        // The app may still run (work after its response): it goes on in a
        // task of its own, where its `receive` reports the end.
        let Active { body, .. } = *a;
        // A request body the app left unread: a small rest is read and
        // dropped, then the next request is served; anything else would
        // have made the response say `Connection: close` (see
        // `can_keep_alive`).
        self.state = State::Drain(body);
        Step::Again
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Step {
        let State::Drain(body) = &mut self.state else {
            unreachable!()
        };
        loop {
            match body.decode(&mut self.wire.rbuf, usize::MAX) {
                Ok(Decoded::Data(_)) => continue,
                Ok(Decoded::End) => {
                    self.state = State::Idle;
                    return Step::Again;
                }
                Ok(Decoded::NeedMore) => {}
                Err(_) => return self.close(true),
            }
            match self.wire.read(cx, usize::MAX) {
                Read::Data => {}
                Read::Eof | Read::Failed => return Step::Done(End::Closed),
                Read::Pending => {
                    // Bounded in time like a slow head.
                    if self.watchdog_expired(cx) {
                        return Step::Done(End::Closed);
                    }
                    return Step::Wait;
                }
            }
        }
    }

    // ---- the end -----------------------------------------------------------

    fn poll_closing(&mut self, cx: &mut Context<'_>) -> Step {
        let State::Closing(closing) = &mut self.state else {
            unreachable!()
        };
        loop {
            match closing {
                Closing::Flushing { linger } => {
                    match self.wire.out.poll_write(&mut self.wire.io, cx) {
                        Poll::Ready(Ok(())) => *closing = Closing::Shutting { linger: *linger },
                        Poll::Ready(Err(_)) => return Step::Done(End::Closed),
                        Poll::Pending => return Step::Wait,
                    }
                }
                Closing::Shutting { linger } => match Pin::new(&mut self.wire.io).poll_shutdown(cx)
                {
                    Poll::Ready(_) if *linger => {
                        *closing = Closing::Lingering(Timer::after(LINGER))
                    }
                    Poll::Ready(_) => return Step::Done(End::Closed),
                    Poll::Pending => return Step::Wait,
                },
                Closing::Lingering(timer) => {
                    let mut scratch = [0u8; 2048];
                    loop {
                        let mut buf = ReadBuf::new(&mut scratch);
                        match Pin::new(&mut self.wire.io).poll_read(cx, &mut buf) {
                            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                                return Step::Done(End::Closed)
                            }
                            Poll::Ready(Ok(())) => {}
                            Poll::Ready(Err(_)) => return Step::Done(End::Closed),
                            Poll::Pending => break,
                        }
                    }
                    if timer.fired(cx) {
                        return Step::Done(End::Closed);
                    }
                    return Step::Wait;
                }
            }
        }
    }
}

impl Active {
    /// Whether the connection can serve another request after this one, as
    /// far as the request body goes: read, or small enough to drop.
    fn can_keep_alive(&self) -> bool {
        if self.expect == Continue::Owed {
            // The client waits for 100 Continue: it may never send the body.
            return self.body.is_done();
        }
        match self.body.remaining() {
            Some(n) => n <= DRAIN_MAX,
            None => false,
        }
    }

    /// Give the app the next piece of body; true if anything changed.
    fn feed_body<I: Io>(
        &mut self,
        wire: &mut Wire<I>,
        max_body: u64,
        request_timeout: Option<Duration>,
        cx: &mut Context<'_>,
    ) -> bool {
        loop {
            match self.body.decode(&mut wire.rbuf, usize::MAX) {
                Ok(Decoded::Data(data)) => {
                    self.stall = None;
                    self.body_read += data.len() as u64;
                    if max_body > 0 && self.body_read > max_body {
                        self.ex.refuse(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "Payload Too Large",
                            "body_too_large",
                        );
                        return true;
                    }
                    let last = self.body.is_done();
                    self.ex.give_body(data, last);
                    return true;
                }
                Ok(Decoded::End) => {
                    self.stall = None;
                    self.ex.give_body(Bytes::new(), true);
                    return true;
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => {
                    tracing::debug!("bad request body: {}", e.0);
                    self.ex
                        .refuse(StatusCode::BAD_REQUEST, e.0, "protocol_error");
                    return true;
                }
            }
            if self.expect == Continue::Owed {
                self.expect = Continue::No;
                wire.out.put_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            match wire.read(cx, usize::MAX) {
                Read::Data => continue,
                Read::Eof => {
                    self.ex.close("client_closed");
                    return true;
                }
                Read::Failed => {
                    self.ex.close("read_error");
                    return true;
                }
                Read::Pending => {
                    return self.ex.body_stalled(&mut self.stall, request_timeout, cx);
                }
            }
        }
    }

    /// The server is shutting down: an event stream ends now (cleanly);
    /// a streaming response is told, and may finish. (A response not
    /// started yet is left to finish; it is told if it starts streaming.)
    fn notify_shutdown(&mut self) {
        if self.notified || !matches!(self.response, Response::Body(_)) {
            return;
        }
        self.notified = true;
        self.ex.shut_down(self.req.sse);
    }
}

/// Write an exchange's access log line (once: the entry is taken).
fn log_end(entry: &mut Option<Entry>, status: u16, bytes: u64, ctx: &Ctx) {
    if let (Some(entry), Some(log)) = (entry.take(), &ctx.access_log) {
        log.write(entry, status, bytes);
    }
}

impl BodyOut {
    /// Frame one piece of the app's output.
    fn queue(&mut self, piece: Out, out: &mut Output) {
        let len = piece.len();
        match self.framing {
            BodyFraming::None => {}
            BodyFraming::Length(n) => {
                // More than promised is the app's error: cut to the length.
                let room = n - self.sent.min(n);
                if len > room {
                    tracing::error!(
                        "PAGI application sent more than its Content-Length ({n}): the rest is dropped"
                    );
                }
                let take = len.min(room);
                match piece {
                    Out::Data(b) => out.push_bytes(b.slice(..take as usize)),
                    Out::File(mut f) => {
                        f.len = take;
                        out.push_file(f);
                    }
                    Out::Trailers(_) => {}
                }
                self.sent += take;
                return;
            }
            BodyFraming::Chunked => match piece {
                Out::Data(b) => {
                    if b.is_empty() {
                        return;
                    }
                    encode::put_chunk_header(out.tail(), b.len());
                    out.push_bytes(b);
                    out.put_slice(b"\r\n");
                }
                Out::File(f) => {
                    if f.len == 0 {
                        return;
                    }
                    encode::put_chunk_header(out.tail(), f.len as usize);
                    out.push_file(f);
                    out.put_slice(b"\r\n");
                }
                Out::Trailers(t) => {
                    encode::put_chunked_end(out.tail(), Some(&t));
                    self.ended = true;
                }
            },
            BodyFraming::UntilClose => match piece {
                Out::Data(b) => out.push_bytes(b),
                Out::File(f) => out.push_file(f),
                Out::Trailers(_) => {}
            },
        }
        self.sent += len;
    }

    /// Queue the end of the body.
    fn end(&mut self, out: &mut Output) {
        if self.ended {
            return;
        }
        self.ended = true;
        if self.framing == BodyFraming::Chunked {
            encode::put_chunked_end(out.tail(), None);
        }
        if self.framing == BodyFraming::UntilClose {
            self.keep_alive = false;
        }
    }
}
