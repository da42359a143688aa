//! The `pagi-server` binary as a process: startup lines, lifespan decline,
//! SIGTERM and SIGINT, bad arguments.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// The bound for one step of a test.
const STEP: Duration = Duration::from_secs(10);

async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_pagi-server");

/// Kills the child if the test fails before it exits.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pagi-server");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next stderr line, waiting at most `limit`; None at EOF.
    fn line(&mut self, limit: Duration) -> Option<String> {
        match self.lines.recv_timeout(limit) {
            Ok(l) => {
                self.seen.push(l.clone());
                Some(l)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no stderr line within {limit:?}; so far {:?}", self.seen)
            }
        }
    }

    /// Wait for the exit (bounded); returns the code and all stderr lines.
    fn wait(mut self, limit: Duration) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "pagi-server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while self.line(STEP).is_some() {}
        (status.code(), std::mem::take(&mut self.seen))
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const DECLINED: &str = "Lifespan not supported, continuing without it (application raised: Unsupported scope type: lifespan)";

#[tokio::test]
async fn binary_logs_lifespan_decline_once_serves_and_exits_0_on_sigterm() {
    let mut p = Proc::spawn(&[
        "--app",
        "examples/18-bidirectional-websocket",
        "--port",
        "0",
    ]);
    assert_eq!(p.line(STEP).as_deref(), Some(DECLINED));
    let listening = p.line(STEP).expect("listening line");
    let rest = listening
        .strip_prefix("PAGI Server listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected line {listening:?}"));
    let (port, tail) = rest.split_once('/').expect("URL ends with /");
    let port: u16 = port.parse().expect("a port number");
    assert_ne!(port, 0, "the line shows port 0, not the bound port");
    assert!(tail.is_empty() || tail.starts_with(' '), "{listening:?}");

    // It serves the seed app on that port.
    let (mut ws, _) = within(
        STEP,
        "connect",
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/")),
    )
    .await
    .expect("handshake");
    ws.send(Message::text("hi")).await.unwrap();
    let reply = within(STEP, "echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(reply, Message::text("you said: HI"));

    // SIGTERM with the WebSocket open: Close 1001, then exit 0.
    p.signal("-TERM");
    let close = within(STEP, "close on SIGTERM", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    drop(ws);
    let (code, lines) = p.wait(STEP);
    assert_eq!(code, Some(0), "stderr: {lines:?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("Lifespan not supported"))
            .count(),
        1,
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("Error")), "{lines:?}");
}

#[test]
fn binary_exits_0_on_sigint_when_idle() {
    let mut p = Proc::spawn(&["--app", "01-hello-http", "--port", "0", "--quiet"]);
    // Quiet: no lines; give it a moment to bind, then interrupt.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "exited early: {:?}",
        p.seen
    );
    p.signal("-INT");
    let (code, lines) = p.wait(STEP);
    assert_eq!(code, Some(0), "{lines:?}");
}

#[test]
fn unknown_app_fails_listing_the_examples() {
    let p = Proc::spawn(&["--app", "examples/99-nope", "--port", "0"]);
    let (code, lines) = p.wait(STEP);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}");
    let text = lines.join("\n");
    assert!(text.contains("99-nope"), "{text}");
    for name in pagi_examples::ALL.iter().map(|e| e.name) {
        assert!(text.contains(name), "{name} not listed: {text}");
    }
    assert!(!text.contains("listening"), "{text}");
}

#[test]
fn port_in_use_fails_with_one_clear_error_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let p = Proc::spawn(&["--app", "18", "--port", &port]);
    let (code, lines) = p.wait(STEP);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {lines:?}");
    let errors: Vec<_> = lines.iter().filter(|l| l.contains("rror")).collect();
    assert_eq!(errors.len(), 1, "{lines:?}");
    assert!(
        errors[0].contains(&port) && errors[0].contains("in use"),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("listening")), "{lines:?}");
    drop(taken);
}
