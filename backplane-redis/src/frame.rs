//! The frame one node publishes on a topic's Redis channel: who sent it
//! and what it carries, encoded once per publish. Emitters in other
//! languages write it too: `docs/emitters.md` documents it for them, and
//! a change here is a change to that contract (bump `VERSION`).
//!
//! ```text
//! +---------+-------------------+------+-----------------+
//! | version | node id (16 bytes)| kind | payload ...     |
//! +---------+-------------------+------+-----------------+
//! ```
//!
//! `kind` is 0 for a text message, 1 for a binary one, 2 for a gap note
//! (the sender dropped messages on this topic; no payload), and 5 or 6
//! for a close of the topic's subscribers (`Topics::disconnect`): the
//! code (2 bytes, big-endian), then the reason. A 5 was acted on by its
//! sender already; a 6 (on a topic that keeps history, whose messages
//! reach the sender from Redis too) is for every node, the sender's too.
//!
//! Kind 7 closes one connection (`Topics::disconnect_member`): the
//! connection's id (8 bytes, little-endian), the code (2 bytes,
//! big-endian), then the reason. It is sent on the channel of the node
//! that holds the connection (its control topic, see
//! [`control_topic`]), which every node listens to while it runs.
//!
//! On a topic that keeps history the frame is written by the publish
//! script, which numbers the message: kind 3 (text) or 4 (binary), then
//! the connection the publish skips (8 bytes, little-endian; 0 for none),
//! then the position the store gave it and a newline, then the payload.
//!
//! ```text
//! +---------+---------+------+-----------------+------------------+---------+
//! | version | node id | kind | except (8 bytes)| "<epoch>:<off>\n" | payload |
//! +---------+---------+------+-----------------+------------------+---------+
//! ```

use wsway::{Message, Position};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 16 + 1;
/// The header the publish script is given for a numbered message.
pub(crate) const NUMBERED_HEADER: usize = HEADER + 8;

const TEXT: u8 = 0;
const BINARY: u8 = 1;
const GAP: u8 = 2;
const NUMBERED_TEXT: u8 = 3;
const NUMBERED_BINARY: u8 = 4;
const CLOSE: u8 = 5;
const CLOSE_ALL: u8 = 6;
const CLOSE_ONE: u8 = 7;

/// A node's identity: random per process, so a node skips its own frames.
pub(crate) type NodeId = [u8; 16];

/// What a frame carries.
#[derive(Debug, PartialEq)]
pub(crate) enum Body {
    Message(Message),
    /// The sender could not forward some messages on this topic.
    Gap,
    /// Close the topic's subscribers: on the other nodes, or (`all`) on
    /// every node, the sender's too.
    Close {
        code: u16,
        reason: String,
        all: bool,
    },
    /// Close connection `conn` of the node whose control topic this is.
    CloseOne {
        conn: u64,
        code: u16,
        reason: String,
    },
    /// A message the store numbered, and the connection it skips on its
    /// sender's node.
    Numbered {
        at: Position,
        except: Option<u64>,
        msg: Message,
    },
}

/// A frame that could not be decoded; ignored and counted, never fatal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    Short,
    Version(u8),
    Kind(u8),
    Utf8,
    Position,
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

/// The header of a message on a topic that keeps history, and its
/// payload after it (one allocation): the publish script puts the
/// position between the two.
pub(crate) fn encode_numbered(node: &NodeId, msg: &Message, except: Option<u64>) -> Vec<u8> {
    let (kind, payload) = match msg.as_text() {
        Some(text) => (NUMBERED_TEXT, text.as_bytes()),
        None => (NUMBERED_BINARY, msg.as_bytes()),
    };
    let mut frame = Vec::with_capacity(NUMBERED_HEADER + payload.len());
    frame.push(VERSION);
    frame.extend_from_slice(node);
    frame.push(kind);
    frame.extend_from_slice(&except.unwrap_or(0).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The connection a numbered frame's header leaves out, when `node` (this
/// node) published it: connection ids are a node's own.
pub(crate) fn except_for(header: &[u8], node: &NodeId) -> Option<u64> {
    if header.len() != NUMBERED_HEADER || header[0] != VERSION || header[1..HEADER - 1] != node[..]
    {
        return None;
    }
    let except = u64::from_le_bytes(header[HEADER..].try_into().ok()?);
    (except != 0).then_some(except)
}

/// Whether a numbered frame's payload is text (as the store keeps it).
pub(crate) fn is_text(frame: &[u8]) -> bool {
    frame.get(HEADER - 1) == Some(&NUMBERED_TEXT)
}

/// Encodes a gap note.
pub(crate) fn encode_gap(node: &NodeId) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER);
    frame.push(VERSION);
    frame.extend_from_slice(node);
    frame.push(GAP);
    frame
}

/// Encodes a close of a topic's subscribers; `all` when the sender acts
/// on it too (when it comes back).
pub(crate) fn encode_close(node: &NodeId, code: u16, reason: &str, all: bool) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + 2 + reason.len());
    frame.push(VERSION);
    frame.extend_from_slice(node);
    frame.push(if all { CLOSE_ALL } else { CLOSE });
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason.as_bytes());
    frame
}

/// The topic whose channel node `node` (its id in hex) listens to for
/// what is addressed to it alone: a name no app gives a topic (it starts
/// with a NUL).
pub(crate) fn control_topic(node: &str) -> String {
    format!("\0node:{node}")
}

