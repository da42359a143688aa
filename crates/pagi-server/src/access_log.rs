//! The access log: one line per HTTP request, and per WebSocket session and
//! event stream when it ends (with its duration), in a format of `%` atoms
//! (the reference server's, which are Apache's).
//!
//! Off the hot path: a connection formats its line (in a reused buffer)
//! and appends it to a shared batch, without a system call and without
//! waiting; a thread of its own takes the batch and writes it, woken when
//! the batch passes `WAKE_AT` and otherwise every `FLUSH_EVERY`. At
//! `MAX_PENDING` bytes lines are dropped and counted (a warning says how
//! many), never waited for: a slow disk must not slow the server.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::{AccessLogConfig, LogTarget};
use crate::wire::h1::head::{Head, Version};

/// A batch this big wakes the writer at once.
const WAKE_AT: usize = 64 * 1024;
/// The writer writes what there is at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Bytes waiting for the writer, at most: beyond, lines are dropped.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// The named formats.
pub(crate) const PRESETS: &[(&str, &str)] = &[
    ("clf", "%h - - [%t] \"%m %U%q\" %s %ds"),
    (
        "combined",
        "%h - - [%t] \"%r\" %s %b \"%{Referer}i\" \"%{User-Agent}i\"",
    ),
    ("common", "%h - - [%t] \"%r\" %s %b"),
    ("tiny", "%m %U%q %s %{ms}Tms"),
];

/// One piece of a format.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    Text(String),
    /// `%h`: the client's address (`unix` on a Unix socket).
    Client,
    /// `%t`: when the request arrived, `10/Oct/2000:13:55:36 +0000`.
    Time,
    /// `%r`: `GET /path?query HTTP/1.1`.
    RequestLine,
    /// `%m`
    Method,
    /// `%U`: the path as sent.
    Path,
    /// `%q`: `?query`, or nothing.
    Query,
    /// `%H`: `HTTP/1.1`.
    Version,
    /// `%s`
    Status,
    /// `%b`: body bytes, `-` for none.
    BytesOrDash,
    /// `%B`: body bytes.
    Bytes,
    /// `%d`: seconds with three decimals.
    SecondsFrac,
    /// `%D` or `%{us}T`: microseconds.
    Micros,
    /// `%{ms}T`: milliseconds.
    Millis,
    /// `%T` or `%{s}T`: whole seconds.
    Seconds,
    /// `%{Name}i`: a request header (its index among the ones kept).
    Header(usize),
}

/// A format that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLogFormat(pub String);

impl std::fmt::Display for InvalidLogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid access log format: {}", self.0)
    }
}

impl std::error::Error for InvalidLogFormat {}

/// A parsed format: its atoms and the request headers it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Format {
    atoms: Vec<Atom>,
    headers: Vec<String>,
}

impl Format {
    /// Parse `spec`: a preset name or a format string.
    pub(crate) fn parse(spec: &str) -> Result<Format, InvalidLogFormat> {
        let spec = PRESETS
            .iter()
            .find(|(name, _)| *name == spec)
            .map_or(spec, |(_, f)| *f);
        let mut atoms = Vec::new();
        let mut headers: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut chars = spec.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let atom = match chars.next() {
                Some('%') => {
                    text.push('%');
                    continue;
                }
                Some('h') => Atom::Client,
                Some('l' | 'u') => {
                    text.push('-');
                    continue;
                }
                Some('t') => Atom::Time,
                Some('r') => Atom::RequestLine,
                Some('m') => Atom::Method,
                Some('U') => Atom::Path,
                Some('q') => Atom::Query,
                Some('H') => Atom::Version,
                Some('s') => Atom::Status,
                Some('b') => Atom::BytesOrDash,
                Some('B') => Atom::Bytes,
                Some('d') => Atom::SecondsFrac,
                Some('D') => Atom::Micros,
                Some('T') => Atom::Seconds,
                Some('{') => {
                    let mut arg = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => arg.push(c),
                            None => {
                                return Err(InvalidLogFormat(format!(
                                    "unterminated %{{ in {spec:?}"
                                )))
                            }
                        }
                    }
                    match chars.next() {
                        Some('i') => {
                            let lower = arg.to_ascii_lowercase();
                            let i = match headers.iter().position(|h| *h == lower) {
                                Some(i) => i,
                                None => {
                                    headers.push(lower);
                                    headers.len() - 1
                                }
                            };
                            Atom::Header(i)
                        }
                        Some('T') => match arg.as_str() {
                            "ms" => Atom::Millis,
                            "us" => Atom::Micros,
                            "s" => Atom::Seconds,
                            other => {
                                return Err(InvalidLogFormat(format!(
                                    "unknown time unit {other:?} in %{{…}}T (ms, us or s)"
                                )))
                            }
                        },
                        other => {
                            return Err(InvalidLogFormat(format!(
                                "%{{{arg}}} must be followed by i or T, not {other:?}"
                            )))
                        }
                    }
                }
                other => {
                    return Err(InvalidLogFormat(format!(
                        "unknown atom %{}",
                        other.map_or(String::new(), String::from)
                    )));
                }
            };
            if !text.is_empty() {
                atoms.push(Atom::Text(std::mem::take(&mut text)));
            }
            atoms.push(atom);
        }
        if !text.is_empty() {
            atoms.push(Atom::Text(text));
        }
        Ok(Format { atoms, headers })
    }
}

