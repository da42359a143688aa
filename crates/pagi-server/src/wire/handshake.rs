//! Pure checks of an HTTP/1.1 WebSocket upgrade request (RFC 6455 §4.2.1).

use pagi::Headers;

use super::h1::head::{Head, Version};

/// Why a handshake was refused, and with which status.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 400 with this reason.
    BadRequest(&'static str),
    /// 426 Upgrade Required with `Sec-WebSocket-Version: 13`.
    WrongVersion,
}

/// Validate method, version, `Connection`, `Sec-WebSocket-Version` and
/// `Sec-WebSocket-Key` of a request whose `Upgrade` names `websocket`.
pub(crate) fn validate(head: &Head) -> Result<(), Refusal> {
    validate_parts(&head.method, head.version == Version::Http11, &head.headers)
}

/// The `Sec-WebSocket-Accept` answer to a validated request's key.
pub(crate) fn accept_key_of(h: &Headers) -> String {
    let key = h
        .get("sec-websocket-key")
        .map_or(&[][..], |k| k.trim_ascii());
    pagi_ws::handshake::accept_key(key)
}

/// [`validate`] on a request's parts, wherever it was parsed.
pub(crate) fn validate_parts(method: &str, http11: bool, h: &Headers) -> Result<(), Refusal> {
    if method != "GET" {
        return Err(Refusal::BadRequest("WebSocket handshake must use GET"));
    }
    if !http11 {
        return Err(Refusal::BadRequest("WebSocket handshake needs HTTP/1.1"));
    }
    if !h.has_token("connection", "upgrade") {
        return Err(Refusal::BadRequest("missing Connection: upgrade"));
    }
    match h.get("sec-websocket-version") {
        Some(v) if v.trim_ascii() == b"13" => {}
        _ => return Err(Refusal::WrongVersion),
    }
    let mut keys = h.get_all("sec-websocket-key");
    match (keys.next(), keys.next()) {
        (Some(k), None) if pagi_ws::handshake::is_valid_key(k.trim_ascii()) => Ok(()),
        _ => Err(Refusal::BadRequest("invalid Sec-WebSocket-Key")),
    }
}

/// The client's offered subprotocols: every `Sec-WebSocket-Protocol` value
/// split on commas, trimmed, empties dropped.
pub(crate) fn subprotocols(headers: &Headers) -> Vec<String> {
    headers
        .get_all("sec-websocket-protocol")
        .filter_map(|v| std::str::from_utf8(v).ok())
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
    use crate::wire::h1::head::{HeadParser, Limits};

    const VALID: &str = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    fn head(text: &str) -> Head {
        let limits = Limits {
            max_head: 8192,
            max_headers: 32,
            max_request_line: 1024,
        };
        let mut buf = bytes::BytesMut::from(format!("{text}\r\n").as_bytes());
        HeadParser::default()
            .parse(&mut buf, &limits)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_valid_handshake_passes() {
        assert_eq!(validate(&head(VALID)), Ok(()));
    }

    #[test]
    fn wrong_version_is_426() {
        let text = VALID.replace("Version: 13", "Version: 8");
        assert_eq!(validate(&head(&text)), Err(Refusal::WrongVersion));
    }

    #[test]
    fn bad_key_method_or_connection_is_400() {
        for text in [
            VALID.replace("dGhlIHNhbXBsZSBub25jZQ==", "abc"),
            VALID.replace("GET", "POST"),
            VALID.replace("Connection: Upgrade", "Connection: keep-alive"),
            VALID.replace("HTTP/1.1", "HTTP/1.0"),
            format!("{VALID}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
        ] {
            assert!(
                matches!(validate(&head(&text)), Err(Refusal::BadRequest(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn subprotocols_are_split_and_trimmed() {
        let h = head(&format!(
            "{VALID}Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol:  v2 ,\r\n"
        ));
        let offered = subprotocols(&h.headers);
        assert_eq!(offered, ["chat", "superchat", "v2"]);
        assert!(check_subprotocol("chat", &offered).is_ok());
        assert!(check_subprotocol("other", &offered).is_err());
        assert!(check_subprotocol("bad\r\nx", &offered).is_err());
    }
}
