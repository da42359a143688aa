//! permessage-deflate (RFC 7692): configuration, negotiated parameters and the codec.
//!
//! Memory policy (see the crate README for measured numbers):
//! * With `server_no_context_takeover` (our default) a connection keeps **no** compressor: every
//!   outgoing message is compressed by a per-thread compressor that is reset after the message.
//! * With `client_no_context_takeover` a connection keeps no decompressor between messages: one is
//!   borrowed from a small per-thread pool for the duration of a compressed message.
//! * Otherwise the connection owns the state it must keep, allocated on first use.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Server-side permessage-deflate policy, used by [`crate::handshake::negotiate_deflate`].
#[derive(Clone, Debug)]
pub struct DeflateConfig {
    /// Accept permessage-deflate offers at all. Default `true`.
    pub enabled: bool,
    /// Largest LZ77 window (log2, 9..=15) our compressor uses. Default 15. If the client asks for
    /// a smaller `server_max_window_bits` the smaller value is used; a request for 8 declines
    /// that offer, because zlib cannot produce raw deflate with a 256-byte window.
    pub server_max_window_bits: u8,
    /// Window (log2, 9..=15) we ask the client to limit itself to when its offer carries
    /// `client_max_window_bits`. Default 15.
    pub client_max_window_bits: u8,
    /// Always answer with `server_no_context_takeover`, so that no compressor state is kept per
    /// connection between messages (a zlib deflate state is about 256 KiB). Default `true`.
    pub server_no_context_takeover: bool,
    /// Always answer with `client_no_context_takeover` (RFC 7692 §7.1.1.2 lets a server require
    /// it even when the client did not offer it). The client then compresses every message on
    /// its own and we keep no decompressor per connection between messages: that saves the
    /// 20–50 KiB a decompressor holds on every connection that ever sent a compressed message,
    /// at the price of a worse ratio for small, similar client messages. Default `false`
    /// (the parameter is still accepted, and used, whenever the client offers it).
    pub client_no_context_takeover: bool,
    /// Messages smaller than this are sent uncompressed (RSV1 clear). Default 128.
    pub compress_min_size: usize,
    /// Compression level 0..=9 (higher values are clamped to 9). Default 1 (fast).
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            compress_min_size: 128,
            level: 1,
        }
    }
}

/// Negotiated permessage-deflate parameters of one connection (both directions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// We (the server) reset our compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message, so we may reset our decompressor.
    pub client_no_context_takeover: bool,
    /// Window (log2) our compressor uses, 9..=15.
    pub server_max_window_bits: u8,
    /// Largest window (log2) the client's compressor uses, 8..=15 (15 when not negotiated).
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// Plain `permessage-deflate` with no parameters: context takeover in both directions and
    /// 32 KiB windows.
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// The empty stored block that ends a sync flush; stripped on send, appended on receive.
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Compressed outputs at least this big are handed to the output queue as their own buffer;
/// smaller ones are copied into the queue and the scratch buffer is kept for the next message.
const SCRATCH_KEEP: usize = 64 * 1024;
/// Decompressors kept per thread for connections with `client_no_context_takeover`.
const POOL_MAX: usize = 8;

fn level(level: u32) -> Compression {
    Compression::new(level.min(9))
}

fn compressor_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

fn decompressor_bits(bits: u8) -> u8 {
    // A larger window than the peer's always decodes its stream; zlib's minimum is 9 here too.
    bits.clamp(9, 15)
}

struct SharedCompressor {
    level: u32,
    bits: u8,
    c: Compress,
}

thread_local! {
    static SHARED: RefCell<Option<SharedCompressor>> = const { RefCell::new(None) };
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static POOL: RefCell<Vec<Decompress>> = const { RefCell::new(Vec::new()) };
    static INFLATE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Output step of the decompressor (one per thread).
const INFLATE_CHUNK: usize = 32 * 1024;

/// What one inflate run did.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    consumed: usize,
    produced: usize,
    /// All input consumed and no output owed for it.
    done: bool,
}

