//! The per-connection protocol state machine (server side).

use std::fmt;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;

use crate::deflate::{DeflateParams, Deflater, InflateError, Inflater};
use crate::frame::{
    apply_mask, header_len, is_control, parse_header, Header, Parsed, FIN, OP_BINARY, OP_CLOSE,
    OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, RSV1,
};
use crate::out::{OutQueue, ZERO_COPY_MIN};
use crate::utf8::{self, Utf8Acc};

/// Per-connection settings.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Largest message (after decompression) or frame accepted; anything bigger fails the
    /// connection with 1009 as soon as it is known (a frame's declared length is enough).
    /// Default 16 MiB.
    pub max_message_size: usize,
    /// Negotiated permessage-deflate parameters; `None` = no compression (RSV1 on input is then
    /// a protocol error, 1002).
    pub deflate: Option<DeflateParams>,
    /// With deflate, messages smaller than this are sent uncompressed. Default 128.
    pub compress_min_size: usize,
    /// Compression level 0..=9. Default 1.
    pub compress_level: u32,
    /// On a protocol violation, report [`Event::Failed`] but queue the Close only when
    /// [`Session::send_failure_close`] is called, so that replies to messages decoded *before*
    /// the bad frame (an app echoing them, say) still go out first. Until then data sends are
    /// accepted and input is discarded. Default false (the Close is queued at once).
    pub defer_failure_close: bool,
    /// With deflate: the most a compressed message may expand, as decompressed bytes per
    /// compressed byte, once it has inflated past [`INFLATE_RATIO_FLOOR`] (smaller messages are
    /// never judged by their ratio). Beyond it the connection fails with 1009. Bounds the CPU a
    /// peer can make the server spend per byte it sends (a 16 KiB message can otherwise inflate
    /// to 16 MiB). `0` disables the check. Default 100.
    pub max_inflate_ratio: usize,
}

/// Decompressed size below which a message's inflate ratio is not checked: small, highly
/// compressible messages (a run of spaces, say) legitimately expand far more than
/// [`SessionConfig::max_inflate_ratio`], and inflating them costs little.
pub const INFLATE_RATIO_FLOOR: usize = 1 << 20;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_message_size: 16 << 20,
            deflate: None,
            compress_min_size: 128,
            compress_level: 1,
            defer_failure_close: false,
            max_inflate_ratio: 100,
        }
    }
}

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message: valid UTF-8, validated once as it arrived. A large one shares the
    /// read buffer it arrived in (no copy), like a binary one.
    Text(ByteString),
    /// A binary message.
    Binary(Bytes),
}

/// What [`Session::read_event`] found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete data message.
    Message(Message),
    /// A ping. A pong with the same payload has been queued, or, while more than
    /// [`PONG_BACKLOG`] bytes of pongs wait for the socket, is held as the one pending pong
    /// (a newer ping replaces it, as RFC 6455 §5.5.3 allows).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// Peer's Close received. `code` = peer's code, or 1005 if the frame had no payload;
    /// `reason` = peer's text. If we had not sent a Close yet, the echo (same code; empty
    /// payload when the peer sent none — never 1005/1006 on the wire) is already queued.
    /// State becomes [`State::Closed`].
    Close {
        /// The peer's status code (1005 = none given).
        code: u16,
        /// The peer's reason text.
        reason: String,
    },
    /// The peer violated the protocol; a Close with `code` (1002 protocol error, 1007 invalid
    /// payload data such as bad UTF-8, 1009 too big) and a short reason has been queued (unless
    /// we had sent one already); all later input is ignored; the state becomes
    /// [`State::Closed`] once that Close is written (the server then closes TCP).
    Failed {
        /// Close code sent to the peer.
        code: u16,
        /// Short reason, also sent in the Close frame.
        reason: &'static str,
    },
}

/// Closing-handshake state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Data may flow both ways.
    Open,
    /// We sent (queued) a Close and wait for the peer's.
    CloseSent,
    /// The peer's Close was received (and ours queued), or the connection failed and our
    /// Close was written. Nothing more is sent or received.
    Closed,
}

/// Sending is not possible any more (a Close was sent or received), or the arguments are
/// invalid (a ping payload over 125 bytes).
#[derive(Debug)]
pub struct SendError(SendErrorKind);

