//! Pure translation of a checked request head into PAGI scope fields.

use bytes::{Bytes, BytesMut};
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

/// The scope's fields from an HTTP/2 request (RFC 9113 §8.3): pseudo-headers
/// are not headers; `:authority` populates or overrides `host`; several
/// `cookie` fields are joined with `"; "` into one (§8.2.3, the spec's cookie
/// normalisation).
pub(crate) fn from_h2(parts: &http::request::Parts) -> RequestHead {
    from_parts(parts, HttpVersion::Http2)
}

/// The scope's fields from a request another HTTP layer parsed (hyper, as
/// a host's server), as [`from_h2`] reads them, with its `version`.
pub(crate) fn from_parts(parts: &http::request::Parts, version: HttpVersion) -> RequestHead {
    let (path, query) = match parts.uri.path_and_query() {
        Some(pq) => (pq.path(), pq.query().unwrap_or("")),
        None => ("/", ""),
    };
    let map = &parts.headers;
    let authority = parts.uri.authority().map(|a| a.as_str());
    let mut headers = Headers::with_capacity(map.len() + 1);
    // Names, values, path and query in one buffer, handed out as slices:
    // one allocation, not one per field (a WebSocket scope keeps its
    // headers for a session).
    let mut arena = BytesMut::with_capacity(
        map.iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum::<usize>()
            + authority.map_or(0, str::len)
            + path.len()
            + query.len(),
    );
    let mut take = |v: &[u8]| {
        arena.extend_from_slice(v);
        arena.split_to(v.len()).freeze()
    };
    if let Some(a) = authority {
        headers.push(Bytes::from_static(b"host"), take(a.as_bytes()));
    }
    let mut cookie: Option<Vec<u8>> = None;
    for (name, value) in map {
        if name == http::header::COOKIE {
            let c = cookie.get_or_insert_with(Vec::new);
            if !c.is_empty() {
                c.extend_from_slice(b"; ");
            }
            c.extend_from_slice(value.as_bytes());
            continue;
        }
        if name == http::header::HOST && authority.is_some() {
            continue;
        }
        headers.push(take(name.as_str().as_bytes()), take(value.as_bytes()));
    }
    if let Some(c) = cookie {
        headers.push(Bytes::from_static(b"cookie"), c);
    }
    let raw_path = take(path.as_bytes());
    let query_string = take(query.as_bytes());
    RequestHead {
        http_version: version,
        path: decode_path(path.as_bytes()),
        raw_path,
        query_string,
        headers,
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
    fn h2_authority_becomes_host_and_cookies_are_joined() {
        let req = http::Request::get("https://example.org:8443/a%20b?x=1")
            .header("host", "other")
            .header("cookie", "a=1")
            .header("x-other", "v")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let h = from_h2(&parts);
        assert_eq!(h.http_version, HttpVersion::Http2);
        assert_eq!((h.path.as_str(), &h.raw_path[..]), ("/a b", &b"/a%20b"[..]));
        assert_eq!(&h.query_string[..], b"x=1");
        let pairs: Vec<(String, String)> = h
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("host".into(), "example.org:8443".into()),
                ("x-other".into(), "v".into()),
                ("cookie".into(), "a=1; b=2".into()),
            ]
        );
    }
}
