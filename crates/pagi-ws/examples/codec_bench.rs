//! `codec_bench`: single-core throughput of the codec alone (no sockets): decode masked client
//! frames, echo each message with `send`, and "write" the output. Run in release mode:
//! `cargo run --release -p pagi-ws --example codec_bench` (`BENCH=text` runs only the cases
//! whose label contains "text").

use std::io::IoSlice;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use flate2::{Compress, Compression, FlushCompress};
use pagi_ws::{DeflateParams, Event, Session, SessionConfig};

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

#[path = "support/client_frame.rs"]
mod support;

fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    support::client_frame(b0, payload, Some(MASK))
}

/// Feed `wire` in reads of `read_size` bytes, echo every message, drain output; returns
/// (messages, payload bytes, elapsed).
fn run(session: &mut Session, wire: &[u8], read_size: usize, rounds: usize) -> (usize, usize) {
    let mut msgs = 0;
    let mut bytes = 0;
    let mut input = BytesMut::with_capacity(read_size.max(64 * 1024));
    for _ in 0..rounds {
        for piece in wire.chunks(read_size) {
            input.extend_from_slice(piece);
            while let Some(e) = session.read_event(&mut input) {
                if let Event::Message(m) = e {
                    msgs += 1;
                    bytes += match &m {
                        pagi_ws::Message::Text(s) => s.len(),
                        pagi_ws::Message::Binary(b) => b.len(),
                    };
                    session.send(m).unwrap();
                }
            }
            while session.buffered() > 0 {
                let mut slices = [IoSlice::new(&[]); 64];
                let n = session.chunks_vectored(&mut slices);
                let len: usize = slices[..n].iter().map(|s| s.len()).sum();
                session.advance(len);
            }
        }
    }
    (msgs, bytes)
}

fn bench(label: &str, config: SessionConfig, wire: &[u8], read_size: usize) {
    // BENCH=substring runs only the matching cases.
    if let Ok(filter) = std::env::var("BENCH") {
        if !label.contains(&filter) {
            return;
        }
    }
    let mut session = Session::new(config);
    // Calibrate to about half a second.
    let mut rounds = 1;
    loop {
        let t = Instant::now();
        run(&mut session, wire, read_size, rounds);
        if t.elapsed() > Duration::from_millis(100) {
            break;
        }
        rounds *= 2;
    }
    rounds *= 5;
    let t = Instant::now();
    let (msgs, bytes) = run(&mut session, wire, read_size, rounds);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{label:<48} {:>10.0} msgs/s {:>8.0} MB/s payload",
        msgs as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

fn text(n: usize) -> String {
    let words = ["alpha ", "beta ", "gamma ", "delta ", "pagi ", "κόσμε "];
    let mut s = String::with_capacity(n + 8);
    let mut x = 7u32;
    while s.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        s.push_str(words[(x >> 16) as usize % words.len()]);
    }
    while s.len() > n {
        s.pop();
    }
    s
}

fn main() {
    let plain = SessionConfig::default;
    for (size, batch) in [
        (16usize, 4096usize),
        (128, 2048),
        (1024, 512),
        (16 * 1024, 64),
    ] {
        let t = text(size);
        let b: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let wire_t: Vec<u8> = (0..batch)
            .flat_map(|_| client_frame(0x81, t.as_bytes()))
            .collect();
        let wire_b: Vec<u8> = (0..batch).flat_map(|_| client_frame(0x82, &b)).collect();
        bench(
            &format!("text {size} B, 16 KiB reads"),
            plain(),
            &wire_t,
            16 * 1024,
        );
        bench(
            &format!("binary {size} B, 16 KiB reads"),
            plain(),
            &wire_b,
            16 * 1024,
        );
    }
    let big = text(16 << 20);
    bench(
        "text 16 MiB single frame, 64 KiB reads",
        plain(),
        &client_frame(0x81, big.as_bytes()),
        64 * 1024,
    );
    let frags: Vec<u8> = big
        .as_bytes()
        .chunks(1 << 20)
        .enumerate()
        .flat_map(|(i, c)| {
            let op = if i == 0 { 0x01 } else { 0x00 };
            let fin = if (i + 1) << 20 >= big.len() { 0x80 } else { 0 };
            client_frame(fin | op, c)
        })
        .collect();
    bench(
        "text 16 MiB in 1 MiB fragments, 64 KiB reads",
        plain(),
        &frags,
        64 * 1024,
    );
    let bin: Vec<u8> = (0..(16 << 20)).map(|i| (i * 31) as u8).collect();
    bench(
        "binary 16 MiB single frame, 64 KiB reads",
        plain(),
        &client_frame(0x82, &bin),
        64 * 1024,
    );

    // permessage-deflate, default negotiation (server_no_context_takeover).
    let params = DeflateParams {
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    for size in [256usize, 4096, 64 * 1024] {
        let t = text(size);
        let mut c = Compress::new_with_window_bits(Compression::fast(), false, 15);
        let mut wire = Vec::new();
        for _ in 0..(256 * 1024 / size).max(4) {
            let mut out = Vec::with_capacity(size + 64);
            c.compress_vec(t.as_bytes(), &mut out, FlushCompress::Sync)
                .unwrap();
            out.truncate(out.len() - 4);
            wire.extend(client_frame(0xC1, &out));
        }
        bench(
            &format!("deflate text {size} B (in+out compressed)"),
            SessionConfig {
                deflate: Some(params.clone()),
                ..SessionConfig::default()
            },
            &wire,
            16 * 1024,
        );
    }
}
