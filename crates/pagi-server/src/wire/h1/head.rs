//! Request heads (RFC 9112 §2–3, §5–6, §9.3): bytes in, a checked head or
//! the status that refuses it out. httparse splits the lines and checks
//! their bytes; this module counts the limits exactly and applies what
//! httparse leaves to its caller: the request-target's form, `Host`,
//! message framing, persistence and expectations.

use std::borrow::Cow;

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use pagi::Headers;

/// Limits on a request head (the `Config` fields of the same meaning say
/// what the client gets at each).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Request line, header lines and the blank line, in bytes: 431 beyond.
    pub(crate) max_head: usize,
    /// Header lines: 431 beyond.
    pub(crate) max_headers: usize,
    /// The request line (without its line ending), in bytes: 414 beyond.
    pub(crate) max_request_line: usize,
}

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    Http10,
    Http11,
}

/// How a request's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes (more than zero).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A checked request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Cow<'static, str>,
    pub(crate) version: Version,
    /// The target's path as sent (`*` for `OPTIONS *`; `/` for an
    /// absolute-form target without one) and its query, without the `?`.
    pub(crate) raw_path: Bytes,
    pub(crate) query: Bytes,
    /// Lower-case names in arrival order, `cookie` lines joined with `"; "`
    /// into one; with an absolute-form target, `host` is its authority
    /// (RFC 9112 §3.2.2).
    pub(crate) headers: Headers,
    pub(crate) body: Framing,
    /// The client asked for a persistent connection (RFC 9112 §9.3).
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body: the
    /// client may wait for `100 Continue` before sending it.
    pub(crate) expect_continue: bool,
    /// `Upgrade` lists `websocket`: a handshake (valid or not).
    pub(crate) websocket: bool,
}

/// Why a request was refused: the status, and a short text for the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) status: StatusCode,
    pub(crate) why: &'static str,
}

const fn reject(status: StatusCode, why: &'static str) -> Rejection {
    Rejection { status, why }
}

const fn bad(why: &'static str) -> Rejection {
    reject(StatusCode::BAD_REQUEST, why)
}

/// Header slots tried first; a request with more is parsed again with
/// room for `Limits::max_headers`.
const FEW_HEADERS: usize = 32;

/// Reads request heads off a connection's input, one after the other.
///
/// It remembers how far it looked for the end of the head, so a head that
/// arrives a byte at a time is scanned once, not once per byte; and it
/// checks the request line as soon as that is complete, so that a client
/// speaking something else (TLS, garbage) is refused at once.
#[derive(Debug, Default)]
pub(crate) struct HeadParser {
    scanned: usize,
    line_checked: bool,
}

impl HeadParser {
    /// The next head, taken off the front of `buf`; `Ok(None)` while it is
    /// incomplete (within the limits).
    pub(crate) fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Head>, Rejection> {
        // Empty lines before a request line are ignored (RFC 9112 §2.2).
        loop {
            if buf.starts_with(b"\r\n") {
                buf.advance(2);
            } else if buf.starts_with(b"\n") {
                buf.advance(1);
            } else {
                break;
            }
            self.scanned = 0;
        }
        let Some(end) = find_head_end(buf, self.scanned) else {
            self.scanned = buf.len();
            check_partial(buf, limits)?;
            if !self.line_checked {
                if let Some(lf) = memchr::memchr(b'\n', buf) {
                    self.line_checked = true;
                    let line = &buf[..=lf];
                    if let Err(e) = httparse::Request::new(&mut []).parse(line) {
                        return Err(rejection_for(e, line));
                    }
                }
            }
            return Ok(None);
        };
        self.scanned = 0;
        self.line_checked = false;
        let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
        let head = match parse_lines(&buf[..end], &mut few, limits) {
            Err(httparse::Error::TooManyHeaders) if limits.max_headers > FEW_HEADERS => {
                let mut many = vec![httparse::EMPTY_HEADER; limits.max_headers];
                parse_lines(&buf[..end], &mut many, limits)
            }
            other => other,
        };
        let head = head.map_err(|e| rejection_for(e, buf))??;
        buf.advance(end);
        Ok(Some(head))
    }
}

