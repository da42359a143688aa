//! Helpers for the HTTP/1.1 upgrade (RFC 6455 §4.2) and permessage-deflate negotiation
//! (RFC 7692 §7.1).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::deflate::{DeflateConfig, DeflateParams};

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key ++ GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key);
    h.update(GUID);
    STANDARD.encode(h.digest().bytes())
}

/// True if `key` is valid (padded) base64 that decodes to exactly 16 bytes.
pub fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24 && matches!(STANDARD.decode(key), Ok(v) if v.len() == 16)
}

/// Pick the first acceptable permessage-deflate offer.
///
/// `offers` are all `Sec-WebSocket-Extensions` request header values (each may list several
/// comma-separated extensions; other extensions are ignored). Returns the negotiated parameters
/// and the exact value for the response's `Sec-WebSocket-Extensions` header, or `None` to
/// decline (send no extension header).
///
/// An offer is skipped (declined) when it has an unknown parameter, a parameter twice, a
/// parameter value that is not a decimal 8..=15 without leading zeros, a value on a flag
/// parameter, or no value for `server_max_window_bits`; also when it asks for
/// `server_max_window_bits=8`, which zlib cannot produce for raw deflate (RFC 7692 lets a server
/// decline an offer whose parameters it cannot honour).
///
/// The response always carries `server_no_context_takeover` when the client asked for it or
/// `config.server_no_context_takeover` is set, `client_no_context_takeover` when the client
/// offered it or `config.client_no_context_takeover` is set (we then keep no decompressor
/// between messages), `server_max_window_bits=N` when
/// the client asked for a limit, and `client_max_window_bits=N` when the client offered the
/// parameter and the window is below 15.
pub fn negotiate_deflate(
    offers: &[&[u8]],
    config: &DeflateConfig,
) -> Option<(DeflateParams, String)> {
    if !config.enabled {
        return None;
    }
    for value in offers {
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        for ext in split_quoted(value, ',') {
            let mut parts = split_quoted(ext, ';');
            let name = parts.next().unwrap_or("").trim_matches([' ', '\t']);
            if !name.eq_ignore_ascii_case("permessage-deflate") {
                continue;
            }
            if let Some(r) = accept_offer(parts, config) {
                return Some(r);
            }
        }
    }
    None
}

/// Split on `sep` outside of double-quoted strings; empty elements are dropped.
fn split_quoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || loop {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        let mut end = None;
        for (i, c) in s.char_indices() {
            if escaped {
                escaped = false;
            } else if quoted && c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = !quoted;
            } else if c == sep && !quoted {
                end = Some(i);
                break;
            }
        }
        let item = match end {
            Some(i) => {
                rest = Some(&s[i + 1..]);
                &s[..i]
            }
            None => {
                rest = None;
                s
            }
        };
        if !item.trim_matches([' ', '\t']).is_empty() {
            return Some(item);
        }
    })
}

