//! The example apps bundled with `pagi-server`.
//!
//! Each example lives in its own folder (`examples/NN-name/app.rs`) and
//! depends on the `pagi` protocol crate only (plus tokio for its own timers
//! and channels).
//! `pagi-server --app examples/18-bidirectional-websocket` finds one by its
//! folder, its full name, its number or its short name (see [`find`]).

use pagi::SharedApp;

#[path = "01-hello-http/app.rs"]
pub mod hello_http;

#[path = "02-streaming-response/app.rs"]
pub mod streaming_response;

#[path = "03-request-body/app.rs"]
pub mod request_body;

#[path = "04-websocket-echo/app.rs"]
pub mod websocket_echo;

#[path = "05-sse-broadcaster/app.rs"]
pub mod sse_broadcaster;

#[path = "06-lifespan-state/app.rs"]
pub mod lifespan_state;

#[path = "07-sse-clock/app.rs"]
pub mod sse_clock;

#[path = "08-tls-introspection/app.rs"]
pub mod tls_introspection;

#[path = "10-static-files/app.rs"]
pub mod static_files;

#[path = "12-utf8/app.rs"]
pub mod utf8;

#[path = "13-flow-control/app.rs"]
pub mod flow_control;

#[path = "14-periodic-events/app.rs"]
pub mod periodic_events;

#[path = "17-event-middleware/app.rs"]
pub mod event_middleware;

#[path = "18-bidirectional-websocket/app.rs"]
pub mod bidirectional_websocket;

#[path = "mini-framework/app.rs"]
pub mod mini_framework;

#[path = "helpers/app.rs"]
pub mod helpers;

/// One bundled example.
#[derive(Clone, Copy, Debug)]
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
        name: "02-streaming-response",
        about: "HTTP: three chunks a second apart, then trailers; stops if the client leaves",
        make: || pagi::app_fn(streaming_response::app),
    },
    Example {
        name: "03-request-body",
        about: "HTTP: reads the whole request body and echoes it back with its byte count",
        make: || pagi::app_fn(request_body::app),
    },
    Example {
        name: "04-websocket-echo",
        about: "WebSocket: echoes every text and binary message unchanged",
        make: || pagi::app_fn(websocket_echo::app),
    },
    Example {
        name: "05-sse-broadcaster",
        about: "SSE: numbered `update` events every 500 ms (`?n=N`), and a browser page at `/`",
        make: || pagi::app_fn(sse_broadcaster::app),
    },
    Example {
        name: "06-lifespan-state",
        about: "Lifespan: startup puts a greeting and a counter in `state`; requests read them",
        make: || pagi::app_fn(lifespan_state::app),
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
        name: "10-static-files",
        about: "HTTP: serves a directory (PAGI_STATIC_ROOT) with ETag, 304, Range/206/416, via fh bodies",
        make: || pagi::app_fn(static_files::app),
    },
    Example {
        name: "12-utf8",
        about: "HTTP: UTF-8 round trip: decoded `path` vs `raw_path`, query and body decoded by the app",
        make: || pagi::app_fn(utf8::app),
    },
    Example {
        name: "13-flow-control",
        about: "SSE: a 100 Hz feed that skips stale readings while `pagi.transport` is backed up",
        make: || pagi::app_fn(flow_control::app),
    },
    Example {
        name: "14-periodic-events",
        about: "Lifespan + HTTP/SSE: one shared ticker; `/poll` long-polls a tick, `/stream` streams them",
        make: || pagi::app_fn(periodic_events::app),
    },
    Example {
        name: "17-event-middleware",
        about: "WebSocket/SSE: a middleware injects `tick` events into `receive`; the app echoes and pushes",
        make: || pagi::app_fn(event_middleware::app),
    },
    Example {
        name: "18-bidirectional-websocket",
        about: "WebSocket: echoes uppercased and pushes `server tick #N` every second",
        make: || pagi::app_fn(bidirectional_websocket::app),
    },
    Example {
        name: "mini-framework",
        about: "HTTP: \"Nano\", a 60-line framework with path parameters: `/`, `/hello/:name`, `/slow/:n`",
        make: || pagi::app_fn(mini_framework::app),
    },
    Example {
        name: "helpers",
        about: "HTTP + WebSocket: 01's greeting and 04's echo written with the helpers (bench twin)",
        make: || pagi::app_fn(helpers::app),
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
/// assert_eq!(pagi_examples::find("examples/mini-framework").unwrap().name, "mini-framework");
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
