//! UTF-8 validation: whole messages ([`text`], the workspace's one `unsafe` block) and
//! incremental validation that builds the `String` of a fragmented or compressed message.
//!
//! Each byte is validated once: `simdutf8` validates whole characters and hands back the `&str`
//! that is appended (no second validation to build the `String`). A character
//! split across chunks is carried over in a 4-byte buffer and checked with `std` (a few bytes);
//! a chunk that ends in a prefix which can never become valid fails at once (fast fail).

use bytes::Bytes;
use bytestring::ByteString;

/// Validate `bytes` as a whole (SIMD-accelerated where the CPU allows).
pub(crate) fn validate(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// `bytes` as text, if they are UTF-8: validated once, by `simdutf8`, and not copied.
///
/// The workspace's one `unsafe` block. The safe alternatives cost a second validation
/// (`ByteString::try_from` runs `std`'s validator after ours) or a copy (`String`); the
/// figures are in `docs/decisions.md`.
#[allow(unsafe_code)]
pub(crate) fn text(bytes: Bytes) -> Option<ByteString> {
    validate(&bytes)?;
    // SAFETY: `from_bytes_unchecked` requires `bytes` to be valid UTF-8. `validate` just
    // checked exactly these bytes (it returns `None` otherwise), and `Bytes` is immutable:
    // no handle can change them afterwards (`BytesMut` views of the same allocation never
    // overlap a frozen range).
    Some(unsafe { ByteString::from_bytes_unchecked(bytes) })
}

/// Length of the UTF-8 sequence introduced by `b`; 1 for ASCII and for bytes that cannot start
/// a sequence (the validator then reports them).
fn seq_len(b: u8) -> usize {
    match b {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Where a chunk can be cut so that the head holds only whole characters: the start of a
/// trailing incomplete sequence (at most 3 bytes), or `buf.len()`.
fn complete_prefix_len(buf: &[u8]) -> usize {
    let n = buf.len();
    for back in 1..=n.min(3) {
        let b = buf[n - back];
        if b & 0xC0 != 0x80 {
            // `b` starts a sequence (or is ASCII / invalid).
            return if seq_len(b) > back { n - back } else { n };
        }
    }
    n
}

/// True if `tail` (1–3 bytes) is a prefix of some valid UTF-8 sequence.
fn is_valid_prefix(tail: &[u8]) -> bool {
    match std::str::from_utf8(tail) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// Accumulates validated text.
#[derive(Debug, Default)]
pub(crate) struct Utf8Acc {
    text: String,
    pending: [u8; 4],
    pending_len: u8,
}

/// The input is not UTF-8.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct InvalidUtf8;

impl Utf8Acc {
    /// Bytes accepted so far (including an incomplete trailing sequence).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.text.len() + usize::from(self.pending_len)
    }

    /// Bytes of memory the accumulated text holds.
    pub(crate) fn capacity(&self) -> usize {
        self.text.capacity()
    }

    /// Validate and append `chunk`. A trailing incomplete sequence is kept for the next call.
    pub(crate) fn push(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let need = seq_len(self.pending[0]);
            let take = (need - have).min(chunk.len());
            let mut tmp = self.pending;
            tmp[have..have + take].copy_from_slice(&chunk[..take]);
            let total = have + take;
            chunk = &chunk[take..];
            if total < need {
                if !is_valid_prefix(&tmp[..total]) {
                    return Err(InvalidUtf8);
                }
                self.pending = tmp;
                self.pending_len = total as u8;
                return Ok(());
            }
            match std::str::from_utf8(&tmp[..total]) {
                Ok(s) => self.text.push_str(s),
                Err(_) => return Err(InvalidUtf8),
            }
            self.pending_len = 0;
        }
        let cut = complete_prefix_len(chunk);
        let (head, tail) = chunk.split_at(cut);
        match validate(head) {
            Some(s) => self.text.push_str(s),
            None => return Err(InvalidUtf8),
        }
        if !tail.is_empty() {
            if !is_valid_prefix(tail) {
                return Err(InvalidUtf8);
            }
            self.pending[..tail.len()].copy_from_slice(tail);
            self.pending_len = tail.len() as u8;
        }
        Ok(())
    }

    /// The complete text; fails if it ends inside a character.
    pub(crate) fn finish(self) -> Result<String, InvalidUtf8> {
        if self.pending_len > 0 {
            return Err(InvalidUtf8);
        }
        Ok(self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(chunks: &[&[u8]]) -> Result<String, (usize, InvalidUtf8)> {
        let mut acc = Utf8Acc::default();
        for (i, c) in chunks.iter().enumerate() {
            acc.push(c).map_err(|e| (i, e))?;
        }
        acc.finish().map_err(|e| (chunks.len(), e))
    }

    #[test]
    fn every_split_of_valid_text() {
        let s = "κόσμε a€𝄞ü\u{10FFFF}x\u{7FF}\u{800}\u{FFFF}";
        let b = s.as_bytes();
        for i in 0..=b.len() {
            for j in i..=b.len() {
                assert_eq!(feed(&[&b[..i], &b[i..j], &b[j..]]).unwrap(), s, "{i} {j}");
            }
        }
        // One byte at a time.
        let chunks: Vec<&[u8]> = b.chunks(1).collect();
        assert_eq!(feed(&chunks).unwrap(), s);
    }

    #[test]
    fn fails_fast_on_invalid_prefix() {
        // "κόσμε" then an invalid byte, then more text: fails on the chunk with the bad byte.
        let good = "κόσμε".as_bytes();
        assert_eq!(feed(&[good, &[0xF4, 0x90], b"rest"]), Err((1, InvalidUtf8)));
        // A surrogate prefix (ED A0) split at a boundary fails when the second byte shows up.
        assert_eq!(feed(&[b"ab\xED", b"\xA0", b"\x80"]), Err((1, InvalidUtf8)));
        // An overlong lead byte fails at once, even alone at the end of a chunk.
        assert_eq!(feed(&[b"ab\xC0"]), Err((0, InvalidUtf8)));
        assert_eq!(feed(&[b"\xF5"]), Err((0, InvalidUtf8)));
        // Stray continuation byte.
        assert_eq!(feed(&[b"a", b"\x80"]), Err((1, InvalidUtf8)));
        // Incomplete at the very end of the message.
        assert_eq!(feed(&[b"a\xE2\x82"]), Err((1, InvalidUtf8)));
        // A valid prefix carried over several chunks, then broken.
        assert_eq!(
            feed(&[b"\xF0", b"\x9F", b"\x98", b"x"]),
            Err((3, InvalidUtf8))
        );
        assert_eq!(feed(&[b"\xF0", b"\x9F", b"\x98", b"\x80"]).unwrap(), "😀");
    }

    #[test]
    fn text_is_validated_and_not_copied() {
        let b = Bytes::from("κόσμε and more".to_owned());
        let ptr = b.as_ptr();
        let t = text(b).expect("valid");
        assert_eq!(&*t, "κόσμε and more");
        assert_eq!(t.as_ptr(), ptr, "no copy");
        assert!(text(Bytes::from_static(b"ab\xC0")).is_none());
        assert!(
            text(Bytes::from_static(b"\xED\xA0\x80")).is_none(),
            "surrogate"
        );
        assert!(
            text(Bytes::from_static(b"a\xE2\x82")).is_none(),
            "cut short"
        );
        assert_eq!(&*text(Bytes::new()).expect("empty is valid"), "");
    }

    #[test]
    fn len_counts_pending() {
        let mut acc = Utf8Acc::default();
        acc.push(b"a\xE2\x82").unwrap();
        assert_eq!(acc.len(), 3);
        acc.push(b"\xAC").unwrap();
        assert_eq!(acc.finish().unwrap(), "a€");
    }
}
