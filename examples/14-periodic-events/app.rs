//! 14 – Periodic events rooted in the lifespan: one timer for the whole
//! process, shared by every request, instead of one per connection.
//!
//! At `lifespan.startup` the app makes a `tokio::sync::broadcast` channel,
//! stores its sending half in the lifespan `state` (key `ticks`) and
//! acknowledges. Its lifespan call then keeps running as the event source:
//! it publishes a [`Tick`] every second until `lifespan.shutdown`, which
//! stops the timer and is acknowledged with `lifespan.shutdown.complete`.
//! Request scopes get a copy of the state and subscribe:
//!
//! - `GET /poll` is a long poll: it answers with the next tick (`204` if
//!   none comes within 30 s), or gives up when the client leaves;
//! - `/stream` with `Accept: text/event-stream` is an SSE stream of ticks
//!   (`?n=N` of them, default: until the client leaves); a subscriber that
//!   falls behind the channel is told how many ticks it missed;
//! - `GET /` lists the endpoints.
//!
//! Without lifespan (`--lifespan off`, or a server without it) there is no
//! `ticks` in the state: the endpoints answer `503` and say so (the SSE
//! stream declines with `sse.http.response.start`).

use std::sync::Arc;
use std::time::Duration;

use pagi::{
    BoxError, Headers, HttpScope, LifespanScope, ReceiveEvent, Receiver, Scope, SendEvent, Sender,
};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{interval_at, Instant, MissedTickBehavior};

/// Time between ticks.
pub const PERIOD: Duration = Duration::from_secs(1);

/// How long `/poll` waits for a tick before answering `204`.
pub const LONG_POLL: Duration = Duration::from_secs(30);

/// The state key holding the `broadcast::Sender<Tick>`.
pub const TICKS_KEY: &str = "ticks";

/// One tick of the periodic source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// 1 for the first tick after startup, then 2, 3, …
    pub n: u64,
    /// Time since startup.
    pub uptime: Duration,
}

/// The app, ticking every [`PERIOD`].
pub async fn app(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    run(scope, receive, send, PERIOD).await
}

/// The app with another tick period (the tests use a short one).
pub fn with_period(period: Duration) -> pagi::SharedApp {
    pagi::app_fn(move |scope: Scope, receive: Receiver, send: Sender| {
        run(scope, receive, send, period)
    })
}

async fn run(
    scope: Scope,
    mut receive: Receiver,
    send: Sender,
    period: Duration,
) -> Result<(), BoxError> {
    match scope {
        Scope::Lifespan(lifespan) => ticker(&lifespan, receive, send, period).await,
        Scope::Http(http) => {
            while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
            match http.path.as_str() {
                "/poll" => poll(&http, receive, send).await,
                "/" => {
                    let body = "GET /poll: the next tick (long poll)\n\
                                GET /stream with Accept: text/event-stream: every tick (SSE)\n";
                    respond(&send, 200, body).await
                }
                "/stream" => respond(&send, 406, "/stream needs Accept: text/event-stream\n").await,
                _ => respond(&send, 404, "Not found\n").await,
            }
        }
        Scope::Sse(sse) => stream(&sse, receive, send).await,
        other => Err(pagi::unsupported_scope(&other)),
    }
}

/// The lifespan call: publishes the state at startup, then is the clock.
async fn ticker(
    lifespan: &LifespanScope,
    mut receive: Receiver,
    send: Sender,
    period: Duration,
) -> Result<(), BoxError> {
    match receive.recv().await {
        ReceiveEvent::LifespanStartup => {}
        other => {
            return Err(format!("expected lifespan.startup, got {}", other.type_name()).into())
        }
    }
    // Subscribers that fall more than 16 ticks behind lose the oldest.
    let (ticks, _) = broadcast::channel::<Tick>(16);
    lifespan.state.insert(TICKS_KEY, ticks.clone());
    send.send(SendEvent::LifespanStartupComplete).await?;

    let started = Instant::now();
    let mut timer = interval_at(started + period, period);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for n in 1u64.. {
        tokio::select! {
            _ = timer.tick() => {
                // An error only means nobody is listening right now.
                let _ = ticks.send(Tick { n, uptime: started.elapsed() });
            }
            ev = receive.recv() => match ev {
                ReceiveEvent::LifespanShutdown => break,
                other => return Err(format!("unexpected {}", other.type_name()).into()),
            },
        }
    }
    send.send(SendEvent::LifespanShutdownComplete).await?;
    Ok(())
}

