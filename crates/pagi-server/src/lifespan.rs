//! The lifespan protocol: `lifespan.startup` before the port is bound,
//! `lifespan.shutdown` after the connections drained.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pagi::{
    EventSink, EventSource, LifespanScope, ReceiveEvent, Receiver, Scope, SendError, SendEvent,
    Sender, SharedApp, SharedState, State,
};
use tokio::sync::mpsc;

use crate::config::LifespanMode;
use crate::{Config, Error};

/// Signals from the app, in order.
#[derive(Debug)]
enum Signal {
    StartupComplete,
    StartupFailed(String),
    ShutdownComplete,
    ShutdownFailed(String),
    Returned(Result<(), String>),
}

#[derive(Default)]
struct Inbox {
    pending: Option<ReceiveEvent>,
    waker: Option<Waker>,
}

struct Source(Arc<Mutex<Inbox>>);

impl EventSource for Source {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        let mut inbox = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match inbox.pending.take() {
            Some(e) => Poll::Ready(e),
            None => {
                inbox.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

struct Sink {
    tx: mpsc::UnboundedSender<Signal>,
    /// `lifespan.startup.complete` was sent: from then on, an error of the
    /// app is logged when it happens (the spec's L4).
    started: Arc<AtomicBool>,
}

impl EventSink for Sink {
    fn poll_ready(&self, _: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }

    /// The lifespan's peer is the server itself, which outlives the
    /// lifespan app: never closed.
    fn poll_closed(&self, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }

    fn is_closed(&self) -> bool {
        false
    }

    fn start_send(&self, event: SendEvent) -> Result<(), SendError> {
        let signal = match event {
            SendEvent::LifespanStartupComplete => {
                self.started.store(true, Ordering::SeqCst);
                Signal::StartupComplete
            }
            SendEvent::LifespanStartupFailed { message } => Signal::StartupFailed(message),
            SendEvent::LifespanShutdownComplete => Signal::ShutdownComplete,
            SendEvent::LifespanShutdownFailed { message } => Signal::ShutdownFailed(message),
            other => return Err(SendError::unrecognized(&other, "lifespan")),
        };
        // At most four signals per process: unbounded is bounded here.
        let _ = self.tx.send(signal);
        Ok(())
    }
}

/// A lifespan that completed startup and awaits shutdown.
pub(crate) struct Lifespan {
    inbox: Arc<Mutex<Inbox>>,
    signals: mpsc::UnboundedReceiver<Signal>,
    state: SharedState,
}

impl Lifespan {
    pub(crate) fn state_snapshot(&self) -> State {
        self.state.snapshot()
    }

    /// Send `lifespan.shutdown` and wait (bounded) for the app's answer.
    pub(crate) async fn shutdown(mut self, timeout: Duration) {
        deliver(&self.inbox, ReceiveEvent::LifespanShutdown);
        let wait = async {
            while let Some(signal) = self.signals.recv().await {
                match signal {
                    // (An error was logged when it happened.)
                    Signal::ShutdownComplete | Signal::Returned(_) => return None,
                    Signal::ShutdownFailed(m) => return Some(m),
                    _ => {}
                }
            }
            None
        };
        let warning = match tokio::time::timeout(timeout, wait).await {
            Ok(w) => w,
            Err(_) => Some(format!(
                "Lifespan shutdown timed out after {}s",
                timeout.as_secs()
            )),
        };
        if let Some(m) = warning {
            tracing::warn!("PAGI Server shutdown warning: {m}");
        }
    }
}

fn deliver(inbox: &Mutex<Inbox>, event: ReceiveEvent) {
    let mut inbox = inbox.lock().unwrap_or_else(|e| e.into_inner());
    inbox.pending = Some(event);
    if let Some(w) = inbox.waker.take() {
        w.wake();
    }
}

/// Run lifespan startup per `config.lifespan`. `Ok(None)`: no lifespan
/// (off, or the app declined in auto mode). `Err`: startup must abort.
pub(crate) async fn startup(app: &SharedApp, config: &Config) -> Result<Option<Lifespan>, Error> {
    if config.lifespan == LifespanMode::Off {
        return Ok(None);
    }
    let inbox = Arc::new(Mutex::new(Inbox {
        pending: Some(ReceiveEvent::LifespanStartup),
        waker: None,
    }));
    let (tx, mut signals) = mpsc::unbounded_channel();
    let state = SharedState::default();
    let scope = Scope::Lifespan(Box::new(LifespanScope {
        state: state.clone(),
        ..LifespanScope::default()
    }));
    let started = Arc::new(AtomicBool::new(false));
    let fut = app.call(
        scope,
        Receiver::new(Source(inbox.clone())),
        Sender::new(Arc::new(Sink {
            tx: tx.clone(),
            started: started.clone(),
        })),
    );
    tokio::spawn(async move {
        let result = fut.await.map_err(|e| e.to_string().trim_end().to_owned());
        if let (Err(e), true) = (&result, started.load(Ordering::SeqCst)) {
            tracing::error!("PAGI lifespan application error (after startup): {e}");
        }
        let _ = tx.send(Signal::Returned(result));
    });

    let outcome = wait_startup(&mut signals, config.lifespan_startup_timeout).await;
    match outcome {
        Startup::Complete => Ok(Some(Lifespan {
            inbox,
            signals,
            state,
        })),
        Startup::Failed(m) => {
            tracing::error!("PAGI Server startup failed: {m}");
            Err(Error::startup(m))
        }
        Startup::TimedOut(secs) => {
            let m = format!("Lifespan startup timed out after {secs}s");
            tracing::error!("{m}");
            Err(Error::startup(m))
        }
        Startup::Declined(raised) => {
            if config.lifespan == LifespanMode::On {
                let m = match raised {
                    Some(e) => format!("lifespan_mode is 'on' but the application raised: {e}"),
                    None => "lifespan_mode is 'on' but the application returned without signalling startup".to_owned(),
                };
                tracing::error!("PAGI Server startup failed: {m}");
                return Err(Error::startup(m));
            }
            match raised {
                Some(e) => tracing::info!(
                    "Lifespan not supported, continuing without it (application raised: {e})"
                ),
                None => tracing::info!("Lifespan not supported, continuing without it"),
            }
            Ok(None)
        }
    }
}

enum Startup {
    Complete,
    Failed(String),
    TimedOut(u64),
    /// The app returned (None) or raised (Some(message)) without answering.
    Declined(Option<String>),
}

async fn wait_startup(signals: &mut mpsc::UnboundedReceiver<Signal>, timeout: Duration) -> Startup {
    let wait = async {
        loop {
            match signals.recv().await {
                Some(Signal::StartupComplete) => return Startup::Complete,
                Some(Signal::StartupFailed(m)) => return Startup::Failed(m),
                Some(Signal::Returned(Ok(()))) | None => return Startup::Declined(None),
                Some(Signal::Returned(Err(e))) => return Startup::Declined(Some(e)),
                Some(_) => {}
            }
        }
    };
    if timeout.is_zero() {
        return wait.await;
    }
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or(Startup::TimedOut(timeout.as_secs()))
}
