//! WebSocket messages and close frames, as handlers see them.
//!
//! The codec's own types stay out of the public API: it can change without
//! breaking applications.

use bytes::Bytes;
use std::fmt;

/// A complete data message: text or binary. Control frames (ping, pong,
/// close) are handled by wsway and never reach [`Handler::message`](crate::Handler::message).
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    /// A UTF-8 text message.
    Text(Text),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message. Cheap for `&'static str` and `String` (no copy).
    pub fn text(text: impl Into<Text>) -> Self {
        Message::Text(text.into())
    }

    /// A binary message. Cheap for `Bytes`, `Vec<u8>` and `&'static [u8]` (no copy).
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Message::Binary(data.into())
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
        }
    }

    /// True when the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(t.as_str()),
            Message::Binary(_) => None,
        }
    }

    /// The payload bytes, whatever the kind.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_str().as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The message back from a frame [`into_codec`](Self::into_codec)
    /// made (a topic's history keeps frames): a text frame's payload was
    /// a [`Text`], so it is UTF-8.
    pub(crate) fn from_frame(frame: crate::protocol::Outgoing) -> Self {
        match frame.opcode {
            crate::protocol::Opcode::Text => Message::Text(Text::from_codec(frame.payload)),
            _ => Message::Binary(frame.payload),
        }
    }

    pub(crate) fn into_codec(self) -> crate::protocol::Outgoing {
        match self {
            Message::Text(t) => crate::protocol::Outgoing::text(t.0),
            Message::Binary(b) => crate::protocol::Outgoing::binary(b),
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Text(t) => f.debug_tuple("Text").field(&t.as_str()).finish(),
            Message::Binary(b) => f.debug_tuple("Binary").field(&b.len()).finish(),
        }
    }
}

impl From<&'static str> for Message {
    fn from(s: &'static str) -> Self {
        Message::text(s)
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::text(s)
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b.into())
    }
}

/// UTF-8 text that shares its buffer: cloning it does not copy the payload.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Text(Bytes);

impl Text {
    /// The text as a `&str`.
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        // SAFETY: every `Text` is made from a `&'static str` or a `String`
        // (`From` below), or by `from_codec` from bytes the decoder checked
        // as UTF-8 (`protocol::utf8`); `Bytes` never changes its contents.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The UTF-8 bytes, sharing the buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Text the decoder has checked as UTF-8.
    pub(crate) fn from_codec(checked: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&checked).is_ok());
        Text(checked)
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text(Bytes::from_static(s.as_bytes()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Bytes::from(s))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Text(Bytes::from(s.clone()))
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A WebSocket close status code (RFC 6455 §7.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the server is going down, or the peer navigated away; also used
    /// by wsway for the idle timeout.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no code was present in the close frame (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection ended without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message was not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: the peer violated a policy (rate, backpressure, authorization).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message was larger than the configured maximum.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server hit an unexpected condition (a handler panicked).
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the server is restarting.
    pub const RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether an endpoint may send this code in a close frame: 1000-1003,
    /// 1007-1014 (less the unassigned ones) and the application range
    /// 3000-4999. 1004-1006 and 1015 are reserved and never sent.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl PartialEq<u16> for CloseCode {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

/// The longest close reason that fits in a close frame: 125 bytes of control
/// payload less the two-byte code.
pub const MAX_CLOSE_REASON: usize = 123;

/// The longest ping or pong payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

pub(crate) fn close_frame(code: CloseCode, reason: &str) -> crate::protocol::CloseFrame {
    crate::protocol::CloseFrame {
        code: code.0,
        reason: reason.to_owned(),
    }
}
