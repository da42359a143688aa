//! Server configuration: every limit, its default, and what happens at it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use pagi_ws::DeflateConfig;

pub use crate::wire::proxy::{InvalidTrustedProxies, TrustedProxies};

/// One place to accept connections, and whether they speak TLS.
///
/// ```
/// use pagi_server::{Listen, ListenAddr};
/// let plain = Listen::tcp("127.0.0.1:8080".parse().unwrap());
/// let unix = Listen {
///     addr: ListenAddr::Unix { path: "/run/app.sock".into(), mode: Some(0o660) },
///     tls: None,
/// };
/// assert!(plain.tls.is_none() && unix.tls.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The socket.
    pub addr: ListenAddr,
    /// TLS for its connections (scopes then say `https`/`wss` and carry the
    /// `tls` extension).
    pub tls: Option<TlsConfig>,
}

impl Listen {
    /// A cleartext TCP listener.
    pub fn tcp(addr: SocketAddr) -> Listen {
        Listen {
            addr: ListenAddr::Tcp(addr),
            tls: None,
        }
    }
}

/// Where a listener's socket comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// Bind a TCP address (port 0 picks a free port).
    Tcp(SocketAddr),
    /// Bind a Unix socket at `path` (`mode`: its file mode, e.g. `0o660`;
    /// otherwise the process umask decides). A socket file left by a crashed
    /// run is replaced; a live one is an error. The file is removed when the
    /// server stops.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// File mode to set after binding.
        mode: Option<u32>,
    },
    /// Adopt an already listening socket passed by the service manager
    /// (systemd socket activation: `LISTEN_FDS`), by its index (0 is fd 3).
    /// The descriptors are taken from the environment on first use (see
    /// [`crate::inherited_sockets`]).
    Inherited(usize),
}

/// TLS settings of a listener: the certificate and key (PEM files, re-read
/// by [`crate::ServerHandle::reload_tls`] and on SIGHUP), and client
/// certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain, leaf first (`--ssl-cert`).
    pub cert: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 or SEC1 (`--ssl-key`).
    pub key: PathBuf,
    /// CA certificates that client certificates must chain to (`--ssl-ca`).
    pub client_ca: Option<PathBuf>,
    /// Whether to ask for client certificates (`--ssl-client-cert`).
    pub client_cert: ClientCertMode,
}

/// Whether TLS clients are asked for a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientCertMode {
    /// Not asked for.
    #[default]
    None,
    /// Asked for; a client without one is served, and one whose certificate
    /// does not verify against `client_ca` is served too, with the reason in
    /// the scope's `tls.client_cert_error`.
    Optional,
    /// Required: the handshake fails without a certificate that verifies.
    Required,
}

/// What to believe about the client when a reverse proxy sits in front.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Take the client and scheme from `Forwarded` / `X-Forwarded-For` /
    /// `X-Forwarded-Proto` (`--proxy-headers`), from trusted peers only.
    pub headers: bool,
    /// Expect a PROXY protocol header (v1 or v2) at the start of every
    /// connection from a trusted peer (`--proxy-protocol`); it gives the
    /// client address. A trusted peer that sends none is refused.
    pub protocol: bool,
    /// The peers whose proxy headers and PROXY protocol headers are believed
    /// (`--forwarded-allow-ips`; default `127.0.0.1`). Anyone else's are
    /// ignored, never partially applied.
    pub trusted: TrustedProxies,
}

/// What to do about the lifespan protocol at startup (`--lifespan`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LifespanMode {
    /// Run it; if the app declines (errors or returns without answering),
    /// log `Lifespan not supported, continuing without it` and serve.
    #[default]
    Auto,
    /// Run it; a decline is a startup failure.
    On,
    /// Do not run it.
    Off,
}

/// What to do when a WebSocket app does not drain `receive` and the
/// inbound queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueuePolicy {
    /// Stop reading the socket until the app catches up: TCP pushes back on
    /// the client and no message is lost.
    #[default]
    Backpressure,
    /// Close the connection with 1008 and disconnect reason `queue_overflow`.
    Close,
}

