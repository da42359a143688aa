//! One test, both protocols: an HTTP client (hyper's, over HTTP/1.1 or
//! HTTP/2 with prior knowledge) and a WebSocket client (tokio-tungstenite,
//! over an HTTP/1.1 upgrade or an RFC 8441 extended CONNECT on an HTTP/2
//! stream). Suites written against these run over each protocol through
//! [`both!`].

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::{within, STEP};

/// The protocol a test runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub trailers: Option<http::HeaderMap>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One connection to the server.
pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Client {
    pub async fn connect(addr: SocketAddr, proto: Proto) -> Client {
        let stream = within(STEP, "connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let io = TokioIo::new(stream);
        match proto {
            Proto::H1 => {
                let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn.with_upgrades());
                Client::H1(send)
            }
            Proto::H2 => {
                let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                Client::H2(send)
            }
        }
    }

    /// Send a request; the response with its body not yet read.
    pub async fn send(&mut self, req: http::Request<Full<Bytes>>) -> http::Response<Incoming> {
        within(STEP, "response head", async {
            match self {
                Client::H1(s) => {
                    s.ready().await.expect("connection usable");
                    s.send_request(req).await.expect("response")
                }
                Client::H2(s) => {
                    s.ready().await.expect("connection usable");
                    s.send_request(req).await.expect("response")
                }
            }
        })
        .await
    }

    /// A request with `headers`, and its whole response.
    pub async fn fetch(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut req = http::Request::builder().method(method).uri(self.uri(path));
        if let Client::H1(_) = self {
            req = req.header("host", "test");
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let resp = self.send(req.body(Full::new(body.into())).unwrap()).await;
        read_whole(resp).await
    }

    /// The request target for `path`: origin-form on HTTP/1.1 (with a
    /// `Host` header), scheme and authority on HTTP/2 (`:authority`).
    pub fn uri(&self, path: &str) -> String {
        match self {
            Client::H1(_) => path.to_owned(),
            Client::H2(_) => format!("http://test{path}"),
        }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.fetch("GET", path, &[], Bytes::new()).await
    }
}

/// A response's body and trailers, read to the end.
pub async fn read_whole(resp: http::Response<Incoming>) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let collected = within(STEP, "response body", resp.into_body().collect())
        .await
        .expect("body");
    let trailers = collected.trailers().cloned();
    Resp {
        status,
        headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// The byte stream a WebSocket runs over, whichever protocol carries it.
pub type WsIo = TokioIo<hyper::upgrade::Upgraded>;

/// Open a WebSocket on `path` with extra request `headers`; the handshake's
/// status and headers, and the client if it was accepted.
pub async fn ws_try(
    addr: SocketAddr,
    proto: Proto,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, Option<WebSocketStream<WsIo>>) {
    let mut client = Client::connect(addr, proto).await;
    let mut req = match proto {
        Proto::H1 => http::Request::get(path)
            .header("host", "test")
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-key", super::SAMPLE_KEY),
        Proto::H2 => {
            let mut b = http::Request::builder()
                .method("CONNECT")
                .uri(format!("http://test{path}"))
                .version(http::Version::HTTP_2);
            b.extensions_mut()
                .unwrap()
                .insert(hyper::ext::Protocol::from_static("websocket"));
            b
        }
    }
    .header("sec-websocket-version", "13");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let mut resp = client
        .send(req.body(Full::new(Bytes::new())).unwrap())
        .await;
    let status = resp.status().as_u16();
    let head = resp.headers().clone();
    let accepted = matches!((proto, status), (Proto::H1, 101) | (Proto::H2, 200));
    if !accepted {
        return (status, head, None);
    }
    let upgraded = within(STEP, "upgrade", hyper::upgrade::on(&mut resp))
        .await
        .expect("upgraded");
    // The connection lives as long as its driver task (spawned above).
    std::mem::forget(client);
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    (status, head, Some(ws))
}

/// Open a WebSocket that must be accepted.
pub async fn ws_connect(addr: SocketAddr, proto: Proto, path: &str) -> WebSocketStream<WsIo> {
    let (status, _, ws) = ws_try(addr, proto, path, &[]).await;
    ws.unwrap_or_else(|| panic!("handshake refused with {status}"))
}

/// Define `name::h1` and `name::h2`: the async test body run over each
/// protocol (`$proto` is the [`Proto`]).
#[macro_export]
macro_rules! both {
    ($name:ident, |$proto:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($proto: $crate::common::proto::Proto) $body

            #[tokio::test]
            async fn h1() {
                run($crate::common::proto::Proto::H1).await
            }

            #[tokio::test]
            async fn h2() {
                run($crate::common::proto::Proto::H2).await
            }
        }
    };
}
