//! One connection from accept to close: its PROXY protocol header and TLS
//! handshake when its listener wants them, then HTTP/1.1 (`crate::http1`,
//! which hands a cleartext HTTP/2 client to `crate::http2`), or HTTP/2
//! when TLS's ALPN chose it.
//! Generic over the byte stream, so plain TCP, Unix sockets and TLS share
//! every line after the handshake.

use std::net::SocketAddr;
use std::sync::Arc;

use pagi::ServerAddr;
use tokio::io::AsyncReadExt;

use crate::ctx::{Ctx, LiveGuard};
use crate::listener::{tls::Acceptor, within, ConnInfo, Stream};
use crate::wire::proxy::{parse_proxy_header, ProxyError, ProxyHeader, ProxyParse};

/// Serve one accepted connection until it closes (`live` counts it until
/// then).
///
/// Each connection's task holds this future, so what it keeps across
/// awaits is kept small: the HTTP/1.1 connection's state is boxed (a
/// stream is not held here while it is served), and a TLS stream goes from
/// the handshake straight into that box.
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
        // Boxed, like the TLS handshake: a passing stage should not grow
        // the future every connection keeps.
        match Box::pin(within(limit, read_proxy_header(&mut stream))).await {
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
        local: Some(local),
        tls: None,
    };
    match tls {
        None => crate::http1::serve(stream, info, ctx).await,
        Some(acceptor) => {
            let handshake = Box::pin(tls_handshake(acceptor, stream, limit, info, ctx));
            if let Some(served) = handshake.await {
                served.await;
            }
        }
    }
    drop(live);
}

/// The TLS handshake, and the HTTP/1.1 connection over its stream (not yet
/// polled). Its own function, so that the handshake's result (a TLS stream
/// and its report, kilobytes) is never a local of `serve`, whose future
/// every connection holds for its whole life.
async fn tls_handshake(
    acceptor: Acceptor,
    stream: Stream,
    limit: Option<std::time::Duration>,
    info: ConnInfo,
    ctx: Arc<Ctx>,
) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
    match acceptor.accept(stream, limit).await {
        Ok((stream, tls_info)) => {
            let h2 = tls_info.h2;
            let info = ConnInfo {
                tls: Some(Arc::new(tls_info.into_extension())),
                ..info
            };
            Some(if h2 {
                crate::http2::serve(stream, bytes::Bytes::new(), info, ctx)
            } else {
                Box::pin(crate::http1::serve(stream, info, ctx))
            })
        }
        Err(why) => {
            tracing::debug!("connection {}: {why}", show(info.client));
            None
        }
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