/// The channel published at startup, if lifespan ran.
fn ticks_of(scope: &HttpScope) -> Option<Arc<broadcast::Sender<Tick>>> {
    scope.state.as_ref()?.get(TICKS_KEY)
}

const NO_LIFESPAN: &str = "No periodic source: the server ran without lifespan.\n";

/// `GET /poll`: wait for the next tick.
async fn poll(http: &HttpScope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let Some(ticks) = ticks_of(http) else {
        return respond(&send, 503, NO_LIFESPAN).await;
    };
    let mut sub = ticks.subscribe();
    let next = async {
        loop {
            match sub.recv().await {
                Ok(tick) => return Some(tick),
                Err(RecvError::Lagged(_)) => continue, // cannot happen for the first
                Err(RecvError::Closed) => return None,
            }
        }
    };
    tokio::select! {
        tick = next => match tick {
            Some(tick) => respond(&send, 200, &format!("{}\n", describe(tick))).await,
            None => respond(&send, 503, "The periodic source stopped.\n").await,
        },
        _ = tokio::time::sleep(LONG_POLL) => respond(&send, 204, "").await,
        _ = client_gone(&mut receive) => Ok(()),
    }
}

/// `/stream` (SSE): every tick as an event.
async fn stream(sse: &HttpScope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    while let ReceiveEvent::SseRequest { more: true, .. } = receive.recv().await {}
    let ticks = ticks_of(sse).filter(|_| sse.path == "/stream");
    let Some(ticks) = ticks else {
        // Decline the stream with an ordinary response.
        let (status, body) = match sse.path.as_str() {
            "/stream" => (503, NO_LIFESPAN),
            _ => (404, "Not found: the stream is at /stream\n"),
        };
        let headers = Headers::new()
            .with("content-type", "text/plain")
            .with("content-length", body.len().to_string());
        send.send(SendEvent::SseHttpResponseStart { status, headers })
            .await?;
        send.send(SendEvent::SseHttpResponseBody {
            body: body.into(),
            more: false,
        })
        .await?;
        return Ok(());
    };
    let limit: Option<u64> = std::str::from_utf8(&sse.query_string).ok().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("n=")?.parse().ok())
    });
    let mut sub = ticks.subscribe();
    send.send(SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    })
    .await?;
    let mut sent = 0u64;
    while limit.is_none_or(|l| sent < l) {
        let event = tokio::select! {
            r = sub.recv() => r,
            _ = client_gone(&mut receive) => return Ok(()),
        };
        let (event, data, id) = match event {
            Ok(tick) => ("tick", describe(tick), Some(tick.n.to_string())),
            Err(RecvError::Lagged(missed)) => ("lagged", format!("missed {missed} ticks"), None),
            Err(RecvError::Closed) => break,
        };
        send.send(SendEvent::SseSend {
            event: Some(event.into()),
            data,
            id,
            retry: None,
        })
        .await?;
        sent += u64::from(event == "tick");
    }
    send.send(SendEvent::SseClose { reason: None }).await?;
    Ok(())
}

fn describe(tick: Tick) -> String {
    format!(
        "tick {} ({} ms after startup)",
        tick.n,
        tick.uptime.as_millis()
    )
}

async fn respond(send: &Sender, status: u16, body: &str) -> Result<(), BoxError> {
    let mut headers = Headers::new().with("content-type", "text/plain");
    if status != 204 {
        headers.push("content-length", body.len().to_string());
    }
    send.send(SendEvent::response_start(status, headers))
        .await?;
    send.send(SendEvent::response_body(body.to_owned(), false))
        .await?;
    Ok(())
}

/// Resolves when `receive` yields a disconnect (cancel-safe).
async fn client_gone(receive: &mut Receiver) {
    while !receive.recv().await.is_disconnect() {}
}