/// The server's settings. `Config::default()` is what `pagi-server` runs
/// with when no flag is given.
///
/// ```
/// let config = pagi_server::Config {
///     listen: vec![pagi_server::Listen::tcp("127.0.0.1:0".parse().unwrap())],
///     ..Default::default()
/// };
/// assert_eq!(config.ws_write_high_watermark, 64 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen: one or more TCP or Unix sockets, each with or
    /// without TLS. Default: TCP `127.0.0.1:5000`, cleartext.
    pub listen: Vec<Listen>,
    /// The `listen(2)` backlog of TCP listeners. Default 2048.
    pub backlog: u32,
    /// Time a TLS client gets to complete its handshake; then the connection
    /// is closed (logged at debug). The same time, counted separately,
    /// bounds reading a PROXY protocol header. Zero disables both. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// Reverse-proxy awareness. Default: no proxy headers, no PROXY
    /// protocol, trusted peers `127.0.0.1`.
    pub proxy: ProxyConfig,
    /// The scope's `root_path`: where the app is mounted (`--root-path`).
    /// Default `""`.
    pub root_path: String,
    /// Lifespan handling. Default [`LifespanMode::Auto`].
    pub lifespan: LifespanMode,
    /// How long to wait for `lifespan.startup.complete`; zero waits forever.
    /// At the limit startup fails. Default 30 s.
    pub lifespan_startup_timeout: Duration,
    /// On SIGINT/SIGTERM: how long open connections and apps get to finish
    /// (WebSockets are sent Close 1001 first) before they are dropped, and
    /// how long `lifespan.shutdown` may take. Default 30 s.
    pub shutdown_timeout: Duration,
    /// Concurrent connections. At the limit new connections get a canned
    /// `503 Service Unavailable` with `Retry-After: 5` and are closed (on a
    /// TLS listener, closed without a response: there is no session yet).
    /// Default: the process's open-file limit minus 64.
    pub max_connections: usize,
    /// Largest request body in bytes. A larger `Content-Length` gets 413
    /// before the app runs; a chunked body that grows past it ends the
    /// request (413 if no response started; the app sees `http.disconnect`).
    /// Default 10 MB.
    pub max_body_size: u64,
    /// Largest request head (request line, header lines and the blank line)
    /// in bytes, counted exactly; beyond it the client gets `431` and the
    /// connection closes. Default 64 KiB.
    pub max_header_size: usize,
    /// Longest request line (method, target and version) in bytes; beyond
    /// it the client gets `414 URI Too Long` and the connection closes.
    /// Default 8192 (RFC 9112 §3 asks for at least 8000).
    pub max_request_line: usize,
    /// Most request header lines; beyond it the client gets `431` and the
    /// connection closes. Default 100.
    pub max_header_count: usize,
    /// A connection that starts no new request for this long is closed: it
    /// bounds idle keep-alive connections and slow request heads alike
    /// (one timer per connection checks it, so the close comes between one
    /// and two periods). `None` disables it. Default 60 s.
    pub header_read_timeout: Option<Duration>,
    /// Longest an app waits in `receive` for the next byte of a request
    /// body (`--request-timeout`; its own time between reads does not count). At the limit the request ends: `408 Request
    /// Timeout` if no response started, otherwise the connection is closed;
    /// the app's `receive` gives `http.disconnect` and `pagi.connection`
    /// reports `client_timeout`. `None` disables it. Default 60 s (like
    /// nginx's `client_body_timeout`).
    pub request_timeout: Option<Duration>,
    /// Largest WebSocket message (after decompression) or frame; beyond it
    /// the connection is closed with 1009. Default 16 MiB.
    pub ws_max_message_size: usize,
    /// Messages the server buffers between the socket and the app's
    /// `receive`. At the limit, [`Config::ws_queue_policy`] applies. Default 64.
    pub ws_max_receive_queue: usize,
    /// Bytes one WebSocket connection may hold for its app: decoded (and
    /// decompressed) messages waiting in the inbound queue, plus the message
    /// being received and input not decoded yet. Once the queue is not empty
    /// and this is reached, [`Config::ws_queue_policy`] applies. A value
    /// below `ws_max_message_size` counts as `ws_max_message_size` (one
    /// whole message always fits). Default 16 MiB, one maximum message: a
    /// fast app never comes near it, and a stalled one costs at most that.
    pub ws_max_receive_bytes: usize,
    /// Bytes all connections together may hold on clients' behalf (the same
    /// bytes as `ws_max_receive_bytes` counts, summed over connections).
    /// Past three quarters of it only connections holding less than 64 KiB
    /// keep reading (up to 64 KiB); at it every connection stops reading (TCP
    /// pushes back on the clients) until apps drain their queues. The figure
    /// is [`crate::ServerHandle::buffered_bytes`]. Zero means no limit.
    /// Default 256 MiB.
    pub max_buffered_bytes: usize,
    /// With permessage-deflate: the most a received message may expand
    /// (decompressed bytes per compressed byte) once it has inflated past
    /// 1 MiB; beyond it the connection is closed with 1009. Bounds the CPU a
    /// client can make the server spend per byte it sends. Zero disables.
    /// Default 100.
    pub ws_max_inflate_ratio: usize,
    /// What happens when the inbound queue is full. Default backpressure.
    pub ws_queue_policy: QueuePolicy,
    /// Outbound bytes at which `send` starts to wait (`pagi.transport`'s
    /// high-water mark). Default 64 KiB.
    pub ws_write_high_watermark: usize,
    /// Outbound bytes below which waiting sends resume. Default 16 KiB.
    pub ws_write_low_watermark: usize,
    /// Close the connection (1006 `idle_timeout` to the app) when nothing
    /// arrives from the client for this long; `None` disables. Default off.
    pub ws_idle_timeout: Option<Duration>,
    /// Send every WebSocket client a ping this often, so that dead peers
    /// and half-open connections are found (`--ws-ping-interval`); `None`
    /// disables. An app's own `websocket.keepalive` replaces this setting
    /// for its session. Default 20 s (as uvicorn).
    pub ws_ping_interval: Option<Duration>,
    /// With `ws_ping_interval`: close the connection (1006
    /// `keepalive_timeout` to the app) when no pong arrives this long after a
    /// ping; `None` waits forever. Default 20 s (as uvicorn).
    pub ws_ping_timeout: Option<Duration>,
    /// Close an SSE stream (`sse.disconnect` with `idle_timeout` to the app)
    /// when the app sent nothing for this long (keepalive comments do not
    /// count); `None` disables. Default off.
    pub sse_idle_timeout: Option<Duration>,
    /// After a Close frame is sent, how long to wait for the peer's Close
    /// before dropping the TCP connection. Default 5 s.
    pub ws_close_timeout: Duration,
    /// permessage-deflate policy (RFC 7692). Default on, no server context
    /// takeover (no compressor memory kept between messages).
    pub ws_deflate: DeflateConfig,
    /// The access log: one line per request, and per WebSocket session or
    /// event stream when it ends. Default off in the library (the
    /// `pagi-server` command line turns it on, to stderr).
    pub access_log: Option<AccessLogConfig>,
    /// HTTP/2: over TLS when the client offers `h2` by ALPN, and on
    /// cleartext listeners to clients that start with the HTTP/2 preface
    /// (h2c with prior knowledge; `Upgrade: h2c` is not supported). Every
    /// scope works over it, WebSocket included (RFC 8441). Default on.
    pub http2: bool,
    /// HTTP/2 limits and windows.
    pub h2: H2Config,
}

