//! A per-IP limit on handshakes: [`HandshakeLimit`].

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::header::{HeaderValue, RETRY_AFTER};

use crate::web::body::{Response, StatusCode, text};
use crate::web::middleware::Middleware;
use crate::web::request::Request;

/// Middleware that lets each client address make at most `max` requests per
/// `window`, answering the excess with `429 Too Many Requests` and a
/// `Retry-After`. Put it first in a stack, so a flood never reaches a costly
/// check such as a token lookup.
///
/// IPv6 clients are counted per /64, since one host commonly holds a whole
/// /64. Behind a reverse proxy every client has the proxy's address: limit
/// there instead.
///
/// ```
/// use std::time::Duration;
/// use wsway::{App, HandshakeLimit, on_message};
///
/// let mut app = App::new();
/// app.middleware(HandshakeLimit::per_ip(20, Duration::from_secs(10)));
/// app.ws("/echo", on_message(|ws, msg| { ws.send(msg); }));
/// ```
pub struct HandshakeLimit {
    max: u32,
    window: Duration,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// Per client: when its window started and requests in it.
    by_client: HashMap<IpAddr, (Instant, u32)>,
    /// Size after the last purge of expired windows: purging again only
    /// when the map has doubled keeps the cost amortized O(1).
    purged_at: usize,
}

impl HandshakeLimit {
    /// At most `max` requests per client address per `window` (a fixed
    /// window, starting at the client's first request).
    pub fn per_ip(max: u32, window: Duration) -> Self {
        HandshakeLimit {
            max: max.max(1),
            window: window.max(Duration::from_millis(1)),
            counts: Mutex::default(),
        }
    }

    /// Counts one request from `ip` at `now`; the wait before the next is
    /// allowed when over the limit.
    fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.by_client.len() >= 2 * counts.purged_at.max(512) {
            let window = self.window;
            counts
                .by_client
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            counts.purged_at = counts.by_client.len();
        }
        let (start, n) = counts.by_client.entry(client(ip)).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *n = 0;
        }
        if *n >= self.max {
            return Err(self.window.saturating_sub(now.duration_since(*start)));
        }
        *n += 1;
        Ok(())
    }
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64.
fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6([s[0], s[1], s[2], s[3], 0, 0, 0, 0].into())
            }
        },
        v4 => v4,
    }
}

impl Middleware for HandshakeLimit {
    fn check(&self, req: &mut Request) -> impl Future<Output = Result<(), Response>> + Send {
        let verdict = self
            .admit(req.remote_addr().ip(), Instant::now())
            .map_err(|wait| {
                let mut res = text(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many connection attempts from this address; retry later",
                );
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
                res
            });
        std::future::ready(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_client_per_window() {
        let limit = HandshakeLimit::per_ip(2, Duration::from_secs(10));
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(limit.admit(a, t0).is_ok());
        assert!(limit.admit(a, t0).is_ok());
        let wait = limit.admit(a, t0 + Duration::from_secs(4)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        assert!(limit.admit(b, t0).is_ok(), "other clients are unaffected");
        assert!(limit.admit(a, t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_the_map_stays_bounded() {
        let limit = HandshakeLimit::per_ip(1, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(limit.admit("2001:db8::1".parse().unwrap(), t0).is_ok());
        assert!(limit.admit("2001:db8::2".parse().unwrap(), t0).is_err());
        for i in 0..10_000u32 {
            let ip = IpAddr::V4(i.into());
            let _ = limit.admit(ip, t0 + Duration::from_secs(u64::from(i / 1000) * 2));
        }
        let held = limit.counts.lock().unwrap().by_client.len();
        assert!(held < 3000, "expired windows are purged: {held}");
    }
}
