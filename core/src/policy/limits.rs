//! Per-connection limits and timers, with their defaults.
//!
//! One [`Limits`] value applies app-wide ([`App::limits`](crate::App::limits));
//! a route can adjust it ([`WsRoute::limits`](crate::WsRoute::limits)).

use std::time::Duration;

use crate::policy::origin::Origins;

/// Limits and timers for WebSocket connections. Every setter documents its
/// default; [`Limits::default()`] is what an [`App`](crate::App) starts with.
///
/// ```
/// use std::time::Duration;
/// use wsway::Limits;
///
/// let limits = Limits::default()
///     .max_message_size(1 << 20)
///     .idle_timeout(Some(Duration::from_secs(30)));
/// assert_eq!(limits.get_max_message_size(), 1 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct Limits {
    pub(crate) max_message_size: usize,
    pub(crate) max_frame_size: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
    pub(crate) backpressure_limit: usize,
    pub(crate) close_on_backpressure: bool,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_fragments: usize,
    pub(crate) compression: Option<crate::Compression>,
    pub(crate) origins: Origins,
    pub(crate) rate_limit: Option<RateLimit>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            idle_timeout: Some(Duration::from_secs(120)),
            close_timeout: Duration::from_secs(5),
            backpressure_limit: 1 << 20,
            close_on_backpressure: false,
            max_connections: None,
            max_fragments: 128 << 10,
            compression: None,
            origins: Origins::default(),
            rate_limit: None,
        }
    }
}

impl Limits {
    /// The defaults (same as [`Limits::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Largest incoming message, after reassembling fragments. A larger one
    /// closes the connection with 1009 and calls `error`. Default: 16 MiB.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.max(1);
        self
    }

    /// Largest incoming frame payload. A larger one closes with 1009.
    /// Default: 16 MiB (never more than the message size).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes.max(1);
        self
    }

    /// Close a connection that sent nothing (no frame, not even a pong) for
    /// this long. Half-way through, the server sends a ping, so a live client
    /// that is merely quiet answers it and stays. On expiry the server sends
    /// Close 1001 and calls `error`. `None` disables it. Default: 120 s.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// How long to wait for the peer's reply after the server sent a close
    /// frame, and for a lingering peer to hang up, before dropping the socket.
    /// Default: 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Bytes that may wait to be written to one connection. A send that takes
    /// the buffered amount over it reports
    /// [`SendStatus::Backpressure`](crate::SendStatus::Backpressure) (the message is
    /// still queued) and `drain` fires once it has all been written; a send
    /// while already over it is refused with
    /// [`SendStatus::Dropped`](crate::SendStatus::Dropped), so a peer that never
    /// reads cannot grow server memory without bound. Default: 1 MiB.
    pub fn backpressure_limit(mut self, bytes: usize) -> Self {
        self.backpressure_limit = bytes;
        self
    }

    /// Instead of refusing sends while over the backpressure limit, close the
    /// connection with 1008. Default: `false`.
    pub fn close_on_backpressure(mut self, close: bool) -> Self {
        self.close_on_backpressure = close;
        self
    }

    /// Most WebSocket connections open at once (on the app, or on one route).
    /// An upgrade beyond it gets `503 Service Unavailable` before the 101.
    /// Default: no limit (the process's file limit still applies).
    pub fn max_connections(mut self, max: Option<usize>) -> Self {
        self.max_connections = max;
        self
    }

    /// Most fragments one incoming message may come in. More closes the
    /// connection with 1009: a peer cannot keep the server busy with empty
    /// continuation frames that never end a message. Default: 131 072
    /// (a 4 MiB message in 32-byte fragments).
    pub fn max_fragments(mut self, fragments: usize) -> Self {
        self.max_fragments = fragments.max(1);
        self
    }

    /// permessage-deflate for clients that offer it: see [`Compression`](crate::Compression).
    /// Default: off.
    pub fn compression(mut self, compression: impl Into<Option<crate::Compression>>) -> Self {
        self.compression = compression.into();
        self
    }

    /// Which pages may open a WebSocket: see [`Origins`]. A browser upgrade
    /// from an origin that is neither the request's own host nor allowed gets
    /// `403` before the upgrade. Default: [`Origins::same_host`].
    pub fn origins(mut self, origins: Origins) -> Self {
        self.origins = origins;
        self
    }

    /// Limits what one connection may send per window of time; see
    /// [`RateLimit`]. Default: none.
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }

    /// The max message size in force.
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The idle timeout in force.
    pub fn get_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// The backpressure limit in force.
    pub fn get_backpressure_limit(&self) -> usize {
        self.backpressure_limit
    }

    pub(crate) fn codec_config(&self) -> crate::protocol::DecoderConfig {
        crate::protocol::DecoderConfig {
            max_frame: self.max_frame_size.min(self.max_message_size),
            max_message: self.max_message_size,
            max_fragments: self.max_fragments,
            compression: false,
            require_mask: true,
        }
    }
}

