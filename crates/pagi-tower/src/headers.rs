//! Header lists between PAGI (`pagi::Headers`: ordered byte pairs,
//! lower-case names) and `http::HeaderMap`, used by both bridges.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use pagi::{Headers, SendError};

/// `map` as a PAGI header list (`http` names are already lower-case).
pub(crate) fn to_pagi(map: &HeaderMap) -> Headers {
    let mut headers = Headers::with_capacity(map.len());
    for (name, value) in map {
        headers.push(
            Bytes::copy_from_slice(name.as_str().as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        );
    }
    headers
}

/// `headers` as a `HeaderMap`; `what` ("header", "trailer") words the
/// error for a name that is not a token or a value with control bytes.
pub(crate) fn to_map(headers: &Headers, what: &str) -> Result<HeaderMap, SendError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let name = HeaderName::from_bytes(name)
            .map_err(|_| SendError::invalid(format!("Invalid {what} name: not an HTTP token")))?;
        let value = HeaderValue::from_maybe_shared(value.clone()).map_err(|_| {
            SendError::invalid(format!("Invalid {what} value: contains control characters"))
        })?;
        map.append(name, value);
    }
    Ok(map)
}
