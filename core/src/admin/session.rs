//! The admin page's session token: `<expiry, hex seconds since the Unix
//! epoch>.<HMAC-SHA1 of "wsway-admin:<expiry>" under the key, hex>`.
//! Stateless, so any node with the same key accepts it, and it ends by
//! itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::api::{ApiKey, same};

/// How long a page's token opens streams.
const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

fn now() -> u64 {
    (SystemTime::now().duration_since(UNIX_EPOCH)).map_or(0, |d| d.as_secs())
}

fn mac(key: &ApiKey, expiry: &str) -> String {
    let mac = key.sign(format!("wsway-admin:{expiry}").as_bytes());
    mac.iter().map(|b| format!("{b:02x}")).collect()
}

/// A token valid for [`LIFETIME`] from now.
pub(super) fn issue(key: &ApiKey) -> String {
    let expiry = format!("{:x}", now() + LIFETIME.as_secs());
    let mac = mac(key, &expiry);
    format!("{expiry}.{mac}")
}

/// Whether `token` was issued under `key` and has not expired.
pub(super) fn valid(key: &ApiKey, token: &str) -> bool {
    let Some((expiry, given)) = token.split_once('.') else {
        return false;
    };
    let Ok(until) = u64::from_str_radix(expiry, 16) else {
        return false;
    };
    same(mac(key, expiry).as_bytes(), given.as_bytes()) && now() <= until
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_under_its_key_and_until_it_expires() {
        let key = ApiKey::new("0123456789abcdef-admin").unwrap();
        let other = ApiKey::new("0123456789abcdef-other").unwrap();
        let token = issue(&key);
        assert!(valid(&key, &token));
        assert!(!valid(&other, &token));
        let (expiry, mac) = token.split_once('.').unwrap();
        assert!(!valid(&key, &format!("{expiry}.{}", &mac[1..])));
        let old = format!("{:x}", now() - 1);
        assert!(!valid(&key, &format!("{old}.{}", super::mac(&key, &old))));
        assert!(!valid(&key, "") && !valid(&key, "x.y"));
    }
}
