//! The two ways to reach Redis: one server (or a failover address in front
//! of one), or a Redis Cluster; and a command connection to either.
//!
//! On a cluster every key and channel of a topic carries the topic as its
//! hash tag (see [`Layout`]), so whatever a topic needs (its shard
//! channel, its history, the script that numbers, keeps and publishes)
//! lives in one slot, on one primary.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::config::RedisBuilder;
use crate::history;

/// Where the backplane's Redis is.
// One per backplane: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Target {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

impl Target {
    pub(crate) fn open(config: &RedisBuilder) -> redis::RedisResult<Target> {
        match &config.cluster {
            None => redis::Client::open(config.url.as_str()).map(Target::Single),
            Some(seeds) => redis::cluster::ClusterClientBuilder::new(seeds.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .build()
                .map(Target::Cluster),
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// Opens a command connection and checks that Redis answers.
    pub(crate) async fn connect(&self, config: &RedisBuilder) -> redis::RedisResult<Conn> {
        // Boxed: connecting is large (a cluster's most), and the future
        // of `Redis::connect` that holds it often lives on a thread's stack.
        match self {
            Target::Single(client) => Box::pin(connect_single(client, config)).await,
            Target::Cluster(client) => Box::pin(connect_cluster(client, config)).await,
        }
    }
}

async fn connect_single(client: &redis::Client, config: &RedisBuilder) -> redis::RedisResult<Conn> {
    let settings = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&settings)
        .await?;
    // Answers like PING, and lets the pipelines call the history scripts
    // by their hash.
    for script in [history::PUBLISH, history::MARK] {
        redis::Script::new(script)
            .prepare_invoke()
            .load_async(&mut conn)
            .await?;
    }
    keep_script(&mut conn, config, history::PUBLISH).await?;
    Ok(Conn::Single(conn))
}

async fn connect_cluster(
    client: &redis::cluster::ClusterClient,
    config: &RedisBuilder,
) -> redis::RedisResult<Conn> {
    let mut conn = client.get_async_connection().await?;
    // A cluster's scripts are sent whole (EVAL): a replica promoted after
    // a failover has an empty script cache.
    keep_script(&mut conn, config, history::SPUBLISH).await?;
    Ok(Conn::Cluster(conn))
}

/// Stores the publish script's text where emitters in other languages
/// read it ([`history::SCRIPT_KEY`]); written on every connection, so a
/// Redis restarted empty has it again as soon as a node reconnects.
async fn keep_script(
    conn: &mut impl ConnectionLike,
    config: &RedisBuilder,
    script: &str,
) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(format!("{}{}", config.prefix, history::SCRIPT_KEY))
        .arg(script)
        .query_async(conn)
        .await
}

/// A command connection: multiplexed, cheap to clone.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Channel and key names under the app's prefix `P`. One server: a topic
/// `room` is channel `Proom`, its history `Phistory:room` and
/// `Phistory-meta:room` (the names of earlier versions, so nodes of two
/// versions share topics during a rolling deploy). A cluster: channel
/// `P{=room}`, history `P{=room}:history` and `P{=room}:history-meta`:
/// the hash tag `=room` puts them in one slot (the `=` keeps an empty
/// topic's tag from being empty, which would hash the whole name).
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) prefix: String,
    pub(crate) cluster: bool,
}

impl Layout {
    pub(crate) fn channel(&self, topic: &str) -> String {
        match self.cluster {
            false => format!("{}{topic}", self.prefix),
            true => format!("{}{{={topic}}}", self.prefix),
        }
    }

    pub(crate) fn topic<'a>(&self, channel: &'a str) -> Option<&'a str> {
        let rest = channel.strip_prefix(self.prefix.as_str())?;
        match self.cluster {
            false => Some(rest),
            true => rest.strip_prefix("{=")?.strip_suffix('}'),
        }
    }

    pub(crate) fn history(&self, topic: &str) -> history::Keys {
        history::Keys {
            meta: self.key(topic, "history-meta"),
            stream: self.key(topic, "history"),
        }
    }

    /// A topic's key `name`: `Pname:topic` on one server, `P{=topic}:name`
    /// (in the topic's slot) on a cluster.
    pub(crate) fn key(&self, topic: &str, name: &str) -> String {
        let p = &self.prefix;
        match self.cluster {
            false => format!("{p}{name}:{topic}"),
            true => format!("{p}{{={topic}}}:{name}"),
        }
    }

    /// The slot a topic's channel and keys are in, on a cluster.
    pub(crate) fn slot(&self, topic: &str) -> u16 {
        slot(&self.channel(topic))
    }
}

/// The hash slot of a key or shard channel (Redis Cluster's CRC16 of its
/// hash tag, or of the whole name when it has none).
pub(crate) fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tag = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let len = bytes[open + 1..].iter().position(|&b| b == b'}')?;
            (len > 0).then(|| &bytes[open + 1..open + 1 + len])
        })
        .unwrap_or(bytes);
    let mut crc: u16 = 0;
    for &byte in tag {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[cfg(test)]
mod tests {
    use super::Layout;

    #[test]
    fn a_topics_names_share_its_slot_on_a_cluster() {
        let layout = Layout {
            prefix: "wsway:".into(),
            cluster: true,
        };
        for topic in ["room", "", "a}b", "{x}", "x{y}z"] {
            let channel = layout.channel(topic);
            assert_eq!(layout.topic(&channel), Some(topic), "{channel}");
            let slot = super::slot;
            let keys = layout.history(topic);
            assert_eq!(slot(&keys.meta), slot(&channel), "{topic:?}");
            assert_eq!(slot(&keys.stream), slot(&channel), "{topic:?}");
        }
        let single = Layout {
            prefix: "wsway:".into(),
            cluster: false,
        };
        assert_eq!(single.channel("room"), "wsway:room");
        assert_eq!(single.history("room").stream, "wsway:history:room");
    }

    #[test]
    fn the_slot_is_redis_clusters() {
        for key in [
            "",
            "room",
            "wsway:{=room}",
            "{}",
            "a{b}c",
            "{x}{y}",
            "{",
            "}{a}",
        ] {
            let theirs = format!("{:?}", redis::cluster_routing::Slot::for_key(key));
            assert_eq!(theirs, format!("Slot({})", super::slot(key)), "{key:?}");
        }
        // CLUSTER KEYSLOT's own example.
        assert_eq!(super::slot("somekey"), 11058);
    }
}