/// The length of the head (through its blank line) if `buf` holds all of
/// it; the search resumes near `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut at = start;
    while let Some(i) = memchr::memchr(b'\n', &buf[at..]) {
        let lf = at + i;
        match &buf[lf + 1..] {
            [b'\n', ..] => return Some(lf + 2),
            [b'\r', b'\n', ..] => return Some(lf + 3),
            _ => at = lf + 1,
        }
    }
    None
}

/// An incomplete head that is already over a limit.
fn check_partial(buf: &[u8], limits: &Limits) -> Result<(), Rejection> {
    let line = match memchr::memchr(b'\n', buf) {
        Some(i) => &buf[..i],
        None => buf,
    };
    if line.strip_suffix(b"\r").unwrap_or(line).len() > limits.max_request_line {
        return Err(too_long_line());
    }
    if buf.len() > limits.max_head {
        return Err(head_too_large());
    }
    Ok(())
}

fn too_long_line() -> Rejection {
    reject(StatusCode::URI_TOO_LONG, "Request line too long")
}

fn head_too_large() -> Rejection {
    reject(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "Request header fields too large",
    )
}

/// What httparse's errors mean for the client.
fn rejection_for(e: httparse::Error, buf: &[u8]) -> Rejection {
    match e {
        httparse::Error::TooManyHeaders => reject(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Too many header fields",
        ),
        // `HTTP/<digit>.<digit>` of a version we do not speak: 505
        // (RFC 9110 §15.6.6); anything else is not a request line.
        httparse::Error::Version if other_http_version(buf) => reject(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "HTTP version not supported",
        ),
        httparse::Error::Version => bad("Invalid HTTP version"),
        httparse::Error::Token => bad("Invalid method"),
        httparse::Error::HeaderName => bad("Invalid header name"),
        httparse::Error::HeaderValue => bad("Invalid header value"),
        httparse::Error::NewLine => bad("Invalid line ending"),
        _ => bad("Malformed request"),
    }
}

