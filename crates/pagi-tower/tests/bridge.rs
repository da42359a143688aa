//! Both bridges over real sockets, with a plain HTTP/1.1 client written
//! here (independent of hyper, axum and pagi-server): an axum `Router` on
//! pagi-server, and PAGI apps nested in an axum `Router` on `axum::serve`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Extension;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body::Frame;
use pagi::{http, sse, BoxError, Receiver, Scope, Sender};
use pagi_server::{Config, LifespanMode, Listen, Server};
use pagi_tower::{ClientAddr, PagiService, ScopeInfo, ServiceApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const STEP: Duration = Duration::from_secs(10);

/// One response read to EOF: status, lower-cased headers, de-chunked body,
/// trailers.
#[derive(Debug, Default)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn fields(block: &str) -> Vec<(String, String)> {
    block
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// Send `request` (which must say `Connection: close`) and read the reply.
async fn exchange(addr: SocketAddr, request: &str) -> Reply {
    let work = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(STEP, work)
        .await
        .expect("reply in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let (status_line, rest) = head.split_once("\r\n").unwrap_or((&head, ""));
    let mut reply = Reply {
        status: status_line.split(' ').nth(1).unwrap().parse().unwrap(),
        headers: fields(rest),
        ..Reply::default()
    };
    let mut body = &raw[split + 4..];
    if reply.header("transfer-encoding") == Some("chunked") {
        loop {
            let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                    .unwrap();
            body = &body[line_end + 2..];
            if size == 0 {
                reply.trailers = fields(&String::from_utf8_lossy(body));
                break;
            }
            reply.body.extend_from_slice(&body[..size]);
            body = &body[size + 2..];
        }
    } else {
        reply.body = body.to_vec();
    }
    reply
}

/// Data frames, then trailers; the size is announced when it is `Some`.
struct Chunked(Vec<Frame<Bytes>>, Option<u64>);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(if self.0.is_empty() {
            None
        } else {
            Some(Ok(self.0.remove(0)))
        })
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.1.map_or_else(
            http_body::SizeHint::default,
            http_body::SizeHint::with_exact,
        )
    }
}

/// "one,two" then an `x-checksum` trailer, as a response that declares it
/// (or not) and announces its size (or not).
fn with_trailers(declared: bool, sized: bool) -> axum::response::Response {
    let mut trailers = axum::http::HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().unwrap());
    let body = Chunked(
        vec![
            Frame::data(Bytes::from_static(b"one,")),
            Frame::data(Bytes::from_static(b"two")),
            Frame::trailers(trailers),
        ],
        sized.then_some(7),
    );
    let mut response = axum::response::Response::new(axum::body::Body::new(body));
    if declared {
        response
            .headers_mut()
            .insert("trailer", "x-checksum".parse().unwrap());
    }
    response
}

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "hello from axum" }))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/who",
            get(
                |Extension(client): Extension<ClientAddr>,
                 Extension(scope): Extension<ScopeInfo>| async move {
                    format!("{} {} {}", client.0.ip(), scope.0.scheme, scope.0.method)
                },
            ),
        )
        .route("/trailers", get(|| async { with_trailers(true, false) }))
        .route(
            "/sized-trailers",
            get(|| async { with_trailers(true, true) }),
        )
        .route("/undeclared", get(|| async { with_trailers(false, false) }))
        .route(
            "/undeclared-sized",
            get(|| async { with_trailers(false, true) }),
        )
        .route(
            "/grpc",
            get(|| async {
                let mut r = with_trailers(false, false);
                r.headers_mut()
                    .insert("content-type", "application/grpc".parse().unwrap());
                r
            }),
        )
}

