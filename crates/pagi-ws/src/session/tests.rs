use super::*;
use crate::deflate::TAIL;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

#[path = "../../examples/support/client_frame.rs"]
mod support;

/// A client frame: first byte as given, masked with `MASK` unless `mask` is false.
fn frame_m(b0: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    support::client_frame(b0, payload, mask.then_some(MASK))
}

fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    frame_m(b0, payload, true)
}

fn session() -> Session {
    Session::new(SessionConfig::default())
}

fn deflate_session(p: DeflateParams) -> Session {
    Session::new(SessionConfig {
        deflate: Some(p),
        ..SessionConfig::default()
    })
}

/// Feed `bytes` and collect every event.
fn events(s: &mut Session, bytes: &[u8]) -> Vec<Event> {
    let mut input = BytesMut::from(bytes);
    let mut evs = Vec::new();
    while let Some(e) = s.read_event(&mut input) {
        evs.push(e);
    }
    evs
}

fn one(s: &mut Session, bytes: &[u8]) -> Event {
    let mut evs = events(s, bytes);
    assert_eq!(evs.len(), 1, "{evs:?}");
    evs.pop().unwrap()
}

/// Take everything queued for the socket.
fn take_wire(s: &mut Session) -> Vec<u8> {
    let mut out = Vec::new();
    while s.buffered() > 0 {
        let mut slices = [IoSlice::new(&[]); 16];
        let n = s.chunks_vectored(&mut slices);
        assert!(n > 0);
        let bytes: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        out.extend_from_slice(&bytes);
        s.advance(bytes.len());
    }
    out
}