/// Whether the request line ends in `HTTP/x.y` with a major version other
/// than 1 (an HTTP/1.x with another minor version is parsed as 1.1 would
/// be by a lenient parser; httparse refuses it, and so do we with 400).
fn other_http_version(buf: &[u8]) -> bool {
    let line = match memchr::memchr(b'\n', buf) {
        Some(i) => &buf[..i],
        None => buf,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    matches!(
        line.rsplit(|&b| b == b' ').next(),
        Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
            if major.is_ascii_digit() && minor.is_ascii_digit() && *major != b'1'
    )
}

/// Parse the complete head `buf` with `slots` for its header lines.
/// `Err` is httparse's verdict; `Ok(Err)` a rule httparse leaves to us.
fn parse_lines<'b>(
    buf: &'b [u8],
    slots: &mut [httparse::Header<'b>],
    limits: &Limits,
) -> Result<Result<Head, Rejection>, httparse::Error> {
    if slots.len() > limits.max_headers {
        let max = limits.max_headers;
        return parse_lines(buf, &mut slots[..max], limits);
    }
    let mut req = httparse::Request::new(slots);
    let len = match req.parse(buf)? {
        httparse::Status::Complete(len) => len,
        // The caller found the blank line: httparse did not.
        httparse::Status::Partial => return Ok(Err(bad("Malformed request"))),
    };
    Ok(check(&req, &buf[..len], limits))
}

/// Byte offsets of a slice of `base` (which it must be part of).
fn span(base: &[u8], part: &[u8]) -> (usize, usize) {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    (start, start + part.len())
}

/// What one header line contributes to the head's meaning.
#[derive(Default)]
struct Seen {
    hosts: usize,
    host: (usize, usize),
    content_length: Option<Result<u64, Rejection>>,
    transfer_codings: Vec<(usize, usize)>,
    close: bool,
    keep_alive: bool,
    websocket: bool,
    expect_continue: bool,
    expect_other: bool,
    cookies: usize,
}

/// Apply the rules httparse does not to a parsed head `raw`.
fn check(req: &httparse::Request<'_, '_>, raw: &[u8], limits: &Limits) -> Result<Head, Rejection> {
    let request_line = memchr::memchr(b'\n', raw).unwrap_or(raw.len());
    let request_line = &raw[..request_line];
    if request_line
        .strip_suffix(b"\r")
        .unwrap_or(request_line)
        .len()
        > limits.max_request_line
    {
        return Err(too_long_line());
    }
    if raw.len() > limits.max_head {
        return Err(head_too_large());
    }
    let method = req.method.unwrap_or_default();
    let version = match req.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    let target = req.path.unwrap_or_default();
    if method == "CONNECT" {
        // We are no proxy: nothing to tunnel to (RFC 9110 §9.3.6).
        return Err(reject(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not supported by this server",
        ));
    }

    let mut seen = Seen::default();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        if name.eq_ignore_ascii_case(b"host") {
            seen.hosts += 1;
            seen.host = span(raw, value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            seen.content_length = Some(match seen.content_length {
                Some(Err(e)) => Err(e),
                Some(Ok(before)) => content_length(value).and_then(|n| {
                    if n == before {
                        Ok(n)
                    } else {
                        Err(bad("Conflicting Content-Length values"))
                    }
                }),
                None => content_length(value),
            });
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in list(value) {
                seen.transfer_codings.push(span(raw, coding));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in list(value) {
                seen.close |= option.eq_ignore_ascii_case(b"close");
                seen.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            seen.websocket |= list(value).any(|p| p.eq_ignore_ascii_case(b"websocket"));
        } else if name.eq_ignore_ascii_case(b"expect") {
            for e in list(value) {
                if e.eq_ignore_ascii_case(b"100-continue") {
                    seen.expect_continue = true;
                } else {
                    seen.expect_other = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"cookie") {
            seen.cookies += 1;
        }
    }

    // Host (RFC 9112 §3.2): exactly one on HTTP/1.1, at most one otherwise,
    // and a valid one.
    match (seen.hosts, version) {
        (0, Version::Http11) => return Err(bad("Missing Host header")),
        (0, Version::Http10) | (1, _) => {}
        _ => return Err(bad("More than one Host header")),
    }
    if seen.hosts == 1 && !valid_host(&raw[seen.host.0..seen.host.1]) {
        return Err(bad("Invalid Host header"));
    }

    // The request-target (RFC 9112 §3.2).
    let target_span = span(raw, target.as_bytes());
    let form = request_target(target, method)?;

    // Framing (RFC 9112 §6.1, §6.3).
    let body = framing(&seen, raw, version)?;

    // The head is valid: copy it out of the connection's buffer (so that a
    // scope kept for a long session does not pin the read buffer), with
    // lower-case names, and slice the scope's fields from the copy.
    let mut copy = BytesMut::from(raw);
    let mut spans = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = span(raw, h.name.as_bytes());
        copy[name.0..name.1].make_ascii_lowercase();
        spans.push((name, span(raw, h.value)));
    }
    let copy = copy.freeze();
    let slice = |(a, b): (usize, usize)| copy.slice(a..b);
    let mut headers = Headers::with_capacity(spans.len());
    let mut cookie: Option<Vec<u8>> = None;
    for (name, value) in spans {
        let name_bytes = &copy[name.0..name.1];
        if seen.cookies > 1 && name_bytes == b"cookie" {
            let c = cookie.get_or_insert_with(Vec::new);
            if !c.is_empty() {
                c.extend_from_slice(b"; ");
            }
            c.extend_from_slice(&copy[value.0..value.1]);
            continue;
        }
        let value = match form.authority {
            Some(authority) if name_bytes == b"host" => slice(authority.shift(target_span.0)),
            _ => slice(value),
        };
        headers.push(slice(name), value);
    }
    if let Some(c) = cookie {
        headers.push(Bytes::from_static(b"cookie"), c);
    }
    let (path, query) = form.path;
    let raw_path = match path.shift(target_span.0) {
        (a, b) if a == b => Bytes::from_static(b"/"),
        span => slice(span),
    };
    let query = slice(query.shift(target_span.0));

    let keep_alive = match version {
        Version::Http11 => !seen.close,
        Version::Http10 => seen.keep_alive && !seen.close,
    };
    // Expectations: ignored on HTTP/1.0 (RFC 9110 §10.1.1); one we do not
    // know is refused.
    if version == Version::Http11 && seen.expect_other {
        return Err(reject(
            StatusCode::EXPECTATION_FAILED,
            "Unsupported expectation",
        ));
    }
    let expect_continue =
        version == Version::Http11 && seen.expect_continue && body != Framing::Empty;
    Ok(Head {
        method: method_name(method),
        version,
        raw_path,
        query,
        headers,
        body,
        keep_alive,
        expect_continue,
        websocket: seen.websocket,
    })
}

/// A range within the request-target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span(usize, usize);

impl Span {
    fn shift(self, by: usize) -> (usize, usize) {
        (self.0 + by, self.1 + by)
    }
}

/// The parts of a request-target: path and query, and the authority of an
/// absolute-form one.
struct Form {
    path: (Span, Span),
    authority: Option<Span>,
}

/// Split the request-target by its form (RFC 9112 §3.2): origin-form,
/// absolute-form, or `*` for `OPTIONS`. (CONNECT's authority-form is
/// refused before.)
fn request_target(target: &str, method: &str) -> Result<Form, Rejection> {
    let t = target.as_bytes();
    if t.contains(&b'#') {
        return Err(bad("Fragment in the request target"));
    }
    if t == b"*" {
        if method != "OPTIONS" {
            return Err(bad("Asterisk-form target is for OPTIONS only"));
        }
        return Ok(Form {
            path: (Span(0, 1), Span(1, 1)),
            authority: None,
        });
    }
    let (authority, path_start) = if t.first() == Some(&b'/') {
        (None, 0)
    } else {
        // absolute-form: scheme "://" authority path-abempty ["?" query]
        let scheme_end = t
            .iter()
            .position(|&b| b == b':')
            .filter(|&i| {
                i > 0
                    && t[0].is_ascii_alphabetic()
                    && t[..i]
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                    && t[i..].starts_with(b"://")
            })
            .ok_or(bad("Invalid request target"))?;
        let auth_start = scheme_end + 3;
        let auth_end = t[auth_start..]
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .map_or(t.len(), |i| auth_start + i);
        let authority = &t[auth_start..auth_end];
        if authority.is_empty() || authority.contains(&b'@') || !valid_host(authority) {
            return Err(bad("Invalid authority in the request target"));
        }
        (Some(Span(auth_start, auth_end)), auth_end)
    };
    let rest = &t[path_start..];
    let query_at = memchr::memchr(b'?', rest).map(|i| path_start + i);
    let path = Span(path_start, query_at.unwrap_or(t.len()));
    let query = match query_at {
        Some(q) => Span(q + 1, t.len()),
        None => Span(t.len(), t.len()),
    };
    Ok(Form {
        path: (path, query),
        authority,
    })
}

/// `uri-host [":" port]` (RFC 9110 §7.2): a registered name or IPv4
/// address, or an IP literal in brackets; no user info; an empty value is
/// allowed (a target without authority).
fn valid_host(h: &[u8]) -> bool {
    let (host, port) = if h.first() == Some(&b'[') {
        let Some(close) = memchr::memchr(b']', h) else {
            return false;
        };
        let literal = &h[1..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b":.vV".contains(&b))
        {
            return false;
        }
        (&h[..0], &h[close + 1..])
    } else {
        match memchr::memrchr(b':', h) {
            Some(i) => (&h[..i], &h[i..]),
            None => (h, &h[..0]),
        }
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    let host_ok = host
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
    port_ok && host_ok
}

/// The elements of a comma-separated list value, trimmed, empty ones
/// dropped (RFC 9110 §5.6.1).
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
}

/// One `Content-Length` line: digits, or a list of the same digits
/// (RFC 9110 §8.6). A value beyond any body we could take is 413.
fn content_length(value: &[u8]) -> Result<u64, Rejection> {
    let mut found = None;
    for item in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return Err(bad("Invalid Content-Length"));
        }
        let n = item
            .iter()
            .try_fold(0u64, |n, &d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or(reject(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"))?;
        match found {
            Some(m) if m != n => return Err(bad("Conflicting Content-Length values")),
            _ => found = Some(n),
        }
    }
    found.ok_or(bad("Invalid Content-Length"))
}

/// How the body is delimited, or why that cannot be known safely.
fn framing(seen: &Seen, raw: &[u8], version: Version) -> Result<Framing, Rejection> {
    if seen.transfer_codings.is_empty() {
        return match seen.content_length {
            None | Some(Ok(0)) => Ok(Framing::Empty),
            Some(Ok(n)) => Ok(Framing::Length(n)),
            Some(Err(e)) => Err(e),
        };
    }
    if version == Version::Http10 {
        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if seen.content_length.is_some() {
        // A smuggling attempt more often than not (RFC 9112 §6.1).
        return Err(bad(
            "Transfer-Encoding and Content-Length are mutually exclusive",
        ));
    }
    let codings = &seen.transfer_codings;
    let is_chunked = |&(a, b): &(usize, usize)| raw[a..b].eq_ignore_ascii_case(b"chunked");
    let chunked = codings.iter().filter(|c| is_chunked(c)).count();
    match codings.last() {
        Some(last) if is_chunked(last) && chunked == 1 => {}
        // Chunked not last (or twice): the length cannot be known (§6.3).
        _ if chunked > 0 => return Err(bad("chunked must be the final Transfer-Encoding")),
        _ => return Err(bad("Transfer-Encoding without chunked")),
    }
    if codings.len() > 1 {
        // gzip, chunked: we would hand the app still-encoded bytes.
        return Err(reject(
            StatusCode::NOT_IMPLEMENTED,
            "Unsupported Transfer-Encoding",
        ));
    }
    Ok(Framing::Chunked)
}

/// The method's name; the standard ones without allocating.
pub(crate) fn method_name(m: &str) -> Cow<'static, str> {
    const STANDARD: &[&str] = &[
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|s| **s == m) {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(m.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 1024,
        max_headers: 8,
        max_request_line: 128,
    };

    fn parse(s: &str) -> Result<Option<Head>, Rejection> {
        parse_bytes(s.as_bytes())
    }

    fn parse_bytes(s: &[u8]) -> Result<Option<Head>, Rejection> {
        HeadParser::default().parse(&mut BytesMut::from(s), &LIMITS)
    }

    fn head(s: &str) -> Head {
        parse(s).unwrap().expect("complete")
    }

    fn status(s: &str) -> u16 {
        parse(s).unwrap_err().status.as_u16()
    }

    #[test]
    fn a_simple_get_is_split_into_scope_fields() {
        let h = head("GET /a%20b/c?x=1&y HTTP/1.1\r\nHost: example.com\r\nX-Thing: v \r\n\r\n");
        assert_eq!(h.method, "GET");
        assert!(matches!(h.method, Cow::Borrowed(_)));
        assert_eq!(h.version, Version::Http11);
        assert_eq!(&h.raw_path[..], b"/a%20b/c");
        assert_eq!(&h.query[..], b"x=1&y");
        assert_eq!(h.body, Framing::Empty);
        assert!(h.keep_alive && !h.expect_continue && !h.websocket);
        let names: Vec<_> = h
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        assert_eq!(
            names,
            [
                (Bytes::from("host"), Bytes::from("example.com")),
                (Bytes::from("x-thing"), Bytes::from("v")),
            ]
        );
    }

    #[test]
    fn the_head_is_taken_off_the_buffer_and_pipelined_bytes_stay() {
        let mut buf = BytesMut::from(
            &b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"[..],
        );
        let mut p = HeadParser::default();
        let first = p.parse(&mut buf, &LIMITS).unwrap().unwrap();
        assert_eq!(first.method, "GET");
        let second = p.parse(&mut buf, &LIMITS).unwrap().unwrap();
        assert_eq!(
            (second.method.as_ref(), second.body),
            ("POST", Framing::Length(3))
        );
        assert_eq!(&buf[..], b"abc");
    }

    #[test]
    fn a_head_arriving_a_byte_at_a_time_completes_once() {
        let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut p = HeadParser::default();
        let mut buf = BytesMut::new();
        for (i, b) in full.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let r = p.parse(&mut buf, &LIMITS).unwrap();
            assert_eq!(r.is_some(), i == full.len() - 1, "at {i}");
        }
        assert!(buf.is_empty());
        // Bare LF line endings are accepted in heads (RFC 9112 §2.2).
        assert!(parse("GET / HTTP/1.1\nHost: a\n\n").unwrap().is_some());
    }

    #[test]
    fn limits_are_enforced_exactly() {
        // The whole head may be exactly max_head bytes.
        let base = "GET / HTTP/1.1\r\nHost: a\r\nx: \r\n\r\n".len();
        let fill = |n: usize| format!("GET / HTTP/1.1\r\nHost: a\r\nx: {}\r\n\r\n", "v".repeat(n));
        assert!(parse(&fill(LIMITS.max_head - base)).unwrap().is_some());
        assert_eq!(status(&fill(LIMITS.max_head - base + 1)), 431);
        // An incomplete head already over the limit is refused at once.
        let partial = format!("GET / HTTP/1.1\r\nx: {}", "v".repeat(LIMITS.max_head));
        assert_eq!(status(&partial), 431);
        // Too many header lines.
        let many: String = (0..9).map(|i| format!("h{i}: v\r\n")).collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            431
        );
        // The request line: complete or not.
        let long = format!("GET /{} HTTP/1.1", "a".repeat(LIMITS.max_request_line));
        assert_eq!(status(&long), 414);
        assert_eq!(status(&format!("{long}\r\nHost: a\r\n\r\n")), 414);
        let just = format!("GET /{} HTTP/1.1", "a".repeat(LIMITS.max_request_line - 14));
        assert_eq!(just.len(), LIMITS.max_request_line);
        assert!(parse(&format!("{just}\r\nHost: a\r\n\r\n"))
            .unwrap()
            .is_some());
    }

    #[test]
    fn many_header_lines_up_to_the_limit_are_parsed() {
        let limits = Limits {
            max_headers: 40,
            ..LIMITS
        };
        let many: String = (0..39).map(|i| format!("h{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        let h = HeadParser::default()
            .parse(&mut BytesMut::from(raw.as_bytes()), &limits)
            .unwrap()
            .unwrap();
        assert_eq!(h.headers.len(), 40);
    }

    #[test]
    fn a_bad_request_line_is_refused_before_the_head_ends() {
        assert_eq!(status("\x16\x03\x01\x02\x00\n\x01"), 400);
        assert_eq!(status("GET / HTTP/3.0\r\nHost: a\r\n"), 505);
        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
    }

    #[test]
    fn host_rules() {
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), 400);
        for ok in ["a", "a.b:80", "[::1]:8080", "127.0.0.1", ""] {
            assert!(
                parse(&format!("GET / HTTP/1.1\r\nHost: {ok}\r\n\r\n")).is_ok(),
                "{ok}"
            );
        }
        // HTTP/1.0 may omit it.
        assert!(parse("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn an_absolute_form_target_wins_over_host() {
        let h = head("GET http://example.org:8080/p/q?z=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(&h.raw_path[..], b"/p/q");
        assert_eq!(&h.query[..], b"z=1");
        assert_eq!(&h.headers.get("host").unwrap()[..], b"example.org:8080");
        let h = head("GET http://example.org HTTP/1.1\r\nHost: example.org\r\n\r\n");
        assert_eq!(&h.raw_path[..], b"/");
        assert_eq!(status("GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status("GET example.org/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    }

    #[test]
    fn target_forms_follow_the_method() {
        let h = head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(&h.raw_path[..], b"*");
        assert_eq!(status("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), 501);
    }

    #[test]
    fn framing_rules() {
        let body = |extra: &str| {
            parse(&format!("POST / HTTP/1.1\r\nHost: a\r\n{extra}\r\n"))
                .map(|h| h.unwrap().body)
                .map_err(|r| r.status.as_u16())
        };
        assert_eq!(body("Content-Length: 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(body("Content-Length: 0\r\n"), Ok(Framing::Empty));
        assert_eq!(
            body("Content-Length: 5, 5\r\nContent-Length: 5\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(body("Content-Length: 5\r\nContent-Length: 6\r\n"), Err(400));
        assert_eq!(body("Content-Length: +5\r\n"), Err(400));
        assert_eq!(body("Content-Length: 0x5\r\n"), Err(400));
        assert_eq!(body("Content-Length: \r\n"), Err(400));
        assert_eq!(
            body("Content-Length: 99999999999999999999999\r\n"),
            Err(413)
        );
        assert_eq!(body("Transfer-Encoding: chunked\r\n"), Ok(Framing::Chunked));
        assert_eq!(body("Transfer-Encoding: Chunked\r\n"), Ok(Framing::Chunked));
        assert_eq!(
            body("Transfer-Encoding: , chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(body("Transfer-Encoding: gzip, chunked\r\n"), Err(501));
        assert_eq!(
            body("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
            Err(501)
        );
        assert_eq!(body("Transfer-Encoding: chunked, gzip\r\n"), Err(400));
        assert_eq!(body("Transfer-Encoding: chunked, chunked\r\n"), Err(400));
        assert_eq!(body("Transfer-Encoding: gzip\r\n"), Err(400));
        assert_eq!(
            body("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            Err(400)
        );
        assert_eq!(
            status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
    }

    #[test]
    fn persistence_and_expectations() {
        assert!(
            !head("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n").keep_alive
        );
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        let h =
            head("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
        assert!(h.expect_continue);
        // No body: nothing to wait for.
        let h = head("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
        assert!(!h.expect_continue);
        // HTTP/1.0 expectations are ignored; unknown ones refused on 1.1.
        assert!(parse("PUT / HTTP/1.0\r\nExpect: teapot\r\n\r\n").is_ok());
        assert_eq!(
            status("PUT / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n"),
            417
        );
        let h = head(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c, WebSocket\r\n\r\n",
        );
        assert!(h.websocket);
    }

    #[test]
    fn malformed_heads_are_400_and_other_versions_505() {
        for bad in [
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
            "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / http/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\rHost: a\r\n\r\n",
        ] {
            assert_eq!(status(bad), 400, "{bad:?}");
        }
        let tls_hello = parse_bytes(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n");
        assert_eq!(tls_hello.unwrap_err().status, 400);
        assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn cookies_are_joined_and_names_lowered() {
        let h =
            head("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nX-Other: v\r\ncookie: b=2\r\n\r\n");
        assert_eq!(h.headers.get_all("cookie").count(), 1);
        assert_eq!(&h.headers.get("cookie").unwrap()[..], b"a=1; b=2");
        let names: Vec<_> = h.headers.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, ["host", "x-other", "cookie"]);
        // One cookie line stays where it was.
        let h = head("GET / HTTP/1.1\r\nCookie: a=1\r\nHost: a\r\n\r\n");
        let names: Vec<_> = h.headers.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, ["cookie", "host"]);
    }

    #[test]
    fn obs_text_in_values_is_kept_as_bytes() {
        let h = parse_bytes(b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(&h.headers.get("x-name").unwrap()[..], b"caf\xe9");
    }
}
