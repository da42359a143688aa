//! WebSocket sessions: the handshake (answered only once the app decides),
//! then the session, the app and the socket driver polled side by side —
//! in the connection's own task over HTTP/1.1 ([`serve_h1`]), in a task of
//! its own where hyper hands the stream over ([`serve_tunnel`]: HTTP/2's
//! extended CONNECT, or a host's upgrade through [`crate::embed`]).

mod driver;
mod shared;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use pagi::server::TransportControl;
use pagi::{BoxError, BoxFuture, Headers, Receiver, Scope, Sender, WebSocketScope};
use pagi_ws::SessionConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::access_log::Entry;
use crate::ctx::{Ctx, LiveGuard, Phase, PhaseWatch};
use crate::listener::{ConnInfo, Io};
use crate::wire;
use crate::wire::h1::encode;
use crate::wire::h1::head::Head;
use crate::wire::handshake::{self, Refusal};
use crate::wire::request::{self, RequestHead};
use shared::{Decision, Half, WsShared, WsSource};

/// Input a client may send while the app decides (it should send none: a
/// client waits for the 101), kept for the session; beyond it, the
/// connection stops reading until the decision.
const EARLY_MAX: usize = 64 * 1024;

/// Answer a WebSocket handshake on `io` (`early`: bytes already read behind
/// the request head): validate it, start the app with a `websocket` scope,
/// reply 101 / 403 / the app's denial / 500 according to what the app does
/// first, and run the session until it ends. The session is set up here,
/// before anything is awaited; the future returned is boxed, and holds
/// just it.
pub(crate) fn serve_h1<I: Io>(
    mut io: I,
    early: Bytes,
    mut head: Box<Head>,
    ctx: Arc<Ctx>,
    info: Arc<ConnInfo>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    if let Err(refusal) = handshake::validate(&head) {
        let mut out = BytesMut::new();
        match refusal {
            Refusal::BadRequest(why) => encode::canned(400, why, false, &mut out),
            Refusal::WrongVersion => encode::canned_with(
                426,
                "Upgrade Required",
                &[("sec-websocket-version", "13")],
                false,
                &mut out,
            ),
        }
        return Box::pin(async move {
            let _ = io.write_all(&out).await;
            let _ = io.shutdown().await;
        });
    }
    let accept_key = handshake::accept_key_of(&head.headers);
    let (client, _) = info.identity(&head.headers, &ctx.config.proxy);
    let log = ctx
        .access_log
        .as_ref()
        .map(|l| l.entry((&*head).into(), client));
    let scope_head = request::from_h1(&mut head);
    drop(head);
    let begun = begin(scope_head, &ctx, &info);
    let driver = driver::prepare(io, begun.shared.clone(), &ctx);
    let handshake = Box::new(Handshake {
        driver,
        accept_key,
        extensions: begun.extensions,
        early: BytesMut::from(&early[..]),
    });
    drop(early);
    Box::pin(Session {
        app: Some(begun.app),
        shared: begun.shared,
        socket: Socket::Deciding(handshake),
        phase: PhaseWatch::new(&ctx),
        ctx,
        log: log.map(Box::new),
        status: 0,
        tunneled: None,
    })
}

/// A session set up: its shared state, the app (not yet polled), and the
/// negotiated `Sec-WebSocket-Extensions` value.
struct Begun {
    shared: Arc<WsShared>,
    app: BoxFuture<Result<(), BoxError>>,
    extensions: Option<String>,
}

/// Negotiate compression, build the `websocket` scope, and call the app.
fn begin(head: RequestHead, ctx: &Arc<Ctx>, info: &ConnInfo) -> Begun {
    let cfg = &ctx.config;
    let negotiated = if cfg.ws_deflate.enabled {
        let offers: Vec<&[u8]> = head
            .headers
            .get_all("sec-websocket-extensions")
            .map(|v| &v[..])
            .collect();
        pagi_ws::handshake::negotiate_deflate(&offers, &cfg.ws_deflate)
    } else {
        None
    };
    let subprotocols = handshake::subprotocols(&head.headers);
    let transport = TransportControl::new(cfg.ws_write_high_watermark, cfg.ws_write_low_watermark);
    let mut extensions = info.extensions();
    extensions.insert("websocket.http.response", Default::default());
    let scope = WebSocketScope {
        info: ctx.request_info(head, info, ("ws", "wss"), extensions, transport.view()),
        subprotocols: subprotocols.clone(),
    };
    let session_config = SessionConfig {
        max_message_size: cfg.ws_max_message_size,
        deflate: negotiated.as_ref().map(|(p, _)| p.clone()),
        compress_min_size: cfg.ws_deflate.compress_min_size,
        compress_level: cfg.ws_deflate.level,
        // Replies to messages that arrived before a bad frame go out
        // before the failure's Close (the driver releases it once the app
        // drained its queue).
        defer_failure_close: true,
        max_inflate_ratio: cfg.ws_max_inflate_ratio,
    };
    let shared = WsShared::new(
        transport,
        session_config,
        subprotocols,
        cfg.ws_max_receive_queue,
        crate::budget::Account::new(ctx.budget.clone()),
    );
    let app = ctx.app.call(
        Scope::WebSocket(Box::new(scope)),
        Receiver::new(WsSource(shared.clone())),
        Sender::new(shared.clone() as Arc<dyn pagi::EventSink>),
    );
    Begun {
        shared,
        app,
        extensions: negotiated.map(|(_, value)| value),
    }
}

