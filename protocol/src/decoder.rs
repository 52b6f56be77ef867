//! Reading frames into messages (RFC 6455 §5.4–§5.6): fragments joined,
//! control frames taken between them, text checked as it arrives, and the
//! limits applied to what has arrived, never to what a header announces.

use bytes::{Bytes, BytesMut};

use super::close::{self, CloseFrame};
use super::error::ProtocolError;
use super::frame::{Header, MAX_CONTROL_PAYLOAD, Opcode};
use super::mask;
use super::utf8::Utf8;

/// What the decoder accepts.
#[derive(Clone, Copy, Debug)]
pub struct DecoderConfig {
    /// The longest frame payload.
    pub max_frame: usize,
    /// The longest message, all fragments together.
    pub max_message: usize,
    /// The most fragments one message may come in.
    pub max_fragments: usize,
    /// RSV1 marks a compressed message (permessage-deflate was agreed).
    pub compression: bool,
    /// Frames must be masked (this is the server side).
    pub require_mask: bool,
}

/// What the peer sent, whole.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message: valid UTF-8 unless `compressed` (then it is checked
    /// as it inflates).
    Text {
        /// The message, all fragments together.
        payload: Bytes,
        /// RSV1 was set: inflate it (RFC 7692).
        compressed: bool,
    },
    /// A binary message.
    Binary {
        /// The message, all fragments together.
        payload: Bytes,
        /// RSV1 was set: inflate it (RFC 7692).
        compressed: bool,
    },
    /// A ping, with its payload (to echo in the pong, §5.5.2).
    Ping(Bytes),
    /// A pong, with its payload.
    Pong(Bytes),
    /// The peer's close, with its code and reason if it gave one.
    Close(Option<CloseFrame>),
}

/// A message whose fragments are still arriving.
struct Partial {
    text: bool,
    compressed: bool,
    payload: BytesMut,
    fragments: usize,
    utf8: Utf8,
}

/// The frame being read: its header, and how much payload is still due.
struct Current {
    header: Header,
    remaining: usize,
    /// Payload bytes unmasked so far (the mask's phase).
    done: usize,
    /// A control frame's payload, collected here so that it can arrive
    /// between a data message's fragments.
    control: BytesMut,
}

/// Frames in, messages out. Feed it what the socket gave with
/// [`decode`](Self::decode) until it returns `Ok(None)`, then read more.
pub struct Decoder {
    config: DecoderConfig,
    /// A frame whose payload has not all arrived. Boxed, as `message`: a
    /// frame that arrives whole needs neither, and an idle connection
    /// holds one word for each.
    current: Option<Box<Current>>,
    /// A message whose fragments are still arriving.
    message: Option<Box<Partial>>,
}

impl Decoder {
    /// The limits this decoder enforces.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// A decoder for one connection, with these limits.
    pub fn new(config: DecoderConfig) -> Self {
        Decoder {
            config,
            current: None,
            message: None,
        }
    }

    /// Takes what it can from `buf` (bytes read from the peer, consumed as
    /// they are used) and returns the next whole item, or `None` until
    /// more bytes arrive. After an error the connection is to be failed:
    /// the decoder is not to be used again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        loop {
            if self.current.is_none() {
                let Some((header, len)) = Header::parse(buf)? else {
                    return Ok(None);
                };
                self.check(&header)?;
                let _ = buf.split_to(len);
                if alone(&header) && buf.len() as u64 >= header.len {
                    return whole(&header, buf).map(Some);
                }
                self.start(header)?;
            }
            let Some(cur) = self.current.as_mut() else {
                continue;
            };
            // A frame that stands alone whose payload came after its
            // header, now all here: as if it had come with it. (The
            // message it started, if any, holds nothing yet.)
            if alone(&cur.header) && cur.done == 0 && buf.len() >= cur.remaining {
                let header = cur.header;
                self.current = None;
                if !header.opcode.is_control() {
                    self.message = None;
                }
                return whole(&header, buf).map(Some);
            }
            let take = cur.remaining.min(buf.len());
            if take == 0 && cur.remaining > 0 {
                return Ok(None);
            }
            let mut chunk = buf.split_to(take);
            if let Some(key) = cur.header.mask {
                mask::apply(&mut chunk, key, cur.done);
            }
            cur.done += take;
            cur.remaining -= take;
            let control = cur.header.opcode.is_control();
            let ended = cur.remaining == 0;
            if control {
                cur.control.extend_from_slice(&chunk);
            } else if let Some(m) = self.message.as_mut() {
                if m.text && !m.compressed {
                    m.utf8
                        .feed(&chunk)
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                m.payload.extend_from_slice(&chunk);
            }
            if !ended {
                return Ok(None);
            }
            let Some(cur) = self.current.take() else {
                continue;
            };
            if control {
                return control_frame(cur.header.opcode, cur.control.freeze()).map(Some);
            }
            if cur.header.fin
                && let Some(mut m) = self.message.take()
            {
                if m.text && !m.compressed {
                    m.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                return Ok(Some(m.into_incoming()));
            }
        }
    }

