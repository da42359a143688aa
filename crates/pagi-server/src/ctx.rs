//! What every connection shares with the server: the app, the settings, the
//! server's phase (connections watch it to drain), the live-connection count
//! (the server waits on it) and the buffer budget. Nothing here touches a
//! socket.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use pagi::{Extensions, PagiInfo, RequestInfo, SharedApp, State, Transport};
use tokio::sync::{watch, Notify};

use crate::access_log::AccessLog;
use crate::budget::BufferBudget;
use crate::listener::ConnInfo;
use crate::when_woken::WhenWoken;
use crate::wire::request::RequestHead;
use crate::Config;

/// Where the server is in its life; connections watch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    /// Stop accepting; close idle keep-alives; send WebSockets Close 1001.
    Draining,
    /// The shutdown timeout ran out: drop whatever is left.
    Stopped,
}

/// Everything a connection needs, shared by all of them.
pub(crate) struct Ctx {
    pub(crate) app: SharedApp,
    pub(crate) config: Config,
    pub(crate) state: Option<State>,
    pub(crate) phase: watch::Receiver<Phase>,
    pub(crate) live: Arc<Live>,
    /// Bytes held on clients' behalf, process-wide (`max_buffered_bytes`).
    pub(crate) budget: Arc<BufferBudget>,
    pub(crate) access_log: Option<AccessLog>,
}

impl Ctx {
    /// The shared state of a server (or a test client, or an embedded
    /// WebSocket host), and the sender that moves its phase.
    pub(crate) fn new(
        app: SharedApp,
        config: Config,
        state: Option<State>,
        access_log: Option<AccessLog>,
    ) -> (Arc<Ctx>, watch::Sender<Phase>) {
        let (phase_tx, phase) = watch::channel(Phase::Running);
        let budget = BufferBudget::new(config.max_buffered_bytes);
        let ctx = Ctx {
            app,
            config,
            state,
            phase,
            live: Arc::new(Live::default()),
            budget,
            access_log,
        };
        (Arc::new(ctx), phase_tx)
    }

    /// What every request scope of `head` shares: the client and whether
    /// it came over TLS (`schemes` = plain, secure; a trusted proxy's
    /// headers count), the listener, the mount point and the lifespan state.
    pub(crate) fn request_info(
        &self,
        head: RequestHead,
        info: &ConnInfo,
        (plain, secure): (&'static str, &'static str),
        extensions: Extensions,
        transport: Transport,
    ) -> RequestInfo {
        let (client, tls) = info.identity(&head.headers, &self.config.proxy);
        // Every field spelled out, nothing from `Default`.
        RequestInfo {
            pagi: PagiInfo::default(),
            http_version: head.http_version,
            scheme: std::borrow::Cow::Borrowed(if tls { secure } else { plain }),
            path: head.path,
            raw_path: head.raw_path,
            query_string: head.query_string,
            root_path: self.config.root_path.clone(),
            headers: head.headers,
            client,
            server: info.local.clone(),
            state: self.state.clone(),
            extensions,
            transport: Some(transport),
            custom: State::default(),
        }
    }
}

/// The count of live connections (including apps still running after
/// their connection closed).
#[derive(Default)]
pub(crate) struct Live {
    count: AtomicUsize,
    zero: Notify,
}

impl Live {
    pub(crate) fn guard(self: &Arc<Self>) -> LiveGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.clone())
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub(crate) async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts one live connection or app until dropped.
pub(crate) struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

/// A connection's view of the server's phase: ready once per change,
/// and cheap to poll meanwhile (see [`WhenWoken`]).
pub(crate) struct PhaseWatch {
    next: WhenWoken<Pin<Box<dyn Future<Output = Phase> + Send>>>,
    rx: watch::Receiver<Phase>,
}

impl PhaseWatch {
    pub(crate) fn new(ctx: &Ctx) -> PhaseWatch {
        PhaseWatch {
            next: WhenWoken::new(Self::after(ctx.phase.clone(), Phase::Running)),
            rx: ctx.phase.clone(),
        }
    }

    fn after(
        mut rx: watch::Receiver<Phase>,
        now: Phase,
    ) -> Pin<Box<dyn Future<Output = Phase> + Send>> {
        Box::pin(async move {
            match rx.wait_for(|p| *p > now).await {
                Ok(p) => *p,
                // The server is gone: as good as stopped.
                Err(_) => Phase::Stopped,
            }
        })
    }

    /// The new phase, once it moved on from the last one seen.
    pub(crate) fn poll_change(&mut self, cx: &mut Context<'_>) -> Poll<Phase> {
        let phase = std::task::ready!(Pin::new(&mut self.next).poll(cx));
        if phase < Phase::Stopped {
            self.next = WhenWoken::new(Self::after(self.rx.clone(), phase));
        }
        Poll::Ready(phase)
    }
}
