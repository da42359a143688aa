//! The `text/event-stream` wire format (pure): events, comments, and
//! whether a request asks for an event stream. Servers and bridges that
//! carry `sse.*` events share it, so every one frames events the same way.

use crate::{Headers, SendError};
use bytes::{BufMut, Bytes, BytesMut};

/// One dispatch: `event:`, `id:`, `retry:` and one `data:` line per line
/// of `data`, then a blank line. `event`/`id` with a newline are refused
/// (they would forge a frame boundary).
pub fn format_event(
    event: Option<&str>,
    data: &str,
    id: Option<&str>,
    retry: Option<u64>,
) -> Result<Bytes, SendError> {
    let has_newline = |s: &str| s.contains(['\n', '\r']);
    if event.is_some_and(has_newline) {
        return Err(SendError::invalid(
            "Invalid SSE event name: contains newline",
        ));
    }
    if id.is_some_and(has_newline) {
        return Err(SendError::invalid("Invalid SSE id: contains newline"));
    }
    let mut out = BytesMut::with_capacity(data.len() + 32);
    if let Some(e) = event {
        field(&mut out, "event", e);
    }
    if let Some(i) = id {
        field(&mut out, "id", i);
    }
    if let Some(r) = retry {
        field(&mut out, "retry", &r.to_string());
    }
    for line in lines(data) {
        field(&mut out, "data", line);
    }
    out.put_u8(b'\n');
    Ok(out.freeze())
}

/// A comment block: every line prefixed with `:` (one is prepended when
/// missing), then a blank line. An empty comment is just `:`.
pub fn format_comment(comment: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(comment.len() + 4);
    for line in lines(comment) {
        if !line.starts_with(':') {
            out.put_u8(b':');
        }
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

fn field(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_u8(b'\n');
}

/// Split on every SSE line terminator (`\r\n`, `\n`, `\r`).
fn lines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.find(['\r', '\n']) {
            Some(i) => {
                let skip = if r[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&r[i + skip..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// What `sse.start` implies unless the app says otherwise: `Content-Type:
/// text/event-stream` and `Cache-Control: no-cache`.
///
/// ```
/// let mut headers = pagi::Headers::new().with("cache-control", "no-store");
/// pagi::sse_wire::add_default_headers(&mut headers);
/// assert_eq!(&headers.get("content-type").unwrap()[..], b"text/event-stream");
/// assert_eq!(&headers.get("cache-control").unwrap()[..], b"no-store");
/// ```
pub fn add_default_headers(headers: &mut Headers) {
    for (name, value) in [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
    ] {
        if !headers.contains(name) {
            headers.push(name, value);
        }
    }
}

/// Whether a request's `Accept` asks for an event stream.
pub fn wants_event_stream(headers: &Headers) -> bool {
    headers.get_all("accept").any(|v| {
        v.split(|&b| b == b',').any(|item| {
            let media = item.split(|&b| b == b';').next().unwrap_or(&[]);
            media
                .trim_ascii()
                .eq_ignore_ascii_case(b"text/event-stream")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_data_becomes_several_data_lines() {
        let b = format_event(Some("tick"), "a\nb\r\nc", Some("7"), Some(1500)).unwrap();
        assert_eq!(
            &b[..],
            b"event: tick\nid: 7\nretry: 1500\ndata: a\ndata: b\ndata: c\n\n"
        );
        assert_eq!(
            &format_event(None, "", None, None).unwrap()[..],
            b"data: \n\n"
        );
    }

    #[test]
    fn newlines_in_event_or_id_are_refused() {
        assert!(format_event(Some("a\nb"), "x", None, None).is_err());
        assert!(format_event(None, "x", Some("1\r"), None).is_err());
    }

    #[test]
    fn comments_get_a_colon_per_line() {
        assert_eq!(&format_comment("keepalive")[..], b":keepalive\n\n");
        assert_eq!(&format_comment(":ping")[..], b":ping\n\n");
        assert_eq!(&format_comment("")[..], b":\n\n");
        assert_eq!(&format_comment("a\nb")[..], b":a\n:b\n\n");
    }

    #[test]
    fn accept_detection_matches_the_media_type() {
        let h = Headers::from([("accept", "text/html, text/event-stream;q=0.9")]);
        assert!(wants_event_stream(&h));
        let h = Headers::from([("accept", "text/event-streamx")]);
        assert!(!wants_event_stream(&h));
    }
}