/// HTTP/2 settings. The request limits of HTTP/1.1 (`max_body_size`,
/// `request_timeout`, `max_header_size` as the header list limit) apply to
/// HTTP/2 streams too.
///
/// Flow control: a stream's receive window bounds what one stream can make
/// the server buffer for an app that does not read (`initial_stream_window`),
/// the connection window what all streams of a connection can
/// (`initial_connection_window`); with the defaults, three streams whose
/// apps stopped reading leave the others room. `max_send_buffer` is what
/// the HTTP/2 layer holds per stream beyond `pagi.transport`'s count (its
/// `buffered_amount` does not see it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H2Config {
    /// Streams a client may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`);
    /// more are refused (`REFUSED_STREAM`). An app whose stream the client
    /// reset still runs until it sees the disconnect; counting those, a
    /// connection past twice this many answers new streams `503`.
    /// Default 100.
    pub max_concurrent_streams: u32,
    /// Receive window of each stream, in bytes. Default 256 KiB.
    pub initial_stream_window: u32,
    /// Receive window of a connection, in bytes. Default 1 MiB.
    pub initial_connection_window: u32,
    /// Bytes of a stream's output the HTTP/2 layer buffers. Default 64 KiB.
    pub max_send_buffer: usize,
    /// Ping an idle connection this often, and close it (GOAWAY) when the
    /// ping is not answered within `keepalive_timeout`. `None` sends no
    /// pings. Default 20 s.
    pub keepalive_interval: Option<std::time::Duration>,
    /// See `keepalive_interval`. Default 20 s.
    pub keepalive_timeout: std::time::Duration,
    /// Streams a client may reset before the server accepted them, at once;
    /// beyond it the connection is closed with `ENHANCE_YOUR_CALM` (the
    /// rapid-reset attack, CVE-2023-44487). Default 20.
    pub max_pending_reset_streams: usize,
}

impl H2Config {
    /// The largest flow-control window HTTP/2 allows (RFC 9113 §6.9.1).
    pub const MAX_WINDOW: u32 = (1 << 31) - 1;

