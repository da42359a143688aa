//! 05 – SSE broadcaster: a Server-Sent Events stream and a page that shows
//! it in the browser.
//!
//! A request whose `Accept` includes `text/event-stream` (what a browser's
//! `EventSource` sends) gets the `sse` scope: the app answers `sse.start`,
//! then one `sse.send` every 500 ms, each with an `event` type (`update`),
//! `data` and an `id`, `?n=N` of them (default 10), then a final `done`
//! event and `sse.close`. It stops early on `sse.disconnect`. The first
//! event also sets the client's reconnection delay (`retry`). A client
//! that reconnects sends the last id it saw as `Last-Event-ID`, and the
//! stream resumes after it.
//!
//! A plain `GET /` gets a small HTML page whose script opens an
//! `EventSource` on `/events` and lists the events as they arrive; other
//! plain requests get `404`.

use std::time::Duration;

use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// Time between events.
pub const EVERY: Duration = Duration::from_millis(500);

/// Events per stream unless `?n=N` says otherwise.
pub const DEFAULT_COUNT: u64 = 10;

/// The page served at `/`.
pub const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>PAGI SSE broadcaster</title></head>
<body>
<h1>PAGI SSE broadcaster</h1>
<p id="status">connecting…</p>
<ol id="events"></ol>
<script>
  const status = document.getElementById("status");
  const list = document.getElementById("events");
  const source = new EventSource("/events" + location.search);
  source.onopen = () => { status.textContent = "open"; };
  source.addEventListener("update", (e) => {
    const item = document.createElement("li");
    item.textContent = e.lastEventId + ": " + e.data;
    list.appendChild(item);
  });
  source.addEventListener("done", (e) => {
    status.textContent = "done: " + e.data;
    source.close(); // otherwise the browser reconnects
  });
  source.onerror = () => { status.textContent = "error (reconnecting)"; };
</script>
</body>
</html>
"#;

/// The app.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let sse = match scope {
        Scope::Sse(sse) => sse,
        Scope::Http(http) => {
            while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
            let (status, content_type, body) = if http.path == "/" {
                (200, "text/html; charset=utf-8", PAGE)
            } else {
                (
                    404,
                    "text/plain",
                    "Not found: the page is at /, the stream at /events\n",
                )
            };
            let headers = Headers::new()
                .with("content-type", content_type)
                .with("content-length", body.len().to_string());
            send.send(SendEvent::response_start(status, headers))
                .await?;
            send.send(SendEvent::response_body(body, false)).await?;
            return Ok(());
        }
        other => return Err(pagi::unsupported_scope(&other)),
    };
    let count = std::str::from_utf8(&sse.query_string)
        .ok()
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("n=")?.parse().ok())
        })
        .unwrap_or(DEFAULT_COUNT);
    // A reconnecting EventSource tells us where it stopped.
    let resume_after: u64 = sse
        .headers
        .get("last-event-id")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .unwrap_or(0);

    // The request body, if any (an EventSource sends none).
    while let ReceiveEvent::SseRequest { more: true, .. } = receive.recv().await {}

    send.send(SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    })
    .await?;
    for n in resume_after + 1..=count {
        send.send(SendEvent::SseSend {
            event: Some("update".into()),
            data: format!("update {n} of {count}"),
            id: Some(n.to_string()),
            retry: (n == resume_after + 1).then_some(2000),
        })
        .await?;
        if n < count {
            // Wait for the next one, unless the client leaves first.
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = client_gone(&mut receive) => return Ok(()),
            }
        }
    }
    send.send(SendEvent::SseSend {
        event: Some("done".into()),
        data: format!("{count} updates sent"),
        id: None,
        retry: None,
    })
    .await?;
    send.send(SendEvent::SseClose {
        reason: Some("done".into()),
    })
    .await?;
    Ok(())
}

/// Resolves when `receive` yields `sse.disconnect` (cancel-safe).
async fn client_gone(receive: &mut Receiver) {
    while !receive.recv().await.is_disconnect() {}
}