/// The parts of a request a line shows, whatever protocol carried it.
pub(crate) struct RequestLine<'a> {
    pub(crate) method: &'a Cow<'static, str>,
    pub(crate) path: &'a Bytes,
    pub(crate) query: &'a Bytes,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub(crate) version: &'static str,
    pub(crate) headers: &'a pagi::Headers,
}

impl<'a> From<&'a Head> for RequestLine<'a> {
    fn from(head: &'a Head) -> Self {
        RequestLine {
            method: &head.method,
            path: &head.raw_path,
            query: &head.query,
            version: match head.version {
                Version::Http10 => "HTTP/1.0",
                Version::Http11 => "HTTP/1.1",
            },
            headers: &head.headers,
        }
    }
}

/// What is known of a request when it arrives, for its line.
pub(crate) struct Entry {
    client: Client,
    method: Cow<'static, str>,
    path: Bytes,
    query: Bytes,
    version: &'static str,
    headers: Vec<Option<Bytes>>,
    start: Instant,
    arrived: SystemTime,
}

enum Client {
    Ip(std::net::IpAddr),
    Unix,
}

/// The log: the format and the batch its writer thread takes.
pub(crate) struct AccessLog {
    format: Format,
    shared: Arc<Shared>,
    dropped: AtomicU64,
}

/// Between the connections and the writer thread.
struct Shared {
    state: Mutex<Batch>,
    /// The writer waits here; notified when a batch gets big, or to flush.
    wake: Condvar,
    /// The writer says here that a flush it was asked for is done.
    flushed: Condvar,
}

#[derive(Default)]
struct Batch {
    lines: Vec<u8>,
    /// Flushes asked for, and done (the writer catches up to `asked`).
    asked: u64,
    done: u64,
    /// The log is going away: write what is left and stop.
    closing: bool,
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Batch> {
        // Nothing panics under this lock; recover rather than propagate.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AccessLog {
    /// Open the target and start the writer thread.
    pub(crate) fn start(cfg: &AccessLogConfig) -> std::io::Result<AccessLog> {
        let format = Format::parse(&cfg.format)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let out: Box<dyn std::io::Write + Send> = match &cfg.target {
            LogTarget::Stderr => Box::new(std::io::stderr()),
            LogTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(Batch::default()),
            wake: Condvar::new(),
            flushed: Condvar::new(),
        });
        let for_writer = shared.clone();
        std::thread::Builder::new()
            .name("pagi-access-log".into())
            .spawn(move || writer(&for_writer, out))?;
        Ok(AccessLog {
            format,
            shared,
            dropped: AtomicU64::new(0),
        })
    }

    /// The start of a line: what the request says.
    pub(crate) fn entry(&self, req: RequestLine<'_>, client: Option<SocketAddr>) -> Entry {
        Entry {
            client: client.map_or(Client::Unix, |c| Client::Ip(c.ip())),
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            version: req.version,
            headers: self
                .format
                .headers
                .iter()
                .map(|name| req.headers.get(name).cloned())
                .collect(),
            start: Instant::now(),
            arrived: SystemTime::now(),
        }
    }

