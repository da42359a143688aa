//! 13 – Flow control: a high-frequency SSE feed that stays current for a
//! slow client by conflating (dropping stale readings) instead of queueing.
//!
//! A simulated sensor produces a reading every 10 ms (`?every_ms=N`). A
//! client that reads slower than that (a phone on a bad network, a paused
//! tab) would otherwise make the server queue readings, and by the time it
//! caught up it would be looking at old data. Before each send the app asks
//! the scope's `pagi.transport` how many bytes are still queued for this
//! client (`buffered_amount()`); while that is above half the server's
//! ceiling (`high_water_mark()`, where `send` itself would start to wait)
//! the reading is skipped: by the next tick there is a fresher one. Once
//! the queue drains, the next send carries the latest reading, so the
//! client's view jumps straight to the present.
//!
//! Each `reading` event's `id` is the reading's sequence number, so the
//! client sees the gap; its data says how many readings were skipped just
//! before it and in total:
//! `{"seq":412,"value":21.734,"skipped":97,"total_skipped":130}`.
//! `?pad=N` adds N bytes of padding to each event (to reach the watermark
//! sooner in a demo). Without `pagi.transport` (a server that cannot tell)
//! every reading is sent. Plain HTTP requests get a short explanation.

use std::time::Duration;

use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use tokio::time::{interval, Instant, MissedTickBehavior};

/// Time between readings unless `?every_ms=N` says otherwise.
pub const EVERY: Duration = Duration::from_millis(10);

/// The ceiling assumed when the transport has no high-water mark.
pub const DEFAULT_CEILING: usize = 64 * 1024;

/// Largest `?pad=N` honoured.
pub const MAX_PAD: usize = 64 * 1024;

/// The app.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let sse = match scope {
        Scope::Sse(sse) => sse,
        Scope::Http(_) => {
            let body = "A live sensor feed over Server-Sent Events: connect with \
                        Accept: text/event-stream (curl -N -H 'Accept: text/event-stream' URL)\n";
            let headers = Headers::new()
                .with("content-type", "text/plain")
                .with("content-length", body.len().to_string());
            send.send(SendEvent::response_start(200, headers)).await?;
            send.send(SendEvent::response_body(body, false)).await?;
            return Ok(());
        }
        other => return Err(pagi::unsupported_scope(&other)),
    };
    let param = |key: &str| -> Option<u64> {
        std::str::from_utf8(&sse.query_string)
            .ok()?
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    };
    let every = param("every_ms").map_or(EVERY, |ms| Duration::from_millis(ms.max(1)));
    let padding = "x".repeat(param("pad").map_or(0, |n| (n as usize).min(MAX_PAD)));
    // Send only while less than this is queued for the client.
    let limit = sse
        .transport
        .as_ref()
        .map(|t| t.high_water_mark().unwrap_or(DEFAULT_CEILING) / 2);

    while let ReceiveEvent::SseRequest { more: true, .. } = receive.recv().await {}
    send.send(SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    })
    .await?;

    let start = Instant::now();
    let mut ticks = interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut last_sent, mut total_skipped) = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = client_gone(&mut receive) => return Ok(()),
        }
        // The sensor's current reading: number k is taken at (k - 1) * every.
        let elapsed = start.elapsed();
        let seq = ((elapsed.as_nanos() / every.as_nanos()) as u64 + 1).max(last_sent + 1);
        let value = sensor(elapsed);

        let behind = match (&sse.transport, limit) {
            (Some(transport), Some(limit)) => transport.buffered_amount() > limit,
            _ => false,
        };
        if behind {
            continue; // conflate: by the next tick this reading is stale
        }
        let skipped = seq - last_sent - 1;
        total_skipped += skipped;
        last_sent = seq;
        let pad = if padding.is_empty() {
            String::new()
        } else {
            format!(",\"pad\":\"{padding}\"")
        };
        send.send(SendEvent::SseSend {
            event: Some("reading".into()),
            data: format!(
                "{{\"seq\":{seq},\"value\":{value:.3},\"skipped\":{skipped},\
                 \"total_skipped\":{total_skipped}{pad}}}"
            ),
            id: Some(seq.to_string()),
            retry: None,
        })
        .await?;
    }
}

/// A made-up temperature: a slow wave around 21 °C.
fn sensor(at: Duration) -> f64 {
    21.0 + 1.5 * (at.as_secs_f64() * 0.7).sin()
}

/// Resolves when `receive` yields `sse.disconnect` (cancel-safe).
async fn client_gone(receive: &mut Receiver) {
    while !receive.recv().await.is_disconnect() {}
}
