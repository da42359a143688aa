//! Response heads (pure): the app's status and headers checked and turned
//! into what hyper writes, and the short responses the server makes itself.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use pagi::{Headers, SendError};

/// A response head, ready for hyper.
pub(crate) type Head = http::response::Parts;

/// A short `text/plain` response the server makes itself (its reason
/// phrase as the body); with `close`, `Connection: close`.
pub(crate) fn canned(status: StatusCode, close: bool) -> http::Response<Option<Bytes>> {
    let text = format!("{}\n", status.canonical_reason().unwrap_or("Error"));
    let mut resp = http::Response::new(Some(Bytes::from(text)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Build a validated response head: status in 100..=999 and headers that
/// pass the spec's byte-safety rule. `transfer-encoding` from the app is
/// dropped (the server owns framing).
///
/// `map` is an empty map to fill (one with room saves two allocations; see
/// [`Exchange::recycle`]).
pub(crate) fn response_head(
    status: u16,
    headers: Headers,
    map: HeaderMap,
) -> Result<Head, SendError> {
    let status = StatusCode::from_u16(status)
        .map_err(|_| SendError::new(format!("Invalid status code: {status}")))?;
    let mut resp = http::Response::new(());
    *resp.status_mut() = status;
    *resp.headers_mut() = header_map(headers, true, map)?;
    Ok(resp.into_parts().0)
}

/// The app's headers added to the empty `map`, validated;
/// `transfer-encoding` is left out when `drop_framing` (a response head,
/// where hyper frames).
pub(crate) fn header_map(
    headers: Headers,
    drop_framing: bool,
    mut map: HeaderMap,
) -> Result<HeaderMap, SendError> {
    debug_assert!(map.is_empty());
    map.try_reserve(headers.len())
        .map_err(|_| SendError::new("Too many headers"))?;
    for (name, value) in headers {
        // The byte rules `http` enforces include all the spec forbids (CR,
        // LF, NUL, other controls, non-token names). Scan, then move the
        // value in: cloning a `Bytes` made from a `String` would allocate.
        // The spec check only runs to word an error.
        let value_ok = value_is_valid(&value);
        let name_ok = common_name(&name).or_else(|| HeaderName::from_bytes(&name).ok());
        let (Some(name_ok), true) = (name_ok, value_ok) else {
            return Err(match pagi::validate_header(&name, &value) {
                Err(e) => SendError::new(e.to_string()),
                Ok(()) => SendError::new("Invalid header value: contains control characters"),
            });
        };
        if drop_framing && name_ok == http::header::TRANSFER_ENCODING {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(value)
            .map_err(|_| SendError::new("Invalid header value: contains control characters"))?;
        map.try_append(name_ok, value)
            .map_err(|_| SendError::new("Too many headers"))?;
    }
    Ok(map)
}

/// `http`'s rule for header value bytes: visible ASCII, space, tab and
/// obs-text (0x80..), no other controls and no DEL. Eight bytes at a time,
/// since every response header goes through it.
fn value_is_valid(v: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let byte_ok = |b: &u8| (*b >= 0x20 && *b != 0x7f) || *b == b'\t';
    let mut chunks = v.chunks_exact(8);
    for chunk in &mut chunks {
        let x = u64::from_ne_bytes(chunk.try_into().unwrap_or_default());
        // Some byte is below 0x20, or some byte is 0x7f (a zero after the
        // xor): the standard "has less than" and "has zero" word tests.
        let low = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let y = x ^ (ONES * 0x7f);
        let del = y.wrapping_sub(ONES) & !y & HIGH;
        if (low | del) != 0 && !chunk.iter().all(byte_ok) {
            return false;
        }
    }
    chunks.remainder().iter().all(byte_ok)
}

/// The names apps send most, without `HeaderName::from_bytes`'s byte-by-byte
/// parse (app header names are lower-case, as the spec requires).
fn common_name(name: &[u8]) -> Option<HeaderName> {
    use http::header as h;
    Some(match name {
        b"content-type" => h::CONTENT_TYPE,
        b"content-length" => h::CONTENT_LENGTH,
        b"cache-control" => h::CACHE_CONTROL,
        b"set-cookie" => h::SET_COOKIE,
        b"location" => h::LOCATION,
        b"content-encoding" => h::CONTENT_ENCODING,
        b"etag" => h::ETAG,
        b"last-modified" => h::LAST_MODIFIED,
        b"vary" => h::VARY,
        b"access-control-allow-origin" => h::ACCESS_CONTROL_ALLOW_ORIGIN,
        b"server" => h::SERVER,
        b"date" => h::DATE,
        b"connection" => h::CONNECTION,
        b"transfer-encoding" => h::TRANSFER_ENCODING,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_head_drops_the_apps_transfer_encoding() {
        let headers = Headers::new()
            .with("content-type", "text/plain")
            .with("transfer-encoding", "chunked")
            .with("x-a", "1")
            .with("x-a", "2");
        let head = response_head(201, headers, HeaderMap::new()).unwrap();
        assert_eq!(head.status, 201);
        assert!(!head.headers.contains_key(http::header::TRANSFER_ENCODING));
        assert_eq!(head.headers["content-type"], "text/plain");
        let xs: Vec<_> = head.headers.get_all("x-a").iter().collect();
        assert_eq!(xs, ["1", "2"]);
    }

    #[test]
    fn common_names_match_the_parsed_ones() {
        for n in [
            "content-type",
            "content-length",
            "cache-control",
            "set-cookie",
            "location",
            "content-encoding",
            "etag",
            "last-modified",
            "vary",
            "access-control-allow-origin",
            "server",
            "date",
            "connection",
            "transfer-encoding",
        ] {
            assert_eq!(
                common_name(n.as_bytes()),
                HeaderName::from_bytes(n.as_bytes()).ok()
            );
        }
        assert_eq!(common_name(b"Content-Type"), None);
        assert_eq!(common_name(b"x-custom"), None);
    }

    #[test]
    fn value_check_matches_the_byte_rule() {
        let naive = |v: &[u8]| v.iter().all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t');
        // Every byte value at every position of a 19-byte value (two words
        // and a tail), inside an otherwise valid value.
        for len in [1usize, 7, 8, 9, 16, 19] {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    assert_eq!(
                        value_is_valid(&v),
                        naive(&v),
                        "byte {b:#x} at {pos} of {len}"
                    );
                }
            }
        }
        // Mixed words (borrows between neighbouring bytes): a fixed LCG
        // over the interesting byte values.
        let pick = [0x00, 0x09, 0x1f, 0x20, 0x21, 0x7e, 0x7f, 0x80, 0x81, 0xff];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            let v: Vec<u8> = (0..16)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    pick[(seed >> 33) as usize % pick.len()]
                })
                .collect();
            assert_eq!(value_is_valid(&v), naive(&v), "{v:?}");
        }
        assert!(value_is_valid(b""));
        assert!(value_is_valid(
            "text/plain; charset=utf-8\tcaf\u{e9}".as_bytes()
        ));
    }

    #[test]
    fn trailers_and_bad_headers() {
        let map = header_map(
            Headers::new().with("transfer-encoding", "x"),
            false,
            HeaderMap::new(),
        )
        .unwrap();
        assert!(map.contains_key(http::header::TRANSFER_ENCODING));
        assert!(response_head(
            200,
            Headers::new().with("x-bad", "a\r\nb"),
            HeaderMap::new()
        )
        .is_err());
        assert!(
            response_head(200, Headers::new().with("bad name", "v"), HeaderMap::new()).is_err()
        );
        assert!(response_head(1000, Headers::new(), HeaderMap::new()).is_err());
    }

    #[test]
    fn canned_responses_are_short_text() {
        let r = canned(StatusCode::PAYLOAD_TOO_LARGE, true);
        assert_eq!(r.status(), 413);
        assert_eq!(r.body().as_deref(), Some(&b"Payload Too Large\n"[..]));
        assert_eq!(r.headers()["connection"], "close");
    }
}
