//! 06 – Lifespan state: set things up once at startup, use them in every
//! request, tear them down at shutdown.
//!
//! With lifespan on, the server calls the app once with a `lifespan` scope
//! before it accepts connections. On `lifespan.startup` the app stores a
//! greeting and a shared request counter in the scope's `state` and answers
//! `lifespan.startup.complete`; every later request scope carries a shallow
//! copy of that `state`, so the HTTP handler reads the greeting and bumps
//! the counter (values are shared; mutate them through the value, here an
//! atomic, never by replacing a key). On `lifespan.shutdown` it answers
//! `lifespan.shutdown.complete` and returns.
//!
//! Run with lifespan off (`--lifespan off`) and requests find no `state`:
//! the handler says so with a `503`.

use std::sync::atomic::{AtomicU64, Ordering};

use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// The state key of the greeting (a `String`).
pub const GREETING_KEY: &str = "greeting";

/// The state key of the request counter (an `AtomicU64`).
pub const COUNTER_KEY: &str = "requests";

/// The greeting stored at startup.
pub const GREETING: &str = "Hello from the lifespan state!";

/// The app.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    match scope {
        Scope::Lifespan(lifespan) => loop {
            match receive.recv().await {
                ReceiveEvent::LifespanStartup => {
                    // A real app would open its database pool here.
                    lifespan.state.insert(GREETING_KEY, GREETING.to_owned());
                    lifespan.state.insert(COUNTER_KEY, AtomicU64::new(0));
                    send.send(SendEvent::LifespanStartupComplete).await?;
                }
                ReceiveEvent::LifespanShutdown => {
                    // ... and close it here.
                    send.send(SendEvent::LifespanShutdownComplete).await?;
                    return Ok(());
                }
                other => return Err(format!("unexpected {}", other.type_name()).into()),
            }
        },
        Scope::Http(http) => {
            while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
            let state = http.state.as_ref();
            let greeting = state.and_then(|s| s.get::<String>(GREETING_KEY));
            let counter = state.and_then(|s| s.get::<AtomicU64>(COUNTER_KEY));
            let (status, body) = match (greeting, counter) {
                (Some(greeting), Some(counter)) => {
                    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    (200, format!("{greeting}\nrequest #{n} since startup\n"))
                }
                _ => (
                    503,
                    "No lifespan state: the server ran without lifespan.\n".to_owned(),
                ),
            };
            let headers = Headers::new()
                .with("content-type", "text/plain; charset=utf-8")
                .with("content-length", body.len().to_string());
            send.send(SendEvent::response_start(status, headers))
                .await?;
            send.send(SendEvent::response_body(body, false)).await?;
            Ok(())
        }
        other => Err(pagi::unsupported_scope(&other)),
    }
}
