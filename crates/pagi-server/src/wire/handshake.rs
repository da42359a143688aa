//! Pure checks of an HTTP/1.1 WebSocket upgrade request (RFC 6455 §4.2.1).

use http::request::Parts;
use http::{header, Method, Version};

use super::request::header_has_token;

/// Why a handshake was refused, and with which status.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 400 with this reason.
    BadRequest(&'static str),
    /// 426 Upgrade Required with `Sec-WebSocket-Version: 13`.
    WrongVersion,
}

/// Whether the request asks for a WebSocket upgrade at all (then it is
/// either a valid handshake or refused, never passed on as plain HTTP).
pub(crate) fn is_upgrade(parts: &Parts) -> bool {
    header_has_token(&parts.headers, header::UPGRADE, "websocket")
}

/// Validate method, version, `Connection`, `Sec-WebSocket-Version` and
/// `Sec-WebSocket-Key`.
pub(crate) fn validate(parts: &Parts) -> Result<(), Refusal> {
    if parts.method != Method::GET {
        return Err(Refusal::BadRequest("WebSocket handshake must use GET"));
    }
    if parts.version < Version::HTTP_11 {
        return Err(Refusal::BadRequest("WebSocket handshake needs HTTP/1.1"));
    }
    if !header_has_token(&parts.headers, header::CONNECTION, "upgrade") {
        return Err(Refusal::BadRequest("missing Connection: upgrade"));
    }
    match parts.headers.get(header::SEC_WEBSOCKET_VERSION) {
        Some(v) if v.as_bytes().trim_ascii() == b"13" => {}
        _ => return Err(Refusal::WrongVersion),
    }
    let mut keys = parts.headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    match (keys.next(), keys.next()) {
        (Some(k), None) if pagi_ws::handshake::is_valid_key(k.as_bytes().trim_ascii()) => Ok(()),
        _ => Err(Refusal::BadRequest("invalid Sec-WebSocket-Key")),
    }
}

/// The client's offered subprotocols: every `Sec-WebSocket-Protocol` value
/// split on commas, trimmed, empties dropped.
pub(crate) fn subprotocols(parts: &Parts) -> Vec<String> {
    parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A subprotocol the app may select: an RFC 7230 token the client offered.
pub(crate) fn check_subprotocol(chosen: &str, offered: &[String]) -> Result<(), String> {
    let token = !chosen.is_empty()
        && chosen
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!("Invalid subprotocol {chosen:?}: not an HTTP token"));
    }
    if !offered.iter().any(|o| o == chosen) {
        return Err(format!(
            "Invalid subprotocol {chosen:?}: the client did not offer it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> http::request::Builder {
        http::Request::get("/")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    fn parts(b: http::request::Builder) -> Parts {
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_valid_handshake_passes() {
        assert_eq!(validate(&parts(req())), Ok(()));
    }

    #[test]
    fn wrong_version_is_426() {
        let mut p = parts(req());
        p.headers
            .insert("sec-websocket-version", "8".parse().unwrap());
        assert_eq!(validate(&p), Err(Refusal::WrongVersion));
    }

    #[test]
    fn bad_key_method_or_connection_is_400() {
        let mut p = parts(req());
        p.headers
            .insert("sec-websocket-key", "abc".parse().unwrap());
        assert!(matches!(validate(&p), Err(Refusal::BadRequest(_))));
        let mut p = parts(req());
        p.method = Method::POST;
        assert!(matches!(validate(&p), Err(Refusal::BadRequest(_))));
        let mut p = parts(req());
        p.headers
            .insert("connection", "keep-alive".parse().unwrap());
        assert!(matches!(validate(&p), Err(Refusal::BadRequest(_))));
    }

    #[test]
    fn subprotocols_are_split_and_trimmed() {
        let p = parts(
            req()
                .header("Sec-WebSocket-Protocol", "chat, superchat")
                .header("Sec-WebSocket-Protocol", " v2 ,"),
        );
        assert_eq!(subprotocols(&p), ["chat", "superchat", "v2"]);
        assert!(check_subprotocol("chat", &subprotocols(&p)).is_ok());
        assert!(check_subprotocol("other", &subprotocols(&p)).is_err());
        assert!(check_subprotocol("bad\r\nx", &subprotocols(&p)).is_err());
    }
}
