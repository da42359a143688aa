//! permessage-deflate: a `Session` with `DeflateParams` taken from the input, driven by a
//! client written here on flate2.
//!
//! Input layout: `[flags] [server bits] [client bits] [cfg] ops…`:
//! * flags bit 0 `server_no_context_takeover`, bit 1 `client_no_context_takeover`;
//!   server bits 9 + b % 7, client bits 8 + b % 8 (the ranges negotiation produces);
//! * cfg: bits 0-2 `max_message_size`, bits 3-4 `compress_min_size`, bits 5-6 level;
//! * ops (until the input ends): a message compressed by the client (possibly fragmented, with
//!   pings between fragments), arbitrary bytes sent as a compressed message, a client-compressed
//!   message with a byte flipped / truncated, a plain message, and a server `send` round trip.
//!
//! Checked:
//! * valid compressed messages decode to exactly what the client compressed, or fail with
//!   1009 (over `max_message_size`, compressed or not) / 1007 (text that is not UTF-8);
//! * arbitrary compressed input never panics, only fails with 1007/1009, never yields a
//!   message over the limit, and peak heap growth while decoding it stays below
//!   2 × max_message_size + 1 MiB (decompression bombs are cut off);
//! * every failure puts a Close with its code on the wire, and nothing follows it;
//! * every message the server sends is one valid unmasked frame that the client's inflater
//!   (window = the negotiated `server_max_window_bits`, reset per message when
//!   `server_no_context_takeover`) turns back into the original; it is compressed (RSV1)
//!   whenever it must be (context takeover and at least `compress_min_size`) and never below
//!   `compress_min_size`.
#![no_main]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::{Bytes, BytesMut};
use common::{client_frame, parse_server_output, write_all, Reader, ServerFrame};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use libfuzzer_sys::fuzz_target;
use pagi_ws::{DeflateParams, Event, Message, Session, SessionConfig};

// ----------------------------------------------------------------------------------------------
// Heap accounting (current and peak bytes), to bound what a decompression bomb can cost.

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is `System`'s; the only addition is relaxed counter arithmetic, which
// neither allocates nor touches the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        CURRENT.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            CURRENT.fetch_sub(l.size(), Relaxed);
            grew(new);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// ----------------------------------------------------------------------------------------------

const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];
const MAX_SIZES: [usize; 8] = [16 << 20, 0, 100, 1000, 65_536, 300_000, 1 << 20, 16 << 20];
const MIN_SIZES: [usize; 4] = [128, 0, 1, 4096];
const LEVELS: [u32; 4] = [1, 0, 6, 9];
/// Plaintexts (bomb-sized ones come from repetition) are kept below this, in all, per input:
/// enough to exceed every `max_message_size` but 16 MiB, and keeps the runs fast.
const PLAIN_BUDGET: usize = 3 << 19;

/// Raw deflate with a sync flush, the `00 00 ff ff` tail stripped (RFC 7692 §7.2.1).
fn client_deflate(c: &mut Compress, mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let before = c.total_in();
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        data = &data[(c.total_in() - before) as usize..];
        if data.is_empty() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(256));
    }
    if out.is_empty() {
        // Empty input right after a flush: RFC 7692 §7.2.3.6.
        return vec![0x00];
    }
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - 4);
    out
}

/// Inflate one server message (tail appended), as a client would.
fn client_inflate(d: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let input = [payload, &TAIL[..]].concat();
    let mut rest = &input[..];
    let mut out = Vec::with_capacity(payload.len() * 4 + 64);
    loop {
        let before = d.total_in();
        d.decompress_vec(rest, &mut out, FlushDecompress::Sync)
            .unwrap_or_else(|e| panic!("server output does not inflate: {e}"));
        rest = &rest[(d.total_in() - before) as usize..];
        if rest.is_empty() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity().max(1024));
    }
}

struct Peer {
    params: DeflateParams,
    config: SessionConfig,
    max: usize,
    min: usize,
    s: Session,
    /// The client's compressor.
    c: Compress,
    /// The client's decompressor for server messages.
    d: Decompress,
    /// The server's decompressor has seen exactly what the client's compressor produced.
    in_sync: bool,
    /// Server output not yet checked.
    wire: Vec<u8>,
    /// Data frames the server must send, in order, with pongs for our pings in between.
    expected_pongs: Vec<Vec<u8>>,
    expected_msgs: Vec<Message>,
}

