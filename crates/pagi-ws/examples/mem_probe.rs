//! `mem_probe`: measure what a `Session` costs in memory (the numbers in the crate README).
//!
//! Creates many sessions in a few states and reports the resident-set growth per session
//! (`/proc/self/statm`, Linux only), i.e. the memory actually touched, allocator overhead
//! included. Run in release mode: `cargo run --release -p pagi-ws --example mem_probe`.

use std::io::IoSlice;

use bytes::BytesMut;
use flate2::{Compress, Compression, FlushCompress};
use pagi_ws::{DeflateParams, Event, Session, SessionConfig};

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

const MASK: [u8; 4] = [1, 2, 3, 4];

#[path = "support/client_frame.rs"]
mod support;

fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    support::client_frame(b0, payload, Some(MASK))
}

fn drain(s: &mut Session) {
    while s.buffered() > 0 {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = s.chunks_vectored(&mut slices);
        let len: usize = slices[..n].iter().map(|s| s.len()).sum();
        s.advance(len);
    }
}

/// Echo one message through the session (decode, send, "write").
fn echo(s: &mut Session, frame: &[u8]) {
    let mut input = BytesMut::from(frame);
    while let Some(e) = s.read_event(&mut input) {
        if let Event::Message(m) = e {
            s.send(m).unwrap();
        }
    }
    drain(s);
}

fn measure(label: &str, n: usize, make: impl Fn() -> Session) {
    let before = rss_bytes();
    let sessions: Vec<Session> = (0..n).map(|_| make()).collect();
    let after = rss_bytes();
    println!(
        "{label:<66} {:>8.0} bytes/session (n={n})",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    drop(sessions);
}

fn compress(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new_with_window_bits(Compression::fast(), false, 15);
    let mut out = Vec::with_capacity(data.len() + 1024);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    out.truncate(out.len() - 4);
    out
}

fn main() {
    // Each case runs in a fresh process so freed memory of one case cannot hide the next.
    let case: Option<usize> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    let Some(case) = case else {
        println!(
            "size_of::<Session>() = {} bytes; figures below include it",
            std::mem::size_of::<Session>()
        );
        let exe = std::env::current_exe().expect("current exe");
        for i in 0..CASES {
            let out = std::process::Command::new(&exe)
                .arg(i.to_string())
                .output()
                .expect("run case");
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
        return;
    };

    let small = "hello pagi ".repeat(40);
    // 64 KiB of text that compresses (about 4:1) but touches the whole 32 KiB window.
    let mut big = String::new();
    let mut x = 1u32;
    while big.len() < 64 * 1024 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        big.push_str(["alpha ", "beta ", "gamma ", "delta ", "pagi "][(x >> 16) as usize % 5]);
        big.push_str(&((x >> 8) % 1000).to_string());
    }
    let plain_frame = client_frame(0x81, b"hello");
    let small_deflate = client_frame(0xC1, &compress(small.as_bytes()));
    let big_deflate = client_frame(0xC1, &compress(big.as_bytes()));

    let snct = DeflateParams {
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let with = |p: DeflateParams| SessionConfig {
        deflate: Some(p),
        ..SessionConfig::default()
    };
    let both_nct = DeflateParams {
        client_no_context_takeover: true,
        ..snct.clone()
    };
    // Warm up the allocator and the per-thread compressor/decompressor caches (shared by all
    // connections of a thread, so not a per-connection cost).
    for p in [snct.clone(), both_nct.clone()] {
        let mut s = Session::new(with(p));
        echo(&mut s, &big_deflate);
    }
    for _ in 0..100 {
        let mut s = Session::new(SessionConfig::default());
        echo(&mut s, &plain_frame);
    }

    match case {
        0 => measure("new session, idle", 100_000, || {
            Session::new(SessionConfig::default())
        }),
        1 => measure("idle after echoing a text message", 100_000, || {
            let mut s = Session::new(SessionConfig::default());
            echo(&mut s, &plain_frame);
            s
        }),
        2 => measure(
            "deflate negotiated, no compressed message yet",
            100_000,
            || Session::new(with(snct.clone())),
        ),
        3 => measure(
            "deflate defaults (server_no_ctx), idle after a 440 B compressed echo",
            5_000,
            || {
                let mut s = Session::new(with(snct.clone()));
                echo(&mut s, &small_deflate);
                s
            },
        ),
        4 => measure(
            "deflate defaults (server_no_ctx), idle after a 64 KiB compressed echo",
            2_000,
            || {
                let mut s = Session::new(with(snct.clone()));
                echo(&mut s, &big_deflate);
                s
            },
        ),
        5 => measure("  same, client_max_window_bits=9 negotiated", 2_000, || {
            let mut s = Session::new(with(DeflateParams {
                client_max_window_bits: 9,
                ..snct.clone()
            }));
            // Within a 512-byte window: the small message.
            echo(&mut s, &small_deflate);
            s
        }),
        6 => measure(
            "deflate, no_context_takeover both ways, idle after 64 KiB echo",
            100_000,
            || {
                let mut s = Session::new(with(both_nct.clone()));
                echo(&mut s, &big_deflate);
                s
            },
        ),
        7 => measure(
            "deflate, context takeover both ways, idle after 64 KiB echo",
            1_000,
            || {
                let mut s = Session::new(with(DeflateParams::default()));
                echo(&mut s, &big_deflate);
                s
            },
        ),
        _ => {}
    }
}

const CASES: usize = 8;
