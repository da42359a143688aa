//! PAGI response heads as hyper's HTTP/2 types: header fields (minus the
//! connection-specific ones HTTP/2 does not have, RFC 9113 §8.2.2) and the
//! short text responses the server makes itself. Shared by request
//! streams (`http2`) and WebSockets over HTTP/2 (`ws`).

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use pagi::Headers;

use super::response::parse_content_length;

/// A header's name: the common response ones without parsing; `None` for
/// a name that is not one (the app's headers were checked when sent).
fn header_name(name: &[u8]) -> Option<HeaderName> {
    let known = match name {
        b"content-type" => header::CONTENT_TYPE,
        b"content-length" => header::CONTENT_LENGTH,
        b"cache-control" => header::CACHE_CONTROL,
        b"set-cookie" => header::SET_COOKIE,
        b"location" => header::LOCATION,
        b"etag" => header::ETAG,
        b"last-modified" => header::LAST_MODIFIED,
        b"vary" => header::VARY,
        b"date" => header::DATE,
        b"server" => header::SERVER,
        _ => return HeaderName::from_bytes(name).ok(),
    };
    Some(known)
}

/// Fields that exist only on HTTP/1.1 connections (RFC 9113 §8.2.2).
fn is_connection_specific(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
    )
}

/// Append the app's `headers` to `map`, leaving out connection-specific
/// fields (and, defensively, any that are not valid).
pub(crate) fn append(map: &mut HeaderMap, headers: &Headers) {
    for (name, value) in fields(headers) {
        map.append(name, value);
    }
}

/// [`append`] for a response head whose length the server writes itself:
/// the app's `content-length` is left out and returned (the last valid
/// one, read as HTTP/1.1 reads it).
pub(crate) fn append_taking_length(map: &mut HeaderMap, headers: &Headers) -> Option<u64> {
    let mut length = None;
    for (name, value) in fields(headers) {
        if name == header::CONTENT_LENGTH {
            length = parse_content_length(value.as_bytes()).or(length);
        } else {
            map.append(name, value);
        }
    }
    length
}

/// The app's fields as HTTP/2 ones: valid (checked when sent; skipped
/// defensively) and not connection-specific.
fn fields(headers: &Headers) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
    headers.iter().filter_map(|(name, value)| {
        let name = header_name(name)?;
        let value = HeaderValue::from_maybe_shared(value.clone()).ok()?;
        (!is_connection_specific(&name)).then_some((name, value))
    })
}

/// A short `text/plain` response the server makes itself: the reason and a
/// newline.
pub(crate) fn canned(status: u16, why: &str) -> Response<Bytes> {
    let body = Bytes::from(format!("{why}\n"));
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    *resp.body_mut() = body;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_fields_are_left_out() {
        let mut map = HeaderMap::new();
        let headers = Headers::new()
            .with("Content-Type", "text/plain")
            .with("connection", "close")
            .with("set-cookie", "a=1")
            .with("transfer-encoding", "chunked")
            .with("set-cookie", "b=2");
        append(&mut map, &headers);
        assert_eq!(map.len(), 3);
        assert_eq!(map["content-type"], "text/plain");
        let cookies: Vec<_> = map.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }

    #[test]
    fn canned_responses_are_short_text() {
        let r = canned(503, "Busy");
        assert_eq!(r.status(), 503);
        assert_eq!(r.body(), &Bytes::from_static(b"Busy\n"));
        assert_eq!(r.headers()["content-length"], "5");
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    }
}
