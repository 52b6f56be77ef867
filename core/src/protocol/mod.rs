//! The WebSocket protocol (RFC 6455), sans I/O: bytes in, messages out;
//! messages in, bytes out. Nothing here reads a socket, spawns or waits,
//! and nothing imports the rest of the crate, so each rule can be read
//! next to the RFC and tested alone.
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