#[derive(Debug)]
enum SendErrorKind {
    Closed,
    PingTooLong,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            SendErrorKind::Closed => "websocket is closing or closed",
            SendErrorKind::PingTooLong => "ping payload longer than 125 bytes",
        })
    }
}

impl std::error::Error for SendError {}

/// The current frame being read.
#[derive(Clone, Copy, Debug)]
struct FrameState {
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes already consumed (mask phase).
    offset: u64,
}

/// A data message being reassembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MsgKind {
    Text,
    Binary,
}

/// Where the session is in its life (the closing handshake and failures).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Data flows both ways.
    Open,
    /// We queued our Close: incoming data frames and pings are skipped until the peer's Close.
    Closing,
    /// The peer's Close arrived (ours is queued): nothing more is read or sent.
    Closed,
    /// The peer violated the protocol: input is ignored from here on.
    Failed(FailureClose),
}

/// The Close of a failed session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureClose {
    /// Held back (see [`SessionConfig::defer_failure_close`]) until
    /// [`Session::send_failure_close`]; data sends are still accepted meanwhile.
    Deferred(u16, &'static str),
    /// Queued (or we had sent a Close before the failure).
    Queued,
}

/// Pong bytes that may wait in the output queue; beyond it one pending pong is kept (and
/// replaced by newer pings) until the socket takes some of the output. A peer flooding pings
/// and never reading thus costs a bounded amount of memory.
pub const PONG_BACKLOG: usize = 4096;

/// A server-side WebSocket connection without I/O.
///
/// Feed it the bytes read from the socket with [`read_event`](Session::read_event); queue
/// outgoing messages with [`send`](Session::send), [`ping`](Session::ping) and
/// [`close`](Session::close); write what [`chunks_vectored`](Session::chunks_vectored) returns
/// and report it with [`advance`](Session::advance). When [`is_finished`](Session::is_finished)
/// is true, flush [`buffered`](Session::buffered) bytes and close the TCP connection.
///
/// An idle session holds no heap memory beyond its compression state: reassembly buffers are
/// handed out with each message and the output buffers are freed whenever the queue drains.
pub struct Session {
    max_message_size: usize,
    compress_min_size: usize,
    compress_level: u32,
    deflate: Option<DeflateParams>,
    max_inflate_ratio: u32,
    /// Pong bytes pushed to `out` and not yet known to be written (see [`PONG_BACKLOG`]).
    pong_backlog: u32,
    phase: Phase,
    frame: Option<FrameState>,
    /// Kind of the message being reassembled, if any.
    msg: Option<MsgKind>,
    /// The message being reassembled is compressed.
    msg_compressed: bool,
    /// Bytes of the current message so far: wire payload for uncompressed messages, compressed
    /// bytes for compressed ones.
    msg_wire_len: usize,
    /// Decompressed bytes of the current message so far.
    msg_len: usize,
    text: Utf8Acc,
    binary: BytesMut,
    inflater: Inflater,
    deflater: Deflater,
    out: OutQueue,
    defer_failure_close: bool,
    /// Payload bytes `read_event` may still decode before it pauses (see
    /// [`Session::set_read_budget`]).
    read_budget: usize,
    /// The size of the allocation the input lives in, when the caller says
    /// (see `set_input_allocation`, saturated); 0 = unknown. (`u32`: it
    /// fits the struct's padding, and idle sessions are counted in bytes.)
    input_allocation: u32,
    /// The newest ping's payload, when pongs are over their backlog (boxed: rare).
    pending_pong: Option<Box<Bytes>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state())
            .field("deflate", &self.deflate)
            .field("buffered", &self.out.len())
            .finish_non_exhaustive()
    }
}

