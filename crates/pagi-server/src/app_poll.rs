//! Polling an app's future so that a panic is an app error (500, or Close
//! 1011 after a WebSocket accept), never a dead connection task.

use std::task::{Context, Poll};

use pagi::{BoxError, BoxFuture};

/// Poll `app` once; a panic becomes `Ready(Err("application panicked: …"))`.
pub(crate) fn poll_app(
    app: &mut BoxFuture<Result<(), BoxError>>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), BoxError>> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.as_mut().poll(cx))) {
        Ok(poll) => poll,
        Err(panic) => Poll::Ready(Err(panic_message(&*panic).into())),
    }
}

/// The text of a caught panic, as an error message.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("application panicked: {what}")
}
