//! Serving a directory.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use pagi::{Body, BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// Serves the files under a directory: `GET`/`HEAD` (else 405), a
/// directory's `index.html`, `Content-Type` by extension, `ETag` with
/// `If-None-Match` and `Last-Modified` with `If-Modified-Since` (304), one
/// byte range per request (`Range`, `If-Range`: 206, or 416). Files go out
/// as `fh` bodies (the server streams them, by `sendfile` where it can),
/// opened once, so the checks and the bytes describe the same file.
///
/// Looking a file up (path checks, `open`, metadata) blocks; with the
/// `tokio` feature (on by default) it runs on tokio's blocking pool when
/// the app runs on a tokio runtime, so a slow disk does not stall the
/// connections sharing the worker thread. The bytes are the server's to
/// read (`fh` bodies).
///
/// Paths are the scope's route path (mounted under a [`crate::Router`]
/// prefix, the prefix is not part of the file name). A path with `..`, a
/// NUL byte, or that leads (through a symbolic link) outside the root is
/// 404.
///
/// ```no_run
/// let app = pagi::app_fn(pagi_middleware::StaticFiles::new("/srv/www"));
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct StaticFiles {
    root: Arc<PathBuf>,
}

impl StaticFiles {
    /// Serve `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StaticFiles {
            root: Arc::new(root.into()),
        }
    }
}

impl pagi::App for StaticFiles {
    fn call(
        &self,
        scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> pagi::BoxFuture<Result<(), BoxError>> {
        Box::pin(serve(self.root.clone(), scope, receive, send))
    }
}

async fn serve(
    root: Arc<PathBuf>,
    scope: Scope,
    mut receive: Receiver,
    send: Sender,
) -> Result<(), BoxError> {
    let http = match scope {
        Scope::Http(http) => http,
        Scope::WebSocket(_) => return pagi::ws::refuse(receive, send).await,
        other => return Err(pagi::unsupported_scope(&other)),
    };
    while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
    if http.method != "GET" && http.method != "HEAD" {
        let headers = Headers::new().with("allow", "GET, HEAD");
        return text(&send, 405, "method not allowed\n", headers).await;
    }
    let route = http.route_path().to_owned();
    let Some((file, meta, path)) = off_the_executor(move || open(&root, &route)).await else {
        return text(&send, 404, "not found\n", Headers::new()).await;
    };
    let len = meta.len();
    // Whole seconds: what Last-Modified can say, so the two validators agree.
    let modified = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map(|d| Duration::from_secs(d.as_secs()));
    let etag = format!("\"{len:x}-{:x}\"", modified.map_or(0, |m| m.as_secs()));
    let mut headers = Headers::new()
        .with("content-type", content_type(&path))
        .with("etag", etag.clone())
        .with("accept-ranges", "bytes");
    if let Some(m) = modified {
        headers.push("last-modified", httpdate::fmt_http_date(UNIX_EPOCH + m));
    }
    let header = |name: &str| http.header(name);
    // RFC 9110 §13.2.2: If-None-Match first; If-Modified-Since only without it.
    let not_modified = match header("if-none-match") {
        Some(tags) => tags.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        }),
        None => match (header("if-modified-since"), modified) {
            (Some(since), Some(m)) => httpdate::parse_http_date(since)
                .ok()
                .and_then(|s| s.duration_since(UNIX_EPOCH).ok())
                .is_some_and(|since| m <= since),
            _ => false,
        },
    };
    if not_modified {
        send.send(SendEvent::response_start(304, headers)).await?;
        send.send(SendEvent::response_body("", false)).await?;
        return Ok(());
    }
    // A range applies unless If-Range names another version.
    let range = header("range").filter(|_| header("if-range").is_none_or(|tag| tag == etag));
    let (status, offset, length) = match range.map(|r| parse_range(r, len)) {
        None | Some(Range::Ignore) => (200, 0, len),
        Some(Range::Unsatisfiable) => {
            headers.push("content-range", format!("bytes */{len}"));
            return text(&send, 416, "range not satisfiable\n", headers).await;
        }
        Some(Range::Bytes(start, end)) => {
            headers.push("content-range", format!("bytes {start}-{end}/{len}"));
            (206, start, end - start + 1)
        }
    };
    headers.push("content-length", length.to_string());
    send.send(SendEvent::response_start(status, headers))
        .await?;
    send.send(SendEvent::HttpResponseBody {
        body: Body::Handle {
            file,
            offset,
            length: Some(length),
        },
        more: false,
    })
    .await?;
    Ok(())
}

