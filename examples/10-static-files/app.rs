//! 10 – Static files: serves a directory (the one in `PAGI_STATIC_ROOT`,
//! else the working directory) with `ETag`/`If-None-Match` (304),
//! `Last-Modified`, and single `Range` requests (206, or 416 when the range
//! cannot be satisfied; `If-Range` honoured), using the `fh` response body:
//! the server streams the file (with `sendfile(2)` where it can) and never
//! reads it into memory. A directory serves its `index.html`.
//!
//! Ranges and conditional requests are the app's business in PAGI: the
//! server only sends the bytes it is handed (`offset`, `length`).
//!
//! ```text
//! PAGI_STATIC_ROOT=/srv/www pagi-server --app 10
//! curl -H 'Range: bytes=0-99' http://127.0.0.1:5000/big.bin
//! ```

use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use pagi::{Body, BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// The directory served.
fn root() -> PathBuf {
    std::env::var_os("PAGI_STATIC_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The app, serving `PAGI_STATIC_ROOT` (or the working directory).
pub async fn app(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    serve(&root(), scope, receive, send).await
}

/// The same app serving `root`.
///
/// ```no_run
/// let app = pagi_examples::static_files::serving("/srv/www".into());
/// # let _ = app;
/// ```
pub fn serving(root: PathBuf) -> pagi::SharedApp {
    pagi::app_fn(move |scope: Scope, receive: Receiver, send: Sender| {
        let root = root.clone();
        async move { serve(&root, scope, receive, send).await }
    })
}

async fn serve(
    root: &Path,
    scope: Scope,
    mut receive: Receiver,
    send: Sender,
) -> Result<(), BoxError> {
    let Scope::Http(http) = scope else {
        return Err(pagi::unsupported_scope(&scope));
    };
    while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
    if http.method != "GET" && http.method != "HEAD" {
        let headers = Headers::new().with("allow", "GET, HEAD");
        return text(&send, 405, "method not allowed\n", headers).await;
    }
    let Some(path) = resolve(root, &http.path) else {
        return text(&send, 404, "not found\n", Headers::new()).await;
    };
    // One handle for the checks and the body: what is measured is what is
    // sent, even if the file is replaced meanwhile.
    let (file, meta) = match std::fs::File::open(&path).and_then(|f| {
        let meta = f.metadata()?;
        Ok((f, meta))
    }) {
        Ok(opened) if opened.1.is_file() => opened,
        _ => return text(&send, 404, "not found\n", Headers::new()).await,
    };
    let len = meta.len();
    let modified = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok());
    let etag = format!("\"{len:x}-{:x}\"", modified.map_or(0, |m| m.as_nanos()));
    let mut headers = Headers::new()
        .with("content-type", content_type(&path))
        .with("etag", etag.clone())
        .with("accept-ranges", "bytes");
    if let Some(m) = modified {
        let when = UNIX_EPOCH + std::time::Duration::from_secs(m.as_secs());
        headers.push("last-modified", http_date(when));
    }
    let header = |name: &str| {
        http.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    if header("if-none-match")
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return send_head(&send, 304, headers).await;
    }
    // A range applies unless If-Range names another version.
    let range = header("range").filter(|_| header("if-range").is_none_or(|tag| tag == etag));
    let (status, offset, length) = match range.map(|r| parse_range(&r, len)) {
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

/// The file a request path names under `root`, if it stays under it (no
/// `..`, no absolute jumps); a directory means its `index.html`.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let mut out = root.to_path_buf();
    for part in Path::new(path.trim_start_matches('/')).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if path.contains('\0') {
        return None;
    }
    if out.is_dir() {
        out.push("index.html");
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
    /// Not a single byte range we serve (several ranges, another unit,
    /// malformed): the whole body, 200.
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
    let num = |s: &str| s.trim().parse::<u64>().ok();
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
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(t: std::time::SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

async fn text(send: &Sender, status: u16, body: &str, headers: Headers) -> Result<(), BoxError> {
    let headers = headers
        .with("content-type", "text/plain; charset=utf-8")
        .with("content-length", body.len().to_string());
    send.send(SendEvent::response_start(status, headers))
        .await?;
    send.send(SendEvent::response_body(body.to_owned(), false))
        .await?;
    Ok(())
}

async fn send_head(send: &Sender, status: u16, headers: Headers) -> Result<(), BoxError> {
    send.send(SendEvent::response_start(status, headers))
        .await?;
    send.send(SendEvent::response_body("", false)).await?;
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
    }

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/srv");
        assert_eq!(
            resolve(root, "/a/b.txt"),
            Some(PathBuf::from("/srv/a/b.txt"))
        );
        assert_eq!(resolve(root, "/a/../../etc/passwd"), None);
        assert_eq!(resolve(root, "/./a"), Some(PathBuf::from("/srv/a")));
    }

    #[test]
    fn dates() {
        assert_eq!(
            http_date(UNIX_EPOCH + std::time::Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}
