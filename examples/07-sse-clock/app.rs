//! 07 – SSE clock: a Server-Sent Events stream (`Accept: text/event-stream`)
//! that sends a numbered `tick` event every second with a keepalive comment
//! configured, and stops after `?n=N` events (default 5). Plain HTTP
//! requests get a short explanation instead.

use std::time::Duration;

use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// Time between events.
pub const EVERY: Duration = Duration::from_secs(1);

/// The app.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let sse = match scope {
        Scope::Sse(s) => s,
        Scope::Http(_) => {
            let body = "Connect with Accept: text/event-stream (curl -N -H 'Accept: text/event-stream' URL)\n";
            send.send(SendEvent::response_start(
                200,
                Headers::new().with("content-type", "text/plain"),
            ))
            .await?;
            send.send(SendEvent::response_body(body, false)).await?;
            return Ok(());
        }
        other => return Err(pagi::unsupported_scope(&other)),
    };
    let count: u64 = std::str::from_utf8(&sse.query_string)
        .ok()
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("n=")?.parse().ok())
        })
        .unwrap_or(5);
    // Body of the request, if any (sse works for every method).
    while let ReceiveEvent::SseRequest { more: true, .. } = receive.recv().await {}

    send.send(SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    })
    .await?;
    send.send(SendEvent::SseKeepalive {
        interval: Duration::from_secs(15),
        comment: "keepalive".into(),
    })
    .await?;
    for n in 1..=count {
        let tick = SendEvent::SseSend {
            event: Some("tick".into()),
            data: format!("tick #{n}"),
            id: Some(n.to_string()),
            retry: None,
        };
        send.send(tick).await?;
        if n < count {
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                ev = receive.recv() => if ev.is_disconnect() { return Ok(()) },
            }
        }
    }
    send.send(SendEvent::SseClose {
        reason: Some("done".into()),
    })
    .await?;
    Ok(())
}
