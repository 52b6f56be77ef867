//! [`Redis`]: the `Backplane` implementation, and the state its two tasks
//! (the publisher and the subscriber) share.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use event_listener::Event;
use wsway::rt::BoxTask;
use wsway::{
    Backplane, CloseCode, Disconnected, Forwarded, HistoryError, HistoryFuture, LocalTopics,
    Member, Message, Node, NodeReport, PresenceError, PresenceFuture, Published, Retention,
    StoredHistory,
};

use crate::config::RedisBuilder;
use crate::conn::{Conn, Layout, Target};
use crate::error::ConnectError;
use crate::frame::{self, NodeId};
use crate::history;
use crate::outbound::{Kind, Outbound, Outgoing};
use crate::presence::{self, Keys, Pending};
use crate::wait::within;
use crate::{publisher, report, shard_subscriber, subscriber};

/// Topics across nodes over Redis pub/sub: install it with
/// [`App::backplane`](wsway::App::backplane) and every node sharing the
/// Redis (and the [prefix](RedisBuilder::prefix)) shares its topics.
///
/// Local subscribers get a publish at once, without waiting for Redis;
/// other nodes get it through Redis, exactly once each and in the order
/// each node published. See the crate docs for what happens when Redis is
/// slow or away.
#[derive(Clone)]
pub struct Redis {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.inner.config.prefix)
            .finish_non_exhaustive()
    }
}

/// Counters since the backplane was created, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Publishes that never reached Redis (dropped while it was away or
    /// slow, or lost with a connection): each is signalled as a gap.
    pub dropped: u64,
    /// Frames from other nodes handed to local subscribers.
    pub received: u64,
    /// Frames on our channels that could not be decoded (ignored).
    pub malformed: u64,
    /// Times a connection to Redis was opened again after failing.
    pub reconnects: u64,
    /// Topics on which local subscribers were told of a gap.
    pub gaps: u64,
}

pub(crate) struct Inner {
    pub(crate) config: RedisBuilder,
    pub(crate) target: Target,
    /// Channel and key names: one server's, or a cluster's (hash-tagged).
    pub(crate) layout: Layout,
    pub(crate) node_id: NodeId,
    /// This node's control topic ([`frame::control_topic`]).
    pub(crate) control: Arc<str>,
    pub(crate) outbound: Outbound,
    /// Presence changes for the publisher to write, and the key names.
    pub(crate) presence: Pending,
    pub(crate) keys: Keys,
    /// The publisher's connection while it is up (from `connect` until the
    /// publisher starts with it), for presence queries.
    pub(crate) query: Mutex<Option<Conn>>,
    /// Topics whose local subscriber count crossed zero since the
    /// subscriber last looked; it settles each against the real count.
    pub(crate) dirty: Mutex<HashSet<Arc<str>>>,
    pub(crate) dirty_changed: Event,
    /// Wakes the reporter: an admin page began watching.
    pub(crate) report_now: Event,
    pub(crate) started: AtomicBool,
    pub(crate) stopping: AtomicBool,
    pub(crate) stop: Event,
    /// Background tasks still running, and their exit.
    pub(crate) running: AtomicUsize,
    pub(crate) exited: Event,
    pub(crate) received: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) gaps: AtomicU64,
    /// The subscriber is connected and subscribed to every local topic.
    pub(crate) subscribed: AtomicBool,
    /// The subscription connection broke: the publisher pings its own
    /// before the next batch.
    pub(crate) suspect: AtomicBool,
    /// Topics whose channel the subscription connection listens to (as
    /// Redis confirmed), and a notice when it changes: a history fetch
    /// waits for its topic, so it misses nothing published after it.
    pub(crate) listening: Mutex<HashSet<Arc<str>>>,
    pub(crate) listening_changed: Event,
    /// The node the tasks run for, once started (for timers).
    pub(crate) node: Mutex<Option<Node>>,
    pub(crate) publish_script: redis::Script,
    pub(crate) mark_script: redis::Script,
    pub(crate) fetch_script: redis::Script,
}

impl Redis {
    /// Connects with the default settings (see [`RedisBuilder`]):
    /// `app.backplane(Redis::connect("redis://127.0.0.1:6379").await?)`.
    /// A URL `redis+cluster://host:port,host:port` (any of its nodes; the
    /// others are discovered) is a Redis Cluster, as with
    /// [`connect_cluster`](Self::connect_cluster).
    pub async fn connect(url: &str) -> Result<Redis, ConnectError> {
        RedisBuilder::new(url).connect().await
    }

    /// Settings before connecting (a `redis+cluster://` URL: a cluster).
    pub fn builder(url: &str) -> RedisBuilder {
        RedisBuilder::new(url)
    }

