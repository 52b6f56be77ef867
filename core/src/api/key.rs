//! The server API's key: checked in constant time, never printed.

use std::fmt;

/// The secret a backend sends to the [server API](crate::App::server_api),
/// as `Authorization: Bearer <key>`.
///
/// Its `Debug` output is redacted. A request is compared against it in
/// time that does not depend on where the two differ (both are hashed
/// first, then every byte of the digests is compared).
///
/// ```
/// let key = wsway::ApiKey::new("a-long-random-secret-from-the-env").unwrap();
/// assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
/// assert!(wsway::ApiKey::new("short").is_err());
/// ```
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 20],
}

/// Why a string cannot be an [`ApiKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyError {
    len: usize,
}

impl fmt::Display for ApiKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an API key must be at least {MIN_LEN} characters of printable ASCII \
             (this one has {} bytes, or other characters): generate one, e.g. \
             `openssl rand -hex 24`",
            self.len
        )
    }
}

impl std::error::Error for ApiKeyError {}

/// Short keys can be guessed.
const MIN_LEN: usize = 16;

impl ApiKey {
    /// A key from its text: at least 16 characters of printable ASCII (what
    /// an HTTP header can carry).
    pub fn new(key: impl AsRef<str>) -> Result<ApiKey, ApiKeyError> {
        let key = key.as_ref();
        if key.len() < MIN_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiKeyError { len: key.len() });
        }
        Ok(ApiKey {
            digest: digest(key.as_bytes()),
        })
    }

    /// Whether `given` is this key.
    pub(crate) fn matches(&self, given: &[u8]) -> bool {
        let given = digest(given);
        let diff = (given.iter().zip(&self.digest)).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

fn digest(bytes: &[u8]) -> [u8; 20] {
    sha1_smol::Sha1::from(bytes).digest().bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_matches() {
        let key = ApiKey::new("0123456789abcdef-secret").unwrap();
        assert!(key.matches(b"0123456789abcdef-secret"));
        assert!(!key.matches(b"0123456789abcdef-secreT"));
        assert!(!key.matches(b"0123456789abcdef-secre"));
        assert!(!key.matches(b""));
        assert!(ApiKey::new("has a space in it, sixteen+").is_err());
    }
}
