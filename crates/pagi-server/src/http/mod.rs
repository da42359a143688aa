//! HTTP/1.1 on hyper: one service call per request, dispatching to the
//! WebSocket upgrade path or to an `http` exchange with the app.

mod exchange;
pub(crate) mod scope;
mod sse;

use std::borrow::Cow;
use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use hyper::body::Incoming;
use pagi::{
    Connection, Extensions, HttpScope, PagiInfo, Receiver, Scope, Sender, ServerAddr, State,
    Transport,
};

pub(crate) use exchange::{header_map, response_head, AppBody};
use exchange::{AppDriver, Exchange, HttpSource, Outcome};

use crate::server::{Ctx, RequestGuard};

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
    let text = format!("{}\n", status.canonical_reason().unwrap_or("Error"));
    let mut resp = Response::new(ResponseBody::Canned(Some(Bytes::from(text))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        h.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// hyper's service entry point for one request.
pub(crate) async fn handle(
    req: Request<Incoming>,
    ctx: Arc<Ctx>,
    peer: std::net::SocketAddr,
    request: RequestGuard,
) -> Result<Response<ResponseBody>, std::convert::Infallible> {
    if crate::ws::is_upgrade_request(&req) {
        // Boxed: keeps the (much more common) HTTP service future small,
        // since hyper moves it around by value.
        return Ok(Box::pin(crate::ws::handle_upgrade(req, ctx, peer)).await);
    }
    Ok(handle_http(req, ctx, peer, request).await)
}

async fn handle_http(
    req: Request<Incoming>,
    ctx: Arc<Ctx>,
    peer: std::net::SocketAddr,
    request: RequestGuard,
) -> Response<ResponseBody> {
    // Everything up to the first await happens in a plain function, so the
    // future (which hyper moves into place for every request) only holds
    // what lives across the await: the driver and the exchange.
    let Some((mut driver, ex)) = start_app(req, &ctx, peer, request) else {
        return canned(StatusCode::PAYLOAD_TOO_LARGE, true);
    };
    match poll_fn(|cx| driver.poll_head(cx)).await {
        Outcome::Started(head) => {
            let body = driver.body().seal_if_complete();
            Response::from_parts(head, ResponseBody::App(body))
        }
        Outcome::Finished(result) => {
            if ex.too_large() {
                return canned(StatusCode::PAYLOAD_TOO_LARGE, true);
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
    }
}

/// Build the scope and the app's handles and call the app (not yet polled);
/// `None` if the declared body is over `max_body_size` (413, no app call).
fn start_app(
    req: Request<Incoming>,
    ctx: &Arc<Ctx>,
    peer: std::net::SocketAddr,
    request: RequestGuard,
) -> Option<(AppDriver, Arc<Exchange>)> {
    let (parts, body) = req.into_parts();
    let limit = ctx.config.max_body_size;
    // hyper already parsed Content-Length into the body's exact size.
    let declared = http_body::Body::size_hint(&body).exact();
    if limit > 0 && declared.is_some_and(|n| n > limit) {
        return None;
    }
    let head = scope::request_head(&parts);
    let conn = Connection::new();
    let transport = Transport::new(
        ctx.config.ws_write_high_watermark,
        ctx.config.ws_write_low_watermark,
    );
    // Every field spelled out: `..HttpScope::default()` would build (and
    // drop) a throwaway `Connection` per request.
    let scope = HttpScope {
        pagi: PagiInfo::default(),
        http_version: head.http_version,
        method: method_name(&parts.method),
        scheme: Cow::Borrowed("http"),
        path: head.path,
        raw_path: head.raw_path,
        query_string: head.query_string,
        root_path: String::new(),
        headers: head.headers,
        client: Some(peer),
        server: Some(ServerAddr::Tcp(ctx.local)),
        state: ctx.state.clone(),
        extensions: Extensions::default(),
        connection: conn.clone(),
        transport: Some(transport.clone()),
        custom: State::default(),
    };
    let sse = sse::wants_event_stream(&scope.headers);
    let ex = Exchange::new(conn, transport, if sse { "sse" } else { "http" });
    let receiver = Receiver::new(HttpSource {
        body,
        ex: ex.clone(),
        limit,
        read: 0,
        body_finished: false,
        sse,
    });
    let (scope, sender) = if sse {
        let sink = Arc::new(sse::SseSink::new(ex.clone()));
        (Scope::Sse(scope), Sender::new(sink))
    } else {
        let sink: Arc<dyn pagi::EventSink> = ex.clone();
        (Scope::Http(scope), Sender::new(sink))
    };
    let fut = ctx.app.call(scope, receiver, sender);
    let driver = AppDriver::new(fut, ex.clone(), ctx.live.guard(), request);
    Some((driver, ex))
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
