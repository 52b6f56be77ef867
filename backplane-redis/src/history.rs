//! Topic history in Redis: a stream per topic, written by the same script
//! that publishes, so a message is in history if and only if it was
//! published.
//!
//! Layout, under the app's prefix `P`:
//!
//! - `P history:TOPIC` — a stream, entry id `0-OFFSET`, fields `k` (`t`
//!   text or `b` binary), `t` (Redis time in ms) and `d` (the payload);
//!   capped at the retention's message count, and gone once its newest
//!   entry is older than the retention's age;
//! - `P history-meta:TOPIC` — a hash: `e` the epoch, `s` the last offset
//!   and, on a cluster, `r` the replication id of the primary that wrote
//!   it last. It outlives the stream by [`META_TTL`], so a client that was away
//!   while nothing was published hears that it missed nothing.
//!
//! An epoch is made (by whichever script finds none) when the topic has
//! no meta: the first publish, or Redis restarted empty, or (on a
//! cluster) a replica promoted since the last write, which may lack what
//! the old primary wrote after it; a new epoch starts a new stream. Positions from
//! before then are in another epoch, and their clients are told the state
//! was lost.

use std::time::Duration;

use redis::Value;
use wsway::{HistoryError, Position, Retention, StoredHistory, StoredMessage};

use crate::frame;

/// How long a topic's epoch and last offset outlive its last publish.
pub(crate) const META_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The start of every script: the topic's epoch, made (with a new, empty
/// stream) when it has none, and the meta's TTL renewed. KEYS: meta,
/// stream. ARGV: new epoch, meta TTL (ms).
macro_rules! epoch {
    () => {
        r"
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 's', 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"
    };
}

/// The start of every script on a cluster: [`epoch!`], after ending the
/// epoch when its meta was last written before this server, a replica
/// then, was promoted. Replication is asynchronous: what the old primary
/// wrote after that may be missing here, and numbering on from the offset
/// found would hand out positions some subscribers already hold for other
/// messages. Which primary last wrote is kept in the meta as `r`, its
/// replication id; a promoted replica has a new one and keeps the old as
/// `master_replid2`. A slot moved by a resharding keeps its keys whole:
/// their `r` is another shard's, and the epoch goes on.
macro_rules! cluster_epoch {
    () => {
        concat!(
            r"
local repl = redis.call('INFO', 'replication')
local id = string.match(repl, 'master_replid:(%w+)')
local by = redis.call('HGET', KEYS[1], 'r')
if by and by == string.match(repl, 'master_replid2:(%w+)') then
  redis.call('DEL', KEYS[1])
end
",
            epoch!(),
            r"
if by ~= id then
  redis.call('HSET', KEYS[1], 'r', id)
end
"
        )
    };
}

