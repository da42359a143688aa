//! 10 – Static files: serves a directory (the one in `PAGI_STATIC_ROOT`,
//! else the working directory) with `pagi_middleware::StaticFiles`:
//! `ETag`/`If-None-Match` and `Last-Modified`/`If-Modified-Since` (304),
//! single `Range` requests (206, or 416 when the range cannot be satisfied;
//! `If-Range` honoured), content types, a directory's `index.html`, and no
//! path out of the root. Files go out as `fh` response bodies: the server
//! streams them (with `sendfile(2)` where it can) and never reads them into
//! memory.
//!
//! Ranges and conditional requests are the app's business in PAGI: the
//! server only sends the bytes it is handed (`offset`, `length`).
//!
//! ```text
//! PAGI_STATIC_ROOT=/srv/www pagi-server --app 10
//! curl -H 'Range: bytes=0-99' http://127.0.0.1:5000/big.bin
//! ```

use std::path::PathBuf;

use pagi::{BoxError, Receiver, Scope, Sender};
use pagi_middleware::StaticFiles;

/// The directory served.
fn root() -> PathBuf {
    std::env::var_os("PAGI_STATIC_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The app, serving `PAGI_STATIC_ROOT` (or the working directory).
pub async fn app(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    pagi::App::call(&StaticFiles::new(root()), scope, receive, send).await
}

/// The same app serving `root`.
///
/// ```no_run
/// let app = pagi_examples::static_files::serving("/srv/www".into());
/// # let _ = app;
/// ```
pub fn serving(root: PathBuf) -> pagi::SharedApp {
    pagi::app_fn(StaticFiles::new(root))
}