/// Feed `input` to `d`, handing the output to `sink` in steps of at most `buf.len()` bytes
/// (so a decompression bomb is stopped by the sink after one step over its limit), until the
/// input is consumed and no output is owed, or `limit` bytes were produced.
///
/// `owed` says the last call filled its output buffer: zlib may hold more output for input it
/// already consumed, so it must be called again (with no new input) before the input counts as
/// done. After a final block (`ended`) the rest of the input is ignored.
#[allow(clippy::too_many_arguments)]
fn run_inflate(
    d: &mut Decompress,
    ended: &mut bool,
    owed: &mut bool,
    input: &[u8],
    flush: FlushDecompress,
    buf: &mut [u8],
    limit: usize,
    sink: &mut impl FnMut(&[u8]) -> bool,
) -> Result<Run, InflateError> {
    let mut run = Run {
        consumed: 0,
        produced: 0,
        done: false,
    };
    loop {
        if *ended {
            *owed = false;
            run.consumed = input.len();
        }
        if run.consumed == input.len() && !*owed {
            run.done = true;
            return Ok(run);
        }
        let room = buf.len().min(limit - run.produced);
        if room == 0 {
            return Ok(run);
        }
        let (in0, out0) = (d.total_in(), d.total_out());
        let status = d
            .decompress(&input[run.consumed..], &mut buf[..room], flush)
            .map_err(|_| InflateError::Corrupt)?;
        let consumed = (d.total_in() - in0) as usize;
        let produced = (d.total_out() - out0) as usize;
        run.consumed += consumed;
        run.produced += produced;
        *owed = produced == room;
        if produced > 0 && !sink(&buf[..produced]) {
            return Err(InflateError::Sink);
        }
        if status == Status::StreamEnd {
            *ended = true;
        }
        if consumed == 0 && produced == 0 {
            // No progress possible (zlib buffers partial symbols itself): the rest is spent.
            *owed = false;
            run.consumed = input.len();
        }
    }
}

/// Raw-deflate `input` into `out` (cleared first) with a sync flush and strip the trailing
/// `00 00 ff ff`.
fn deflate_into(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(input.len() / 4 + 64);
    loop {
        let before = c.total_in();
        // Errors cannot happen with a valid state and a sync flush; treat one as "stop".
        if c.compress_vec(input, out, FlushCompress::Sync).is_err() {
            break;
        }
        let consumed = (c.total_in() - before) as usize;
        input = &input[consumed..];
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(1024));
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    if out.is_empty() {
        // Nothing to flush (empty message right after a flush): RFC 7692 §7.2.3.6 payload.
        out.push(0x00);
    }
}

/// The per-connection half of the sending side.
#[derive(Default)]
pub(crate) struct Deflater {
    /// Only used with context takeover (allocated on the first compressed message).
    own: Option<Box<Compress>>,
}

impl Deflater {
    /// True while a per-connection compressor is held.
    #[cfg(test)]
    pub(crate) fn holds_state(&self) -> bool {
        self.own.is_some()
    }

    /// Compress one message and hand the compressed payload to `emit`. With context takeover the
    /// result must be sent (the peer's decompressor has to see it); without, `emit` may send
    /// the original instead.
    pub(crate) fn compress<R>(
        &mut self,
        params: &DeflateParams,
        lvl: u32,
        input: &[u8],
        emit: impl FnOnce(&mut Vec<u8>) -> R,
    ) -> R {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let bits = compressor_bits(params.server_max_window_bits);
            if params.server_no_context_takeover {
                SHARED.with(|shared| {
                    let mut shared = shared.borrow_mut();
                    let c = match &mut *shared {
                        Some(s) if s.level == lvl && s.bits == bits => &mut s.c,
                        slot => {
                            let c = Compress::new_with_window_bits(level(lvl), false, bits);
                            &mut slot
                                .insert(SharedCompressor {
                                    level: lvl,
                                    bits,
                                    c,
                                })
                                .c
                        }
                    };
                    deflate_into(c, input, &mut scratch);
                    c.reset();
                });
            } else {
                let c = self.own.get_or_insert_with(|| {
                    Box::new(Compress::new_with_window_bits(level(lvl), false, bits))
                });
                deflate_into(c, input, &mut scratch);
            }
            let r = emit(&mut scratch);
            if scratch.capacity() > SCRATCH_KEEP {
                *scratch = Vec::new();
            }
            r
        })
    }
}

/// Why inflating failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The compressed data is corrupt.
    Corrupt,
    /// The sink refused the output (size limit or invalid UTF-8); the sink knows why.
    Sink,
}

/// Progress of one [`Inflater::inflate`] call.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Inflated {
    /// Input bytes taken; the rest must be offered again.
    pub(crate) consumed: usize,
    /// Output bytes handed to the sink.
    pub(crate) produced: usize,
    /// All the input was taken and all its output handed out (with `last`: the message
    /// ended). False only when the output limit stopped the call.
    pub(crate) complete: bool,
}

/// The per-connection half of the receiving side.
#[derive(Default)]
pub(crate) struct Inflater {
    /// The decompressor in use: kept across messages with context takeover, borrowed from the
    /// thread's pool for one message without.
    d: Option<Box<Decompress>>,
    /// The peer's deflate stream hit a final block: ignore the rest of the message and reset.
    ended: bool,
    /// zlib may hold output for input it already took (see `run_inflate`).
    owed: bool,
    /// Bytes of the end-of-message tail already fed.
    tail_fed: usize,
}

