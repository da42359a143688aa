//! One connection from accept to close: its PROXY protocol header and TLS
//! handshake when its listener wants them, then hyper's HTTP/1.1 connection
//! with the watchdog and the drain. Generic over the byte stream, so plain
//! TCP, Unix sockets and TLS share every line after the handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use pagi::ServerAddr;
use tokio::io::AsyncReadExt;

use crate::ctx::{Activity, Ctx, LiveGuard, Phase};
use crate::listener::{tls::Acceptor, within, ConnInfo, Io, Stream};
use crate::when_woken::WhenWoken;
use crate::wire::proxy::{parse_proxy_header, ProxyError, ProxyHeader, ProxyParse};

/// Serve one accepted connection until it closes.
pub(crate) async fn serve(
    mut stream: Stream,
    peer: Option<SocketAddr>,
    local: ServerAddr,
    tls: Option<Acceptor>,
    ctx: Arc<Ctx>,
    live: LiveGuard,
) {
    let proxy = &ctx.config.proxy;
    let mut trusted = proxy.trusted.trusts(peer.map(|p| p.ip()));
    let mut client = peer;
    let limit = Some(ctx.config.tls_handshake_timeout).filter(|t| !t.is_zero());
    if proxy.protocol && trusted {
        match within(limit, read_proxy_header(&mut stream)).await {
            Some(Ok(ProxyHeader::Proxied { source, .. })) => {
                // The connection is now the source's: its forwarded
                // headers count only if it is a trusted proxy itself.
                client = Some(source);
                trusted = proxy.trusted.trusts(Some(source.ip()));
            }
            Some(Ok(ProxyHeader::Local)) => {}
            Some(Err(ProxyError(why))) => {
                return tracing::debug!("connection {}: {why}", show(peer));
            }
            None => {
                return tracing::debug!("connection {}: no PROXY header in {limit:?}", show(peer));
            }
        }
    }
    let info = ConnInfo {
        client,
        proxy_trusted: trusted,
        local,
        tls: None,
    };
    match tls {
        None => serve_http(stream, info, ctx, live).await,
        Some(acceptor) => match acceptor.accept(stream, limit).await {
            Ok((stream, tls_info)) => {
                let info = ConnInfo {
                    tls: Some(Arc::new(tls_info.into_extension())),
                    ..info
                };
                serve_http(stream, info, ctx, live).await
            }
            Err(why) => tracing::debug!("connection {}: {why}", show(peer)),
        },
    }
}

/// Read exactly the PROXY protocol header: the parser asks for no byte
/// beyond it, so what follows (the request, a TLS hello) stays unread.
async fn read_proxy_header(stream: &mut Stream) -> Result<ProxyHeader, ProxyError> {
    let mut buf = Vec::with_capacity(32);
    loop {
        match parse_proxy_header(&buf)? {
            ProxyParse::Done(header, _) => return Ok(header),
            ProxyParse::Need(n) => {
                let at = buf.len();
                buf.resize(at + n, 0);
                stream
                    .read_exact(&mut buf[at..])
                    .await
                    .map_err(|_| ProxyError("connection closed inside the PROXY header"))?;
            }
        }
    }
}

fn show(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "unix".to_owned(), |p| p.to_string())
}

/// hyper's HTTP/1.1 connection over `io`, with the watchdog and the drain.
async fn serve_http<I: Io>(io: I, info: ConnInfo, ctx: Arc<Ctx>, _live: LiveGuard) {
    let peer = show(info.client);
    let mut phase = ctx.phase.clone();
    let activity = Arc::new(Activity::default());
    let service = crate::http::Service::<I>::new(ctx.clone(), info, activity.clone());
    let conn = http1::Builder::new()
        .max_buf_size(ctx.config.max_header_size.max(8192))
        .max_headers(ctx.config.max_header_count)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    // The watchdog (instead of hyper's per-request header timer, which
    // costs a timer per request): a connection that neither completed nor
    // was serving a request for a whole period is closed. That bounds idle
    // keep-alive connections and slow request heads alike (period..2x).
    let period = ctx.config.header_read_timeout;
    let watchdog = tokio::time::sleep(period.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(watchdog);
    let mut watchdog = WhenWoken::new(watchdog);
    {
        // Polled on every wake-up of this task (at least once per request):
        // wrapped, like the watchdog, so that it costs an atomic swap
        // instead of the watch channel's lock.
        let draining = async { phase.wait_for(|p| *p >= Phase::Draining).await.map(drop) };
        tokio::pin!(draining);
        let mut draining = WhenWoken::new(draining);
        let mut seen = 0;
        loop {
            tokio::select! {
                biased;
                res = conn.as_mut() => return log_conn_end(&peer, res),
                _ = &mut draining => break,
                () = &mut watchdog, if period.is_some() => {
                    let started = activity.started();
                    if started == seen && activity.in_flight() == 0 {
                        tracing::debug!("connection {peer}: no request for {period:?}, closing");
                        return;
                    }
                    seen = started;
                    let next = tokio::time::Instant::now() + period.unwrap_or_default();
                    watchdog.update(|sleep| sleep.as_mut().reset(next));
                }
            }
        }
    }
    // Draining: finish the request in flight, then close (no keep-alive).
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        res = conn.as_mut() => log_conn_end(&peer, res),
        _ = phase.wait_for(|p| *p == Phase::Stopped) => {}
    }
}

fn log_conn_end(peer: &str, res: Result<(), hyper::Error>) {
    if let Err(e) = res {
        tracing::debug!("connection {peer}: {e}");
    }
}
