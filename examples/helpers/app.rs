//! Helpers – examples 01 (hello) and 04 (WebSocket echo) written with the
//! `pagi` helpers instead of raw events: the twin `bench/run` measures next
//! to them (`pagi-helpers`), to show what the helpers cost.

use pagi::{http, ws, BoxError, Receiver, Scope, Sender};

/// The app: an HTTP greeting, a WebSocket echo.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    match scope {
        Scope::Http(_) => {
            http::read_body(&mut receive, 64 * 1024).await?; // (a real app would use it)
            http::Response::text(200, "Hello from PAGI!\n")
                .send(&send)
                .await?;
        }
        Scope::WebSocket(_) => {
            let (mut incoming, outgoing) = ws::accept(receive, send).await?;
            while let Some(message) = incoming.recv().await {
                outgoing.send(message).await?;
            }
        }
        other => return Err(pagi::unsupported_scope(&other)),
    }
    Ok(())
}
