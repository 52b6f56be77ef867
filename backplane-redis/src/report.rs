//! Each node's report of its topics ([`wsway::NodeReport`]), kept in Redis
//! so that any node answers for all of them.
//!
//! One hash, `P reports` (one key, so it works alike on a cluster): field
//! `N` (a node's id in hex) → `<deadline>\n<report as JSON>`, the
//! deadline in ms on Redis's clock, three heartbeats after the write.
//! Every node writes its own each heartbeat, and clears the fields whose
//! deadline has passed (a crashed node's); a node that stops deletes its
//! own. Readers take only the fields still within their deadline.

use std::sync::Arc;

use wsway::{Node, NodeReport, PresenceError};

use crate::backplane::Inner;
use crate::conn::Conn;
use crate::wait::within;

/// Writes this node's report and clears those past their deadline.
/// KEYS: the hash. ARGV: node, report, TTL (ms).
const WRITE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], (now + tonumber(ARGV[3])) .. '\n' .. ARGV[2])
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  if (tonumber(string.match(h[i + 1], '^(%d+)\n')) or 0) < now then
    redis.call('HDEL', KEYS[1], h[i])
  end
end
return 0
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

/// The hash's name under the prefix.
pub(crate) fn key(prefix: &str) -> String {
    format!("{prefix}reports")
}

/// Writes this node's report every heartbeat until the backplane stops.
/// A write that fails is simply made at the next beat.
pub(crate) async fn run(inner: Arc<Inner>, node: Node) {
    let beat = inner.config.presence_heartbeat;
    let ttl = super::history::millis(beat * 3);
    let me = inner.keys.node();
    let key = key(&inner.config.prefix);
    while !inner.is_stopping() && node.is_alive() {
        if let Ok(mut conn) = inner.query_connection() {
            let report = serde_json::to_string(&node.report(me)).unwrap_or_default();
            let mut write = redis::cmd("EVAL");
            write
                .arg(WRITE)
                .arg(1)
                .arg(&key)
                .arg(me)
                .arg(report)
                .arg(ttl);
            let limit = inner.config.response_timeout;
            let _ = within(&node, limit, write.query_async::<redis::Value>(&mut conn)).await;
        }
        let stop = inner.stop.listen();
        if inner.is_stopping() {
            break;
        }
        futures_lite::future::or(node.runtime().sleep(beat), stop).await;
    }
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
