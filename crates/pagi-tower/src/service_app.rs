//! A tower service as a PAGI app.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::headers::{to_map, to_pagi};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pagi::{
    App, BoxError, BoxFuture, HttpScope, HttpVersion, ReceiveEvent, Receiver, Scope, SendEvent,
    Sender, SharedApp,
};
use tower_service::Service;

/// The client's address, as a request extension (`None` on a Unix socket
/// is simply absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The whole PAGI request scope (path, root path, extensions such as
/// `tls`, the `pagi.connection` view), as a request extension.
#[derive(Clone, Debug)]
pub struct ScopeInfo(pub HttpScope);

/// Serves a `tower::Service` (an axum `Router`, say) as a PAGI app.
///
/// The service is cloned per request (axum's `Router` clones cheaply) and
/// called once, after `poll_ready`. Its errors become the server's 500.
///
/// **Trailers.** PAGI announces trailers in `http.response.start`, before
/// the body runs, so a response carries them only when the client accepts
/// them (HTTP/2, or `TE: trailers`) and the service says it will send some:
/// a `Trailer` header naming them (RFC 9110 §6.6.2; hyper's own HTTP/1.1
/// server asks the same) or a gRPC content type (gRPC always ends with
/// trailers). Other responses keep their `Content-Length`, and trailers
/// their body produces anyway are dropped.
#[derive(Clone)]
pub struct ServiceApp<S> {
    service: S,
    websocket: Option<SharedApp>,
}

impl<S> std::fmt::Debug for ServiceApp<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceApp")
            .field("websocket", &self.websocket.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> ServiceApp<S> {
    /// Wrap `service`.
    pub fn new(service: S) -> Self {
        ServiceApp {
            service,
            websocket: None,
        }
    }

    /// Hand WebSocket scopes to `app` (a PAGI app) instead of refusing them.
    pub fn websocket(mut self, app: SharedApp) -> Self {
        self.websocket = Some(app);
        self
    }
}

impl<S, B> App for ServiceApp<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    fn call(
        &self,
        scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> BoxFuture<Result<(), BoxError>> {
        match scope {
            Scope::Http(http) => Box::pin(serve(self.service.clone(), *http, false, receive, send)),
            Scope::Sse(http) => Box::pin(serve(self.service.clone(), *http, true, receive, send)),
            Scope::WebSocket(_) => match &self.websocket {
                Some(app) => app.call(scope, receive, send),
                None => Box::pin(pagi::ws::refuse(receive, send)),
            },
            Scope::Lifespan(_) => Box::pin(pagi::lifespan::acknowledge(receive, send)),
            other => Box::pin(async move { Err(pagi::unsupported_scope(&other)) }),
        }
    }
}

async fn serve<S, B>(
    mut service: S,
    scope: HttpScope,
    sse: bool,
    receive: Receiver,
    send: Sender,
) -> Result<(), BoxError>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let http11 = scope.http_version != HttpVersion::Http2;
    let trailers_ok = !sse && (!http11 || scope.headers.has_token("te", "trailers"));
    let request = match to_request(scope, RequestBody::new(receive)) {
        Ok(request) => request,
        // A target, method or header the `http` crate will not carry is
        // the client's error, not the app's.
        Err(why) => {
            let answer = pagi::http::Response::text(400, format!("Bad Request: {why}\n"));
            if sse {
                answer.send_declining(&send).await?;
            } else {
                answer.send(&send).await?;
            }
            return Ok(());
        }
    };
    poll_fn(|cx| service.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    let response = service.call(request).await.map_err(Into::into)?;
    let (parts, body) = response.into_parts();
    let mut headers = to_pagi(&parts.headers);
    let status = parts.status.as_u16();
    let trailers = trailers_ok && announces_trailers(&parts.headers);
    if trailers && http11 {
        // Only a chunked HTTP/1.1 body carries trailers (axum sets a
        // Content-Length for every body of known size).
        headers.remove("content-length");
    }
    // A body of known length ends with its last byte, unless trailers follow.
    let mut remaining = body.size_hint().exact().filter(|_| !trailers);
    send.send(if sse {
        SendEvent::SseHttpResponseStart { status, headers }
    } else {
        SendEvent::HttpResponseStart {
            status,
            headers,
            trailers,
        }
    })
    .await?;
    let chunk = |data: Bytes, more: bool| {
        if sse {
            SendEvent::SseHttpResponseBody { body: data, more }
        } else {
            SendEvent::response_body(data, more)
        }
    };
    let mut body = std::pin::pin!(body);
    let mut last_trailers = None;
    loop {
        let frame = tokio::select! {
            // The client left: stop producing the body.
            () = send.closed() => return Ok(()),
            frame = body.frame() => frame,
        };
        match frame {
            None => break,
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    // A body of known length ends with its last byte (one
                    // event for the common whole-body response).
                    if let Some(left) = remaining.as_mut() {
                        *left = left.saturating_sub(data.len() as u64);
                        if *left == 0 {
                            return Ok(send.send(chunk(data, false)).await?);
                        }
                    }
                    send.send(chunk(data, true)).await?;
                }
                Err(frame) => {
                    if let Ok(map) = frame.into_trailers() {
                        last_trailers = Some(map);
                    }
                }
            },
        }
    }
    send.send(chunk(Bytes::new(), false)).await?;
    if trailers {
        let headers = last_trailers.as_ref().map(to_pagi).unwrap_or_default();
        send.send(SendEvent::HttpResponseTrailers { headers })
            .await?;
    }
    Ok(())
}

