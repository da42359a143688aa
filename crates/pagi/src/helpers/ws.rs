//! WebSocket helpers: accept, then a typed receiving half and a cloneable
//! sending half. Each method is one event underneath; mix them freely with
//! raw events.
//!
//! ```
//! use pagi::{ws, BoxError, Message, Receiver, Scope, Sender};
//!
//! async fn echo(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
//!     let Scope::WebSocket(_) = scope else { return Err(pagi::unsupported_scope(&scope)) };
//!     let (mut incoming, outgoing) = ws::accept(receive, send).await?;
//!     while let Some(message) = incoming.recv().await {
//!         outgoing.send(message).await?;
//!     }
//!     println!("closed with {:?}", incoming.close_code());
//!     Ok(())
//! }
//! # let _ = pagi::app_fn(echo);
//! ```

use std::time::Duration;

use bytes::Bytes;

use crate::{
    BoxError, ByteString, Headers, Message, ReceiveEvent, Receiver, SendError, SendEvent, Sender,
};

/// Refuse the handshake: wait for `websocket.connect`, answer
/// `websocket.close` (the client gets HTTP 403).
pub async fn refuse(mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let _connect = receive.recv().await;
    send.send(SendEvent::close(1000, "")).await?;
    Ok(())
}

/// Wait for `websocket.connect` and accept with no subprotocol: the common
/// case of [`Accept`].
pub async fn accept(receive: Receiver, send: Sender) -> Result<(WsReceiver, WsSender), BoxError> {
    Accept::new().accept(receive, send).await
}

/// A `websocket.accept` with options.
///
/// ```
/// # async fn f(receive: pagi::Receiver, send: pagi::Sender) -> Result<(), pagi::BoxError> {
/// let (rx, tx) = pagi::ws::Accept::new()
///     .subprotocol("chat.v1")
///     .header("x-served-by", "pagi")
///     .accept(receive, send)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Accept {
    subprotocol: Option<String>,
    headers: Headers,
}

impl Accept {
    /// No subprotocol, no extra headers.
    pub fn new() -> Self {
        Accept::default()
    }

    /// Choose a subprotocol (one the client offered, or the send fails).
    pub fn subprotocol(mut self, name: impl Into<String>) -> Self {
        self.subprotocol = Some(name.into());
        self
    }

    /// Add a response header to the handshake.
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Wait for `websocket.connect`, send `websocket.accept`, and split the
    /// session. Fails if the first event is not the connect (the client left
    /// first, or the scope is not a WebSocket scope).
    pub async fn accept(
        self,
        mut receive: Receiver,
        send: Sender,
    ) -> Result<(WsReceiver, WsSender), BoxError> {
        match receive.recv().await {
            ReceiveEvent::WebSocketConnect => {}
            other => {
                return Err(format!("expected websocket.connect, got {}", other.type_name()).into())
            }
        }
        send.send(SendEvent::WebSocketAccept {
            subprotocol: self.subprotocol,
            headers: self.headers,
        })
        .await?;
        Ok((
            WsReceiver {
                receive,
                closed: None,
            },
            WsSender { send },
        ))
    }
}

/// The receiving half of an accepted WebSocket.
#[derive(Debug)]
pub struct WsReceiver {
    receive: Receiver,
    closed: Option<(u16, String)>,
}

impl WsReceiver {
    /// The next message, or `None` once the session ended (then
    /// [`WsReceiver::close_code`] and [`WsReceiver::close_reason`] say how).
    /// Events other than messages (a middleware's custom events) are
    /// skipped; use [`WsReceiver::recv_event`] to see them. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            match self.recv_event().await {
                ReceiveEvent::WebSocketReceive(m) => return Some(m),
                e if e.is_disconnect() => return None,
                _ => {}
            }
        }
    }

    /// The next event as it is, recording the close code when it is the
    /// disconnect.
    pub async fn recv_event(&mut self) -> ReceiveEvent {
        let event = self.receive.recv().await;
        if let ReceiveEvent::WebSocketDisconnect { code, reason } = &event {
            self.closed = Some((*code, reason.clone()));
        }
        event
    }

    /// The close code once the session ended (1005: the peer's Close had
    /// none; 1006: the connection dropped).
    pub fn close_code(&self) -> Option<u16> {
        self.closed.as_ref().map(|(c, _)| *c)
    }

    /// The peer's close reason, or the server's reason token.
    pub fn close_reason(&self) -> Option<&str> {
        self.closed.as_ref().map(|(_, r)| r.as_str())
    }

    /// The raw `receive` back.
    pub fn into_inner(self) -> Receiver {
        self.receive
    }
}

/// The sending half of an accepted WebSocket; clone it for each branch
/// that sends.
#[derive(Clone, Debug)]
pub struct WsSender {
    send: Sender,
}

impl WsSender {
    /// Send a message.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        self.send.send(SendEvent::WebSocketSend(message)).await
    }

    /// Send a text message.
    pub async fn text(&self, text: impl Into<ByteString>) -> Result<(), SendError> {
        self.send.send(SendEvent::text(text)).await
    }

    /// Send a binary message.
    pub async fn binary(&self, bytes: impl Into<Bytes>) -> Result<(), SendError> {
        self.send.send(SendEvent::binary(bytes)).await
    }

    /// Close the session with `code` and `reason` (the peer's answer ends
    /// the receiving half).
    pub async fn close(&self, code: u16, reason: impl Into<String>) -> Result<(), SendError> {
        self.send.send(SendEvent::close(code, reason)).await
    }

    /// Ping every `interval`; with `timeout`, a peer that does not answer
    /// is dropped (1006 `keepalive_timeout`). A zero interval stops it.
    pub async fn keepalive(
        &self,
        interval: Duration,
        timeout: Option<Duration>,
    ) -> Result<(), SendError> {
        self.send
            .send(SendEvent::WebSocketKeepalive { interval, timeout })
            .await
    }

    /// Resolves once the session ended (see [`Sender::closed`]).
    pub async fn closed(&self) {
        self.send.closed().await
    }

    /// Whether the session ended.
    pub fn is_closed(&self) -> bool {
        self.send.is_closed()
    }

    /// The raw `send`.
    pub fn sender(&self) -> &Sender {
        &self.send
    }
}