/// Whether an extended CONNECT names the `websocket` protocol (RFC 8441).
pub(crate) fn protocol_is_websocket<B>(request: &http::Request<B>) -> bool {
    request
        .extensions()
        .get::<hyper::ext::Protocol>()
        .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// How a handshake reached us when another HTTP layer holds the
/// connection (hyper: our HTTP/2 server, or a host's server embedding
/// WebSockets), and so how it is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tunnel {
    /// An HTTP/2 extended CONNECT with `:protocol` `websocket` (RFC 8441):
    /// accepted with `200`.
    H2,
    /// An HTTP/1.1 `Upgrade: websocket` a host's hyper server passes on:
    /// accepted with `101`, hyper then hands over the connection.
    H1,
}

/// Answer a WebSocket whose stream another HTTP layer will hand over (see
/// [`Tunnel`]): start the app, and answer the accept, 403, the app's denial
/// or 500 according to what it does first. The session runs in a task of
/// its own, over the stream hyper hands over once the accept went out.
///
/// `hold` is kept until the session ends (an HTTP/2 connection counts it
/// as an open stream).
pub(crate) fn serve_tunnel<B>(
    mut req: http::Request<B>,
    tunnel: Tunnel,
    ctx: Arc<Ctx>,
    info: Arc<ConnInfo>,
    hold: Box<dyn std::any::Any + Send>,
) -> Pin<Box<dyn Future<Output = http::Response<Option<Bytes>>> + Send>> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let (scope_head, accept_key) = match tunnel {
        Tunnel::H2 => (request::from_h2(&parts), None),
        Tunnel::H1 => {
            let head = request::from_parts(&parts, pagi::HttpVersion::Http11);
            let http11 = parts.version == http::Version::HTTP_11;
            if let Err(refusal) =
                handshake::validate_parts(parts.method.as_str(), http11, &head.headers)
            {
                let resp = match refusal {
                    Refusal::BadRequest(why) => refusal_tunnel(400, why, None),
                    Refusal::WrongVersion => refusal_tunnel(426, "Upgrade Required", Some("13")),
                };
                return Box::pin(async move { resp });
            }
            let accept_key = handshake::accept_key_of(&head.headers);
            (head, Some(accept_key))
        }
    };
    let version_ok = scope_head
        .headers
        .get("sec-websocket-version")
        .is_some_and(|v| v.trim_ascii() == b"13");
    if !version_ok {
        let resp = refusal_tunnel(426, "Upgrade Required", Some("13"));
        return Box::pin(async move { resp });
    }
    let (client, _) = info.identity(&scope_head.headers, &ctx.config.proxy);
    // Logged as what came over the wire, so that an access log tells
    // WebSockets over HTTP/2 (an extended CONNECT) from upgrades.
    let (method, version) = match tunnel {
        Tunnel::H2 => ("CONNECT", "HTTP/2.0"),
        Tunnel::H1 => ("GET", "HTTP/1.1"),
    };
    let log = ctx.access_log.as_ref().map(|l| {
        l.entry(
            crate::access_log::RequestLine {
                method: &std::borrow::Cow::Borrowed(method),
                path: &scope_head.raw_path,
                query: &scope_head.query_string,
                version,
                headers: &scope_head.headers,
            },
            client,
        )
    });
    let begun = begin(scope_head, &ctx, &info);
    let shared = begun.shared.clone();
    // The session gets the upgrade only if the answer accepted: a refused
    // HTTP/1.1 handshake leaves hyper's pending upgrade open until the
    // connection ends, and it must not hold the session (or its live
    // count) that long.
    let (hand_over, handed) = tokio::sync::oneshot::channel::<hyper::upgrade::OnUpgrade>();
    let upgraded: Pin<Box<dyn Future<Output = Option<TokioIo<Upgraded>>> + Send>> =
        Box::pin(async move { handed.await.ok()?.await.ok().map(TokioIo::new) });
    let answered = Arc::new(AtomicU16::new(0));
    tokio::spawn(Session {
        app: Some(begun.app),
        shared: begun.shared,
        socket: Socket::Upgrading(upgraded),
        phase: PhaseWatch::new(&ctx),
        ctx: ctx.clone(),
        log: log.map(Box::new),
        status: 0,
        tunneled: Some(Box::new(Tunneled {
            answered: answered.clone(),
            _live: ctx.live.guard(),
            _hold: hold,
        })),
    });
    let extensions = begun.extensions;
    Box::pin(async move {
        let decision = std::future::poll_fn(|cx| shared.poll_decision(cx)).await;
        // The status that opens the stream: 101 (HTTP/1.1), 200 (HTTP/2).
        let opens = match accept_key {
            Some(_) => http::StatusCode::SWITCHING_PROTOCOLS,
            None => http::StatusCode::OK,
        };
        let resp = answer_tunnel(decision, extensions, accept_key);
        answered.store(resp.status().as_u16(), Ordering::Relaxed);
        if resp.status() == opens {
            let _ = hand_over.send(on_upgrade);
        }
        resp
    })
}