/// Whether a response says it ends with trailers: it names them in a
/// `Trailer` header, or it is gRPC.
fn announces_trailers(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::TRAILER)
        || headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|ct| is_grpc(ct.as_bytes()))
}

/// `application/grpc`, alone or with `+proto`-style suffixes or parameters
/// (not `application/grpc-web`: its trailers travel in the body).
fn is_grpc(content_type: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    content_type.len() >= GRPC.len()
        && content_type[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(
            content_type.get(GRPC.len()),
            None | Some(b'+' | b';' | b' ')
        )
}

/// The scope as an `http::Request`.
fn to_request(scope: HttpScope, body: RequestBody) -> Result<http::Request<RequestBody>, BoxError> {
    let mut target = Vec::with_capacity(scope.raw_path.len() + 1 + scope.query_string.len());
    target.extend_from_slice(if scope.raw_path.is_empty() {
        b"/"
    } else {
        &scope.raw_path
    });
    if !scope.query_string.is_empty() {
        target.push(b'?');
        target.extend_from_slice(&scope.query_string);
    }
    let mut request = http::Request::builder()
        .method(http::Method::from_bytes(scope.method.as_bytes())?)
        .uri(http::Uri::from_maybe_shared(Bytes::from(target))?)
        .version(match scope.http_version {
            HttpVersion::Http10 => http::Version::HTTP_10,
            HttpVersion::Http11 => http::Version::HTTP_11,
            HttpVersion::Http2 => http::Version::HTTP_2,
        })
        .body(body)?;
    *request.headers_mut() = to_map(&scope.headers, "header")?;
    let extensions = request.extensions_mut();
    if let Some(client) = scope.client {
        extensions.insert(ClientAddr(client));
    }
    if let Some(state) = &scope.state {
        extensions.insert(state.clone());
    }
    extensions.insert(ScopeInfo(scope));
    Ok(request)
}

/// The request body of a [`ServiceApp`] request: the scope's `http.request`
/// (or `sse.request`) events as `http_body` frames. A client that leaves
/// mid-body ends it with an error.
#[derive(Debug)]
pub struct RequestBody {
    receive: Option<Receiver>,
}

impl RequestBody {
    fn new(receive: Receiver) -> Self {
        RequestBody {
            receive: Some(receive),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(receive) = self.receive.as_mut() else {
                return Poll::Ready(None);
            };
            let (body, more) = match std::task::ready!(receive.poll_recv(cx)) {
                ReceiveEvent::HttpRequest { body, more }
                | ReceiveEvent::SseRequest { body, more } => (body, more),
                e if e.is_disconnect() => {
                    self.receive = None;
                    return Poll::Ready(Some(Err(pagi::http::BodyError::Disconnected.into())));
                }
                _ => continue,
            };
            if !more {
                // The app side keeps nothing: the disconnect is the
                // server's to report through `send`.
                self.receive = None;
            }
            if !body.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(body))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.receive.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::is_grpc;

    #[test]
    fn grpc_content_types() {
        for yes in [
            "application/grpc",
            "Application/GRPC+proto",
            "application/grpc; x=1",
        ] {
            assert!(is_grpc(yes.as_bytes()), "{yes}");
        }
        for no in [
            "application/grpc-web",
            "application/grpcx",
            "application/json",
            "",
        ] {
            assert!(!is_grpc(no.as_bytes()), "{no}");
        }
    }
}
