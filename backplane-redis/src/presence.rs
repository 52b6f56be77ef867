//! Presence across nodes, kept in Redis.
//!
//! Layout, under the app's prefix `P` (keys, not channels: the two never
//! collide), with `N` a node's id in hex:
//!
//! - `P presence:TOPIC` — hash, field `N:CONN` → the member's JSON metadata;
//! - `P count:TOPIC` — hash, field `N` → that node's member count;
//! - `P node:N` — the node's liveness key, set with a TTL of three
//!   heartbeats and refreshed every heartbeat;
//! - `P nodes` and `P node-topics:N` — which nodes there are and where
//!   each has members, so the sweep can clear a dead node's entries.
//!
//! On a Redis Cluster a topic's presence lives in the topic's own slot (a
//! script may only touch one slot), so liveness is kept per topic too:
//!
//! - `P{=TOPIC}:presence` and `P{=TOPIC}:count` — as above;
//! - `P{=TOPIC}:alive` — hash, field `N` → the time (the primary's clock,
//!   in ms) until which node `N` counts as alive there.
//!
//! Each heartbeat renews this node's deadline in every topic where it has
//! members, clears the entries of nodes whose deadline has passed, and
//! sets the topic's keys to expire with the deadline (a topic every node
//! left behind disappears by itself). This is Centrifugo's per-channel
//! presence: a heartbeat costs one script per topic with local members.
//!
//! Readers count only members whose node key exists, so a crashed node's
//! members vanish within three heartbeats even before any sweep. A node
//! answers for itself from its own table, not from Redis: its queries see
//! its own changes at once (a member tracked in `open` is listed there, one
//! gone is not listed in `close`), whether or not they are written yet. Each node
//! writes only its own fields, from its local table, so every write is
//! idempotent: a failed one is simply made again, and when the node's key
//! was gone (Redis restarted empty, or paused past the TTL) the node writes
//! everything again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::value::RawValue;
use wsway::{Member, Node, PresenceError};

use crate::conn::Layout;

