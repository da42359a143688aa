//! Baseline: the HTTP floor. Raw hyper 1.x HTTP/1.1 (keep-alive) answering `hello` to every
//! request. `hyper-hello ADDR [TLS_DIR]` (default 127.0.0.1:8081); with a `TLS_DIR` (see
//! `pagi-bench gencert`) it serves HTTPS with tokio-rustls on aws-lc-rs. With `HYPER_H2=1` it
//! speaks HTTP/2 instead (cleartext, prior knowledge: what h2load sends), with hyper's defaults
//! except the concurrent-stream limit (100, as pagi-server). Worker threads follow
//! `TOKIO_WORKER_THREADS`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let tls = match std::env::args().nth(2) {
        Some(dir) => Some(Arc::new(
            pagi_bench::tls::acceptor(std::path::Path::new(&dir)).map_err(std::io::Error::other)?,
        )),
        None => None,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr, tls))
}

async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"hello")));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(resp)
}

async fn serve(addr: String, tls: Option<Arc<tokio_rustls::TlsAcceptor>>) -> std::io::Result<()> {
    let h2 = std::env::var("HYPER_H2").is_ok_and(|v| v == "1");
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("hyper-hello listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hyper-hello: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        tokio::spawn(async move {
            let Ok(stream) = pagi_bench::tls::server(tls.as_deref(), stream).await else {
                return;
            };
            let io = TokioIo::new(stream);
            let _ = if h2 {
                http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(100)
                    .serve_connection(io, service_fn(hello))
                    .await
            } else {
                http1::Builder::new()
                    .serve_connection(io, service_fn(hello))
                    .await
            };
        });
    }
}
