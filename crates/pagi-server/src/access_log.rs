//! The access log: one line per HTTP request, and per WebSocket session and
//! event stream when it ends (with its duration), in a format of `%` atoms
//! (the reference server's, which are Apache's).
//!
//! Off the hot path: a connection formats its line and hands it to a
//! bounded queue without waiting; a thread of its own writes the lines
//! through a buffer and flushes whenever the queue runs empty. At the
//! queue's limit lines are dropped and counted (a warning says how many),
//! never waited for: a slow disk must not slow the server.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::{AccessLogConfig, LogTarget};
use crate::wire::h1::head::{Head, Version};

/// Lines queued for the writer thread, at most.
const QUEUE: usize = 16 * 1024;

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

/// What is known of a request when it arrives, for its line.
pub(crate) struct Entry {
    client: Client,
    method: String,
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

/// The log: the format and the queue to its writer thread.
pub(crate) struct AccessLog {
    format: Format,
    tx: SyncSender<Msg>,
    dropped: AtomicU64,
}

enum Msg {
    Line(String),
    /// Flush, then say so.
    Flush(mpsc::Sender<()>),
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
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("pagi-access-log".into())
            .spawn(move || writer(rx, out))?;
        Ok(AccessLog {
            format,
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    /// The start of a line: what the request head says.
    pub(crate) fn entry(&self, head: &Head, client: Option<SocketAddr>) -> Entry {
        Entry {
            client: client.map_or(Client::Unix, |c| Client::Ip(c.ip())),
            method: head.method.to_string(),
            path: head.raw_path.clone(),
            query: head.query.clone(),
            version: match head.version {
                Version::Http10 => "HTTP/1.0",
                Version::Http11 => "HTTP/1.1",
            },
            headers: self
                .format
                .headers
                .iter()
                .map(|name| head.headers.get(name).cloned())
                .collect(),
            start: Instant::now(),
            arrived: SystemTime::now(),
        }
    }

    /// Queue the line for `entry` with the response's `status` and body
    /// `bytes`.
    pub(crate) fn write(&self, entry: Entry, status: u16, bytes: u64) {
        let line = self
            .format
            .line(&entry, status, bytes, entry.start.elapsed());
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let before = self.dropped.fetch_add(1, Ordering::Relaxed);
                if before.is_power_of_two() {
                    tracing::warn!(
                        "access log cannot keep up: {} lines dropped so far",
                        before + 1
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Wait (up to `limit`) until everything queued so far is written.
    pub(crate) fn flush(&self, limit: Duration) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(limit);
        }
    }
}

fn writer(rx: Receiver<Msg>, out: Box<dyn std::io::Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => {
                    let _ = out.write_all(line.as_bytes());
                }
                Msg::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        // The queue ran empty: what was written reaches the file now.
        let _ = out.flush();
    }
    let _ = out.flush();
}

impl Format {
    fn line(&self, e: &Entry, status: u16, bytes: u64, took: Duration) -> String {
        let mut s = String::with_capacity(128);
        for atom in &self.atoms {
            match atom {
                Atom::Text(t) => s.push_str(t),
                Atom::Client => match e.client {
                    Client::Ip(ip) => {
                        let _ = write!(s, "{ip}");
                    }
                    Client::Unix => s.push_str("unix"),
                },
                Atom::Time => clf_time(e.arrived, &mut s),
                Atom::RequestLine => {
                    s.push_str(&e.method);
                    s.push(' ');
                    push_bytes(&mut s, &e.path);
                    if !e.query.is_empty() {
                        s.push('?');
                        push_bytes(&mut s, &e.query);
                    }
                    s.push(' ');
                    s.push_str(e.version);
                }
                Atom::Method => s.push_str(&e.method),
                Atom::Path => push_bytes(&mut s, &e.path),
                Atom::Query => {
                    if !e.query.is_empty() {
                        s.push('?');
                        push_bytes(&mut s, &e.query);
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
                    Some(v) => push_bytes(&mut s, v),
                    None => s.push('-'),
                },
            }
        }
        s.push('\n');
        s
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

/// `10/Oct/2000:13:55:36 +0000` (UTC).
fn clf_time(t: SystemTime, s: &mut String) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
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
            method: "GET".into(),
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

    #[test]
    fn presets_render_like_the_reference() {
        let f = Format::parse("combined").unwrap();
        let line = f.line(&entry(&f, "a=1"), 200, 0, Duration::from_millis(12));
        assert_eq!(
            line,
            "127.0.0.1 - - [10/Feb/2026:12:34:56 +0000] \"GET /p?a=1 HTTP/1.1\" 200 - \"-\" \"curl/8\"\n"
        );
        let f = Format::parse("clf").unwrap();
        let line = f.line(&entry(&f, ""), 500, 0, Duration::from_millis(1));
        assert_eq!(
            line,
            "127.0.0.1 - - [10/Feb/2026:12:34:56 +0000] \"GET /p\" 500 0.001s\n"
        );
        let f = Format::parse("common").unwrap();
        let line = f.line(&entry(&f, ""), 404, 9, Duration::ZERO);
        assert!(line.ends_with("\"GET /p HTTP/1.1\" 404 9\n"), "{line}");
        let f = Format::parse("tiny").unwrap();
        let line = f.line(&entry(&f, "a=1"), 200, 5, Duration::from_micros(12_300));
        assert_eq!(line, "GET /p?a=1 200 12ms\n");
    }

    #[test]
    fn every_atom() {
        let f =
            Format::parse("%h|%l|%u|%m|%U|%q|%H|%s|%b|%B|%D|%T|%{us}T|%{X-Missing}i|%%").unwrap();
        let line = f.line(&entry(&f, "x"), 201, 7, Duration::from_micros(2_500_000));
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
        clf_time(UNIX_EPOCH + Duration::from_secs(971_182_536), &mut s);
        assert_eq!(s, "10/Oct/2000:12:55:36 +0000");
    }
}
