//! What an event handler returns: [`Reply`], and [`EventError`] for
//! failures.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::message::CloseCode;

/// An event that failed. Built with [`EventError::new`] it is *typed*: its
/// code and message go to the client as they are. Converted from any other
/// error (with `?`) it is *internal*: the client gets only
/// `{"error": "internal", "message": "internal error"}`, and the real error
/// goes to [`Events::on_failure`](crate::Events::on_failure).
///
/// On a connection admitted by [`Bearer`](crate::Bearer), the token is
/// replaced by [`REDACTED`](crate::REDACTED) wherever an error quotes it
/// (message, detail, data, close reason) before anyone sees it.
///
/// ```
/// use wsway::EventError;
///
/// fn find(room: &str) -> Result<u32, EventError> {
///     let n: u32 = "42".parse()?; // an internal failure if it fails
///     if room != "lobby" {
///         return Err(EventError::new("not_found", format!("no room {room}")));
///     }
///     Ok(n)
/// }
/// # assert!(find("x").is_err());
/// ```
///
/// A typed error can carry a `data` payload for the client, any
/// serializable value, as socket.io's acks can:
///
/// ```
/// use wsway::EventError;
///
/// let err = EventError::new("outbid", "a higher bid came first")
///     .with_data(&serde_json::json!({ "high": 120 }));
/// assert_eq!(err.data(), Some(r#"{"high":120}"#));
/// ```
pub struct EventError {
    kind: Kind,
    /// The typed error's payload, already JSON.
    data: Option<Box<RawValue>>,
    close: Option<(CloseCode, String)>,
}

enum Kind {
    Typed {
        code: Cow<'static, str>,
        message: String,
    },
    Internal(String),
}

impl EventError {
    /// A typed error: `code` is a short machine-readable word
    /// (`not_found`, `forbidden`), `message` is for people. Both reach the
    /// client.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        EventError {
            kind: Kind::Typed {
                code: code.into(),
                message: message.into(),
            },
            data: None,
            close: None,
        }
    }

    /// Adds a payload the client receives as the reply's `data`
    /// (`err.data` in `wsway.js`). A value that fails to serialize makes
    /// this an internal error instead, whose detail goes to
    /// [`Events::on_failure`](crate::Events::on_failure). Internal errors
    /// never carry data to the client.
    pub fn with_data(mut self, data: &impl Serialize) -> Self {
        if self.is_internal() {
            return self;
        }
        match serde_json::value::to_raw_value(data) {
            Ok(raw) => self.data = Some(raw),
            Err(e) => {
                self.kind = Kind::Internal(format!("the error's data did not serialize: {e}"));
                self.data = None;
            }
        }
        self
    }

    /// The payload the client receives, as JSON, if any.
    pub fn data(&self) -> Option<&str> {
        self.data.as_deref().map(RawValue::get)
    }

    pub(crate) fn raw_data(&self) -> Option<&RawValue> {
        self.data.as_deref()
    }

    /// An internal error: the client sees a generic one, `detail` goes to
    /// [`Events::on_failure`](crate::Events::on_failure) only.
    pub fn internal(detail: impl Into<String>) -> Self {
        EventError {
            kind: Kind::Internal(detail.into()),
            data: None,
            close: None,
        }
    }

    /// Also closes the connection with `code` after the error envelope is
    /// sent: for a session revoked mid-connection, say,
    /// `EventError::new("unauthorized", "session revoked").close(4001, "session revoked")`.
    pub fn close(mut self, code: impl Into<CloseCode>, reason: impl Into<String>) -> Self {
        self.close = Some((code.into(), reason.into()));
        self
    }

    /// The code the client sees (`internal` for internal errors).
    pub fn code(&self) -> &str {
        match &self.kind {
            Kind::Typed { code, .. } => code,
            Kind::Internal(_) => "internal",
        }
    }

    /// The message the client sees (a generic one for internal errors).
    pub fn message(&self) -> &str {
        match &self.kind {
            Kind::Typed { message, .. } => message,
            Kind::Internal(_) => "internal error",
        }
    }

    /// True for internal errors, whose detail the client never sees.
    pub fn is_internal(&self) -> bool {
        matches!(self.kind, Kind::Internal(_))
    }

    /// The close this error asks for, if any.
    pub(crate) fn close_request(&self) -> Option<&(CloseCode, String)> {
        self.close.as_ref()
    }

    /// Replaces `secret` wherever this error could carry it: the message,
    /// the internal detail, the data and the close reason.
    pub(crate) fn scrub(&mut self, secret: &str) {
        let clean = |text: &mut String| {
            if text.contains(secret) {
                *text = crate::policy::auth::scrub(text, secret);
            }
        };
        match &mut self.kind {
            Kind::Typed { message, .. } => clean(message),
            Kind::Internal(detail) => clean(detail),
        }
        if let Some((_, reason)) = &mut self.close {
            clean(reason);
        }
        if let Some(data) = &self.data {
            // In JSON the token appears escaped (as it would inside a
            // string); `[redacted]` needs no escaping, so the result is
            // still JSON.
            let escaped = serde_json::to_string(secret).unwrap_or_default();
            let escaped = escaped
                .get(1..escaped.len().saturating_sub(1))
                .unwrap_or(secret);
            if data.get().contains(escaped) {
                let text = crate::policy::auth::scrub(data.get(), escaped);
                self.data = RawValue::from_string(text).ok();
            }
        }
    }
}

