//! Frame decoder (no deflate): arbitrary client bytes fed in arbitrary chunks to
//! `Session::read_event`, interleaved with `send` / `ping` / `close` / partial writes.
//!
//! Input layout: `[cfg] [n] [n × (op, arg)] [client wire bytes …]`.
//! * `cfg`: bits 0-2 pick `max_message_size`, bit 3 `defer_failure_close`, bits 4-7 the chunk
//!   size used for the wire bytes left over after the ops.
//! * ops: feed a chunk, send text/binary, ping, close, partial write, `send_failure_close`.
//!
//! So a seed is `00 00` followed by raw (masked) client frames.
//!
//! Checked:
//! * the events equal those of an independent whole-stream reference decoder written here from
//!   RFC 6455 and the crate README (so they do not depend on the chunking either);
//! * no event after `Close`/`Failed`; failure codes are 1002/1007/1009; messages fit the limit;
//! * `buffered()` always equals the bytes of the expected frames not yet written, and agrees
//!   with `chunks_vectored` + `advance` for any slice array size and partial writes;
//! * `state()`/`is_finished()` follow the documented rules;
//! * the output parses as valid, minimal, unmasked server frames and is exactly the expected
//!   frames (our sends, pongs, the Close echo / failure Close / our Close) in order.
#![no_main]

mod common;

use bytes::{Bytes, BytesMut};
use common::ServerFrame;
use common::{is_sendable_close_code, parse_server_output, write_all, write_some, Reader};
use libfuzzer_sys::fuzz_target;
use pagi_ws::{Event, Message, Session, SessionConfig, State};

const MAX_SIZES: [usize; 8] = [16 << 20, 0, 1, 125, 126, 4096, 65_536, 70_000];
const FINAL_CHUNKS: [usize; 16] = [
    usize::MAX,
    1,
    2,
    3,
    5,
    7,
    13,
    64,
    100,
    512,
    1000,
    4096,
    1,
    2,
    3,
    4,
];
const CLOSE_CODES: [u16; 20] = [
    1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1014, 1015, 1016, 2999, 3000, 4999, 5000,
    0, 999, 65535, 1009,
];

/// An event in comparable form.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
    Failed(u16),
}

fn ev(e: &Event) -> Ev {
    match e {
        Event::Message(Message::Text(s)) => Ev::Text(s.to_string()),
        Event::Message(Message::Binary(b)) => Ev::Binary(b.to_vec()),
        Event::Ping(p) => Ev::Ping(p.to_vec()),
        Event::Pong(p) => Ev::Pong(p.to_vec()),
        Event::Close { code, reason } => Ev::Close(*code, reason.clone()),
        Event::Failed { code, .. } => Ev::Failed(*code),
    }
}

// ----------------------------------------------------------------------------------------------
// Reference decoder: whole stream at once, frame by frame.

enum RefHeader {
    Incomplete,
    Invalid,
    Header {
        fin: bool,
        rsv1: bool,
        opcode: u8,
        mask: [u8; 4],
        len: u64,
        hlen: usize,
    },
}

/// RFC 6455 §5.2 header, judged field by field as soon as each field is complete.
fn ref_header(b: &[u8]) -> RefHeader {
    let Some(&b0) = b.first() else {
        return RefHeader::Incomplete;
    };
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    let opcode = b0 & 0x0F;
    let control = opcode >= 8;
    if !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) || b0 & 0x30 != 0 || (control && (rsv1 || !fin)) {
        return RefHeader::Invalid;
    }
    let Some(&b1) = b.get(1) else {
        return RefHeader::Incomplete;
    };
    if b1 & 0x80 == 0 || (control && b1 & 0x7F > 125) {
        return RefHeader::Invalid;
    }
    let (len, at) = match b1 & 0x7F {
        126 => match b.get(2..4) {
            Some(x) => (u64::from(u16::from_be_bytes([x[0], x[1]])), 4),
            None => return RefHeader::Incomplete,
        },
        127 => match b.get(2..10) {
            Some(x) => {
                let l = u64::from_be_bytes(x.try_into().unwrap());
                if l >= 1 << 63 {
                    return RefHeader::Invalid;
                }
                (l, 10)
            }
            None => return RefHeader::Incomplete,
        },
        n => (u64::from(n), 2),
    };
    match b.get(at..at + 4) {
        Some(m) => RefHeader::Header {
            fin,
            rsv1,
            opcode,
            mask: m.try_into().unwrap(),
            len,
            hlen: at + 4,
        },
        None => RefHeader::Incomplete,
    }
}

enum Utf8 {
    Valid,
    /// Valid so far, ends inside a character.
    Prefix,
    Invalid,
}

