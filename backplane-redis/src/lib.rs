//! Topics across several wsway nodes, over Redis pub/sub, on tokio,
//! async-std or smol.
//!
//! Two replicas of an app are two sets of subscribers: without a shared
//! backplane, a publish on one never reaches the members connected to the
//! other. With this crate it does, and installing it is the whole change:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut app = wsway::App::new();
//! app.backplane(wsway_redis::Redis::connect("redis://127.0.0.1:6379").await?);
//! # Ok(()) }
//! ```
//!
//! Choose the runtime with a feature: `tokio` for tokio apps, `smol` for
//! smol and async-std apps (redis-rs drives its connections on smol's
//! executor there). A build with only `smol` does not compile tokio's
//! runtime.
//!
//! # How it works
//!
//! - A topic `room` is the Redis channel `wsway:room` (the
//!   [prefix](RedisBuilder::prefix) lets several apps share one Redis).
//! - A publish is delivered to this node's subscribers at once, then
//!   queued for Redis as one frame: the sender's node id, text or binary,
//!   the payload. Encoded once per publish; binary stays binary.
//! - One publishing connection forwards the queue in order, a pipeline at
//!   a time, so each node's publishes arrive in the order it made them.
//! - One subscription connection listens to a topic's channel only while
//!   this node has a subscriber to it. A node skips its own frames: every
//!   subscriber gets each publish exactly once.
//!
//! # When Redis is slow or away
//!
//! - Local delivery never waits for Redis and never stops.
//! - Publishes wait in a capped queue ([`RedisBuilder::queue_bytes`]);
//!   [`Published::forwarded`](wsway::Published::forwarded) says whether each
//!   was queued, backpressured or dropped.
//! - Both connections reconnect by themselves, with backoff, and the
//!   subscriber listens again to every local topic.
//! - Nothing is lost silently. After the subscription connection comes
//!   back, every local subscriber of every topic gets
//!   [`Handler::gap`](wsway::Handler::gap) (the event layer pushes
//!   `wsway:gap`, which `wsway.js` fires): messages from other nodes may
//!   have been missed. A node that dropped publishes, or lost them with a
//!   connection, sends gap notes on those topics once Redis is back, and
//!   the other nodes' subscribers are told the same way. Nothing is resent,
//!   so nothing arrives twice.
//! - A dead subscription connection (Redis paused, a silent network) is
//!   noticed by a ping after [`ping_interval`](RedisBuilder::ping_interval)
//!   of quiet, unanswered within [`ping_timeout`](RedisBuilder::ping_timeout):
//!   2 s with the defaults.
//!
//! # Presence
//!
//! [`Topics::presence`](wsway::Topics::presence) and
//! [`presence_count`](wsway::Topics::presence_count) answer for every
//! node. Each node writes its own members (a hash per topic, a count per
//! node) through the publishing connection, before any publish it makes
//! later, and renews a liveness key every
//! [heartbeat](RedisBuilder::presence_heartbeat). Readers count only live
//! nodes: a crashed node's members vanish within three heartbeats. A
//! connection that closes, and a node that stops, are gone at once. When
//! the liveness key is found missing (Redis restarted empty), the node
//! writes all its members again. A query while Redis is away fails with
//! [`PresenceError`](wsway::PresenceError).
//!
//! Each node also reports its topics and their subscriber counts every
//! heartbeat (one hash, `reports`, a field per node with a deadline), so
//! [`Topics::topic_counts`](wsway::Topics::topic_counts) and the server
//! API's `/topics` answer for every node.
//!
//! # History
//!
//! A topic that keeps history ([`App::history`](wsway::App::history))
//! keeps it in Redis, so a client resumes on any node. One script numbers
//! a publish (an epoch and an offset per topic), adds it to the topic's
//! stream (capped at the retention's count, expiring with its age) and
//! publishes it: a message is in history if and only if it was published.
//! Such a publish is delivered on every node, this one included, when it
//! comes back from Redis, in offset order. Each node keeps a window of
//! recent messages per topic and asks Redis only for what it lacks. A node
//! whose subscription broke fetches what it missed; a Redis that came
//! back empty starts a new epoch, and subscribers are told
//! ([`Handler::gap`](wsway::Handler::gap)). History needs Redis 5.0 or
//! newer (streams).
//!
//! # Emitters
//!
//! An [`Emitter`] publishes, emits events and reads presence in the
//! nodes' topics from a process that serves no socket (a worker), with a
//! node's guarantees: exactly once on every node, in its order, numbered
//! by the store where history is kept. Other languages write the same
//! frames: the guide's "Emitters" chapter documents the wire format, and
//! every node keeps its publish script's text in Redis for them.
//!
//! Redis 2.6 or newer.
//!
//! # Redis Cluster
//!
//! [`Redis::connect_cluster`] takes a cluster's seed nodes (Redis 7.0 or
//! newer). Each topic lives in one hash slot: its shard channel and its
//! history carry the topic as their hash tag, it is published with
//! `SPUBLISH` on its primary and heard with `SSUBSCRIBE` only where this
//! node has subscribers. The subscriber reads the slot map every
//! [`ping_interval`](RedisBuilder::ping_interval) and subscribes again
//! where a topic's slot went after a failover or a resharding, then
//! fetches what was missed or tells a gap. Presence is kept per topic in
//! the topic's slot, with each node's liveness as a deadline there. A
//! `redis+cluster://host:port,host:port` URL also picks a cluster.
//! A replica promoted after a crash may lack the primary's last writes
//! (replication is asynchronous), so a topic's history meta records the
//! replication id of the primary that wrote it, and the first script run
//! by the replica that replaced it starts a new epoch: subscribers are
//! told a gap rather than skip new messages numbered like lost ones. The
//! guide's "Several nodes" has the table of what a failover does.

#[cfg(not(any(feature = "tokio", feature = "smol")))]
compile_error!(
    "wsway-redis needs a runtime feature: `tokio`, or `smol` for smol and async-std apps"
);

mod backplane;
mod config;
mod conn;
mod emitter;
mod error;
mod frame;
mod history;
mod outbound;
mod presence;
mod publisher;
mod report;
mod shard_subscriber;
mod subscriber;
mod wait;

pub use backplane::{Redis, Stats};
pub use config::RedisBuilder;
pub use emitter::Emitter;
pub use error::{ConnectError, EmitError};