/// The answer to the app's decision: `101` with `Sec-WebSocket-Accept`
/// (HTTP/1.1, `accept_key`) or `200` (HTTP/2) to accept.
fn answer_tunnel(
    decision: Result<Decision, bool>,
    extensions: Option<String>,
    accept_key: Option<String>,
) -> http::Response<Option<Bytes>> {
    match decision {
        Ok(Decision::Accept {
            subprotocol,
            headers,
        }) => {
            let mut resp = http::Response::new(None);
            let mut ours = Headers::new();
            if let Some(key) = accept_key {
                *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
                let h = resp.headers_mut();
                h.insert(
                    http::header::UPGRADE,
                    http::HeaderValue::from_static("websocket"),
                );
                h.insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("upgrade"),
                );
                ours.push("sec-websocket-accept", key);
            }
            if let Some(e) = extensions {
                ours.push("sec-websocket-extensions", e);
            }
            if let Some(p) = subprotocol {
                ours.push("sec-websocket-protocol", p);
            }
            wire::h2::append(resp.headers_mut(), &ours);
            wire::h2::append(resp.headers_mut(), &headers);
            resp
        }
        Ok(Decision::Reject) => refusal_tunnel(403, "Forbidden", None),
        Ok(Decision::Deny { status, .. })
            if accept_key.is_none() && (200..300).contains(&status) =>
        {
            // A 2xx answer to an extended CONNECT opens the tunnel: a denial
            // cannot say it over HTTP/2.
            tracing::error!(
                "PAGI application denied a WebSocket over HTTP/2 with status {status}: \
                 a 2xx would accept it; answering 500"
            );
            refusal_tunnel(500, "Internal Server Error", None)
        }
        Ok(Decision::Deny {
            status,
            headers,
            body,
        }) => {
            let mut resp = http::Response::new(Some(body));
            *resp.status_mut() =
                http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::FORBIDDEN);
            wire::h2::append(resp.headers_mut(), &headers);
            resp
        }
        Err(failed) => {
            if !failed {
                tracing::error!("PAGI application returned without accepting the WebSocket");
            }
            refusal_tunnel(500, "Internal Server Error", None)
        }
    }
}

fn refusal_tunnel(
    status: u16,
    why: &str,
    version: Option<&'static str>,
) -> http::Response<Option<Bytes>> {
    let mut resp = wire::h2::canned(status, why).map(Some);
    if let Some(v) = version {
        resp.headers_mut()
            .insert("sec-websocket-version", http::HeaderValue::from_static(v));
    }
    resp
}

/// Poll rounds before the session yields to the scheduler.
const MAX_ROUNDS: usize = 32;

/// A WebSocket session: the app and the socket's half (the handshake's
/// answer, then the driver), polled side by side in the connection's task.
/// It ends when both are done, or when a forced shutdown stops it.
///
/// Written out as a struct rather than nested `async` blocks: it is what
/// every open WebSocket holds for its whole life, and each nesting level of
/// async functions would keep room for its arguments and all its states.
struct Session<I> {
    app: Option<BoxFuture<Result<(), BoxError>>>,
    shared: Arc<WsShared>,
    socket: Socket<I>,
    /// One watch on the server's phase per session: draining asks the
    /// driver for Close 1001, stopped drops everything.
    phase: PhaseWatch,
    ctx: Arc<Ctx>,
    log: Option<Box<Entry>>,
    /// The handshake's status, for the log.
    status: u16,
    /// What only a session whose stream hyper hands over has (HTTP/2, or a
    /// host's HTTP/1.1 upgrade).
    tunneled: Option<Box<Tunneled>>,
}

