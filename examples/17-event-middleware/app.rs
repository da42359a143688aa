//! 17 – Event middleware: a middleware that owns an event source and
//! injects its events into the `receive` of the app it wraps.
//!
//! [`with_ticks`] wraps any app. For WebSocket and SSE scopes it hands the
//! inner app a `receive` of its own: a [`TickSource`] that yields the
//! client's events as before, and in between a `tick` event
//! ([`ReceiveEvent::Custom`], data `Value::Int(n)`) from its own timer.
//! Ticks start once the connection's opening event (`websocket.connect`,
//! or the last piece of the `sse.request` body) has been delivered, and stop
//! at the disconnect. HTTP and lifespan scopes pass through untouched.
//!
//! The inner app ([`echo`]) has no timer and spawns nothing: it is a single
//! loop that switches on the type of whatever `receive` gives it —
//! a client message is echoed (`echo: …`), a `tick` is pushed to the
//! client (`tick N` over WebSocket, an SSE `tick` event), a disconnect ends
//! it. Compare 18, where the app runs its own timer branch next to its
//! receive loop.

use std::task::{Context, Poll};
use std::time::Duration;

use pagi::{
    App, BoxError, BoxFuture, EventSource, Headers, Message, ReceiveEvent, Receiver, Scope,
    SendEvent, Sender, Value,
};
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

/// How often the middleware injects a tick.
pub const TICK: Duration = Duration::from_secs(1);

/// The middleware: `inner` with `tick` events every `every` in its
/// `receive` (WebSocket and SSE scopes).
pub fn with_ticks<A: App>(inner: A, every: Duration) -> WithTicks<A> {
    WithTicks { inner, every }
}

/// The app [`with_ticks`] makes.
#[derive(Debug)]
pub struct WithTicks<A> {
    inner: A,
    every: Duration,
}

impl<A: App> App for WithTicks<A> {
    fn call(
        &self,
        scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> BoxFuture<Result<(), BoxError>> {
        let receive = match scope {
            Scope::WebSocket(_) | Scope::Sse(_) => {
                Receiver::new(TickSource::new(receive, self.every))
            }
            _ => receive,
        };
        self.inner.call(scope, receive, send)
    }
}

/// A `receive` that merges the client's events with a timer's ticks.
#[derive(Debug)]
pub struct TickSource {
    client: Receiver,
    every: Duration,
    /// Made once the opening event has been delivered.
    timer: Option<Interval>,
    ticks: i64,
    ended: bool,
}

impl TickSource {
    /// Wrap the server's `receive`.
    pub fn new(client: Receiver, every: Duration) -> Self {
        TickSource {
            client,
            every,
            timer: None,
            ticks: 0,
            ended: false,
        }
    }
}

impl EventSource for TickSource {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        // The client's events first: a busy timer never delays them.
        if let Poll::Ready(event) = self.client.poll_recv(cx) {
            match &event {
                e if e.is_disconnect() => self.ended = true,
                ReceiveEvent::WebSocketConnect | ReceiveEvent::SseRequest { more: false, .. }
                    if self.timer.is_none() =>
                {
                    let mut timer = interval_at(Instant::now() + self.every, self.every);
                    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    self.timer = Some(timer);
                }
                _ => {}
            }
            return Poll::Ready(event);
        }
        match &mut self.timer {
            Some(timer) if !self.ended => {
                std::task::ready!(timer.poll_tick(cx));
                self.ticks += 1;
                Poll::Ready(ReceiveEvent::custom("tick", Value::Int(self.ticks)))
            }
            _ => Poll::Pending,
        }
    }
}

/// The inner app: echoes client messages, pushes ticks.
pub async fn echo(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    match scope {
        Scope::WebSocket(_) => {
            match receive.recv().await {
                ReceiveEvent::WebSocketConnect => send.send(SendEvent::accept()).await?,
                other => {
                    return Err(
                        format!("expected websocket.connect, got {}", other.type_name()).into(),
                    )
                }
            }
            loop {
                match receive.recv().await {
                    ReceiveEvent::WebSocketReceive(Message::Text(text)) => {
                        send.send(SendEvent::text(format!("echo: {text}"))).await?;
                    }
                    ReceiveEvent::WebSocketReceive(Message::Binary(bytes)) => {
                        send.send(SendEvent::binary(bytes)).await?;
                    }
                    ReceiveEvent::Custom {
                        kind,
                        data: Value::Int(n),
                    } if kind == "tick" => {
                        send.send(SendEvent::text(format!("tick {n}"))).await?;
                    }
                    ReceiveEvent::WebSocketDisconnect { .. } => return Ok(()),
                    _ => {} // events of other middleware: not ours
                }
            }
        }
        Scope::Sse(_) => {
            while let ReceiveEvent::SseRequest { more: true, .. } = receive.recv().await {}
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            loop {
                match receive.recv().await {
                    ReceiveEvent::Custom {
                        kind,
                        data: Value::Int(n),
                    } if kind == "tick" => {
                        send.send(SendEvent::SseSend {
                            event: Some("tick".into()),
                            data: format!("tick {n}"),
                            id: Some(n.to_string()),
                            retry: None,
                        })
                        .await?;
                    }
                    ReceiveEvent::SseDisconnect { .. } => return Ok(()),
                    _ => {}
                }
            }
        }
        Scope::Http(_) => {
            while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
            let body = "Connect over WebSocket (messages are echoed, ticks pushed) \
                        or with Accept: text/event-stream (ticks)\n";
            let headers = Headers::new()
                .with("content-type", "text/plain")
                .with("content-length", body.len().to_string());
            send.send(SendEvent::response_start(200, headers)).await?;
            send.send(SendEvent::response_body(body, false)).await?;
            Ok(())
        }
        other => Err(pagi::unsupported_scope(&other)),
    }
}

/// The app: [`echo`] wrapped in [`with_ticks`] with a [`TICK`] period.
pub async fn app(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    with_ticks(echo, TICK).call(scope, receive, send).await
}
