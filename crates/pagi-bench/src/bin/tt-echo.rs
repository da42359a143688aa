//! Baseline: a plain tokio-tungstenite WebSocket echo server (default config), the way the
//! popular Rust stack is usually written.
//!
//! `tt-echo ADDR [TLS_DIR]` (default 127.0.0.1:9002). Echoes text and binary messages on any
//! path. With a `TLS_DIR` (see `pagi-bench gencert`) it serves wss:// with tokio-rustls on
//! aws-lc-rs, the provider pagi-server uses. With `TICK_MS=N` it also pushes a `tick` text
//! message every N ms to every connection (the idle-connection workload). Worker threads
//! follow `TOKIO_WORKER_THREADS`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let tls = match std::env::args().nth(2) {
        Some(dir) => Some(Arc::new(
            pagi_bench::tls::acceptor(std::path::Path::new(&dir)).map_err(std::io::Error::other)?,
        )),
        None => None,
    };
    let tick = std::env::var("TICK_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr, tick, tls))
}

async fn serve(
    addr: String,
    tick: Option<Duration>,
    tls: Option<Arc<tokio_rustls::TlsAcceptor>>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("tt-echo listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("tt-echo: accept: {e}");
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
            let _ = match tick {
                None => echo(stream).await,
                Some(every) => echo_with_ticks(stream, every).await,
            };
        });
    }
}

/// The canonical echo: split and forward data messages back (forward batches writes).
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let ws = tokio_tungstenite::accept_async(stream).await?;
    let (write, read) = ws.split();
    read.try_filter(|m| std::future::ready(m.is_text() || m.is_binary()))
        .forward(write)
        .await
}

async fn echo_with_ticks<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    every: Duration,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(m)) if m.is_text() || m.is_binary() => ws.send(m).await?,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            _ = timer.tick() => ws.send(Message::text("tick")).await?,
        }
    }
}
