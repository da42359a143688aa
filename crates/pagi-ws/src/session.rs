//! The per-connection protocol state machine (server side).

use std::fmt;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::deflate::{DeflateParams, Deflater, InflateError, Inflater};
use crate::frame::{
    apply_mask, is_control, parse_header, Header, Parsed, FIN, OP_BINARY, OP_CLOSE,
    OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, RSV1,
};
use crate::out::{OutQueue, ZERO_COPY_MIN};
use crate::utf8::Utf8Acc;

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
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_message_size: 16 << 20,
            deflate: None,
            compress_min_size: 128,
            compress_level: 1,
            defer_failure_close: false,
        }
    }
}

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (always valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// What [`Session::read_event`] found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete data message.
    Message(Message),
    /// A ping; a pong with the same payload has already been queued.
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

const CLOSED_SENT: u8 = 1;
const CLOSE_RECEIVED: u8 = 2;
const FAILED: u8 = 4;
/// Data frames are skipped (we sent Close and wait for the peer's).
const DISCARDING: u8 = 8;

/// Largest up-front reservation for a frame whose payload arrives in pieces.
const PRERESERVE_MAX: usize = 1 << 20;

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
    flags: u8,
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
    /// A failure whose Close is deferred (see [`SessionConfig::defer_failure_close`]).
    pending_failure: Option<(u16, &'static str)>,
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
    NeedMore,
    Continue,
    Fail(u16, &'static str),
}

fn is_valid_received_code(code: u16) -> bool {
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
            flags: 0,
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
            pending_failure: None,
        }
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Decode from `input` (the server's read buffer; consumed bytes are removed from it).
    ///
    /// Returns the next event, or `None` if more bytes are needed or the session no longer reads
    /// (after the peer's Close or a failure; input is then discarded).
    pub fn read_event(&mut self, input: &mut BytesMut) -> Option<Event> {
        loop {
            if self.has(CLOSE_RECEIVED | FAILED) {
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
        if self.defer_failure_close && !self.has(CLOSED_SENT) {
            self.pending_failure = Some((code, reason));
        } else if !self.has(CLOSED_SENT) {
            self.out
                .push_copy2(FIN | OP_CLOSE, &code.to_be_bytes(), reason.as_bytes());
            self.flags |= CLOSED_SENT;
        }
        self.flags |= FAILED;
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
        if self.has(DISCARDING) {
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
                if self.has(CLOSED_SENT) {
                    return Step::Continue;
                }
                self.out.push_copy(FIN | OP_PONG, &payload);
                Step::Event(Event::Ping(payload))
            }
            OP_PONG => {
                if self.has(CLOSED_SENT) {
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
                if !is_valid_received_code(code) {
                    return Step::Fail(1002, "invalid close code");
                }
                match std::str::from_utf8(rest) {
                    Ok(r) => (code, r.to_owned()),
                    Err(_) => return Step::Fail(1007, "invalid UTF-8 in close reason"),
                }
            }
        };
        if !self.has(CLOSED_SENT) {
            if code == 1005 {
                self.out.push_copy(FIN | OP_CLOSE, &[]);
            } else {
                self.out.push_copy(FIN | OP_CLOSE, &code.to_be_bytes());
            }
            self.flags |= CLOSED_SENT;
        }
        self.flags |= CLOSE_RECEIVED;
        self.frame = None;
        self.drop_message();
        self.inflater.clear();
        Step::Event(Event::Close { code, reason })
    }

    fn on_data(&mut self, mut frame: FrameState, input: &mut BytesMut) -> Step {
        let remaining = frame.remaining;
        let avail = remaining.min(input.len() as u64) as usize;
        if remaining > 0 && avail == 0 {
            return Step::NeedMore;
        }
        if self.has(DISCARDING) {
            input.advance(avail);
            frame.remaining -= avail as u64;
            self.frame = (frame.remaining > 0).then_some(frame);
            return Step::Continue;
        }
        let whole = avail as u64 == remaining;
        // Fast path: a complete single-frame uncompressed message already in the buffer.
        if whole && frame.fin && frame.offset == 0 && self.msg_wire_len == 0 && !self.msg_compressed
        {
            self.frame = None;
            apply_mask(&mut input[..avail], frame.mask, 0);
            let kind = self.msg.take();
            let msg = match kind {
                Some(MsgKind::Text) => {
                    let r = match crate::utf8::validate(&input[..avail]) {
                        Some(s) => Message::Text(s.to_owned()),
                        None => return Step::Fail(1007, "invalid UTF-8 in text message"),
                    };
                    input.advance(avail);
                    r
                }
                // Large payloads are split off the read buffer without copying; small ones are
                // copied so that a message kept by the application does not pin the (larger)
                // read buffer, which also stays reusable in place.
                _ if avail >= ZERO_COPY_MIN => Message::Binary(input.split_to(avail).freeze()),
                _ => {
                    let b = Bytes::copy_from_slice(&input[..avail]);
                    input.advance(avail);
                    Message::Binary(b)
                }
            };
            return Step::Event(Event::Message(msg));
        }

        if frame.offset == 0 && !self.msg_compressed {
            // Reserve the frame's declared size (already checked against the limit) instead of
            // growing step by step; capped, so a peer announcing huge frames on many connections
            // cannot make us reserve address space it never fills.
            let n = (remaining as usize).min(PRERESERVE_MAX);
            match self.msg {
                Some(MsgKind::Text) => self.text.reserve(n),
                _ => self.binary.reserve(n),
            }
        }
        apply_mask(&mut input[..avail], frame.mask, frame.offset);
        let r = self.feed(frame.fin && whole, avail, input);
        input.advance(avail);
        if let Err(e) = r {
            return Step::Fail(e.0, e.1);
        }
        frame.remaining -= avail as u64;
        frame.offset += avail as u64;
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

    /// Append `input[..n]` (unmasked payload) to the current message; `last` = it ends the
    /// message.
    fn feed(&mut self, last: bool, n: usize, input: &[u8]) -> Result<(), (u16, &'static str)> {
        let chunk = &input[..n];
        self.msg_wire_len += n;
        let kind = self.msg.unwrap_or(MsgKind::Binary);
        if !self.msg_compressed {
            self.msg_len += n;
            return match kind {
                MsgKind::Text => self
                    .text
                    .push(chunk)
                    .map_err(|_| (1007, "invalid UTF-8 in text message")),
                MsgKind::Binary => {
                    self.binary.extend_from_slice(chunk);
                    Ok(())
                }
            };
        }
        if last && self.msg_wire_len == 0 {
            // An empty compressed message (not RFC-valid, that would be 0x00): take it as
            // empty rather than feed the decompressor a lone tail that would desync it.
            return Ok(());
        }
        let max = self.max_message_size;
        let (text, binary, msg_len) = (&mut self.text, &mut self.binary, &mut self.msg_len);
        let mut fail = (1009, "message too big");
        let r = self.inflater.inflate(chunk, last, |out| {
            *msg_len += out.len();
            if *msg_len > max {
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
            Ok(()) => Ok(()),
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
                .map(Message::Text)
                .map_err(|_| (1007, "invalid UTF-8 in text message")),
            _ => Ok(Message::Binary(std::mem::take(&mut self.binary).freeze())),
        }
    }

    fn check_open(&self) -> Result<(), SendError> {
        let failed_but_deferred = self.pending_failure.is_some() && !self.has(CLOSED_SENT);
        if self.has(CLOSED_SENT | CLOSE_RECEIVED) || (self.has(FAILED) && !failed_but_deferred) {
            return Err(SendError(SendErrorKind::Closed));
        }
        Ok(())
    }

    /// Queue the Close of a failure reported while
    /// [`SessionConfig::defer_failure_close`] is set; a no-op otherwise. After it, data sends
    /// fail and [`is_finished`](Session::is_finished) becomes true.
    pub fn send_failure_close(&mut self) {
        if let Some((code, reason)) = self.pending_failure.take() {
            if !self.has(CLOSED_SENT) {
                self.out
                    .push_copy2(FIN | OP_CLOSE, &code.to_be_bytes(), reason.as_bytes());
                self.flags |= CLOSED_SENT;
            }
        }
    }

    /// Queue a data message as one frame (FIN set, never fragmented, unmasked), compressed
    /// (RSV1) when deflate was negotiated and the payload is at least `compress_min_size`.
    /// Payloads of 4 KiB or more are queued without copying (a `String` becomes `Bytes`).
    ///
    /// Fails after a Close was sent or received.
    pub fn send(&mut self, msg: Message) -> Result<(), SendError> {
        self.check_open()?;
        let (opcode, payload) = match &msg {
            Message::Text(s) => (OP_TEXT, s.as_bytes()),
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
            Message::Text(s) if s.len() >= ZERO_COPY_MIN => {
                self.out.push(b0, Bytes::from(s.into_bytes()));
            }
            Message::Text(s) => self.out.push_copy(b0, s.as_bytes()),
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
        if self.pending_failure.is_some() {
            // A failure's Close takes precedence over any other code.
            self.send_failure_close();
            return Ok(());
        }
        self.check_open()?;
        if is_valid_received_code(code) {
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
        self.flags |= CLOSED_SENT | DISCARDING;
        // A data frame in progress is skipped to its end (see `on_data`).
        self.drop_message();
        Ok(())
    }

    /// The closing-handshake state.
    pub fn state(&self) -> State {
        let failure_sent = self.has(FAILED) && self.pending_failure.is_none();
        if self.has(CLOSE_RECEIVED) || (failure_sent && self.out.len() == 0) {
            State::Closed
        } else if self.has(CLOSED_SENT) {
            State::CloseSent
        } else {
            State::Open
        }
    }

    /// True once a Close has been both sent (queued) and received, or the connection failed:
    /// the server should write out [`buffered`](Session::buffered) bytes and then close TCP.
    pub fn is_finished(&self) -> bool {
        (self.has(FAILED) && self.pending_failure.is_none())
            || (self.has(CLOSED_SENT) && self.has(CLOSE_RECEIVED))
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
    }
}

#[cfg(test)]
mod tests;
