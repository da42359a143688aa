//! Lifespan helpers.

use crate::{BoxError, ReceiveEvent, Receiver, SendEvent, Sender};

/// Answer the lifespan scope for an app that has nothing to start or stop
/// (a router, a bridge): `startup.complete` and `shutdown.complete`.
///
/// ```
/// use pagi::{lifespan, BoxError, Receiver, Scope, Sender};
/// async fn app(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
///     match scope {
///         Scope::Lifespan(_) => lifespan::acknowledge(receive, send).await,
///         other => Err(pagi::unsupported_scope(&other)),
///     }
/// }
/// # let _ = pagi::app_fn(app);
/// ```
pub async fn acknowledge(mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    loop {
        match receive.recv().await {
            ReceiveEvent::LifespanStartup => send.send(SendEvent::LifespanStartupComplete).await?,
            ReceiveEvent::LifespanShutdown => {
                send.send(SendEvent::LifespanShutdownComplete).await?;
                return Ok(());
            }
            _ => {}
        }
    }
}