impl Peer {
    fn new(params: DeflateParams, cfg: u8) -> Peer {
        let max = MAX_SIZES[usize::from(cfg & 7)];
        let min = MIN_SIZES[usize::from((cfg >> 3) & 3)];
        let config = SessionConfig {
            max_message_size: max,
            deflate: Some(params.clone()),
            compress_min_size: min,
            compress_level: LEVELS[usize::from((cfg >> 5) & 3)],
            ..SessionConfig::default()
        };
        Peer {
            s: Session::new(config.clone()),
            c: Compress::new_with_window_bits(
                Compression::new(u32::from(cfg >> 7) * 6),
                false,
                params.client_max_window_bits.max(9),
            ),
            d: Decompress::new_with_window_bits(false, params.server_max_window_bits),
            params,
            config,
            max,
            min,
            in_sync: true,
            wire: Vec::new(),
            expected_pongs: Vec::new(),
            expected_msgs: Vec::new(),
        }
    }

    /// After a failure: a new connection with the same settings.
    fn reconnect(&mut self) {
        self.drain_and_check(0);
        self.s = Session::new(self.config.clone());
        self.c.reset();
        self.d = Decompress::new_with_window_bits(false, self.params.server_max_window_bits);
        self.in_sync = true;
    }

    fn compress(&mut self, plain: &[u8]) -> Vec<u8> {
        let out = client_deflate(&mut self.c, plain);
        if self.params.client_no_context_takeover {
            self.c.reset();
        }
        out
    }

    /// Feed client bytes in chunks of `chunk` (0 = all at once); returns the events.
    fn feed(&mut self, bytes: &[u8], chunk: usize) -> Vec<Event> {
        let chunk = if chunk == 0 {
            bytes.len().max(1)
        } else {
            chunk
        };
        let mut input = BytesMut::with_capacity(chunk.min(bytes.len()).max(1));
        let mut evs = Vec::new();
        for piece in bytes.chunks(chunk) {
            input.extend_from_slice(piece);
            while let Some(e) = self.s.read_event(&mut input) {
                assert!(
                    !matches!(evs.last(), Some(Event::Failed { .. } | Event::Close { .. })),
                    "event after a failure: {e:?}"
                );
                match &e {
                    Event::Message(m) => {
                        let n = match m {
                            Message::Text(t) => t.len(),
                            Message::Binary(b) => b.len(),
                        };
                        assert!(n <= self.max, "message of {n} bytes over {}", self.max);
                    }
                    Event::Ping(p) => self.expected_pongs.push(p.to_vec()),
                    Event::Failed { code, .. } => {
                        assert!(matches!(code, 1007 | 1009), "failure code {code}")
                    }
                    Event::Pong(_) => {}
                    Event::Close { .. } => panic!("no Close was sent"),
                }
                evs.push(e);
            }
        }
        evs
    }

