//! The test client's WebSocket side: the RFC 6455 client half (masked
//! frames out, unmasked frames in), just enough to drive a session. It
//! offers no extensions, so frames are never compressed.

use bytes::{Buf, BytesMut};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use pagi::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{fields, TestResponse};

/// A frame from the server, as the test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFrame {
    /// A whole message (fragments joined).
    Message(Message),
    /// A Close frame: the code (1005 when none) and the reason.
    Close(u16, String),
}

/// An open WebSocket to the app. Pings are answered; the server's Close
/// is echoed.
#[derive(Debug)]
pub struct TestWebSocket {
    io: TokioIo<hyper::upgrade::Upgraded>,
    buf: BytesMut,
    /// The subprotocol the app chose, if any.
    pub subprotocol: Option<String>,
    closed: bool,
    mask_seed: u32,
    /// How long `recv` waits before it panics.
    timeout: std::time::Duration,
}

pub(super) async fn open(
    io: TokioIo<DuplexStream>,
    path: &str,
    headers: &[(&str, &str)],
    timeout: std::time::Duration,
) -> Result<TestWebSocket, TestResponse> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("in-memory handshake");
    tokio::spawn(conn.with_upgrades());
    let mut request = http::Request::get(path);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request = request.header("host", "testserver");
    }
    let mut request = request
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Empty::<bytes::Bytes>::new())
        .expect("a valid path");
    let Ok(mut response) = sender.send_request(request).await else {
        return Err(TestResponse::default());
    };
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = response.into_parts();
        let body = http_body_util::BodyExt::collect(body)
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(TestResponse {
            status: parts.status.as_u16(),
            headers: fields(&parts.headers),
            body,
            ..TestResponse::default()
        });
    }
    let subprotocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .expect("the upgraded stream");
    Ok(TestWebSocket {
        io: TokioIo::new(upgraded),
        buf: BytesMut::new(),
        subprotocol,
        closed: false,
        mask_seed: 0x9e37_79b9,
        timeout,
    })
}

impl TestWebSocket {
    /// Send a text message.
    pub async fn send_text(&mut self, text: &str) {
        self.write_frame(0x1, text.as_bytes()).await;
    }

    /// Send a binary message.
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.write_frame(0x2, bytes).await;
    }

    /// Send a Close frame with `code` and `reason`.
    pub async fn close(&mut self, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.write_frame(0x8, &payload).await;
    }

    /// The next message or Close from the server; `None` when the stream
    /// ended without a Close. Panics after the client's timeout.
    pub async fn recv(&mut self) -> Option<WsFrame> {
        let limit = self.timeout;
        match tokio::time::timeout(limit, self.next_frame()).await {
            Ok(frame) => frame,
            Err(_) => panic!("WebSocket: nothing from the app within {limit:?}"),
        }
    }

    async fn next_frame(&mut self) -> Option<WsFrame> {
        let mut message: Option<(u8, Vec<u8>)> = None;
        loop {
            let (fin, opcode, payload) = self.read_frame().await?;
            match opcode {
                0x9 => self.write_frame(0xA, &payload).await,
                0xA => {}
                0x8 => {
                    let code = payload
                        .get(..2)
                        .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                    let reason =
                        String::from_utf8_lossy(payload.get(2..).unwrap_or(&[])).into_owned();
                    if !self.closed {
                        self.write_frame(0x8, payload.get(..2).unwrap_or(&[])).await;
                    }
                    // Both Closes went: the connection is done (the server
                    // need not wait for the end of the stream).
                    let _ = self.io.shutdown().await;
                    return Some(WsFrame::Close(code, reason));
                }
                0x0 => {
                    message.as_mut()?.1.extend_from_slice(&payload);
                }
                op => message = Some((op, payload)),
            }
            if fin && opcode != 0x9 && opcode != 0xA {
                let (op, data) = message.take()?;
                return Some(WsFrame::Message(if op == 0x1 {
                    Message::Text(pagi::ByteString::try_from(data).ok()?)
                } else {
                    Message::Binary(data.into())
                }));
            }
        }
    }

    /// The next text message (panics on anything else).
    pub async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Some(WsFrame::Message(Message::Text(t))) => t.to_string(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    async fn write_frame(&mut self, opcode: u8, payload: &[u8]) {
        if opcode == 0x8 {
            self.closed = true;
        }
        // A fresh masking key per frame (xorshift: unpredictable enough for
        // a test peer; the server only requires that frames are masked).
        self.mask_seed ^= self.mask_seed << 13;
        self.mask_seed ^= self.mask_seed >> 17;
        self.mask_seed ^= self.mask_seed << 5;
        let mask = self.mask_seed.to_be_bytes();
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        // A peer that already left is not an error for a test client.
        let _ = self.io.write_all(&frame).await;
    }

    async fn read_frame(&mut self) -> Option<(bool, u8, Vec<u8>)> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            self.buf.reserve(16 * 1024);
            if self.io.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    /// One whole server frame from the buffer, if there is one.
    fn parse(&mut self) -> Option<(bool, u8, Vec<u8>)> {
        let b = &self.buf[..];
        if b.len() < 2 {
            return None;
        }
        let (fin, opcode) = (b[0] & 0x80 != 0, b[0] & 0x0F);
        let (len, header) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().ok()?) as usize, 10),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if b.len() < header + len {
            return None;
        }
        self.buf.advance(header);
        let payload = self.buf.split_to(len).to_vec();
        Some((fin, opcode, payload))
    }
}
