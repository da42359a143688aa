//! WebSocket over HTTP/1.1: the handshake (answered only once the app
//! decides), then one task per session running the app and the socket
//! driver side by side.

mod driver;
mod shared;

use std::future::{poll_fn, Future};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pagi::{BoxError, BoxFuture, Receiver, Scope, Sender, Transport, WebSocketScope};
use pagi_ws::SessionConfig;

use crate::ctx::{Ctx, LiveGuard, Phase};
use crate::listener::{ConnInfo, Io};
use crate::wire::handshake::{self, Refusal};
use crate::wire::request::{header_has_token, request_head};
use crate::wire::response::canned;
use shared::{Decision, Half, WsShared, WsSource};

/// A response the upgrade path makes (the 101 has no body).
type Answer = Response<Option<Bytes>>;

pub(crate) fn is_upgrade_request(req: &Request<Incoming>) -> bool {
    // hyper marks HTTP/1.1 requests that carry `Upgrade` with a pending
    // upgrade: for every other HTTP/1.1 request this saves a header lookup.
    // (Other versions are checked in full, so that an HTTP/1.0 attempt still
    // gets its 400.)
    let may_upgrade = req.version() != http::Version::HTTP_11
        || req
            .extensions()
            .get::<hyper::upgrade::OnUpgrade>()
            .is_some();
    may_upgrade && header_has_token(req.headers(), header::UPGRADE, "websocket")
}

/// Answer an upgrade request: validate it, start the app with a
/// `websocket` scope, and reply 101 / 403 / the app's denial / 500
/// according to what the app does first. Once upgraded, the session runs
/// on the connection's own stream `I`, taken back from hyper.
pub(crate) async fn handle_upgrade<I: Io>(
    mut req: Request<Incoming>,
    ctx: Arc<Ctx>,
    info: Arc<ConnInfo>,
) -> Answer {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    debug_assert!(handshake::is_upgrade(&parts));
    if let Err(refusal) = handshake::validate(&parts) {
        return refusal_response(refusal);
    }
    let cfg = &ctx.config;
    let key = parts.headers[header::SEC_WEBSOCKET_KEY]
        .as_bytes()
        .trim_ascii();
    let accept_key = pagi_ws::handshake::accept_key(key);
    let negotiated = if cfg.ws_deflate.enabled {
        let offers: Vec<&[u8]> = parts
            .headers
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        pagi_ws::handshake::negotiate_deflate(&offers, &cfg.ws_deflate)
    } else {
        None
    };
    let head = request_head(&parts);
    let subprotocols = handshake::subprotocols(&parts);
    let transport = Transport::new(cfg.ws_write_high_watermark, cfg.ws_write_low_watermark);
    let (client, secure) = info.identity(&head.headers, &cfg.proxy);
    let mut extensions = info.extensions();
    extensions.insert("websocket.http.response", Default::default());
    let scope = WebSocketScope {
        http_version: head.http_version,
        scheme: std::borrow::Cow::Borrowed(if secure { "wss" } else { "ws" }),
        path: head.path,
        raw_path: head.raw_path,
        query_string: head.query_string,
        root_path: cfg.root_path.clone(),
        headers: head.headers,
        client,
        server: Some(info.local.clone()),
        subprotocols: subprotocols.clone(),
        state: ctx.state.clone(),
        extensions,
        transport: Some(transport.clone()),
        ..WebSocketScope::default()
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
    tokio::spawn(session_task::<I>(
        app,
        shared.clone(),
        on_upgrade,
        ctx.clone(),
        ctx.live.guard(),
    ));

    // If hyper drops us here the client left before the app decided.
    let gone = ClientGone(Some(shared.clone()));
    let decision = poll_fn(|cx| shared.poll_decision(cx)).await;
    gone.disarm();
    match decision {
        Ok(Decision::Accept {
            subprotocol,
            headers,
        }) => {
            let mut resp = Response::new(None);
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = resp.headers_mut();
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(
                header::SEC_WEBSOCKET_ACCEPT,
                HeaderValue::from_str(&accept_key).expect("base64 is a valid header value"),
            );
            if let Some((_, value)) = &negotiated {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v);
                }
            }
            if let Some(p) = subprotocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
                h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
            }
            for (name, value) in headers {
                if let Some(name) = name {
                    h.append(name, value);
                }
            }
            resp
        }
        Ok(Decision::Reject) => canned(StatusCode::FORBIDDEN, true),
        Ok(Decision::Deny { head, body }) => {
            let mut resp = Response::from_parts(head, Some(body));
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        Err(failed) => {
            if !failed {
                tracing::error!("PAGI application returned without accepting the WebSocket");
            }
            canned(StatusCode::INTERNAL_SERVER_ERROR, true)
        }
    }
}

