//! What the server tells operators: `tracing` events in one span per
//! connection, and counters and gauges through the `metrics` facade.
//!
//! Every hook is here, and each compiles to nothing without its feature, so
//! the code that serves connections names what happened, not how it is
//! reported. No field carries a secret: routes are reported as their
//! pattern (never the query, where tokens travel), requests' headers never.
//!
//! The metrics and events are listed in the crate's documentation
//! ("Optional features").

use std::time::Duration;

use crate::message::CloseCode;

/// Who started a closing handshake, for `wsway_closes_total{by}` and the
/// close event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Initiator {
    Client,
    Server,
    /// No handshake: the connection was lost or terminated.
    Nobody,
}

impl Initiator {
    #[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(dead_code))]
    fn as_str(self) -> &'static str {
        match self {
            Initiator::Client => "client",
            Initiator::Server => "server",
            Initiator::Nobody => "none",
        }
    }
}

// ---- the connection's span ---------------------------------------------

/// The span a connection's events are recorded in (nothing without the
/// `tracing` feature).
#[cfg(feature = "tracing")]
pub(crate) type Span = tracing::Span;
#[cfg(not(feature = "tracing"))]
#[derive(Clone)]
pub(crate) struct Span;

/// A new connection's span: its remote address now, its id, route and
/// subprotocol once the upgrade is accepted.
pub(crate) fn connection_span(remote: std::net::SocketAddr) -> Span {
    #[cfg(feature = "tracing")]
    return tracing::info_span!(
        "wsway.connection",
        id = tracing::field::Empty,
        remote = %remote,
        route = tracing::field::Empty,
        protocol = tracing::field::Empty,
    );
    #[cfg(not(feature = "tracing"))]
    {
        let _ = remote;
        Span
    }
}

/// The span being recorded in now (a connection's, inside its task).
pub(crate) fn current_span() -> Span {
    #[cfg(feature = "tracing")]
    return tracing::Span::current();
    #[cfg(not(feature = "tracing"))]
    Span
}

/// `fut` running inside `span`.
pub(crate) fn instrument<F: std::future::Future>(
    fut: F,
    span: Span,
) -> impl std::future::Future<Output = F::Output> {
    #[cfg(feature = "tracing")]
    return tracing::Instrument::instrument(fut, span);
    #[cfg(not(feature = "tracing"))]
    {
        let _ = span;
        fut
    }
}

// ---- handshakes ----------------------------------------------------------

/// The request asks for a WebSocket on the route `pattern` (recorded
/// whether it is accepted or not).
pub(crate) fn route(pattern: &str) {
    #[cfg(feature = "tracing")]
    tracing::Span::current().record("route", pattern);
    let _ = pattern;
}

/// The upgrade is accepted: the connection has its id (and maybe a
/// subprotocol), and the 101 is on its way.
pub(crate) fn upgrade_accepted(id: u64, protocol: Option<&str>, version: http::Version) {
    // Over HTTP/2 the WebSocket is an extended CONNECT stream, opened by 200.
    let (http, status) = if version == http::Version::HTTP_2 {
        ("2", 200u16)
    } else {
        ("1.1", 101u16)
    };
    #[cfg(feature = "tracing")]
    {
        let span = tracing::Span::current();
        span.record("id", id);
        if let Some(p) = protocol {
            span.record("protocol", p);
        }
        tracing::info!(status, http, "upgrade accepted");
    }
    #[cfg(feature = "metrics")]
    if version == http::Version::HTTP_2 {
        hot().upgrades_h2.increment(1);
    } else {
        hot().upgrades_h1.increment(1);
    }
    let _ = (id, protocol, http, status);
}

/// A socket over the server's connection limit, closed at accept: counted
/// as refused with 503, in a span of its own.
pub(crate) fn refused_at_accept(remote: std::net::SocketAddr) {
    #[cfg(feature = "tracing")]
    let _in_span = connection_span(remote).entered();
    upgrade_refused(http::StatusCode::SERVICE_UNAVAILABLE);
    let _ = remote;
}

/// The upgrade was refused with `status`.
pub(crate) fn upgrade_refused(status: http::StatusCode) {
    #[cfg(feature = "tracing")]
    tracing::info!(status = status.as_u16(), "upgrade refused");
    #[cfg(feature = "metrics")]
    metrics::counter!("wsway_handshakes_refused_total", "status" => status.as_str().to_owned())
        .increment(1);
    let _ = status;
}

/// A TLS handshake failed or did not finish within the handshake timeout.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) fn tls_handshake_failed(why: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::info!(error = %why, "TLS handshake failed");
    #[cfg(feature = "metrics")]
    metrics::counter!("wsway_tls_handshake_failures_total").increment(1);
    let _ = why;
}

/// A certificate reload, by API or SIGHUP.
#[cfg(feature = "tls")]
/// `failed` says why it failed, if it did.
#[cfg(feature = "tls")]
pub(crate) fn tls_reloaded(failed: Option<&dyn std::fmt::Display>) {
    #[cfg(feature = "tracing")]
    match failed {
        None => tracing::info!("TLS certificate reloaded"),
        Some(e) => {
            tracing::error!(error = %e, "TLS certificate reload failed; the old one stays in use")
        }
    }
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "wsway_tls_reloads_total",
        "result" => if failed.is_none() { "ok" } else { "error" }
    )
    .increment(1);
    let _ = failed;
}

