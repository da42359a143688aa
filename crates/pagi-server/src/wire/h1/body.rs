//! Request bodies (RFC 9112 §6–7): a decoder fed the connection's input,
//! handing out the body's bytes as they arrive (split off the input, not
//! copied) and stopping exactly at its end, so the next request's bytes
//! stay in the buffer.
//!
//! Chunked framing is read strictly: hex sizes without sign, prefix or
//! leading space, CRLF line endings (a bare LF is refused: it is how
//! request smuggling slips past lenient parsers), extensions and trailers
//! bounded and skipped (PAGI has no request trailers).

use bytes::{Buf, Bytes, BytesMut};

use super::head::Framing;

/// Extension bytes allowed over a whole chunked body (chunk-ext is never
/// used by real clients; a flood of it is an attack).
const MAX_EXTENSION_BYTES: usize = 16 * 1024;
/// Bytes allowed in the trailer section of a chunked body.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Significant hex digits of a chunk size (a u64).
const MAX_SIZE_DIGITS: u32 = 16;

/// What a decoder step produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes (never empty).
    Data(Bytes),
    /// More input is needed.
    NeedMore,
    /// The body is complete; its framing was consumed.
    End,
}

/// A body the client framed wrongly: 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyError(pub(crate) &'static str);

/// Decodes one request body.
#[derive(Debug)]
pub(crate) enum BodyDecoder {
    /// Bytes still to come of a `Content-Length` body.
    Length(u64),
    Chunked(Chunked),
    /// The body ended.
    Done,
}

impl BodyDecoder {
    pub(crate) fn new(framing: Framing) -> BodyDecoder {
        match framing {
            Framing::Empty => BodyDecoder::Done,
            Framing::Length(n) => BodyDecoder::Length(n),
            Framing::Chunked => BodyDecoder::Chunked(Chunked::default()),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }

    /// Bytes of body known to be still to come (`None` for chunked).
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self {
            BodyDecoder::Length(n) => Some(*n),
            BodyDecoder::Chunked(_) => None,
            BodyDecoder::Done => Some(0),
        }
    }

    /// Take at most `max` (> 0) body bytes from the front of `input`.
    pub(crate) fn decode(
        &mut self,
        input: &mut BytesMut,
        max: usize,
    ) -> Result<Decoded, BodyError> {
        match self {
            BodyDecoder::Done => Ok(Decoded::End),
            BodyDecoder::Length(left) => {
                if input.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len())
                    .min(max);
                *left -= n as u64;
                let data = input.split_to(n).freeze();
                if *left == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(Decoded::Data(data))
            }
            BodyDecoder::Chunked(c) => {
                let r = c.decode(input, max)?;
                if r == Decoded::End {
                    *self = BodyDecoder::Done;
                }
                Ok(r)
            }
        }
    }
}

/// Where a chunked decoder is in the framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The size's hex digits (at least one) so far.
    Size {
        size: u64,
        digits: u32,
    },
    /// Whitespace after the size, before `;`.
    SizeSpace {
        size: u64,
    },
    /// A chunk extension, up to the CR.
    Extension {
        size: u64,
    },
    /// The size line's CR was read: LF next.
    SizeLf {
        size: u64,
    },
    /// Chunk data still to come.
    Data {
        left: u64,
    },
    /// The CRLF after a chunk's data.
    DataCr,
    DataLf,
    /// The trailer section: at the start of a line.
    TrailerLineStart,
    /// Inside a trailer line.
    TrailerLine,
    /// A trailer line's CR was read.
    TrailerLf,
    /// The final empty line's CR was read.
    EndLf,
}

/// A chunked-body decoder.
#[derive(Clone, Debug)]
pub(crate) struct Chunked {
    step: Step,
    extension_bytes: usize,
    trailer_bytes: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            step: Step::Size { size: 0, digits: 0 },
            extension_bytes: 0,
            trailer_bytes: 0,
        }
    }
}

fn error(why: &'static str) -> BodyError {
    BodyError(why)
}

