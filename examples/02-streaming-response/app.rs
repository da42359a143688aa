//! 02 – Streaming response: the body goes out in pieces as the app produces
//! them, followed by trailers.
//!
//! The app drains the request body, starts the response with
//! `trailers: true` (so the server uses chunked framing), sends three
//! chunks with `more: true` one second apart (`?delay_ms=N` shortens the
//! pause), then ends the body and sends an `http.response.trailers` event
//! with `x-chunks: 3`. While it waits between chunks it also waits on
//! `receive`: once the body is drained the only event that can still come
//! is `http.disconnect`, and if the client leaves mid-stream the app stops
//! at once instead of producing chunks nobody reads.

use std::time::Duration;

use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// Number of chunks in the stream.
pub const CHUNKS: u32 = 3;

/// Default pause between chunks (`?delay_ms=N` overrides it).
pub const DELAY: Duration = Duration::from_secs(1);

/// The app.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let Scope::Http(http) = scope else {
        return Err(pagi::unsupported_scope(&scope));
    };
    let delay = query_param(&http.query_string, "delay_ms")
        .and_then(|v| v.parse().ok())
        .map_or(DELAY, Duration::from_millis);

    // Drain the request body; a client that leaves meanwhile ends the app.
    loop {
        match receive.recv().await {
            ReceiveEvent::HttpRequest { more: true, .. } => {}
            ReceiveEvent::HttpRequest { more: false, .. } => break,
            _ => return Ok(()), // http.disconnect
        }
    }

    let headers = Headers::new()
        .with("content-type", "text/plain; charset=utf-8")
        // Announcing the trailer fields is good manners (RFC 9110 §6.6.2).
        .with("trailer", "x-chunks");
    send.send(SendEvent::HttpResponseStart {
        status: 200,
        headers,
        trailers: true,
    })
    .await?;

    for n in 1..=CHUNKS {
        let chunk = format!("chunk {n} of {CHUNKS}\n");
        // `more: false` on the last chunk ends the body; trailers follow it.
        send.send(SendEvent::response_body(chunk, n < CHUNKS))
            .await?;
        if n < CHUNKS {
            // Sleep, unless the client goes away first: the pending `receive`
            // resolves with `http.disconnect` as soon as the server notices.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = client_gone(&mut receive) => return Ok(()),
            }
        }
    }
    send.send(SendEvent::HttpResponseTrailers {
        headers: Headers::new().with("x-chunks", CHUNKS.to_string()),
    })
    .await?;
    Ok(())
}

/// Resolves when `receive` yields `http.disconnect` (cancel-safe: it can
/// lose a `select!` without losing an event).
async fn client_gone(receive: &mut Receiver) {
    while !receive.recv().await.is_disconnect() {}
}

/// The value of `key` in a query string (not percent-decoded: the
/// parameters this app reads are numbers).
fn query_param<'q>(query: &'q [u8], key: &str) -> Option<&'q str> {
    std::str::from_utf8(query)
        .ok()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}