#[tokio::test]
async fn an_axum_router_runs_on_pagi_server() {
    let config = Config {
        listen: vec![Listen::tcp("127.0.0.1:0".parse().unwrap())],
        // A tower service has no lifespan: the bridge acknowledges it.
        lifespan: LifespanMode::On,
        ..Config::default()
    };
    let server = Server::bind(config, pagi::app_fn(ServiceApp::new(router())))
        .await
        .unwrap();
    let handle = server.handle();
    let addr = handle.local_addr().unwrap();
    let task = tokio::spawn(server.run_until(std::future::pending()));

    let r = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello from axum"));
    assert_eq!(r.header("content-length"), Some("15"));

    let r = exchange(addr, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));

    let r = exchange(
        addr,
        "GET /who HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "127.0.0.1 http GET"));

    // Trailers go out when declared (sized body or not) or gRPC; undeclared
    // ones are not announced, so not sent, and a sized body then keeps its
    // Content-Length (the others get chunked or, when the server has the
    // whole body before the head goes out, a length of its own).
    let checksum = [("x-checksum".to_owned(), "abc".to_owned())];
    for (path, trailers, length) in [
        ("/trailers", &checksum[..], None),
        ("/sized-trailers", &checksum[..], None),
        ("/undeclared", &[][..], None),
        ("/undeclared-sized", &[][..], Some("7")),
        ("/grpc", &checksum[..], None),
    ] {
        let r = exchange(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!((r.status, r.text().as_str()), (200, "one,two"), "{path}");
        assert_eq!(r.trailers, trailers, "{path}");
        if length.is_some() {
            assert_eq!(r.header("content-length"), length, "{path}");
        }
    }

    let r = exchange(
        addr,
        "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 404);

    // An event-stream request is an sse scope; the router's plain answer
    // goes out as the scope's declining response.
    let r = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello from axum"));

    // No WebSocket upgrade through a tower service: refused.
    let r = exchange(addr, "GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await;
    assert_eq!(r.status, 403);

    handle.shutdown();
    tokio::time::timeout(STEP, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A PAGI app for the axum side: echo what the scope says, stream SSE, or
/// push until the client leaves.
async fn pagi_app(
    scope: Scope,
    mut receive: Receiver,
    send: Sender,
    left: mpsc::UnboundedSender<u32>,
) -> Result<(), BoxError> {
    match scope {
        Scope::Sse(_) => {
            let stream = sse::start(&send).await?;
            for n in 1..=3 {
                stream
                    .send(sse::Event::new(format!("tick {n}")).event("tick"))
                    .await?;
            }
            stream.close().await?;
        }
        Scope::Http(ref h) if h.route_path() == "/forever" => {
            let mut body = http::stream(&send, 200, [("content-type", "text/plain")]).await?;
            let mut n = 0;
            loop {
                tokio::select! {
                    () = body.closed() => break,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {
                        body.write("more\n").await?;
                        n += 1;
                    }
                }
            }
            let _ = left.send(n);
        }
        Scope::Http(_) => {
            let body = http::read_body(&mut receive, 1024).await?;
            let answer = format!(
                "{} {}://{} root={} q={:?} body={}",
                scope.method().unwrap_or("-"),
                scope.info().map_or("-", |i| &i.scheme),
                scope.path(),
                scope.root_path(),
                scope.query().get("q"),
                String::from_utf8_lossy(&body)
            );
            http::Response::text(201, answer).send(&send).await?;
        }
        other => return Err(pagi::unsupported_scope(&other)),
    }
    Ok(())
}

#[tokio::test]
async fn a_pagi_app_runs_inside_axum() {
    let (left_tx, mut left) = mpsc::unbounded_channel();
    let app =
        pagi::app_fn(move |scope, receive, send| pagi_app(scope, receive, send, left_tx.clone()));
    let failing = pagi::app_fn(|_: Scope, _: Receiver, _: Sender| async { Err::<(), _>("no") });
    let router = Router::new()
        .route("/axum", get(|| async { "axum here" }))
        .nest_service(
            "/pagi",
            PagiService::new(app)
                .with_root_path("/pagi")
                .with_https(true),
        )
        .nest_service("/broken", PagiService::new(failing));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let r = exchange(
        addr,
        "GET /axum HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "axum here"));

    let r = exchange(addr, "POST /pagi/items?q=a+b HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nConnection: close\r\n\r\nping").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            201,
            "POST https:///pagi/items root=/pagi q=Some(\"a b\") body=ping"
        )
    );
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );

    let r = exchange(addr, "GET /pagi/events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(
        r.text(),
        "event: tick\ndata: tick 1\n\nevent: tick\ndata: tick 2\n\nevent: tick\ndata: tick 3\n\n"
    );

    let r = exchange(
        addr,
        "GET /broken HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 500);

    // A client that leaves mid-stream ends the app's push loop.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /pagi/forever HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 64];
    let n = tokio::time::timeout(STEP, stream.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(stream);
    let pushed = tokio::time::timeout(STEP, left.recv())
        .await
        .expect("the app saw the client leave");
    assert!(pushed.unwrap() >= 1);

    server.abort();
}

/// Regressions from review: a whole response completes (on_complete, not
/// on_disconnect) even though hyper stops polling at the known length, and
/// for HEAD; a panicking app, or one failing after the start but before any
/// body, gets a 500 instead of a hung request or a broken 200.
#[tokio::test]
async fn pagi_service_completes_whole_responses_and_answers_500_for_failures() {
    let (tx, mut ends) = mpsc::unbounded_channel::<String>();
    let app = pagi::app_fn(move |scope: Scope, _: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            if let Some(conn) = scope.connection() {
                let (a, b) = (tx.clone(), tx.clone());
                conn.on_complete(move || {
                    let _ = a.send("complete".into());
                });
                conn.on_disconnect(move |why| {
                    let _ = b.send(format!("disconnect {why}"));
                });
            }
            match scope.path() {
                "/panic" => panic!("app bug"),
                "/fail-after-start" => {
                    send.send(pagi::SendEvent::response_start(200, pagi::Headers::new()))
                        .await?;
                    Err("failed before the body".into())
                }
                _ => {
                    http::Response::text(200, "hello").send(&send).await?;
                    Ok::<(), BoxError>(())
                }
            }
        }
    });
    let router = Router::new().fallback_service(PagiService::new(app));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    for (method, path, status, end) in [
        ("GET", "/whole", 200, "complete"),
        ("HEAD", "/whole", 200, "complete"),
        ("GET", "/panic", 500, "disconnect server_error"),
        ("GET", "/fail-after-start", 500, "disconnect server_error"),
    ] {
        let r = exchange(
            addr,
            &format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(r.status, status, "{method} {path}");
        let seen = tokio::time::timeout(STEP, ends.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen, end, "{method} {path}");
    }
    server.abort();
}
