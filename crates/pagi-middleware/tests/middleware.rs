//! The middleware behind the real server's connection code, in process
//! (`pagi_server::testing::TestClient`): routing, static files (hostile
//! paths included), CORS.

use std::time::Duration;

use bytes::Bytes;
use pagi::{BoxError, Receiver, Scope, Sender};
use pagi_middleware::{path_params, Cors, Router, StaticFiles};
use pagi_server::testing::{TestClient, TestResponse, WsFrame};
use pagi_server::{Config, LifespanMode};

async fn client(app: pagi::SharedApp) -> TestClient {
    let config = Config {
        lifespan: LifespanMode::On,
        shutdown_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    TestClient::start_with(config, app).await.expect("start")
}

/// Answers with what it was given: path, root path, route path, params.
fn echo() -> pagi::SharedApp {
    pagi::app_fn(|scope: Scope, _: Receiver, send: Sender| async move {
        let params: Vec<String> = path_params(&scope)
            .map(|p| p.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        let info = scope.info().expect("a request scope");
        let text = format!(
            "path={} root={} route={} params={}",
            info.path,
            info.root_path,
            info.route_path(),
            params.join(",")
        );
        match scope {
            Scope::Sse(_) => {
                let stream = pagi::sse::start(&send).await?;
                stream.send(pagi::sse::Event::new(text)).await?;
                stream.close().await?;
            }
            Scope::Http(_) => pagi::http::Response::text(200, text).send(&send).await?,
            other => return Err(pagi::unsupported_scope(&other)),
        }
        Ok::<(), BoxError>(())
    })
}

fn ws_echo() -> pagi::SharedApp {
    pagi::app_fn(|scope: Scope, receive: Receiver, send: Sender| async move {
        let route = scope
            .info()
            .map(|i| i.route_path().to_owned())
            .unwrap_or_default();
        let (mut rx, tx) = pagi::ws::accept(receive, send).await?;
        tx.text(format!("route={route}")).await?;
        while let Some(m) = rx.recv().await {
            tx.send(m).await?;
        }
        Ok::<(), BoxError>(())
    })
}

#[tokio::test]
async fn router_mounts_routes_params_and_refusals() {
    let inner = Router::new().route("/items/:id", echo());
    let app = Router::new()
        .route("/", echo())
        .route("/users/:id/posts/:post", echo())
        .route_for(&["POST"], "/login", echo())
        .route("/ws", ws_echo())
        .mount("/api", pagi::app_fn(inner));
    let client = client(pagi::app_fn(app)).await;

    let r = client.get("/users/7/posts/caf%C3%A9").await;
    assert_eq!(
        r.text(),
        "path=/users/7/posts/café root= route=/users/7/posts/café params=id=7,post=café"
    );
    // A mounted router routes below its prefix; the prefix moved to root_path.
    let r = client.get("/api/items/42?x=1").await;
    assert_eq!(
        r.text(),
        "path=/api/items/42 root=/api route=/items/42 params=id=42"
    );
    assert_eq!(client.get("/api/nothing").await.status, 404);
    assert_eq!(client.get("/apiary").await.status, 404);
    assert_eq!(client.get("/").await.text(), "path=/ root= route=/ params=");

    let r = client.get("/login").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert_eq!(client.post("/login", "x").await.status, 200);

    // Event streams and WebSockets are routed the same way.
    let (head, events) = client.sse("/users/1/posts/2").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        events[0].data,
        "path=/users/1/posts/2 root= route=/users/1/posts/2 params=id=1,post=2"
    );
    let (missing, _) = client.sse("/missing").await;
    assert_eq!(missing.status, 404);
    let mut ws = client.websocket("/ws", &[]).await.expect("routed");
    assert_eq!(ws.recv_text().await, "route=/ws");
    assert_eq!(
        client.websocket("/nowhere", &[]).await.unwrap_err().status,
        403
    );
    ws.close(1000, "").await;
    assert!(matches!(ws.recv().await, Some(WsFrame::Close(1000, _))));

    client.shutdown().await; // the router acknowledged the lifespan
}

fn site() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pagi-mw-site-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(dir.join("docs/a.txt"), "0123456789").unwrap();
    std::fs::write(dir.join("style.css"), "body{}").unwrap();
    // Outside the root, and a link from inside to it.
    let secret = std::env::temp_dir().join(format!("pagi-mw-secret-{}", std::process::id()));
    std::fs::write(&secret, "secret").unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("escape.txt")).unwrap();
    // A named pipe: opening it would block until a writer came.
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("pipe"))
        .status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    dir
}

