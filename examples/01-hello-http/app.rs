//! 01 – Hello HTTP: answers every request with a plain-text greeting.

use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// The app.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    if !matches!(scope, Scope::Http(_)) {
        return Err(pagi::unsupported_scope(&scope));
    }
    // Drain the request body (a real app would use it).
    while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
    let body = "Hello from PAGI!\n";
    let headers = Headers::new()
        .with("content-type", "text/plain; charset=utf-8")
        .with("content-length", body.len().to_string());
    send.send(SendEvent::response_start(200, headers)).await?;
    send.send(SendEvent::response_body(body, false)).await?;
    Ok(())
}
