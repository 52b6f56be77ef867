//! The decoder alone, fed arbitrary bytes in two different splits.

use bytes::BytesMut;

use crate::{Decoder, DecoderConfig, Incoming, ProtocolError};

/// What one split of the input decoded to: the items, then the error that
/// ended it (if any).
fn decode(
    config: DecoderConfig,
    data: &[u8],
    step: usize,
) -> (Vec<Incoming>, Option<ProtocolError>) {
    let mut decoder = Decoder::new(config);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for piece in data.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Some(e)),
            }
        }
    }
    (items, None)
}

/// The first byte picks the settings (compression on or off) and the
/// split; the rest is the peer's bytes. However the bytes arrive, the
/// decoder must read the same things, within its limits, and never panic.
pub fn decoder(data: &[u8]) {
    let Some((&knobs, wire)) = data.split_first() else {
        return;
    };
    let config = DecoderConfig {
        max_frame: 300,
        max_message: 600,
        max_fragments: 8,
        compression: knobs & 1 != 0,
        require_mask: knobs & 2 == 0,
    };
    let step = usize::from(knobs >> 2) + 1;
    let whole = decode(config, wire, wire.len());
    let split = decode(config, wire, step);
    assert_eq!(whole, split, "the split changed what was read");
    for item in &whole.0 {
        match item {
            Incoming::Text {
                payload,
                compressed,
            } => {
                assert!(payload.len() <= config.max_message);
                assert!(*compressed || std::str::from_utf8(payload).is_ok());
                assert!(!*compressed || config.compression);
            }
            Incoming::Binary {
                payload,
                compressed,
            } => {
                assert!(payload.len() <= config.max_message);
                assert!(!*compressed || config.compression);
            }
            Incoming::Ping(p) | Incoming::Pong(p) => assert!(p.len() <= 125),
            Incoming::Close(Some(f)) => {
                assert!(crate::close::is_sendable(f.code));
                assert!(f.reason.len() <= 123);
            }
            Incoming::Close(None) => {}
        }
    }
}
