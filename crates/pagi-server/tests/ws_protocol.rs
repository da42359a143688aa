//! RFC 6455 enforcement, checked with a raw TCP client that writes
//! hand-built frames after a manual handshake.

mod common;

use std::time::Duration;

use common::{
    client_frame, within, Frame, RawWs, TestServer, FIN, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING,
    OP_PONG, OP_TEXT, STEP,
};
use pagi::{BoxError, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use tokio::sync::mpsc;

const MAX_MESSAGE: usize = 1024;

/// An echo server that reports every `websocket.disconnect` its app sees.
async fn echo_server() -> (TestServer, mpsc::UnboundedReceiver<(u16, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = pagi::app_fn(move |scope: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let Scope::WebSocket(_) = scope else {
                return Err(pagi::unsupported_scope(&scope));
            };
            assert_eq!(receive.recv().await, ReceiveEvent::WebSocketConnect);
            send.send(SendEvent::accept()).await?;
            loop {
                match receive.recv().await {
                    ReceiveEvent::WebSocketReceive(m) => send.send(m).await?,
                    ReceiveEvent::WebSocketDisconnect { code, reason } => {
                        let _ = tx.send((code, reason));
                        return Ok::<(), BoxError>(());
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    });
    let config = pagi_server::Config {
        ws_max_message_size: MAX_MESSAGE,
        ..common::config()
    };
    (TestServer::start_with(config, app).await, rx)
}

/// Send `bytes`, expect a Close with `code` and then the end of the TCP
/// connection; returns what the app saw.
async fn violation(bytes: &[u8], code: u16) -> (u16, String) {
    let (server, mut events) = echo_server().await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    ws.write(bytes).await;
    let (close, data) = ws.read_until_close().await;
    assert!(
        data.is_empty(),
        "unexpected frames before the close: {data:?}"
    );
    assert_eq!(close.close_parts().0, Some(code), "{close:?}");
    assert!(
        ws.closed_within(Duration::from_secs(3)).await,
        "server kept the connection open after failing it"
    );
    let seen = within(STEP, "app disconnect", events.recv()).await.unwrap();
    drop(ws);
    assert!(server.idle_within(STEP).await);
    server.shutdown(STEP).await;
    seen
}

#[tokio::test]
async fn unmasked_client_frame_is_1002() {
    let seen = violation(&client_frame(FIN | OP_TEXT, b"hi", false), 1002).await;
    assert_eq!(seen, (1002, "protocol_error".into()));
}

#[tokio::test]
async fn rsv_bits_are_1002() {
    // RSV1 without a negotiated extension, RSV2, RSV3.
    for rsv in [0x40, 0x20, 0x10] {
        let seen = violation(&client_frame(FIN | rsv | OP_TEXT, b"hi", true), 1002).await;
        assert_eq!(seen.0, 1002, "rsv {rsv:#x}");
    }
}

#[tokio::test]
async fn reserved_opcodes_are_1002() {
    for op in [0x3, 0x7, 0xB, 0xF] {
        let seen = violation(&client_frame(FIN | op, b"x", true), 1002).await;
        assert_eq!(seen, (1002, "protocol_error".into()), "opcode {op:#x}");
    }
}

#[tokio::test]
async fn control_frame_over_125_bytes_is_1002() {
    violation(&client_frame(FIN | OP_PING, &[b'p'; 126], true), 1002).await;
}

#[tokio::test]
async fn fragmented_control_frame_is_1002() {
    violation(&client_frame(OP_PING, b"frag", true), 1002).await;
}

#[tokio::test]
async fn invalid_utf8_text_is_1007() {
    let seen = violation(&client_frame(FIN | OP_TEXT, b"ok \xff\xfe", true), 1007).await;
    assert_eq!(seen, (1007, "protocol_error".into()));
    // Split across fragments, each looking fine on its own: "é" = C3 A9.
    let mut bytes = client_frame(OP_TEXT, b"caf\xc3", true);
    bytes.extend(client_frame(FIN | OP_CONT, b"\x28", true));
    violation(&bytes, 1007).await;
}

#[tokio::test]
async fn invalid_utf8_close_reason_is_1007() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye \xc0");
    let seen = violation(&client_frame(FIN | OP_CLOSE, &payload, true), 1007).await;
    assert_eq!(seen.0, 1007);
}

#[tokio::test]
async fn message_above_max_size_is_1009() {
    let seen = violation(
        &client_frame(FIN | OP_BINARY, &[7; MAX_MESSAGE + 1], true),
        1009,
    )
    .await;
    assert_eq!(seen.0, 1009);
    // Fragments each below the limit, the whole above it.
    let mut bytes = Vec::new();
    bytes.extend(client_frame(OP_TEXT, &[b'a'; 600], true));
    bytes.extend(client_frame(FIN | OP_CONT, &[b'b'; 600], true));
    let seen = violation(&bytes, 1009).await;
    assert_eq!(seen.0, 1009);
}

#[tokio::test]
async fn message_at_max_size_passes() {
    let (server, _events) = echo_server().await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    ws.send(FIN | OP_BINARY, &[9; MAX_MESSAGE]).await;
    let f = ws.read_frame().await.unwrap();
    assert_eq!((f.opcode, f.payload), (OP_BINARY, vec![9; MAX_MESSAGE]));
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn ping_gets_pong_with_same_payload() {
    let (server, _events) = echo_server().await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    for payload in [&b""[..], b"abc", &[0xffu8; 125]] {
        ws.send(FIN | OP_PING, payload).await;
        let f = ws.read_frame().await.unwrap();
        assert_eq!(
            f,
            Frame {
                fin: true,
                rsv: 0,
                opcode: OP_PONG,
                masked: false,
                payload: payload.to_vec()
            }
        );
    }
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn ping_between_fragments_is_answered_and_message_reassembled() {
    let (server, _events) = echo_server().await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    ws.send(OP_TEXT, b"Hel").await;
    ws.send(FIN | OP_PING, b"mid").await;
    // The pong comes before the message is complete.
    let pong = ws.read_frame().await.unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"mid"[..])
    );
    ws.send(OP_CONT, b"lo, ").await;
    ws.send(FIN | OP_PING, b"again").await;
    ws.send(FIN | OP_CONT, "wörld".as_bytes()).await;
    let pong = ws.read_frame().await.unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"again"[..])
    );
    let echo = ws.read_frame().await.unwrap();
    assert!(echo.fin);
    assert_eq!(
        (echo.opcode, echo.payload.as_slice()),
        (OP_TEXT, "Hello, wörld".as_bytes())
    );
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn peer_close_is_echoed_with_its_code() {
    let (server, mut events) = echo_server().await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    ws.send_close(Some(4000), b"see you").await;
    let (close, _) = ws.read_until_close().await;
    assert_eq!(close.close_parts().0, Some(4000));
    assert!(ws.closed_within(Duration::from_secs(3)).await);
    let seen = within(STEP, "app disconnect", events.recv()).await.unwrap();
    assert_eq!(seen, (4000, "see you".into()));
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn empty_close_is_answered_with_empty_close_never_1005() {
    let (server, mut events) = echo_server().await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    ws.send_close(None, b"").await;
    let (close, _) = ws.read_until_close().await;
    assert!(
        close.payload.is_empty(),
        "close payload {:?}",
        close.payload
    );
    assert!(ws.closed_within(Duration::from_secs(3)).await);
    // The app learns "no status received".
    let seen = within(STEP, "app disconnect", events.recv()).await.unwrap();
    assert_eq!(seen, (1005, String::new()));
    drop(ws);
    server.shutdown(STEP).await;
}

#[tokio::test]
async fn invalid_close_codes_are_1002() {
    for code in [0u16, 999, 1005, 1006, 1015, 2000, 5000] {
        let seen = violation(
            &client_frame(FIN | OP_CLOSE, &code.to_be_bytes(), true),
            1002,
        )
        .await;
        assert_eq!(seen.0, 1002, "code {code}");
    }
    // A one-byte close payload.
    violation(&client_frame(FIN | OP_CLOSE, &[3], true), 1002).await;
}

#[tokio::test]
async fn continuation_without_message_and_new_message_mid_fragment_are_1002() {
    violation(&client_frame(FIN | OP_CONT, b"x", true), 1002).await;
    let mut bytes = client_frame(OP_TEXT, b"a", true);
    bytes.extend(client_frame(FIN | OP_TEXT, b"b", true));
    violation(&bytes, 1002).await;
}

// Regression (Autobahn 3.2, 4.1.3, 5.15 were NON-STRICT): a valid message
// and a bad frame in one read used to queue the failure's Close before the
// app could echo the message, so the echo was lost.
#[tokio::test]
async fn echo_of_a_message_before_a_bad_frame_goes_out_before_the_close() {
    let (server, mut events) = echo_server().await;
    let mut ws = RawWs::connect(server.addr, "/").await;
    let mut bytes = client_frame(FIN | OP_TEXT, b"first", true);
    bytes.extend(client_frame(FIN | 0x20 | OP_TEXT, b"bad", true)); // RSV2
    ws.write(&bytes).await;
    let (close, data) = ws.read_until_close().await;
    assert_eq!(data.len(), 1, "{data:?}");
    assert_eq!(data[0].payload, b"first");
    assert_eq!(close.close_parts().0, Some(1002));
    let seen = within(STEP, "app disconnect", events.recv()).await.unwrap();
    assert_eq!(seen, (1002, "protocol_error".into()));
    drop(ws);
    server.shutdown(STEP).await;
}
