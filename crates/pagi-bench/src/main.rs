//! `pagi-bench`: a bounded, loopback-only WebSocket load client.
//!
//! Modes:
//! - `echo`: N connections keep D messages in flight each, verify every echo, and report
//!   msgs/s and round-trip latency.
//! - `idle`: N connections (spread over K source addresses) only receive the server's pushed
//!   ticks; reports how many stayed alive and each connection's worst gap between ticks.
//!
//! The last line on stdout is always `RESULT mode=... key=value ...` (machine readable).
//! `MARK start` / `MARK end` lines are printed when the measured window opens and closes,
//! so a driver script can sample the server's CPU time exactly over that window.

mod args;
mod echo;
mod idle;
mod target;

use std::process::ExitCode;

const USAGE: &str = "\
usage:
  pagi-bench echo --url ws://127.0.0.1:P/ [--conns 64] [--size 64] [--text|--binary]
                  [--depth 1] [--secs 10] [--warmup 2] [--threads 1]
  pagi-bench idle --url ws://127.0.0.1:P/ [--conns 1000] [--secs 20] [--warmup 5]
                  [--src-ips 8] [--connect-concurrency 256] [--connect-timeout 120]
  pagi-bench gencert DIR     (ca.pem, server.pem, server.key for wss:// runs)

With wss://localhost:P/ both modes connect over TLS and need --ca DIR/ca.pem.

Only loopback targets are accepted (127.0.0.0/8, ::1, localhost).
echo: --warmup seconds run at full load but are not counted; the measured window follows.
idle: the connect phase runs first (bounded by --connect-timeout), then --warmup seconds,
      then the --secs measured window in which tick gaps are tracked.";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(mode) = argv.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = argv.collect();
    if mode == "gencert" {
        return match rest.first() {
            Some(dir) => match pagi_bench::tls::gencert(std::path::Path::new(dir)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pagi-bench: {e}");
                    ExitCode::from(2)
                }
            },
            None => {
                eprintln!("pagi-bench: gencert needs a directory\n{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    let parsed = match args::Args::parse(&rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pagi-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match mode.as_str() {
        "echo" => echo::run(parsed),
        "idle" => idle::run(parsed),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown mode {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pagi-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Percentile (nearest-rank on a sorted slice); 0 when empty.
pub(crate) fn percentile(sorted: &[u64], pct: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// This process's resident set size in KiB (from /proc/self/status).
pub(crate) fn self_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Error tallies by kind, printed as `kind:count,...`.
#[derive(Default, Debug)]
pub(crate) struct Errors(std::collections::BTreeMap<&'static str, u64>);

impl Errors {
    pub(crate) fn add(&mut self, kind: &'static str) {
        *self.0.entry(kind).or_default() += 1;
    }
    pub(crate) fn merge(&mut self, other: &Errors) {
        for (k, v) in &other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }
    pub(crate) fn total(&self) -> u64 {
        self.0.values().sum()
    }
    pub(crate) fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn errors_tally() {
        let mut e = Errors::default();
        e.add("mismatch");
        e.add("mismatch");
        let mut f = Errors::default();
        f.add("connect");
        f.merge(&e);
        assert_eq!(f.total(), 3);
        assert_eq!(f.describe(), "connect:1,mismatch:2");
    }
}
