//! Tokens that expire inside open sockets: [`Expiring`] identities, and
//! the [`Renewal`] a refreshing [`Bearer`](crate::Bearer) leaves on each
//! connection it admits, which the connection uses to ask for a fresh
//! token before the old one expires and to check it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::boxed::BoxFuture;

/// An identity that expires: what a verifier returns for connections that
/// renew their token in place ([`Bearer::refresh`](crate::Bearer::refresh)).
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
///
/// #[derive(Clone)]
/// struct Claims { sub: String, exp: u64 }
///
/// impl wsway::Expiring for Claims {
///     type Subject = String;
///     fn subject(&self) -> String { self.sub.clone() }
///     fn expires_at(&self) -> SystemTime { UNIX_EPOCH + Duration::from_secs(self.exp) }
/// }
/// ```
pub trait Expiring: Clone + Send + Sync + 'static {
    /// Who the identity is. A refreshed token must name the same subject:
    /// a socket never changes users.
    type Subject: PartialEq + Send + Sync + 'static;

    /// The subject of this identity (a JWT's `sub`, a user id).
    fn subject(&self) -> Self::Subject;

    /// When the token this identity came from stops being valid (a JWT's
    /// `exp`).
    fn expires_at(&self) -> SystemTime;
}

/// How long before a token's expiry the server asks for a new one: a share
/// of the token's lifetime, but at least a fixed time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefreshMargin {
    share: f64,
    at_least: Duration,
}

impl Default for RefreshMargin {
    /// 10 % of the lifetime, at least 5 s.
    fn default() -> Self {
        RefreshMargin {
            share: 0.1,
            at_least: Duration::from_secs(5),
        }
    }
}

impl RefreshMargin {
    /// `share` of the token's lifetime (clamped to 0..=1), but at least
    /// `at_least`.
    pub fn new(share: f64, at_least: Duration) -> Self {
        RefreshMargin {
            share: if share.is_nan() {
                0.0
            } else {
                share.clamp(0.0, 1.0)
            },
            at_least,
        }
    }

    /// When to ask for a new token, for one valid from `since` until
    /// `expires_at` (`since` itself when the margin is the whole lifetime).
    pub(crate) fn ask_at(&self, since: SystemTime, expires_at: SystemTime) -> SystemTime {
        let lifetime = expires_at.duration_since(since).unwrap_or_default();
        let margin = lifetime.mul_f64(self.share).max(self.at_least);
        expires_at.checked_sub(margin).unwrap_or(since).max(since)
    }
}

/// What the refreshing [`Bearer`](crate::Bearer) knows of its identity
/// type, as plain functions: the `Expiring` bound is known only where
/// refresh is switched on.
pub(crate) struct Expiry<I> {
    pub(crate) margin: RefreshMargin,
    pub(crate) expires_at: fn(&I) -> SystemTime,
    pub(crate) same_subject: fn(&I, &I) -> bool,
}

impl<I> Clone for Expiry<I> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I> Copy for Expiry<I> {}

impl<I> Expiry<I> {
    /// When `identity`'s token expires, if it has not yet.
    pub(crate) fn live_until(&self, identity: &I) -> Option<SystemTime> {
        Some((self.expires_at)(identity)).filter(|t| *t > SystemTime::now())
    }
}

impl<I: Expiring> Expiry<I> {
    pub(crate) fn of(margin: RefreshMargin) -> Self {
        Expiry {
            margin,
            expires_at: I::expires_at,
            same_subject: |a, b| a.subject() == b.subject(),
        }
    }
}

/// A connection's token expires: when, and how to check a new one. In the
/// values of every upgrade request a refreshing `Bearer` admitted.
#[derive(Clone)]
pub(crate) struct Renewal {
    pub(crate) expires_at: SystemTime,
    pub(crate) margin: RefreshMargin,
    pub(crate) renew: Arc<dyn Renew>,
}

/// Checks a fresh token for one connection.
pub(crate) trait Renew: Send + Sync {
    /// The verifier's word on `token`, for the same subject: what to put
    /// in the connection's values, or why not (the token scrubbed out).
    fn renew(&self, token: String) -> BoxFuture<'static, Result<Renewed, String>>;
}

/// A fresh token accepted.
pub(crate) struct Renewed {
    pub(crate) expires_at: SystemTime,
    /// Replaces the identity (and the credential) in the connection's
    /// values.
    pub(crate) apply: Box<dyn FnOnce(&mut http::Extensions) + Send>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_share_of_the_lifetime_but_at_least_its_floor() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let m = RefreshMargin::default();
        // One hour: 6 minutes before.
        assert_eq!(
            m.ask_at(t0, t0 + Duration::from_secs(3600)),
            t0 + Duration::from_secs(3240)
        );
        // Twenty seconds: the 5 s floor.
        assert_eq!(
            m.ask_at(t0, t0 + Duration::from_secs(20)),
            t0 + Duration::from_secs(15)
        );
        // Shorter than the floor: at once.
        assert_eq!(m.ask_at(t0, t0 + Duration::from_secs(3)), t0);
        // Already expired: at once, never before `since`.
        assert_eq!(m.ask_at(t0, t0 - Duration::from_secs(3)), t0);
        let half = RefreshMargin::new(0.5, Duration::ZERO);
        assert_eq!(
            half.ask_at(t0, t0 + Duration::from_secs(10)),
            t0 + Duration::from_secs(5)
        );
    }
}