    /// The rules a header must meet before any of its payload is read.
    fn check(&self, h: &Header) -> Result<(), ProtocolError> {
        if self.config.require_mask && h.mask.is_none() {
            return Err(ProtocolError::Unmasked);
        }
        if h.opcode.is_control() {
            if !h.fin || h.len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::BadControlFrame);
            }
            if h.rsv1 {
                return Err(ProtocolError::ReservedBits);
            }
            return Ok(());
        }
        // RSV1 is the "compressed" bit of a message's first frame, only.
        if h.rsv1 && (!self.config.compression || h.opcode == Opcode::Continuation) {
            return Err(ProtocolError::ReservedBits);
        }
        match (h.opcode, &self.message) {
            (Opcode::Continuation, None) => return Err(ProtocolError::BadFragmentation),
            (Opcode::Text | Opcode::Binary, Some(_)) => {
                return Err(ProtocolError::BadFragmentation);
            }
            _ => {}
        }
        if h.len > self.config.max_frame as u64 {
            return Err(ProtocolError::FrameTooLarge(self.config.max_frame));
        }
        let so_far = self.message.as_ref().map_or(0, |m| m.payload.len());
        if so_far as u64 + h.len > self.config.max_message as u64 {
            return Err(ProtocolError::MessageTooLarge(self.config.max_message));
        }
        Ok(())
    }

    /// Begins reading a frame whose header passed [`check`](Self::check).
    fn start(&mut self, header: Header) -> Result<(), ProtocolError> {
        // Within the limits checked above, so it fits in memory terms.
        let remaining = usize::try_from(header.len).map_err(|_| ProtocolError::LengthOverflow)?;
        match header.opcode {
            Opcode::Text | Opcode::Binary => {
                self.message = Some(Box::new(Partial {
                    text: header.opcode == Opcode::Text,
                    compressed: header.rsv1,
                    payload: BytesMut::new(),
                    fragments: 1,
                    utf8: Utf8::default(),
                }));
            }
            Opcode::Continuation => {
                if let Some(m) = self.message.as_mut() {
                    m.fragments += 1;
                    if m.fragments > self.config.max_fragments {
                        return Err(ProtocolError::TooManyFragments(self.config.max_fragments));
                    }
                }
            }
            _ => {}
        }
        self.current = Some(Box::new(Current {
            header,
            remaining,
            done: 0,
            control: BytesMut::new(),
        }));
        Ok(())
    }
}

impl Partial {
    fn into_incoming(self) -> Incoming {
        let (payload, compressed) = (self.payload.freeze(), self.compressed);
        if self.text {
            Incoming::Text {
                payload,
                compressed,
            }
        } else {
            Incoming::Binary {
                payload,
                compressed,
            }
        }
    }
}

/// Whether a frame is a message or a control frame by itself (a data
/// frame that starts a message and ends it; [`Decoder::check`] has made
/// sure no other message is under way then).
fn alone(h: &Header) -> bool {
    h.opcode.is_control() || (h.fin && h.opcode != Opcode::Continuation)
}