/// Split server output into (first byte, payload) frames; asserts they are unmasked.
fn server_frames(mut w: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    while !w.is_empty() {
        assert_eq!(w[1] & 0x80, 0, "server frames are never masked");
        let (len, at) = match w[1] & 0x7F {
            126 => (u16::from_be_bytes([w[2], w[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(w[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        v.push((w[0], w[at..at + len].to_vec()));
        w = &w[at + len..];
    }
    v
}

fn failed(code: u16) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Failed { code: c, .. } if *c == code)
}

/// Feeds `bytes` to a fresh session (configured by `s`) and expects a failure with `code`
/// and a Close frame with that code on the wire.
fn expect_fail(mut s: Session, bytes: &[u8], code: u16) {
    let evs = events(&mut s, bytes);
    assert!(
        evs.last().is_some_and(failed(code)),
        "expected failure {code}, got {evs:?}"
    );
    assert!(s.is_finished());
    assert_eq!(s.state(), State::CloseSent);
    let frames = server_frames(&take_wire(&mut s));
    let (b0, payload) = frames.last().unwrap();
    assert_eq!(*b0, 0x88);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code);
    assert!(std::str::from_utf8(&payload[2..]).is_ok());
    assert_eq!(s.state(), State::Closed);
    // Later input is ignored, sends fail.
    assert!(events(&mut s, &frame(0x81, b"hi")).is_empty());
    assert!(s.send(Message::Text("x".into())).is_err());
}

#[test]
fn masked_text_and_binary() {
    let mut s = session();
    assert_eq!(
        one(&mut s, &frame(0x81, b"Hello")),
        Event::Message(Message::Text("Hello".into()))
    );
    assert_eq!(
        one(&mut s, &frame(0x82, &[0, 1, 2, 255])),
        Event::Message(Message::Binary(Bytes::from_static(&[0, 1, 2, 255])))
    );
    assert_eq!(s.state(), State::Open);
    assert_eq!(s.buffered(), 0);
}

#[test]
fn unmasked_frame_fails() {
    expect_fail(session(), &frame_m(0x81, b"Hello", false), 1002);
}

#[test]
fn all_length_encodings_round_trip() {
    for len in [
        0usize, 1, 125, 126, 127, 128, 4095, 4096, 65535, 65536, 100_000,
    ] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let mut s = session();
        let wire = [frame(0x82, &payload), frame(0x81, text.as_bytes())].concat();
        let evs = events(&mut s, &wire);
        assert_eq!(
            evs,
            vec![
                Event::Message(Message::Binary(payload.clone().into())),
                Event::Message(Message::Text(text.clone().into())),
            ],
            "len {len}"
        );
        for e in evs {
            let Event::Message(m) = e else { unreachable!() };
            s.send(m).unwrap();
        }
        let frames = server_frames(&take_wire(&mut s));
        assert_eq!(
            frames,
            vec![(0x82, payload.clone()), (0x81, text.into_bytes())],
            "len {len}"
        );

        // Byte by byte: the same result (text streams through the UTF-8 validator).
        let mut s = session();
        let mut input = BytesMut::new();
        let mut got = Vec::new();
        for b in &wire {
            input.extend_from_slice(&[*b]);
            while let Some(e) = s.read_event(&mut input) {
                got.push(e);
            }
        }
        assert_eq!(got.len(), 2, "len {len}");
        assert_eq!(got[0], Event::Message(Message::Binary(payload.into())));
    }
}

#[test]
fn exact_header_bytes_for_lengths() {
    for (len, hdr) in [
        (0usize, vec![0x82, 0]),
        (125, vec![0x82, 125]),
        (126, vec![0x82, 126, 0, 126]),
        (127, vec![0x82, 126, 0, 127]),
        (65535, vec![0x82, 126, 0xFF, 0xFF]),
        (65536, vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
    ] {
        let mut s = session();
        s.send(Message::Binary(vec![9u8; len].into())).unwrap();
        let w = take_wire(&mut s);
        assert_eq!(&w[..hdr.len()], &hdr[..], "len {len}");
        assert_eq!(w.len(), hdr.len() + len);
    }
}

#[test]
fn fragmented_with_interleaved_ping() {
    let mut s = session();
    let wire = [
        frame(0x01, b"Hel"),
        frame(0x89, b"ping!"),
        frame(0x00, b"lo "),
        frame(0x8A, b"pong"),
        frame(0x00, b""),
        frame(0x80, "wörld".as_bytes()),
    ]
    .concat();
    let evs = events(&mut s, &wire);
    assert_eq!(
        evs,
        vec![
            Event::Ping(Bytes::from_static(b"ping!")),
            Event::Pong(Bytes::from_static(b"pong")),
            Event::Message(Message::Text("Hello wörld".into())),
        ]
    );
    assert_eq!(
        server_frames(&take_wire(&mut s)),
        vec![(0x8A, b"ping!".to_vec())]
    );

    // Binary fragments, including an empty first one.
    let wire = [frame(0x02, b""), frame(0x00, &[1, 2]), frame(0x80, &[3])].concat();
    assert_eq!(
        events(&mut s, &wire),
        vec![Event::Message(Message::Binary(Bytes::from_static(&[
            1, 2, 3
        ])))]
    );
}

#[test]
fn protocol_errors_1002() {
    let deflate = || deflate_session(DeflateParams::default());
    let cases: Vec<(&str, Session, Vec<u8>)> = vec![
        ("rsv2", session(), frame(0xA1, b"x")),
        ("rsv3", session(), frame(0x91, b"x")),
        ("rsv1 without deflate", session(), frame(0xC1, b"x")),
        ("rsv2 with deflate", deflate(), frame(0xA1, b"x")),
        ("rsv1 on ping", deflate(), frame(0xC9, b"x")),
        ("rsv1 on close", deflate(), frame(0xC8, &[3, 232])),
        (
            "rsv1 on continuation",
            deflate(),
            [frame(0x01, b"a"), frame(0xC0, b"b")].concat(),
        ),
        ("ping too long", session(), frame(0x89, &[0; 126])),
        ("close too long", session(), frame(0x88, &[0; 126])),
        ("fragmented ping", session(), frame(0x09, b"x")),
        ("fragmented close", session(), frame(0x08, &[3, 232])),
        ("continuation without message", session(), frame(0x80, b"x")),
        (
            "data frame inside fragmented message",
            session(),
            [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
        ),
        (
            "binary inside fragmented text",
            session(),
            [frame(0x01, b"a"), frame(0x02, b"b")].concat(),
        ),
        (
            "64-bit length with MSB",
            session(),
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
        ),
    ];
    for (name, s, bytes) in cases {
        eprintln!("case {name}");
        expect_fail(s, &bytes, 1002);
    }
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        expect_fail(session(), &frame(0x80 | op, b""), 1002);
        // Fails on the first byte, before the rest of the frame exists.
        expect_fail(session(), &[0x80 | op], 1002);
    }
}

#[test]
fn pending_events_before_error_are_delivered() {
    let mut s = session();
    let wire = [frame(0x81, b"ok"), frame(0x89, b"p"), frame(0x83, b"")].concat();
    let evs = events(&mut s, &wire);
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[0], Event::Message(Message::Text("ok".into())));
    assert_eq!(evs[1], Event::Ping(Bytes::from_static(b"p")));
    assert!(failed(1002)(&evs[2]));
    let frames = server_frames(&take_wire(&mut s));
    assert_eq!(frames[0], (0x8A, b"p".to_vec()));
    assert_eq!(frames[1].0, 0x88);
}

#[test]
fn too_big_1009() {
    let small = || {
        Session::new(SessionConfig {
            max_message_size: 1000,
            ..SessionConfig::default()
        })
    };
    // Fails on the declared length alone, before any payload arrives.
    let mut hdr = frame(0x82, &vec![0u8; 1001]);
    hdr.truncate(8);
    expect_fail(small(), &hdr, 1009);
    // A huge declared length does not allocate.
    expect_fail(
        small(),
        &[
            0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4,
        ],
        1009,
    );
    // Reassembled message over the limit.
    let wire = [frame(0x02, &[0; 600]), frame(0x80, &[0; 401])].concat();
    expect_fail(small(), &wire, 1009);
    // Exactly at the limit is fine.
    let mut s = small();
    let wire = [frame(0x02, &[0; 600]), frame(0x80, &[0; 400])].concat();
    assert!(matches!(one(&mut s, &wire), Event::Message(Message::Binary(b)) if b.len() == 1000));
}

#[test]
fn invalid_utf8_1007() {
    expect_fail(session(), &frame(0x81, b"\xce\xba\xff"), 1007);
    // Incomplete at the end of the message.
    expect_fail(
        session(),
        &[frame(0x01, b"a\xE2"), frame(0x80, b"\x82")].concat(),
        1007,
    );
    // Incomplete sequence at a fragment boundary is fine.
    let mut s = session();
    assert_eq!(
        one(
            &mut s,
            &[
                frame(0x01, b"a\xE2"),
                frame(0x00, b"\x82"),
                frame(0x80, b"\xACb")
            ]
            .concat()
        ),
        Event::Message(Message::Text("a€b".into()))
    );
}

#[test]
fn utf8_fast_fail_across_fragments() {
    // Like Autobahn 6.4.1: fragment 1 valid, fragment 2 makes it invalid; the failure must be
    // reported before fragment 3 is even sent.
    let payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64";
    let mut s = session();
    assert!(events(&mut s, &frame(0x01, &payload[..11])).is_empty());
    let evs = events(&mut s, &frame(0x00, &payload[11..13]));
    assert!(evs.last().is_some_and(failed(1007)), "{evs:?}");

    // Like 6.4.3: one frame delivered in pieces; fail on the piece with the bad bytes.
    let wire = frame(0x81, payload);
    let mut s = session();
    let hdr = 6;
    assert!(events(&mut s, &wire[..hdr + 11]).is_empty());
    let mut input = BytesMut::from(&wire[hdr + 11..hdr + 13]);
    let e = s.read_event(&mut input);
    assert!(e.as_ref().is_some_and(failed(1007)), "{e:?}");

    // A lone valid lead byte at the end of a piece is not an error yet.
    let wire = frame(0x81, "κ".as_bytes());
    let mut s = session();
    assert!(events(&mut s, &wire[..7]).is_empty());
    let mut input = BytesMut::from(&wire[7..]);
    assert_eq!(
        s.read_event(&mut input),
        Some(Event::Message(Message::Text("κ".into())))
    );
}

#[test]
fn close_code_table() {
    for code in (0u16..=5000).chain([u16::MAX]) {
        let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        let mut s = session();
        let evs = events(&mut s, &frame(0x88, &code.to_be_bytes()));
        if valid {
            assert_eq!(
                evs,
                vec![Event::Close {
                    code,
                    reason: String::new()
                }],
                "code {code}"
            );
            assert_eq!(
                server_frames(&take_wire(&mut s)),
                vec![(0x88, code.to_be_bytes().to_vec())]
            );
            assert!(s.is_finished());
            assert_eq!(s.state(), State::Closed);
        } else {
            assert!(evs.last().is_some_and(failed(1002)), "code {code}: {evs:?}");
        }
    }
}

#[test]
fn close_echo_and_payload_rules() {
    // Empty close: event says 1005, echo is empty.
    let mut s = session();
    assert_eq!(
        one(&mut s, &frame(0x88, b"")),
        Event::Close {
            code: 1005,
            reason: String::new()
        }
    );
    assert_eq!(server_frames(&take_wire(&mut s)), vec![(0x88, vec![])]);
    assert!(s.is_finished());
    assert!(s.send(Message::Text("late".into())).is_err());
    assert!(s.ping(Bytes::new()).is_err());
    assert!(s.close(1000, "").is_err());
    // Everything after the close is ignored.
    assert!(events(&mut s, &frame(0x81, b"x")).is_empty());
    assert!(events(&mut s, &frame(0x83, b"x")).is_empty());

    // Code and reason: echo the code.
    let mut s = session();
    let mut p = 1001u16.to_be_bytes().to_vec();
    p.extend_from_slice("bye ☺".as_bytes());
    assert_eq!(
        one(&mut s, &frame(0x88, &p)),
        Event::Close {
            code: 1001,
            reason: "bye ☺".into()
        }
    );
    assert_eq!(
        server_frames(&take_wire(&mut s)),
        vec![(0x88, vec![3, 233])]
    );

    // 1-byte payload, invalid reason.
    expect_fail(session(), &frame(0x88, &[3]), 1002);
    expect_fail(session(), &frame(0x88, &[3, 232, 0xFF, 0xFE]), 1007);

    // Close in the middle of a fragmented message: the partial message is dropped.
    let mut s = session();
    let evs = events(
        &mut s,
        &[frame(0x01, b"part"), frame(0x88, &[3, 232])].concat(),
    );
    assert_eq!(
        evs,
        vec![Event::Close {
            code: 1000,
            reason: String::new()
        }]
    );
}

#[test]
fn server_initiated_close() {
    let mut s = session();
    s.close(4000, &"é".repeat(100)).unwrap();
    assert_eq!(s.state(), State::CloseSent);
    assert!(!s.is_finished());
    assert!(s.close(1000, "").is_err(), "idempotent: second close fails");
    assert!(s.send(Message::Binary(Bytes::new())).is_err());
    let frames = server_frames(&take_wire(&mut s));
    assert_eq!(frames.len(), 1);
    assert_eq!(
        frames[0].1.len(),
        2 + 122,
        "reason cut at a char boundary, <= 123"
    );
    // Data (even fragmented) and pings are skipped until the peer's Close.
    let wire = [
        frame(0x81, b"ignored"),
        frame(0x01, b"frag"),
        frame(0x89, b"ping"),
        frame(0x80, b"ment"),
        frame(0x88, &[3, 232]),
    ]
    .concat();
    assert_eq!(
        events(&mut s, &wire),
        vec![Event::Close {
            code: 1000,
            reason: String::new()
        }]
    );
    assert_eq!(s.buffered(), 0, "no echo of the peer's close, no pong");
    assert!(s.is_finished());
    assert_eq!(s.state(), State::Closed);

    // Codes not allowed on the wire give an empty close payload.
    for code in [1005u16, 1006, 1015, 999, 5000, 2000] {
        let mut s = session();
        s.close(code, "reason").unwrap();
        assert_eq!(
            server_frames(&take_wire(&mut s)),
            vec![(0x88, vec![])],
            "{code}"
        );
    }

    // Close while a large frame is half received: the rest is skipped.
    let mut s = session();
    let wire = frame(0x82, &[5u8; 1000]);
    assert!(events(&mut s, &wire[..500]).is_empty());
    s.close(1000, "").unwrap();
    let rest = [&wire[500..], &frame(0x88, b"")[..]].concat();
    assert_eq!(
        events(&mut s, &rest),
        vec![Event::Close {
            code: 1005,
            reason: String::new()
        }]
    );
}

#[test]
fn ping_rules() {
    let mut s = session();
    s.ping(Bytes::from_static(b"abc")).unwrap();
    assert!(s.ping(Bytes::from(vec![0u8; 126])).is_err());
    s.ping(Bytes::from(vec![1u8; 125])).unwrap();
    let frames = server_frames(&take_wire(&mut s));
    assert_eq!(frames[0], (0x89, b"abc".to_vec()));
    assert_eq!(frames[1].1.len(), 125);
}

#[test]
fn failed_state_and_finish() {
    let mut s = session();
    let _ = events(&mut s, &frame(0x8F, b""));
    assert!(s.is_finished());
    assert_eq!(s.state(), State::CloseSent);
    let n = s.buffered();
    s.advance(n);
    assert_eq!(s.state(), State::Closed);
    // Failure after our own close queues no second close.
    let mut s = session();
    s.close(1000, "").unwrap();
    let before = s.buffered();
    let evs = events(&mut s, &frame(0xA1, b""));
    assert!(evs.last().is_some_and(failed(1002)));
    assert_eq!(s.buffered(), before);
}

#[test]
fn large_payloads_are_not_copied() {
    let mut s = session();
    let text = "x".repeat(10_000);
    let ptr = text.as_ptr();
    s.send(Message::Text(text.into())).unwrap();
    let bin = Bytes::from(vec![1u8; 5000]);
    let bptr = bin.as_ptr();
    s.send(Message::Binary(bin)).unwrap();
    s.send(Message::Text("small".into())).unwrap();
    let mut slices = [IoSlice::new(&[]); 8];
    let n = s.chunks_vectored(&mut slices);
    assert_eq!(n, 5, "hdr, text, hdr, binary, small frame");
    assert_eq!(slices[1].as_ptr(), ptr);
    assert_eq!(slices[3].as_ptr(), bptr);
    assert_eq!(&slices[0][..], &[0x81, 126, 0x27, 0x10]);
    assert_eq!(&slices[4][..], b"\x81\x05small");

    // Zero-copy on input too: a whole binary frame in the buffer becomes the message.
    let mut s = session();
    let mut input = BytesMut::from(&frame(0x82, &[7u8; 5000])[..]);
    let base = input.as_ptr() as usize;
    let Some(Event::Message(Message::Binary(b))) = s.read_event(&mut input) else {
        panic!()
    };
    assert_eq!(b.as_ptr() as usize, base + 8);
    // Small ones are copied (they must not pin the read buffer).
    let mut input = BytesMut::from(&frame(0x82, &[7u8; 300])[..]);
    let base = input.as_ptr() as usize;
    let Some(Event::Message(Message::Binary(b))) = s.read_event(&mut input) else {
        panic!()
    };
    assert_ne!(b.as_ptr() as usize, base + 8);
    assert_eq!(&b[..], &[7u8; 300][..]);
    // A message near the end of a large allocation is copied, not split off: it would pin
    // the whole allocation (the caller says how large it is).
    let mut input = BytesMut::with_capacity(128 * 1024);
    input.extend_from_slice(&[0u8; 100_000]);
    input.advance(100_000);
    input.extend_from_slice(&frame(0x82, &[7u8; 5000]));
    let base = input.as_ptr() as usize;
    s.set_input_allocation(128 * 1024);
    let Some(Event::Message(Message::Binary(b))) = s.read_event(&mut input) else {
        panic!()
    };
    assert_ne!(b.as_ptr() as usize, base + 8, "copied");
    s.set_input_allocation(0);
    // Text as well: validated in place, then handed over without a copy...
    let text = "κόσμε ".repeat(1000);
    let mut input = BytesMut::from(&frame(0x81, text.as_bytes())[..]);
    let base = input.as_ptr() as usize;
    let Some(Event::Message(Message::Text(t))) = s.read_event(&mut input) else {
        panic!()
    };
    assert_eq!(t.as_ptr() as usize, base + 8);
    assert_eq!(&*t, text);
    // ...and echoed without one.
    s.send(Message::Text(t)).unwrap();
    let n = s.chunks_vectored(&mut slices);
    assert_eq!(n, 2);
    assert_eq!(slices[1].as_ptr() as usize, base + 8);
}

#[test]
fn idle_session_holds_no_buffers() {
    let mut s = session();
    let big = vec![b'a'; 200_000];
    // Fragmented and streamed messages, partial frames, output queued and drained.
    let wire = [frame(0x01, &big[..100_000]), frame(0x80, &big[100_000..])].concat();
    let mut input = BytesMut::new();
    for piece in wire.chunks(7000) {
        input.extend_from_slice(piece);
        while let Some(e) = s.read_event(&mut input) {
            let Event::Message(m) = e else { panic!() };
            s.send(m).unwrap();
        }
    }
    s.send(Message::Binary(Bytes::from_static(b"x"))).unwrap();
    take_wire(&mut s);
    assert_eq!(s.out.held_capacity(), 0);
    assert_eq!(s.binary.capacity(), 0);
    assert_eq!(s.text.len(), 0);
    assert!(
        std::mem::size_of::<Session>() <= 288,
        "{}",
        std::mem::size_of::<Session>()
    );
}

// ---------------------------------------------------------------------------------------------
// permessage-deflate

/// The client's side of permessage-deflate, built straight on flate2.
struct Client {
    c: Compress,
    d: Decompress,
    reset_c: bool,
    reset_d: bool,
    dbits: u8,
}

impl Client {
    fn new(p: &DeflateParams) -> Client {
        Client {
            c: Compress::new_with_window_bits(
                Compression::default(),
                false,
                p.client_max_window_bits.max(9),
            ),
            d: Decompress::new_with_window_bits(false, p.server_max_window_bits),
            reset_c: p.client_no_context_takeover,
            reset_d: p.server_no_context_takeover,
            dbits: p.server_max_window_bits,
        }
    }

    fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 64);
        self.c
            .compress_vec(data, &mut out, FlushCompress::Sync)
            .unwrap();
        if out.is_empty() {
            // Empty input right after a sync flush: zlib adds nothing; RFC 7692 §7.2.3.6.
            return vec![0x00];
        }
        assert!(out.ends_with(&TAIL));
        out.truncate(out.len() - 4);
        if self.reset_c {
            self.c.reset();
        }
        out
    }

    fn decompress(&mut self, data: &[u8]) -> Vec<u8> {
        let input = [data, &TAIL[..]].concat();
        let mut out = Vec::with_capacity(1 << 20);
        self.d
            .decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        if self.reset_d {
            // A fresh decompressor with the server's window size proves no state is needed.
            self.d = Decompress::new_with_window_bits(false, self.dbits);
        }
        out
    }
}

fn sample_text(n: usize, seed: usize) -> String {
    let words = [
        "alpha ",
        "beta ",
        "gamma ",
        "δέλτα ",
        "epsilon ",
        "ζήτα ",
        "eta ",
    ];
    let mut s = String::new();
    let mut i = seed;
    while s.len() < n {
        s.push_str(words[i % words.len()]);
        i = i.wrapping_mul(31).wrapping_add(7) % 1000;
    }
    s
}

#[test]
fn deflate_round_trips() {
    for bits in 9..=15u8 {
        for (snct, cnct) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = DeflateParams {
                server_no_context_takeover: snct,
                client_no_context_takeover: cnct,
                server_max_window_bits: bits,
                client_max_window_bits: bits,
            };
            let mut s = deflate_session(p.clone());
            let mut client = Client::new(&p);
            for round in 0..4 {
                let text = sample_text(3000 + round * 5000, round);
                let compressed = client.compress(text.as_bytes());
                // Send it in up to three fragments (only the first has RSV1).
                let third = compressed.len() / 3;
                let wire = if round % 2 == 0 {
                    frame(0xC1, &compressed)
                } else {
                    [
                        frame(0x41, &compressed[..third]),
                        frame(0x00, &compressed[third..2 * third]),
                        frame(0x80, &compressed[2 * third..]),
                    ]
                    .concat()
                };
                let ev = one(&mut s, &wire);
                assert_eq!(
                    ev,
                    Event::Message(Message::Text(text.clone().into())),
                    "bits {bits} {snct} {cnct} round {round}"
                );
                let Event::Message(m) = ev else {
                    unreachable!()
                };
                s.send(m).unwrap();
                let frames = server_frames(&take_wire(&mut s));
                assert_eq!(frames.len(), 1);
                assert_eq!(frames[0].0, 0xC1, "compressed text, RSV1 set");
                assert!(frames[0].1.len() < text.len() / 2);
                assert_eq!(client.decompress(&frames[0].1), text.as_bytes());
            }
            // Uncompressed messages may be mixed in.
            assert_eq!(
                one(&mut s, &frame(0x82, b"raw")),
                Event::Message(Message::Binary(Bytes::from_static(b"raw")))
            );
            s.send(Message::Binary(Bytes::from_static(b"tiny")))
                .unwrap();
            assert_eq!(
                server_frames(&take_wire(&mut s)),
                vec![(0x82, b"tiny".to_vec())],
                "below compress_min_size: RSV1 clear"
            );
            assert_eq!(s.inflater.holds_state(), !cnct);
            assert_eq!(s.deflater_holds_state(), !snct);
        }
    }
}