fn get_with(path: &str, headers: &[(&str, &str)]) -> http::Request<Bytes> {
    let mut r = http::Request::get(path);
    for (n, v) in headers {
        r = r.header(*n, *v);
    }
    r.body(Bytes::new()).unwrap()
}

#[tokio::test]
async fn static_files_serve_ranges_validators_and_refuse_hostile_paths() {
    let root = site();
    let app = Router::new().mount("/static", pagi::app_fn(StaticFiles::new(&root)));
    let client = client(pagi::app_fn(app)).await;

    let r = client.get("/static/docs/a.txt").await;
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = r.header("etag").unwrap().to_owned();
    let modified = r.header("last-modified").unwrap().to_owned();

    let index = client.get("/static/").await;
    assert_eq!(
        (index.status, index.header("content-type")),
        (200, Some("text/html; charset=utf-8"))
    );
    assert_eq!(
        client.get("/static/style.css").await.header("content-type"),
        Some("text/css; charset=utf-8")
    );

    let range: TestResponse = client
        .request(get_with("/static/docs/a.txt", &[("range", "bytes=2-4")]))
        .await;
    assert_eq!((range.status, range.text().as_str()), (206, "234"));
    assert_eq!(range.header("content-range"), Some("bytes 2-4/10"));
    let suffix = client
        .request(get_with("/static/docs/a.txt", &[("range", "bytes=-3")]))
        .await;
    assert_eq!((suffix.status, suffix.text().as_str()), (206, "789"));
    let past = client
        .request(get_with("/static/docs/a.txt", &[("range", "bytes=10-")]))
        .await;
    assert_eq!(
        (past.status, past.header("content-range")),
        (416, Some("bytes */10"))
    );
    let stale = client
        .request(get_with(
            "/static/docs/a.txt",
            &[("range", "bytes=0-0"), ("if-range", "\"other\"")],
        ))
        .await;
    assert_eq!((stale.status, stale.text().as_str()), (200, "0123456789"));

    let cached = client
        .request(get_with("/static/docs/a.txt", &[("if-none-match", &etag)]))
        .await;
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    let since = client
        .request(get_with(
            "/static/docs/a.txt",
            &[("if-modified-since", &modified)],
        ))
        .await;
    assert_eq!(since.status, 304);
    let older = client
        .request(get_with(
            "/static/docs/a.txt",
            &[("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")],
        ))
        .await;
    assert_eq!(older.status, 200);
    // If-None-Match wins over If-Modified-Since.
    let both = client
        .request(get_with(
            "/static/docs/a.txt",
            &[("if-none-match", "\"x\""), ("if-modified-since", &modified)],
        ))
        .await;
    assert_eq!(both.status, 200);

    let head = client
        .request(
            http::Request::head("/static/docs/a.txt")
                .body(Bytes::new())
                .unwrap(),
        )
        .await;
    assert_eq!(
        (head.status, head.header("content-length"), head.body.len()),
        (200, Some("10"), 0)
    );
    assert_eq!(client.post("/static/docs/a.txt", "").await.status, 405);

    // Hostile paths: none reaches a file outside the root.
    for path in [
        "/static/../Cargo.toml",
        "/static/docs/../../secret",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/docs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/a%00.txt",
        "/static//etc/passwd",
        "/static/escape.txt",
        "/static/pipe",
        "/static/missing.txt",
        "/static/docs",
    ] {
        let r = client.get(path).await;
        assert!(
            r.status == 404 || r.status == 400,
            "{path}: {} {:?}",
            r.status,
            r.text()
        );
        assert!(
            !r.text().contains("secret") && !r.text().contains("root:"),
            "{path}"
        );
    }
    client.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
#[should_panic(expected = "list the origins")]
fn cors_refuses_any_origin_with_credentials() {
    let app =
        |_: pagi::Scope, _: pagi::Receiver, _: pagi::Sender| async { Ok::<(), pagi::BoxError>(()) };
    let _ = Cors::new(app).allow_any_origin().allow_credentials(true);
}

#[test]
#[should_panic(expected = "list the origins")]
fn cors_refuses_credentials_then_any_origin() {
    let app =
        |_: pagi::Scope, _: pagi::Receiver, _: pagi::Sender| async { Ok::<(), pagi::BoxError>(()) };
    let _ = Cors::new(app).allow_credentials(true).allow_any_origin();
}

#[tokio::test]
async fn cors_preflights_decorates_responses_and_guards_websockets() {
    let app = Router::new().route("/data", echo()).route("/ws", ws_echo());
    let app = Cors::new(app)
        .allow_origins(["https://App.example/"])
        .allow_methods(["GET", "POST", "DELETE"])
        .expose_headers(["x-total"])
        .allow_credentials(true)
        .max_age(600);
    let client = client(pagi::app_fn(app)).await;
    let preflight = |origin: &'static str| {
        http::Request::builder()
            .method("OPTIONS")
            .uri("/data")
            .header("origin", origin)
            .header("access-control-request-method", "DELETE")
            .header("access-control-request-headers", "x-token")
            .body(Bytes::new())
            .unwrap()
    };

    let ok = client.request(preflight("https://app.example")).await;
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        ok.header("access-control-allow-methods"),
        Some("GET, POST, DELETE")
    );
    assert_eq!(ok.header("access-control-allow-headers"), Some("x-token"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        client
            .request(preflight("https://evil.example"))
            .await
            .status,
        403
    );

    let r = client
        .request(get_with("/data", &[("origin", "https://app.example")]))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("x-total"));
    assert_eq!(r.header("vary"), Some("Origin"));
    let other = client
        .request(get_with("/data", &[("origin", "https://evil.example")]))
        .await;
    assert_eq!(
        (other.status, other.header("access-control-allow-origin")),
        (200, None)
    );
    assert_eq!(
        other.header("vary"),
        Some("Origin"),
        "cacheable answers vary by Origin"
    );
    let same_site = client.get("/data").await;
    assert_eq!(same_site.header("access-control-allow-origin"), None);
    assert_eq!(same_site.header("vary"), Some("Origin"));
    // Origins compare as browsers send them, whatever the configured case.
    let upper = client
        .request(get_with("/data", &[("origin", "HTTPS://APP.EXAMPLE")]))
        .await;
    assert_eq!(
        upper.header("access-control-allow-origin"),
        Some("HTTPS://APP.EXAMPLE")
    );
    let opaque = client
        .request(get_with("/data", &[("origin", "null")]))
        .await;
    assert_eq!(opaque.header("access-control-allow-origin"), None);

    let mut ws = client
        .websocket("/ws", &[("origin", "https://app.example")])
        .await
        .expect("allowed");
    assert_eq!(ws.recv_text().await, "route=/ws");
    let refused = client
        .websocket("/ws", &[("origin", "https://evil.example")])
        .await
        .unwrap_err();
    assert_eq!(refused.status, 403);
    ws.close(1000, "").await;
    assert!(matches!(ws.recv().await, Some(WsFrame::Close(1000, _))));
    client.shutdown().await;
}
