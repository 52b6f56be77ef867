//! Why a peer's bytes are not a WebSocket conversation, and the close code
//! each reason calls for (RFC 6455 §7.4.1).

use std::fmt;

/// A protocol violation by the peer, or a message past a limit. The
/// connection is failed with [`close_code`](Self::close_code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// RSV2 or RSV3 set, or RSV1 where no extension gives it a meaning.
    ReservedBits,
    /// An opcode §5.2 reserves.
    ReservedOpcode(u8),
    /// A 64-bit length with its most significant bit set.
    LengthOverflow,
    /// A client frame without a mask (§5.1).
    Unmasked,
    /// A control frame over 125 bytes, or fragmented (§5.5).
    BadControlFrame,
    /// A continuation with no message under way, or a new message while
    /// one is (§5.4).
    BadFragmentation,
    /// Text (or a close reason) that is not UTF-8 (§8.1).
    InvalidUtf8,
    /// A close frame with a 1-byte payload, or a code no endpoint may send
    /// (§7.4).
    BadClose,
    /// A frame longer than the limit.
    FrameTooLarge(usize),
    /// A message longer than the limit (counted as it arrives, inflated
    /// when compressed).
    MessageTooLarge(usize),
    /// More fragments in one message than the limit.
    TooManyFragments(usize),
    /// A compressed message that does not inflate (RFC 7692 §8).
    BadCompression,
}

impl ProtocolError {
    /// The close code to fail the connection with: 1007 for bad text or
    /// data that does not inflate, 1009 for a limit, 1002 for the rest.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::BadCompression => 1007,
            ProtocolError::FrameTooLarge(_)
            | ProtocolError::MessageTooLarge(_)
            | ProtocolError::TooManyFragments(_) => 1009,
            _ => 1002,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBits => f.write_str("reserved bits set"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::LengthOverflow => f.write_str("payload length above 2^63"),
            ProtocolError::Unmasked => f.write_str("client frame not masked"),
            ProtocolError::BadControlFrame => {
                f.write_str("control frame fragmented or over 125 bytes")
            }
            ProtocolError::BadFragmentation => f.write_str("fragments out of order"),
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::BadClose => f.write_str("invalid close frame"),
            ProtocolError::FrameTooLarge(limit) => write!(f, "frame over the {limit}-byte limit"),
            ProtocolError::MessageTooLarge(limit) => {
                write!(f, "message over the {limit}-byte limit")
            }
            ProtocolError::TooManyFragments(limit) => {
                write!(f, "message in more than {limit} fragments")
            }
            ProtocolError::BadCompression => f.write_str("compressed message does not inflate"),
        }
    }
}

impl std::error::Error for ProtocolError {}
