//! One Redis or a Redis Cluster behind the same helpers, so a test body
//! that shares topics between nodes runs against both (`redis_tests!`).
#![allow(dead_code)] // each test file uses its part

use super::redis_cluster::{RedisCluster, slot};
use super::redis_server::RedisServer;

/// Which Redis a body runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Single,
    /// Three primaries, three replicas.
    Cluster,
}

/// A running Redis of either kind, stopped when dropped.
pub enum SharedRedis {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl SharedRedis {
    pub fn start(kind: Kind) -> Self {
        match kind {
            Kind::Single => SharedRedis::Single(RedisServer::start()),
            Kind::Cluster => SharedRedis::Cluster(RedisCluster::start()),
        }
    }

    /// The one server, for what only one server does (kill, restart).
    pub fn single_mut(&mut self) -> &mut RedisServer {
        match self {
            SharedRedis::Single(r) => r,
            SharedRedis::Cluster(_) => panic!("this test needs one Redis, not a cluster"),
        }
    }

    /// Settings for a node on it, with wsway-redis' defaults.
    pub fn builder(&self) -> wsway_redis::RedisBuilder {
        match self {
            SharedRedis::Single(r) => wsway_redis::Redis::builder(&r.url()),
            SharedRedis::Cluster(c) => wsway_redis::Redis::cluster(c.seeds()),
        }
    }

    /// `app` served on `rt` by a node on this Redis that reports (and
    /// beats presence) every 100 ms, so another node's counts are that
    /// old at most.
    pub async fn reporting_node(
        &self,
        rt: super::Runtime,
        mut app: wsway::App,
    ) -> wsway::ServerHandle {
        let backplane = self
            .builder()
            .presence_heartbeat(std::time::Duration::from_millis(100))
            .connect()
            .await
            .expect("connect to the test's Redis");
        app.backplane(backplane);
        rt.start(app).await
    }

    /// The `--redis` argument of the example binaries.
    pub fn url(&self) -> String {
        match self {
            SharedRedis::Single(r) => r.url(),
            SharedRedis::Cluster(c) => c.url(),
        }
    }

    /// The channel of `topic` under the default prefix.
    pub fn channel(&self, topic: &str) -> String {
        match self {
            SharedRedis::Single(_) => format!("wsway:{topic}"),
            SharedRedis::Cluster(_) => format!("wsway:{{={topic}}}"),
        }
    }

    /// Runs `cmd` where `topic` lives: the server, or its slot's primary.
    pub fn query_at<T: redis::FromRedisValue>(&self, topic: &str, cmd: &mut redis::Cmd) -> T {
        match self {
            SharedRedis::Single(r) => r.query(cmd),
            SharedRedis::Cluster(c) => c.nodes[c.primary_of(slot(&self.channel(topic)))].query(cmd),
        }
        .unwrap_or_else(|e| panic!("{cmd:?} for {topic}: {e}"))
    }

    /// How many connections (nodes) listen to `topic`'s channel.
    pub fn listeners(&self, topic: &str) -> usize {
        let channel = self.channel(topic);
        match self {
            SharedRedis::Single(r) => r.numsub(&channel),
            SharedRedis::Cluster(c) => c.shard_listeners(&channel),
        }
    }

    /// The topics with a listening node, sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut channels: Vec<String> = match self {
            SharedRedis::Single(r) => r.channels("wsway:"),
            SharedRedis::Cluster(c) => c
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .flat_map(|n| {
                    n.query::<Vec<String>>(redis::cmd("PUBSUB").arg("SHARDCHANNELS").arg("wsway:*"))
                        .expect("PUBSUB SHARDCHANNELS")
                })
                .collect(),
        };
        channels.sort();
        channels.dedup();
        let cluster = matches!(self, SharedRedis::Cluster(_));
        channels
            .into_iter()
            .map(|c| {
                let topic = c.strip_prefix("wsway:").unwrap_or(&c);
                match cluster {
                    false => topic.to_owned(),
                    true => topic
                        .strip_prefix("{=")
                        .and_then(|t| t.strip_suffix('}'))
                        .unwrap_or(topic)
                        .to_owned(),
                }
            })
            // Each running node's own control channel (`\0node:<id>`,
            // for the server API's disconnects) is not a topic.
            .filter(|t| !t.starts_with('\0'))
            .collect()
    }

    /// The connections in subscribe mode, as (port, id), sorted: unchanged
    /// across a stretch of time, no subscription was made again in it.
    pub fn subscription_ids(&self) -> Vec<(u16, u64)> {
        let list = |port: u16, list: String| -> Vec<(u16, u64)> {
            list.lines()
                .filter(|l| l.contains("sub=") && !l.contains(" sub=0 psub=0 ssub=0"))
                .filter_map(|l| l.strip_prefix("id=")?.split(' ').next()?.parse().ok())
                .map(|id| (port, id))
                .collect()
        };
        let mut ids = match self {
            SharedRedis::Single(r) => r.subscription_ids().into_iter().map(|id| (0, id)).collect(),
            SharedRedis::Cluster(c) => c
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .flat_map(|n| {
                    let all: String = n
                        .query(redis::cmd("CLIENT").arg("LIST"))
                        .expect("CLIENT LIST");
                    list(n.port, all)
                })
                .collect::<Vec<_>>(),
        };
        ids.sort_unstable();
        ids
    }

    /// Pauses writes where `topic` lives for `ms` (subscriptions and pings
    /// go on).
    pub fn pause_writes(&self, topic: &str, ms: u64) {
        self.query_at::<()>(
            topic,
            redis::cmd("CLIENT").arg("PAUSE").arg(ms).arg("WRITE"),
        );
    }

    pub fn unpause(&self, topic: &str) {
        self.query_at::<()>(topic, redis::cmd("CLIENT").arg("UNPAUSE"));
    }
}

/// Each body, once against one Redis (`single::`) and once against a
/// cluster (`cluster::`), each on every runtime; ignored by the plain
/// `cargo test` (no `redis-server` there): `.ci/run` installs it and runs
/// them.
#[macro_export]
macro_rules! redis_tests {
    ($($(#[$meta:meta])* async fn $name:ident($rt:ident, $redis:ident) $body:block)*) => {
        $( async fn $name($rt: common::Runtime, $redis: common::shared_redis::Kind) $body )*

        mod single {
            use super::common;
            $crate::runtime_tests! {
                $(
                    #[ignore = "needs redis-server: .ci/run installs it and runs these"]
                    async fn $name(rt) {
                        Box::pin(super::$name(rt, super::common::shared_redis::Kind::Single)).await
                    }
                )*
            }
        }

        mod cluster {
            use super::common;
            $crate::runtime_tests! {
                $(
                    #[ignore = "needs redis-server and redis-cli: .ci/run installs them and runs these"]
                    async fn $name(rt) {
                        Box::pin(super::$name(rt, super::common::shared_redis::Kind::Cluster)).await
                    }
                )*
            }
        }
    };
}
