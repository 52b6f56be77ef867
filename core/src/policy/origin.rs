//! The origin check: which web pages may open a WebSocket to this server.
//!
//! Browsers attach cookies and HTTP auth to WebSocket upgrades from any page
//! on any site, and the same-origin policy does not apply to WebSockets. So a
//! malicious page can open a socket to your server *as the visitor*:
//! cross-site WebSocket hijacking. Browsers always send `Origin` on upgrades,
//! so the server can refuse the ones from pages it does not trust.
//!
//! By default wsway accepts a browser upgrade only when `Origin` names the
//! same host the request was sent to (the `Host` header), or an origin on the
//! allow-list. Requests without `Origin` come from non-browser clients and
//! are accepted unless [`Origins::require`] says otherwise.

use std::future::Future;

use http::HeaderMap;

use crate::web::body::{Response, StatusCode, text};
use crate::web::middleware::Middleware;
use crate::web::request::Request;
use http::header::{HOST, ORIGIN};

/// Which origins may open a WebSocket. Set per app or per route with
/// [`Limits::origins`](crate::Limits::origins).
///
/// ```
/// use wsway::{Limits, Origins};
///
/// // The default: same host only, plus non-browser clients.
/// let same_host = Origins::same_host();
/// // Same host, plus these sites (any subdomain of example.com over https).
/// let listed = Origins::same_host().allow(["https://app.example.org", "https://*.example.com"]);
/// // The one-line opt-out (public APIs without cookies or HTTP auth).
/// let any = Origins::any();
/// let limits = Limits::default().origins(listed);
/// # let _ = (same_host, any, limits);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origins {
    any: bool,
    same_host: bool,
    require: bool,
    allowed: Vec<Pattern>,
}

impl Default for Origins {
    fn default() -> Self {
        Origins::same_host()
    }
}

/// One allow-list entry: `scheme://host[:port]`, where the host may start
/// with `*.` to match any subdomain.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    scheme: String,
    host: String,
    wildcard: bool,
    port: u16,
}

impl Origins {
    /// Pages served from the host the request was sent to, and clients that
    /// send no `Origin`. The default.
    pub fn same_host() -> Self {
        Origins {
            any: false,
            same_host: true,
            require: false,
            allowed: Vec::new(),
        }
    }

    /// Any origin at all: the opt-out, for endpoints that authenticate by
    /// something a foreign page cannot send (a token in the first message),
    /// never by cookies or HTTP auth.
    pub fn any() -> Self {
        Origins {
            any: true,
            ..Origins::same_host()
        }
    }

