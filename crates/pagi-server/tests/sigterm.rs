//! SIGTERM with 50 event streams, 50 streaming responses and 100 WebSockets
//! open at once: every stream ends cleanly (SSE and chunked responses with
//! their terminating chunk, WebSockets with Close 1001), every app hears of
//! it (`server_shutdown`), and the process exits as soon as the last app is
//! done, not after the shutdown timeout.
//!
//! The server runs in a child process (this test binary again, running
//! only `child_server`), so that the signal is a real one.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{RawWs, OP_CLOSE};
use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHILD: &str = "PAGI_SIGTERM_CHILD";

/// In the child: report on stdout (the parent reads it).
fn say(what: &str) {
    println!("{what}");
}

/// The child's app: `/sse` streams events, `/stream` a chunked response,
/// `/ws` a WebSocket; each runs until told the server shuts down.
async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    match scope {
        Scope::Sse(_) => {
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            say("READY sse");
            let mut n = 0u64;
            loop {
                tokio::select! {
                    ev = receive.recv() => {
                        if let ReceiveEvent::SseDisconnect { reason } = ev {
                            say(&format!("DONE sse {reason}"));
                            return Ok(());
                        }
                    }
                    () = tokio::time::sleep(Duration::from_millis(100)) => {
                        n += 1;
                        send.send(SendEvent::SseSend { event: None, data: n.to_string(), id: None, retry: None }).await?;
                    }
                }
            }
        }
        Scope::Http(_) => {
            while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::response_body("start\n", true)).await?;
            say("READY stream");
            loop {
                tokio::select! {
                    ev = receive.recv() => {
                        if ev == ReceiveEvent::HttpDisconnect {
                            // Told to stop: finish the response properly.
                            send.send(SendEvent::response_body("end\n", false)).await?;
                            say("DONE stream");
                            return Ok(());
                        }
                    }
                    () = tokio::time::sleep(Duration::from_millis(100)) => {
                        send.send(SendEvent::response_body("tick\n", true)).await?;
                    }
                }
            }
        }
        Scope::WebSocket(_) => {
            assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
            send.send(SendEvent::accept()).await?;
            say("READY ws");
            loop {
                if let ReceiveEvent::WebSocketDisconnect { code, reason } = receive.recv().await {
                    say(&format!("DONE ws {code} {reason}"));
                    return Ok(());
                }
            }
        }
        other => Err(pagi::unsupported_scope(&other)),
    }
}

/// Not a test of its own: the server process of `sigterm_ends_every_stream_cleanly`.
#[test]
fn child_server() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = pagi_server::Config {
            ws_ping_interval: None,
            ..common::config()
        };
        let server = pagi_server::Server::bind(config, pagi::app_fn(app))
            .await
            .unwrap();
        say(&format!(
            "PORT {}",
            server.handle().local_addr().unwrap().port()
        ));
        server.run().await.unwrap();
        say("EXIT");
    });
}

/// Read an HTTP response until its chunked body ends; whether it ended
/// cleanly (the terminating chunk came before EOF).
async fn chunked_ends_cleanly(mut s: TcpStream) -> bool {
    let mut got = BytesMut::new();
    loop {
        if got.ends_with(b"\r\n0\r\n\r\n") {
            return true;
        }
        match tokio::time::timeout(Duration::from_secs(10), s.read_buf(&mut got)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_every_stream_cleanly() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_server",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let port: u16 = loop {
        let (_, line) = tokio::time::timeout(Duration::from_secs(20), lines.recv())
            .await
            .expect("the child's port")
            .expect("the child's output");
        // (libtest prints the test's name on the same line first.)
        if let Some((_, p)) = line.split_once("PORT ") {
            break p.trim().parse().unwrap();
        }
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();

    let mut sse = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
            .await
            .unwrap();
        sse.push(s);
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        streams.push(s);
    }
    let mut sockets = Vec::new();
    for _ in 0..100 {
        sockets.push(RawWs::connect(addr, "/ws").await);
    }
    // Every app is running.
    let mut ready = 0;
    while ready < 200 {
        let (_, line) = tokio::time::timeout(Duration::from_secs(10), lines.recv())
            .await
            .expect("apps to start")
            .unwrap();
        ready += usize::from(line.starts_with("READY"));
    }

    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    let sse_ends = tokio::spawn(async move {
        futures_util::future::join_all(sse.into_iter().map(chunked_ends_cleanly)).await
    });
    let stream_ends = tokio::spawn(async move {
        futures_util::future::join_all(streams.into_iter().map(chunked_ends_cleanly)).await
    });
    let ws_ends = tokio::spawn(async move {
        let mut closes = Vec::new();
        for mut ws in sockets {
            let (close, _) = ws.read_until_close().await;
            assert_eq!(close.opcode, OP_CLOSE);
            closes.push(close.close_parts().0);
            ws.send_close(Some(1001), b"").await;
        }
        closes
    });
    assert!(
        sse_ends.await.unwrap().iter().all(|&clean| clean),
        "an SSE stream was cut"
    );
    assert!(
        stream_ends.await.unwrap().iter().all(|&clean| clean),
        "a response was cut"
    );
    assert!(ws_ends.await.unwrap().iter().all(|&c| c == Some(1001)));

    // Every app heard `server_shutdown`, then the process exited promptly.
    let (mut done, mut last_done, mut exited) = (Vec::new(), signalled, None);
    while exited.is_none() {
        let Ok(Some((at, line))) =
            tokio::time::timeout(Duration::from_secs(10), lines.recv()).await
        else {
            break;
        };
        if line.starts_with("DONE") {
            done.push(line);
            last_done = at;
        } else if line == "EXIT" {
            exited = Some(at);
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let exited = exited.expect("the child said it exited");
    assert_eq!(done.len(), 200, "{done:?}");
    assert_eq!(
        done.iter()
            .filter(|l| *l == "DONE sse server_shutdown")
            .count(),
        50
    );
    assert_eq!(done.iter().filter(|l| *l == "DONE stream").count(), 50);
    assert_eq!(
        done.iter()
            .filter(|l| l.starts_with("DONE ws 1001"))
            .count(),
        100,
        "{done:?}"
    );
    assert!(
        exited.duration_since(last_done) < Duration::from_secs(1),
        "exited {:?} after the last app",
        exited.duration_since(last_done)
    );
    assert!(exited.duration_since(signalled) < Duration::from_secs(5));
}
