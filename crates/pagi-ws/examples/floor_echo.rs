//! `floor_echo [ADDR]`: a minimal tokio WebSocket echo server built directly on `pagi-ws`,
//! with no gateway in between. It is the conformance target for Autobahn and the performance
//! "floor" of the WebSocket layer (what any server built on this crate can at best reach).
//!
//! * `ADDR` defaults to `127.0.0.1:9001`.
//! * permessage-deflate is negotiated with `DeflateConfig::default()`.
//! * `TICK_MS=N` also pushes the text message "tick" to every client every N ms (for
//!   idle-connection benchmarks).
//!
//! One task per connection. The read buffer is allocated only when the socket is readable and
//! dropped again once everything in it was decoded, so an idle connection holds no buffers;
//! outgoing frames are batched into one vectored write per round.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pagi_ws::handshake::{accept_key, is_valid_key, negotiate_deflate};
use pagi_ws::{DeflateConfig, Event, Message, Session, SessionConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// How much room a read gets at least: a 16 KiB message and its header fit in one read (the
/// buffer is freed whenever drained, so idle connections do not hold it). Not larger: 64 KiB
/// per wake-up measured slower at 16 KiB (the allocator trims and regrows its heap).
const READ_CHUNK: usize = 32 * 1024;
/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Slices per vectored write.
const IOV: usize = 32;

#[tokio::main]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let tick = std::env::var("TICK_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    let listener = TcpListener::bind(&addr).await?;
    eprintln!(
        "floor_echo listening on {} (tick: {tick:?})",
        listener.local_addr()?
    );
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let _ = connection(stream, tick).await;
                });
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn connection(mut stream: TcpStream, tick: Option<Duration>) -> io::Result<()> {
    let Some((mut session, mut buf)) = upgrade(&mut stream).await? else {
        return Ok(());
    };
    let mut ticker = tick.map(|d| {
        let mut i = tokio::time::interval_at(Instant::now() + d, d);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    loop {
        while let Some(event) = session.read_event(&mut buf) {
            if let Event::Message(m) = event {
                // Err only once closing; then there is nothing to echo to.
                let _ = session.send(m);
            }
        }
        if buf.is_empty() {
            // Idle connections keep no read buffer.
            buf = BytesMut::new();
        }
        flush(&mut stream, &mut session).await?;
        if session.is_finished() {
            break;
        }
        tokio::select! {
            r = stream.readable() => {
                r?;
                if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                    buf.reserve(READ_CHUNK);
                }
                // One poll of `read_buf` (tokio's `poll_read`): a short read
                // clears the readiness, so a drained socket costs no extra
                // `recv` returning EAGAIN (`try_read_buf` would make one).
                let read = std::future::poll_fn(|cx| {
                    match pin!(stream.read_buf(&mut buf)).poll(cx) {
                        Poll::Ready(r) => Poll::Ready(Some(r)),
                        Poll::Pending => Poll::Ready(None),
                    }
                })
                .await;
                match read {
                    Some(Ok(0)) => return Ok(()),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(_)) | None => {}
                }
            }
            _ = next_tick(&mut ticker) => {
                let _ = session.send(Message::Text(pagi_ws::ByteString::from_static("tick")));
            }
        }
    }
    linger(stream).await;
    Ok(())
}

async fn next_tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Write everything queued, batching all frames into vectored writes.
async fn flush(stream: &mut TcpStream, session: &mut Session) -> io::Result<()> {
    while session.buffered() > 0 {
        let written = {
            let mut slices = [IoSlice::new(&[]); IOV];
            let n = session.chunks_vectored(&mut slices);
            if n == 1 {
                stream.write(&slices[0]).await?
            } else {
                stream.write_vectored(&slices[..n]).await?
            }
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        session.advance(written);
    }
    Ok(())
}

/// After the closing handshake (or a failure) the server closes TCP first. Shut down our side
/// and read until the peer closes (bounded), so unread input cannot turn our FIN into a RST that
/// would destroy the Close frame still in flight.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = Vec::with_capacity(4096);
        loop {
            sink.clear();
            match stream.read_buf(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

/// Read and answer the HTTP/1.1 upgrade request. `None` if the connection is not (or no longer)
/// a WebSocket.
async fn upgrade(stream: &mut TcpStream) -> io::Result<Option<(Session, BytesMut)>> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(None);
        }
        match parse_upgrade(&buf) {
            Head::Partial if buf.len() < MAX_HEAD => continue,
            Head::Partial => {
                reject(stream, "431 Request Header Fields Too Large", "").await;
                return Ok(None);
            }
            Head::Reject(status, extra) => {
                reject(stream, status, extra).await;
                return Ok(None);
            }
            Head::Accept {
                head_len,
                response,
                config,
            } => {
                stream.write_all(response.as_bytes()).await?;
                buf.advance(head_len);
                return Ok(Some((Session::new(config), buf)));
            }
        }
    }
}

/// Outcome of parsing the request head (kept free of borrows so that no header array lives
/// across an `.await`, which would grow every connection's task).
enum Head {
    Partial,
    Reject(&'static str, &'static str),
    Accept {
        head_len: usize,
        response: String,
        config: SessionConfig,
    },
}

fn parse_upgrade(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Reject("400 Bad Request", ""),
    };
    let mut upgrade_ws = false;
    let mut connection_upgrade = false;
    let mut version_13 = false;
    let mut key: Option<&[u8]> = None;
    let mut offers: Vec<&[u8]> = Vec::new();
    for h in req.headers.iter() {
        let has_token = |t: &str| {
            std::str::from_utf8(h.value)
                .map(|v| v.split(',').any(|x| x.trim().eq_ignore_ascii_case(t)))
                .unwrap_or(false)
        };
        if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade_ws |= has_token("websocket");
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= has_token("upgrade");
        } else if h.name.eq_ignore_ascii_case("sec-websocket-version") {
            version_13 = h.value == b"13";
        } else if h.name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("sec-websocket-extensions") {
            offers.push(h.value);
        }
    }
    if req.method != Some("GET") || !upgrade_ws || !connection_upgrade {
        return Head::Reject("400 Bad Request", "");
    }
    if !version_13 {
        return Head::Reject("426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
    }
    let Some(key) = key.filter(|k| is_valid_key(k)) else {
        return Head::Reject("400 Bad Request", "");
    };
    let deflate_config = DeflateConfig::default();
    let negotiated = negotiate_deflate(&offers, &deflate_config);
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    if let Some((_, ext)) = &negotiated {
        response.push_str("Sec-WebSocket-Extensions: ");
        response.push_str(ext);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    Head::Accept {
        head_len,
        response,
        config: SessionConfig {
            deflate: negotiated.map(|(params, _)| params),
            compress_min_size: deflate_config.compress_min_size,
            compress_level: deflate_config.level,
            ..SessionConfig::default()
        },
    }
}

async fn reject(stream: &mut TcpStream, status: &str, extra_headers: &str) {
    let r = format!(
        "HTTP/1.1 {status}\r\n{extra_headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.write_all(r.as_bytes()).await;
    let _ = stream.shutdown().await;
}
