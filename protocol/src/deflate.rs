//! Compressing and inflating messages (RFC 7692 §7.2): raw DEFLATE, each
//! message ending with an empty stored block whose last four bytes
//! (`00 00 ff ff`) are left off on the wire and put back to inflate.
//!
//! Inflation runs in bounded steps and stops at the message limit, so a
//! small message that would inflate past it (a "bomb") is refused after
//! at most the limit's worth of output, never held whole.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::error::ProtocolError;
use super::utf8::Utf8;

/// The tail every compressed message ends with, left off on the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output is produced this much at a time.
const STEP: usize = 16 << 10;

/// One direction's compressor: this side's messages out.
pub struct Deflater {
    zlib: Compress,
    /// Forget the window after each message (no context takeover).
    reset: bool,
}

impl Deflater {
    /// A compressor with a `window_bits` window (8–15; 8 compresses with 9,
    /// whose matches never reach past 250 bytes).
    pub fn new(window_bits: u8, reset: bool) -> Self {
        Deflater {
            zlib: Compress::new_with_window_bits(
                Compression::fast(),
                false,
                window_bits.clamp(9, 15),
            ),
            reset,
        }
    }

    /// The compressed payload of one message (without the tail).
    pub fn compress(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let start = self.zlib.total_in();
        loop {
            let consumed = (self.zlib.total_in() - start) as usize;
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            // A sync flush ends the message on a byte boundary with the
            // empty stored block (§7.2.1). It cannot fail on a stream this
            // type made; if it did, what was written so far is sent.
            if self
                .zlib
                .compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            // All input in, and room left over: the flush is complete.
            let consumed = (self.zlib.total_in() - start) as usize;
            if consumed == payload.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        // Nothing new to flush (an empty message right after another
        // flush): zlib writes nothing, and the message is the lone header
        // byte of an empty stored block (§7.2.3.6).
        if out.is_empty() {
            out.push(0x00);
        }
        if self.reset {
            self.zlib.reset();
        }
        out
    }
}

/// One direction's inflater: the peer's messages in.
pub struct Inflater {
    zlib: Decompress,
    reset: bool,
    /// Bytes produced over its life, refused messages included.
    total_out: u64,
}

impl Inflater {
    /// An inflater for a peer compressing with a `window_bits` window
    /// (8–15; an 8-bit window is inflated with 9, which reads it).
    pub fn new(window_bits: u8, reset: bool) -> Self {
        Inflater {
            zlib: Decompress::new_with_window_bits(false, window_bits.clamp(9, 15)),
            reset,
            total_out: 0,
        }
    }

    /// Bytes this inflater has produced in all, the part of a refused
    /// message included: what its peers have made it inflate. A refused
    /// message adds at most its limit plus one byte.
    pub fn total_out(&self) -> u64 {
        self.total_out
    }

    /// Inflates one message, refusing it as soon as its output passes
    /// `limit`; text is checked as UTF-8 as it inflates.
    pub fn inflate(
        &mut self,
        payload: &[u8],
        limit: usize,
        text: bool,
    ) -> Result<Vec<u8>, ProtocolError> {
        let inflated = self.inflate_inner(payload, limit, text);
        if inflated.is_err() {
            // Left mid-stream: start clean (a shared inflater serves other
            // connections next).
            self.zlib.reset(false);
        }
        inflated
    }