/// Shows everything, the internal detail included: this is what logs see,
/// never what the client sees.
impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Typed { code, message } => write!(f, "{code}: {message}"),
            Kind::Internal(detail) => write!(f, "internal error: {detail}"),
        }
    }
}

impl fmt::Debug for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Any error converts into an internal [`EventError`], so `?` works in
/// handlers without leaking the error to the client.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for EventError {
    fn from(e: E) -> Self {
        EventError::internal(e.to_string())
    }
}

/// What an event handler may return: `()` (acknowledged with `null`), or
/// a `Result<T, EventError>` whose `Ok` value is the acknowledgement's
/// `data`.
///
/// Only `EventError` is accepted as the error type, so a handler whose one
/// error path is `?` needs no annotation: `?` converts any other error
/// into an internal `EventError`, and the compiler knows the target.
///
/// ```
/// # use wsway::Events;
/// let mut events = Events::<()>::new();
/// events.on("double", |_ws, text: String| {
///     let n: u32 = text.parse()?;
///     Ok(n * 2)
/// });
/// ```
///
/// Another error type is refused, with a message saying what to return:
///
/// ```compile_fail
/// # use wsway::Events;
/// let mut events = Events::<()>::new();
/// events.on("read", |_ws, path: String| std::fs::read_to_string(path));
/// ```
#[diagnostic::on_unimplemented(
    message = "an event handler must return `()` or `Result<T, EventError>`, not `{Self}`",
    label = "the handler given here returns `{Self}`",
    note = "convert other errors with `?` or `.map_err(EventError::from)`; build typed ones with `EventError::new(code, message)`"
)]
pub trait Reply: Send + 'static {
    /// The acknowledgement's `data`.
    type Data: Serialize;

    /// The outcome.
    fn into_result(self) -> Result<Self::Data, EventError>;
}

impl Reply for () {
    type Data = ();

    fn into_result(self) -> Result<(), EventError> {
        Ok(())
    }
}

impl<T> Reply for Result<T, EventError>
where
    T: Serialize + Send + 'static,
{
    type Data = T;

    fn into_result(self) -> Result<T, EventError> {
        self
    }
}

/// Event names are echoed in errors; a hostile one is cut short.
pub(super) fn truncate(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_reaches_every_field() {
        let secret = r#"to"k\en"#;
        let mut typed = EventError::new("c", format!("a {secret} b"))
            .with_data(&serde_json::json!({ "k": secret, "n": [secret] }))
            .close(4001, format!("{secret}!"));
        typed.scrub(secret);
        assert_eq!(typed.message(), "a [redacted] b");
        assert_eq!(
            typed.data(),
            Some(r#"{"k":"[redacted]","n":["[redacted]"]}"#)
        );
        assert_eq!(typed.close_request().unwrap().1, "[redacted]!");
        let mut internal = EventError::internal(format!("{secret}{secret}"));
        internal.scrub(secret);
        assert_eq!(internal.to_string(), "internal error: [redacted][redacted]");
        let mut clean = EventError::new("c", "nothing here");
        clean.scrub(secret);
        assert_eq!(clean.message(), "nothing here");
    }
}