impl Inflater {
    /// Get ready for a compressed message.
    pub(crate) fn begin(&mut self, params: &DeflateParams) {
        self.ended = false;
        self.owed = false;
        self.tail_fed = 0;
        if self.d.is_some() {
            return;
        }
        let d = if params.client_no_context_takeover {
            // Pooled decompressors serve every connection of the thread, so they all use the
            // largest window (their memory is shared, not per connection).
            POOL.with(|p| p.borrow_mut().pop())
                .unwrap_or_else(|| Decompress::new_with_window_bits(false, 15))
        } else {
            let bits = decompressor_bits(params.client_max_window_bits);
            Decompress::new_with_window_bits(false, bits)
        };
        self.d = Some(Box::new(d));
    }

    /// Inflate `input` (part of the current message), passing every piece of output to `sink`,
    /// and at most `limit` bytes of it. With `last`, `input` is the end of the message (the
    /// `00 00 ff ff` tail is added here). A call stopped by the limit is continued by calling
    /// again with the input it did not take (possibly none) and the same `last`.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        limit: usize,
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> Result<Inflated, InflateError> {
        let Some(d) = self.d.as_deref_mut() else {
            return Err(InflateError::Corrupt);
        };
        INFLATE_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            if buf.is_empty() {
                buf.resize(INFLATE_CHUNK, 0);
            }
            let body = run_inflate(
                d,
                &mut self.ended,
                &mut self.owed,
                input,
                FlushDecompress::None,
                &mut buf,
                limit,
                &mut sink,
            )?;
            let mut done = Inflated {
                consumed: body.consumed,
                produced: body.produced,
                complete: body.done,
            };
            if body.done && last {
                let tail = run_inflate(
                    d,
                    &mut self.ended,
                    &mut self.owed,
                    &TAIL[self.tail_fed..],
                    FlushDecompress::Sync,
                    &mut buf,
                    limit - body.produced,
                    &mut sink,
                )?;
                self.tail_fed += tail.consumed;
                done.produced += tail.produced;
                done.complete = tail.done;
            }
            Ok(done)
        })
    }

    /// The message is complete: drop or reset the state as the parameters require.
    pub(crate) fn end(&mut self, params: &DeflateParams) {
        if params.client_no_context_takeover {
            if let Some(mut d) = self.d.take() {
                d.reset(false);
                POOL.with(|p| {
                    let mut p = p.borrow_mut();
                    if p.len() < POOL_MAX {
                        p.push(*d);
                    }
                });
            }
        } else if self.ended {
            if let Some(d) = self.d.as_mut() {
                d.reset(false);
            }
        }
        self.ended = false;
        self.owed = false;
        self.tail_fed = 0;
    }

    /// Drop any state (connection failed or closed).
    pub(crate) fn clear(&mut self) {
        self.d = None;
    }

    /// True while a decompressor is held.
    #[cfg(test)]
    pub(crate) fn holds_state(&self) -> bool {
        self.d.is_some()
    }
}

