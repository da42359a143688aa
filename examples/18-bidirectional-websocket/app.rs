//! 18 – Bidirectional WebSocket (send and receive at once).
//!
//! After accepting, two branches run concurrently on the one connection:
//! - incoming: read client messages and echo them back uppercased;
//! - outgoing: push an unsolicited `server tick #N` every second.
//!
//! They are joined with `tokio::select!`, so the first to finish cancels the
//! other: a disconnect ends `incoming`, which drops (cancels) `outgoing`.
//! `receive` and `send` never block each other, and sends from both branches
//! go out as whole frames. The app handles only the `websocket` scope and
//! declines everything else (lifespan included) by returning an error.

use std::time::Duration;

use pagi::{ws, BoxError, Message, Receiver, Scope, Sender};
use tokio::time::{interval_at, Instant, MissedTickBehavior};

/// How often the outgoing branch pushes a tick.
pub const TICK: Duration = Duration::from_secs(1);

/// The app.
pub async fn app(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    if !matches!(scope, Scope::WebSocket(_)) {
        return Err(pagi::unsupported_scope(&scope));
    }
    let (mut rx, tx) = ws::accept(receive, send).await?;

    // client -> server
    let incoming = pagi::branch(async {
        while let Some(msg) = rx.recv().await {
            if let Message::Text(text) = msg {
                tx.text(format!("you said: {}", text.to_uppercase()))
                    .await?;
            } // binary messages are not part of this demo
        }
        Ok(())
    });

    // server -> client, unprompted
    let outgoing = pagi::branch(async {
        let mut ticks = interval_at(Instant::now() + TICK, TICK);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        for n in 1u64.. {
            ticks.tick().await;
            tx.text(format!("server tick #{n}")).await?;
        }
        Ok(())
    });

    // A disconnect ends `incoming` -> `outgoing` is cancelled (dropped).
    tokio::select! {
        r = incoming => r,
        r = outgoing => r,
    }
}
