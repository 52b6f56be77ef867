//! The close frame's payload (RFC 6455 §5.5.1, §7.4): nothing, or a
//! 2-byte status code and a UTF-8 reason.

use super::error::ProtocolError;

/// A close frame's code and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The close code (§7.4).
    pub code: u16,
    /// The reason, UTF-8, at most 123 bytes.
    pub reason: String,
}

/// Whether a peer may send `code` (§7.4.1, §7.4.2 and IANA's registry):
/// 1000–1003, 1007–1014, and 3000–4999. 1004 is reserved; 1005, 1006 and
/// 1015 only ever stand for "no code" locally.
pub fn is_sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Reads a close frame's payload: `None` for an empty one.
pub fn parse(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::BadClose),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_sendable(code) {
                return Err(ProtocolError::BadClose);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

/// Writes a close frame's payload (the caller keeps the reason within 123
/// bytes, so the frame stays within 125).
pub fn payload(code: u16, reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_a_peer_may_send() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
            assert!(is_sendable(ok), "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_sendable(bad), "{bad}");
        }
    }

    #[test]
    fn payloads() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&[3]), Err(ProtocolError::BadClose));
        assert_eq!(parse(&payload(1005, "")), Err(ProtocolError::BadClose));
        assert_eq!(parse(&[0x03, 0xe8, 0xff]), Err(ProtocolError::InvalidUtf8));
        let back = parse(&payload(4000, "bye")).unwrap().unwrap();
        assert_eq!((back.code, back.reason.as_str()), (4000, "bye"));
    }
}
