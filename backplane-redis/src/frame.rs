//! The frame one node publishes on a topic's Redis channel: who sent it
//! and what it carries, encoded once per publish.
//!
//! ```text
//! +---------+-------------------+------+-----------------+
//! | version | node id (16 bytes)| kind | payload ...     |
//! +---------+-------------------+------+-----------------+
//! ```
//!
//! `kind` is 0 for a text message, 1 for a binary one, and 2 for a gap
//! note (the sender dropped messages on this topic; no payload).

use wsway::Message;

const VERSION: u8 = 1;
const HEADER: usize = 1 + 16 + 1;

const TEXT: u8 = 0;
const BINARY: u8 = 1;
const GAP: u8 = 2;

/// A node's identity: random per process, so a node skips its own frames.
pub(crate) type NodeId = [u8; 16];

/// What a frame carries.
#[derive(Debug, PartialEq)]
pub(crate) enum Body {
    Message(Message),
    /// The sender could not forward some messages on this topic.
    Gap,
}

/// A frame that could not be decoded; ignored and counted, never fatal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    Short,
    Version(u8),
    Kind(u8),
    Utf8,
}

/// Encodes a message: one allocation, the payload copied once.
pub(crate) fn encode(node: &NodeId, msg: &Message) -> Vec<u8> {
    let (kind, payload) = match msg.as_text() {
        Some(text) => (TEXT, text.as_bytes()),
        None => (BINARY, msg.as_bytes()),
    };
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.push(VERSION);
    frame.extend_from_slice(node);
    frame.push(kind);
    frame.extend_from_slice(payload);
    frame
}

/// Encodes a gap note.
pub(crate) fn encode_gap(node: &NodeId) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER);
    frame.push(VERSION);
    frame.extend_from_slice(node);
    frame.push(GAP);
    frame
}

/// Decodes a frame into its sender and body.
pub(crate) fn decode(frame: &[u8]) -> Result<(NodeId, Body), Malformed> {
    if frame.len() < HEADER {
        return Err(Malformed::Short);
    }
    if frame[0] != VERSION {
        return Err(Malformed::Version(frame[0]));
    }
    let mut node = [0u8; 16];
    node.copy_from_slice(&frame[1..17]);
    let payload = &frame[HEADER..];
    let body = match frame[17] {
        TEXT => {
            let text = std::str::from_utf8(payload).map_err(|_| Malformed::Utf8)?;
            Body::Message(Message::text(text.to_owned()))
        }
        BINARY => Body::Message(Message::binary(payload.to_vec())),
        GAP => Body::Gap,
        other => return Err(Malformed::Kind(other)),
    };
    Ok((node, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: NodeId = [7; 16];

    #[test]
    fn text_stays_text_and_binary_stays_binary() {
        for msg in [
            Message::text("héllo"),
            Message::binary(vec![0, 159, 146, 150]),
            Message::text(""),
        ] {
            let frame = encode(&NODE, &msg);
            assert_eq!(decode(&frame), Ok((NODE, Body::Message(msg))));
        }
    }

    #[test]
    fn a_gap_note_carries_its_sender() {
        assert_eq!(decode(&encode_gap(&NODE)), Ok((NODE, Body::Gap)));
    }

    #[test]
    fn malformed_frames_are_named() {
        assert_eq!(decode(&[1, 2, 3]), Err(Malformed::Short));
        let mut frame = encode(&NODE, &Message::text("x"));
        frame[0] = 9;
        assert_eq!(decode(&frame), Err(Malformed::Version(9)));
        frame[0] = VERSION;
        frame[17] = 5;
        assert_eq!(decode(&frame), Err(Malformed::Kind(5)));
        let mut frame = encode(&NODE, &Message::binary(vec![0xff, 0xfe]));
        frame[17] = TEXT;
        assert_eq!(decode(&frame), Err(Malformed::Utf8));
    }
}