fn utf8_state(b: &[u8]) -> Utf8 {
    match std::str::from_utf8(b) {
        Ok(_) => Utf8::Valid,
        Err(e) if e.error_len().is_none() => Utf8::Prefix,
        Err(_) => Utf8::Invalid,
    }
}

fn unmask(p: &[u8], mask: [u8; 4]) -> Vec<u8> {
    p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect()
}

/// The events a server must report for the client stream `w`, given that `close()` was called
/// after the first `close_at` bytes had been fed (and everything decodable from them decoded).
fn reference(w: &[u8], max: usize, close_at: Option<usize>) -> Vec<Ev> {
    let mut evs = Vec::new();
    let mut pos = 0usize;
    // Message being reassembled: (text?, unmasked bytes so far).
    let mut msg: Option<(bool, Vec<u8>)> = None;
    let after_close = |offset: usize| close_at.is_some_and(|x| offset > x);
    loop {
        let (fin, rsv1, opcode, mask, len, hlen) = match ref_header(&w[pos..]) {
            RefHeader::Incomplete => return evs,
            RefHeader::Invalid => {
                evs.push(Ev::Failed(1002));
                return evs;
            }
            RefHeader::Header {
                fin,
                rsv1,
                opcode,
                mask,
                len,
                hlen,
            } => (fin, rsv1, opcode, mask, len, hlen),
        };
        let start = pos + hlen;
        let avail = (w.len() - start) as u64;
        let complete = avail >= len;
        let end = start.saturating_add(len.min(avail) as usize);
        if opcode >= 8 {
            if !complete {
                return evs;
            }
            let payload = unmask(&w[start..end], mask);
            // A control frame is handled once all of it is there.
            let discarded = after_close(end);
            match opcode {
                0x9 if !discarded => evs.push(Ev::Ping(payload)),
                0xA if !discarded => evs.push(Ev::Pong(payload)),
                0x8 => {
                    let e = match &payload[..] {
                        [] => Ev::Close(1005, String::new()),
                        [_] => Ev::Failed(1002),
                        [a, b, rest @ ..] => {
                            let code = u16::from_be_bytes([*a, *b]);
                            if !is_sendable_close_code(code) {
                                Ev::Failed(1002)
                            } else {
                                match std::str::from_utf8(rest) {
                                    Ok(r) => Ev::Close(code, r.to_owned()),
                                    Err(_) => Ev::Failed(1007),
                                }
                            }
                        }
                    };
                    evs.push(e);
                    return evs;
                }
                _ => {}
            }
            pos = end;
            continue;
        }
        // Data frame. Its header was taken after our Close: skipped, no checks.
        if after_close(start) {
            msg = None;
            if !complete {
                return evs;
            }
            pos = end;
            continue;
        }
        let size_so_far = match (&msg, opcode) {
            (None, 0) => {
                evs.push(Ev::Failed(1002)); // continuation without a message
                return evs;
            }
            (Some(_), 0) if rsv1 => {
                evs.push(Ev::Failed(1002));
                return evs;
            }
            (Some((_, b)), 0) => b.len() as u64,
            (Some(_), _) => {
                evs.push(Ev::Failed(1002)); // new message inside a fragmented one
                return evs;
            }
            (None, _) if rsv1 => {
                evs.push(Ev::Failed(1002)); // no extension negotiated
                return evs;
            }
            (None, _) => 0,
        };
        if size_so_far + len > max as u64 {
            evs.push(Ev::Failed(1009));
            return evs;
        }
        if opcode != 0 {
            msg = Some((opcode == 1, Vec::new()));
        }
        // Bytes of this frame decoded before our Close (all of them if none).
        let cut = match close_at {
            Some(x) if end > x => x.max(start),
            _ => end,
        };
        let (text, buf) = msg.as_mut().unwrap();
        buf.extend(unmask(&w[start..cut], mask));
        if *text && matches!(utf8_state(buf), Utf8::Invalid) {
            evs.push(Ev::Failed(1007));
            return evs;
        }
        if cut < end {
            // Our Close dropped the message; the rest of the frame is skipped.
            msg = None;
            if !complete {
                return evs;
            }
            pos = end;
            continue;
        }
        if !complete {
            return evs;
        }
        pos = end;
        if fin {
            let (text, buf) = msg.take().unwrap();
            if text {
                match String::from_utf8(buf) {
                    Ok(s) => evs.push(Ev::Text(s)),
                    Err(_) => {
                        evs.push(Ev::Failed(1007));
                        return evs;
                    }
                }
            } else {
                evs.push(Ev::Binary(buf));
            }
        }
    }
}

// ----------------------------------------------------------------------------------------------
// The session under test, with a model of what it must write.