/// True while the current thread caches a compressor (for tests and measurements).
#[cfg(test)]
pub(crate) fn shared_compressor_cached() -> bool {
    SHARED.with(|s| s.borrow().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
        }
    }

    /// Our compressor's output must inflate with the peer's settings, and vice versa: the
    /// "client" here is simulated by swapping the directions of the parameters.
    #[test]
    fn round_trip_all_window_bits() {
        let msg: Vec<u8> = (0..20_000u32)
            .map(|i| b"the quick brown fox jumps "[(i % 26) as usize] ^ (i / 1000) as u8)
            .collect();
        for bits in 9..=15u8 {
            for snct in [false, true] {
                let p = params(snct, snct, bits, bits);
                let mut tx = Deflater::default();
                let mut rx = Inflater::default();
                for round in 0..3 {
                    let compressed = tx.compress(&p, 1, &msg, |v| v.clone());
                    assert!(compressed.len() < msg.len() / 2, "bits {bits}");
                    assert!(!compressed.ends_with(&TAIL));
                    rx.begin(&p);
                    let mut out = Vec::new();
                    // Feed in odd pieces.
                    for piece in compressed.chunks(777) {
                        rx.inflate(piece, false, usize::MAX, |b| {
                            out.extend_from_slice(b);
                            true
                        })
                        .unwrap();
                    }
                    rx.inflate(&[], true, usize::MAX, |b| {
                        out.extend_from_slice(b);
                        true
                    })
                    .unwrap();
                    rx.end(&p);
                    assert_eq!(out, msg, "bits {bits} snct {snct} round {round}");
                    assert_eq!(rx.holds_state(), !snct);
                    assert_eq!(tx.own.is_some(), !snct);
                }
            }
        }
        assert!(shared_compressor_cached());
    }

    #[test]
    fn context_takeover_shrinks_repeats() {
        let msg = b"a message that repeats itself across messages, quite long really".repeat(3);
        let mut with = Deflater::default();
        let p = params(false, false, 15, 15);
        let first = with.compress(&p, 1, &msg, |v| v.len());
        let second = with.compress(&p, 1, &msg, |v| v.len());
        assert!(second < first / 2, "{first} {second}");
        let mut without = Deflater::default();
        let p = params(true, false, 15, 15);
        let a = without.compress(&p, 1, &msg, |v| v.len());
        let b = without.compress(&p, 1, &msg, |v| v.len());
        assert_eq!(a, b);
    }

    #[test]
    fn pooled_decompressor_serves_any_window() {
        // A long-distance match (about 20 KB back) needs a 32 KiB window.
        let mut x = 99u32;
        let block: Vec<u8> = (0..20_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        let data = [&block[..], &block[..]].concat();
        let small = params(true, true, 9, 9);
        let large = params(true, true, 15, 15);
        let mut tx = Deflater::default();
        let c_small = tx.compress(&small, 1, b"tiny tiny tiny tiny", |v| v.clone());
        let c_large = tx.compress(&large, 1, &data, |v| v.clone());
        assert!(c_large.len() < 30_000, "{}", c_large.len());
        for (p, c, want) in [
            (&small, &c_small, &b"tiny tiny tiny tiny"[..]),
            (&large, &c_large, &data[..]),
            (&small, &c_small, &b"tiny tiny tiny tiny"[..]),
        ] {
            let mut rx = Inflater::default();
            rx.begin(p);
            let mut out = Vec::new();
            rx.inflate(c, true, usize::MAX, |b| {
                out.extend_from_slice(b);
                true
            })
            .unwrap();
            rx.end(p);
            assert!(out == want);
            assert!(!rx.holds_state());
        }
    }

    #[test]
    fn limited_inflate_resumes_where_it_stopped() {
        // 300 KB of text that compresses well, so zlib owes output after taking all the input.
        let msg: Vec<u8> = (0..300_000u32)
            .map(|i| b"abcdefghij"[(i % 10) as usize] ^ (i / 7000) as u8)
            .collect();
        let p = params(false, false, 15, 15);
        let compressed = Deflater::default().compress(&p, 1, &msg, |v| v.clone());
        for limit in [1usize, 1000, 32 * 1024, 100_000] {
            let mut rx = Inflater::default();
            rx.begin(&p);
            let mut out = Vec::new();
            let mut input = &compressed[..];
            let mut calls = 0;
            loop {
                calls += 1;
                assert!(calls < 1_000_000);
                let before = out.len();
                let r = rx
                    .inflate(input, true, limit, |b| {
                        out.extend_from_slice(b);
                        true
                    })
                    .unwrap();
                assert_eq!(r.produced, out.len() - before);
                assert!(r.produced <= limit, "{} > {limit}", r.produced);
                input = &input[r.consumed..];
                if r.complete {
                    assert!(input.is_empty());
                    break;
                }
            }
            rx.end(&p);
            assert!(out == msg, "limit {limit}");
            assert!(calls >= msg.len() / limit, "limit {limit}: {calls} calls");
        }
    }

    #[test]
    fn corrupt_input() {
        let p = params(false, false, 15, 15);
        let mut rx = Inflater::default();
        rx.begin(&p);
        let r = rx.inflate(&[0xFF, 0xFF, 0xFF, 0xFF], true, usize::MAX, |_| true);
        assert_eq!(r, Err(InflateError::Corrupt));
    }

    #[test]
    fn final_block_resets() {
        // A complete raw deflate stream with BFINAL set, as a peer might send.
        let mut c = Compress::new_with_window_bits(Compression::fast(), false, 15);
        let mut v = Vec::with_capacity(100);
        c.compress_vec(b"hello", &mut v, FlushCompress::Finish)
            .unwrap();
        let p = params(false, false, 15, 15);
        let mut rx = Inflater::default();
        for _ in 0..2 {
            rx.begin(&p);
            let mut out = Vec::new();
            rx.inflate(&v, true, usize::MAX, |b| {
                out.extend_from_slice(b);
                true
            })
            .unwrap();
            rx.end(&p);
            assert_eq!(out, b"hello");
        }
    }
}
