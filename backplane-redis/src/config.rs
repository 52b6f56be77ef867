//! The backplane's settings, with their defaults.

use std::time::Duration;

use crate::Redis;
use crate::error::ConnectError;

/// Builds a [`Redis`] backplane; every setting has a documented default.
///
/// ```no_run
/// # async fn run() -> Result<(), wsway_redis::ConnectError> {
/// use std::time::Duration;
///
/// let redis = wsway_redis::Redis::builder("redis://127.0.0.1:6379")
///     .prefix("chat:")
///     .queue_bytes(32 << 20)
///     .ping_interval(Duration::from_millis(500))
///     .connect()
///     .await?;
/// let mut app = wsway::App::new();
/// app.backplane(redis);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RedisBuilder {
    pub(crate) url: String,
    /// A Redis Cluster's seed nodes (`url` then lists them, for messages).
    pub(crate) cluster: Option<Vec<String>>,
    pub(crate) prefix: String,
    pub(crate) queue_bytes: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) ping_timeout: Duration,
    pub(crate) reconnect_delay: (Duration, Duration),
    pub(crate) presence_heartbeat: Duration,
}

impl RedisBuilder {
    pub(crate) fn new(url: &str) -> Self {
        if let Some(seeds) = cluster_seeds(url) {
            return RedisBuilder {
                url: url.to_owned(),
                ..RedisBuilder::new_cluster(seeds)
            };
        }
        RedisBuilder {
            url: url.to_owned(),
            cluster: None,
            prefix: "wsway:".to_owned(),
            queue_bytes: 8 << 20,
            batch_bytes: 256 << 10,
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(2),
            ping_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_secs(1),
            reconnect_delay: (Duration::from_millis(50), Duration::from_secs(2)),
            presence_heartbeat: Duration::from_secs(5),
        }
    }

    /// A Redis Cluster, reached through any of these nodes (`redis://host:port`
    /// URLs; the rest of the cluster is discovered from them).
    pub(crate) fn new_cluster(seeds: Vec<String>) -> Self {
        RedisBuilder {
            cluster: Some(seeds.clone()),
            ..RedisBuilder::new(&seeds.join(","))
        }
    }

    /// Prepended to every topic to make its Redis channel, so several apps
    /// can share one Redis. Default: `wsway:`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bytes of publishes waiting for Redis before further ones are
    /// dropped (reported as [`Forwarded::Dropped`](wsway::Forwarded) and
    /// signalled to the other nodes as a gap). Over half of it, publishes
    /// report [`Forwarded::Backpressured`](wsway::Forwarded). Default: 8 MiB.
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// How long connecting (and the first answer) may take before it
    /// counts as a failure. Default: 3 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a batch of publishes may wait for Redis's answer before
    /// the connection counts as dead (its publishes become gap notes).
    /// Default: 2 s.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The liveness probe: when the subscription connection has been
    /// quiet for this long it is pinged, and a ping unanswered after
    /// [`ping_timeout`](Self::ping_timeout) drops and reopens it. A dead
    /// subscription is noticed within the sum of the two. Default: 1 s.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// See [`ping_interval`](Self::ping_interval). Default: 1 s.
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// Reconnects wait `min` after the first failure, doubling up to `max`.
    /// Default: 50 ms to 2 s.
    pub fn reconnect_delay(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_delay = (min, max);
        self
    }

    /// How often this node tells Redis it is alive. Its presence entries
    /// live three heartbeats past the last one, so the members of a node
    /// that crashed (or lost Redis) disappear from every node's
    /// [`presence`](wsway::Topics::presence) within three heartbeats; a
    /// connection that closes, and a node that stops gracefully, are gone
    /// at once. Each heartbeat is three commands, whatever the number of
    /// members. Default: 5 s (so 15 s for a crashed node).
    pub fn presence_heartbeat(mut self, interval: Duration) -> Self {
        self.presence_heartbeat = interval.max(Duration::from_millis(10));
        self
    }

    /// Checks the URL and connects, so a wrong URL or an unreachable Redis
    /// is an error here (within the connect timeout), not a silent retry
    /// loop later. After this, the backplane reconnects by itself.
    pub async fn connect(self) -> Result<Redis, ConnectError> {
        Redis::open(self).await
    }

    /// Connects an [`Emitter`](crate::Emitter) with these settings: a
    /// process that publishes into the nodes' topics (same Redis, same
    /// [prefix](Self::prefix)) without serving sockets. Of the rest, the
    /// timeouts and the [presence heartbeat](Self::presence_heartbeat)
    /// (to judge which nodes are alive) apply.
    pub async fn emitter(self) -> Result<crate::Emitter, ConnectError> {
        crate::Emitter::open(self).await
    }
}

/// The seed nodes of a cluster URL, `redis+cluster://[user:password@]host:port,host:port`
/// (the credentials go to every node); `None` for any other URL.
fn cluster_seeds(url: &str) -> Option<Vec<String>> {
    let rest = url.strip_prefix("redis+cluster://")?;
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let seeds = hosts
        .trim_end_matches('/')
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{auth}{h}"))
        .collect();
    Some(seeds)
}

#[cfg(test)]
mod tests {
    use super::RedisBuilder;

    #[test]
    fn a_cluster_url_names_its_seeds() {
        let b = RedisBuilder::new("redis+cluster://u:p@10.0.0.1:7000,10.0.0.2:7001/");
        assert_eq!(
            b.cluster.as_deref(),
            Some(
                &[
                    "redis://u:p@10.0.0.1:7000".to_owned(),
                    "redis://u:p@10.0.0.2:7001".to_owned()
                ][..]
            )
        );
        assert_eq!(b.url, "redis+cluster://u:p@10.0.0.1:7000,10.0.0.2:7001/");
        assert_eq!(RedisBuilder::new("redis://127.0.0.1:6379").cluster, None);
    }
}
