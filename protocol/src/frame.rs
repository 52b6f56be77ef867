//! The base framing (RFC 6455 §5.2): a frame's header, read and written.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

use super::error::ProtocolError;

/// What a frame carries (§5.2, §11.8). The reserved opcodes are not
/// representable: reading one is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// A further fragment of the message under way.
    Continuation,
    /// The first frame of a text message.
    Text,
    /// The first frame of a binary message.
    Binary,
    /// Starts (or answers) the closing handshake.
    Close,
    /// Asks for a pong.
    Ping,
    /// Answers a ping (or beats unasked).
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xa => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xa,
        }
    }

    /// Close, ping and pong (§5.5): at most 125 bytes, never fragmented.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// The most a control frame may carry (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER: usize = 14;

/// A frame's header as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The final fragment of its message.
    pub fin: bool,
    /// RSV1: with permessage-deflate, the message is compressed (§6.1 of
    /// RFC 7692). RSV2 and RSV3 have no meaning here and are refused.
    pub rsv1: bool,
    /// What the frame is (§5.2).
    pub opcode: Opcode,
    /// The masking key (§5.3), present on every frame a client sends.
    pub mask: Option<[u8; 4]>,
    /// The payload's length in bytes.
    pub len: u64,
}

impl Header {
    /// Reads a header from the start of `buf`: the header and its length
    /// in bytes, or `None` while `buf` holds only part of it.
    pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        if b0 & 0x30 != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        let opcode =
            Opcode::from_bits(b0 & 0x0f).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0f))?;
        let masked = b1 & 0x80 != 0;
        let (len, mut at) = match b1 & 0x7f {
            126 => {
                let Some(ext) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4)
            }
            127 => {
                let Some(ext) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0u8; 8];
                be.copy_from_slice(ext);
                let len = u64::from_be_bytes(be);
                // "the most significant bit MUST be 0"
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthOverflow);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        let mask = if masked {
            let Some(key) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        let header = Header {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            opcode,
            mask,
            len,
        };
        Ok(Some((header, at)))
    }

    /// Writes the header of an unmasked (server) frame into `out`, the
    /// shortest length encoding; returns how many bytes it took.
    pub fn write(
        fin: bool,
        rsv1: bool,
        opcode: Opcode,
        len: usize,
        out: &mut [u8; MAX_HEADER],
    ) -> usize {
        Header::write_masked(fin, rsv1, opcode, len, None, out)
    }

    /// Like [`write`](Self::write), with a masking key (a client's frame).
    pub fn write_masked(
        fin: bool,
        rsv1: bool,
        opcode: Opcode,
        len: usize,
        mask: Option<[u8; 4]>,
        out: &mut [u8; MAX_HEADER],
    ) -> usize {
        out[0] = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.bits();
        let mask_bit = if mask.is_some() { 0x80 } else { 0 };
        let mut at = match len {
            0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            126..=0xffff => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            _ => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
                10
            }
        };
        if let Some(key) = mask {
            out[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_back_as_written_at_every_length_encoding() {
        for len in [0usize, 1, 125, 126, 127, 0xffff, 0x1_0000, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = [0u8; MAX_HEADER];
                let n = Header::write_masked(true, false, Opcode::Binary, len, mask, &mut out);
                let (h, at) = Header::parse(&out[..n]).unwrap().unwrap();
                assert_eq!(at, n);
                assert_eq!(
                    (h.len, h.mask, h.fin, h.opcode),
                    (len as u64, mask, true, Opcode::Binary)
                );
                // Any shorter prefix is "not yet".
                for cut in 0..n {
                    assert_eq!(Header::parse(&out[..cut]), Ok(None), "len {len} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn rfc_examples_and_refusals() {
        // §5.7: a single-frame masked text message "Hello".
        let (h, at) = Header::parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!(at, 6);
        assert!(h.fin && h.opcode == Opcode::Text && h.len == 5);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(
            Header::parse(&[0xa1, 0x00]),
            Err(ProtocolError::ReservedBits),
            "RSV2"
        );
        assert_eq!(
            Header::parse(&[0x83, 0x00]),
            Err(ProtocolError::ReservedOpcode(3))
        );
        assert_eq!(
            Header::parse(&[0x8b, 0x00]),
            Err(ProtocolError::ReservedOpcode(0xb))
        );
        let huge = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Header::parse(&huge), Err(ProtocolError::LengthOverflow));
        let (h, _) = Header::parse(&[0xc1, 0x00]).unwrap().unwrap();
        assert!(
            h.rsv1,
            "RSV1 is read; whether it is allowed is the decoder's call"
        );
    }
}