    fn inflate_inner(
        &mut self,
        payload: &[u8],
        limit: usize,
        text: bool,
    ) -> Result<Vec<u8>, ProtocolError> {
        let mut out: Vec<u8> = Vec::new();
        // An empty payload (not what §7.2.3.6 says to send, but harmless):
        // an empty message, the window left as it was.
        if payload.is_empty() {
            return Ok(out);
        }
        let mut utf8 = Utf8::default();
        let mut ended = false;
        for input in [payload, &TAIL[..]] {
            let start = self.zlib.total_in();
            while !ended {
                if out.len() == out.capacity() {
                    if out.len() > limit {
                        return Err(ProtocolError::MessageTooLarge(limit));
                    }
                    // Never more room than the limit allows, plus one byte
                    // to see that it was passed.
                    out.reserve_exact(STEP.min(limit + 1 - out.len()));
                }
                let consumed = (self.zlib.total_in() - start) as usize;
                let produced = out.len();
                let status = self
                    .zlib
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                    .map_err(|_| ProtocolError::BadCompression)?;
                self.total_out += (out.len() - produced) as u64;
                if out.len() > limit {
                    return Err(ProtocolError::MessageTooLarge(limit));
                }
                if text {
                    utf8.feed(&out[produced..])
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                // A final block: the peer's stream is over (the next
                // message starts a new one).
                ended = status == Status::StreamEnd;
                let consumed = (self.zlib.total_in() - start) as usize;
                if consumed == input.len() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        if text {
            utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if self.reset || ended {
            self.zlib.reset(false);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_and_without_context_takeover() {
        for reset in [false, true] {
            for bits in [15, 12, 9] {
                let mut d = Deflater::new(bits, reset);
                let mut i = Inflater::new(bits, reset);
                for msg in [
                    &b"Hello"[..],
                    b"",
                    &[b'a'; 100_000][..],
                    "κόσμε κόσμε κόσμε".as_bytes(),
                ] {
                    let packed = d.compress(msg);
                    assert!(!packed.is_empty() && !packed.ends_with(&TAIL));
                    let back = i.inflate(&packed, 1 << 20, false).unwrap_or_else(|e| {
                        panic!("{e}: bits {bits} reset {reset} len {}", msg.len())
                    });
                    assert_eq!(back, msg, "bits {bits} reset {reset}");
                }
            }
        }
    }

    #[test]
    fn the_rfc_example() {
        // RFC 7692 §7.2.3.1: "Hello" compressed.
        let mut i = Inflater::new(15, false);
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(i.inflate(&hello, 100, true).unwrap(), b"Hello");
        // §7.2.3.2: the same again with the window carried over.
        let again = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(i.inflate(&again, 100, true).unwrap(), b"Hello");
    }

    #[test]
    fn a_bomb_is_refused_at_the_limit() {
        // 16 MiB of zeros, compressed as tightly as deflate goes: 16 KiB.
        let mut zlib = Compress::new(Compression::best(), false);
        let mut bomb = Vec::with_capacity(1 << 20);
        let zeros = vec![0u8; 16 << 20];
        zlib.compress_vec(&zeros, &mut bomb, FlushCompress::Sync)
            .unwrap();
        assert!(bomb.len() < 20 << 10, "{}", bomb.len());
        let mut i = Inflater::new(15, false);
        assert_eq!(
            i.inflate(&bomb, 1 << 20, false),
            Err(ProtocolError::MessageTooLarge(1 << 20))
        );
        // Refused as soon as it passed the limit: one byte past it, no more.
        assert_eq!(i.total_out(), (1 << 20) + 1);
    }

    #[test]
    fn a_message_of_exactly_the_limit_passes_and_one_byte_more_does_not() {
        const LIMIT: usize = 100_000;
        for reset in [false, true] {
            let mut d = Deflater::new(15, reset);
            let mut i = Inflater::new(15, reset);
            let exact: Vec<u8> = (0..LIMIT).map(|n| b"wsway "[n % 6]).collect();
            assert_eq!(i.inflate(&d.compress(&exact), LIMIT, true).unwrap(), exact);
            assert_eq!(i.total_out(), LIMIT as u64);
            let over = [&exact[..], b"!"].concat();
            let mut i = Inflater::new(15, reset);
            let mut d = Deflater::new(15, reset);
            assert_eq!(
                i.inflate(&d.compress(&over), LIMIT, true),
                Err(ProtocolError::MessageTooLarge(LIMIT))
            );
            assert_eq!(i.total_out(), LIMIT as u64 + 1);
        }
    }

    #[test]
    fn garbage_and_bad_text_are_errors_not_panics() {
        let mut i = Inflater::new(15, false);
        assert_eq!(
            i.inflate(&[0xff; 32], 1000, false),
            Err(ProtocolError::BadCompression)
        );
        let mut d = Deflater::new(15, false);
        let bad = d.compress(&[b'a', 0xff, b'b']);
        let mut i = Inflater::new(15, false);
        assert_eq!(i.inflate(&bad, 1000, true), Err(ProtocolError::InvalidUtf8));
    }
}
