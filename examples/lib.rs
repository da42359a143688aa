//! The example apps bundled with `pagi-server`.
//!
//! Each example lives in its own folder (`examples/NN-name/app.rs`) and
//! depends on the `pagi` protocol crate only (plus tokio for its own timers).
//! `pagi-server --app examples/18-bidirectional-websocket` finds one by its
//! folder, its full name, its number or its short name (see [`find`]).

use pagi::SharedApp;

#[path = "01-hello-http/app.rs"]
pub mod hello_http;

#[path = "04-websocket-echo/app.rs"]
pub mod websocket_echo;

#[path = "07-sse-clock/app.rs"]
pub mod sse_clock;

#[path = "08-tls-introspection/app.rs"]
pub mod tls_introspection;

#[path = "18-bidirectional-websocket/app.rs"]
pub mod bidirectional_websocket;

/// One bundled example.
#[derive(Clone, Copy)]
pub struct Example {
    /// Folder name, e.g. `18-bidirectional-websocket`.
    pub name: &'static str,
    /// One-line description.
    pub about: &'static str,
    make: fn() -> SharedApp,
}

impl Example {
    /// A fresh instance of the app.
    pub fn app(&self) -> SharedApp {
        (self.make)()
    }
}

/// Every bundled example, in order.
pub const ALL: &[Example] = &[
    Example {
        name: "01-hello-http",
        about: "HTTP: answers every request with a plain-text greeting",
        make: || pagi::app_fn(hello_http::app),
    },
    Example {
        name: "04-websocket-echo",
        about: "WebSocket: echoes every text and binary message unchanged",
        make: || pagi::app_fn(websocket_echo::app),
    },
    Example {
        name: "07-sse-clock",
        about: "SSE: a `tick` event every second, `?n=N` of them, then sse.close",
        make: || pagi::app_fn(sse_clock::app),
    },
    Example {
        name: "08-tls-introspection",
        about: "HTTP: reports the scope's scheme, client and TLS details (or that TLS is off)",
        make: || pagi::app_fn(tls_introspection::app),
    },
    Example {
        name: "18-bidirectional-websocket",
        about: "WebSocket: echoes uppercased and pushes `server tick #N` every second",
        make: || pagi::app_fn(bidirectional_websocket::app),
    },
];

/// Find an example from what a user typed after `--app`: a path such as
/// `examples/18-bidirectional-websocket`, `examples/18-bidirectional-websocket/app.pl`
/// (the seed's spelling) or `.../app.rs`, the full name, the number (`18`)
/// or the short name (`bidirectional-websocket`).
///
/// ```
/// assert_eq!(pagi_examples::find("examples/18-bidirectional-websocket/app.pl").unwrap().name,
///            "18-bidirectional-websocket");
/// assert_eq!(pagi_examples::find("4").unwrap().name, "04-websocket-echo");
/// assert!(pagi_examples::find("nope").is_none());
/// ```
pub fn find(spec: &str) -> Option<&'static Example> {
    let trimmed = spec.trim_end_matches('/');
    let mut parts: Vec<&str> = trimmed.split('/').filter(|p| !p.is_empty()).collect();
    if parts
        .last()
        .is_some_and(|f| f.starts_with("app.") && parts.len() > 1)
    {
        parts.pop();
    }
    let key = *parts.last()?;
    ALL.iter().find(|e| {
        let (num, short) = e.name.split_once('-').unwrap_or((e.name, e.name));
        key == e.name
            || key == short
            || key
                .parse::<u32>()
                .ok()
                .is_some_and(|n| num.parse::<u32>().ok() == Some(n))
    })
}
