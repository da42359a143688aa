//! Sans-IO WebSocket protocol for servers: RFC 6455 framing and RFC 7692 permessage-deflate.
//!
//! This crate owns no sockets and no runtime. A [`Session`] is fed the bytes read from the
//! connection ([`Session::read_event`]) and produces [`Event`]s; messages to send are queued
//! with [`Session::send`] and the encoded bytes are taken out with [`Session::chunks_vectored`]
//! (one vectored write) and [`Session::advance`]. The HTTP/1.1 upgrade itself is left to the
//! server; [`handshake`] has the pieces it needs (`Sec-WebSocket-Accept`, key validation and
//! permessage-deflate negotiation).
//!
//! ```
//! use bytes::BytesMut;
//! use pagi_ws::{Event, Message, Session, SessionConfig};
//!
//! let mut session = Session::new(SessionConfig::default());
//! // A masked text frame "Hi" as a client would send it.
//! let mut input = BytesMut::from(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2][..]);
//! let event = session.read_event(&mut input).unwrap();
//! assert_eq!(event, Event::Message(Message::Text("Hi".into())));
//! session.send(Message::Text("Hi".into())).unwrap();
//! let mut slices = [std::io::IoSlice::new(&[]); 8];
//! let n = session.chunks_vectored(&mut slices);
//! let wire: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
//! assert_eq!(wire, [0x81, 0x02, b'H', b'i']);
//! session.advance(wire.len());
//! assert_eq!(session.buffered(), 0);
//! ```

mod deflate;
mod frame;
pub mod handshake;
mod out;
mod session;
mod utf8;

pub use bytestring::ByteString;
pub use deflate::{DeflateConfig, DeflateParams};
pub use session::{
    is_valid_close_code, Event, Message, SendError, Session, SessionConfig, State,
    INFLATE_RATIO_FLOOR, PONG_BACKLOG,
};