/// Result of one decoding step.
enum Step {
    Event(Event),
    /// More input is needed, or the read budget is spent: `read_event` returns `None`.
    NeedMore,
    Continue,
    Fail(u16, &'static str),
}

/// Whether `code` may appear in a Close frame on the wire (RFC 6455 §7.4):
/// 1000–1003, 1007–1014 and 3000–4999.
///
/// ```
/// assert!(pagi_ws::is_valid_close_code(1000) && pagi_ws::is_valid_close_code(4000));
/// assert!(!pagi_ws::is_valid_close_code(1006));
/// ```
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl Session {
    /// A session for a connection whose upgrade has completed.
    pub fn new(config: SessionConfig) -> Session {
        Session {
            max_message_size: config.max_message_size,
            compress_min_size: config.compress_min_size,
            compress_level: config.compress_level,
            deflate: config.deflate,
            max_inflate_ratio: config.max_inflate_ratio.try_into().unwrap_or(u32::MAX),
            phase: Phase::Open,
            frame: None,
            msg: None,
            msg_compressed: false,
            msg_wire_len: 0,
            msg_len: 0,
            text: Utf8Acc::default(),
            binary: BytesMut::new(),
            inflater: Inflater::default(),
            deflater: Deflater::default(),
            out: OutQueue::default(),
            defer_failure_close: config.defer_failure_close,
            read_budget: usize::MAX,
            input_allocation: 0,
            pong_backlog: 0,
            pending_pong: None,
        }
    }

    /// Limit how many payload bytes (after decompression) [`read_event`](Session::read_event)
    /// may decode from now on; at zero it stops consuming data-frame payload and returns
    /// `None`, leaving the rest of the input in place. A server grants it from its memory
    /// budgets and from how much work one wake-up may do, and can tell "paused" from "needs
    /// more input" by [`read_budget`](Session::read_budget) being zero. Default unlimited.
    ///
    /// Whole single-frame messages are only split off the input (no copy) when they fit in the
    /// budget; otherwise they are decoded piecewise as far as it allows.
    pub fn set_read_budget(&mut self, bytes: usize) {
        self.read_budget = bytes;
    }

    /// The size of the allocation `read_event`'s input lives in (its capacity when it was
    /// taken or last grown, counted from the allocation's start). A whole message is split
    /// off the input without a copy only if it is at least a quarter of that, so a message
    /// the application keeps pins at most four times its size. Unset (0), the input's
    /// remaining capacity is used instead, which does not bound what a message split off
    /// near the end of a large buffer pins.
    pub fn set_input_allocation(&mut self, bytes: usize) {
        self.input_allocation = u32::try_from(bytes).unwrap_or(u32::MAX);
    }

    /// What is left of the budget set with [`set_read_budget`](Session::set_read_budget).
    pub fn read_budget(&self) -> usize {
        self.read_budget
    }

    /// Bytes of memory held for the message being received (its buffer, decompressed so far):
    /// what the session keeps on the peer's behalf until the message completes. Grows with the
    /// bytes that arrive (at most about twice them), never with a frame's announced length.
    pub fn partial_len(&self) -> usize {
        self.binary.capacity() + self.text.capacity()
    }

    /// Decode from `input` (the server's read buffer; consumed bytes are removed from it).
    ///
    /// Returns the next event, or `None` if more bytes are needed or the session no longer reads
    /// (after the peer's Close or a failure; input is then discarded).
    pub fn read_event(&mut self, input: &mut BytesMut) -> Option<Event> {
        loop {
            if matches!(self.phase, Phase::Closed | Phase::Failed(_)) {
                input.clear();
                return None;
            }
            match self.step(input) {
                Step::Event(e) => return Some(e),
                Step::NeedMore => return None,
                Step::Continue => {}
                Step::Fail(code, reason) => {
                    self.fail(code, reason);
                    input.clear();
                    return Some(Event::Failed { code, reason });
                }
            }
        }
    }

    fn fail(&mut self, code: u16, reason: &'static str) {
        let close = match self.phase {
            Phase::Open if self.defer_failure_close => FailureClose::Deferred(code, reason),
            Phase::Open => {
                self.out
                    .push_copy2(FIN | OP_CLOSE, &code.to_be_bytes(), reason.as_bytes());
                FailureClose::Queued
            }
            // Our Close is out already.
            _ => FailureClose::Queued,
        };
        self.phase = Phase::Failed(close);
        self.pending_pong = None;
        self.frame = None;
        self.drop_message();
        self.inflater.clear();
    }

    fn drop_message(&mut self) {
        self.msg = None;
        self.msg_compressed = false;
        self.msg_wire_len = 0;
        self.msg_len = 0;
        self.text = Utf8Acc::default();
        self.binary = BytesMut::new();
        if let Some(p) = &self.deflate {
            self.inflater.end(p);
        }
    }

    fn step(&mut self, input: &mut BytesMut) -> Step {
        let frame = match self.frame {
            Some(f) => f,
            None => match parse_header(input) {
                Parsed::Incomplete => return Step::NeedMore,
                Parsed::Invalid(reason) => return Step::Fail(1002, reason),
                Parsed::Header(h, n) => {
                    input.advance(n);
                    if let Err((code, reason)) = self.start_frame(&h) {
                        return Step::Fail(code, reason);
                    }
                    let f = FrameState {
                        opcode: h.opcode,
                        fin: h.fin,
                        mask: h.mask,
                        remaining: h.len,
                        offset: 0,
                    };
                    self.frame = Some(f);
                    f
                }
            },
        };
        if is_control(frame.opcode) {
            let len = frame.remaining as usize;
            if input.len() < len {
                return Step::NeedMore;
            }
            self.frame = None;
            apply_mask(&mut input[..len], frame.mask, 0);
            let payload = Bytes::copy_from_slice(&input[..len]);
            input.advance(len);
            return self.on_control(frame.opcode, payload);
        }
        self.on_data(frame, input)
    }

    /// Checks that depend on the session; sets up a new message.
    fn start_frame(&mut self, h: &Header) -> Result<(), (u16, &'static str)> {
        if is_control(h.opcode) {
            return Ok(());
        }
        if self.phase == Phase::Closing {
            // We sent Close: data is skipped until the peer's Close.
            return Ok(());
        }
        let too_big = |n: u64| n > self.max_message_size as u64;
        if h.opcode == OP_CONTINUATION {
            if self.msg.is_none() {
                return Err((1002, "continuation without a message"));
            }
            if h.rsv1 {
                return Err((1002, "RSV1 on continuation frame"));
            }
            if too_big(self.msg_wire_len as u64 + h.len) {
                return Err((1009, "message too big"));
            }
            return Ok(());
        }
        if self.msg.is_some() {
            return Err((1002, "expected continuation frame"));
        }
        let compressed = h.rsv1;
        if compressed && self.deflate.is_none() {
            return Err((1002, "RSV1 without negotiated extension"));
        }
        if too_big(h.len) {
            return Err((1009, "message too big"));
        }
        self.msg = Some(if h.opcode == OP_TEXT {
            MsgKind::Text
        } else {
            MsgKind::Binary
        });
        self.msg_compressed = compressed;
        self.msg_wire_len = 0;
        self.msg_len = 0;
        if compressed {
            if let Some(p) = &self.deflate {
                self.inflater.begin(p);
            }
        }
        Ok(())
    }

    fn on_control(&mut self, opcode: u8, payload: Bytes) -> Step {
        match opcode {
            OP_PING => {
                if self.phase == Phase::Closing {
                    return Step::Continue;
                }
                if let Some(pending) = &mut self.pending_pong {
                    **pending = payload.clone();
                } else if self.pong_backlog as usize >= PONG_BACKLOG {
                    self.pending_pong = Some(Box::new(payload.clone()));
                } else {
                    self.push_pong(&payload);
                }
                Step::Event(Event::Ping(payload))
            }
            OP_PONG => {
                if self.phase == Phase::Closing {
                    return Step::Continue;
                }
                Step::Event(Event::Pong(payload))
            }
            _ => self.on_close(&payload),
        }
    }

    fn on_close(&mut self, payload: &[u8]) -> Step {
        let (code, reason) = match payload {
            [] => (1005, String::new()),
            [_] => return Step::Fail(1002, "close frame with 1-byte payload"),
            [a, b, rest @ ..] => {
                let code = u16::from_be_bytes([*a, *b]);
                if !is_valid_close_code(code) {
                    return Step::Fail(1002, "invalid close code");
                }
                match std::str::from_utf8(rest) {
                    Ok(r) => (code, r.to_owned()),
                    Err(_) => return Step::Fail(1007, "invalid UTF-8 in close reason"),
                }
            }
        };
        if self.phase == Phase::Open {
            self.flush_pending_pong();
            if code == 1005 {
                self.out.push_copy(FIN | OP_CLOSE, &[]);
            } else {
                self.out.push_copy(FIN | OP_CLOSE, &code.to_be_bytes());
            }
        }
        self.phase = Phase::Closed;
        self.pending_pong = None;
        self.frame = None;
        self.drop_message();
        self.inflater.clear();
        Step::Event(Event::Close { code, reason })
    }

    fn on_data(&mut self, mut frame: FrameState, input: &mut BytesMut) -> Step {
        let remaining = frame.remaining;
        let avail = remaining.min(input.len() as u64) as usize;
        // (A compressed frame whose payload is all consumed stays current while the
        // decompressor still owes output for it: then `remaining` and `avail` are zero.)
        if remaining > 0 && avail == 0 {
            return Step::NeedMore;
        }
        if self.phase == Phase::Closing {
            input.advance(avail);
            frame.remaining -= avail as u64;
            self.frame = (frame.remaining > 0).then_some(frame);
            return Step::Continue;
        }
        let whole = avail as u64 == remaining;
        // Fast path: a complete single-frame uncompressed message already in the buffer.
        if whole
            && frame.fin
            && frame.offset == 0
            && self.msg_wire_len == 0
            && !self.msg_compressed
            && avail <= self.read_budget
        {
            self.frame = None;
            self.read_budget -= avail;
            apply_mask(&mut input[..avail], frame.mask, 0);
            let kind = self.msg.take();
            let msg = match kind {
                Some(MsgKind::Text) => {
                    match utf8::text(take_payload(input, avail, self.input_allocation as usize)) {
                        Some(text) => Message::Text(text),
                        None => return Step::Fail(1007, "invalid UTF-8 in text message"),
                    }
                }
                _ => Message::Binary(take_payload(input, avail, self.input_allocation as usize)),
            };
            return Step::Event(Event::Message(msg));
        }

        // Piecewise: the message grows with the bytes that arrived (nothing is reserved from
        // the announced length), as far as the read budget allows.
        let (consumed, complete) = if self.msg_compressed {
            apply_mask(&mut input[..avail], frame.mask, frame.offset);
            let r = self.inflate(frame.fin && whole, &input[..avail]);
            let (consumed, complete) = match r {
                Ok(progress) => progress,
                Err((code, reason)) => return Step::Fail(code, reason),
            };
            // Bytes the decompressor did not take are offered again later: mask them back.
            apply_mask(
                &mut input[consumed..avail],
                frame.mask,
                frame.offset + consumed as u64,
            );
            (consumed, complete)
        } else {
            let n = avail.min(self.read_budget);
            apply_mask(&mut input[..n], frame.mask, frame.offset);
            if let Err((code, reason)) = self.append_plain(&input[..n]) {
                return Step::Fail(code, reason);
            }
            (n, n == avail)
        };
        input.advance(consumed);
        frame.remaining -= consumed as u64;
        frame.offset += consumed as u64;
        if !complete {
            // The budget is spent.
            self.frame = Some(frame);
            return Step::NeedMore;
        }
        if frame.remaining > 0 {
            self.frame = Some(frame);
            return Step::Continue;
        }
        self.frame = None;
        if !frame.fin {
            return Step::Continue;
        }
        match self.finish_message() {
            Ok(m) => Step::Event(Event::Message(m)),
            Err((code, reason)) => Step::Fail(code, reason),
        }
    }

    /// Append unmasked payload of an uncompressed message (within the read budget).
    fn append_plain(&mut self, chunk: &[u8]) -> Result<(), (u16, &'static str)> {
        self.read_budget -= chunk.len();
        self.msg_wire_len += chunk.len();
        self.msg_len += chunk.len();
        match self.msg.unwrap_or(MsgKind::Binary) {
            MsgKind::Text => self
                .text
                .push(chunk)
                .map_err(|_| (1007, "invalid UTF-8 in text message")),
            MsgKind::Binary => {
                self.binary.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    /// Inflate unmasked payload of a compressed message into it, producing at most the read
    /// budget; `last` = `chunk` ends the message. Returns how much of `chunk` was consumed and
    /// whether all of it was (and all its output handed out, and with `last` the message ended).
    fn inflate(&mut self, last: bool, chunk: &[u8]) -> Result<(usize, bool), (u16, &'static str)> {
        if last && self.msg_wire_len == 0 && chunk.is_empty() {
            // An empty compressed message (not RFC-valid, that would be 0x00): take it as
            // empty rather than feed the decompressor a lone tail that would desync it.
            return Ok((0, true));
        }
        let kind = self.msg.unwrap_or(MsgKind::Binary);
        let max = self.max_message_size;
        // Judged against every compressed byte offered so far (generous by at most one read).
        let ratio_cap = match self.max_inflate_ratio {
            0 => usize::MAX,
            r => (self.msg_wire_len + chunk.len())
                .saturating_mul(r as usize)
                .max(INFLATE_RATIO_FLOOR),
        };
        let (text, binary, msg_len) = (&mut self.text, &mut self.binary, &mut self.msg_len);
        let mut fail = (1009, "message too big");
        let r = self.inflater.inflate(chunk, last, self.read_budget, |out| {
            *msg_len += out.len();
            if *msg_len > max {
                return false;
            }
            if *msg_len > ratio_cap {
                fail = (1009, "message inflates too much");
                return false;
            }
            match kind {
                MsgKind::Text => {
                    if text.push(out).is_err() {
                        fail = (1007, "invalid UTF-8 in text message");
                        return false;
                    }
                }
                MsgKind::Binary => binary.extend_from_slice(out),
            }
            true
        });
        match r {
            Ok(done) => {
                self.read_budget -= done.produced;
                self.msg_wire_len += done.consumed;
                Ok((done.consumed, done.complete))
            }
            Err(InflateError::Sink) => Err(fail),
            Err(InflateError::Corrupt) => Err((1007, "invalid compressed data")),
        }
    }

    fn finish_message(&mut self) -> Result<Message, (u16, &'static str)> {
        if self.msg_compressed {
            if let Some(p) = &self.deflate {
                self.inflater.end(p);
            }
        }
        let kind = self.msg.take();
        self.msg_compressed = false;
        self.msg_wire_len = 0;
        self.msg_len = 0;
        match kind {
            Some(MsgKind::Text) => std::mem::take(&mut self.text)
                .finish()
                .map(|s| Message::Text(s.into()))
                .map_err(|_| (1007, "invalid UTF-8 in text message")),
            _ => Ok(Message::Binary(std::mem::take(&mut self.binary).freeze())),
        }
    }

    fn check_open(&self) -> Result<(), SendError> {
        match self.phase {
            Phase::Open | Phase::Failed(FailureClose::Deferred(..)) => Ok(()),
            _ => Err(SendError(SendErrorKind::Closed)),
        }
    }

    fn push_pong(&mut self, payload: &[u8]) {
        self.out.push_copy(FIN | OP_PONG, payload);
        // At most PONG_BACKLOG + one pong: fits.
        self.pong_backlog += (header_len(payload.len()) + payload.len()) as u32;
    }

    /// Queue the pending pong, if any (before a Close, or once the backlog went down).
    fn flush_pending_pong(&mut self) {
        if let Some(p) = self.pending_pong.take() {
            self.push_pong(&p);
        }
    }

    /// Queue the Close of a failure reported while
    /// [`SessionConfig::defer_failure_close`] is set; a no-op otherwise. After it, data sends
    /// fail and [`is_finished`](Session::is_finished) becomes true.
    pub fn send_failure_close(&mut self) {
        if let Phase::Failed(FailureClose::Deferred(code, reason)) = self.phase {
            self.out
                .push_copy2(FIN | OP_CLOSE, &code.to_be_bytes(), reason.as_bytes());
            self.phase = Phase::Failed(FailureClose::Queued);
        }
    }

    /// Queue a data message as one frame (FIN set, never fragmented, unmasked), compressed
    /// (RSV1) when deflate was negotiated and the payload is at least `compress_min_size`.
    /// Payloads of 4 KiB or more are queued without copying.
    ///
    /// Fails after a Close was sent or received.
    pub fn send(&mut self, msg: Message) -> Result<(), SendError> {
        self.check_open()?;
        let (opcode, payload) = match &msg {
            Message::Text(s) => (OP_TEXT, &s.as_bytes()[..]),
            Message::Binary(b) => (OP_BINARY, &b[..]),
        };
        if let Some(params) = &self.deflate {
            if payload.len() >= self.compress_min_size {
                let out = &mut self.out;
                let keep_state = !params.server_no_context_takeover;
                let sent =
                    self.deflater
                        .compress(params, self.compress_level, payload, |compressed| {
                            if !keep_state && compressed.len() >= payload.len() {
                                // Not worth it, and no peer state depends on it having been sent.
                                return false;
                            }
                            let b0 = FIN | RSV1 | opcode;
                            if compressed.len() >= ZERO_COPY_MIN {
                                out.push(b0, Bytes::from(std::mem::take(compressed)));
                            } else {
                                out.push_copy(b0, compressed);
                            }
                            true
                        });
                if sent {
                    return Ok(());
                }
            }
        }
        self.push_plain(opcode, msg)
    }

    fn push_plain(&mut self, opcode: u8, msg: Message) -> Result<(), SendError> {
        let b0 = FIN | opcode;
        match msg {
            Message::Text(s) => self.out.push(b0, s.into_bytes()),
            Message::Binary(b) => self.out.push(b0, b),
        }
        Ok(())
    }

    /// Queue a ping. The payload must be at most 125 bytes.
    pub fn ping(&mut self, payload: Bytes) -> Result<(), SendError> {
        self.check_open()?;
        if payload.len() > 125 {
            return Err(SendError(SendErrorKind::PingTooLong));
        }
        self.out.push_copy(FIN | OP_PING, &payload);
        Ok(())
    }

    /// Start a (server-initiated) close: queue a Close frame with `code` and `reason` (the
    /// reason is cut at a character boundary to fit in 123 bytes).
    ///
    /// Codes that must not appear on the wire or are not valid to send (1005, 1006, 1015,
    /// 0–999, 1004, 1016–2999, 5000 and above) produce a Close with an **empty** payload.
    /// Returns `Err` (and queues nothing) if a Close was already sent or received. Afterwards
    /// data sends fail and incoming data is discarded until the peer's Close arrives.
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), SendError> {
        if let Phase::Failed(FailureClose::Deferred(..)) = self.phase {
            // A failure's Close takes precedence over any other code.
            self.send_failure_close();
            return Ok(());
        }
        self.check_open()?;
        // Answer the last ping before the Close: nothing may follow it.
        self.flush_pending_pong();
        if is_valid_close_code(code) {
            let mut end = reason.len().min(123);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            self.out.push_copy2(
                FIN | OP_CLOSE,
                &code.to_be_bytes(),
                &reason.as_bytes()[..end],
            );
        } else {
            self.out.push_copy(FIN | OP_CLOSE, &[]);
        }
        self.phase = Phase::Closing;
        // A data frame in progress is skipped to its end (see `on_data`).
        self.drop_message();
        Ok(())
    }

    /// The closing-handshake state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Open | Phase::Failed(FailureClose::Deferred(..)) => State::Open,
            Phase::Closing => State::CloseSent,
            Phase::Failed(FailureClose::Queued) if self.out.len() > 0 => State::CloseSent,
            Phase::Failed(FailureClose::Queued) | Phase::Closed => State::Closed,
        }
    }

    /// True once a Close has been both sent (queued) and received, or the connection failed:
    /// the server should write out [`buffered`](Session::buffered) bytes and then close TCP.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.phase,
            Phase::Closed | Phase::Failed(FailureClose::Queued)
        )
    }

    /// Bytes queued for the socket and not yet written.
    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    /// Fill `dst` with the pending output, in order, as slices for one vectored write; returns
    /// how many were filled.
    pub fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.out.chunks_vectored(dst)
    }

    /// Mark `n` bytes (from the front of [`chunks_vectored`](Session::chunks_vectored)) as
    /// written. When the queue becomes empty its buffers are freed.
    ///
    /// # Panics
    /// If `n` exceeds [`buffered`](Session::buffered).
    pub fn advance(&mut self, n: usize) {
        self.out.advance(n);
        // Written bytes count as pongs written: an upper bound on what the socket took of them.
        let left = (self.pong_backlog as usize)
            .saturating_sub(n)
            .min(self.out.len());
        self.pong_backlog = left as u32;
        if left < PONG_BACKLOG && self.phase == Phase::Open {
            self.flush_pending_pong();
        }
    }
}

/// The first `len` bytes of `input`, taken out of it. Large payloads are split off the read
/// buffer without copying; small ones, and those small next to the buffer's allocation
/// (`allocation`, or what is left of it when unknown), are copied, so that a message kept by
/// the application pins at most four times its size (and the read buffer stays reusable in
/// place).
fn take_payload(input: &mut BytesMut, len: usize, allocation: usize) -> Bytes {
    let allocation = allocation.max(input.capacity());
    if len >= ZERO_COPY_MIN && len.saturating_mul(4) >= allocation {
        return input.split_to(len).freeze();
    }
    let b = Bytes::copy_from_slice(&input[..len]);
    input.advance(len);
    b
}

#[cfg(test)]
mod tests;