    /// Connects to a Redis Cluster through any of its `seeds` (`redis://host:port`;
    /// the other nodes are discovered), with the default settings. Each
    /// topic lives in one hash slot (its channel and history carry the
    /// topic as their hash tag), published with `SPUBLISH` and heard with
    /// `SSUBSCRIBE` only on the shard that holds it. See the crate docs
    /// for what a failover does.
    pub async fn connect_cluster<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
    ) -> Result<Redis, ConnectError> {
        Self::cluster(seeds).connect().await
    }

    /// Settings before connecting to a Redis Cluster (see
    /// [`connect_cluster`](Self::connect_cluster)).
    pub fn cluster<S: Into<String>>(seeds: impl IntoIterator<Item = S>) -> RedisBuilder {
        RedisBuilder::new_cluster(seeds.into_iter().map(Into::into).collect())
    }

    pub(crate) async fn open(config: RedisBuilder) -> Result<Redis, ConnectError> {
        let target = Target::open(&config).map_err(|e| ConnectError::url(&config.url, e))?;
        if target.is_cluster() && config.prefix.contains('{') {
            // The prefix would be every name's hash tag: one slot for all.
            let e = redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "on a Redis Cluster the prefix must not contain `{`",
                config.prefix.clone(),
            ));
            return Err(ConnectError::url(&config.url, e));
        }
        let conn = target
            .connect(&config)
            .await
            .map_err(|e| ConnectError::unreachable(&config.url, e))?;
        let node_id = fastrand::u128(..).to_le_bytes();
        let layout = Layout {
            prefix: config.prefix.clone(),
            cluster: target.is_cluster(),
        };
        let keys = Keys::new(layout.clone(), &node_id, config.presence_heartbeat * 3);
        let inner = Inner {
            control: frame::control_topic(keys.node()).into(),
            keys,
            layout,
            target,
            node_id,
            outbound: Outbound::new(config.queue_bytes),
            presence: Pending::default(),
            query: Mutex::new(Some(conn)),
            dirty: Mutex::default(),
            dirty_changed: Event::new(),
            report_now: Event::new(),
            started: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            stop: Event::new(),
            running: AtomicUsize::new(0),
            exited: Event::new(),
            received: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
            suspect: AtomicBool::new(false),
            listening: Mutex::default(),
            listening_changed: Event::new(),
            node: Mutex::new(None),
            publish_script: redis::Script::new(history::PUBLISH),
            mark_script: redis::Script::new(history::MARK),
            fetch_script: redis::Script::new(history::FETCH),
            config,
        };
        Ok(Redis {
            inner: Arc::new(inner),
        })
    }

    /// Counters since the backplane was created.
    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        Stats {
            dropped: i.outbound.dropped(),
            received: i.received.load(Ordering::Relaxed),
            malformed: i.malformed.load(Ordering::Relaxed),
            reconnects: i.reconnects.load(Ordering::Relaxed),
            gaps: i.gaps.load(Ordering::Relaxed),
        }
    }

    /// Bytes of publishes waiting for Redis.
    pub fn queued_bytes(&self) -> usize {
        self.inner.outbound.queued_bytes()
    }

    /// True while the subscription connection is up and listening to every
    /// topic this node has subscribers for.
    pub fn is_subscribed(&self) -> bool {
        self.inner.subscribed.load(Ordering::Acquire)
    }
}

impl Inner {
    pub(crate) fn channel(&self, topic: &str) -> String {
        self.layout.channel(topic)
    }