    /// Queue the line for `entry` with the response's `status` and body
    /// `bytes`.
    pub(crate) fn write(&self, entry: Entry, status: u16, bytes: u64) {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            self.format
                .line(&mut line, &entry, status, bytes, entry.start.elapsed());
            let mut batch = self.shared.lock();
            if batch.lines.len() + line.len() > MAX_PENDING {
                drop(batch);
                let before = self.dropped.fetch_add(1, Ordering::Relaxed);
                if before.is_power_of_two() {
                    tracing::warn!(
                        "access log cannot keep up: {} lines dropped so far",
                        before + 1
                    );
                }
                return;
            }
            let was = batch.lines.len();
            batch.lines.extend_from_slice(line.as_bytes());
            if was < WAKE_AT && batch.lines.len() >= WAKE_AT {
                self.shared.wake.notify_one();
            }
        });
    }

    /// Wait (up to `limit`) until everything queued so far is written.
    pub(crate) fn flush(&self, limit: Duration) {
        let mut b = self.shared.lock();
        b.asked += 1;
        let want = b.asked;
        self.shared.wake.notify_one();
        let deadline = Instant::now() + limit;
        while b.done < want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            b = match self.shared.flushed.wait_timeout(b, left) {
                Ok((b, _)) => b,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// The writer thread: take the batch, write it, until the log goes away.
fn writer(shared: &Shared, mut out: Box<dyn std::io::Write + Send>) {
    let mut spare = Vec::new();
    loop {
        let (closing, asked) = {
            let mut b = shared.lock();
            if b.lines.len() < WAKE_AT && b.done == b.asked && !b.closing {
                b = match shared.wake.wait_timeout(b, FLUSH_EVERY) {
                    Ok((b, _)) => b,
                    Err(e) => e.into_inner().0,
                };
            }
            std::mem::swap(&mut b.lines, &mut spare);
            (b.closing, b.asked)
        };
        if !spare.is_empty() {
            let _ = out.write_all(&spare);
            let _ = out.flush();
            spare.clear();
        }
        let mut b = shared.lock();
        b.done = asked;
        shared.flushed.notify_all();
        if closing {
            return;
        }
    }
}

impl Format {
    /// Append the line for `e` to `s`.
    fn line(&self, s: &mut String, e: &Entry, status: u16, bytes: u64, took: Duration) {
        for atom in &self.atoms {
            match atom {
                Atom::Text(t) => s.push_str(t),
                Atom::Client => match e.client {
                    Client::Ip(ip) => {
                        let _ = write!(s, "{ip}");
                    }
                    Client::Unix => s.push_str("unix"),
                },
                Atom::Time => clf_time(e.arrived, s),
                Atom::RequestLine => {
                    s.push_str(&e.method);
                    s.push(' ');
                    push_bytes(s, &e.path);
                    if !e.query.is_empty() {
                        s.push('?');
                        push_bytes(s, &e.query);
                    }
                    s.push(' ');
                    s.push_str(e.version);
                }
                Atom::Method => s.push_str(&e.method),
                Atom::Path => push_bytes(s, &e.path),
                Atom::Query => {
                    if !e.query.is_empty() {
                        s.push('?');
                        push_bytes(s, &e.query);
                    }
                }
                Atom::Version => s.push_str(e.version),
                Atom::Status => {
                    let _ = write!(s, "{status}");
                }
                Atom::BytesOrDash if bytes == 0 => s.push('-'),
                Atom::BytesOrDash | Atom::Bytes => {
                    let _ = write!(s, "{bytes}");
                }
                Atom::SecondsFrac => {
                    let _ = write!(s, "{:.3}", took.as_secs_f64());
                }
                Atom::Micros => {
                    let _ = write!(s, "{}", took.as_micros());
                }
                Atom::Millis => {
                    let _ = write!(s, "{}", took.as_millis());
                }
                Atom::Seconds => {
                    let _ = write!(s, "{}", took.as_secs());
                }
                Atom::Header(i) => match e.headers.get(*i).and_then(Option::as_ref) {
                    Some(v) => push_bytes(s, v),
                    None => s.push('-'),
                },
            }
        }
        s.push('\n');
    }
}

/// Bytes from the client, as text a log reader can trust: printable ASCII
/// as is, anything else (control characters, quotes, non-ASCII) escaped
/// as `\xNN`, so a request cannot forge log lines.
fn push_bytes(s: &mut String, b: &[u8]) {
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\' {
            s.push(c as char);
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
}

/// `10/Oct/2000:13:55:36 +0000` (UTC), formatted once a second per thread.
fn clf_time(t: SystemTime, s: &mut String) {
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            c.1.clear();
            format_clf_time(secs, &mut c.1);
            c.0 = secs;
        }
        s.push_str(&c.1);
    });
}

