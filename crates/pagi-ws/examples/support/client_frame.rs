//! A masked client frame, for the examples and the fuzz targets that play the client (shared
//! with `#[path]`: neither is part of the library).

/// One client frame: first byte `b0` (FIN, RSV, opcode), `payload` masked with `mask`.
pub(crate) fn client_frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 14);
    v.push(b0);
    match payload.len() {
        n if n < 126 => v.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    v
}