// ---- connections ---------------------------------------------------------

/// A WebSocket connection entered the registry.
pub(crate) fn connection_opened() {
    #[cfg(feature = "metrics")]
    {
        let hot = hot();
        hot.connections_open.increment(1.0);
        hot.connections_total.increment(1);
    }
}

/// A WebSocket connection left the registry.
pub(crate) fn connection_gone() {
    #[cfg(feature = "metrics")]
    hot().connections_open.decrement(1.0);
}

/// A moment as microseconds since the first one taken in this process, in
/// 4 bytes: what a connection keeps of when its ping left. It wraps every
/// 71 minutes, which only a round trip that long would notice (pings go
/// out only with an idle timeout, which ends a connection that silent).
#[cfg(feature = "metrics")]
#[derive(Clone, Copy)]
pub(crate) struct Stamp(u32);

#[cfg(feature = "metrics")]
impl Stamp {
    fn epoch() -> std::time::Instant {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        *EPOCH.get_or_init(std::time::Instant::now)
    }

    pub(crate) fn now() -> Self {
        // Truncated to 32 bits on purpose: differences wrap correctly.
        Stamp(Self::epoch().elapsed().as_micros() as u32)
    }

    /// Time since `self`.
    pub(crate) fn elapsed(self) -> Duration {
        Duration::from_micros(u64::from(Self::now().0.wrapping_sub(self.0)))
    }
}

/// The metrics every message or connection touches, registered once: the
/// facade's macros build the key (labels allocated) and look it up in the
/// recorder on every call, which per message or handshake costs more than
/// the count. Registered on first use, so the recorder must be installed
/// before the first connection.
#[cfg(feature = "metrics")]
struct Hot {
    received: metrics::Counter,
    received_bytes: metrics::Counter,
    sent: metrics::Counter,
    sent_bytes: metrics::Counter,
    backpressured: metrics::Counter,
    dropped: metrics::Counter,
    connections_open: metrics::Gauge,
    connections_total: metrics::Counter,
    upgrades_h1: metrics::Counter,
    upgrades_h2: metrics::Counter,
    /// `wsway_closes_total` by code and initiator, as they occur (a few
    /// kinds in practice; past [`CACHED_CLOSES`], looked up per close).
    closes: std::sync::Mutex<Vec<(u16, Initiator, metrics::Counter)>>,
}

/// How many kinds of close `Hot` keeps: a peer picks its close code, and
/// thousands of kinds would make the search cost more than the lookup.
#[cfg(feature = "metrics")]
const CACHED_CLOSES: usize = 32;

#[cfg(feature = "metrics")]
fn hot() -> &'static Hot {
    static HOT: std::sync::OnceLock<Hot> = std::sync::OnceLock::new();
    HOT.get_or_init(|| Hot {
        received: metrics::counter!("wsway_messages_received_total"),
        received_bytes: metrics::counter!("wsway_received_bytes_total"),
        sent: metrics::counter!("wsway_messages_sent_total"),
        sent_bytes: metrics::counter!("wsway_sent_bytes_total"),
        backpressured: metrics::counter!("wsway_sends_backpressured_total"),
        dropped: metrics::counter!("wsway_sends_dropped_total"),
        connections_open: metrics::gauge!("wsway_connections_open"),
        connections_total: metrics::counter!("wsway_connections_total"),
        upgrades_h1: metrics::counter!("wsway_upgrades_total", "http" => "1.1"),
        upgrades_h2: metrics::counter!("wsway_upgrades_total", "http" => "2"),
        closes: std::sync::Mutex::default(),
    })
}

/// A data message arrived (`len` payload bytes).
#[inline]
pub(crate) fn received(len: usize) {
    #[cfg(feature = "metrics")]
    {
        let hot = hot();
        hot.received.increment(1);
        hot.received_bytes.increment(len as u64);
    }
    crate::watch::received(1);
    let _ = len;
}

/// A batch of frames is handed to the codec to be written; its data
/// messages count as sent.
#[inline]
pub(crate) fn sending(batch: &std::collections::VecDeque<crate::protocol::Outgoing>) {
    #[cfg(feature = "metrics")]
    {
        use crate::protocol::Opcode;
        let (mut messages, mut bytes) = (0u64, 0u64);
        for m in batch {
            if matches!(m.opcode, Opcode::Text | Opcode::Binary) {
                messages += 1;
                bytes += m.len() as u64;
            }
        }
        let hot = hot();
        hot.sent.increment(messages);
        hot.sent_bytes.increment(bytes);
    }
    if crate::watch::counting() {
        use crate::protocol::Opcode;
        let data = batch
            .iter()
            .filter(|m| matches!(m.opcode, Opcode::Text | Opcode::Binary));
        crate::watch::sent(data.count() as u64);
    }
    let _ = batch;
}

