//! The application contract: one async call per connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{Receiver, Scope, Sender};

/// The error an application returns. Any `std::error::Error` converts into it
/// with `?`, and so does a `&str` or `String` message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed, sendable future, as returned by [`App::call`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An application shared by every connection of a server.
pub type SharedApp = Arc<dyn App>;

/// A PAGI application: called once per connection (once per request for
/// HTTP, once per session for WebSocket, once per process for lifespan).
///
/// The returned future is the connection's completion: when it resolves the
/// server finishes the response or closes the session. An `Err` is how an app
/// declines a scope type it does not handle (see [`unsupported_scope`]).
///
/// Implemented for every `Fn(Scope, Receiver, Sender) -> impl Future<Output =
/// Result<(), E>>`, so a plain `async fn` is an app.
pub trait App: Send + Sync + 'static {
    /// Run the application for one connection.
    fn call(
        &self,
        scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> BoxFuture<Result<(), BoxError>>;
}

impl<F, Fut, E> App for F
where
    F: Fn(Scope, Receiver, Sender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(
        &self,
        scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> BoxFuture<Result<(), BoxError>> {
        // A named adapter rather than an `async` block around `fut`: the
        // block would move the app's future (which holds the scope) once
        // more before it is boxed.
        Box::pin(MapErr {
            fut: self(scope, receive, send),
        })
    }
}

pin_project_lite::pin_project! {
    /// The app's future with its error boxed.
    struct MapErr<F> {
        #[pin]
        fut: F,
    }
}

impl<F, E> Future for MapErr<F>
where
    F: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    type Output = Result<(), BoxError>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.project().fut.poll(cx).map(|r| r.map_err(Into::into))
    }
}

/// Wrap an app (an `async fn` or closure) into a [`SharedApp`] for a server.
///
/// ```
/// async fn app(_: pagi::Scope, _: pagi::Receiver, _: pagi::Sender) -> Result<(), pagi::BoxError> {
///     Ok(())
/// }
/// let shared: pagi::SharedApp = pagi::app_fn(app);
/// ```
pub fn app_fn<A: App>(app: A) -> SharedApp {
    Arc::new(app)
}

/// The error an app returns for a scope type it does not support, as the spec
/// requires ("Applications must throw an exception if the incoming scope type
/// is not supported"). The message is `Unsupported scope type: <type>`.
///
/// ```
/// let scope = pagi::Scope::Lifespan(Box::default());
/// assert_eq!(pagi::unsupported_scope(&scope).to_string(), "Unsupported scope type: lifespan");
/// ```
pub fn unsupported_scope(scope: &Scope) -> BoxError {
    format!("Unsupported scope type: {}", scope.type_name()).into()
}

/// Mark an `async` block as an app branch returning `Result<(), BoxError>`,
/// so `?` works inside it without spelling out `Ok::<(), BoxError>(())`.
/// It returns the block unchanged.
///
/// ```
/// # async fn f(send: pagi::Sender) -> Result<(), pagi::BoxError> {
/// let pushes = pagi::branch(async {
///     send.send(pagi::SendEvent::text("one")).await?;
///     send.send(pagi::SendEvent::text("two")).await?;
///     Ok(())
/// });
/// pushes.await
/// # }
/// ```
pub fn branch<F: Future<Output = Result<(), BoxError>>>(block: F) -> F {
    block
}
