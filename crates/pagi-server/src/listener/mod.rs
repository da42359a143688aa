//! Listeners produce connections: a byte stream and what is known about it
//! ([`ConnInfo`]). TCP and Unix sockets are named here and nowhere else; TLS
//! wraps a stream in [`tls`]. Everything above this module works on any
//! [`Io`].

pub(crate) mod tls;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pagi::{Extensions, Headers, ServerAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::config::{Listen, ListenAddr, ProxyConfig};
use crate::Error;

/// A connection's byte stream, as the server uses it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready once a read would not block. For a socket this is the kernel's
    /// readiness, so that an idle WebSocket holds no read buffer: it takes
    /// one only when bytes are there. A stream that cannot tell (TLS holds
    /// decrypted bytes the socket does not show) is always ready; its
    /// reader lends a buffer for the read and takes it back if nothing came.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }

    /// Whether [`Io::poll_sendfile`] works: a plain socket (not TLS, which
    /// must see the bytes to encrypt them).
    fn can_sendfile(&self) -> bool {
        false
    }

    /// Send up to `len` bytes of `file` from `*offset` (advanced by what
    /// went) straight from the page cache with `sendfile(2)`. Only called
    /// where [`Io::can_sendfile`] says so; a stream that must see the
    /// bytes itself (TLS encrypts them) keeps this default.
    fn poll_sendfile(
        &mut self,
        cx: &mut Context<'_>,
        file: &std::fs::File,
        offset: &mut u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let _ = (cx, file, offset, len);
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
}

/// A plain socket connection: TCP or Unix.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        both!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        both!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl Io for Stream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_read_ready(cx),
            Stream::Unix(s) => s.poll_read_ready(cx),
        }
    }

    fn can_sendfile(&self) -> bool {
        true
    }

    fn poll_sendfile(
        &mut self,
        cx: &mut Context<'_>,
        file: &std::fs::File,
        offset: &mut u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(s) => sendfile_when_writable(s, cx, file, offset, len),
            Stream::Unix(s) => sendfile_when_writable(s, cx, file, offset, len),
        }
    }
}

/// A socket tokio tracks readiness for; the only I/O on it outside tokio
/// goes through `try_io`, so that readiness stays right.
trait PlainSocket: std::os::fd::AsFd {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

macro_rules! socket {
    ($t:ty) => {
        impl PlainSocket for $t {
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_write_ready(self, cx)
            }
            fn try_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                <$t>::try_io(self, tokio::io::Interest::WRITABLE, f)
            }
        }
    };
}
socket!(TcpStream);
socket!(UnixStream);

fn sendfile_when_writable<S: PlainSocket>(
    s: &S,
    cx: &mut Context<'_>,
    file: &std::fs::File,
    offset: &mut u64,
    len: usize,
) -> Poll<io::Result<usize>> {
    loop {
        std::task::ready!(s.poll_write_ready(cx))?;
        let sent = s.try_io(|| {
            rustix::fs::sendfile(s, file, Some(&mut *offset), len).map_err(io::Error::from)
        });
        match sent {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return Poll::Ready(r),
        }
    }
}

/// `fut`'s output, or `None` if it takes longer than `limit` (if any).
pub(crate) async fn within<F: std::future::Future>(
    limit: Option<Duration>,
    fut: F,
) -> Option<F::Output> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// What is known about a connection once it is accepted (and its PROXY
/// protocol header and TLS handshake are done).
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    /// The client: the TCP peer, or the address a trusted PROXY protocol
    /// header gave; `None` on a Unix socket.
    pub(crate) client: Option<SocketAddr>,
    /// The peer is a trusted proxy: its forwarded headers are believed.
    pub(crate) proxy_trusted: bool,
    /// Where the connection was accepted (`None` for a host's connection
    /// handed over through `embed`: the host's listener is not ours).
    pub(crate) local: Option<ServerAddr>,
    /// The scope's `tls` extension (built once per connection); `None` on
    /// a cleartext connection.
    pub(crate) tls: Option<Arc<pagi::ExtensionData>>,
}

impl ConnInfo {
    /// Who the client is and whether it came over TLS, as a scope reports
    /// them: from the connection, or from the proxy headers of a trusted
    /// peer (`--proxy-headers`), which replace both or neither.
    pub(crate) fn identity(
        &self,
        headers: &Headers,
        proxy: &ProxyConfig,
    ) -> (Option<SocketAddr>, bool) {
        let (client, secure) = (self.client, self.tls.is_some());
        if !(proxy.headers && self.proxy_trusted) {
            return (client, secure);
        }
        let said = crate::wire::proxy::forwarded(headers, &proxy.trusted);
        (said.client.or(client), said.secure.unwrap_or(secure))
    }

    /// The scope's `extensions` for this connection: `tls` on TLS ones.
    pub(crate) fn extensions(&self) -> Extensions {
        let mut ext = Extensions::default();
        if let Some(tls) = &self.tls {
            ext.insert_shared("tls", tls.clone());
        }
        ext
    }
}