/// Members of a topic whose node is alive.
const MEMBERS: &str = r"
local alive, out = {}, {}
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  local node = string.match(h[i], '^([^:]+):')
  if node then
    if alive[node] == nil then
      alive[node] = redis.call('EXISTS', ARGV[1] .. 'node:' .. node) == 1
    end
    if alive[node] then
      out[#out + 1] = h[i]
      out[#out + 1] = h[i + 1]
    end
  end
end
return out
";

/// The member count of a topic over the other nodes (ARGV[2] is this
/// one) that are alive.
const COUNT: &str = r"
local total = 0
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  if h[i] ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. 'node:' .. h[i]) == 1 then
    total = total + (tonumber(h[i + 1]) or 0)
  end
end
return total
";

/// Clears the entries of every node whose liveness key has expired. Run
/// by every node at each heartbeat; atomic, so it never races a node that
/// is writing itself back.
const SWEEP: &str = r"
local p = ARGV[1]
for _, n in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do
  if redis.call('EXISTS', p .. 'node:' .. n) == 0 then
    local topics = p .. 'node-topics:' .. n
    for _, t in ipairs(redis.call('SMEMBERS', topics)) do
      redis.call('HDEL', p .. 'count:' .. t, n)
      local members = p .. 'presence:' .. t
      for _, f in ipairs(redis.call('HKEYS', members)) do
        if string.sub(f, 1, #n + 1) == n .. ':' then
          redis.call('HDEL', members, f)
        end
      end
    end
    redis.call('DEL', topics)
    redis.call('SREM', p .. 'nodes', n)
  end
end
return 0
";

/// On a cluster: members of a topic whose node's deadline there has not
/// passed. KEYS: presence, alive.
const CLUSTER_MEMBERS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive, out = {}, {}
local a = redis.call('HGETALL', KEYS[2])
for i = 1, #a, 2 do
  alive[a[i]] = (tonumber(a[i + 1]) or 0) >= now
end
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  local node = string.match(h[i], '^([^:]+):')
  if node and alive[node] then
    out[#out + 1] = h[i]
    out[#out + 1] = h[i + 1]
  end
end
return out
";

/// On a cluster: the member count of a topic over the other nodes (ARGV[1]
/// is this one) whose deadline there has not passed. KEYS: count, alive.
const CLUSTER_COUNT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total = 0
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  if h[i] ~= ARGV[1] then
    local deadline = tonumber(redis.call('HGET', KEYS[2], h[i])) or 0
    if deadline >= now then
      total = total + (tonumber(h[i + 1]) or 0)
    end
  end
end
return total
";

/// On a cluster, this node's heartbeat in one topic: clears the entries of
/// nodes whose deadline passed, renews this node's (ARGV[1]) by ARGV[2] ms
/// and lets the topic's keys expire then. Returns 1 if this node's deadline
/// was still there (0: its entries may be gone, and are to be written
/// again). KEYS: presence, count, alive.
const CLUSTER_BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local a = redis.call('HGETALL', KEYS[3])
local had = 0
for i = 1, #a, 2 do
  local n = a[i]
  if (tonumber(a[i + 1]) or 0) < now then
    redis.call('HDEL', KEYS[3], n)
    redis.call('HDEL', KEYS[2], n)
    for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
      if string.sub(f, 1, #n + 1) == n .. ':' then
        redis.call('HDEL', KEYS[1], f)
      end
    end
  elseif n == ARGV[1] then
    had = 1
  end
end
redis.call('HSET', KEYS[3], ARGV[1], now + ttl)
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return had
";

/// Redis key names for one app's layout and this node.
pub(crate) struct Keys {
    layout: Layout,
    /// This node's id in hex.
    node: String,
    /// How long entries outlive the node's last heartbeat.
    ttl: Duration,
}

impl Keys {
    pub(crate) fn new(layout: Layout, node_id: &[u8], ttl: Duration) -> Self {
        let node = node_id.iter().map(|b| format!("{b:02x}")).collect();
        Keys { layout, node, ttl }
    }

    fn cluster(&self) -> bool {
        self.layout.cluster
    }

    fn prefix(&self) -> &str {
        &self.layout.prefix
    }

    fn members(&self, topic: &str) -> String {
        self.layout.key(topic, "presence")
    }

    fn count(&self, topic: &str) -> String {
        self.layout.key(topic, "count")
    }

    /// A topic's deadlines, on a cluster.
    fn deadlines(&self, topic: &str) -> String {
        self.layout.key(topic, "alive")
    }

    /// This node's id in hex, as member ids and reports name it.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// A member's id in presence lists (its hash field): `NODE:CONN`.
    pub(crate) fn member_id(&self, conn: u64) -> String {
        self.field(conn)
    }

    fn field(&self, member: u64) -> String {
        format!("{}:{member}", self.node)
    }

    fn alive(&self) -> String {
        format!("{}node:{}", self.prefix(), self.node)
    }

    fn nodes(&self) -> String {
        format!("{}nodes", self.prefix())
    }

    fn topics(&self) -> String {
        format!("{}node-topics:{}", self.prefix(), self.node)
    }
}

/// This node's presence changes not yet written to Redis.
#[derive(Default)]
pub(crate) struct Pending {
    changes: Mutex<HashSet<(Arc<str>, u64)>>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashSet<(Arc<str>, u64)>> {
        // Only plain set updates run under the lock.
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn mark(&self, topic: &str, member: u64) {
        self.lock().insert((topic.into(), member));
    }

    /// Everything this node tracks is to be written again.
    pub(crate) fn mark_all(&self, node: &Node) {
        self.lock().extend(node.tracked());
    }

    /// Everything this node tracks in `topics` is to be written again.
    pub(crate) fn mark_topics(&self, node: &Node, topics: &[&Arc<str>]) {
        let tracked = node
            .tracked()
            .into_iter()
            .filter(|(t, _)| topics.contains(&t));
        self.lock().extend(tracked);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub(crate) fn take(&self) -> Vec<(Arc<str>, u64)> {
        self.lock().drain().collect()
    }

    /// A write that failed is made again later: it is idempotent.
    pub(crate) fn restore(&self, changes: Vec<(Arc<str>, u64)>) {
        self.lock().extend(changes);
    }
}

/// Adds the writes that bring Redis to this node's current state for
/// `changes`: each member's field set or deleted, each topic's count.
pub(crate) fn write(
    pipe: &mut redis::Pipeline,
    keys: &Keys,
    node: &Node,
    changes: &[(Arc<str>, u64)],
) {
    let mut topics: HashSet<&Arc<str>> = HashSet::new();
    for (topic, member) in changes {
        match node.member_meta(topic, *member) {
            Some(meta) => pipe
                .hset(keys.members(topic), keys.field(*member), meta.get())
                .ignore(),
            None => pipe.hdel(keys.members(topic), keys.field(*member)).ignore(),
        };
        topics.insert(topic);
    }
    for topic in topics {
        let count = node.member_count(topic);
        match (count > 0, keys.cluster()) {
            (true, false) => {
                pipe.hset(keys.count(topic), &keys.node, count).ignore();
                pipe.sadd(keys.topics(), &**topic).ignore();
            }
            (false, false) => {
                pipe.hdel(keys.count(topic), &keys.node).ignore();
                pipe.srem(keys.topics(), &**topic).ignore();
            }
            (true, true) => {
                pipe.hset(keys.count(topic), &keys.node, count).ignore();
                // Sets the deadline and the keys' expiry (new keys have none).
                beat_topic(pipe, keys, topic).ignore();
            }
            (false, true) => {
                pipe.hdel(keys.count(topic), &keys.node).ignore();
                pipe.hdel(keys.deadlines(topic), &keys.node).ignore();
            }
        }
    }
}

/// Adds this node's heartbeat in `topic` on a cluster (see
/// [`CLUSTER_BEAT`]); its reply is 0 when the node's entries there may be
/// gone.
pub(crate) fn beat_topic<'a>(
    pipe: &'a mut redis::Pipeline,
    keys: &Keys,
    topic: &str,
) -> &'a mut redis::Pipeline {
    let ms = keys.ttl.as_millis().clamp(1, i64::MAX as u128) as i64;
    pipe.cmd("EVAL")
        .arg(CLUSTER_BEAT)
        .arg(3)
        .arg(keys.members(topic))
        .arg(keys.count(topic))
        .arg(keys.deadlines(topic))
        .arg(&keys.node)
        .arg(ms)
}

/// Adds the heartbeat: extend this node's liveness key (the reply, the one
/// the pipeline returns, is 0 when the key had gone: everything must be
/// written again), set it in case it had, register the node, and sweep
/// the dead ones. Plain commands that every Redis since 2.6 knows.
pub(crate) fn heartbeat(pipe: &mut redis::Pipeline, keys: &Keys) {
    let ms = keys.ttl.as_millis().clamp(1, i64::MAX as u128) as i64;
    pipe.pexpire(keys.alive(), ms);
    pipe.pset_ex(keys.alive(), 1, ms as u64).ignore();
    pipe.sadd(keys.nodes(), &keys.node).ignore();
    pipe.cmd("EVAL")
        .arg(SWEEP)
        .arg(0)
        .arg(keys.prefix())
        .ignore();
}

/// Adds the goodbye of a node that stops: its members are gone at once.
pub(crate) fn leave(pipe: &mut redis::Pipeline, keys: &Keys) {
    pipe.del(keys.alive()).ignore();
    pipe.cmd("EVAL")
        .arg(SWEEP)
        .arg(0)
        .arg(keys.prefix())
        .ignore();
}

/// The members of `topic` on every live node: the other nodes' from
/// Redis, this node's (`local`, with their connection ids) as they are now.
pub(crate) async fn members(
    mut conn: crate::conn::Conn,
    keys: &Keys,
    topic: &str,
    local: Vec<Member>,
) -> Result<Vec<Member>, PresenceError> {
    let mut query = redis::cmd("EVAL");
    match keys.cluster() {
        false => query
            .arg(MEMBERS)
            .arg(1)
            .arg(keys.members(topic))
            .arg(keys.prefix()),
        true => query
            .arg(CLUSTER_MEMBERS)
            .arg(2)
            .arg(keys.members(topic))
            .arg(keys.deadlines(topic)),
    };
    let flat: Vec<Vec<u8>> = query.query_async(&mut conn).await.map_err(unavailable)?;
    let own = format!("{}:", keys.node);
    let mut members = Vec::with_capacity(flat.len() / 2 + local.len());
    for pair in flat.chunks_exact(2) {
        if pair[0].starts_with(own.as_bytes()) {
            continue;
        }
        // Fields and values another program wrote under our prefix may be
        // anything: what is not ours is skipped, never trusted.
        let (Ok(id), Ok(meta)) = (
            std::str::from_utf8(&pair[0]),
            String::from_utf8(pair[1].clone()),
        ) else {
            continue;
        };
        if let Ok(meta) = RawValue::from_string(meta) {
            members.push(Member::new(id, meta));
        }
    }
    for member in local {
        if let Ok(meta) = RawValue::from_string(member.meta_json().to_owned()) {
            let conn = member.id().parse().unwrap_or_default();
            members.push(Member::new(keys.member_id(conn), meta));
        }
    }
    members.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(members)
}

/// How many members `topic` has on every live node: the other nodes'
/// counts from Redis, and this node's `local` count as it is now.
pub(crate) async fn count(
    mut conn: crate::conn::Conn,
    keys: &Keys,
    topic: &str,
    local: usize,
) -> Result<usize, PresenceError> {
    let mut query = redis::cmd("EVAL");
    match keys.cluster() {
        false => query
            .arg(COUNT)
            .arg(1)
            .arg(keys.count(topic))
            .arg(keys.prefix())
            .arg(&keys.node),
        true => query
            .arg(CLUSTER_COUNT)
            .arg(2)
            .arg(keys.count(topic))
            .arg(keys.deadlines(topic))
            .arg(&keys.node),
    };
    let n: i64 = query.query_async(&mut conn).await.map_err(unavailable)?;
    Ok(n.max(0) as usize + local)
}

fn unavailable(e: redis::RedisError) -> PresenceError {
    PresenceError::new(format!("Redis did not answer the query: {e}"))
}
