//! Upgrade helpers: arbitrary bytes parsed as an HTTP request head with `httparse`, then
//! `is_valid_key` / `accept_key` on every `Sec-WebSocket-Key` and `negotiate_deflate` on the
//! `Sec-WebSocket-Extensions` values under several `DeflateConfig`s. When the bytes are not a
//! complete request head, their lines are used as the key and extension values instead (so
//! the negotiation code is fuzzed even when the HTTP syntax is broken).
//!
//! Checked:
//! * `is_valid_key` agrees with a reference (24 chars of canonical base64 for 16 bytes);
//! * `accept_key` agrees with a SHA-1 + base64 written here;
//! * `negotiate_deflate` declines everything when disabled, picks the first acceptable offer
//!   (same result as trying the header values one by one);
//! * an accepted response value parses, as a client would read it, to the returned params:
//!   windows within 9..=15 (server) and 8..=15 (client), flags as returned, the server window
//!   within our configured cap; `client_max_window_bits` only if the client offered it;
//! * negotiating the response value again gives the same params and the same response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pagi_ws::handshake::{accept_key, is_valid_key, negotiate_deflate};
use pagi_ws::{DeflateConfig, DeflateParams};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, c) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// 24 characters of base64 for exactly 16 bytes, with zero pad bits (canonical).
fn reference_key_valid(k: &[u8]) -> bool {
    if k.len() != 24 || &k[22..] != b"==" {
        return false;
    }
    let val = |c: u8| B64.iter().position(|&x| x == c);
    k[..22].iter().all(|&c| val(c).is_some()) && val(k[21]).unwrap() & 0x0F == 0
}

fn check_key(k: &[u8]) {
    assert_eq!(
        is_valid_key(k),
        reference_key_valid(k),
        "is_valid_key({k:?})"
    );
    let mut input = k.to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    assert_eq!(accept_key(k), base64(&sha1(&input)), "accept_key({k:?})");
}

fn configs() -> Vec<DeflateConfig> {
    let d = DeflateConfig::default;
    vec![
        d(),
        DeflateConfig {
            server_no_context_takeover: false,
            ..d()
        },
        DeflateConfig {
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..d()
        },
        DeflateConfig {
            client_no_context_takeover: true,
            server_max_window_bits: 9,
            client_max_window_bits: 9,
            ..d()
        },
        DeflateConfig {
            // Out of range: clamped to 9..=15.
            server_max_window_bits: 8,
            client_max_window_bits: 200,
            server_no_context_takeover: false,
            ..d()
        },
        DeflateConfig {
            enabled: false,
            ..d()
        },
    ]
}

/// The response value as a client reads it (RFC 7692 §7.1): the extension name, then unique
/// known parameters; window values decimal without leading zeros.
struct Answer {
    server_nct: bool,
    client_nct: bool,
    server_bits: Option<u8>,
    client_bits: Option<u8>,
}

fn parse_answer(resp: &str) -> Answer {
    let mut parts = resp.split(';').map(|p| p.trim());
    assert_eq!(parts.next(), Some("permessage-deflate"), "{resp}");
    let mut a = Answer {
        server_nct: false,
        client_nct: false,
        server_bits: None,
        client_bits: None,
    };
    let bits = |v: &str| -> u8 {
        assert!(
            !v.starts_with('0') && v.len() <= 2,
            "window value {v:?} in {resp}"
        );
        v.parse()
            .unwrap_or_else(|_| panic!("window value {v:?} in {resp}"))
    };
    for p in parts {
        match p.split_once('=') {
            None if p == "server_no_context_takeover" && !a.server_nct => a.server_nct = true,
            None if p == "client_no_context_takeover" && !a.client_nct => a.client_nct = true,
            Some(("server_max_window_bits", v)) if a.server_bits.is_none() => {
                a.server_bits = Some(bits(v))
            }
            Some(("client_max_window_bits", v)) if a.client_bits.is_none() => {
                a.client_bits = Some(bits(v))
            }
            _ => panic!("unexpected or repeated parameter {p:?} in {resp:?}"),
        }
    }
    a
}

fn check_negotiation(offers: &[&[u8]], cfg: &DeflateConfig) {
    let r = negotiate_deflate(offers, cfg);
    if !cfg.enabled {
        assert!(r.is_none(), "disabled config accepted {r:?}");
        return;
    }
    // The first acceptable offer wins, across header values.
    let one_by_one = offers.iter().find_map(|o| negotiate_deflate(&[*o], cfg));
    assert_eq!(
        r, one_by_one,
        "negotiating all values at once vs one by one"
    );
    let Some((p, resp)) = r else {
        return;
    };
    let server_cap = cfg.server_max_window_bits.clamp(9, 15);
    let client_cap = cfg.client_max_window_bits.clamp(9, 15);
    assert!(
        (9..=server_cap).contains(&p.server_max_window_bits),
        "server window {p:?} (cap {server_cap})"
    );
    assert!(
        (8..=15).contains(&p.client_max_window_bits),
        "client window {p:?}"
    );
    assert!(p.server_no_context_takeover || !cfg.server_no_context_takeover);
    assert!(p.client_no_context_takeover || !cfg.client_no_context_takeover);

    let a = parse_answer(&resp);
    assert_eq!(a.server_nct, p.server_no_context_takeover, "{resp}");
    assert_eq!(a.client_nct, p.client_no_context_takeover, "{resp}");
    match a.server_bits {
        Some(b) => assert_eq!(b, p.server_max_window_bits, "{resp}"),
        // Not limited by the client: we use our own cap (the client's inflater takes any).
        None => assert_eq!(p.server_max_window_bits, server_cap, "{resp}"),
    }
    match a.client_bits {
        Some(b) => {
            assert_eq!(b, p.client_max_window_bits, "{resp}");
            assert!(b < 15 && b <= client_cap, "{resp}");
            let offered = offers.iter().any(|o| {
                o.windows(22)
                    .any(|w| w.eq_ignore_ascii_case(b"client_max_window_bits"))
            });
            assert!(
                offered,
                "client_max_window_bits answered but never offered: {resp}"
            );
        }
        None => assert_eq!(p.client_max_window_bits, 15, "{resp}"),
    }

    // The response, offered again, is accepted unchanged.
    let again = negotiate_deflate(&[resp.as_bytes()], cfg);
    assert_eq!(
        again,
        Some((p.clone(), resp.clone())),
        "re-negotiating the response value"
    );
    let _: &DeflateParams = &p;
}

fn run(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let (keys, offers): (Vec<&[u8]>, Vec<&[u8]>) = match req.parse(data) {
        Ok(httparse::Status::Complete(_)) => {
            let named = |n: &str| -> Vec<&[u8]> {
                req.headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case(n))
                    .map(|h| h.value)
                    .collect()
            };
            (
                named("sec-websocket-key"),
                named("sec-websocket-extensions"),
            )
        }
        _ => {
            let lines: Vec<&[u8]> = data
                .split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .take(16)
                .collect();
            (lines.clone(), lines)
        }
    };
    for k in keys {
        check_key(k);
    }
    for cfg in configs() {
        check_negotiation(&offers, &cfg);
    }
}

fuzz_target!(|data: &[u8]| {
    // The reference SHA-1/base64 themselves, on RFC 6455's example.
    debug_assert_eq!(
        base64(&sha1(
            b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        )),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    run(data)
});