struct Driver {
    s: Session,
    defer: bool,
    max: usize,
    input: BytesMut,
    fed: usize,
    events: Vec<Ev>,
    terminal: bool,
    close_sent: bool,
    close_received: bool,
    failed: bool,
    pending: Option<(u16, &'static str)>,
    expected: Vec<ServerFrame>,
    expected_bytes: usize,
    wire_out: Vec<u8>,
    close_at: Option<usize>,
}

fn encoded_len(f: &ServerFrame) -> usize {
    let n = f.payload.len();
    n + if n < 126 {
        2
    } else if n <= 0xFFFF {
        4
    } else {
        10
    }
}

fn text_payload(n: usize, seed: u8) -> String {
    const PIECES: [&str; 6] = ["a", "é", "€", "𝄞", "z", " "];
    let mut s = String::with_capacity(n);
    let mut i = usize::from(seed);
    loop {
        let p = PIECES[i % PIECES.len()];
        if s.len() + p.len() > n {
            return s;
        }
        s.push_str(p);
        i = i.wrapping_mul(5).wrapping_add(3);
    }
}

fn close_frame(code: u16, reason: &[u8]) -> ServerFrame {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    ServerFrame { b0: 0x88, payload }
}

impl Driver {
    fn new(cfg: u8) -> Driver {
        let max = MAX_SIZES[usize::from(cfg & 7)];
        let defer = cfg & 8 != 0;
        Driver {
            s: Session::new(SessionConfig {
                max_message_size: max,
                defer_failure_close: defer,
                ..SessionConfig::default()
            }),
            defer,
            max,
            input: BytesMut::new(),
            fed: 0,
            events: Vec::new(),
            terminal: false,
            close_sent: false,
            close_received: false,
            failed: false,
            pending: None,
            expected: Vec::new(),
            expected_bytes: 0,
            wire_out: Vec::new(),
            close_at: None,
        }
    }

    fn expect(&mut self, f: ServerFrame) {
        self.expected_bytes += encoded_len(&f);
        self.expected.push(f);
    }

    fn may_send(&self) -> bool {
        !(self.close_sent || self.close_received || (self.failed && self.pending.is_none()))
    }

    fn check(&self) {
        let s = &self.s;
        let done = self.failed && self.pending.is_none();
        assert_eq!(
            s.is_finished(),
            done || (self.close_sent && self.close_received),
            "is_finished"
        );
        let want = if self.close_received || (done && s.buffered() == 0) {
            State::Closed
        } else if self.close_sent {
            State::CloseSent
        } else {
            State::Open
        };
        assert_eq!(s.state(), want, "state");
        assert_eq!(
            s.buffered(),
            self.expected_bytes - self.wire_out.len(),
            "buffered() differs from the frames that should be queued"
        );
    }

    fn feed(&mut self, wire: &[u8], n: usize) {
        let start = self.fed.min(wire.len());
        let end = start.saturating_add(n).min(wire.len());
        self.input.extend_from_slice(&wire[start..end]);
        self.fed = end;
        self.pump();
    }

    fn pump(&mut self) {
        while let Some(e) = self.s.read_event(&mut self.input) {
            assert!(!self.terminal, "event after Close/Failed: {e:?}");
            match &e {
                Event::Message(m) => {
                    let n = match m {
                        Message::Text(t) => t.len(),
                        Message::Binary(b) => b.len(),
                    };
                    assert!(n <= self.max, "message of {n} bytes over the limit");
                }
                Event::Ping(p) => {
                    assert!(p.len() <= 125);
                    self.expect(ServerFrame {
                        b0: 0x8A,
                        payload: p.to_vec(),
                    });
                }
                Event::Pong(p) => assert!(p.len() <= 125),
                Event::Close { code, reason } => {
                    if !self.close_sent {
                        let payload = if *code == 1005 {
                            assert!(reason.is_empty());
                            Vec::new()
                        } else {
                            code.to_be_bytes().to_vec()
                        };
                        self.expect(ServerFrame { b0: 0x88, payload });
                        self.close_sent = true;
                    }
                    self.close_received = true;
                    self.terminal = true;
                }
                Event::Failed { code, reason } => {
                    assert!(matches!(code, 1002 | 1007 | 1009), "failure code {code}");
                    assert!(!reason.is_empty() && reason.len() <= 123);
                    if !self.close_sent {
                        if self.defer {
                            self.pending = Some((*code, reason));
                        } else {
                            self.expect(close_frame(*code, reason.as_bytes()));
                            self.close_sent = true;
                        }
                    }
                    self.failed = true;
                    self.terminal = true;
                }
            }
            self.events.push(ev(&e));
            self.check();
        }
        if self.terminal {
            assert!(
                self.input.is_empty(),
                "input kept after the session stopped reading"
            );
        }
        self.check();
    }

