//! # pagi-cli
//!
//! The `pagi-server` command line: the binary that serves the bundled
//! examples, and the same command line as a library around your own app
//! (flags, logging, the runtime, signals). The server itself is the
//! `pagi-server` library crate, which an embedding uses without any of this.
//!
//! ```no_run
//! async fn app(scope: pagi::Scope, _: pagi::Receiver, _: pagi::Sender) -> Result<(), pagi::BoxError> {
//!     Err(pagi::unsupported_scope(&scope))
//! }
//! fn main() -> std::process::ExitCode {
//!     pagi_cli::run(pagi::app_fn(app))
//! }
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use pagi::{ServerAddr, SharedApp};
use pagi_server::{
    AccessLogConfig, ClientCertMode, Config, LifespanMode, Listen, ListenAddr, LogTarget,
    ProxyConfig, QueuePolicy, Server, TlsConfig, TrustedProxies,
};

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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ClientCertArg {
    None,
    Optional,
    Required,
}

/// PAGI server for Rust: HTTP/1.1, WebSocket, SSE and lifespan over TCP, Unix sockets and TLS.
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
    /// Listen on a Unix socket at PATH instead of --host/--port.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["host", "port", "listen"])]
    socket: Option<PathBuf>,
    /// File mode of Unix sockets, octal (e.g. 0660).
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    socket_mode: Option<u32>,
    /// Listen here (repeatable): host:port, [v6addr]:port, or a Unix socket path
    /// (starting with / or .). Instead of --host/--port.
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["host", "port"])]
    listen: Vec<String>,
    /// TLS certificate chain (PEM), for every TCP listener; needs --ssl-key.
    #[arg(long, value_name = "FILE", requires = "ssl_key")]
    ssl_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --ssl-cert.
    #[arg(long, value_name = "FILE", requires = "ssl_cert")]
    ssl_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(long, value_name = "FILE", requires = "ssl_cert")]
    ssl_ca: Option<PathBuf>,
    /// Ask TLS clients for a certificate: none, optional (reported in the scope), required.
    #[arg(long, value_enum, default_value = "none", requires = "ssl_ca")]
    ssl_client_cert: ClientCertArg,
    /// Seconds a TLS client gets for its handshake (and a proxy for its PROXY header).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    ssl_handshake_timeout: u64,
    /// Take the client address and scheme from Forwarded / X-Forwarded-* headers of
    /// trusted proxies (--forwarded-allow-ips).
    #[arg(long)]
    proxy_headers: bool,
    /// Expect a PROXY protocol (v1 or v2) header from trusted proxies.
    #[arg(long)]
    proxy_protocol: bool,
    /// Proxies to trust: comma-separated addresses and CIDR networks, * for any,
    /// unix for Unix-socket peers.
    #[arg(long, default_value = "127.0.0.1", value_name = "LIST")]
    forwarded_allow_ips: TrustedProxies,
    /// The app's mount point, as the scope's root_path.
    #[arg(long, default_value = "", value_name = "PATH")]
    root_path: String,
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
    /// Longest request line (method, target, version) in bytes; beyond it 414.
    #[arg(long, default_value_t = 8192, value_name = "BYTES")]
    max_request_line: usize,
    /// Append the access log to FILE ("-" for stderr, the default).
    #[arg(long, value_name = "FILE", conflicts_with = "no_access_log")]
    access_log: Option<PathBuf>,
    /// Write no access log.
    #[arg(long)]
    no_access_log: bool,
    /// Access log format: a preset (clf, combined, common, tiny) or %-atoms
    /// (%h %t %r %m %U %q %H %s %b %B %d %D %T %{ms}T %{Header}i ...).
    #[arg(long, default_value = "clf", value_name = "FORMAT")]
    access_log_format: String,
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
    /// Outbound bytes at which sends start to wait (HTTP, SSE and WebSocket).
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    write_high_watermark: usize,
    /// Outbound bytes below which waiting sends resume (HTTP, SSE and WebSocket).
    #[arg(long, default_value_t = 16 * 1024, value_name = "BYTES")]
    write_low_watermark: usize,
    /// Close WebSockets idle this many seconds (0 = never).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    ws_idle_timeout: u64,
    /// Close SSE streams whose app sent nothing this many seconds (0 = never).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    sse_idle_timeout: u64,
    /// HTTP/2 (the default): ALPN h2 over TLS, and the HTTP/2 preface on cleartext
    /// (h2c, prior knowledge), on the same ports as HTTP/1.1.
    #[arg(long, overrides_with = "no_http2")]
    http2: bool,
    /// Serve HTTP/1.1 only.
    #[arg(long)]
    no_http2: bool,
    /// HTTP/2 streams a client may have open at once.
    #[arg(long, default_value_t = 100, value_name = "N")]
    h2_max_concurrent_streams: u32,
    /// Offer permessage-deflate compression to WebSocket clients.
    #[arg(long, value_enum, default_value = "on")]
    ws_compression: OnOff,
}

