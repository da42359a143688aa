//! Frame header parsing (client → server), header encoding (server → client) and masking.

use bytes::{BufMut, BytesMut};

pub(crate) const OP_CONTINUATION: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// First header byte flags.
pub(crate) const FIN: u8 = 0x80;
pub(crate) const RSV1: u8 = 0x40;

/// A parsed client frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    pub(crate) rsv1: bool,
    pub(crate) opcode: u8,
    pub(crate) mask: [u8; 4],
    pub(crate) len: u64,
}

/// Outcome of [`parse_header`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// More bytes are needed to read the whole header.
    Incomplete,
    /// A header, and how many input bytes it took.
    Header(Header, usize),
    /// The frame violates RFC 6455 regardless of connection state: fail with 1002.
    Invalid(&'static str),
}

/// True for close, ping and pong.
pub(crate) fn is_control(opcode: u8) -> bool {
    opcode & 0x8 != 0
}

/// Parse a client frame header from the start of `buf`.
///
/// Everything that can be judged from the header alone is checked here, as early as the bytes
/// allow (so a bad first byte fails before the rest of the header arrives): reserved opcodes,
/// RSV2/RSV3, RSV1 on control frames, fragmented or oversized control frames, a missing mask
/// and a 64-bit length with its most significant bit set. RSV1 on data frames, sequencing and
/// size limits depend on the session and are checked by it.
pub(crate) fn parse_header(buf: &[u8]) -> Parsed {
    let Some(&b0) = buf.first() else {
        return Parsed::Incomplete;
    };
    let fin = b0 & FIN != 0;
    let rsv1 = b0 & RSV1 != 0;
    let opcode = b0 & 0x0F;
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG => {}
        _ => return Parsed::Invalid("reserved opcode"),
    }
    if b0 & 0x30 != 0 {
        return Parsed::Invalid("reserved bits set");
    }
    let control = is_control(opcode);
    if control {
        if rsv1 {
            return Parsed::Invalid("RSV1 on control frame");
        }
        if !fin {
            return Parsed::Invalid("fragmented control frame");
        }
    }
    let Some(&b1) = buf.get(1) else {
        return Parsed::Incomplete;
    };
    if b1 & 0x80 == 0 {
        return Parsed::Invalid("unmasked client frame");
    }
    let len7 = b1 & 0x7F;
    if control && len7 > 125 {
        return Parsed::Invalid("control frame too long");
    }
    let (len, at) = match len7 {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Parsed::Incomplete;
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Parsed::Incomplete;
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let len = u64::from_be_bytes(a);
            if len >> 63 != 0 {
                return Parsed::Invalid("invalid 64-bit length");
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let Some(m) = buf.get(at..at + 4) else {
        return Parsed::Incomplete;
    };
    let mask = [m[0], m[1], m[2], m[3]];
    Parsed::Header(
        Header {
            fin,
            rsv1,
            opcode,
            mask,
            len,
        },
        at + 4,
    )
}

/// Append a server (unmasked) frame header.
pub(crate) fn put_header(dst: &mut BytesMut, b0: u8, len: usize) {
    if len < 126 {
        dst.put_slice(&[b0, len as u8]);
    } else if len <= 0xFFFF {
        let l = (len as u16).to_be_bytes();
        dst.put_slice(&[b0, 126, l[0], l[1]]);
    } else {
        dst.put_slice(&[b0, 127]);
        dst.put_u64(len as u64);
    }
}

/// Size of the server header for a payload of `len` bytes.
pub(crate) fn header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len <= 0xFFFF {
        4
    } else {
        10
    }
}

/// XOR `buf` with the masking key, `offset` being the position of `buf[0]` in the payload.
pub(crate) fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: u64) {
    let o = (offset & 3) as usize;
    let m = [
        mask[o],
        mask[(o + 1) & 3],
        mask[(o + 2) & 3],
        mask[(o + 3) & 3],
    ];
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(32);
    for c in &mut chunks {
        for w in c.chunks_exact_mut(8) {
            let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) ^ word;
            w.copy_from_slice(&v.to_ne_bytes());
        }
    }
    // 32 is a multiple of 4, so the remainder starts at mask phase 0 of `m`.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(bytes: &[u8]) -> Parsed {
        parse_header(bytes)
    }

    #[test]
    fn length_encodings() {
        let cases: [(Vec<u8>, u64, usize); 6] = [
            (vec![0x82, 0x80], 0, 6),
            (vec![0x82, 0x80 | 125], 125, 6),
            (vec![0x82, 0x80 | 126, 0, 126], 126, 8),
            (vec![0x82, 0x80 | 126, 0xFF, 0xFF], 65535, 8),
            (vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0], 65536, 14),
            (
                vec![
                    0x82,
                    0x80 | 127,
                    0x7F,
                    0xFF,
                    0xFF,
                    0xFF,
                    0xFF,
                    0xFF,
                    0xFF,
                    0xFF,
                ],
                (1 << 63) - 1,
                14,
            ),
        ];
        for (mut b, len, hl) in cases {
            b.extend_from_slice(&[1, 2, 3, 4]);
            // Every proper prefix is incomplete.
            for i in 0..b.len() {
                assert_eq!(hdr(&b[..i]), Parsed::Incomplete, "prefix {i} of {b:?}");
            }
            match hdr(&b) {
                Parsed::Header(h, n) => {
                    assert_eq!((h.len, n, h.mask), (len, hl, [1, 2, 3, 4]));
                    assert_eq!(h.opcode, OP_BINARY);
                    assert!(h.fin && !h.rsv1);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn header_rules() {
        assert_eq!(hdr(&[0x83]), Parsed::Invalid("reserved opcode"));
        assert_eq!(hdr(&[0x8B]), Parsed::Invalid("reserved opcode"));
        assert_eq!(hdr(&[0xA1]), Parsed::Invalid("reserved bits set"));
        assert_eq!(hdr(&[0x91]), Parsed::Invalid("reserved bits set"));
        assert_eq!(hdr(&[0xC9]), Parsed::Invalid("RSV1 on control frame"));
        assert_eq!(hdr(&[0x09]), Parsed::Invalid("fragmented control frame"));
        assert_eq!(
            hdr(&[0x89, 0x80 | 126]),
            Parsed::Invalid("control frame too long")
        );
        assert_eq!(hdr(&[0x81, 0x05]), Parsed::Invalid("unmasked client frame"));
        assert_eq!(
            hdr(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Parsed::Invalid("invalid 64-bit length")
        );
        // RSV1 on a data frame is left to the session.
        assert!(matches!(hdr(&[0xC1, 0x80, 0, 0, 0, 0]), Parsed::Header(h, 6) if h.rsv1));
    }

    #[test]
    fn server_headers() {
        for (len, want) in [
            (0usize, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65535, vec![0x81, 126, 0xFF, 0xFF]),
            (65536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut b = BytesMut::new();
            put_header(&mut b, 0x81, len);
            assert_eq!(&b[..], &want[..]);
            assert_eq!(header_len(len), want.len());
        }
    }

    #[test]
    fn mask_any_offset() {
        let data: Vec<u8> = (0..200u8).collect();
        let mask = [0x11, 0x22, 0x33, 0x44];
        let expect: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        for split in 0..data.len() {
            let mut d = data.clone();
            let (a, b) = d.split_at_mut(split);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, split as u64);
            assert_eq!(d, expect, "split at {split}");
        }
    }
}
