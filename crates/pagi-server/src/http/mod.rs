//! HTTP/1.1 on hyper: one service call per request, dispatching to the
//! WebSocket upgrade path or to an `http` exchange with the app.

mod exchange;
mod sse;

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use hyper::body::Incoming;
use pagi::{HttpScope, PagiInfo, Receiver, Scope, Sender, State};

use exchange::{AppBody, AppDriver, Exchange, HttpSource, Outcome};

use crate::ctx::{Activity, Ctx, RequestGuard};
use crate::listener::{ConnInfo, Io};
use crate::wire::request::{self as scope, RequestHead};
use crate::wire::{response, sse as sse_wire};

/// Either a canned response or the app's streamed one.
pub(crate) enum ResponseBody {
    Canned(Option<Bytes>),
    App(AppBody),
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = pagi::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Canned(b) => std::task::Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::App(a) => std::pin::Pin::new(a).poll_frame(cx),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            ResponseBody::Canned(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::App(a) => a.size_hint(),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Canned(None))
    }
}

/// A short text/plain response the server makes itself.
pub(crate) fn canned(status: StatusCode, close: bool) -> Response<ResponseBody> {
    response::canned(status, close).map(ResponseBody::Canned)
}

/// hyper's service for one connection: one call per request.
///
/// Written out rather than an `async fn`: the scope and the app are set up
/// synchronously in `call`, so the future hyper stores and polls holds only
/// the app driver (not the request, which an `async fn` would copy into
/// its state first). Generic over the connection's byte stream `I`, which a
/// WebSocket upgrade takes back from hyper.
pub(crate) struct Service<I> {
    ctx: Arc<Ctx>,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    /// The previous request's exchange, reused when nothing holds it any
    /// more (see [`Exchange::recycle`]).
    last: std::cell::Cell<Option<Arc<Exchange>>>,
    io: PhantomData<fn() -> I>,
}

impl<I> Service<I> {
    pub(crate) fn new(ctx: Arc<Ctx>, info: ConnInfo, activity: Arc<Activity>) -> Self {
        Service {
            ctx,
            info: Arc::new(info),
            activity,
            last: Default::default(),
            io: PhantomData,
        }
    }
}

impl<I: Io> hyper::service::Service<Request<Incoming>> for Service<I> {
    type Response = Response<ResponseBody>;
    type Error = std::convert::Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> ResponseFuture {
        if crate::ws::is_upgrade_request(&req) {
            let fut = crate::ws::handle_upgrade::<I>(req, self.ctx.clone(), self.info.clone());
            return ResponseFuture::Upgrade(Box::pin(async move {
                fut.await.map(ResponseBody::Canned)
            }));
        }
        let last = self.last.take();
        match start_app(req, &self.ctx, &self.info, self.activity.begin(), last) {
            Ok(driver) => {
                self.last.set(Some(driver.exchange().clone()));
                ResponseFuture::App(Some(driver))
            }
            Err(last) => {
                self.last.set(last);
                let resp = canned(StatusCode::PAYLOAD_TOO_LARGE, true);
                ResponseFuture::Ready(Some(Box::new(resp)))
            }
        }
    }
}

/// The response to one request, as hyper polls for it.
pub(crate) enum ResponseFuture {
    /// A WebSocket handshake (boxed: rare, and its future is large).
    Upgrade(pagi::BoxFuture<Response<ResponseBody>>),
    /// A response the server makes without the app (boxed: rare, and
    /// hyper moves this future, so its size is paid on every request).
    Ready(Option<Box<Response<ResponseBody>>>),
    /// The app runs until it starts its response (or ends without one).
    App(Option<AppDriver>),
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let resp = match self.get_mut() {
            ResponseFuture::Upgrade(fut) => std::task::ready!(fut.as_mut().poll(cx)),
            ResponseFuture::Ready(resp) => *resp.take().expect("polled after completion"),
            ResponseFuture::App(slot) => {
                let driver = slot.as_mut().expect("polled after completion");
                let outcome = std::task::ready!(driver.poll_head(cx));
                let driver = slot.take().expect("polled above");
                match outcome {
                    Outcome::Started(head, size) => {
                        let body = driver.body(size);
                        Response::from_parts(head, ResponseBody::App(body))
                    }
                    Outcome::Finished(result) => {
                        let ex = driver.exchange().clone();
                        drop(driver);
                        no_response(&ex, result)
                    }
                    Outcome::Refused(status) => canned(status, true),
                }
            }
        };
        Poll::Ready(Ok(resp))
    }
}

