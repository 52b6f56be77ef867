//! Writing frames (RFC 6455 §5.2) as a server sends them: unmasked, each
//! message in one frame, the shortest length encoding.

use bytes::Bytes;

use super::frame::{Header, MAX_HEADER, Opcode};

/// A message or control frame to send: its opcode and payload. Cloning it
/// shares the payload (a broadcast queues one buffer for everyone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// What kind of frame.
    pub opcode: Opcode,
    /// Its payload, shared by clones.
    pub payload: Bytes,
}

impl Outgoing {
    /// A text message; `payload` must be UTF-8 (the caller's `str`).
    pub fn text(payload: Bytes) -> Self {
        Outgoing {
            opcode: Opcode::Text,
            payload,
        }
    }

    /// A binary message.
    pub fn binary(payload: Bytes) -> Self {
        Outgoing {
            opcode: Opcode::Binary,
            payload,
        }
    }

    /// A ping; `payload` at most 125 bytes (§5.5).
    pub fn ping(payload: Bytes) -> Self {
        Outgoing {
            opcode: Opcode::Ping,
            payload,
        }
    }

    /// A pong, echoing a ping's payload (§5.5.3).
    pub fn pong(payload: Bytes) -> Self {
        Outgoing {
            opcode: Opcode::Pong,
            payload,
        }
    }

    /// A close frame with its code and reason (§5.5.1).
    pub fn close(code: u16, reason: &str) -> Self {
        Outgoing {
            opcode: Opcode::Close,
            payload: Bytes::from(super::close::payload(code, reason)),
        }
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    /// True when the payload is empty (a close without a code, an empty
    /// message).
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// Appends the whole frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode(self.opcode, false, &self.payload, out);
    }
}

/// Appends one unfragmented frame to `out`; `rsv1` marks a compressed
/// message (RFC 7692 §6).
pub fn encode(opcode: Opcode, rsv1: bool, payload: &[u8], out: &mut Vec<u8>) {
    let mut head = [0u8; MAX_HEADER];
    let n = Header::write(true, rsv1, opcode, payload.len(), &mut head);
    out.reserve(n + payload.len());
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_the_rfc_writes_them() {
        // §5.7: an unmasked text "Hello", and a 256-byte binary message.
        let mut out = Vec::new();
        Outgoing::text(Bytes::from_static(b"Hello")).encode(&mut out);
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let mut out = Vec::new();
        Outgoing::binary(Bytes::from(vec![0; 256])).encode(&mut out);
        assert_eq!(&out[..4], [0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);
        let mut out = Vec::new();
        Outgoing::close(1000, "bye").encode(&mut out);
        assert_eq!(out, [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']);
    }
}
