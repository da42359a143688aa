//! The server: lifespan startup, then the listeners, one accept loop each,
//! and graceful shutdown as architecture: one watch channel tells every
//! connection (and every accept loop) the server is draining, and a
//! live-connection count tells the server when they are all gone.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pagi::{ServerAddr, SharedApp};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::budget::BufferBudget;
use crate::ctx::{Ctx, Live, Phase};
use crate::lifespan::Lifespan;
use crate::listener::{tls::Acceptor, Listener, Stream};
use crate::{Config, Error};

/// A handle to a running server: where it listens, its live-connection
/// count, certificate reload, and a way to start a graceful shutdown.
#[derive(Clone)]
pub struct ServerHandle {
    addrs: Arc<[ServerAddr]>,
    live: Arc<Live>,
    phase: Arc<watch::Sender<Phase>>,
    budget: Arc<BufferBudget>,
    tls: Arc<[Acceptor]>,
}

impl ServerHandle {
    /// The first TCP listener's address, if there is one (with port 0 in
    /// the config, the port the system picked).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addrs.iter().find_map(|a| match a {
            ServerAddr::Tcp(sa) => Some(*sa),
            ServerAddr::Unix(_) => None,
        })
    }

    /// Every listener's address, in the order of `Config::listen`.
    pub fn listen_addrs(&self) -> &[ServerAddr] {
        &self.addrs
    }

    /// Connections (and their apps) currently alive.
    pub fn live_connections(&self) -> usize {
        self.live.count()
    }

    /// Bytes the server holds on clients' behalf right now: WebSocket
    /// messages decoded for apps that have not received them yet, messages
    /// being received, and input read but not decoded (see
    /// [`crate::Config::max_buffered_bytes`]).
    pub fn buffered_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Read every TLS listener's certificate, key and CA files again, as
    /// SIGHUP does: new handshakes use them, open connections are not
    /// touched. A listener whose files do not load keeps its old
    /// certificate; the first such error is returned.
    pub fn reload_tls(&self) -> Result<(), Error> {
        let mut first = Ok(());
        for acceptor in self.tls.iter() {
            if let Err(e) = acceptor.reload() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Begin a graceful shutdown, as SIGTERM does.
    pub fn shutdown(&self) {
        self.phase.send_if_modified(|p| {
            let changed = *p == Phase::Running;
            if changed {
                *p = Phase::Draining;
            }
            changed
        });
    }
}

/// A bound server, lifespan started, ready to [`Server::run`].
///
/// ```no_run
/// # async fn demo() -> Result<(), pagi_server::Error> {
/// async fn app(_: pagi::Scope, _: pagi::Receiver, _: pagi::Sender) -> Result<(), pagi::BoxError> {
///     Ok(())
/// }
/// let server = pagi_server::Server::bind(pagi_server::Config::default(), pagi::app_fn(app)).await?;
/// println!("listening on {:?}", server.handle().listen_addrs());
/// server.run().await
/// # }
/// ```
pub struct Server {
    listeners: Vec<Listener>,
    ctx: Arc<Ctx>,
    lifespan: Option<Lifespan>,
    handle: ServerHandle,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.handle.addrs)
            .field("lifespan", &self.lifespan.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("listen", &self.addrs)
            .field("live_connections", &self.live_connections())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Run the lifespan startup, then bind every listener of
    /// `config.listen` (loading their TLS files). Fails if the app sends
    /// `lifespan.startup.failed` (before anything is bound), if an address
    /// cannot be bound, or if a certificate or key cannot be used.
    pub async fn bind(config: Config, app: SharedApp) -> Result<Server, Error> {
        config.h2.check().map_err(Error::config)?;
        let lifespan = crate::lifespan::startup(&app, &config).await?;
        let listeners = config
            .listen
            .iter()
            .map(|l| Listener::bind(l, config.backlog, config.http2))
            .collect::<Result<Vec<_>, _>>()?;
        let access_log = match &config.access_log {
            Some(cfg) => Some(
                AccessLog::start(cfg)
                    .map_err(|e| Error::startup(format!("cannot open the access log: {e}")))?,
            ),
            None => None,
        };
        let state = lifespan.as_ref().map(Lifespan::state_snapshot);
        let (ctx, phase_tx) = Ctx::new(app, config, state, access_log);
        let handle = ServerHandle {
            addrs: listeners.iter().map(|l| l.local.clone()).collect(),
            live: ctx.live.clone(),
            phase: Arc::new(phase_tx),
            budget: ctx.budget.clone(),
            tls: listeners.iter().filter_map(|l| l.tls.clone()).collect(),
        };
        Ok(Server {
            listeners,
            ctx,
            lifespan,
            handle,
        })
    }

    /// A handle for tests and embedding code.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Serve until SIGINT/SIGTERM (or [`ServerHandle::shutdown`]), then
    /// drain: stop accepting, close WebSockets with 1001, give apps
    /// `shutdown_timeout` to finish, run `lifespan.shutdown`. SIGHUP
    /// reloads the TLS certificates. Tells systemd `READY=1` once serving
    /// and `STOPPING=1` when the drain starts (when `NOTIFY_SOCKET` is set).
    pub async fn run(self) -> Result<(), Error> {
        let reload = tokio::spawn(reload_on_sighup(self.handle.clone()));
        let result = self.run_until(shutdown_signal()).await;
        reload.abort();
        result
    }

    /// Like [`Server::run`], with a custom shutdown trigger instead of
    /// signals.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        let Server {
            listeners,
            ctx,
            lifespan,
            handle,
        } = self;
        let loops: Vec<_> = listeners
            .into_iter()
            .map(|l| tokio::spawn(accept_loop(l, ctx.clone())))
            .collect();
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let mut phase = handle.phase.subscribe();
        tokio::select! {
            () = signal => {}
            _ = phase.wait_for(|p| *p != Phase::Running) => {}
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        handle.phase.send_replace(Phase::Draining);
        // The accept loops end, dropping their listeners (Unix socket files
        // are removed).
        for l in loops {
            let _ = l.await;
        }
        let timeout = ctx.config.shutdown_timeout;
        if tokio::time::timeout(timeout, ctx.live.wait_zero())
            .await
            .is_err()
        {
            tracing::warn!(
                "Shutdown timeout: force-closing {} active connections",
                ctx.live.count()
            );
            handle.phase.send_replace(Phase::Stopped);
            let _ = tokio::time::timeout(Duration::from_secs(1), ctx.live.wait_zero()).await;
        }
        if let Some(l) = lifespan {
            l.shutdown(timeout).await;
        }
        if let Some(log) = &ctx.access_log {
            log.flush(Duration::from_secs(1));
        }
        Ok(())
    }
}

