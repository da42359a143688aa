//! The app's response heads and trailers, checked (pure): a final status,
//! and header bytes that cannot split or forge a response (the spec's
//! rule: no CR, LF or NUL; names are tokens; values have no other control
//! characters).

use pagi::{Headers, SendError};

/// A final response status: 200–999. (A 1xx is not a final response; an
/// app that sends one gets the spec's backstop, a logged 500.)
pub(crate) fn check_final_status(status: u16) -> Result<(), SendError> {
    if (200..=999).contains(&status) {
        Ok(())
    } else {
        Err(SendError::invalid(format!(
            "Invalid status code {status}: a final response status is 200-999"
        )))
    }
}

/// Every name a token and every value free of control characters.
pub(crate) fn check_headers(headers: &Headers) -> Result<(), SendError> {
    for (name, value) in headers.iter() {
        if !name_is_token(name) || !value_is_valid(value) {
            return Err(match pagi::validate_header(name, value) {
                Err(e) => SendError::invalid(e.to_string()),
                Ok(()) if !name_is_token(name) => {
                    SendError::invalid("Invalid header name: not an HTTP token")
                }
                Ok(()) => SendError::invalid("Invalid header value: contains control characters"),
            });
        }
    }
    Ok(())
}

/// Trailers: valid headers, none of the fields that must not be trailers
/// (RFC 9110 §6.5.1).
pub(crate) fn check_trailers(headers: &Headers) -> Result<(), SendError> {
    check_headers(headers)?;
    match headers.iter().find(|(n, _)| forbidden_trailer(n)) {
        Some((name, _)) => Err(SendError::invalid(format!(
            "Invalid trailer {:?}: this field must not be sent as a trailer",
            String::from_utf8_lossy(name)
        ))),
        None => Ok(()),
    }
}

fn name_is_token(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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

/// Fields that must not be sent as trailers (RFC 9110 §6.5.1): framing,
/// routing, authentication, request modifiers, response control and
/// content format.
pub(crate) fn forbidden_trailer(name: &[u8]) -> bool {
    const FORBIDDEN: &[&[u8]] = &[
        b"transfer-encoding",
        b"content-length",
        b"host",
        b"te",
        b"trailer",
        b"connection",
        b"keep-alive",
        b"upgrade",
        b"authorization",
        b"proxy-authorization",
        b"www-authenticate",
        b"proxy-authenticate",
        b"set-cookie",
        b"cookie",
        b"cache-control",
        b"expect",
        b"max-forwards",
        b"range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
        b"content-encoding",
        b"content-type",
        b"content-range",
        b"location",
        b"retry-after",
        b"vary",
        b"age",
        b"expires",
        b"date",
    ];
    FORBIDDEN.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// The app's `content-length`, if it is one number.
pub(crate) fn parse_content_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_control_fields_are_not_trailers() {
        assert!(forbidden_trailer(b"Content-Length") && !forbidden_trailer(b"x-checksum"));
    }

    #[test]
    fn a_content_length_is_digits_only() {
        assert_eq!(parse_content_length(b" 42 "), Some(42));
        assert_eq!(parse_content_length(b"+5"), None);
        assert_eq!(parse_content_length(b"1,1"), None);
        assert_eq!(parse_content_length(b"99999999999999999999"), None);
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
    fn statuses_headers_and_trailers_are_checked() {
        assert!(check_final_status(200).is_ok() && check_final_status(999).is_ok());
        for bad in [0, 100, 103, 199, 1000] {
            assert!(check_final_status(bad).is_err(), "{bad}");
        }
        assert!(check_headers(&Headers::new().with("x-ok", "caf\u{e9}\tv")).is_ok());
        for (n, v) in [
            ("x-bad", "a\r\nb"),
            ("bad name", "v"),
            ("x", "nul\0"),
            ("", "v"),
        ] {
            assert!(
                check_headers(&Headers::new().with(n, v)).is_err(),
                "{n:?} {v:?}"
            );
        }
        assert!(check_trailers(&Headers::new().with("x-checksum", "1")).is_ok());
        let e = check_trailers(&Headers::new().with("Content-Length", "1")).unwrap_err();
        assert!(e.message().contains("must not be sent as a trailer"), "{e}");
    }
}
