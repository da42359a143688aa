//! Response heads and body framing (RFC 9112 §4, §6–7; RFC 9110 §6.5,
//! §8.6, §15): the app's status and headers in, the bytes of the head and
//! the framing its body must follow out.
//!
//! The server owns framing: the app's `Transfer-Encoding` is dropped (the
//! spec says so), its `Connection` is read for `close` and replaced, its
//! `Content-Length` is kept where the status allows one, and the rules for
//! bodiless responses are applied whatever the app sent (204 and 1xx carry
//! no length, 205 says `content-length: 0`, HEAD and 304 keep the length
//! and send no body).

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use pagi::Headers;

use crate::wire::response::parse_content_length;

/// How a response body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body bytes may be sent (HEAD, 1xx, 204, 205, 304); what the app
    /// sends is dropped.
    None,
    /// Exactly this many bytes: fewer, and the connection must close;
    /// more is an app error.
    Length(u64),
    /// Chunked (HTTP/1.1), so trailers can follow.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, unknown length).
    UntilClose,
}

/// What the request and the app's response say about framing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseInfo {
    pub(crate) status: u16,
    /// The request was HEAD.
    pub(crate) head_request: bool,
    /// The request was HTTP/1.0.
    pub(crate) http10: bool,
    /// The connection may stay open after this response (the client asked
    /// for it and the server is willing).
    pub(crate) keep_alive: bool,
    /// The response to an event-stream request. Its `200` head says
    /// `Connection: keep-alive` (the spec asks it, as EventSource clients
    /// expect) yet the connection closes when the stream ends; any other
    /// status (a decline) says `Connection: close`.
    pub(crate) event_stream: bool,
    /// The whole body, if the app already queued all of it.
    pub(crate) known_length: Option<u64>,
    /// The app will send trailers.
    pub(crate) trailers: bool,
}

/// The head written, and what it promised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub(crate) framing: BodyFraming,
    /// The connection stays open after the response.
    pub(crate) keep_alive: bool,
}

/// Write the response head for `info` with the app's (validated) `headers`
/// into `out`.
pub(crate) fn encode_head(info: &ResponseInfo, headers: &Headers, out: &mut BytesMut) -> Encoded {
    let status = info.status;
    let mut app_length: Option<u64> = None;
    let mut app_close = false;
    let mut app_date = false;
    for (name, value) in headers.iter() {
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                app_length = parse_content_length(value).or(app_length);
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                // Only `close` means anything on a response the server
                // frames; the header itself is replaced.
                app_close |= value
                    .split(|&b| b == b',')
                    .any(|o| o.trim_ascii().eq_ignore_ascii_case(b"close"));
            }
            4 if name.eq_ignore_ascii_case(b"date") => app_date = true,
            _ => {}
        }
    }
    let bodiless_status = matches!(status, 100..=199 | 204 | 205 | 304);
    let framing = if bodiless_status || info.head_request {
        BodyFraming::None
    } else if let Some(n) = app_length {
        BodyFraming::Length(n)
    } else if let (Some(n), false) = (info.known_length, info.trailers) {
        BodyFraming::Length(n)
    } else if info.http10 {
        BodyFraming::UntilClose
    } else {
        BodyFraming::Chunked
    };
    let reusable = info.keep_alive && !app_close && framing != BodyFraming::UntilClose;
    let keep_alive = reusable && !info.event_stream;
    let announce = if info.event_stream {
        reusable && status == 200
    } else {
        keep_alive && info.http10
    };

    put_status_line(status, out);
    for (name, value) in headers.iter() {
        let skip = match name.len() {
            17 => name.eq_ignore_ascii_case(b"transfer-encoding"),
            14 => name.eq_ignore_ascii_case(b"content-length"),
            10 => name.eq_ignore_ascii_case(b"connection"),
            _ => false,
        };
        if skip {
            continue;
        }
        put_header(out, name, value);
    }
    // The length: kept for HEAD and 304 (it describes the representation),
    // never for 1xx and 204 (RFC 9110 §8.6), zero for 205 (§15.3.6).
    let length = match (framing, status) {
        (BodyFraming::Length(n), _) => Some(n),
        (_, 205) => Some(0),
        (BodyFraming::None, 100..=199 | 204) => None,
        (BodyFraming::None, _) => app_length.or(if info.head_request {
            info.known_length.filter(|&n| n > 0)
        } else {
            None
        }),
        _ => None,
    };
    if let Some(n) = length {
        out.put_slice(b"content-length: ");
        put_decimal(out, n);
        out.put_slice(b"\r\n");
    }
    if framing == BodyFraming::Chunked {
        out.put_slice(b"transfer-encoding: chunked\r\n");
    }
    if !app_date && status >= 200 {
        out.put_slice(b"date: ");
        with_date(|d| out.put_slice(d));
        out.put_slice(b"\r\n");
    }
    if announce {
        out.put_slice(b"connection: keep-alive\r\n");
    } else if !keep_alive {
        out.put_slice(b"connection: close\r\n");
    }
    out.put_slice(b"\r\n");
    Encoded {
        framing,
        keep_alive,
    }
}