/// Accept until the server drains.
async fn accept_loop(listener: Listener, ctx: Arc<Ctx>) {
    let mut phase = ctx.phase.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, &listener, &ctx),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("Accept error: {e} - pausing accept for 100ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // The watch `Ref` (not `Send`) is dropped at once, so that this
            // task stays spawnable.
            _ = async { phase.wait_for(|p| *p != Phase::Running).await.map(drop) } => return,
        }
    }
}

fn admit(stream: Stream, peer: Option<SocketAddr>, listener: &Listener, ctx: &Arc<Ctx>) {
    if ctx.live.count() >= ctx.config.max_connections {
        tracing::warn!(
            "Connection rejected: at capacity ({}/{})",
            ctx.live.count(),
            ctx.config.max_connections
        );
        // A TLS client would not understand a plain-text 503: just close.
        if listener.tls.is_none() {
            tokio::spawn(reject_busy(stream));
        }
        return;
    }
    let guard = ctx.live.guard();
    tokio::spawn(crate::conn::serve(
        stream,
        peer,
        listener.local.clone(),
        listener.tls.clone(),
        ctx.clone(),
        guard,
    ));
}

async fn reject_busy(mut stream: Stream) {
    let msg = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 5\r\ncontent-length: 20\r\nconnection: close\r\n\r\nService Unavailable\n";
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(msg)).await;
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Reload the TLS certificates on every SIGHUP.
async fn reload_on_sighup(handle: ServerHandle) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        if handle.tls.is_empty() {
            tracing::info!("SIGHUP: no TLS listener, nothing to reload");
            continue;
        }
        match handle.reload_tls() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificates reloaded"),
            Err(e) => tracing::error!("SIGHUP: {e}; keeping the previous certificate"),
        }
    }
}