/// A tunneled session runs in a task of its own.
struct Tunneled {
    /// The status the stream was answered with (0 until it was).
    answered: Arc<AtomicU16>,
    /// Keeps the server waiting for the session (one in its connection's
    /// task is counted with the connection).
    _live: LiveGuard,
    /// Keeps the stream counted by its connection (HTTP/2).
    _hold: Box<dyn std::any::Any + Send>,
}

/// The socket's half of a session.
enum Socket<I> {
    /// Tunneled: waiting for the stream hyper hands over once the accept
    /// (`200` on HTTP/2, `101` for a host's upgrade) went out (`None`: it did not, the app refused or the client left).
    Upgrading(Pin<Box<dyn Future<Output = Option<I>> + Send>>),
    /// Waiting for the app's decision.
    Deciding(Box<Handshake<I>>),
    /// Writing the answer; then the session runs if it was a 101.
    Answering(Box<Answer<I>>),
    Running(Box<driver::Driver<I>>),
    /// A refusal was written: shutting the stream.
    Shutting(Box<driver::Driver<I>>),
    Done,
}

/// What answering the handshake needs once the app decided.
struct Handshake<I> {
    driver: Box<driver::Driver<I>>,
    accept_key: String,
    /// The negotiated `Sec-WebSocket-Extensions` value.
    extensions: Option<String>,
    /// Bytes that came behind the request head (a client should send none
    /// before the 101).
    early: BytesMut,
}

struct Answer<I> {
    driver: Box<driver::Driver<I>>,
    out: Bytes,
    accepted: bool,
    early: BytesMut,
}

impl<I: Io> Future for Session<I> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Poll::Ready(phase) = this.phase.poll_change(cx) {
            if phase == Phase::Stopped {
                this.shared.end(1006, "server_shutdown");
                this.log_end();
                return Poll::Ready(());
            }
            this.shared.begin_shutdown();
        }
        // A wake between the halves (a message for the app, a frame for the
        // driver) marks the session dirty and loops here instead of
        // rescheduling the task. The first round polls both halves (the wake
        // may have come from either's socket or timer); later rounds only
        // those woken since they last ran.
        this.shared.begin_poll(cx);
        let mut todo = Half::BOTH;
        for _ in 0..MAX_ROUNDS {
            if todo & Half::App.bit() != 0 {
                this.poll_app(cx);
            }
            if todo & Half::Driver.bit() != 0 {
                this.poll_socket(cx);
            }
            todo = this.shared.end_poll();
            if this.app.is_none() && matches!(this.socket, Socket::Done) {
                this.log_end();
                return Poll::Ready(());
            }
            if todo == 0 {
                return Poll::Pending;
            }
        }
        // Busy for a while: yield to other tasks, come back soon.
        this.shared.end_poll_now();
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<I: Io> Session<I> {
    fn poll_app(&mut self, cx: &mut Context<'_>) {
        let Some(app) = &mut self.app else { return };
        // A panic is an app error: the session still ends properly (500
        // before accept, Close 1011 after); the handshake never waits forever.
        let Poll::Ready(result) = crate::app_poll::poll_app(app, cx) else {
            return;
        };
        self.app = None;
        if let Err(e) = &result {
            tracing::error!("PAGI application error (WebSocket): {e}");
        }
        self.shared.app_finished(result.is_err());
    }

    fn poll_socket(&mut self, cx: &mut Context<'_>) {
        loop {
            match &mut self.socket {
                Socket::Upgrading(upgrade) => {
                    let Poll::Ready(io) = upgrade.as_mut().poll(cx) else {
                        return;
                    };
                    match io {
                        Some(io) => {
                            let driver = driver::prepare(io, self.shared.clone(), &self.ctx);
                            self.socket = Socket::Running(driver);
                        }
                        None => {
                            self.shared.end(1006, "client_closed");
                            self.socket = Socket::Done;
                            return;
                        }
                    }
                }
                Socket::Deciding(hs) => {
                    let Poll::Ready(decision) = poll_decision(&self.shared, hs, cx) else {
                        return;
                    };
                    let Socket::Deciding(hs) = std::mem::replace(&mut self.socket, Socket::Done)
                    else {
                        unreachable!()
                    };
                    let Some(decision) = decision else {
                        return; // the client left
                    };
                    let (out, status, accepted) = answer(decision, &hs);
                    self.status = status;
                    let Handshake { driver, early, .. } = *hs;
                    self.socket = Socket::Answering(Box::new(Answer {
                        driver,
                        out,
                        accepted,
                        early,
                    }));
                }
                Socket::Answering(a) => {
                    while !a.out.is_empty() {
                        match Pin::new(a.driver.stream()).poll_write(cx, &a.out) {
                            Poll::Ready(Ok(n)) if n > 0 => bytes::Buf::advance(&mut a.out, n),
                            Poll::Ready(_) => {
                                self.shared.end(1006, "write_error");
                                self.socket = Socket::Done;
                                return;
                            }
                            Poll::Pending => return,
                        }
                    }
                    let Socket::Answering(a) = std::mem::replace(&mut self.socket, Socket::Done)
                    else {
                        unreachable!()
                    };
                    let Answer {
                        mut driver,
                        accepted,
                        early,
                        ..
                    } = *a;
                    self.socket = if accepted {
                        driver.set_early(&early);
                        Socket::Running(driver)
                    } else {
                        Socket::Shutting(driver)
                    };
                }
                Socket::Running(driver) => {
                    if driver.poll_session(cx).is_ready() {
                        self.socket = Socket::Done;
                    }
                    return;
                }
                Socket::Shutting(driver) => {
                    if Pin::new(driver.stream()).poll_shutdown(cx).is_pending() {
                        return;
                    }
                    self.shared.end(1006, "client_closed");
                    self.socket = Socket::Done;
                }
                Socket::Done => return,
            }
        }
    }

    fn log_end(&mut self) {
        if let (Some(entry), Some(log)) = (self.log.take(), &self.ctx.access_log) {
            let status = match &self.tunneled {
                // 0: the stream ended before it was answered (the client
                // reset it); logged as nginx does, 499.
                Some(t) => match t.answered.load(Ordering::Relaxed) {
                    0 => 499,
                    s => s,
                },
                None => self.status,
            };
            log.write(*entry, status, 0);
        }
    }
}