/// The publish script's body after the epoch's, publishing with `$publish`.
macro_rules! publish_body {
    ($publish:literal) => {
        concat!(
            r"
local s = redis.call('HINCRBY', KEYS[1], 's', 1)
local t = redis.call('TIME')
local ms = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[7], '0-' .. s,
  'k', ARGV[6], 't', ms, 'd', ARGV[5], 'h', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
redis.call('",
            $publish,
            r"', ARGV[3], ARGV[4] .. e .. ':' .. s .. '\n' .. ARGV[5])
return {e, s}
"
        )
    };
}

/// Numbers, keeps and publishes one message, atomically, and answers its
/// epoch and offset. ARGV after the epoch's: channel, frame header,
/// payload, kind, max messages, max age (ms). Every node stores this
/// script's text in Redis ([`SCRIPT_KEY`]) for emitters in other
/// languages.
pub(crate) const PUBLISH: &str = concat!(epoch!(), publish_body!("PUBLISH"));

/// [`PUBLISH`] on a cluster: to the topic's shard channel, in its slot.
pub(crate) const SPUBLISH: &str = concat!(cluster_epoch!(), publish_body!("SPUBLISH"));

/// The mark script's body after the epoch's.
macro_rules! mark_body {
    () => {
        r"
return {e, redis.call('HGET', KEYS[1], 's')}
"
    };
}

/// The epoch and the last offset.
pub(crate) const MARK: &str = concat!(epoch!(), mark_body!());

/// [`MARK`] on a cluster.
pub(crate) const CLUSTER_MARK: &str = concat!(cluster_epoch!(), mark_body!());

/// The fetch script's body after the epoch's.
macro_rules! fetch_body {
    () => {
        r"
local s = redis.call('HGET', KEYS[1], 's')
local t = redis.call('TIME')
local ms = t[1] * 1000 + math.floor(t[2] / 1000)
local from = '0-' .. (tonumber(ARGV[3]) + 1)
return {e, s, ms, redis.call('XRANGE', KEYS[2], from, '+')}
"
    };
}

/// The epoch, the last offset, Redis's time and the entries after an
/// offset. ARGV after the epoch's: the offset.
pub(crate) const FETCH: &str = concat!(epoch!(), fetch_body!());

/// [`FETCH`] on a cluster.
pub(crate) const CLUSTER_FETCH: &str = concat!(cluster_epoch!(), fetch_body!());

/// A topic's stream and meta keys.
pub(crate) struct Keys {
    pub(crate) meta: String,
    pub(crate) stream: String,
}

/// A fresh epoch, offered to the scripts in case the topic has none: random,
/// so that a Redis restarted empty never hands out one a client knows.
pub(crate) fn new_epoch() -> String {
    format!("{:x}", fastrand::u64(1..))
}

/// The publish script's call for one message; its reply, the message's
/// position, is read with [`position`].
pub(crate) fn publish(
    script: Script<'_>,
    keys: &Keys,
    channel: &str,
    frame: &[u8],
    retention: Retention,
) -> redis::Cmd {
    let (header, payload) = frame.split_at(frame::NUMBERED_HEADER.min(frame.len()));
    let kind = if frame::is_text(frame) { "t" } else { "b" };
    let mut cmd = call(script, keys);
    cmd.arg(channel)
        .arg(header)
        .arg(payload)
        .arg(kind)
        .arg(retention.message_limit())
        .arg(millis(retention.age_limit()));
    cmd
}

/// How a call names its script: by its hash where the server has it
/// loaded (one server: loaded on connecting), whole on a cluster (a
/// replica promoted after a failover has an empty script cache).
#[derive(Clone, Copy)]
pub(crate) enum Script<'a> {
    Sha(&'a str),
    Text(&'static str),
}

/// A script's call with its keys and the epoch's arguments.
fn call(script: Script<'_>, keys: &Keys) -> redis::Cmd {
    let mut cmd = match script {
        Script::Sha(sha) => redis::cmd("EVALSHA").arg(sha).to_owned(),
        Script::Text(text) => redis::cmd("EVAL").arg(text).to_owned(),
    };
    cmd.arg(2)
        .arg(&keys.meta)
        .arg(&keys.stream)
        .arg(new_epoch())
        .arg(millis(META_TTL));
    cmd
}

/// The mark script's call for a topic (its reply is read with
/// [`position`]).
pub(crate) fn mark(script: Script<'_>, keys: &Keys) -> redis::Cmd {
    call(script, keys)
}

/// The key (after the app's prefix) under which every node keeps the text
/// of the publish script it runs ([`PUBLISH`], or [`SPUBLISH`] on a
/// cluster), for emitters written in other languages: they read the
/// nodes' own script, never a copy that could drift from it.
pub(crate) const SCRIPT_KEY: &str = "publish-script";

/// Reads the mark (or publish) script's reply.
pub(crate) fn position(reply: Value) -> Option<Position> {
    let (epoch, last): (String, String) = redis::from_redis_value(reply).ok()?;
    Some(Position {
        epoch: u64::from_str_radix(&epoch, 16).ok()?,
        offset: last.parse().ok()?,
    })
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Reads the fetch script's answer, leaving out what outlived `max_age`.
/// A message this node published leaving a connection out (its header,
/// kept as `h`, says so) leaves it out again when delivered from here.
pub(crate) fn stored(
    reply: Value,
    max_age: Duration,
    node: &frame::NodeId,
) -> Result<StoredHistory, HistoryError> {
    let bad = || HistoryError::new("Redis answered a history fetch in an unexpected shape");
    let Value::Array(mut parts) = reply else {
        return Err(bad());
    };
    if parts.len() != 4 {
        return Err(bad());
    }
    let entries = parts.pop().ok_or_else(bad)?;
    let now: u64 = redis::from_redis_value(parts.pop().ok_or_else(bad)?).map_err(|_| bad())?;
    let last: String = redis::from_redis_value(parts.pop().ok_or_else(bad)?).map_err(|_| bad())?;
    let epoch: String = redis::from_redis_value(parts.pop().ok_or_else(bad)?).map_err(|_| bad())?;
    let epoch = u64::from_str_radix(&epoch, 16).map_err(|_| bad())?;
    let last = last.parse().map_err(|_| bad())?;
    let Value::Array(entries) = entries else {
        return Err(bad());
    };
    let mut messages = Vec::with_capacity(entries.len());
    for entry in entries {
        let (id, fields): (String, Vec<Vec<u8>>) =
            redis::from_redis_value(entry).map_err(|_| bad())?;
        let offset = id
            .strip_prefix("0-")
            .and_then(|o| o.parse().ok())
            .ok_or_else(bad)?;
        let field = |name: &[u8]| {
            fields
                .chunks(2)
                .find(|kv| kv.len() == 2 && kv[0] == name)
                .map(|kv| kv[1].as_slice())
        };
        let at: u64 = field(b"t")
            .and_then(|t| std::str::from_utf8(t).ok()?.parse().ok())
            .ok_or_else(bad)?;
        let age = Duration::from_millis(now.saturating_sub(at));
        if age > max_age {
            continue;
        }
        let text = field(b"k") == Some(b"t");
        let message = frame::message(text, field(b"d").ok_or_else(bad)?).map_err(|_| bad())?;
        let except = field(b"h").and_then(|h| frame::except_for(h, node));
        messages.push(StoredMessage {
            offset,
            age,
            message,
            except,
        });
    }
    Ok(StoredHistory {
        epoch,
        last,
        messages,
    })
}