/// An inbound rate limit for one connection: at most so many messages and/or
/// bytes per window. Going over closes the connection with 1008 (the
/// default) or, with [`drop_excess`](RateLimit::drop_excess), drops the
/// messages over the limit (they never reach `message`) and calls `error`
/// once per window in which it happened.
///
/// ```
/// use std::time::Duration;
/// use wsway::{Limits, RateLimit};
///
/// let limits = Limits::default()
///     .rate_limit(Some(RateLimit::per(Duration::from_secs(1)).messages(50).bytes(64 << 10)));
/// # let _ = limits;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub(crate) window: Duration,
    pub(crate) messages: Option<u32>,
    pub(crate) bytes: Option<usize>,
    pub(crate) drop_excess: bool,
}

impl RateLimit {
    /// A limit over windows of this length (at least 1 ms), with no bound set yet.
    pub fn per(window: Duration) -> Self {
        RateLimit {
            window: window.max(Duration::from_millis(1)),
            messages: None,
            bytes: None,
            drop_excess: false,
        }
    }

    /// At most `n` messages per window.
    pub fn messages(mut self, n: u32) -> Self {
        self.messages = Some(n);
        self
    }

    /// At most `n` payload bytes per window.
    pub fn bytes(mut self, n: usize) -> Self {
        self.bytes = Some(n);
        self
    }

    /// Drop what is over the limit instead of closing the connection.
    pub fn drop_excess(mut self) -> Self {
        self.drop_excess = true;
        self
    }
}

/// One connection's count against its [`RateLimit`].
#[derive(Debug)]
pub(crate) struct RateCount {
    window_start: std::time::Instant,
    messages: u32,
    bytes: usize,
    reported: bool,
}

/// What a message does to the count.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RateVerdict {
    Within,
    /// Over the limit; `true` the first time in this window.
    Over(bool),
}

impl RateCount {
    pub(crate) fn new() -> Self {
        RateCount {
            window_start: std::time::Instant::now(),
            messages: 0,
            bytes: 0,
            reported: false,
        }
    }

    pub(crate) fn count(&mut self, limit: &RateLimit, len: usize) -> RateVerdict {
        let now = std::time::Instant::now();
        if now.duration_since(self.window_start) >= limit.window {
            *self = RateCount::new();
            self.window_start = now;
        }
        self.messages = self.messages.saturating_add(1);
        self.bytes = self.bytes.saturating_add(len);
        let over = limit.messages.is_some_and(|m| self.messages > m)
            || limit.bytes.is_some_and(|b| self.bytes > b);
        if !over {
            return RateVerdict::Within;
        }
        let first = !self.reported;
        self.reported = true;
        RateVerdict::Over(first)
    }
}

/// Server-wide settings that apply before a route is known.
#[derive(Clone, Debug)]
pub(crate) struct HttpLimits {
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_headers: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_body_bytes: usize,
}

/// hyper's own header count; parsing stays on the stack while it is used.
pub(crate) const DEFAULT_MAX_HEADERS: usize = 100;

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            handshake_timeout: Duration::from_secs(10),
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_bytes: 16 << 10,
            max_body_bytes: 1 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_reset_per_window() {
        let limit = RateLimit::per(Duration::from_millis(50))
            .messages(2)
            .bytes(100);
        let mut c = RateCount::new();
        assert_eq!(c.count(&limit, 10), RateVerdict::Within);
        assert_eq!(c.count(&limit, 10), RateVerdict::Within);
        assert_eq!(c.count(&limit, 10), RateVerdict::Over(true));
        assert_eq!(c.count(&limit, 10), RateVerdict::Over(false));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.count(&limit, 10), RateVerdict::Within);
        assert_eq!(
            c.count(&limit, 200),
            RateVerdict::Over(true),
            "bytes count too"
        );
    }
}