#[test]
fn compressed_binary_byte_by_byte_and_empty() {
    let p = DeflateParams::default();
    let mut s = deflate_session(p.clone());
    let mut client = Client::new(&p);
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let wire = [
        frame(0xC2, &client.compress(&data)),
        frame(0xC1, &client.compress(b"")),
        frame(0xC1, b"\x00"),
        // An empty compressed payload is tolerated as an empty message.
        frame(0xC1, b""),
        frame(0x41, b""),
        frame(0x80, b""),
    ]
    .concat();
    let mut input = BytesMut::new();
    let mut got = Vec::new();
    for b in wire {
        input.extend_from_slice(&[b]);
        while let Some(e) = s.read_event(&mut input) {
            got.push(e);
        }
    }
    assert_eq!(got.len(), 5);
    let Event::Message(Message::Binary(b)) = &got[0] else {
        panic!("not binary")
    };
    assert_eq!(b.len(), data.len());
    assert!(b[..] == data[..], "binary content differs");
    assert_eq!(got[1], Event::Message(Message::Text("".into())));
    for e in &got[2..] {
        assert_eq!(*e, Event::Message(Message::Text("".into())));
    }
    // The stream is still in sync after all that.
    let msg = sample_text(5000, 3);
    let e = one(&mut s, &frame(0xC1, &client.compress(msg.as_bytes())));
    assert_eq!(e, Event::Message(Message::Text(msg.into())));
}

