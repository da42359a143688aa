//! Pure translation of a parsed request head into PAGI scope fields.

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use pagi::{Headers, HttpVersion};
use percent_encoding::percent_decode;

/// The scope fields every request-like scope (http, sse, websocket) shares.
pub(crate) struct RequestHead {
    pub(crate) http_version: HttpVersion,
    pub(crate) path: String,
    pub(crate) raw_path: Bytes,
    pub(crate) query_string: Bytes,
    pub(crate) headers: Headers,
}

pub(crate) fn http_version(v: http::Version) -> HttpVersion {
    match v {
        http::Version::HTTP_10 | http::Version::HTTP_09 => HttpVersion::Http10,
        http::Version::HTTP_2 => HttpVersion::Http2,
        _ => HttpVersion::Http11,
    }
}

/// Split the request target, decode the path, and copy the headers with
/// lower-case names in arrival order, joining repeated `cookie` headers with
/// `"; "` into one (the spec's cookie normalisation).
pub(crate) fn request_head(parts: &Parts) -> RequestHead {
    let (path, query) = match parts.uri.path_and_query() {
        Some(pq) => (pq.path(), pq.query().unwrap_or("")),
        None => ("/", ""),
    };
    RequestHead {
        http_version: http_version(parts.version),
        path: decode_path(path),
        raw_path: Bytes::copy_from_slice(path.as_bytes()),
        query_string: Bytes::copy_from_slice(query.as_bytes()),
        headers: copy_headers(&parts.headers),
    }
}

/// Percent-decode a request path (as `http` parsed it: ASCII); bytes that
/// are not UTF-8 after decoding become U+FFFD (`raw_path` keeps the
/// original).
pub(crate) fn decode_path(raw: &str) -> String {
    // Most paths have no escapes: then decoding is a plain copy.
    if !raw.contains('%') {
        return raw.to_owned();
    }
    percent_decode(raw.as_bytes())
        .decode_utf8_lossy()
        .into_owned()
}

fn copy_headers(map: &http::HeaderMap) -> Headers {
    let mut headers = Headers::with_capacity(map.len());
    let mut cookie: Option<Vec<u8>> = None;
    // With several headers, copy all values into one buffer and hand out
    // slices of it: one allocation instead of one per header (a WebSocket
    // scope keeps its headers for the whole session).
    let mut arena =
        (map.len() > 2).then(|| BytesMut::with_capacity(map.iter().map(|(_, v)| v.len()).sum()));
    for (name, value) in map {
        if name == http::header::COOKIE {
            match &mut cookie {
                Some(c) => {
                    c.extend_from_slice(b"; ");
                    c.extend_from_slice(value.as_bytes());
                }
                None => cookie = Some(value.as_bytes().to_vec()),
            }
            continue;
        }
        // HeaderName is already lower-case; from_static avoids a copy for
        // standard names.
        let value = match &mut arena {
            Some(buf) => {
                buf.extend_from_slice(value.as_bytes());
                buf.split_to(value.len()).freeze()
            }
            None => Bytes::copy_from_slice(value.as_bytes()),
        };
        headers.push(name_bytes(name), value);
    }
    if let Some(c) = cookie {
        headers.push(Bytes::from_static(b"cookie"), c);
    }
    headers
}

/// The header's name; common ones come from static memory (no allocation).
fn name_bytes(name: &http::HeaderName) -> Bytes {
    use http::header as h;
    const COMMON: &[(h::HeaderName, &str)] = &[
        (h::HOST, "host"),
        (h::USER_AGENT, "user-agent"),
        (h::ACCEPT, "accept"),
        (h::ACCEPT_ENCODING, "accept-encoding"),
        (h::ACCEPT_LANGUAGE, "accept-language"),
        (h::CONNECTION, "connection"),
        (h::CONTENT_LENGTH, "content-length"),
        (h::CONTENT_TYPE, "content-type"),
        (h::UPGRADE, "upgrade"),
        (h::ORIGIN, "origin"),
        (h::CACHE_CONTROL, "cache-control"),
        (h::PRAGMA, "pragma"),
        (h::SEC_WEBSOCKET_KEY, "sec-websocket-key"),
        (h::SEC_WEBSOCKET_VERSION, "sec-websocket-version"),
        (h::SEC_WEBSOCKET_EXTENSIONS, "sec-websocket-extensions"),
        (h::SEC_WEBSOCKET_PROTOCOL, "sec-websocket-protocol"),
    ];
    match COMMON.iter().find(|(n, _)| n == name) {
        Some((_, s)) => Bytes::from_static(s.as_bytes()),
        None => Bytes::copy_from_slice(name.as_str().as_bytes()),
    }
}

/// Whether any comma-separated element of the header values equals `token`
/// (case-insensitive), e.g. `Connection: keep-alive, Upgrade`.
pub(crate) fn header_has_token(map: &http::HeaderMap, name: http::HeaderName, token: &str) -> bool {
    map.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::Request<()>) -> Parts {
        req.into_parts().0
    }

    #[test]
    fn path_is_decoded_and_query_kept_raw() {
        let p = parts(
            http::Request::get("/caf%C3%A9/a%20b?x=%20y&z")
                .body(())
                .unwrap(),
        );
        let h = request_head(&p);
        assert_eq!(h.path, "/café/a b");
        assert_eq!(&h.raw_path[..], b"/caf%C3%A9/a%20b");
        assert_eq!(&h.query_string[..], b"x=%20y&z");
    }

    #[test]
    fn invalid_utf8_path_is_replaced_not_rejected() {
        assert_eq!(decode_path("/%FF"), "/\u{FFFD}");
        assert_eq!(decode_path("/%FFa"), "/\u{FFFD}a");
        assert_eq!(decode_path("/%C3%A9t%C3%A9"), "/\u{e9}t\u{e9}");
        assert_eq!(decode_path("/plain/path"), "/plain/path");
    }

    #[test]
    fn cookies_are_joined_into_one_header() {
        let p = parts(
            http::Request::get("/")
                .header("Cookie", "a=1")
                .header("X-Other", "v")
                .header("cookie", "b=2; c=3")
                .body(())
                .unwrap(),
        );
        let h = request_head(&p);
        assert_eq!(h.headers.get_all("cookie").count(), 1);
        assert_eq!(&h.headers.get("cookie").unwrap()[..], b"a=1; b=2; c=3");
        assert_eq!(&h.headers.get("x-other").unwrap()[..], b"v");
    }

    #[test]
    fn connection_tokens_are_matched_case_insensitively() {
        let p = parts(
            http::Request::get("/")
                .header("Connection", "keep-alive, Upgrade")
                .body(())
                .unwrap(),
        );
        assert!(header_has_token(
            &p.headers,
            http::header::CONNECTION,
            "upgrade"
        ));
        assert!(!header_has_token(
            &p.headers,
            http::header::CONNECTION,
            "close"
        ));
    }
}