/// A message was written straight to the socket by the task that sent it.
#[inline]
pub(crate) fn sent(msg: &crate::protocol::Outgoing) {
    #[cfg(feature = "metrics")]
    {
        let hot = hot();
        hot.sent.increment(1);
        hot.sent_bytes.increment(msg.len() as u64);
    }
    crate::watch::sent(1);
    let _ = msg;
}

/// A send was queued over the backpressure limit.
#[inline]
pub(crate) fn backpressured() {
    #[cfg(feature = "metrics")]
    hot().backpressured.increment(1);
}

/// A send was refused by a full queue: the message is not delivered.
#[inline]
pub(crate) fn dropped() {
    #[cfg(feature = "metrics")]
    hot().dropped.increment(1);
}

/// A keep-alive ping was answered after `rtt`.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn ping_answered(rtt: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("wsway_ping_rtt_seconds").record(rtt.as_secs_f64());
    let _ = rtt;
}

/// An authenticated connection carries no identity of the type the app's
/// user rooms take, so it joins no user room: a setup mistake (the
/// verifier returns another type), told once on stderr and each time
/// with `tracing`.
pub(crate) fn user_room_missed(expected: &'static str) {
    static TOLD: std::sync::Once = std::sync::Once::new();
    TOLD.call_once(|| {
        eprintln!(
            "wsway: an authenticated connection carries no `{expected}`, the identity \
             UserRooms::new takes, so it joined no user room: make the verifier return \
             that type, or take the type it returns"
        );
    });
    #[cfg(feature = "tracing")]
    tracing::warn!(expected, "no identity for the user rooms");
}

/// A connection's token was renewed in place.
pub(crate) fn token_renewed() {
    #[cfg(feature = "tracing")]
    tracing::info!("token renewed");
}

/// A client's new token was refused (the connection keeps its old one
/// until it expires).
pub(crate) fn refresh_refused() {
    #[cfg(feature = "tracing")]
    tracing::info!("token refresh refused");
}

/// A connection's token expired without a valid new one: it closes, 4001.
pub(crate) fn token_expired() {
    #[cfg(feature = "tracing")]
    tracing::info!("token expired");
}

/// An error on the connection (reported to the handler's `error` too).
pub(crate) fn error(err: &crate::Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(error = %err, kind = ?err.kind(), "connection error");
    let _ = err;
}

/// The connection ended: `code` is what `close` was given.
pub(crate) fn closed(code: CloseCode, by: Initiator) {
    #[cfg(feature = "tracing")]
    tracing::info!(code = code.0, by = by.as_str(), "closed");
    #[cfg(feature = "metrics")]
    {
        let mut closes = hot().closes.lock().unwrap_or_else(|e| e.into_inner());
        match closes.iter().find(|(c, b, _)| (*c, *b) == (code.0, by)) {
            Some((_, _, counter)) => counter.increment(1),
            None => {
                let counter = metrics::counter!(
                    "wsway_closes_total",
                    "code" => code.0.to_string(),
                    "by" => by.as_str()
                );
                counter.increment(1);
                if closes.len() < CACHED_CLOSES {
                    closes.push((code.0, by, counter));
                }
            }
        }
    }
    crate::watch::closed(code.0);
    let _ = (code, by);
}

// ---- shutdown --------------------------------------------------------------

/// The drain reached this connection: its close is on its way.
pub(crate) fn drain_started(code: CloseCode) {
    #[cfg(feature = "tracing")]
    tracing::info!(code = code.0, "draining");
    #[cfg(feature = "metrics")]
    metrics::gauge!("wsway_drain_connections").increment(1.0);
    let _ = code;
}

/// A draining connection has ended.
pub(crate) fn drain_ended() {
    #[cfg(feature = "metrics")]
    metrics::gauge!("wsway_drain_connections").decrement(1.0);
}

/// The shutdown deadline passed with `n` connections still open: they are
/// cut.
pub(crate) fn terminated_at_deadline(n: usize) {
    #[cfg(feature = "tracing")]
    tracing::warn!(connections = n, "shutdown deadline passed; terminating");
    #[cfg(feature = "metrics")]
    metrics::counter!("wsway_drain_terminated_total").increment(n as u64);
    let _ = n;
}

// ---- topics ------------------------------------------------------------------

/// A subscriber joined a topic on this node (`first`: the topic is new).
pub(crate) fn subscribed(first: bool) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("wsway_subscribers").increment(1.0);
        if first {
            metrics::gauge!("wsway_topics").increment(1.0);
        }
    }
    let _ = first;
}

/// A subscriber left a topic on this node (`last`: the topic is gone).
pub(crate) fn unsubscribed(last: bool) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("wsway_subscribers").decrement(1.0);
        if last {
            metrics::gauge!("wsway_topics").decrement(1.0);
        }
    }
    let _ = last;
}

/// The send queues, sampled: bytes waiting in all of them, and in the
/// fullest.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn queues(total: usize, max: usize) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("wsway_send_queue_bytes").set(total as f64);
        metrics::gauge!("wsway_send_queue_max_bytes").set(max as f64);
    }
    let _ = (total, max);
}