    /// Frames for one message: the first with `b0`, the payload split in `nfrag` pieces, a
    /// ping after every fragment but the last when `pings`.
    /// Returns the bytes and the number of pings.
    fn frames(
        b0: u8,
        payload: &[u8],
        nfrag: usize,
        pings: bool,
        mask: [u8; 4],
    ) -> (Vec<u8>, usize) {
        let mut wire = Vec::new();
        let step = payload.len().div_ceil(nfrag).max(1);
        let pieces: Vec<&[u8]> = if payload.is_empty() {
            vec![&[][..]]
        } else {
            payload.chunks(step).collect()
        };
        for (i, p) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            let mut b = if i == 0 { b0 & 0x7F } else { 0x00 };
            if last {
                b |= 0x80;
            }
            wire.extend(client_frame(b, p, Some(mask)));
            if pings && !last {
                wire.extend(client_frame(0x89, &[i as u8; 3], Some(mask)));
            }
        }
        (wire, if pings { pieces.len() - 1 } else { 0 })
    }

    /// Handle the outcome of a message: on failure, check its Close and reconnect.
    fn outcome(&mut self, evs: &[Event]) -> Option<Message> {
        let last = evs.iter().rfind(|e| !matches!(e, Event::Ping(_)));
        match last {
            Some(Event::Failed { code, .. }) => {
                let code = *code;
                let frames = self.drain_and_check(0);
                let close = frames.last().expect("no Close after a failure");
                assert_eq!(close.b0, 0x88);
                assert_eq!(&close.payload[..2], &code.to_be_bytes());
                self.reconnect();
                None
            }
            Some(Event::Message(m)) => Some(m.clone()),
            other => panic!("message not decoded: {other:?} (all: {evs:?})"),
        }
    }

    /// Write out everything queued; checks the frames against what is expected.
    fn drain_and_check(&mut self, step: usize) -> Vec<ServerFrame> {
        write_all(&mut self.s, &mut self.wire, step);
        let frames = parse_server_output(&self.wire, true);
        self.wire.clear();
        for f in &frames {
            match f.b0 & 0x0F {
                0xA => {
                    assert!(!self.expected_pongs.is_empty(), "unexpected pong");
                    assert_eq!(f.payload, self.expected_pongs.remove(0), "pong payload");
                }
                0x8 => self.expected_pongs.clear(),
                op @ (0x1 | 0x2) => {
                    assert!(!self.expected_msgs.is_empty(), "unexpected data frame");
                    let want = self.expected_msgs.remove(0);
                    let (wop, wbytes) = match &want {
                        Message::Text(t) => (0x1, &t.as_bytes()[..]),
                        Message::Binary(b) => (0x2, &b[..]),
                    };
                    assert_eq!(op, wop, "opcode");
                    let got = if f.b0 & 0x40 != 0 {
                        assert!(
                            wbytes.len() >= self.min,
                            "compressed below compress_min_size"
                        );
                        if self.params.server_no_context_takeover {
                            // A fresh inflater proves that no context is needed.
                            self.d = Decompress::new_with_window_bits(
                                false,
                                self.params.server_max_window_bits,
                            );
                        }
                        client_inflate(&mut self.d, &f.payload)
                    } else {
                        assert!(
                            wbytes.len() < self.min || self.params.server_no_context_takeover,
                            "uncompressed {} bytes with context takeover",
                            wbytes.len()
                        );
                        f.payload.clone()
                    };
                    assert!(
                        got == wbytes,
                        "round trip changed a {}-byte message",
                        wbytes.len()
                    );
                }
                op => panic!("unexpected server opcode {op:#x}"),
            }
        }
        frames
    }
}

/// A plaintext from the input: `len` bytes repeated to a size chosen by the input, within
/// what is left of the input's `budget`.
fn plaintext(r: &mut Reader<'_>, budget: &mut usize) -> Vec<u8> {
    let len = usize::from(r.u16() % 1024);
    let rep = usize::from(r.u8());
    let rep = 1 + rep * rep / 32;
    let unit = r.take(len);
    let size = (unit.len() * rep).min((*budget).max(unit.len()));
    *budget = budget.saturating_sub(size);
    let mut v = Vec::with_capacity(size);
    while v.len() < size {
        v.extend_from_slice(&unit[..unit.len().min(size - v.len())]);
    }
    v
}

fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    let params = DeflateParams {
        server_no_context_takeover: flags & 1 != 0,
        client_no_context_takeover: flags & 2 != 0,
        server_max_window_bits: 9 + r.u8() % 7,
        client_max_window_bits: 8 + r.u8() % 8,
    };
    let cfg = r.u8();
    let mut p = Peer::new(params, cfg);
    let mask = [0x5A, 0x17, 0xC3, 0x00];
    let mut budget = PLAIN_BUDGET;

    while !r.is_empty() {
        let kind = r.u8();
        let text = kind & 0x08 != 0;
        let nfrag = usize::from(kind >> 4) % 4 + 1;
        let pings = kind & 0x80 != 0;
        let opcode = if text { 0x1 } else { 0x2 };
        match kind % 5 {
            0 => {
                // A valid compressed message.
                let plain = plaintext(&mut r, &mut budget);
                let chunk = usize::from(r.u8());
                let payload = p.compress(&plain);
                let (wire, npings) = Peer::frames(0x40 | opcode, &payload, nfrag, pings, mask);
                let evs = p.feed(&wire, chunk);
                let over = plain.len() > p.max || payload.len() > p.max;
                let bad_text = text && std::str::from_utf8(&plain).is_err();
                let checked = p.in_sync;
                match p.outcome(&evs) {
                    Some(m) => {
                        assert!(
                            !over,
                            "{} bytes ({} compressed) accepted",
                            plain.len(),
                            payload.len()
                        );
                        if checked {
                            assert!(!bad_text, "invalid UTF-8 accepted");
                            let got = match &m {
                                Message::Text(t) => &t.as_bytes()[..],
                                Message::Binary(b) => &b[..],
                            };
                            assert!(got == &plain[..], "compressed message decoded wrongly");
                            assert_eq!(matches!(m, Message::Text(_)), text);
                            assert_eq!(
                                evs.iter().filter(|e| matches!(e, Event::Ping(_))).count(),
                                npings
                            );
                        }
                    }
                    None if !checked => {}
                    None => {
                        let Some(Event::Failed { code, .. }) = evs.last() else {
                            unreachable!()
                        };
                        assert!(
                            (*code == 1009 && over) || (*code == 1007 && bad_text),
                            "valid message failed with {code} (over {over}, bad text {bad_text})"
                        );
                    }
                }
            }
            1 | 2 => {
                // Arbitrary or damaged compressed data.
                let payload = if kind % 5 == 1 {
                    let n = usize::from(r.u16() % 2048);
                    r.take(n).to_vec()
                } else {
                    let plain = plaintext(&mut r, &mut budget);
                    let mut c = p.compress(&plain);
                    let at = usize::from(r.u16());
                    let how = r.u8();
                    if !c.is_empty() {
                        let i = at % c.len();
                        match how % 3 {
                            0 => c[i] ^= how | 1,
                            1 => c.truncate(i),
                            _ => c.insert(i, how),
                        }
                    }
                    c
                };
                let chunk = usize::from(r.u8());
                let (wire, _) = Peer::frames(0x40 | opcode, &payload, nfrag, pings, mask);
                let base = CURRENT.load(Relaxed);
                PEAK.store(base, Relaxed);
                let evs = p.feed(&wire, chunk);
                let peak = PEAK.load(Relaxed) - base;
                let bound = 2 * p.max + (1 << 20);
                assert!(
                    peak <= bound,
                    "decoding {} compressed bytes took {peak} bytes of heap (limit {})",
                    payload.len(),
                    p.max
                );
                if p.outcome(&evs).is_some() && !p.params.client_no_context_takeover {
                    // The server's window now holds data the client's compressor never saw.
                    p.in_sync = false;
                }
                drop(evs);
            }
            3 => {
                // An uncompressed message in between (leaves the compression context alone).
                let n = usize::from(r.u16() % 512);
                let body = r.take(n).to_vec();
                let (wire, _) = Peer::frames(0x82, &body, nfrag, pings, mask);
                let evs = p.feed(&wire, usize::from(r.u8()));
                match p.outcome(&evs) {
                    Some(Message::Binary(b)) => assert!(b[..] == body[..]),
                    Some(m) => panic!("{m:?}"),
                    None => assert!(body.len() > p.max, "plain message failed"),
                }
            }
            _ => {
                // Server → client round trip.
                let plain = plaintext(&mut r, &mut budget);
                let step = usize::from(r.u8()) * 17;
                let msg = if text {
                    Message::Text(String::from_utf8_lossy(&plain).into_owned().into())
                } else {
                    Message::Binary(Bytes::from(plain))
                };
                p.s.send(msg.clone()).expect("send on an open session");
                p.expected_msgs.push(msg);
                p.drain_and_check(step);
                assert!(p.expected_msgs.is_empty(), "message not written");
            }
        }
        p.drain_and_check(0);
        assert!(p.expected_pongs.is_empty(), "pong missing");
    }
}

fuzz_target!(|data: &[u8]| run(data));
