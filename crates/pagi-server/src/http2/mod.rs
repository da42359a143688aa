//! HTTP/2 (RFC 9113) on hyper's h2 server: each stream is one exchange
//! with the app, as on HTTP/1.1 (same scopes, limits and reasons), or a
//! WebSocket session over an extended CONNECT (RFC 8441, `crate::ws`).
//!
//! hyper runs each stream's response in a task of its own; the app future
//! is polled inside it (the response future until the head, then the
//! response body), and moves to a task of its own if the stream ends
//! before the app does. Request bodies are read from the stream when the
//! app asks for them, so h2's flow control pushes back on a client whose
//! app does not read.

mod stream;

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ctx::{Ctx, Phase, PhaseWatch};
use crate::listener::{ConnInfo, Io};
use crate::timer::Watchdog;

pub(crate) use stream::H2Body;

/// The HTTP/2 preface a client opens a cleartext connection with.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serve HTTP/2 on `io` until the connection closes; `prefix` holds bytes
/// already read from it (the preface, on a cleartext connection).
pub(crate) fn serve<I: Io>(
    io: I,
    prefix: Bytes,
    info: ConnInfo,
    ctx: Arc<Ctx>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let cfg = &ctx.config;
    let h2 = &cfg.h2;
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(h2.max_concurrent_streams)
        .initial_stream_window_size(h2.initial_stream_window)
        .initial_connection_window_size(h2.initial_connection_window)
        .max_send_buf_size(h2.max_send_buffer)
        .max_header_list_size(u32::try_from(cfg.max_header_size).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(h2.max_pending_reset_streams)
        .enable_connect_protocol();
    if let Some(every) = h2.keepalive_interval {
        builder
            .keep_alive_interval(every)
            .keep_alive_timeout(h2.keepalive_timeout);
    }
    let activity = Arc::new(Activity::default());
    let service = Service {
        ctx: ctx.clone(),
        info: Arc::new(info),
        activity: activity.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(Prefixed { prefix, io }), service);
    Box::pin(async move {
        let mut conn = std::pin::pin!(conn);
        let mut phase = PhaseWatch::new(&ctx);
        let mut watchdog = Watchdog::new(ctx.config.header_read_timeout);
        let mut closing = false;
        poll_fn(|cx| {
            if let Poll::Ready(p) = phase.poll_change(cx) {
                if p == Phase::Stopped {
                    return Poll::Ready(());
                }
                // GOAWAY: streams in flight finish, no new ones start.
                if !closing {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            // A connection with no stream for a whole period is closed
            // (like an idle HTTP/1.1 keep-alive connection).
            if let Some(w) = &mut watchdog {
                let started = activity.started.load(Ordering::Relaxed);
                if w.quiet(cx, started) && activity.open.load(Ordering::Relaxed) == 0 && !closing {
                    let period = w.period();
                    tracing::debug!("HTTP/2 connection: no stream for {period:?}, closing");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            conn.as_mut().poll(cx).map(|r| {
                if let Err(e) = r {
                    tracing::debug!("HTTP/2 connection: {e}");
                }
            })
        })
        .await;
    })
}

/// Streams of one connection, for its watchdog.
#[derive(Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    open: AtomicUsize,
}

/// Counts one open stream until dropped.
pub(crate) struct StreamGuard(Arc<Activity>);

impl Activity {
    fn begin(self: &Arc<Self>) -> StreamGuard {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// hyper's service for one connection: one call per stream.
#[derive(Clone)]
struct Service {
    ctx: Arc<Ctx>,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<H2Body>, std::convert::Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<H2Body>;
    type Error = std::convert::Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> ResponseFuture {
        // h2 bounds the streams open at once, but an app whose stream the
        // client reset keeps running (on a task of its own) until it sees
        // the disconnect: a client resetting stream after stream would
        // pile them up. Past twice the stream limit, new streams are shed.
        let cap = 2 * self.ctx.config.h2.max_concurrent_streams as usize;
        if self.activity.open.load(Ordering::Relaxed) >= cap {
            tracing::debug!("HTTP/2: {cap} unfinished streams on one connection, shedding");
            let resp = stream::canned(503, "Too many unfinished requests on this connection");
            return Box::pin(async move { Ok(resp) });
        }
        let guard = self.activity.begin();
        let is_connect = req.method() == http::Method::CONNECT;
        let websocket = crate::ws::protocol_is_websocket(&req);
        match (is_connect, websocket) {
            (true, true) => {
                let answer = crate::ws::serve_tunnel(
                    req,
                    crate::ws::Tunnel::H2,
                    self.ctx.clone(),
                    self.info.clone(),
                    Box::new(guard),
                );
                Box::pin(async move { Ok(answer.await.map(H2Body::canned)) })
            }
            // A tunnel to somewhere else: we are no proxy (RFC 9113 §8.5).
            (true, _) => {
                let resp = stream::canned(501, "CONNECT is not supported by this server");
                Box::pin(async move {
                    drop(guard);
                    Ok(resp)
                })
            }
            (false, _) => stream::respond(req, &self.ctx, &self.info, guard),
        }
    }
}

/// A stream that gives `prefix` before what `io` reads (the bytes read
/// before the protocol was known).
struct Prefixed<I> {
    prefix: Bytes,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A WebSocket over an HTTP/2 stream (RFC 8441) runs the same driver as
/// one over a socket: the stream is its byte stream.
impl Io for TokioIo<hyper::upgrade::Upgraded> {}