    pub(crate) fn topic<'a>(&self, channel: &'a str) -> Option<&'a str> {
        self.layout.topic(channel)
    }

    pub(crate) fn is_cluster(&self) -> bool {
        self.layout.cluster
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The topics listened to; only plain set updates run under its lock.
    pub(crate) fn listening(&self) -> std::sync::MutexGuard<'_, HashSet<Arc<str>>> {
        self.listening.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (within the connect and response timeouts) until the
    /// subscription connection listens to `topic`.
    async fn until_listening(&self, topic: &str) -> Result<(), HistoryError> {
        let node = self.node.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let node = node.ok_or_else(|| HistoryError::new("the backplane has not started"))?;
        let limit = self.config.connect_timeout + self.config.response_timeout;
        let listening = async {
            loop {
                let changed = self.listening_changed.listen();
                if self.listening().contains(topic) {
                    return;
                }
                changed.await;
            }
        };
        within(&node, limit, listening)
            .await
            .ok_or_else(|| HistoryError::new("Redis is unreachable; reconnecting"))
    }

    /// What the store holds of `topic` after `after`, read now.
    async fn read_stored(
        &self,
        topic: &str,
        after: u64,
        retention: Retention,
    ) -> Result<StoredHistory, HistoryError> {
        let keys = self.layout.history(topic);
        let reply = match self.fetch(&keys, after).await {
            // The publisher notices a dead connection only when it has
            // something to send: a fetch that finds one opens another.
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                self.set_query_connection(None);
                self.fetch(&keys, after).await
            }
            other => other,
        };
        let reply =
            reply.map_err(|e| HistoryError::new(format!("Redis failed a history fetch: {e}")))?;
        history::stored(reply, retention.age_limit(), &self.node_id)
    }

    /// Runs the history fetch script (see [`history::FETCH`]) on the query
    /// connection, opening one if there is none.
    async fn fetch(&self, keys: &history::Keys, after: u64) -> redis::RedisResult<redis::Value> {
        let mut conn = match self.query_connection() {
            Ok(conn) => conn,
            Err(_) => {
                let conn = self.target.connect(&self.config).await?;
                self.set_query_connection(Some(&conn));
                conn
            }
        };
        if self.is_cluster() {
            // Sent whole: a promoted replica has an empty script cache.
            return redis::cmd("EVAL")
                .arg(history::CLUSTER_FETCH)
                .arg(2)
                .arg(&keys.meta)
                .arg(&keys.stream)
                .arg(history::new_epoch())
                .arg(history::millis(history::META_TTL))
                .arg(after)
                .query_async(&mut conn)
                .await;
        }
        self.fetch_script
            .key(&keys.meta)
            .key(&keys.stream)
            .arg(history::new_epoch())
            .arg(history::millis(history::META_TTL))
            .arg(after)
            .invoke_async(&mut conn)
            .await
    }

    /// The dirty set; only plain set updates run under its lock.
    pub(crate) fn dirty(&self) -> std::sync::MutexGuard<'_, HashSet<Arc<str>>> {
        self.dirty.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection presence queries use, or why there is none.
    pub(crate) fn query_connection(&self) -> Result<Conn, PresenceError> {
        self.query
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PresenceError::new("Redis is unreachable; reconnecting"))
    }

    pub(crate) fn set_query_connection(&self, conn: Option<&Conn>) {
        *self.query.lock().unwrap_or_else(|e| e.into_inner()) = conn.cloned();
    }

    fn mark(&self, topic: &str) {
        self.dirty().insert(topic.into());
        self.dirty_changed.notify(usize::MAX);
    }

    /// Runs a background task, counted so `stop` can wait for it.
    fn spawn(self: &Arc<Self>, node: &Node, task: impl Future<Output = ()> + Send + 'static) {
        self.running.fetch_add(1, Ordering::AcqRel);
        let inner = self.clone();
        // Corked: a batch read from Redis reaches each member in one write.
        node.runtime().spawn(Box::pin(wsway::rt::corked(async move {
            task.await;
            inner.running.fetch_sub(1, Ordering::AcqRel);
            inner.exited.notify(usize::MAX);
        })));
    }
}

impl Backplane for Redis {
    fn publish(
        &self,
        local: &LocalTopics,
        topic: &str,
        msg: Message,
        except: Option<u64>,
    ) -> Published {
        if let Some(retention) = local.retention(topic) {
            // Numbered by the publish script, and delivered here as on
            // every node: when it comes back from Redis, in offset order.
            let frame = frame::encode_numbered(&self.inner.node_id, &msg, except);
            let forwarded = self.inner.outbound.push(Outgoing {
                topic: topic.into(),
                frame,
                kind: Kind::Numbered(retention),
            });
            return Published {
                forwarded,
                ..Published::default()
            };
        }
        // Encoded before local delivery takes the message: one copy.
        let frame = frame::encode(&self.inner.node_id, &msg);
        let mut report = local.deliver(topic, msg, except);
        report.forwarded = self.inner.outbound.push(Outgoing {
            topic: topic.into(),
            frame,
            kind: Kind::Plain,
        });
        report
    }

    fn disconnect(
        &self,
        local: &LocalTopics,
        topic: &str,
        code: CloseCode,
        reason: &str,
    ) -> Disconnected {
        // On a topic that keeps history this node delivers what was
        // published when it comes back from Redis: so does the close.
        let later = local.retention(topic).is_some();
        let closed = if later {
            0
        } else {
            local.close_subscribers(topic, code, reason)
        };
        let frame = frame::encode_close(&self.inner.node_id, code.as_u16(), reason, later);
        let forwarded = self.inner.outbound.push(Outgoing {
            topic: topic.into(),
            frame,
            kind: Kind::Plain,
        });
        Disconnected { closed, forwarded }
    }