    /// Only the origins on the allow-list (not even the same host).
    pub fn only<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Origins {
            same_host: false,
            ..Origins::same_host()
        }
        .allow(origins)
    }

    /// Adds origins to the allow-list: `https://app.example.com`,
    /// `http://localhost:5173`, or `https://*.example.com` for every
    /// subdomain (not `example.com` itself).
    ///
    /// # Panics
    ///
    /// On an entry that is not `scheme://host[:port]`: origin lists are
    /// fixed at start-up, so this fails the program at once.
    pub fn allow<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for origin in origins {
            let origin = origin.as_ref();
            let (scheme, host, port) = parse(origin).unwrap_or_else(|| {
                panic!("invalid origin `{origin}`: expected scheme://host[:port]")
            });
            let (host, wildcard) = match host.strip_prefix("*.") {
                Some(rest) => (rest.to_owned(), true),
                None => (host, false),
            };
            self.allowed.push(Pattern {
                scheme,
                host,
                wildcard,
                port,
            });
        }
        self
    }

    /// Also refuse requests that send no `Origin` at all (non-browser
    /// clients). Default: they are accepted.
    pub fn require(mut self, require: bool) -> Self {
        self.require = require;
        self
    }

    /// Whether the request's `Origin` passes.
    pub(crate) fn permits(&self, headers: &HeaderMap) -> bool {
        if self.any {
            return true;
        }
        let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
            return !self.require && headers.get(ORIGIN).is_none();
        };
        let Some((scheme, host, port)) = parse(origin) else {
            // `null` (sandboxed frames, file:// pages) and garbage.
            return false;
        };
        if self.same_host && same_host(&host, port, headers) {
            return true;
        }
        self.allowed.iter().any(|p| {
            p.scheme == scheme
                && p.port == port
                && if p.wildcard {
                    host.strip_suffix(&p.host)
                        .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
                } else {
                    host == p.host
                }
        })
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Splits `scheme://host[:port]` into lowercase parts, with the scheme's
/// default port filled in. Paths, user info and anything else: `None`.
fn parse(origin: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = origin.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = split_port(rest)?;
    let port = match port {
        Some(p) => p,
        None => default_port(&scheme)?,
    };
    Some((scheme, host.to_ascii_lowercase(), port))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = &authority[..=end];
        return match &authority[end + 1..] {
            "" => Some((host, None)),
            rest => Some((host, Some(rest.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// The page's host is the host the request was sent to. When `Host` names
/// no port (a proxy or TLS terminator in front), the host name decides.
fn same_host(host: &str, port: u16, headers: &HeaderMap) -> bool {
    let Some(target) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((target_host, target_port)) = split_port(target.trim()) else {
        return false;
    };
    target_host.eq_ignore_ascii_case(host) && target_port.is_none_or(|p| p == port)
}

/// The answer to an upgrade from an origin that may not open one.
pub(crate) fn refused() -> Response {
    text(
        StatusCode::FORBIDDEN,
        "this origin may not open a WebSocket here (cross-site request refused)",
    )
}

/// As middleware, `Origins` refuses requests from origins not on its list
/// with `403`, in addition to the check every WebSocket route does with its
/// [`Limits::origins`](crate::Limits::origins). Use it to guard a group's
/// plain routes too, or to narrow one group's origins.
impl Middleware for Origins {
    fn check(&self, req: &mut Request) -> impl Future<Output = Result<(), Response>> + Send {
        std::future::ready(if self.permits(req.headers()) {
            Ok(())
        } else {
            Err(refused())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn req(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static(host));
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn same_host_by_default() {
        let o = Origins::default();
        assert!(o.permits(&req(Some("http://127.0.0.1:3000"), "127.0.0.1:3000")));
        assert!(o.permits(&req(Some("https://Chat.Example.com"), "chat.example.com")));
        assert!(
            o.permits(&req(None, "chat.example.com")),
            "non-browser clients pass"
        );
        assert!(!o.permits(&req(Some("https://evil.example"), "chat.example.com")));
        assert!(
            !o.permits(&req(Some("http://127.0.0.1:4000"), "127.0.0.1:3000")),
            "other port"
        );
        assert!(!o.permits(&req(Some("null"), "chat.example.com")));
        assert!(!o.permits(&req(
            Some("http://chat.example.com.evil.example"),
            "chat.example.com"
        )));
        assert!(!o.require(true).permits(&req(None, "chat.example.com")));
    }

    #[test]
    fn allow_list_with_wildcard_subdomains() {
        let o = Origins::same_host().allow(["https://*.example.com", "http://localhost:5173"]);
        assert!(o.permits(&req(Some("https://app.example.com"), "api.other.net")));
        assert!(o.permits(&req(Some("https://a.b.example.com"), "api.other.net")));
        assert!(
            !o.permits(&req(Some("https://example.com"), "api.other.net")),
            "not the bare domain"
        );
        assert!(
            !o.permits(&req(Some("http://app.example.com"), "api.other.net")),
            "scheme matters"
        );
        assert!(!o.permits(&req(Some("https://badexample.com"), "api.other.net")));
        assert!(o.permits(&req(Some("http://localhost:5173"), "api.other.net")));
        assert!(!o.permits(&req(Some("http://localhost:5174"), "api.other.net")));
        let only = Origins::only(["https://app.example.com"]);
        assert!(
            !only.permits(&req(Some("http://api.other.net"), "api.other.net")),
            "same host not implied"
        );
        assert!(Origins::any().permits(&req(Some("null"), "x")));
    }

    #[test]
    #[should_panic(expected = "invalid origin")]
    fn malformed_entries_fail_at_start_up() {
        let _ = Origins::same_host().allow(["example.com/path"]);
    }
}