/// A bound listening socket, and how its connections are wrapped.
pub(crate) struct Listener {
    socket: Socket,
    /// Where it listens, as scopes report it.
    pub(crate) local: ServerAddr,
    /// TLS for its connections.
    pub(crate) tls: Option<tls::Acceptor>,
    /// The socket file we made, removed when the listener goes (by its
    /// drop: never read).
    _socket_file: Option<SocketFile>,
}

/// A Unix socket file this process created: its path, and its identity
/// (device, inode), so that the file is removed only if it is still ours
/// (not one another server put at the same path since).
struct SocketFile {
    path: PathBuf,
    id: (u64, u64),
}

impl SocketFile {
    fn id_of(path: &Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()))
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if Self::id_of(&self.path) == Some(self.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Bind (or adopt, for socket activation) one listener; its TLS offers
    /// `h2` by ALPN if `http2`.
    pub(crate) fn bind(listen: &Listen, backlog: u32, http2: bool) -> Result<Listener, Error> {
        let tls = match &listen.tls {
            Some(cfg) => Some(tls::Acceptor::new(cfg, http2)?),
            None => None,
        };
        let (socket, socket_file) = match &listen.addr {
            ListenAddr::Tcp(addr) => (Socket::Tcp(bind_tcp(*addr, backlog)?), None),
            ListenAddr::Unix { path, mode } => {
                let (socket, file) = bind_unix(path, *mode)?;
                (Socket::Unix(socket), Some(file))
            }
            ListenAddr::Inherited(index) => (adopt(*index)?, None),
        };
        let local = match &socket {
            Socket::Tcp(l) => ServerAddr::Tcp(l.local_addr().map_err(Error::io)?),
            Socket::Unix(l) => ServerAddr::Unix(
                l.local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                    .unwrap_or_default(),
            ),
        };
        Ok(Listener {
            socket,
            local,
            tls,
            _socket_file: socket_file,
        })
    }

    /// The next connection and its peer (`None` on a Unix socket).
    pub(crate) async fn accept(&self) -> io::Result<(Stream, Option<SocketAddr>)> {
        match &self.socket {
            Socket::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), Some(peer)))
            }
            Socket::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), None))
            }
        }
    }
}

fn bind_tcp(addr: SocketAddr, backlog: u32) -> Result<TcpListener, Error> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(Error::io)?;
    socket.set_reuseaddr(true).map_err(Error::io)?;
    socket.bind(addr).map_err(|e| Error::bind(addr, e))?;
    socket.listen(backlog).map_err(|e| Error::bind(addr, e))
}

/// Bind a Unix socket at `path`. A socket file left by a crashed run (a
/// connect is refused) is replaced; a live one, one we cannot tell (e.g. no
/// permission to connect), or a file that is not a socket, is an error.
fn bind_unix(path: &Path, mode: Option<u32>) -> Result<(UnixListener, SocketFile), Error> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let in_use = |msg: &str| {
        Error::bind_unix(
            path,
            io::Error::new(io::ErrorKind::AddrInUse, msg.to_owned()),
        )
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(in_use("the path exists and is not a socket"));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(in_use("another server is listening on it")),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(|e| Error::bind_unix(path, e))?
            }
            Err(e) => return Err(Error::bind_unix(path, e)),
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| Error::bind_unix(path, e))?;
    let id = SocketFile::id_of(path).ok_or_else(|| {
        Error::bind_unix(
            path,
            io::Error::other("the socket file vanished after bind"),
        )
    })?;
    // From here on, an error removes the file again (the guard drops).
    let file = SocketFile {
        path: path.to_owned(),
        id,
    };
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::bind_unix(path, e))?;
    }
    Ok((listener, file))
}

/// The socket-activation descriptors this process was given, read once
/// (reading the environment consumes it, so that children do not inherit
/// the variables).
fn inherited() -> std::sync::MutexGuard<'static, listenfd::ListenFd> {
    static FDS: std::sync::OnceLock<std::sync::Mutex<listenfd::ListenFd>> =
        std::sync::OnceLock::new();
    FDS.get_or_init(|| std::sync::Mutex::new(listenfd::ListenFd::from_env()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Take socket-activation descriptor `index` (systemd's `LISTEN_FDS`,
/// counted from 0 = fd 3): a TCP or a Unix listening socket.
fn adopt(index: usize) -> Result<Socket, Error> {
    let mut inherited = inherited();
    let missing = || {
        Error::io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no inherited socket #{index} (LISTEN_FDS)"),
        ))
    };
    if let Ok(Some(l)) = inherited.take_tcp_listener(index) {
        l.set_nonblocking(true).map_err(Error::io)?;
        return TcpListener::from_std(l).map(Socket::Tcp).map_err(Error::io);
    }
    match inherited.take_unix_listener(index) {
        Ok(Some(l)) => {
            l.set_nonblocking(true).map_err(Error::io)?;
            UnixListener::from_std(l)
                .map(Socket::Unix)
                .map_err(Error::io)
        }
        _ => Err(missing()),
    }
}

/// The number of socket-activation descriptors this process was given.
pub(crate) fn inherited_count() -> usize {
    inherited().len()
}
