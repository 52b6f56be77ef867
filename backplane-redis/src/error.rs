//! What can go wrong when connecting to Redis, and when an emitter
//! publishes.

use std::fmt;

/// Redis could not be used: the URL is wrong, or the server could not be
/// reached (or did not answer) in time. The URL is shown without its
/// password.
#[derive(Debug)]
pub struct ConnectError {
    kind: Kind,
    url: String,
    source: redis::RedisError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Url,
    Unreachable,
}

impl ConnectError {
    pub(crate) fn url(url: &str, source: redis::RedisError) -> Self {
        ConnectError {
            kind: Kind::Url,
            url: redact(url),
            source,
        }
    }

    pub(crate) fn unreachable(url: &str, source: redis::RedisError) -> Self {
        ConnectError {
            kind: Kind::Unreachable,
            url: redact(url),
            source,
        }
    }

    /// True when the URL itself is wrong (fix the configuration); false
    /// when the server could not be reached (it may be down or slow).
    pub fn is_bad_url(&self) -> bool {
        self.kind == Kind::Url
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Url => write!(f, "invalid Redis URL `{}`: {}", self.url, self.source),
            Kind::Unreachable => write!(
                f,
                "cannot reach Redis at `{}`: {} (is redis-server running there?)",
                self.url, self.source
            ),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// An [`Emitter`](crate::Emitter)'s publish that may not have happened:
/// retry it.
#[derive(Debug)]
#[non_exhaustive]
pub enum EmitError {
    /// Redis failed the command, or could not be reached.
    Redis(redis::RedisError),
    /// The event's data could not be serialized to JSON.
    Event(wsway::EventError),
    /// Redis answered the publish script in an unexpected shape (another
    /// program's script under the same name?).
    Reply,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Redis(e) => write!(f, "Redis failed the publish: {e}"),
            EmitError::Event(e) => write!(f, "the event could not be encoded: {e}"),
            EmitError::Reply => f.write_str(
                "Redis answered the publish script without a position; \
                 is another program's script loaded under wsway's name?",
            ),
        }
    }
}

impl std::error::Error for EmitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EmitError::Redis(e) => Some(e),
            EmitError::Event(_) | EmitError::Reply => None,
        }
    }
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{}{hidden}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://:hunter2@host:1/"), "redis://:***@host:1/");
        assert_eq!(redact("redis://app:hunter2@host"), "redis://app:***@host");
        assert_eq!(redact("redis://tokenonly@host"), "redis://***@host");
        assert_eq!(redact("not a url"), "not a url");
    }
}
