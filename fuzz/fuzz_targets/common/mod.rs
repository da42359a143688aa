//! Helpers shared by the fuzz targets: an input reader, a client-side frame builder, a strict
//! parser for what the server writes, and a checked drain of the session's output queue.
#![allow(dead_code)]

use std::io::IoSlice;

use pagi_ws::Session;

/// Reads the fuzz input front to back; past the end every read yields zeros / empty slices, so
/// any input is a valid program.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

// A client frame with the given first byte, masked with `mask` (the helper the pagi-ws
// examples use too).
#[path = "../../../crates/pagi-ws/examples/support/client_frame.rs"]
mod client_frame_impl;
#[allow(unused_imports)] // not every target plays the client
pub(crate) use client_frame_impl::client_frame;

/// One frame as the server wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFrame {
    /// First header byte (FIN, RSV1, opcode).
    pub b0: u8,
    pub payload: Vec<u8>,
}

/// Close codes a server may put on the wire (RFC 6455 §7.4).
pub fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parse everything the server wrote. Panics unless every frame is a valid, complete,
/// unmasked server frame with a minimal length encoding: FIN set (the server never
/// fragments), RSV2/RSV3 clear, RSV1 only on data frames and only when `rsv1_allowed`, a known
/// opcode, control payloads ≤ 125 bytes, Close payloads empty or a sendable code plus UTF-8,
/// uncompressed text UTF-8, and nothing after the server's Close.
pub fn parse_server_output(mut w: &[u8], rsv1_allowed: bool) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    while !w.is_empty() {
        assert!(
            frames
                .last()
                .is_none_or(|f: &ServerFrame| f.b0 & 0x0F != 0x8),
            "server wrote a frame after its Close"
        );
        assert!(w.len() >= 2, "truncated server frame header");
        let (b0, b1) = (w[0], w[1]);
        assert_eq!(b0 & 0x80, 0x80, "server frame without FIN: {b0:#04x}");
        assert_eq!(b0 & 0x30, 0, "RSV2/RSV3 set by the server: {b0:#04x}");
        assert_eq!(b1 & 0x80, 0, "server frame is masked");
        let opcode = b0 & 0x0F;
        assert!(
            matches!(opcode, 0x1 | 0x2 | 0x8 | 0x9 | 0xA),
            "bad server opcode {opcode:#x}"
        );
        let control = opcode & 0x8 != 0;
        if b0 & 0x40 != 0 {
            assert!(rsv1_allowed, "RSV1 without deflate");
            assert!(!control, "RSV1 on a control frame");
        }
        let (len, at) = match b1 & 0x7F {
            126 => {
                assert!(w.len() >= 4, "truncated 16-bit length");
                let l = u16::from_be_bytes([w[2], w[3]]) as usize;
                assert!(l >= 126, "non-minimal 16-bit length {l}");
                (l, 4)
            }
            127 => {
                assert!(w.len() >= 10, "truncated 64-bit length");
                let l = u64::from_be_bytes(w[2..10].try_into().unwrap());
                assert!(l > 0xFFFF, "non-minimal 64-bit length {l}");
                assert!(l >> 63 == 0, "64-bit length with the top bit set");
                (l as usize, 10)
            }
            n => (n as usize, 2),
        };
        assert!(w.len() - at >= len, "truncated server frame payload");
        let payload = &w[at..at + len];
        if control {
            assert!(len <= 125, "control frame of {len} bytes");
        }
        if opcode == 0x8 {
            assert_ne!(len, 1, "Close with a 1-byte payload");
            if len >= 2 {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                assert!(
                    is_sendable_close_code(code),
                    "Close code {code} on the wire"
                );
                assert!(
                    std::str::from_utf8(&payload[2..]).is_ok(),
                    "Close reason is not UTF-8"
                );
            }
        }
        if opcode == 0x1 && b0 & 0x40 == 0 {
            assert!(
                std::str::from_utf8(payload).is_ok(),
                "text frame is not UTF-8"
            );
        }
        frames.push(ServerFrame {
            b0,
            payload: payload.to_vec(),
        });
        w = &w[at + len..];
    }
    frames
}

/// The session's pending output as `(address, length)` of each slice (growing the slice array
/// until it is big enough), checking that their total is `buffered()` and none is empty.
fn listing(s: &Session) -> Vec<(usize, usize)> {
    let mut cap = 8;
    loop {
        let mut slots = vec![IoSlice::new(&[]); cap];
        let n = s.chunks_vectored(&mut slots);
        assert!(n <= cap);
        if n < cap {
            let v: Vec<(usize, usize)> = slots[..n]
                .iter()
                .map(|sl| (sl.as_ptr() as usize, sl.len()))
                .collect();
            assert!(
                v.iter().all(|&(_, l)| l > 0),
                "chunks_vectored yielded an empty slice"
            );
            let total: usize = v.iter().map(|&(_, l)| l).sum();
            assert_eq!(total, s.buffered(), "chunks_vectored total != buffered()");
            return v;
        }
        cap *= 4;
    }
}

/// Up to `n` bytes of the pending output starting at byte `from`.
fn peek(s: &Session, from: usize, n: usize) -> Vec<u8> {
    let mut slots = vec![IoSlice::new(&[]); listing(s).len()];
    let k = s.chunks_vectored(&mut slots);
    let mut out = Vec::new();
    let mut skip = from;
    for sl in &slots[..k] {
        if skip >= sl.len() {
            skip -= sl.len();
            continue;
        }
        let part = &sl[skip..];
        skip = 0;
        out.extend_from_slice(&part[..part.len().min(n - out.len())]);
        if out.len() == n {
            break;
        }
    }
    out
}

/// Write at most `max` bytes as a socket would, using a slice array of `slots` entries (≥ 1),
/// appending them to `wire`. Checks `chunks_vectored`/`advance`/`buffered` consistency: a
/// short slice array yields a prefix of the full listing, and after `advance(k)` the output
/// continues exactly `k` bytes further on.
pub fn write_some(s: &mut Session, wire: &mut Vec<u8>, slots: usize, max: usize) {
    let before = s.buffered();
    let full = listing(s);
    let slots = slots.max(1);
    let mut arr = vec![IoSlice::new(&[]); slots];
    let n = s.chunks_vectored(&mut arr);
    assert_eq!(n, slots.min(full.len()), "slices filled");
    let mut k = 0;
    for (i, sl) in arr[..n].iter().enumerate() {
        assert_eq!(
            (sl.as_ptr() as usize, sl.len()),
            full[i],
            "a short slice array is not a prefix of the full listing"
        );
        let take = sl.len().min(max - k);
        wire.extend_from_slice(&sl[..take]);
        k += take;
    }
    let next = peek(s, k, 64);
    s.advance(k);
    assert_eq!(
        s.buffered(),
        before - k,
        "advance({k}) did not drop {k} bytes"
    );
    assert!(
        peek(s, 0, 64) == next,
        "output after advance({k}) does not continue where it stopped"
    );
}

/// Write everything out (in pieces of varying size when `step` is not zero).
pub fn write_all(s: &mut Session, wire: &mut Vec<u8>, step: usize) {
    let mut i = 0usize;
    while s.buffered() > 0 {
        // A bounded number of partial writes, then the rest at once (keeps the cost linear).
        let max = if step == 0 || i >= 24 {
            usize::MAX
        } else {
            step + (i * 7919) % (step + 1)
        };
        write_some(s, wire, 1 + i % 3, max);
        i += 1;
    }
    let mut arr = [IoSlice::new(&[]); 4];
    assert_eq!(s.chunks_vectored(&mut arr), 0, "slices left after draining");
}