/// The app ended (or failed) before starting a response.
fn no_response(ex: &Exchange, result: Result<(), pagi::BoxError>) -> Response<ResponseBody> {
    if let Some(status) = ex.refusal() {
        return canned(status, true);
    }
    if !ex.conn.is_connected() {
        // The client already left: not an application error.
        return canned(StatusCode::INTERNAL_SERVER_ERROR, true);
    }
    match result {
        Ok(()) => tracing::error!("PAGI application returned without starting a response"),
        Err(e) => tracing::error!("PAGI application error: {e}"),
    }
    ex.conn.mark_response_started();
    ex.close("server_error");
    canned(StatusCode::INTERNAL_SERVER_ERROR, true)
}

/// Build the scope and the app's handles and call the app (not yet polled);
/// `Err` (handing `last` back) if the declared body is over `max_body_size`
/// (413, no app call).
fn start_app(
    req: Request<Incoming>,
    ctx: &Arc<Ctx>,
    info: &ConnInfo,
    request: RequestGuard,
    last: Option<Arc<Exchange>>,
) -> Result<AppDriver, Option<Arc<Exchange>>> {
    let (mut parts, body) = req.into_parts();
    let cfg = &ctx.config;
    let limit = cfg.max_body_size;
    // hyper already parsed Content-Length into the body's exact size.
    let declared = http_body::Body::size_hint(&body).exact();
    if limit > 0 && declared.is_some_and(|n| n > limit) {
        return Err(last);
    }
    let head: RequestHead = scope::request_head(&parts);
    let sse = sse_wire::wants_event_stream(&head.headers);
    let (client, secure) = info.identity(&head.headers, &cfg.proxy);
    let mut spare_headers = std::mem::take(&mut parts.headers);
    spare_headers.clear();
    let ex = Exchange::recycle(
        last,
        cfg.ws_write_high_watermark,
        cfg.ws_write_low_watermark,
        if sse { "sse" } else { "http" },
        spare_headers,
    );
    // Every field spelled out: `..HttpScope::default()` would build (and
    // drop) a throwaway `Connection` per request.
    let scope = Box::new(HttpScope {
        pagi: PagiInfo::default(),
        http_version: head.http_version,
        method: method_name(&parts.method),
        scheme: Cow::Borrowed(if secure { "https" } else { "http" }),
        path: head.path,
        raw_path: head.raw_path,
        query_string: head.query_string,
        root_path: cfg.root_path.clone(),
        headers: head.headers,
        client,
        server: Some(info.local.clone()),
        state: ctx.state.clone(),
        extensions: info.extensions(),
        connection: ex.conn.clone(),
        transport: Some(ex.transport.clone()),
        custom: State::default(),
    });
    let receiver = Receiver::new(HttpSource {
        body,
        ex: ex.clone(),
        limit,
        read: 0,
        body_finished: false,
        sse,
        stall_limit: cfg.request_timeout,
        stall: None,
        stall_armed: false,
    });
    let (scope, sender) = if sse {
        if let Some(limit) = cfg.sse_idle_timeout {
            ex.set_idle_limit(limit);
        }
        let sink = Arc::new(sse::SseSink::new(ex.clone()));
        (Scope::Sse(scope), Sender::new(sink))
    } else {
        let sink: Arc<dyn pagi::EventSink> = ex.clone();
        (Scope::Http(scope), Sender::new(sink))
    };
    let fut = ctx.app.call(scope, receiver, sender);
    Ok(AppDriver::new(fut, ex, ctx.live.guard(), request))
}

/// The method's name; the standard ones without allocating.
fn method_name(m: &http::Method) -> Cow<'static, str> {
    use http::Method as M;
    const STANDARD: &[(M, &str)] = &[
        (M::GET, "GET"),
        (M::POST, "POST"),
        (M::PUT, "PUT"),
        (M::DELETE, "DELETE"),
        (M::HEAD, "HEAD"),
        (M::OPTIONS, "OPTIONS"),
        (M::PATCH, "PATCH"),
        (M::CONNECT, "CONNECT"),
        (M::TRACE, "TRACE"),
    ];
    match STANDARD.iter().find(|(std, _)| std == m) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(m.as_str().to_owned()),
    }
}