fn refusal_response(refusal: Refusal) -> Answer {
    match refusal {
        Refusal::BadRequest(why) => {
            let mut resp = canned(StatusCode::BAD_REQUEST, true);
            *resp.body_mut() = Some(format!("Bad Request: {why}\n").into());
            resp
        }
        Refusal::WrongVersion => {
            let mut resp = canned(StatusCode::UPGRADE_REQUIRED, true);
            resp.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            resp
        }
    }
}

/// Marks the session ended (1006 `client_closed`) unless disarmed.
struct ClientGone(Option<Arc<WsShared>>);

impl ClientGone {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for ClientGone {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.end(1006, "client_closed");
        }
    }
}

/// Poll rounds before the session task yields to the scheduler.
const MAX_ROUNDS: usize = 32;

/// One task per session: the app and, once upgraded, the socket driver.
/// It ends when both are done, or when a forced shutdown stops it.
async fn session_task<I: Io>(
    app: BoxFuture<Result<(), BoxError>>,
    shared: Arc<WsShared>,
    on_upgrade: hyper::upgrade::OnUpgrade,
    ctx: Arc<Ctx>,
    _live: LiveGuard,
) {
    let app_part = async {
        // A panic is an app error: the session still ends properly (500
        // before accept, Close 1011 after), the handshake never waits forever.
        let mut app = app;
        let result = poll_fn(|cx| crate::app_poll::poll_app(&mut app, cx)).await;
        if let Err(e) = &result {
            tracing::error!("PAGI application error (WebSocket): {e}");
        }
        shared.app_finished(result.is_err());
    };
    let socket_part = async {
        // The driver future is made before it is awaited, so that nothing
        // of the upgrade (the stream, hyper's parts) stays in this task's
        // state beside it.
        let driver = match on_upgrade.await {
            Ok(upgraded) => match upgraded.downcast::<TokioIo<I>>() {
                Ok(parts) => Some(driver::drive(
                    parts.io.into_inner(),
                    parts.read_buf,
                    shared.clone(),
                    &ctx,
                )),
                Err(_) => {
                    shared.end(1006, "server_error");
                    None
                }
            },
            // Not upgraded: refused, denied, or the client left.
            Err(_) => {
                shared.end(1006, "client_closed");
                None
            }
        };
        if let Some(driver) = driver {
            driver.await;
        }
    };
    // Poll both halves in one loop; a wake between them (a message for the
    // app, a frame for the driver) marks the session dirty and loops here
    // instead of rescheduling the task.
    let both = async {
        tokio::pin!(app_part, socket_part);
        let (mut app_done, mut socket_done) = (false, false);
        poll_fn(|cx| {
            shared.begin_poll(cx);
            // The first round polls both halves (the wake may have come from
            // either's socket or timer); later rounds only those woken since
            // they last ran.
            let mut todo = Half::BOTH;
            for _ in 0..MAX_ROUNDS {
                if !app_done && todo & Half::App.bit() != 0 {
                    app_done = app_part.as_mut().poll(cx).is_ready();
                }
                if !socket_done && todo & Half::Driver.bit() != 0 {
                    socket_done = socket_part.as_mut().poll(cx).is_ready();
                }
                todo = shared.end_poll();
                if app_done && socket_done {
                    return std::task::Poll::Ready(());
                }
                if todo == 0 {
                    return std::task::Poll::Pending;
                }
            }
            // Busy for a while: yield to other tasks, come back soon.
            shared.end_poll_now();
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await
    };
    // One watch on the server's phase per session (not one per half):
    // draining asks the driver for Close 1001, stopped drops everything.
    let mut phase = ctx.phase.clone();
    tokio::pin!(both);
    let mut seen = Phase::Running;
    loop {
        let now = *phase.borrow_and_update();
        if now >= Phase::Draining && seen < Phase::Draining {
            shared.begin_shutdown();
        }
        if now == Phase::Stopped {
            shared.end(1006, "server_shutdown");
            return;
        }
        seen = now;
        tokio::select! {
            () = &mut both => return,
            changed = phase.changed() => if changed.is_err() {
                shared.end(1006, "server_shutdown");
                return;
            },
        }
    }
}