/// Run blocking file-system calls off the async worker threads where
/// tokio's blocking pool is at hand; else right here. `None` if the pool
/// dropped the call (the runtime is shutting down).
async fn off_the_executor<T: Send + 'static>(
    f: impl FnOnce() -> Option<T> + Send + 'static,
) -> Option<T> {
    #[cfg(feature = "tokio")]
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        return match runtime.spawn_blocking(f).await {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        };
    }
    f()
}

/// The regular file `route_path` names under `root` (a directory means its
/// `index.html`), opened, with its metadata and its real path; `None` if
/// there is none or it lies outside the root.
fn open(root: &Path, route_path: &str) -> Option<(std::fs::File, std::fs::Metadata, PathBuf)> {
    let mut path = resolve(root, route_path)?;
    if path.is_dir() {
        path.push("index.html");
    }
    // Symbolic links may point anywhere: what is opened must be under the
    // root once both are resolved.
    let root = root.canonicalize().ok()?;
    let real = path.canonicalize().ok()?;
    // Only regular files: opening a FIFO would block until a writer came.
    if !real.starts_with(&root) || !std::fs::metadata(&real).ok()?.is_file() {
        return None;
    }
    let file = std::fs::File::open(&real).ok()?;
    let meta = file.metadata().ok()?;
    // A directory on the way swapped for a link between the checks and the
    // open: what was opened is checked again.
    if !meta.is_file() || !opened_under(&file, &root) {
        return None;
    }
    Some((file, meta, real))
}

/// Whether the open `file` lies under `root` (Linux: its `/proc/self/fd`
/// link names the path the kernel resolved; elsewhere the checks before
/// the open stand).
#[cfg(target_os = "linux")]
fn opened_under(file: &std::fs::File, root: &Path) -> bool {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .is_ok_and(|p| p.starts_with(root))
}

#[cfg(not(target_os = "linux"))]
fn opened_under(_: &std::fs::File, _: &Path) -> bool {
    true
}

/// `root` joined with the path's segments; `None` for `..`, absolute
/// jumps or NUL bytes.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    if path.contains('\0') {
        return None;
    }
    let mut out = root.to_path_buf();
    for part in Path::new(path.trim_start_matches('/')).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// Bytes `start..=end`.
    Bytes(u64, u64),
    /// Nothing in it can be served: 416.
    Unsatisfiable,
    /// Not a single byte range (several, another unit, malformed): the
    /// whole body, 200.
    Ignore,
}

fn parse_range(value: &str, len: u64) -> Range {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Range::Ignore;
    };
    if spec.contains(',') {
        return Range::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Ignore;
    };
    // Digits only (`parse` would take a `+`).
    let num = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (a.trim().is_empty(), num(a), num(b)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) if n > 0 && len > 0 => Range::Bytes(len.saturating_sub(n), len - 1),
        (true, _, Some(_)) => Range::Unsatisfiable,
        (false, Some(start), _) if start >= len => Range::Unsatisfiable,
        (false, Some(start), None) if b.trim().is_empty() => Range::Bytes(start, len - 1),
        (false, Some(start), Some(end)) if end >= start => Range::Bytes(start, end.min(len - 1)),
        _ => Range::Ignore,
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

async fn text(send: &Sender, status: u16, body: &str, headers: Headers) -> Result<(), BoxError> {
    pagi::http::Response::text(status, body.to_owned())
        .with_headers(headers)
        .header("content-length", body.len().to_string())
        .send(send)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Range::Bytes(0, 99));
        assert_eq!(parse_range("bytes=900-", 1000), Range::Bytes(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), Range::Bytes(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), Range::Bytes(0, 999));
        assert_eq!(parse_range("bytes=990-5000", 1000), Range::Bytes(990, 999));
        assert_eq!(parse_range("bytes=1000-", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 1000), Range::Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Range::Ignore);
        assert_eq!(parse_range("items=0-1", 1000), Range::Ignore);
        assert_eq!(parse_range("bytes=+0-+9", 1000), Range::Ignore);
    }

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/srv");
        assert_eq!(
            resolve(root, "/a/b.txt"),
            Some(PathBuf::from("/srv/a/b.txt"))
        );
        assert_eq!(resolve(root, "/a/../../etc/passwd"), None);
        assert_eq!(resolve(root, "/../x"), None);
        assert_eq!(resolve(root, "/a\0b"), None);
        assert_eq!(resolve(root, "/./a"), Some(PathBuf::from("/srv/a")));
    }
}
