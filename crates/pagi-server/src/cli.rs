//! The `pagi-server` command line, as a library: parse flags, set up
//! logging and the runtime, run the lifespan, serve until a signal.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use pagi::SharedApp;

use crate::{Config, LifespanMode, QueuePolicy, Server};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LifespanArg {
    Auto,
    On,
    Off,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum QueueArg {
    Backpressure,
    Close,
}

/// PAGI server for Rust: HTTP/1.1, WebSocket and lifespan.
#[derive(Parser, Debug)]
#[command(name = "pagi-server", version = concat!(env!("CARGO_PKG_VERSION"), " (PAGI spec 0.3)"))]
struct Args {
    /// The app to serve: a bundled example's path or name
    /// (e.g. examples/18-bidirectional-websocket, 18, bidirectional-websocket).
    #[arg(short = 'a', long = "app", value_name = "APP")]
    app: Option<String>,
    /// The app, given as a positional argument instead of --app.
    #[arg(value_name = "APP", conflicts_with = "app")]
    app_positional: Option<String>,
    /// Interface to bind.
    #[arg(short = 'o', long, default_value = "127.0.0.1")]
    host: String,
    /// TCP port to bind.
    #[arg(short = 'p', long, default_value_t = 5000)]
    port: u16,
    /// Run the lifespan protocol: auto (a decline is fine), on (required), off.
    #[arg(long, value_enum, default_value = "auto")]
    lifespan: LifespanArg,
    /// Seconds to wait for lifespan.startup.complete (0 = forever).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    lifespan_startup_timeout: u64,
    /// Log level.
    #[arg(long, value_enum, default_value = "info")]
    log_level: LogLevel,
    /// Only log errors.
    #[arg(short, long)]
    quiet: bool,
    /// Runtime worker threads (0 = one per core; TOKIO_WORKER_THREADS also works).
    #[arg(short = 'w', long, default_value_t = 0)]
    workers: usize,
    /// Most concurrent connections; beyond it new ones get 503 (default: open-file limit - 64).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Seconds connections and apps get to finish on SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    shutdown_timeout: u64,
    /// Largest request body in bytes (0 = unlimited); beyond it 413.
    #[arg(long, default_value_t = 10_000_000, value_name = "BYTES")]
    max_body_size: u64,
    /// Largest request head in bytes; beyond it 431.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    max_header_size: usize,
    /// Most request headers; beyond it 431.
    #[arg(long, default_value_t = 100, value_name = "N")]
    max_header_count: usize,
    /// Seconds allowed to receive a request head (also the idle keep-alive limit); 0 = no limit.
    #[arg(long = "timeout", default_value_t = 60, value_name = "SECS")]
    header_read_timeout: u64,
    /// Seconds to wait for the next byte of a request body the app is reading; then 408
    /// (or the connection closes, if the response started). 0 = no limit.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    request_timeout: u64,
    /// Largest WebSocket message in bytes; beyond it close 1009.
    #[arg(long, default_value_t = 16 * 1024 * 1024, value_name = "BYTES")]
    max_ws_message_size: usize,
    /// WebSocket messages buffered for an app that is not reading.
    #[arg(long, default_value_t = 64, value_name = "N")]
    max_receive_queue: usize,
    /// Bytes a WebSocket connection may hold for its app (queued messages and the one
    /// being received); at least --max-ws-message-size. At it, --ws-queue-policy applies.
    #[arg(long, default_value_t = 16 * 1024 * 1024, value_name = "BYTES")]
    max_receive_bytes: usize,
    /// Bytes all connections together may hold for their apps; past 3/4 of it the
    /// connections holding the most stop reading, at it all do (0 = no limit).
    #[arg(long, default_value_t = 256 * 1024 * 1024, value_name = "BYTES")]
    max_buffered_bytes: usize,
    /// At a full inbound queue (messages or bytes): stop reading (backpressure) or close 1008.
    #[arg(long, value_enum, default_value = "backpressure")]
    ws_queue_policy: QueueArg,
    /// Most a compressed WebSocket message may expand (decompressed/compressed bytes) once
    /// past 1 MiB; beyond it close 1009 (0 = no limit).
    #[arg(long, default_value_t = 100, value_name = "N")]
    ws_max_inflate_ratio: usize,
    /// Seconds between keepalive pings to each WebSocket client (0 = no pings).
    #[arg(long, default_value_t = 20.0, value_name = "SECS")]
    ws_ping_interval: f64,
    /// Seconds to wait for the pong before closing (1006 keepalive_timeout; 0 = forever).
    #[arg(long, default_value_t = 20.0, value_name = "SECS")]
    ws_ping_timeout: f64,
    /// Outbound bytes at which WebSocket sends start to wait.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    write_high_watermark: usize,
    /// Outbound bytes below which waiting sends resume.
    #[arg(long, default_value_t = 16 * 1024, value_name = "BYTES")]
    write_low_watermark: usize,
    /// Close WebSockets idle this many seconds (0 = never).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    ws_idle_timeout: u64,
    /// Close SSE streams whose app sent nothing this many seconds (0 = never).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    sse_idle_timeout: u64,
    /// Offer permessage-deflate compression to WebSocket clients.
    #[arg(long, value_enum, default_value = "on")]
    ws_compression: OnOff,
}

impl Args {
    fn config(&self) -> Result<Config, String> {
        let bind = resolve(&self.host, self.port)?;
        let mut c = Config {
            bind,
            lifespan: match self.lifespan {
                LifespanArg::Auto => LifespanMode::Auto,
                LifespanArg::On => LifespanMode::On,
                LifespanArg::Off => LifespanMode::Off,
            },
            lifespan_startup_timeout: Duration::from_secs(self.lifespan_startup_timeout),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            max_body_size: self.max_body_size,
            max_header_size: self.max_header_size,
            max_header_count: self.max_header_count,
            header_read_timeout: secs(self.header_read_timeout),
            request_timeout: secs(self.request_timeout),
            ws_max_message_size: self.max_ws_message_size,
            ws_max_receive_queue: self.max_receive_queue,
            ws_max_receive_bytes: self.max_receive_bytes,
            max_buffered_bytes: self.max_buffered_bytes,
            ws_max_inflate_ratio: self.ws_max_inflate_ratio,
            ws_ping_interval: fractional_secs(self.ws_ping_interval, "--ws-ping-interval")?,
            ws_ping_timeout: fractional_secs(self.ws_ping_timeout, "--ws-ping-timeout")?,
            sse_idle_timeout: secs(self.sse_idle_timeout),
            ws_queue_policy: match self.ws_queue_policy {
                QueueArg::Backpressure => QueuePolicy::Backpressure,
                QueueArg::Close => QueuePolicy::Close,
            },
            ws_write_high_watermark: self.write_high_watermark,
            ws_write_low_watermark: self.write_low_watermark,
            ws_idle_timeout: secs(self.ws_idle_timeout),
            workers: self.workers,
            quiet: self.quiet,
            ..Config::default()
        };
        if let Some(n) = self.max_connections {
            c.max_connections = n;
        }
        c.ws_deflate.enabled = matches!(self.ws_compression, OnOff::On);
        Ok(c)
    }
}

/// A timeout flag in whole seconds; 0 turns it off.
fn secs(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

/// A timeout flag in seconds with a fraction; 0 turns it off.
fn fractional_secs(n: f64, flag: &str) -> Result<Option<Duration>, String> {
    if n == 0.0 {
        return Ok(None);
    }
    Duration::try_from_secs_f64(n)
        .map(Some)
        .map_err(|_| format!("{flag} must be a number of seconds, got {n}"))
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve host '{host}'"))
}

/// Run `pagi-server`'s command line around your own app: same flags, same
/// logging, same shutdown. `--app` is refused (the binary serves `app`).
pub fn run(app: SharedApp) -> ExitCode {
    run_with(move |spec| match spec {
        None => Ok(app),
        Some(_) => Err("this binary serves a built-in app; --app is not supported".into()),
    })
}

/// Run the command line, choosing the app from the `--app` value (`None`
/// when absent) with `resolve`; its `Err` is printed as `Error: …`.
pub fn run_with(resolve: impl FnOnce(Option<&str>) -> Result<SharedApp, String>) -> ExitCode {
    let args = Args::parse();
    init_logging(&args);
    let spec = args.app.as_deref().or(args.app_positional.as_deref());
    let app = match resolve(spec) {
        Ok(app) => app,
        Err(e) => return fail(&e, 2),
    };
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => return fail(&e, 2),
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if config.workers > 0 {
        rt.worker_threads(config.workers);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}"), 1),
    };
    rt.block_on(async move {
        let max_conn = config.max_connections;
        let deflate = if config.ws_deflate.enabled { "on" } else { "off" };
        let server = match Server::bind(config, app).await {
            Ok(s) => s,
            Err(e) if e.is_startup_failure() => return fail(&e.to_string(), 1),
            Err(e) => return fail(&e.to_string(), 1),
        };
        let addr = server.handle().local_addr();
        let shown = match addr {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        tracing::info!(
            "PAGI Server listening on http://{shown}/ (pagi-server {}, max_conn: {max_conn}, ws-compression: {deflate})",
            env!("CARGO_PKG_VERSION")
        );
        match server.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string(), 1),
        }
    })
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("Error: {message}");
    ExitCode::from(code)
}

fn init_logging(args: &Args) {
    let level = if args.quiet {
        tracing::Level::ERROR
    } else {
        match args.log_level {
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        }
    };
    // Plain lines on stderr, like the reference server: no time, no level.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .without_time()
        .with_target(false)
        .with_level(false)
        .with_ansi(false)
        .try_init();
}