fn format_clf_time(secs: u64, s: &mut String) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let _ = write!(
        s,
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// Year, month (1–12) and day of the days since 1970-01-01 (Howard
/// Hinnant's algorithm for the proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(format: &Format, query: &str) -> Entry {
        Entry {
            client: Client::Ip("127.0.0.1".parse().unwrap()),
            method: Cow::Borrowed("GET"),
            path: Bytes::from_static(b"/p"),
            query: Bytes::copy_from_slice(query.as_bytes()),
            version: "HTTP/1.1",
            headers: format
                .headers
                .iter()
                .map(|h| (h == "user-agent").then(|| Bytes::from_static(b"curl/8")))
                .collect(),
            start: Instant::now(),
            // 2026-02-10 12:34:56 UTC
            arrived: UNIX_EPOCH + Duration::from_secs(1_770_726_896),
        }
    }

    fn render(f: &Format, e: &Entry, status: u16, bytes: u64, took: Duration) -> String {
        let mut s = String::new();
        f.line(&mut s, e, status, bytes, took);
        s
    }

    #[test]
    fn lines_reach_the_file_and_flush_waits_for_them() {
        let path = std::env::temp_dir().join(format!("pagi-access-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = AccessLog::start(&AccessLogConfig {
            target: LogTarget::File(path.clone()),
            format: "%s %m".into(),
        })
        .unwrap();
        for status in [200, 404] {
            let e = entry(&log.format, "");
            log.write(e, status, 0);
        }
        log.flush(Duration::from_secs(5));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "200 GET\n404 GET\n"
        );
        drop(log);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn presets_render_like_the_reference() {
        let f = Format::parse("combined").unwrap();
        let line = render(&f, &entry(&f, "a=1"), 200, 0, Duration::from_millis(12));
        assert_eq!(
            line,
            "127.0.0.1 - - [10/Feb/2026:12:34:56 +0000] \"GET /p?a=1 HTTP/1.1\" 200 - \"-\" \"curl/8\"\n"
        );
        let f = Format::parse("clf").unwrap();
        let line = render(&f, &entry(&f, ""), 500, 0, Duration::from_millis(1));
        assert_eq!(
            line,
            "127.0.0.1 - - [10/Feb/2026:12:34:56 +0000] \"GET /p\" 500 0.001s\n"
        );
        let f = Format::parse("common").unwrap();
        let line = render(&f, &entry(&f, ""), 404, 9, Duration::ZERO);
        assert!(line.ends_with("\"GET /p HTTP/1.1\" 404 9\n"), "{line}");
        let f = Format::parse("tiny").unwrap();
        let line = render(&f, &entry(&f, "a=1"), 200, 5, Duration::from_micros(12_300));
        assert_eq!(line, "GET /p?a=1 200 12ms\n");
    }

    #[test]
    fn every_atom() {
        let f =
            Format::parse("%h|%l|%u|%m|%U|%q|%H|%s|%b|%B|%D|%T|%{us}T|%{X-Missing}i|%%").unwrap();
        let line = render(
            &f,
            &entry(&f, "x"),
            201,
            7,
            Duration::from_micros(2_500_000),
        );
        assert_eq!(
            line,
            "127.0.0.1|-|-|GET|/p|?x|HTTP/1.1|201|7|7|2500000|2|2500000|-|%\n"
        );
    }

    #[test]
    fn bad_formats_are_refused() {
        for bad in ["%{Referer", "%{Referer}x", "%Z", "%{min}T"] {
            assert!(Format::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_bytes_cannot_forge_lines() {
        let mut s = String::new();
        push_bytes(&mut s, b"/a\"b\nc\\\xff");
        assert_eq!(s, "/a\\x22b\\x0ac\\x5c\\xff");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_494), (2026, 2, 10));
        let mut s = String::new();
        format_clf_time(971_182_536, &mut s);
        assert_eq!(s, "10/Oct/2000:12:55:36 +0000");
    }
}
