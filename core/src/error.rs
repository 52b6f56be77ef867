//! The error type handed to [`Handler::error`](crate::Handler::error) and
//! returned by fallible connection calls.
//!
//! Like hyper's, it is one opaque type with a [`kind`](Error::kind) and
//! predicates, so that new causes can be added without breaking matches.
//! The predicates sort what reaches [`Handler::error`](crate::Handler::error)
//! into families: [`is_disconnect`](Error::is_disconnect) (routine),
//! [`is_protocol_violation`](Error::is_protocol_violation) (a bad client),
//! [`is_limit`](Error::is_limit) (a client over its limits), and a panic
//! (`kind() == ErrorKind::HandlerPanic`, a bug).

use std::fmt;

use crate::message::{CloseCode, MAX_CLOSE_REASON, MAX_CONTROL_PAYLOAD};

/// What went wrong on a connection, or with a call on it.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    detail: Option<String>,
}

/// The cause of an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `close` was given a code that may not be sent (outside 1000-4999, or
    /// one of the reserved 1004-1006, 1015).
    InvalidCloseCode,
    /// `close` was given a reason longer than 123 bytes.
    CloseReasonTooLong,
    /// `ping`/`pong` was given a payload longer than 125 bytes.
    ControlPayloadTooLong,
    /// The connection is closing or closed: nothing more can be sent.
    Closed,
    /// The peer sent a message or frame over the configured maximum (closed with 1009).
    MessageTooLarge,
    /// The peer broke RFC 6455 (closed with 1002).
    Protocol,
    /// The peer sent a text message that is not UTF-8 (closed with 1007).
    InvalidUtf8,
    /// The peer sent nothing for the idle timeout (closed with 1001).
    IdleTimeout,
    /// The peer did not answer the closing handshake in time (terminated).
    CloseTimeout,
    /// The peer stayed over the backpressure limit (closed with 1008).
    Backpressure,
    /// A handler callback panicked (closed with 1011).
    HandlerPanic,
    /// The peer sent more than its rate limit allows (closed with 1008, or
    /// the excess dropped).
    RateLimited,
    /// The connection dropped without a closing handshake (reset, EOF mid-frame).
    ConnectionLost,
    /// The socket failed.
    Io,
    /// [`Topics::disconnect_member`](crate::Topics::disconnect_member) was
    /// given an id that is not a [`Member::id`](crate::Member::id) of this
    /// app's backplane.
    InvalidMemberId,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Error { kind, detail: None }
    }

    pub(crate) fn with_detail(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error {
            kind,
            detail: Some(detail.into()),
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True for errors caused by the peer or the network (as opposed to a
    /// call the application made with bad arguments).
    pub fn is_connection(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::InvalidCloseCode
                | ErrorKind::CloseReasonTooLong
                | ErrorKind::ControlPayloadTooLong
                | ErrorKind::Closed
        )
    }

    /// True when the connection was closed or is closing.
    pub fn is_closed(&self) -> bool {
        self.kind == ErrorKind::Closed
    }

    /// True when the peer went away without a closing handshake: the
    /// connection dropped or reset, or the peer never answered our close.
    /// Routine for mobile clients and closed laptops; log it at a low
    /// level, if at all.
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ConnectionLost | ErrorKind::Io | ErrorKind::CloseTimeout
        )
    }

    /// True when the peer broke RFC 6455 (a bad frame, text that is not
    /// UTF-8): a buggy or hostile client, closed with 1002 or 1007.
    pub fn is_protocol_violation(&self) -> bool {
        matches!(self.kind, ErrorKind::Protocol | ErrorKind::InvalidUtf8)
    }

    /// True when the peer went over one of the route's [`Limits`](crate::Limits):
    /// message size, idle time, backpressure or rate.
    pub fn is_limit(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::MessageTooLarge
                | ErrorKind::IdleTimeout
                | ErrorKind::Backpressure
                | ErrorKind::RateLimited
        )
    }

    /// True for the idle and close timeouts.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::IdleTimeout | ErrorKind::CloseTimeout)
    }

    /// The close code the server sends the peer because of this error, if any.
    pub fn close_code(&self) -> Option<CloseCode> {
        Some(match self.kind {
            ErrorKind::MessageTooLarge => CloseCode::TOO_BIG,
            ErrorKind::Protocol => CloseCode::PROTOCOL_ERROR,
            ErrorKind::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            ErrorKind::IdleTimeout => CloseCode::GOING_AWAY,
            ErrorKind::Backpressure => CloseCode::POLICY,
            ErrorKind::HandlerPanic => CloseCode::INTERNAL_ERROR,
            ErrorKind::RateLimited => CloseCode::POLICY,
            _ => return None,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self.kind {
            ErrorKind::InvalidCloseCode => {
                "invalid close code: use 1000-1003, 1007-1014 or 3000-4999 (1004-1006 and 1015 are reserved)"
            }
            ErrorKind::CloseReasonTooLong => "close reason too long: at most 123 bytes of UTF-8",
            ErrorKind::ControlPayloadTooLong => "ping/pong payload too long: at most 125 bytes",
            ErrorKind::Closed => "the connection is closing or closed",
            ErrorKind::MessageTooLarge => {
                "the peer sent a message over the size limit (closed with 1009)"
            }
            ErrorKind::Protocol => "the peer broke the WebSocket protocol (closed with 1002)",
            ErrorKind::InvalidUtf8 => "the peer sent text that is not UTF-8 (closed with 1007)",
            ErrorKind::IdleTimeout => {
                "the peer sent nothing for the idle timeout (closed with 1001)"
            }
            ErrorKind::CloseTimeout => "the peer did not finish the closing handshake in time",
            ErrorKind::Backpressure => {
                "the peer did not read fast enough and stayed over the backpressure limit (closed with 1008)"
            }
            ErrorKind::HandlerPanic => "a handler callback panicked (closed with 1011)",
            ErrorKind::RateLimited => "the peer sent more than its rate limit allows",
            ErrorKind::ConnectionLost => "the connection dropped without a closing handshake",
            ErrorKind::Io => "socket error",
            ErrorKind::InvalidMemberId => "not a member id of this app (see Topics::member_id)",
        };
        f.write_str(msg)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .finish()
    }
}

impl std::error::Error for Error {}

pub(crate) fn check_close(code: CloseCode, reason: &str) -> Result<(), Error> {
    if !code.is_sendable() {
        return Err(Error::with_detail(
            ErrorKind::InvalidCloseCode,
            code.to_string(),
        ));
    }
    if reason.len() > MAX_CLOSE_REASON {
        return Err(Error::with_detail(
            ErrorKind::CloseReasonTooLong,
            format!("{} bytes", reason.len()),
        ));
    }
    Ok(())
}

pub(crate) fn check_control(payload: &[u8]) -> Result<(), Error> {
    if payload.len() > MAX_CONTROL_PAYLOAD {
        return Err(Error::with_detail(
            ErrorKind::ControlPayloadTooLong,
            format!("{} bytes", payload.len()),
        ));
    }
    Ok(())
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        for ok in [1000u16, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(check_close(CloseCode(ok), "").is_ok(), "{ok}");
        }
        for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            let e = check_close(CloseCode(bad), "").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidCloseCode, "{bad}");
        }
        let e = check_close(CloseCode::NORMAL, &"x".repeat(124)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CloseReasonTooLong);
        assert!(check_close(CloseCode::NORMAL, &"x".repeat(123)).is_ok());
        assert!(e.to_string().contains("123 bytes"));
    }

    /// Every connection error is exactly one of: a disconnect, a protocol
    /// violation, a limit, or a panic; the rest are bad calls.
    #[test]
    fn each_kind_is_in_one_family() {
        use ErrorKind::*;
        let all = [
            InvalidCloseCode,
            CloseReasonTooLong,
            ControlPayloadTooLong,
            Closed,
            MessageTooLarge,
            Protocol,
            InvalidUtf8,
            IdleTimeout,
            CloseTimeout,
            Backpressure,
            HandlerPanic,
            RateLimited,
            ConnectionLost,
            Io,
        ];
        for kind in all {
            let e = Error::new(kind);
            let families = [
                e.is_disconnect(),
                e.is_protocol_violation(),
                e.is_limit(),
                kind == HandlerPanic,
            ];
            let n = families.iter().filter(|f| **f).count();
            assert_eq!(n, usize::from(e.is_connection()), "{kind:?}");
        }
    }

    #[test]
    fn control_payloads() {
        assert!(check_control(&[0; 125]).is_ok());
        assert_eq!(
            check_control(&[0; 126]).unwrap_err().kind(),
            ErrorKind::ControlPayloadTooLong
        );
    }
}