    /// Check the fields against what HTTP/2 allows.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("initial_stream_window", self.initial_stream_window),
            ("initial_connection_window", self.initial_connection_window),
        ] {
            if v > Self::MAX_WINDOW {
                return Err(format!("h2.{name} {v} is over 2^31-1"));
            }
        }
        if u32::try_from(self.max_send_buffer).is_err() {
            return Err(format!(
                "h2.max_send_buffer {} is over 2^32-1",
                self.max_send_buffer
            ));
        }
        if self.max_concurrent_streams == 0 {
            return Err("h2.max_concurrent_streams must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config {
            max_concurrent_streams: 100,
            initial_stream_window: 256 * 1024,
            initial_connection_window: 1024 * 1024,
            max_send_buffer: 64 * 1024,
            keepalive_interval: Some(std::time::Duration::from_secs(20)),
            keepalive_timeout: std::time::Duration::from_secs(20),
            max_pending_reset_streams: 20,
        }
    }
}

/// Where and how the access log is written.
///
/// ```
/// use pagi_server::{AccessLogConfig, LogTarget};
/// let log = AccessLogConfig {
///     target: LogTarget::File("/var/log/pagi/access.log".into()),
///     format: "combined".into(),
/// };
/// assert_eq!(AccessLogConfig::default().format, "clf");
/// # let _ = log;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// Where the lines go. Default stderr.
    pub target: LogTarget,
    /// A preset (`clf`, `combined`, `common`, `tiny`) or a format of atoms:
    /// `%h` client address, `%l` `%u` `-`, `%t` time, `%r` request line,
    /// `%m` method, `%U` path, `%q` `?query`, `%H` protocol, `%s` status,
    /// `%b` body bytes (`-` for none), `%B` body bytes, `%d` seconds
    /// (`0.001`), `%D` microseconds, `%T` seconds, `%{ms}T` `%{us}T`
    /// `%{s}T` duration in a unit, `%{Name}i` a request header, `%%`.
    /// Default `clf`: `%h - - [%t] "%m %U%q" %s %ds`.
    pub format: String,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            target: LogTarget::Stderr,
            format: "clf".into(),
        }
    }
}

/// Where access log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// The process's standard error.
    Stderr,
    /// Appended to this file (created if missing).
    File(PathBuf),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![Listen::tcp(SocketAddr::from(([127, 0, 0, 1], 5000)))],
            backlog: 2048,
            tls_handshake_timeout: Duration::from_secs(10),
            proxy: ProxyConfig {
                trusted: "127.0.0.1".parse().expect("a valid address"),
                ..ProxyConfig::default()
            },
            root_path: String::new(),
            lifespan: LifespanMode::Auto,
            lifespan_startup_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
            max_body_size: 10_000_000,
            max_header_size: 64 * 1024,
            max_request_line: 8192,
            max_header_count: 100,
            header_read_timeout: Some(Duration::from_secs(60)),
            request_timeout: Some(Duration::from_secs(60)),
            ws_max_message_size: 16 * 1024 * 1024,
            ws_max_receive_queue: 64,
            ws_max_receive_bytes: 16 * 1024 * 1024,
            max_buffered_bytes: 256 * 1024 * 1024,
            ws_max_inflate_ratio: 100,
            ws_queue_policy: QueuePolicy::Backpressure,
            ws_write_high_watermark: 64 * 1024,
            ws_write_low_watermark: 16 * 1024,
            ws_idle_timeout: None,
            ws_ping_interval: Some(Duration::from_secs(20)),
            ws_ping_timeout: Some(Duration::from_secs(20)),
            sse_idle_timeout: None,
            ws_close_timeout: Duration::from_secs(5),
            ws_deflate: DeflateConfig::default(),
            access_log: None,
            http2: true,
            h2: H2Config::default(),
        }
    }
}

/// The soft open-file limit minus a margin for listeners, logs and files
/// apps open; 1024 where it cannot be read.
fn default_max_connections() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
        })
        .map_or(1024, |n| n.saturating_sub(64).max(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2_settings_outside_what_http2_allows_are_refused() {
        assert!(H2Config::default().check().is_ok());
        let at_max = H2Config {
            initial_stream_window: H2Config::MAX_WINDOW,
            initial_connection_window: H2Config::MAX_WINDOW,
            ..H2Config::default()
        };
        assert!(at_max.check().is_ok());
        let over = H2Config {
            initial_connection_window: H2Config::MAX_WINDOW + 1,
            ..H2Config::default()
        };
        assert!(over
            .check()
            .unwrap_err()
            .contains("initial_connection_window"));
        let none = H2Config {
            max_concurrent_streams: 0,
            ..H2Config::default()
        };
        assert!(none.check().is_err());
    }
}
