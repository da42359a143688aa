//! The server's error type: small and opaque, like hyper's.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why the server could not start or run.
pub struct Error {
    kind: Kind,
}

enum Kind {
    Io(std::io::Error),
    Bind(SocketAddr, std::io::Error),
    BindUnix(PathBuf, std::io::Error),
    Tls(String),
    Startup(String),
    Config(String),
}

impl Error {
    pub(crate) fn io(e: std::io::Error) -> Self {
        Error { kind: Kind::Io(e) }
    }

    pub(crate) fn bind(addr: SocketAddr, e: std::io::Error) -> Self {
        Error {
            kind: Kind::Bind(addr, e),
        }
    }

    pub(crate) fn bind_unix(path: &Path, e: std::io::Error) -> Self {
        Error {
            kind: Kind::BindUnix(path.to_path_buf(), e),
        }
    }

    pub(crate) fn tls(message: String) -> Self {
        Error {
            kind: Kind::Tls(message),
        }
    }

    pub(crate) fn config(message: String) -> Self {
        Error {
            kind: Kind::Config(message),
        }
    }

    /// Whether a `Config` field was out of its range.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(_))
    }

    pub(crate) fn startup(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Startup(message.into()),
        }
    }

    /// Whether the listen address (or Unix socket path) was already in use.
    pub fn is_addr_in_use(&self) -> bool {
        matches!(&self.kind, Kind::Bind(_, e) | Kind::BindUnix(_, e)
            if e.kind() == std::io::ErrorKind::AddrInUse)
    }

    /// Whether the TLS certificate, key or CA could not be used (missing or
    /// unreadable file, not PEM, a key that does not match).
    pub fn is_tls(&self) -> bool {
        matches!(self.kind, Kind::Tls(_))
    }

    /// Whether lifespan startup failed (the app sent `lifespan.startup.failed`,
    /// timed out, or declined with `--lifespan on`).
    pub fn is_startup_failure(&self) -> bool {
        matches!(self.kind, Kind::Startup(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Io(e) => write!(f, "{e}"),
            Kind::Bind(addr, e) => match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    write!(f, "Port {} is already in use", addr.port())
                }
                std::io::ErrorKind::PermissionDenied => {
                    write!(f, "Permission denied to bind to port {}", addr.port())
                }
                _ => write!(f, "cannot listen on {addr}: {e}"),
            },
            Kind::BindUnix(path, e) => {
                write!(f, "cannot listen on Unix socket {}: {e}", path.display())
            }
            Kind::Tls(m) => write!(f, "TLS: {m}"),
            Kind::Startup(m) => write!(f, "Lifespan startup failed: {m}"),
            Kind::Config(m) => write!(f, "invalid configuration: {m}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pagi_server::Error({self})")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Io(e) | Kind::Bind(_, e) | Kind::BindUnix(_, e) => Some(e),
            Kind::Tls(_) | Kind::Startup(_) | Kind::Config(_) => None,
        }
    }
}
