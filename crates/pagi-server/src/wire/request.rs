//! Pure translation of a checked request head into PAGI scope fields.

use bytes::Bytes;
use pagi::{Headers, HttpVersion};
use percent_encoding::percent_decode;

use super::h1::head::{Head, Version};

/// The scope fields every request-like scope (http, sse, websocket) shares.
pub(crate) struct RequestHead {
    pub(crate) http_version: HttpVersion,
    pub(crate) path: String,
    pub(crate) raw_path: Bytes,
    pub(crate) query_string: Bytes,
    pub(crate) headers: Headers,
}

/// The scope's fields from an HTTP/1.x head (whose headers move in).
pub(crate) fn from_h1(head: &mut Head) -> RequestHead {
    RequestHead {
        http_version: match head.version {
            Version::Http10 => HttpVersion::Http10,
            Version::Http11 => HttpVersion::Http11,
        },
        path: decode_path(&head.raw_path),
        raw_path: head.raw_path.clone(),
        query_string: head.query.clone(),
        headers: std::mem::take(&mut head.headers),
    }
}

/// Percent-decode a request path; bytes that are not UTF-8 after decoding
/// become U+FFFD (`raw_path` keeps the original).
pub(crate) fn decode_path(raw: &[u8]) -> String {
    // Most paths are ASCII without escapes: then decoding is a plain copy.
    if raw.is_ascii() && !raw.contains(&b'%') {
        return String::from_utf8_lossy(raw).into_owned();
    }
    percent_decode(raw).decode_utf8_lossy().into_owned()
}

/// Whether any comma-separated element of the `name` header values equals
/// `token` (case-insensitive), e.g. `Connection: keep-alive, Upgrade`.
pub(crate) fn header_has_token(headers: &Headers, name: &str, token: &str) -> bool {
    headers.get_all(name).any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_decoded_and_invalid_utf8_replaced() {
        assert_eq!(decode_path(b"/caf%C3%A9/a%20b"), "/café/a b");
        assert_eq!(decode_path(b"/%FF"), "/\u{FFFD}");
        assert_eq!(decode_path(b"/%FFa"), "/\u{FFFD}a");
        assert_eq!(decode_path(b"/%C3%A9t%C3%A9"), "/\u{e9}t\u{e9}");
        assert_eq!(decode_path(b"/plain/path"), "/plain/path");
        assert_eq!(decode_path(b"/caf\xc3\xa9"), "/café");
    }

    #[test]
    fn connection_tokens_are_matched_case_insensitively() {
        let h = Headers::new().with("connection", "keep-alive, Upgrade");
        assert!(header_has_token(&h, "Connection", "upgrade"));
        assert!(!header_has_token(&h, "connection", "close"));
    }
}
