//! 04 – WebSocket echo: every text or binary message comes back unchanged.
//! (This is the app the Autobahn|Testsuite and the echo benchmarks run.)

use pagi::{BoxError, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// The app.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    if !matches!(scope, Scope::WebSocket(_)) {
        return Err(pagi::unsupported_scope(&scope));
    }
    if receive.recv().await != ReceiveEvent::WebSocketConnect {
        return Err("expected websocket.connect".into());
    }
    send.send(SendEvent::accept()).await?;
    loop {
        match receive.recv().await {
            ReceiveEvent::WebSocketReceive(msg) => send.send(msg).await?,
            ReceiveEvent::WebSocketDisconnect { .. } => return Ok(()),
            _ => {}
        }
    }
}
