//! 03 – Request body: reads the whole request body and echoes it back.
//!
//! The server hands the body over in `http.request` events, de-chunked, as
//! it arrives from the network; `more` is true while further events follow
//! (a bodiless request gets one empty event with `more: false`). The app
//! collects them, then answers `200` with the same bytes, the request's
//! `Content-Type` (or `application/octet-stream`), a `Content-Length`, and
//! two report headers: `x-body-bytes` (the byte count) and `x-body-events`
//! (how many `http.request` events carried it). Try
//! `curl --data-binary @some-file URL`.

use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// The app.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let Scope::Http(http) = scope else {
        return Err(pagi::unsupported_scope(&scope));
    };
    let mut body = Vec::new();
    let mut events = 0u32;
    loop {
        match receive.recv().await {
            ReceiveEvent::HttpRequest { body: chunk, more } => {
                events += 1;
                body.extend_from_slice(&chunk);
                if !more {
                    break;
                }
            }
            // http.disconnect: the client left before the body was complete.
            _ => return Ok(()),
        }
    }
    let content_type = http
        .headers
        .get("content-type")
        .map_or_else(|| b"application/octet-stream".to_vec(), |v| v.to_vec());
    let headers = Headers::new()
        .with("content-type", content_type)
        .with("content-length", body.len().to_string())
        .with("x-body-bytes", body.len().to_string())
        .with("x-body-events", events.to_string());
    send.send(SendEvent::response_start(200, headers)).await?;
    send.send(SendEvent::response_body(body, false)).await?;
    Ok(())
}
