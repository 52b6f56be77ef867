//! The WebSocket protocol, sans I/O: RFC 6455 frames and messages, and
//! RFC 7692's permessage-deflate with an inflate cap.
//!
//! Bytes in, messages out; messages in, bytes out. Nothing here reads a
//! socket, spawns or waits, so it serves any runtime, a client or a
//! server, and each rule can be read next to the RFC and tested alone.
//! [`wsway`](https://docs.rs/wsway) runs its connections on it, and it
//! passes the whole Autobahn TestSuite there, compression included.
//!
//! ```
//! use bytes::BytesMut;
//! use wsway_protocol::deflate::{Deflater, Inflater};
//! use wsway_protocol::frame::{Header, MAX_HEADER, Opcode};
//! use wsway_protocol::negotiate::{DeflateConfig, negotiate};
//! use wsway_protocol::{Decoder, DecoderConfig, Incoming, encoder};
//!
//! // The client's offer, answered as RFC 7692 §7.1 says.
//! let agreed = negotiate(["permessage-deflate"], &DeflateConfig::default()).unwrap();
//! assert_eq!(agreed.response, "permessage-deflate");
//!
//! // A client's compressed text frame: RSV1 set, masked (a zero key, for brevity).
//! let packed = Deflater::new(15, false).compress(b"hello hello hello");
//! let mut head = [0; MAX_HEADER];
//! let n = Header::write_masked(true, true, Opcode::Text, packed.len(), Some([0; 4]), &mut head);
//! let mut wire = BytesMut::from(&head[..n]);
//! wire.extend_from_slice(&packed);
//!
//! // Decoded, then inflated within a limit: a "bomb" would stop at 1 MiB.
//! let config = DecoderConfig { max_frame: 1 << 20, max_message: 1 << 20, max_fragments: 64,
//!     compression: true, require_mask: true };
//! let Ok(Some(Incoming::Text { payload, compressed: true })) = Decoder::new(config).decode(&mut wire)
//! else { panic!("a compressed text message") };
//! let text = Inflater::new(15, false).inflate(&payload, 1 << 20, true).unwrap();
//! assert_eq!(text, b"hello hello hello");
//!
//! // The answer, compressed and framed as a server sends it (unmasked).
//! let mut out = Vec::new();
//! encoder::encode(Opcode::Text, true, &Deflater::new(15, false).compress(&text), &mut out);
//! assert_eq!(out[0], 0b1100_0001); // FIN, RSV1, text
//! ```
//!
//! # Layout
//!
//! - [`frame`]: a frame's header (§5.2), read and written.
//! - [`mask`]: masking (§5.3), a word at a time.
//! - [`utf8`]: text checked as it arrives (§8.1).
//! - [`close`]: the close frame's code and reason (§5.5.1, §7.4).
//! - [`decoder`]: frames into messages (§5.4–§5.6), within limits.
//! - [`encoder`]: messages into frames.
//! - [`error`]: what the peer got wrong, and the close code for it.
//! - [`handshake`]: the accept key of the opening handshake (§4.2.2).
//! - [`negotiate`]: the permessage-deflate offer and answer (RFC 7692 §7.1).
//! - [`deflate`]: compressing and inflating messages (RFC 7692 §7.2).

pub mod close;
pub mod decoder;
pub mod deflate;
pub mod encoder;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod negotiate;
pub mod utf8;

pub use close::CloseFrame;
pub use decoder::{Decoder, DecoderConfig, Incoming};
pub use encoder::Outgoing;
pub use error::ProtocolError;
pub use frame::Opcode;

#[doc(hidden)]
pub mod fuzzing;
