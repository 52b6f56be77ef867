//! Each node's report of its topics ([`wsway::NodeReport`]), kept in Redis
//! so that any node answers for all of them.
//!
//! One hash, `P{~nodes}:reports` (one slot on a cluster): field
//! `N` (a node's id in hex) → `<deadline>\n<report as JSON>`, the
//! deadline in ms on Redis's clock, three heartbeats after the write.
//! Every node writes its own each heartbeat, and clears the fields whose
//! deadline has passed (a crashed node's); a node that stops deletes its
//! own. Readers take only the fields still within their deadline.
//!
//! While an admin page watches a node, that node sets `P{~nodes}:watched` (a key
//! that expires three seconds after its last write) each second, and every
//! node that finds it when writing its report counts what the page shows
//! and reports every second too, until it expires.

use std::sync::Arc;

use std::sync::atomic::Ordering;
use std::time::Duration;

use wsway::{BackplaneHealth, Node, NodeReport, PresenceError};

use crate::backplane::Inner;
use crate::conn::Conn;
use crate::wait::within;

/// Writes this node's report and clears those past their deadline; marks
/// the nodes as watched when this one is; answers whether they are.
/// KEYS: the hash, the watched key. ARGV: node, report, TTL (ms), `1`
/// when a page watches this node.
const WRITE: &str = r"
if ARGV[4] == '1' then
  redis.call('SET', KEYS[2], '1', 'PX', 3000)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], (now + tonumber(ARGV[3])) .. '\n' .. ARGV[2])
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  if (tonumber(string.match(h[i + 1], '^(%d+)\n')) or 0) < now then
    redis.call('HDEL', KEYS[1], h[i])
  end
end
return redis.call('EXISTS', KEYS[2])
";

/// The reports within their deadline, as `node, report` pairs. KEYS: the
/// hash.
const READ: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  local deadline, report = string.match(h[i + 1], '^(%d+)\n(.*)$')
  if deadline and tonumber(deadline) >= now then
    out[#out + 1] = h[i]
    out[#out + 1] = report
  end
end
return out
";

/// The hash's name under the prefix. Its hash tag puts it in one slot
/// with the watched key, so one script writes both on a cluster.
pub(crate) fn key(prefix: &str) -> String {
    format!("{prefix}{{~nodes}}:reports")
}

/// The key that says a page watches some node.
fn watched_key(prefix: &str) -> String {
    format!("{prefix}{{~nodes}}:watched")
}

/// How often a watched node reports.
const WATCHED_EVERY: Duration = Duration::from_secs(1);

/// Writes this node's report every heartbeat (every second while a page
/// watches any node) until the backplane stops. A write that fails is
/// simply made at the next beat.
pub(crate) async fn run(inner: Arc<Inner>, node: Node) {
    let beat = inner.config.presence_heartbeat;
    let me = inner.keys.node();
    let keys = [key(&inner.config.prefix), watched_key(&inner.config.prefix)];
    let mut watched = false;
    while !inner.is_stopping() && node.is_alive() {
        let here = node.is_watched_here();
        let every = if here || watched {
            WATCHED_EVERY.min(beat)
        } else {
            beat
        };
        if let Ok(mut conn) = inner.query_connection() {
            let report = serde_json::to_string(&own(&inner, &node)).unwrap_or_default();
            let mut write = redis::cmd("EVAL");
            (write.arg(WRITE).arg(2).arg(&keys[..]).arg(me).arg(report))
                .arg(super::history::millis(every * 3))
                .arg(if here { "1" } else { "0" });
            let limit = inner.config.response_timeout;
            if let Some(Ok(seen)) = within(&node, limit, write.query_async::<i64>(&mut conn)).await
            {
                watched = seen == 1;
                node.set_watched_elsewhere(watched);
            }
        }
        let wake = inner.report_now.listen();
        let stop = inner.stop.listen();
        if inner.is_stopping() {
            break;
        }
        let every = if node.is_watched_here() || watched {
            WATCHED_EVERY.min(beat)
        } else {
            beat
        };
        futures_lite::future::or(
            node.runtime().sleep(every),
            futures_lite::future::or(stop, wake),
        )
        .await;
    }
}

/// This node's report as it is now, with its link to Redis.
pub(crate) fn own(inner: &Inner, node: &Node) -> NodeReport {
    node.report(inner.keys.node()).with_backplane(health(inner))
}

/// This node's link to Redis.
pub(crate) fn health(inner: &Inner) -> BackplaneHealth {
    BackplaneHealth::new(
        inner.subscribed.load(Ordering::Acquire),
        inner.outbound.queued_bytes() as u64,
        inner.outbound.dropped(),
    )
}

/// Adds the goodbye of a node that stops: its report is gone at once.
pub(crate) fn leave(pipe: &mut redis::Pipeline, inner: &Inner) {
    pipe.hdel(key(&inner.config.prefix), inner.keys.node())
        .ignore();
}

/// Every live node's report, `own` (this node's, as it is now) in place
/// of what this node last wrote.
pub(crate) async fn read(
    mut conn: Conn,
    prefix: &str,
    me: &str,
    own: NodeReport,
) -> Result<Vec<NodeReport>, PresenceError> {
    let mut query = redis::cmd("EVAL");
    query.arg(READ).arg(1).arg(key(prefix));
    let flat: Vec<Vec<u8>> = (query.query_async(&mut conn).await)
        .map_err(|e| PresenceError::new(format!("Redis did not answer the query: {e}")))?;
    let mut reports = vec![own];
    for pair in flat.chunks_exact(2) {
        if pair[0] == me.as_bytes() {
            continue;
        }
        // What another program wrote under our prefix may be anything:
        // what does not parse is skipped, never trusted.
        if let (Ok(node), Ok(report)) = (
            std::str::from_utf8(&pair[0]),
            serde_json::from_slice::<NodeReport>(&pair[1]),
        ) {
            reports.push(report.with_node(node));
        }
    }
    Ok(reports)
}