/// `HTTP/1.1 <code> <reason>` (always 1.1: RFC 9110 §6.2; the second space
/// even without a reason, RFC 9112 §4).
pub(crate) fn put_status_line(status: u16, out: &mut BytesMut) {
    if status == 200 {
        out.put_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.put_slice(b"HTTP/1.1 ");
    put_decimal(out, u64::from(status));
    out.put_u8(b' ');
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\n");
}

fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

fn put_decimal(out: &mut BytesMut, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

/// The line that starts a chunk of `len` (> 0) bytes.
pub(crate) fn put_chunk_header(out: &mut BytesMut, len: usize) {
    let mut buf = [0u8; 18];
    let mut i = 16;
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    out.put_slice(&buf[i..]);
}

/// The end of a chunked body: the last chunk and the trailer section.
pub(crate) fn put_chunked_end(out: &mut BytesMut, trailers: Option<&Headers>) {
    out.put_slice(b"0\r\n");
    for (name, value) in trailers.iter().flat_map(|t| t.iter()) {
        put_header(out, name, value);
    }
    out.put_slice(b"\r\n");
}

/// A short text response the server makes itself (400, 413, 500, …):
/// `text/plain`, `why` and a newline as the body, `Connection: close`
/// (these end the connection) unless `keep_alive`.
pub(crate) fn canned(status: u16, why: &str, keep_alive: bool, out: &mut BytesMut) {
    canned_with(status, why, &[], keep_alive, out);
}

/// [`canned`] with `extra` header lines.
pub(crate) fn canned_with(
    status: u16,
    why: &str,
    extra: &[(&str, &str)],
    keep_alive: bool,
    out: &mut BytesMut,
) {
    put_status_line(status, out);
    for (name, value) in extra {
        put_header(out, name.as_bytes(), value.as_bytes());
    }
    out.put_slice(b"content-type: text/plain; charset=utf-8\r\ncontent-length: ");
    put_decimal(out, why.len() as u64 + 1);
    out.put_slice(b"\r\ndate: ");
    with_date(|d| out.put_slice(d));
    out.put_slice(if keep_alive {
        b"\r\n\r\n".as_slice()
    } else {
        b"\r\nconnection: close\r\n\r\n".as_slice()
    });
    out.put_slice(why.as_bytes());
    out.put_u8(b'\n');
}

/// The `101 Switching Protocols` that completes a WebSocket handshake:
/// the accept key, the negotiated extension and subprotocol, then the
/// app's (checked) headers.
pub(crate) fn switching_protocols(
    accept_key: &str,
    extensions: Option<&str>,
    subprotocol: Option<&str>,
    headers: &Headers,
    out: &mut BytesMut,
) {
    out.put_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n",
    );
    put_header(out, b"sec-websocket-accept", accept_key.as_bytes());
    if let Some(e) = extensions {
        put_header(out, b"sec-websocket-extensions", e.as_bytes());
    }
    if let Some(p) = subprotocol {
        put_header(out, b"sec-websocket-protocol", p.as_bytes());
    }
    for (name, value) in headers.iter() {
        put_header(out, name, value);
    }
    out.put_slice(b"\r\n");
}

/// Call `f` with the current `Date` value (IMF-fixdate), formatted at most
/// once a second per thread.
pub(crate) fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = secs;
            }
        }
        f(&cached.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(status: u16) -> ResponseInfo {
        ResponseInfo {
            status,
            head_request: false,
            http10: false,
            keep_alive: true,
            event_stream: false,
            known_length: None,
            trailers: false,
        }
    }

    fn encode(info: ResponseInfo, headers: &[(&str, &str)]) -> (String, Encoded) {
        let headers: Headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let mut out = BytesMut::new();
        let e = encode_head(&info, &headers, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        // The date varies: take it out.
        let lines: Vec<&str> = text
            .split("\r\n")
            .filter(|l| !(l.starts_with("date: ") && l.ends_with(" GMT")))
            .collect();
        assert!(text.contains("\r\ndate: ") || info.status < 200 || headers.contains("date"));
        (lines.join("|"), e)
    }

    #[test]
    fn an_event_stream_announces_keep_alive_but_closes_after() {
        let stream = |status| ResponseInfo {
            event_stream: true,
            ..info(status)
        };
        let (t, e) = encode(stream(200), &[("content-type", "text/event-stream")]);
        assert_eq!(
            t,
            "HTTP/1.1 200 OK|content-type: text/event-stream|transfer-encoding: chunked|\
             connection: keep-alive||"
        );
        assert!(!e.keep_alive);
        // A decline says it closes.
        let (t, e) = encode(stream(503), &[]);
        assert!(t.ends_with("connection: close||"), "{t}");
        assert!(!e.keep_alive);
        // So does a stream the server will not keep open anyway.
        let (t, _) = encode(
            ResponseInfo {
                keep_alive: false,
                ..stream(200)
            },
            &[],
        );
        assert!(t.ends_with("connection: close||"), "{t}");
    }

    #[test]
    fn framing_follows_what_is_known() {
        let (t, e) = encode(
            ResponseInfo {
                known_length: Some(11),
                ..info(200)
            },
            &[("content-type", "text/plain")],
        );
        assert_eq!(
            t,
            "HTTP/1.1 200 OK|content-type: text/plain|content-length: 11||"
        );
        assert_eq!(
            e,
            Encoded {
                framing: BodyFraming::Length(11),
                keep_alive: true
            }
        );
        let (t, e) = encode(info(201), &[]);
        assert_eq!(t, "HTTP/1.1 201 Created|transfer-encoding: chunked||");
        assert_eq!(e.framing, BodyFraming::Chunked);
        // The app's length wins; its transfer-encoding and connection go.
        let (t, e) = encode(
            info(200),
            &[
                ("Content-Length", "5"),
                ("transfer-encoding", "chunked"),
                ("connection", "keep-alive"),
            ],
        );
        assert_eq!(t, "HTTP/1.1 200 OK|content-length: 5||");
        assert_eq!(e.framing, BodyFraming::Length(5));
        // Trailers need chunks even when the body is known.
        let (_, e) = encode(
            ResponseInfo {
                known_length: Some(3),
                trailers: true,
                ..info(200)
            },
            &[],
        );
        assert_eq!(e.framing, BodyFraming::Chunked);
    }

    #[test]
    fn http10_gets_a_length_or_the_close() {
        let ten = ResponseInfo {
            http10: true,
            ..info(200)
        };
        let (t, e) = encode(ten, &[]);
        assert_eq!(t, "HTTP/1.1 200 OK|connection: close||");
        assert_eq!(
            e,
            Encoded {
                framing: BodyFraming::UntilClose,
                keep_alive: false
            }
        );
        let (t, e) = encode(
            ResponseInfo {
                known_length: Some(2),
                ..ten
            },
            &[],
        );
        assert_eq!(
            t,
            "HTTP/1.1 200 OK|content-length: 2|connection: keep-alive||"
        );
        assert!(e.keep_alive);
    }

    #[test]
    fn bodiless_statuses() {
        // 204: no length, whatever the app said.
        let (t, e) = encode(info(204), &[("content-length", "11")]);
        assert_eq!(t, "HTTP/1.1 204 No Content||");
        assert_eq!(e.framing, BodyFraming::None);
        // 205: zero.
        let (t, _) = encode(info(205), &[("content-length", "11")]);
        assert_eq!(t, "HTTP/1.1 205 Reset Content|content-length: 0||");
        // 304 and HEAD keep the representation's length, send nothing.
        let (t, e) = encode(info(304), &[("content-length", "11")]);
        assert_eq!(t, "HTTP/1.1 304 Not Modified|content-length: 11||");
        assert_eq!(e.framing, BodyFraming::None);
        let head = ResponseInfo {
            head_request: true,
            known_length: Some(7),
            ..info(200)
        };
        let (t, e) = encode(head, &[]);
        assert_eq!(t, "HTTP/1.1 200 OK|content-length: 7||");
        assert_eq!(
            e,
            Encoded {
                framing: BodyFraming::None,
                keep_alive: true
            }
        );
        let (t, _) = encode(
            ResponseInfo {
                known_length: None,
                ..head
            },
            &[],
        );
        assert_eq!(t, "HTTP/1.1 200 OK||");
    }

    #[test]
    fn the_apps_close_and_date_are_honoured() {
        let (t, e) = encode(info(200), &[("connection", "Close"), ("date", "x")]);
        assert_eq!(
            t,
            "HTTP/1.1 200 OK|date: x|transfer-encoding: chunked|connection: close||"
        );
        assert!(!e.keep_alive);
        let (t, _) = encode(info(599), &[]);
        assert_eq!(t, "HTTP/1.1 599 |transfer-encoding: chunked||");
    }

    #[test]
    fn chunks_and_ends() {
        let mut out = BytesMut::new();
        put_chunk_header(&mut out, 0x1a2b);
        put_chunk_header(&mut out, 1);
        let t: Headers = [("x-checksum", "abc")].into();
        put_chunked_end(&mut out, Some(&t));
        put_chunked_end(&mut out, None);
        assert_eq!(
            &out[..],
            b"1a2b\r\n1\r\n0\r\nx-checksum: abc\r\n\r\n0\r\n\r\n"
        );
    }

    #[test]
    fn canned_responses_are_short_text() {
        let mut out = BytesMut::new();
        canned(400, "Invalid chunk size", false, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 19\r\ndate: "));
        assert!(text.ends_with("GMT\r\nconnection: close\r\n\r\nInvalid chunk size\n"));
    }

    #[test]
    fn the_date_is_an_imf_fixdate() {
        with_date(|d| {
            let s = std::str::from_utf8(d).unwrap();
            assert!(httpdate::parse_http_date(s).is_ok(), "{s}");
            assert!(s.ends_with(" GMT"));
        });
    }
}
