//! A client frame as a WebSocket client puts it on the wire. Not part of the library: shared with
//! `#[path]` by everything here that plays the client (the pagi-ws examples and session tests,
//! the pagi-server integration tests, the fuzz targets).

/// One client frame: first byte `b0` (FIN, RSV, opcode), then `payload`, masked with `mask`, or
/// sent unmasked (as no client may) when `mask` is `None`.
pub(crate) fn client_frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 14);
    v.push(b0);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => v.push(m | n as u8),
        n if n <= 0xFFFF => {
            v.push(m | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(m | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            v.extend_from_slice(&key);
            v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => v.extend_from_slice(payload),
    }
    v
}