#[test]
fn empty_message_compressed() {
    // compress_min_size 0: an empty message goes out compressed as the single byte 0x00.
    let p = DeflateParams::default();
    let mut s = Session::new(SessionConfig {
        deflate: Some(p.clone()),
        compress_min_size: 0,
        ..SessionConfig::default()
    });
    let mut client = Client::new(&p);
    for m in ["", "abc", "", ""] {
        s.send(Message::Text(m.into())).unwrap();
        let frames = server_frames(&take_wire(&mut s));
        assert_eq!(frames[0].0, 0xC1);
        assert!(!frames[0].1.is_empty());
        assert_eq!(client.decompress(&frames[0].1), m.as_bytes());
    }
}

#[test]
fn incompressible_data_is_sent_plain_without_context_takeover() {
    let p = DeflateParams {
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let mut s = deflate_session(p);
    let mut x = 12345u32;
    let noise: Vec<u8> = (0..1000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    s.send(Message::Binary(noise.clone().into())).unwrap();
    assert_eq!(server_frames(&take_wire(&mut s)), vec![(0x82, noise)]);
}

#[test]
fn decompression_bomb_1009() {
    let p = DeflateParams::default();
    let s = Session::new(SessionConfig {
        max_message_size: 1 << 20,
        deflate: Some(p.clone()),
        ..SessionConfig::default()
    });
    let mut client = Client::new(&p);
    let bomb = client.compress(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    expect_fail(s, &frame(0xC2, &bomb), 1009);
}

#[test]
fn corrupt_compressed_data_fails() {
    let s = deflate_session(DeflateParams::default());
    expect_fail(s, &frame(0xC1, &[0xFF; 20]), 1007);
    // Compressed invalid UTF-8.
    let p = DeflateParams::default();
    let mut client = Client::new(&p);
    let s = deflate_session(p);
    expect_fail(s, &frame(0xC1, &client.compress(b"ok \xFF\xFE")), 1007);
}

impl Session {
    fn deflater_holds_state(&self) -> bool {
        self.deflater.holds_state()
    }
}

#[test]
fn deferred_failure_lets_replies_to_earlier_messages_go_out_first() {
    let mut s = Session::new(SessionConfig {
        defer_failure_close: true,
        ..SessionConfig::default()
    });
    let mut wire = frame(0x81, b"hi");
    wire.extend(frame(0x81 | 0x20, b"rsv2")); // RSV2 set: protocol error
    let evs = events(&mut s, &wire);
    assert_eq!(evs[0], Event::Message(Message::Text("hi".into())));
    assert!(failed(1002)(&evs[1]));
    assert!(!s.is_finished(), "the Close waits for send_failure_close");
    assert_eq!(s.buffered(), 0);
    s.send(Message::Text("hi".into())).unwrap(); // the app's echo
    s.send_failure_close();
    assert!(s.is_finished());
    assert!(s.send(Message::Text("late".into())).is_err());
    let frames = server_frames(&take_wire(&mut s));
    assert_eq!(frames[0], (0x81, b"hi".to_vec()));
    assert_eq!(frames[1].0, 0x88);
    assert_eq!(&frames[1].1[..2], &1002u16.to_be_bytes());
    assert_eq!(frames.len(), 2);
}

#[test]
fn deferred_failure_wins_over_a_later_close() {
    let mut s = Session::new(SessionConfig {
        defer_failure_close: true,
        ..SessionConfig::default()
    });
    let evs = events(&mut s, &frame_m(0x81, b"x", false)); // unmasked
    assert!(failed(1002)(&evs[0]));
    s.close(1000, "bye").unwrap();
    let frames = server_frames(&take_wire(&mut s));
    assert_eq!(&frames[0].1[..2], &1002u16.to_be_bytes());
    assert!(s.is_finished());
}

// ---------------------------------------------------------------------------------------------
// Budgets: what a peer can make the session hold or compute

#[test]
fn a_partial_frame_holds_only_what_arrived() {
    let mut s = session();
    // A 16 MiB frame is announced; one payload byte arrives.
    let mut wire = frame(0x82, &vec![7u8; 16 << 20]);
    wire.truncate(14 + 1);
    assert!(events(&mut s, &wire).is_empty());
    assert_eq!(s.msg_len, 1);
    assert!(s.partial_len() < 1024, "{}", s.partial_len());
}

/// Feed `wire` in pieces of `piece` bytes with `budget` bytes of read budget per call,
/// as a server would; collect events and check no call decoded more than its budget.
fn events_with_budget(s: &mut Session, wire: &[u8], piece: usize, budget: usize) -> Vec<Event> {
    let mut input = BytesMut::new();
    let mut evs = Vec::new();
    let mut pieces = wire.chunks(piece);
    loop {
        s.set_read_budget(budget);
        let held_before = s.msg_len;
        match s.read_event(&mut input) {
            Some(e) => evs.push(e),
            None if s.read_budget() == 0 => {} // paused: more budget next round
            None => match pieces.next() {
                Some(p) => input.extend_from_slice(p),
                None => return evs,
            },
        }
        assert!(s.msg_len <= held_before + budget);
        assert!(s.partial_len() <= 2 * s.msg_len.max(64));
    }
}

#[test]
fn read_budget_pauses_and_resumes_without_losing_bytes() {
    let text = sample_text(300_000, 3);
    let bin: Vec<u8> = (0..250_000u32).map(|i| (i % 251) as u8).collect();
    let wire = [
        frame(0x81, text.as_bytes()),
        frame(0x02, &bin[..100_000]),
        frame(0x89, b"ping"),
        frame(0x80, &bin[100_000..]),
    ]
    .concat();
    for (piece, budget) in [(wire.len(), 1), (4096, 1000), (70_000, 65_536), (1, 3)] {
        let mut s = session();
        let evs = events_with_budget(&mut s, &wire, piece, budget);
        assert_eq!(
            evs,
            [
                Event::Message(Message::Text(text.clone().into())),
                Event::Ping(Bytes::from_static(b"ping")),
                Event::Message(Message::Binary(Bytes::from(bin.clone()))),
            ],
            "piece {piece} budget {budget}"
        );
    }
}

#[test]
fn read_budget_bounds_decompression_output() {
    let p = DeflateParams::default();
    let text = sample_text(400_000, 5);
    let mut client = Client::new(&p);
    let c1 = client.compress(text.as_bytes());
    let c2 = client.compress(b"second");
    let wire = [
        frame(0x41, &c1[..c1.len() / 2]),
        frame(0x80, &c1[c1.len() / 2..]),
        frame(0xC1, &c2),
    ]
    .concat();
    for (piece, budget) in [(wire.len(), 1000), (3000, 32 * 1024), (1, 100_000)] {
        let mut s = deflate_session(p.clone());
        let evs = events_with_budget(&mut s, &wire, piece, budget);
        assert_eq!(
            evs,
            [
                Event::Message(Message::Text(text.clone().into())),
                Event::Message(Message::Text("second".into())),
            ],
            "piece {piece} budget {budget}"
        );
    }
}

#[test]
fn a_message_inflating_past_the_ratio_limit_is_1009() {
    let p = DeflateParams::default();
    let mut client = Client::new(&p);
    // 16 MiB of zeros: about 16 KiB compressed, a ratio of about 1000.
    let bomb = client.compress(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 20_000, "{}", bomb.len());
    let mut s = deflate_session(p.clone());
    let mut input = BytesMut::from(&frame(0xC2, &bomb)[..]);
    let mut produced = 0;
    let ev = loop {
        s.set_read_budget(64 * 1024);
        match s.read_event(&mut input) {
            Some(e) => break e,
            None => produced += 64 * 1024 - s.read_budget(),
        }
    };
    assert_eq!(
        ev,
        Event::Failed {
            code: 1009,
            reason: "message inflates too much"
        }
    );
    assert!(produced <= INFLATE_RATIO_FLOOR.max(bomb.len() * 100) + 64 * 1024);
    // Below the floor, any ratio is fine.
    let mut client = Client::new(&p);
    let zeros = client.compress(&vec![0u8; 512 * 1024]);
    let mut s = deflate_session(p);
    assert_eq!(
        one(&mut s, &frame(0xC2, &zeros)),
        Event::Message(Message::Binary(Bytes::from(vec![0u8; 512 * 1024])))
    );
}

#[test]
fn ten_pings_in_one_read_get_ten_pongs() {
    let mut s = session();
    let wire: Vec<u8> = (0..10)
        .flat_map(|i| frame(0x89, format!("payload-{i}").as_bytes()))
        .collect();
    assert_eq!(events(&mut s, &wire).len(), 10);
    let pongs = server_frames(&take_wire(&mut s));
    let want: Vec<_> = (0..10)
        .map(|i| (0x8A, format!("payload-{i}").into_bytes()))
        .collect();
    assert_eq!(pongs, want);
}

#[test]
fn a_ping_flood_that_never_reads_keeps_one_pending_pong() {
    let mut s = session();
    let mut wire = Vec::new();
    for i in 0..100_000u32 {
        wire.extend_from_slice(&frame(0x89, &i.to_be_bytes()));
    }
    assert_eq!(events(&mut s, &wire).len(), 100_000);
    assert!(
        s.buffered() <= PONG_BACKLOG + 127,
        "{} bytes of pongs queued",
        s.buffered()
    );
    // Once the socket takes the backlog, the newest ping is answered.
    let pongs = server_frames(&take_wire(&mut s));
    assert_eq!(pongs.last().unwrap().1, 99_999u32.to_be_bytes());
    assert!(pongs.len() <= PONG_BACKLOG / 6 + 2, "{}", pongs.len());
    // A later ping is answered at once again.
    let _ = events(&mut s, &frame(0x89, b"x"));
    assert_eq!(server_frames(&take_wire(&mut s)), [(0x8A, b"x".to_vec())]);
}