/// The app's decision, while watching the socket: a client that leaves
/// ends the session (1006 `client_closed`) and gives `None`.
fn poll_decision<I: Io>(
    shared: &WsShared,
    hs: &mut Handshake<I>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Decision, bool>>> {
    if let Poll::Ready(d) = shared.poll_decision(cx) {
        return Poll::Ready(Some(d));
    }
    while hs.early.len() < EARLY_MAX {
        let room = EARLY_MAX - hs.early.len();
        let mut limited = bytes::BufMut::limit(&mut hs.early, room);
        match std::pin::pin!(hs.driver.stream().read_buf(&mut limited)).poll(cx) {
            Poll::Ready(Ok(0)) => {
                shared.end(1006, "client_closed");
                return Poll::Ready(None);
            }
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(_)) => {
                shared.end(1006, "read_error");
                return Poll::Ready(None);
            }
            Poll::Pending => break,
        }
    }
    Poll::Pending
}

/// The response that answers the handshake: its bytes, its status, and
/// whether the session goes on.
fn answer<I>(decision: Result<Decision, bool>, hs: &Handshake<I>) -> (Bytes, u16, bool) {
    let mut out = BytesMut::new();
    let (status, accepted) = match decision {
        Ok(Decision::Accept {
            subprotocol,
            headers,
        }) => {
            encode::switching_protocols(
                &hs.accept_key,
                hs.extensions.as_deref(),
                subprotocol.as_deref(),
                &headers,
                &mut out,
            );
            (101, true)
        }
        Ok(Decision::Reject) => {
            encode::canned(403, "Forbidden", false, &mut out);
            (403, false)
        }
        Ok(Decision::Deny {
            status,
            headers,
            body,
        }) => {
            let info = encode::ResponseInfo {
                status,
                head_request: false,
                http10: false,
                keep_alive: false,
                event_stream: false,
                known_length: Some(body.len() as u64),
                trailers: false,
            };
            let framing = encode::encode_head(&info, &headers, &mut out).framing;
            if framing != encode::BodyFraming::None {
                out.extend_from_slice(&body);
            }
            (status, false)
        }
        Err(failed) => {
            if !failed {
                tracing::error!("PAGI application returned without accepting the WebSocket");
            }
            encode::canned(500, "Internal Server Error", false, &mut out);
            (500, false)
        }
    };
    (out.freeze(), status, accepted)
}