/// A frame that stands [`alone`], its payload all in `buf`: its bytes
/// become the item without a copy, and the decoder keeps nothing.
fn whole(h: &Header, buf: &mut BytesMut) -> Result<Incoming, ProtocolError> {
    // At most the buffer's length (the callers check), so it fits.
    let mut payload = buf.split_to(h.len as usize);
    if let Some(key) = h.mask {
        mask::apply(&mut payload, key, 0);
    }
    let payload = payload.freeze();
    let compressed = h.rsv1;
    Ok(match h.opcode {
        Opcode::Text => {
            if !compressed {
                std::str::from_utf8(&payload).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            Incoming::Text {
                payload,
                compressed,
            }
        }
        Opcode::Binary => Incoming::Binary {
            payload,
            compressed,
        },
        opcode => control_frame(opcode, payload)?,
    })
}

fn control_frame(opcode: Opcode, payload: Bytes) -> Result<Incoming, ProtocolError> {
    Ok(match opcode {
        Opcode::Ping => Incoming::Ping(payload),
        Opcode::Pong => Incoming::Pong(payload),
        _ => Incoming::Close(close::parse(&payload)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MAX_HEADER;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn config() -> DecoderConfig {
        DecoderConfig {
            max_frame: 1 << 20,
            max_message: 1 << 20,
            max_fragments: 100,
            compression: false,
            require_mask: true,
        }
    }

    /// A frame as a client sends it (masked).
    fn frame(opcode: Opcode, fin: bool, rsv1: bool, payload: &[u8]) -> Vec<u8> {
        let mut head = [0u8; MAX_HEADER];
        let n = Header::write_masked(fin, rsv1, opcode, payload.len(), Some(KEY), &mut head);
        let mut out = head[..n].to_vec();
        let mut body = payload.to_vec();
        mask::apply(&mut body, KEY, 0);
        out.extend_from_slice(&body);
        out
    }

    /// Everything `wire` decodes to, fed `step` bytes at a time.
    fn decode_all(
        config: DecoderConfig,
        wire: &[u8],
        step: usize,
    ) -> Result<Vec<Incoming>, ProtocolError> {
        let mut d = Decoder::new(config);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(item) = d.decode(&mut buf)? {
                out.push(item);
            }
        }
        Ok(out)
    }

    fn text(s: &str) -> Incoming {
        Incoming::Text {
            payload: Bytes::copy_from_slice(s.as_bytes()),
            compressed: false,
        }
    }

    #[test]
    fn what_arrives_whole_leaves_no_state_behind() {
        let mut d = Decoder::new(config());
        let mut wire = frame(Opcode::Text, true, false, b"hello");
        wire.extend(frame(Opcode::Ping, true, false, b"p"));
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), Some(text("hello")));
        assert!(d.current.is_none() && d.message.is_none());
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some(Incoming::Ping(Bytes::from_static(b"p")))
        );
        assert!(d.current.is_none() && d.message.is_none() && buf.is_empty());
        // A ping whole between fragments: the message waits for the rest.
        let mut wire = frame(Opcode::Text, false, false, b"hel");
        wire.extend(frame(Opcode::Ping, true, false, b"p"));
        wire.extend(frame(Opcode::Continuation, true, false, b"lo"));
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some(Incoming::Ping(Bytes::from_static(b"p")))
        );
        assert!(d.message.is_some(), "the first fragment is kept");
        assert_eq!(d.decode(&mut buf).unwrap(), Some(text("hello")));
        assert!(d.current.is_none() && d.message.is_none());
        // Whole, and still checked.
        let mut buf = BytesMut::from(&frame(Opcode::Close, true, false, &[0x03, 0xe8])[..]);
        assert!(matches!(
            d.decode(&mut buf),
            Ok(Some(Incoming::Close(Some(_))))
        ));
        let mut buf = BytesMut::from(&frame(Opcode::Text, true, false, &[0xff])[..]);
        assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn fragments_join_around_a_ping_however_the_bytes_arrive() {
        // RFC 6455 §5.6's examples, one after the other.
        let mut wire = frame(Opcode::Text, true, false, b"Hello");
        wire.extend(frame(Opcode::Text, false, false, b"Hel"));
        wire.extend(frame(Opcode::Ping, true, false, b"Hello"));
        wire.extend(frame(Opcode::Continuation, true, false, b"lo"));
        wire.extend(frame(Opcode::Binary, true, false, &[0u8; 256]));
        wire.extend(frame(Opcode::Text, true, false, b""));
        wire.extend(frame(
            Opcode::Close,
            true,
            false,
            &close::payload(1000, "done"),
        ));
        let expected = vec![
            text("Hello"),
            Incoming::Ping(Bytes::from_static(b"Hello")),
            text("Hello"),
            Incoming::Binary {
                payload: Bytes::from(vec![0u8; 256]),
                compressed: false,
            },
            text(""),
            Incoming::Close(Some(CloseFrame {
                code: 1000,
                reason: "done".into(),
            })),
        ];
        for step in [1, 2, 3, 7, 64, wire.len()] {
            assert_eq!(
                decode_all(config(), &wire, step).unwrap(),
                expected,
                "step {step}"
            );
        }
    }

    #[test]
    fn violations_are_named_with_their_close_code() {
        let refused =
            |wire: Vec<u8>, config: DecoderConfig| decode_all(config, &wire, 1).unwrap_err();
        let c = config();
        let mut unmasked = frame(Opcode::Text, true, false, b"x");
        unmasked[1] &= 0x7f;
        unmasked.truncate(2);
        assert_eq!(refused(unmasked, c), ProtocolError::Unmasked);
        assert_eq!(
            refused(frame(Opcode::Continuation, true, false, b"x"), c),
            ProtocolError::BadFragmentation
        );
        let mut twice = frame(Opcode::Text, false, false, b"a");
        twice.extend(frame(Opcode::Binary, true, false, b"b"));
        assert_eq!(refused(twice, c), ProtocolError::BadFragmentation);
        assert_eq!(
            refused(frame(Opcode::Ping, true, false, &[0; 126]), c),
            ProtocolError::BadControlFrame
        );
        assert_eq!(
            refused(frame(Opcode::Pong, false, false, b""), c),
            ProtocolError::BadControlFrame
        );
        assert_eq!(
            refused(frame(Opcode::Text, true, true, b"x"), c),
            ProtocolError::ReservedBits
        );
        assert_eq!(
            refused(frame(Opcode::Close, true, false, &[3]), c),
            ProtocolError::BadClose
        );
        let e = refused(
            frame(Opcode::Close, true, false, &close::payload(1006, "")),
            c,
        );
        assert_eq!((e.clone(), e.close_code()), (ProtocolError::BadClose, 1002));
        let e = refused(frame(Opcode::Text, true, false, &[0xff]), c);
        assert_eq!(
            (e.clone(), e.close_code()),
            (ProtocolError::InvalidUtf8, 1007)
        );
    }

    #[test]
    fn bad_text_fails_at_the_first_fragment_not_the_last() {
        let mut d = Decoder::new(config());
        let mut buf =
            BytesMut::from(&frame(Opcode::Text, false, false, &[b'o', b'k', 0xf4, 0x90])[..]);
        assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidUtf8));
        // A sequence cut between fragments is fine; left open at the end, not.
        let mut wire = frame(Opcode::Text, false, false, &[0xe2, 0x82]);
        wire.extend(frame(Opcode::Continuation, true, false, &[0xac]));
        assert_eq!(decode_all(config(), &wire, 1).unwrap(), vec![text("€")]);
        let mut open = frame(Opcode::Text, false, false, b"a");
        open.extend(frame(Opcode::Continuation, true, false, &[0xe2, 0x82]));
        assert_eq!(
            decode_all(config(), &open, 1).unwrap_err(),
            ProtocolError::InvalidUtf8
        );
    }

    #[test]
    fn limits_apply_to_headers_before_any_payload_is_held() {
        let small = DecoderConfig {
            max_frame: 100,
            max_message: 150,
            max_fragments: 3,
            ..config()
        };
        // A header announcing 2^40 bytes is refused on its own.
        let mut head = [0u8; MAX_HEADER];
        let n = Header::write_masked(true, false, Opcode::Binary, 1 << 40, Some(KEY), &mut head);
        let mut d = Decoder::new(small);
        let mut buf = BytesMut::from(&head[..n]);
        assert_eq!(d.decode(&mut buf), Err(ProtocolError::FrameTooLarge(100)));
        assert_eq!(ProtocolError::FrameTooLarge(100).close_code(), 1009);
        // The message limit counts fragments together.
        let mut wire = frame(Opcode::Binary, false, false, &[0; 100]);
        wire.extend(frame(Opcode::Continuation, true, false, &[0; 51]));
        assert_eq!(
            decode_all(small, &wire, 7).unwrap_err(),
            ProtocolError::MessageTooLarge(150)
        );
        let mut many = frame(Opcode::Binary, false, false, b"");
        for _ in 0..3 {
            many.extend(frame(Opcode::Continuation, false, false, b""));
        }
        assert_eq!(
            decode_all(small, &many, 1).unwrap_err(),
            ProtocolError::TooManyFragments(3)
        );
    }

    #[test]
    fn rsv1_marks_a_compressed_message_when_compression_was_agreed() {
        let deflate = DecoderConfig {
            compression: true,
            ..config()
        };
        // Not UTF-8 as it stands: it is checked once inflated.
        let mut wire = frame(Opcode::Text, false, true, &[0xf2, 0x48]);
        wire.extend(frame(Opcode::Continuation, true, false, &[0xcd]));
        let got = decode_all(deflate, &wire, 2).unwrap();
        assert_eq!(
            got,
            vec![Incoming::Text {
                payload: Bytes::from_static(&[0xf2, 0x48, 0xcd]),
                compressed: true
            }]
        );
        let rsv1_later = {
            let mut w = frame(Opcode::Text, false, true, b"a");
            w.extend(frame(Opcode::Continuation, true, true, b"b"));
            w
        };
        assert_eq!(
            decode_all(deflate, &rsv1_later, 1).unwrap_err(),
            ProtocolError::ReservedBits
        );
    }
}
