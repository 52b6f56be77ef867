//! Frames as the fuzz harness's peer sees them: client frames it sends
//! (masked) and server frames it reads back (unmasked), checked against
//! RFC 6455 section 5.2 independently of the codec under test.

/// Opcodes the harness uses.
pub(super) const TEXT: u8 = 0x1;
pub(super) const BINARY: u8 = 0x2;
pub(super) const CLOSE: u8 = 0x8;

/// Appends a client frame (masked, as RFC 6455 requires) with `payload`.
pub(super) fn masked_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

/// One frame the server sent.
pub(super) struct ServerFrame {
    pub(super) fin: bool,
    pub(super) opcode: u8,
    pub(super) payload: Vec<u8>,
}

/// Splits what the server wrote into frames, panicking on anything a
/// server must never send: reserved bits (no extension is negotiated), a
/// mask, an unknown opcode, an oversized or fragmented control frame, a
/// length in a longer form than needed, a frame cut short, any frame after
/// a close frame, or a close frame whose code is not one to send.
pub(super) fn server_frames(mut out: &[u8]) -> Vec<ServerFrame> {
    let mut frames: Vec<ServerFrame> = Vec::new();
    while !out.is_empty() {
        assert!(
            frames.last().is_none_or(|f| f.opcode != CLOSE),
            "the server wrote after its close frame"
        );
        assert!(out.len() >= 2, "a frame header cut short");
        let (b0, b1) = (out[0], out[1]);
        assert_eq!(b0 & 0x70, 0, "reserved bits set with no extension");
        assert_eq!(b1 & 0x80, 0, "a server frame must not be masked");
        let opcode = b0 & 0x0F;
        assert!(
            matches!(opcode, 0x0..=0x2 | 0x8..=0xA),
            "unknown opcode {opcode:#x}"
        );
        let fin = b0 & 0x80 != 0;
        let (len, header) = match b1 & 0x7F {
            126 => {
                assert!(out.len() >= 4, "a frame header cut short");
                let n = u16::from_be_bytes([out[2], out[3]]) as usize;
                assert!(n >= 126, "a 16-bit length for {n} bytes");
                (n, 4)
            }
            127 => {
                assert!(out.len() >= 10, "a frame header cut short");
                let n = u64::from_be_bytes(out[2..10].try_into().expect("8 bytes"));
                assert!(n > 0xFFFF, "a 64-bit length for {n} bytes");
                (
                    usize::try_from(n).expect("a length this machine can hold"),
                    10,
                )
            }
            n => (n as usize, 2),
        };
        if opcode >= 0x8 {
            assert!(fin && len <= 125, "a fragmented or oversized control frame");
        }
        assert!(out.len() >= header + len, "a frame cut short");
        let payload = out[header..header + len].to_vec();
        if opcode == CLOSE {
            check_close_payload(&payload);
        }
        frames.push(ServerFrame {
            fin,
            opcode,
            payload,
        });
        out = &out[header + len..];
    }
    frames
}

/// RFC 6455 section 7.4: a close payload is empty, or a code a server may
/// send and a UTF-8 reason.
fn check_close_payload(payload: &[u8]) {
    if payload.is_empty() {
        return;
    }
    assert!(payload.len() >= 2, "a one-byte close payload");
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    assert!(
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
        "close code {code} must not be sent"
    );
    assert!(
        std::str::from_utf8(&payload[2..]).is_ok(),
        "a close reason that is not UTF-8"
    );
}

/// The close code of a close frame (1005 when it has none).
pub(super) fn close_code(frame: &ServerFrame) -> u16 {
    match frame.payload.as_slice() {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 1005,
    }
}
