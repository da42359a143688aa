//! The listener, the accept loop, per-connection tasks, and graceful
//! shutdown as architecture: one watch channel tells every connection the
//! server is draining, and a live-connection count tells the server when
//! they are all gone.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use pagi::{SharedApp, State};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::budget::BufferBudget;
use crate::lifespan::Lifespan;
use crate::when_woken::WhenWoken;
use crate::{Config, Error};

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
    pub(crate) local: SocketAddr,
    pub(crate) phase: watch::Receiver<Phase>,
    pub(crate) live: Arc<Live>,
    /// Bytes held on clients' behalf, process-wide (`max_buffered_bytes`).
    pub(crate) budget: Arc<BufferBudget>,
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

    async fn wait_zero(&self) {
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

/// A handle to a running server: its address, its live-connection count,
/// and a way to start a graceful shutdown.
#[derive(Clone)]
pub struct ServerHandle {
    local: SocketAddr,
    live: Arc<Live>,
    phase: Arc<watch::Sender<Phase>>,
    budget: Arc<BufferBudget>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
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
/// println!("listening on {}", server.handle().local_addr());
/// server.run().await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    ctx: Arc<Ctx>,
    lifespan: Option<Lifespan>,
    handle: ServerHandle,
}

impl Server {
    /// Run the lifespan startup, then bind `config.bind`. Fails if the app
    /// sends `lifespan.startup.failed` (before any port is bound) or the
    /// address cannot be bound.
    pub async fn bind(config: Config, app: SharedApp) -> Result<Server, Error> {
        let lifespan = crate::lifespan::startup(&app, &config).await?;
        let listener = bind_listener(config.bind)?;
        let local = listener.local_addr().map_err(Error::io)?;
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let live = Arc::new(Live::default());
        let budget = BufferBudget::new(config.max_buffered_bytes);
        let ctx = Arc::new(Ctx {
            app,
            state: lifespan.as_ref().map(Lifespan::state_snapshot),
            config,
            local,
            phase: phase_rx,
            live: live.clone(),
            budget: budget.clone(),
        });
        Ok(Server {
            listener,
            ctx,
            lifespan,
            handle: ServerHandle {
                local,
                live,
                phase: Arc::new(phase_tx),
                budget,
            },
        })
    }

    /// A handle for tests and embedding code.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Serve until SIGINT/SIGTERM (or [`ServerHandle::shutdown`]), then
    /// drain: stop accepting, close WebSockets with 1001, give apps
    /// `shutdown_timeout` to finish, run `lifespan.shutdown`.
    pub async fn run(self) -> Result<(), Error> {
        self.run_until(shutdown_signal()).await
    }

    /// Like [`Server::run`], with a custom shutdown trigger instead of signals.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        let Server {
            listener,
            ctx,
            lifespan,
            handle,
        } = self;
        let mut phase = handle.phase.subscribe();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => accept(stream, peer, &ctx),
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("Accept error: {e} - pausing accept for 100ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = &mut signal => break,
                // Drop the watch `Ref` (not `Send`) at once: the select's
                // output lives across the sleep above, and `run` must stay
                // spawnable on a multi-thread runtime.
                _ = async { phase.wait_for(|p| *p != Phase::Running).await.map(drop) } => break,
            }
        }
        drop(listener);
        handle.phase.send_replace(Phase::Draining);
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
        Ok(())
    }
}

fn bind_listener(addr: SocketAddr) -> Result<TcpListener, Error> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(Error::io)?;
    socket.set_reuseaddr(true).map_err(Error::io)?;
    socket.bind(addr).map_err(|e| Error::bind(addr, e))?;
    socket.listen(2048).map_err(|e| Error::bind(addr, e))
}

fn accept(stream: TcpStream, peer: SocketAddr, ctx: &Arc<Ctx>) {
    let _ = stream.set_nodelay(true);
    if ctx.live.count() >= ctx.config.max_connections {
        tracing::warn!(
            "Connection rejected: at capacity ({}/{})",
            ctx.live.count(),
            ctx.config.max_connections
        );
        tokio::spawn(reject_busy(stream));
        return;
    }
    let guard = ctx.live.guard();
    tokio::spawn(serve_connection(stream, peer, ctx.clone(), guard));
}

async fn reject_busy(mut stream: TcpStream) {
    let msg = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 5\r\ncontent-length: 20\r\nconnection: close\r\n\r\nService Unavailable\n";
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(msg)).await;
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>, _live: LiveGuard) {
    let mut phase = ctx.phase.clone();
    let activity = Arc::new(Activity::default());
    let service = crate::http::Service {
        ctx: ctx.clone(),
        peer,
        activity: activity.clone(),
        last: Default::default(),
    };
    let conn = http1::Builder::new()
        .max_buf_size(ctx.config.max_header_size.max(8192))
        .max_headers(ctx.config.max_header_count)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    // The watchdog (instead of hyper's per-request header timer, which
    // costs a timer per request): a connection that neither completed nor
    // was serving a request for a whole period is closed. That bounds idle
    // keep-alive connections and slow request heads alike (period..2x).
    let period = ctx.config.header_read_timeout;
    let watchdog = tokio::time::sleep(period.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(watchdog);
    let mut watchdog = WhenWoken::new(watchdog);
    {
        // Polled on every wake-up of this task (at least once per request):
        // wrapped, like the watchdog, so that it costs an atomic swap
        // instead of the watch channel's lock.
        let draining = async { phase.wait_for(|p| *p >= Phase::Draining).await.map(drop) };
        tokio::pin!(draining);
        let mut draining = WhenWoken::new(draining);
        let mut seen = 0;
        loop {
            tokio::select! {
                biased;
                res = conn.as_mut() => return log_conn_end(peer, res),
                _ = &mut draining => break,
                () = &mut watchdog, if period.is_some() => {
                    let started = activity.started.load(Ordering::Relaxed);
                    if started == seen && activity.in_flight.load(Ordering::Relaxed) == 0 {
                        tracing::debug!("connection {peer}: no request for {period:?}, closing");
                        return;
                    }
                    seen = started;
                    let next = tokio::time::Instant::now() + period.unwrap_or_default();
                    watchdog.update(|sleep| sleep.as_mut().reset(next));
                }
            }
        }
    }
    // Draining: finish the request in flight, then close (no keep-alive).
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        res = conn.as_mut() => log_conn_end(peer, res),
        _ = phase.wait_for(|p| *p == Phase::Stopped) => {}
    }
}

/// Requests on one HTTP connection, for its watchdog.
#[derive(Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    pub(crate) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self.clone())
    }
}

/// One request in flight (until its response body is done).
pub(crate) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn log_conn_end(peer: SocketAddr, res: Result<(), hyper::Error>) {
    if let Err(e) = res {
        tracing::debug!("connection {peer}: {e}");
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
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
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
