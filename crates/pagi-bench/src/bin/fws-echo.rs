//! Baseline: a fastwebsockets echo server, as its documentation writes one
//! (hyper's HTTP/1.1 server with upgrades, `fastwebsockets::upgrade`, a
//! `FragmentCollector` echoing whole messages), the fastest Rust peer we
//! know of.
//!
//! `fws-echo ADDR` (default 127.0.0.1:9003). Echoes text and binary
//! messages on any path. Worker threads follow `TOKIO_WORKER_THREADS`.

use std::time::Duration;

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9003".to_owned());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

async fn serve(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("fws-echo listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("fws-echo: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = http1::Builder::new()
                .serve_connection(io, service_fn(upgrade_to_echo))
                .with_upgrades()
                .await;
        });
    }
}

async fn upgrade_to_echo(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgraded) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        let Ok(ws) = upgraded.await else { return };
        let mut ws = FragmentCollector::new(ws);
        while let Ok(frame) = ws.read_frame().await {
            let echo = match frame.opcode {
                OpCode::Close => break,
                OpCode::Text | OpCode::Binary => frame,
                _ => continue,
            };
            if ws.write_frame(echo).await.is_err() {
                break;
            }
        }
    });
    Ok(response)
}