    fn send(&mut self, msg: Message) {
        let ok = self.may_send();
        let frame = match &msg {
            Message::Text(t) => ServerFrame {
                b0: 0x81,
                payload: t.as_bytes().to_vec(),
            },
            Message::Binary(b) => ServerFrame {
                b0: 0x82,
                payload: b.to_vec(),
            },
        };
        let r = self.s.send(msg);
        assert_eq!(r.is_ok(), ok, "send result {r:?}");
        if ok {
            self.expect(frame);
        }
        self.check();
    }

    fn ping(&mut self, payload: Vec<u8>) {
        let ok = self.may_send() && payload.len() <= 125;
        let r = self.s.ping(Bytes::from(payload.clone()));
        assert_eq!(r.is_ok(), ok, "ping result {r:?}");
        if ok {
            self.expect(ServerFrame { b0: 0x89, payload });
        }
        self.check();
    }

    fn send_failure_close(&mut self) {
        self.s.send_failure_close();
        if let Some((code, reason)) = self.pending.take() {
            self.expect(close_frame(code, reason.as_bytes()));
            self.close_sent = true;
        }
        self.check();
    }

    fn close(&mut self, code: u16, reason: &str) {
        if self.pending.is_some() {
            assert!(self.s.close(code, reason).is_ok());
            self.send_failure_close();
            return;
        }
        let ok = self.may_send();
        let r = self.s.close(code, reason);
        assert_eq!(r.is_ok(), ok, "close result {r:?}");
        if ok {
            let frame = if is_sendable_close_code(code) {
                // The longest prefix of at most 123 bytes that ends on a character boundary.
                let cut = (0..=reason.len().min(123))
                    .rev()
                    .find(|&i| reason.is_char_boundary(i))
                    .unwrap();
                close_frame(code, &reason.as_bytes()[..cut])
            } else {
                ServerFrame {
                    b0: 0x88,
                    payload: Vec::new(),
                }
            };
            self.expect(frame);
            self.close_sent = true;
            self.close_at.get_or_insert(self.fed);
        }
        self.check();
    }
}

fn payload_size(arg: u8) -> usize {
    if arg < 128 {
        usize::from(arg)
    } else {
        usize::from(arg - 128) * 600 + usize::from(arg & 7)
    }
}

fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let cfg = r.u8();
    let nops = usize::from(r.u8());
    let ops = r.take(nops * 2);
    let wire = r.rest();

    let mut d = Driver::new(cfg);
    for op in ops.chunks(2) {
        let (kind, arg) = (op[0], op.get(1).copied().unwrap_or(0));
        match kind % 10 {
            0 => d.feed(wire, usize::from(arg) + 1),
            1 => d.feed(wire, (usize::from(arg) + 1) * 64),
            2 => d.send(Message::Text(text_payload(payload_size(arg), kind).into())),
            3 => {
                let n = payload_size(arg);
                let b: Vec<u8> = (0..n).map(|i| (i as u8) ^ kind).collect();
                d.send(Message::Binary(Bytes::from(b)));
            }
            4 => d.ping(vec![kind; usize::from(arg) % 130]),
            5 => {
                let code = CLOSE_CODES[usize::from(arg) % CLOSE_CODES.len()];
                let reason = text_payload(usize::from(kind / 10) * 5, arg);
                d.close(code, &reason);
            }
            6 => {
                write_some(
                    &mut d.s,
                    &mut d.wire_out,
                    usize::from(kind / 10) % 5 + 1,
                    usize::from(arg) * 31,
                );
                d.check();
            }
            7 => d.send_failure_close(),
            8 => {
                write_all(&mut d.s, &mut d.wire_out, usize::from(arg));
                d.check();
            }
            _ => d.pump(),
        }
    }
    let chunk = FINAL_CHUNKS[usize::from(cfg >> 4)];
    while d.fed < wire.len() {
        d.feed(wire, chunk);
    }
    d.pump();
    write_all(&mut d.s, &mut d.wire_out, 0);
    d.check();

    // The events are those of the reference, whatever the chunking.
    let want = reference(wire, d.max, d.close_at);
    assert_eq!(d.events, want, "events differ from the reference decoder");

    // The output is exactly the expected frames.
    let frames = parse_server_output(&d.wire_out, false);
    assert!(
        frames == d.expected,
        "server output differs from the expected frames"
    );

    // The whole stream in one read gives the same events.
    if d.close_at.is_none() {
        let mut s = Session::new(SessionConfig {
            max_message_size: d.max,
            defer_failure_close: d.defer,
            ..SessionConfig::default()
        });
        let mut input = BytesMut::from(wire);
        let mut evs = Vec::new();
        while let Some(e) = s.read_event(&mut input) {
            evs.push(ev(&e));
        }
        assert_eq!(evs, want, "single-read events differ");
    }
}

fuzz_target!(|data: &[u8]| run(data));
