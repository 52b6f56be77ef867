//! permessage-deflate alone: the offer a client makes, and the messages it
//! compresses, both arbitrary.

use crate::ProtocolError;
use crate::deflate::{Deflater, Inflater};
use crate::negotiate::{DeflateConfig, negotiate};

/// The message limit inflation runs against: small, so that bombs are
/// easy for the fuzzer to find.
const LIMIT: usize = 4096;

/// A message every working inflater must read back.
const PROBE: &[u8] = b"permessage-deflate probe, probe, probe";

/// The first byte picks the settings; the rest is split at the first
/// `0xFF` into an offer (`Sec-WebSocket-Extensions`) and a compressed
/// payload, which is inflated as one message, then cut short and
/// inflated again (a truncated stream), and finally compressed and
/// inflated back. Must never panic, never answer an offer with
/// parameters out of range, never hand out more than the limit, and an
/// inflater must work again after any message it refused.
pub fn deflate(data: &[u8]) {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let (offer, payload) = match rest.iter().position(|b| *b == 0xFF) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let bits = 8 + (knobs & 7);
    let reset = knobs & 8 != 0;
    let text = knobs & 16 != 0;
    offered(&String::from_utf8_lossy(offer), bits, reset);

    let mut inflater = Inflater::new(bits, reset);
    inflate(&mut inflater, payload, text);
    let cut = payload.len() * usize::from(knobs >> 5) / 8;
    inflate(&mut inflater, &payload[..cut], text);

    // Whatever came in, compressed and inflated back, equals itself.
    let mut deflater = Deflater::new(bits, reset);
    let mut fresh = Inflater::new(bits, reset);
    for _ in 0..2 {
        let packed = deflater.compress(payload);
        assert_eq!(
            fresh.inflate(&packed, payload.len(), false).as_deref(),
            Ok(payload),
            "a message did not survive compression"
        );
    }
}

/// Negotiates `offer` under a configuration the knobs chose; what is
/// agreed must be in range, within the server's limits, and answered
/// with a header that is itself an acceptable offer.
fn offered(offer: &str, bits: u8, reset: bool) {
    let config = DeflateConfig {
        server_no_context_takeover: reset,
        client_no_context_takeover: reset,
        server_max_window_bits: bits,
        client_max_window_bits: bits.max(9),
    };
    let Some(n) = negotiate([offer], &config) else {
        return;
    };
    let a = n.agreed;
    assert!((8..=bits).contains(&a.server_max_window_bits), "{a:?}");
    assert!((9..=15).contains(&a.client_max_window_bits), "{a:?}");
    assert!(a.server_no_context_takeover || !reset, "{a:?}");
    assert!(
        negotiate([n.response.as_str()], &DeflateConfig::default()).is_some(),
        "the answer {:?} does not parse",
        n.response
    );
    // Both directions work at what was agreed.
    let mut d = Deflater::new(a.server_max_window_bits, a.server_no_context_takeover);
    let mut i = Inflater::new(a.server_max_window_bits, a.server_no_context_takeover);
    assert_eq!(
        i.inflate(&d.compress(PROBE), LIMIT, true).as_deref(),
        Ok(PROBE)
    );
}

/// Inflates one arbitrary message: within the limit, or refused; after a
/// refusal the inflater starts clean and reads a good message.
fn inflate(inflater: &mut Inflater, payload: &[u8], text: bool) {
    match inflater.inflate(payload, LIMIT, text) {
        Ok(out) => {
            assert!(out.len() <= LIMIT, "{} bytes past the limit", out.len());
            assert!(
                !text || std::str::from_utf8(&out).is_ok(),
                "bad text let through"
            );
        }
        Err(
            ProtocolError::MessageTooLarge(_)
            | ProtocolError::BadCompression
            | ProtocolError::InvalidUtf8,
        ) => {
            let mut d = Deflater::new(15, true);
            assert_eq!(
                inflater.inflate(&d.compress(PROBE), LIMIT, true).as_deref(),
                Ok(PROBE),
                "the inflater did not recover"
            );
        }
        Err(e) => panic!("inflating gave {e}"),
    }
}