impl Args {
    fn config(&self) -> Result<Config, String> {
        let mut c = Config {
            listen: self.listeners()?,
            tls_handshake_timeout: Duration::from_secs(self.ssl_handshake_timeout),
            proxy: ProxyConfig {
                headers: self.proxy_headers,
                protocol: self.proxy_protocol,
                trusted: self.forwarded_allow_ips.clone(),
            },
            root_path: self.root_path.clone(),
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
            max_request_line: self.max_request_line,
            access_log: self.access_log(),
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
            ..Config::default()
        };
        if let Some(n) = self.max_connections {
            c.max_connections = n;
        }
        c.ws_deflate.enabled = matches!(self.ws_compression, OnOff::On);
        c.http2 = !self.no_http2;
        c.h2.max_concurrent_streams = self.h2_max_concurrent_streams;
        Ok(c)
    }
}

impl Args {
    /// On unless --no-access-log: to stderr, or the --access-log file.
    fn access_log(&self) -> Option<AccessLogConfig> {
        if self.no_access_log {
            return None;
        }
        let target = match &self.access_log {
            Some(p) if p.as_os_str() != "-" => LogTarget::File(p.clone()),
            _ => LogTarget::Stderr,
        };
        Some(AccessLogConfig {
            target,
            format: self.access_log_format.clone(),
        })
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

impl Args {
    /// The listeners: inherited sockets (systemd socket activation), else
    /// --socket, else every --listen, else --host/--port. TLS (--ssl-cert)
    /// applies to TCP and inherited ones, never to Unix sockets named here.
    fn listeners(&self) -> Result<Vec<Listen>, String> {
        let tls = self.ssl_cert.as_ref().map(|cert| TlsConfig {
            cert: cert.clone(),
            key: self.ssl_key.clone().unwrap_or_default(),
            client_ca: self.ssl_ca.clone(),
            client_cert: match self.ssl_client_cert {
                ClientCertArg::None => ClientCertMode::None,
                ClientCertArg::Optional => ClientCertMode::Optional,
                ClientCertArg::Required => ClientCertMode::Required,
            },
        });
        let unix = |path: PathBuf| Listen {
            addr: ListenAddr::Unix {
                path,
                mode: self.socket_mode,
            },
            tls: None,
        };
        let tcp = |addr| Listen {
            addr: ListenAddr::Tcp(addr),
            tls: tls.clone(),
        };
        let inherited = pagi_server::inherited_sockets();
        if inherited > 0 {
            return Ok((0..inherited)
                .map(|i| Listen {
                    addr: ListenAddr::Inherited(i),
                    tls: tls.clone(),
                })
                .collect());
        }
        if let Some(path) = &self.socket {
            return Ok(vec![unix(path.clone())]);
        }
        if !self.listen.is_empty() {
            return self
                .listen
                .iter()
                .map(|spec| {
                    if spec.starts_with('/') || spec.starts_with('.') {
                        return Ok(unix(spec.into()));
                    }
                    match spec.rsplit_once(':') {
                        Some((host, port)) => {
                            let port = port
                                .parse()
                                .map_err(|_| format!("--listen {spec}: bad port {port:?}"))?;
                            resolve(host, port).map(tcp)
                        }
                        None => Ok(unix(spec.into())),
                    }
                })
                .collect();
        }
        Ok(vec![tcp(resolve(&self.host, self.port)?)])
    }
}

/// An octal file mode such as `0660`.
fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix('0').filter(|d| d.len() == 3);
    digits
        .and_then(|d| u32::from_str_radix(d, 8).ok())
        .ok_or_else(|| format!("--socket-mode must be an octal value like 0660, got: {s}"))
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
    if args.workers > 0 {
        rt.worker_threads(args.workers);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}"), 1),
    };
    rt.block_on(async move {
        let max_conn = config.max_connections;
        let deflate = if config.ws_deflate.enabled { "on" } else { "off" };
        let http2 = match (config.http2, config.listen.iter().any(|l| l.tls.is_none())) {
            (false, _) => "off",
            (true, true) => "on (h2c)",
            (true, false) => "on",
        };
        let has_tls = config.listen.iter().any(|l| l.tls.is_some());
        let log_to_terminal = config
            .access_log
            .as_ref()
            .is_some_and(|l| l.target == LogTarget::Stderr)
            && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let server = match Server::bind(config, app).await {
            Ok(s) => s,
            Err(e) if e.is_startup_failure() => return fail(&e.to_string(), 1),
            Err(e) => return fail(&e.to_string(), 1),
        };
        let tls = if has_tls { "on" } else { "off" };
        let addrs: Vec<String> = server
            .handle()
            .listen_addrs()
            .iter()
            .map(|a| show(a, has_tls))
            .collect();
        let addrs = match addrs.as_slice() {
            [one] => one.clone(),
            many => format!(": {}", many.join(", ")),
        };
        tracing::info!(
            "PAGI Server listening on{}{addrs} (pagi-server {}, max_conn: {max_conn}, http2: {http2}, ws-compression: {deflate}, tls: {tls})",
            if addrs.starts_with(':') { "" } else { " " },
            env!("CARGO_PKG_VERSION")
        );
        if log_to_terminal {
            tracing::warn!(
                "the access log goes to a terminal; this may impact performance (use --access-log FILE or --no-access-log)"
            );
        }
        match server.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string(), 1),
        }
    })
}

/// A listener's address as the banner shows it.
fn show(addr: &ServerAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    match addr {
        ServerAddr::Tcp(SocketAddr::V4(a)) => format!("{scheme}://{a}/"),
        ServerAddr::Tcp(SocketAddr::V6(a)) => format!("{scheme}://[{}]:{}/", a.ip(), a.port()),
        ServerAddr::Unix(path) => format!("unix:{}", path.display()),
    }
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
