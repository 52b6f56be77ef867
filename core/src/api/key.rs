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
        same(&digest(given), &self.digest)
    }
}

impl ApiKey {
    /// HMAC-SHA1 of `msg` under this key (RFC 2104; the key's digest is
    /// the HMAC key): what the admin page's session tokens carry.
    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 20] {
        let (mut inner, mut outer) = ([0x36u8; 64], [0x5cu8; 64]);
        for (i, b) in self.digest.iter().enumerate() {
            inner[i] ^= b;
            outer[i] ^= b;
        }
        let mut h = sha1_smol::Sha1::new();
        h.update(&inner);
        h.update(msg);
        let first = h.digest().bytes();
        let mut h = sha1_smol::Sha1::new();
        h.update(&outer);
        h.update(&first);
        h.digest().bytes()
    }
}

/// Whether two byte strings are equal, in time that depends only on their
/// lengths.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    let diff = (a.iter().zip(b)).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    a.len() == b.len() && std::hint::black_box(diff) == 0
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

    #[test]
    fn signs_as_rfc_2202_hmac_sha1() {
        // RFC 2202's test case 2 ("Jefe"), with the key given as our
        // digest: HMAC pads a 20-byte key to 64 bytes either way.
        let key = ApiKey {
            digest: *b"Jefe\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        };
        let mac = key.sign(b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
}
