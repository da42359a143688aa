//! Lifespan at the library level: startup failure before binding, state
//! reaching requests, shutdown.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{captured_logs, http_raw, within, TestServer, STEP};
use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use pagi_server::{Config, LifespanMode, Listen, Server};

#[tokio::test]
async fn startup_failed_makes_bind_fail_before_binding() {
    let app = pagi::app_fn(
        |scope: Scope, mut receive: Receiver, send: Sender| async move {
            let Scope::Lifespan(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            assert_eq!(receive.recv().await, ReceiveEvent::LifespanStartup);
            send.send(SendEvent::LifespanStartupFailed {
                message: "database unreachable".into(),
            })
            .await?;
            Ok::<(), BoxError>(())
        },
    );
    // Bind to a port that is taken: had the server bound first, this
    // would be an address-in-use error, not a startup failure.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = Config {
        listen: vec![Listen::tcp(taken.local_addr().unwrap())],
        lifespan: LifespanMode::Auto,
        ..common::config()
    };
    let err = match within(STEP, "bind", Server::bind(config, app)).await {
        Ok(_) => panic!("bind succeeded despite lifespan.startup.failed"),
        Err(e) => e,
    };
    assert!(err.is_startup_failure(), "{err}");
    assert!(!err.is_addr_in_use(), "{err}");
    assert!(err.to_string().contains("database unreachable"), "{err}");
}

#[tokio::test]
async fn completed_startup_shares_state_and_gets_shutdown() {
    let shutdown_seen = Arc::new(AtomicBool::new(false));
    let flag = shutdown_seen.clone();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let flag = flag.clone();
        async move {
            match scope {
                Scope::Lifespan(l) => {
                    assert_eq!(receive.recv().await, ReceiveEvent::LifespanStartup);
                    l.state
                        .insert("greeting", String::from("hello from lifespan"));
                    send.send(SendEvent::LifespanStartupComplete).await?;
                    assert_eq!(receive.recv().await, ReceiveEvent::LifespanShutdown);
                    flag.store(true, Ordering::SeqCst);
                    send.send(SendEvent::LifespanShutdownComplete).await?;
                    Ok(())
                }
                Scope::Http(h) => {
                    let greeting = h
                        .state
                        .as_ref()
                        .and_then(|s| s.get::<String>("greeting"))
                        .map_or_else(|| "no state".to_owned(), |g| g.to_string());
                    send.send(SendEvent::response_start(
                        200,
                        Headers::from([("content-length", greeting.len().to_string())]),
                    ))
                    .await?;
                    send.send(SendEvent::response_body(greeting, false)).await?;
                    Ok::<(), BoxError>(())
                }
                other => Err(pagi::unsupported_scope(&other)),
            }
        }
    });
    let config = Config {
        lifespan: LifespanMode::On,
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    let (resp, _) = http_raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "hello from lifespan");
    assert!(
        !shutdown_seen.load(Ordering::SeqCst),
        "shutdown before shutdown()"
    );
    server.shutdown(STEP).await;
    assert!(shutdown_seen.load(Ordering::SeqCst), "no lifespan.shutdown");
}

#[tokio::test]
async fn declined_lifespan_with_mode_on_fails_startup() {
    let config = Config {
        lifespan: LifespanMode::On,
        ..common::config()
    };
    // An app that declines lifespan, as example 18 does.
    let app = pagi::app_fn(|scope: Scope, _: Receiver, _: Sender| async move {
        Err::<(), BoxError>(pagi::unsupported_scope(&scope))
    });
    match within(STEP, "bind", Server::bind(config, app)).await {
        Ok(_) => panic!("bind succeeded though the app declined lifespan"),
        Err(e) => assert!(e.is_startup_failure(), "{e}"),
    }
}

#[tokio::test]
async fn a_lifespan_error_after_startup_is_logged_as_an_error_when_it_happens() {
    let logs = captured_logs();
    let app = pagi::app_fn(
        |scope: Scope, mut receive: Receiver, send: Sender| async move {
            match scope {
                Scope::Lifespan(_) => {
                    assert_eq!(receive.recv().await, ReceiveEvent::LifespanStartup);
                    send.send(SendEvent::LifespanStartupComplete).await?;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    Err::<(), BoxError>("the background job broke".into())
                }
                other => Err(pagi::unsupported_scope(&other)),
            }
        },
    );
    let config = Config {
        lifespan: LifespanMode::On,
        ..common::config()
    };
    let server = TestServer::start_with(config, app).await;
    let seen = logs.clone();
    // Logged while the server runs, at error level.
    assert!(
        common::eventually(STEP, move || {
            String::from_utf8_lossy(&seen.lock().unwrap())
                .lines()
                .any(|l| l.contains("ERROR") && l.contains("the background job broke"))
        })
        .await,
        "{}",
        String::from_utf8_lossy(&logs.lock().unwrap())
    );
    server.shutdown(STEP).await;
    // And not again at shutdown as a warning.
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        !text
            .lines()
            .any(|l| l.contains("WARN") && l.contains("the background job broke")),
        "{text}"
    );
}