    fn disconnect_member(
        &self,
        local: &LocalTopics,
        member: &str,
        code: CloseCode,
        reason: &str,
    ) -> Option<Disconnected> {
        let (node, conn) = member.split_once(':')?;
        let conn: u64 = conn.parse().ok()?;
        if node == self.inner.keys.node() {
            let closed = usize::from(local.close_connection(conn, code, reason));
            return Some(Disconnected {
                closed,
                forwarded: Forwarded::Local,
            });
        }
        // Another node's id, as `Keys` writes ours: 32 lowercase hex digits.
        if node.len() != 32 || !node.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let frame = frame::encode_close_one(&self.inner.node_id, conn, code.as_u16(), reason);
        let forwarded = self.inner.outbound.push(Outgoing {
            topic: frame::control_topic(node).into(),
            frame,
            kind: Kind::Plain,
        });
        Some(Disconnected {
            closed: 0,
            forwarded,
        })
    }

    fn stores_history(&self) -> bool {
        true
    }

    fn fetch_history(&self, topic: &str, after: u64, retention: Retention) -> HistoryFuture {
        let inner = self.inner.clone();
        let topic = topic.to_owned();
        Box::pin(async move {
            inner.until_listening(&topic).await?;
            inner.read_stored(&topic, after, retention).await
        })
    }

    fn read_history(&self, topic: &str, after: u64, retention: Retention) -> HistoryFuture {
        let inner = self.inner.clone();
        let topic = topic.to_owned();
        Box::pin(async move { inner.read_stored(&topic, after, retention).await })
    }

    fn subscribing(&self, topic: &str) {
        // Where the topic's history stands, asked ahead of anything this
        // node publishes from now on (see `Node::listening_from`).
        self.inner.outbound.push(Outgoing::mark(topic));
    }

    fn subscribed(&self, topic: &str) {
        self.inner.mark(topic);
    }

    fn unsubscribed(&self, topic: &str) {
        self.inner.mark(topic);
    }

    fn presence_changed(&self, topic: &str, member: u64) {
        self.inner.presence.mark(topic, member);
        self.inner.outbound.changed.notify(usize::MAX);
    }

    fn member_id(&self, conn: u64) -> String {
        self.inner.keys.member_id(conn)
    }

    fn presence(&self, local: &LocalTopics, topic: &str) -> PresenceFuture<Vec<Member>> {
        let inner = self.inner.clone();
        let topic = topic.to_owned();
        // This node's members as they are now, not as written so far.
        let own = local.members(&topic);
        Box::pin(async move {
            presence::members(inner.query_connection()?, &inner.keys, &topic, own).await
        })
    }

    fn presence_count(&self, local: &LocalTopics, topic: &str) -> PresenceFuture<usize> {
        let inner = self.inner.clone();
        let topic = topic.to_owned();
        let own = local.member_count(&topic);
        Box::pin(async move {
            presence::count(inner.query_connection()?, &inner.keys, &topic, own).await
        })
    }

    fn nodes(&self, local: &LocalTopics) -> PresenceFuture<Vec<NodeReport>> {
        let inner = self.inner.clone();
        let own = local
            .report(inner.keys.node())
            .with_backplane(report::health(&inner));
        Box::pin(async move {
            let conn = inner.query_connection()?;
            report::read(conn, &inner.config.prefix, inner.keys.node(), own).await
        })
    }

    fn watching(&self) {
        self.inner.report_now.notify(usize::MAX);
    }

    fn start(&self, node: Node) {
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return; // one set of tasks per backplane
        }
        *self.inner.node.lock().unwrap_or_else(|e| e.into_inner()) = Some(node.clone());
        // The connection `connect` opened is the one to start with.
        let first = self.inner.query_connection().ok();
        self.inner.spawn(
            &node,
            publisher::run(self.inner.clone(), node.clone(), first),
        );
        // Listened to from the start: closes addressed to this node.
        self.inner.mark(&self.inner.control);
        self.inner
            .spawn(&node, report::run(self.inner.clone(), node.clone()));
        match self.inner.is_cluster() {
            false => self
                .inner
                .spawn(&node, subscriber::run(self.inner.clone(), node.clone())),
            true => self.inner.spawn(
                &node,
                shard_subscriber::run(self.inner.clone(), node.clone()),
            ),
        }
    }

    fn stop(&self) -> BoxTask {
        let inner = self.inner.clone();
        inner.stopping.store(true, Ordering::Release);
        inner.stop.notify(usize::MAX);
        inner.outbound.changed.notify(usize::MAX);
        Box::pin(async move {
            loop {
                let exited = inner.exited.listen();
                if inner.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                exited.await;
            }
        })
    }
}