/// A window-bits value: decimal 8..=15 without leading zeros (token or quoted-string).
fn parse_bits(v: &str) -> Option<u8> {
    let v = match v.strip_prefix('"') {
        Some(q) => q.strip_suffix('"')?,
        None => v,
    };
    match v.as_bytes() {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

fn accept_offer<'a>(
    params: impl Iterator<Item = &'a str>,
    config: &DeflateConfig,
) -> Option<(DeflateParams, String)> {
    let mut server_nct = false;
    let mut client_nct = false;
    let mut server_bits: Option<u8> = None;
    // Outer Some: parameter present; inner: its value.
    let mut client_bits: Option<Option<u8>> = None;
    for p in params {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (
                n.trim_matches([' ', '\t']),
                Some(v.trim_matches([' ', '\t'])),
            ),
            None => (p.trim_matches([' ', '\t']), None),
        };
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" => {
                let flag = if name.starts_with("server") {
                    &mut server_nct
                } else {
                    &mut client_nct
                };
                if value.is_some() || *flag {
                    return None;
                }
                *flag = true;
            }
            "server_max_window_bits" => {
                if server_bits.is_some() {
                    return None;
                }
                server_bits = Some(parse_bits(value?)?);
            }
            "client_max_window_bits" => {
                if client_bits.is_some() {
                    return None;
                }
                client_bits = Some(match value {
                    Some(v) => Some(parse_bits(v)?),
                    None => None,
                });
            }
            _ => return None,
        }
    }

    let our_server_cap = config.server_max_window_bits.clamp(9, 15);
    let our_client_cap = config.client_max_window_bits.clamp(9, 15);
    let (server_window, answer_server_bits) = match server_bits {
        // We cannot compress with a 256-byte window: decline this offer.
        Some(8) => return None,
        Some(b) => (b.min(our_server_cap), true),
        None => (our_server_cap, false),
    };
    let (client_window, answer_client_bits) = match client_bits {
        Some(v) => {
            let w = v.unwrap_or(15).min(our_client_cap);
            (w, w < 15)
        }
        None => (15, false),
    };
    let params = DeflateParams {
        server_no_context_takeover: server_nct || config.server_no_context_takeover,
        client_no_context_takeover: client_nct || config.client_no_context_takeover,
        server_max_window_bits: server_window,
        client_max_window_bits: client_window,
    };
    let mut resp = String::from("permessage-deflate");
    if params.server_no_context_takeover {
        resp.push_str("; server_no_context_takeover");
    }
    if params.client_no_context_takeover {
        resp.push_str("; client_no_context_takeover");
    }
    if answer_server_bits {
        resp.push_str(&format!("; server_max_window_bits={server_window}"));
    }
    if answer_client_bits {
        resp.push_str(&format!("; client_max_window_bits={client_window}"));
    }
    Some((params, resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(offers: &[&str], cfg: &DeflateConfig) -> Option<(DeflateParams, String)> {
        let offers: Vec<&[u8]> = offers.iter().map(|s| s.as_bytes()).collect();
        negotiate_deflate(&offers, cfg)
    }

    fn resp(offers: &[&str]) -> Option<String> {
        neg(offers, &DeflateConfig::default()).map(|(_, r)| r)
    }

    #[test]
    fn rfc_accept_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn key_validation() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZSE=")); // 17 bytes
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ!="));
        assert!(!is_valid_key(b""));
        assert!(!is_valid_key(b" dGhlIHNhbXBsZSBub25jZQ=="));
    }

    #[test]
    fn plain_offer() {
        let (p, r) = neg(&["permessage-deflate"], &DeflateConfig::default()).unwrap();
        assert_eq!(r, "permessage-deflate; server_no_context_takeover");
        assert_eq!(
            p,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: false,
                server_max_window_bits: 15,
                client_max_window_bits: 15
            }
        );
        // Context takeover allowed by config.
        let cfg = DeflateConfig {
            server_no_context_takeover: false,
            ..DeflateConfig::default()
        };
        let (p, r) = neg(&["permessage-deflate"], &cfg).unwrap();
        assert_eq!(r, "permessage-deflate");
        assert_eq!(p, DeflateParams::default());
    }

    #[test]
    fn browser_offer() {
        assert_eq!(
            resp(&["permessage-deflate; client_max_window_bits"]).unwrap(),
            "permessage-deflate; server_no_context_takeover"
        );
        let cfg = DeflateConfig {
            client_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        let (p, r) = neg(&["permessage-deflate; client_max_window_bits"], &cfg).unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"
        );
        assert_eq!(p.client_max_window_bits, 12);
        // Without the parameter in the offer we must not send it.
        let (p, r) = neg(&["permessage-deflate"], &cfg).unwrap();
        assert_eq!(r, "permessage-deflate; server_no_context_takeover");
        assert_eq!(p.client_max_window_bits, 15);
    }

    #[test]
    fn all_params() {
        let (p, r) = neg(
            &[
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
               server_max_window_bits=10; client_max_window_bits=11",
            ],
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=11"
        );
        assert_eq!(
            p,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 11
            }
        );
        // Quoted values, odd case and whitespace.
        let (p, _) = neg(
            &["Permessage-Deflate ;\tserver_max_window_bits=\"9\" ; CLIENT_MAX_WINDOW_BITS = 15"],
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (9, 15)
        );
        // Our cap wins over a larger request.
        let cfg = DeflateConfig {
            server_max_window_bits: 11,
            ..DeflateConfig::default()
        };
        let (p, r) = neg(&["permessage-deflate; server_max_window_bits=13"], &cfg).unwrap();
        assert_eq!(p.server_max_window_bits, 11);
        assert!(r.ends_with("server_max_window_bits=11"), "{r}");
        let (p, r) = neg(&["permessage-deflate"], &cfg).unwrap();
        assert_eq!(p.server_max_window_bits, 11);
        assert!(!r.contains("server_max_window_bits"), "{r}");
    }

    #[test]
    fn require_client_no_context_takeover() {
        let cfg = DeflateConfig {
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let (p, r) = neg(&["permessage-deflate; client_max_window_bits"], &cfg).unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert!(p.client_no_context_takeover && p.server_no_context_takeover);
    }

    #[test]
    fn invalid_offers_are_skipped() {
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; foo=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=abc",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=",
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits",
        ] {
            assert_eq!(resp(&[bad]), None, "{bad}");
        }
        assert_eq!(resp(&[]), None);
        assert_eq!(resp(&["x-webkit-deflate-frame"]), None);
        assert_eq!(resp(&["deflate-stream, foo; bar=1"]), None);
        let off = DeflateConfig {
            enabled: false,
            ..DeflateConfig::default()
        };
        assert_eq!(neg(&["permessage-deflate"], &off), None);
    }

    #[test]
    fn first_acceptable_offer_wins() {
        // Several offers in one header value, and across header values.
        let (p, r) = neg(
            &[
                "foo, permessage-deflate; server_max_window_bits=8, \
                 permessage-deflate; bogus",
                "permessage-deflate; client_max_window_bits=9, permessage-deflate",
            ],
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"
        );
        assert_eq!(p.client_max_window_bits, 9);
        // client_max_window_bits=8 is honoured (it only limits the client).
        let (p, r) = neg(
            &["permessage-deflate; client_max_window_bits=8"],
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(p.client_max_window_bits, 8);
        assert!(r.ends_with("client_max_window_bits=8"));
    }
}