impl Chunked {
    fn decode(&mut self, input: &mut BytesMut, max: usize) -> Result<Decoded, BodyError> {
        loop {
            if let Step::Data { left } = self.step {
                if input.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(input.len())
                    .min(max);
                let left = left - n as u64;
                self.step = if left == 0 {
                    Step::DataCr
                } else {
                    Step::Data { left }
                };
                return Ok(Decoded::Data(input.split_to(n).freeze()));
            }
            let Some(&b) = input.first() else {
                return Ok(Decoded::NeedMore);
            };
            input.advance(1);
            self.step = match (self.step, b) {
                (Step::Size { size, digits }, _) if b.is_ascii_hexdigit() => {
                    // Leading zeros do not count against the digit limit.
                    let digits = if size == 0 { 0 } else { digits + 1 };
                    if digits > MAX_SIZE_DIGITS {
                        return Err(error("Chunk size too large"));
                    }
                    let d = (b as char).to_digit(16).unwrap_or(0);
                    Step::Size {
                        size: size * 16 + u64::from(d),
                        digits: digits.max(1),
                    }
                }
                // Anything but a digit first (sign, space, "0x" aside).
                (Step::Size { digits: 0, .. }, _) => return Err(error("Invalid chunk size")),
                (Step::Size { size, .. } | Step::SizeSpace { size }, b' ' | b'\t') => {
                    Step::SizeSpace { size }
                }
                (Step::Size { size, .. } | Step::SizeSpace { size }, b';') => {
                    Step::Extension { size }
                }
                (Step::Size { size, .. }, b'\r') => Step::SizeLf { size },
                (Step::Size { .. } | Step::SizeSpace { .. }, _) => {
                    return Err(error("Invalid chunk size"));
                }
                (Step::Extension { size }, b'\r') => Step::SizeLf { size },
                (Step::Extension { size }, _) => {
                    self.extension_bytes += 1;
                    if self.extension_bytes > MAX_EXTENSION_BYTES {
                        return Err(error("Chunk extensions too long"));
                    }
                    // Visible characters, space and tab, obs-text.
                    if b != b'\t' && (b < 0x20 || b == 0x7f) {
                        return Err(error("Invalid chunk extension"));
                    }
                    Step::Extension { size }
                }
                (Step::SizeLf { size: 0 }, b'\n') => Step::TrailerLineStart,
                (Step::SizeLf { size }, b'\n') => Step::Data { left: size },
                (Step::DataCr, b'\r') => Step::DataLf,
                (Step::DataLf, b'\n') => Step::Size { size: 0, digits: 0 },
                (Step::SizeLf { .. } | Step::DataCr | Step::DataLf, _) => {
                    return Err(error("Invalid chunk framing: CRLF expected"));
                }
                (Step::TrailerLineStart, b'\r') => Step::EndLf,
                (Step::EndLf, b'\n') => return Ok(Decoded::End),
                (Step::EndLf, _) => return Err(error("Invalid chunked trailer")),
                (Step::TrailerLine, b'\r') => Step::TrailerLf,
                (Step::TrailerLf, b'\n') => Step::TrailerLineStart,
                (Step::TrailerLf, _) => return Err(error("Invalid chunked trailer")),
                (Step::TrailerLineStart | Step::TrailerLine, _) => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_TRAILER_BYTES {
                        return Err(error("Chunked trailer section too large"));
                    }
                    if b == b'\n' || (b != b'\t' && (b < 0x20 || b == 0x7f)) {
                        return Err(error("Invalid chunked trailer"));
                    }
                    Step::TrailerLine
                }
                (Step::Data { .. }, _) => unreachable!("handled above"),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `wire` in pieces of `step` bytes; the body, or the error.
    fn decode_in_steps(
        wire: &[u8],
        step: usize,
        max: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), BodyError> {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut input = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut input, max)? {
                Decoded::Data(b) => {
                    assert!(!b.is_empty() && b.len() <= max);
                    body.extend_from_slice(&b);
                }
                Decoded::End => return Ok((body, input.to_vec())),
                Decoded::NeedMore => {
                    if fed == wire.len() {
                        return Err(BodyError("incomplete"));
                    }
                    let n = step.min(wire.len() - fed);
                    input.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_in_any_split() {
        let wire = b"5\r\nhello\r\n1;name=value\r\n \r\nA\r\n0123456789\r\n000\r\nX-Trailer: t\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, wire.len()] {
            for max in [1, 4, 1 << 20] {
                let (body, rest) = decode_in_steps(wire, step, max).unwrap();
                assert_eq!(body, b"hello 0123456789", "step {step} max {max}");
                // The decoder stops exactly at the end of the body.
                let consumed = wire.len() - (wire.len() - rest.len());
                assert!(
                    rest.is_empty() || rest == b"NEXT"[..rest.len()],
                    "{consumed}"
                );
            }
        }
        let (_, rest) = decode_in_steps(wire, wire.len(), 1 << 20).unwrap();
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        for wire in [
            &b"zz\r\n"[..],
            b"-1\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"\r\nhello\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"0\r\nbad\ntrailer\r\n\r\n",
            b"0\r\n\rx",
        ] {
            let r = decode_in_steps(wire, 1, 1 << 20);
            assert!(
                matches!(r, Err(BodyError(why)) if why != "incomplete"),
                "{:?}: {r:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn sizes_up_to_sixteen_hex_digits_and_leading_zeros_are_fine() {
        let mut d = Chunked::default();
        let mut input = BytesMut::from(&b"00000000000000000000ffffffffffffffff\r\n"[..]);
        assert_eq!(d.decode(&mut input, 1).unwrap(), Decoded::NeedMore);
        assert_eq!(d.step, Step::Data { left: u64::MAX });
    }

    #[test]
    fn extensions_and_trailers_are_bounded() {
        let long_ext = format!(
            "1;{}\r\na\r\n0\r\n\r\n",
            "x".repeat(MAX_EXTENSION_BYTES + 1)
        );
        assert_eq!(
            decode_in_steps(long_ext.as_bytes(), 4096, 1 << 20),
            Err(BodyError("Chunk extensions too long"))
        );
        let long_trailer = format!("0\r\nx: {}\r\n\r\n", "y".repeat(MAX_TRAILER_BYTES));
        assert_eq!(
            decode_in_steps(long_trailer.as_bytes(), 4096, 1 << 20),
            Err(BodyError("Chunked trailer section too large"))
        );
    }

    #[test]
    fn a_length_body_stops_at_its_end() {
        let mut d = BodyDecoder::new(Framing::Length(5));
        let mut input = BytesMut::from(&b"helloGET"[..]);
        assert_eq!(
            d.decode(&mut input, 3).unwrap(),
            Decoded::Data(Bytes::from("hel"))
        );
        assert_eq!(d.remaining(), Some(2));
        assert_eq!(
            d.decode(&mut input, 3).unwrap(),
            Decoded::Data(Bytes::from("lo"))
        );
        assert!(d.is_done());
        assert_eq!(d.decode(&mut input, 3).unwrap(), Decoded::End);
        assert_eq!(&input[..], b"GET");
        let mut empty = BodyDecoder::new(Framing::Empty);
        assert_eq!(empty.decode(&mut input, 3).unwrap(), Decoded::End);
    }
}