/// Encodes the close of connection `conn` on the node it is sent to.
pub(crate) fn encode_close_one(node: &NodeId, conn: u64, code: u16, reason: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + 10 + reason.len());
    frame.push(VERSION);
    frame.extend_from_slice(node);
    frame.push(CLOSE_ONE);
    frame.extend_from_slice(&conn.to_le_bytes());
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason.as_bytes());
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
        TEXT | BINARY => Body::Message(message(frame[17] == TEXT, payload)?),
        GAP => Body::Gap,
        NUMBERED_TEXT | NUMBERED_BINARY => numbered(frame[17] == NUMBERED_TEXT, payload)?,
        CLOSE | CLOSE_ALL => {
            let (code, reason) = payload.split_at_checked(2).ok_or(Malformed::Short)?;
            Body::Close {
                code: u16::from_be_bytes([code[0], code[1]]),
                reason: std::str::from_utf8(reason)
                    .map_err(|_| Malformed::Utf8)?
                    .to_owned(),
                all: frame[17] == CLOSE_ALL,
            }
        }
        CLOSE_ONE => {
            let (conn, rest) = payload.split_at_checked(8).ok_or(Malformed::Short)?;
            let (code, reason) = rest.split_at_checked(2).ok_or(Malformed::Short)?;
            Body::CloseOne {
                conn: u64::from_le_bytes(conn.try_into().map_err(|_| Malformed::Short)?),
                code: u16::from_be_bytes([code[0], code[1]]),
                reason: std::str::from_utf8(reason)
                    .map_err(|_| Malformed::Utf8)?
                    .to_owned(),
            }
        }
        other => return Err(Malformed::Kind(other)),
    };
    Ok((node, body))
}

/// A message from its payload; text must be UTF-8.
pub(crate) fn message(text: bool, payload: &[u8]) -> Result<Message, Malformed> {
    if text {
        let text = std::str::from_utf8(payload).map_err(|_| Malformed::Utf8)?;
        Ok(Message::text(text.to_owned()))
    } else {
        Ok(Message::binary(payload.to_vec()))
    }
}

fn numbered(text: bool, rest: &[u8]) -> Result<Body, Malformed> {
    let (except, rest) = rest.split_at_checked(8).ok_or(Malformed::Short)?;
    let except = u64::from_le_bytes(except.try_into().map_err(|_| Malformed::Short)?);
    let newline = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Malformed::Position)?;
    let at = std::str::from_utf8(&rest[..newline])
        .ok()
        .and_then(Position::parse)
        .ok_or(Malformed::Position)?;
    Ok(Body::Numbered {
        at,
        except: (except != 0).then_some(except),
        msg: message(text, &rest[newline + 1..])?,
    })
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
        for all in [false, true] {
            let close = Body::Close {
                code: 4000,
                reason: "bye".into(),
                all,
            };
            assert_eq!(
                decode(&encode_close(&NODE, 4000, "bye", all)),
                Ok((NODE, close))
            );
        }
        assert_eq!(
            decode(&encode_close(&NODE, 4000, "", false)[..HEADER + 1]),
            Err(Malformed::Short)
        );
        let one = Body::CloseOne {
            conn: 42,
            code: 4001,
            reason: "kicked".into(),
        };
        let frame = encode_close_one(&NODE, 42, 4001, "kicked");
        assert_eq!(decode(&frame), Ok((NODE, one)));
        assert_eq!(decode(&frame[..HEADER + 9]), Err(Malformed::Short));
    }

    /// What the publish script sends: the header, the position, the payload.
    fn as_published(frame: &[u8], at: &str) -> Vec<u8> {
        let mut out = frame[..NUMBERED_HEADER].to_vec();
        out.extend_from_slice(at.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&frame[NUMBERED_HEADER..]);
        out
    }

    #[test]
    fn a_numbered_frame_carries_its_position_and_the_skipped_connection() {
        let msg = Message::text("a\nb");
        let frame = encode_numbered(&NODE, &msg, Some(42));
        assert!(is_text(&frame));
        let at = Position {
            epoch: 0xbeef,
            offset: 9,
        };
        assert_eq!(
            decode(&as_published(&frame, "beef:9")),
            Ok((
                NODE,
                Body::Numbered {
                    at,
                    except: Some(42),
                    msg
                }
            ))
        );
        let bin = encode_numbered(&NODE, &Message::binary(vec![10, 0]), None);
        assert!(!is_text(&bin));
        let decoded = decode(&as_published(&bin, "1:1"));
        assert!(matches!(
            decoded,
            Ok((_, Body::Numbered { except: None, .. }))
        ));
        assert_eq!(decode(&as_published(&bin, "x:1")), Err(Malformed::Position));
        assert_eq!(decode(&bin[..20]), Err(Malformed::Short));
    }

    #[test]
    fn malformed_frames_are_named() {
        assert_eq!(decode(&[1, 2, 3]), Err(Malformed::Short));
        let mut frame = encode(&NODE, &Message::text("x"));
        frame[0] = 9;
        assert_eq!(decode(&frame), Err(Malformed::Version(9)));
        frame[0] = VERSION;
        frame[17] = 8;
        assert_eq!(decode(&frame), Err(Malformed::Kind(8)));
        let mut frame = encode(&NODE, &Message::binary(vec![0xff, 0xfe]));
        frame[17] = TEXT;
        assert_eq!(decode(&frame), Err(Malformed::Utf8));
    }
}
