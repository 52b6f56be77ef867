//! [`Emitter`]: publishing into an app's topics from a process that serves
//! no socket (a worker, a job, a cron task), through the nodes' Redis.

use std::sync::Mutex;

use serde::Serialize;
use wsway::{Member, Message, Position, PresenceError, Retention};

use crate::config::RedisBuilder;
use crate::conn::{Conn, Layout, Target};
use crate::error::{ConnectError, EmitError};
use crate::frame::{self, NodeId};
use crate::history::{self, Script};
use crate::presence::{self, Keys};

/// Publishes, emits events and reads presence in the topics of the wsway
/// nodes that share its Redis (and [prefix](RedisBuilder::prefix)),
/// without serving any socket: a worker's way to reach users.
///
/// What it publishes reaches every node's subscribers exactly once, in
/// the order this emitter published it, as a node's own publish does. On a
/// topic that keeps history (declare it with [`history`](Self::history),
/// as the app does with [`App::history`](wsway::App::history)) the store
/// numbers it: the answer is its [`Position`], it is in history if and
/// only if it was published, and clients resume across it on any node.
///
/// ```no_run
/// use wsway::Retention;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let emitter = wsway_redis::Emitter::connect("redis://127.0.0.1:6379")
///     .await?
///     .history("room:*", Retention::messages(500));
/// let at = emitter.publish("room:lobby", "the build is green").await?;
/// emitter.emit("alerts", "deploy", &serde_json::json!({ "version": 42 })).await?;
/// let online = emitter.presence_count("room:lobby").await?;
/// # let _ = (at, online); Ok(()) }
/// ```
///
/// Each call waits for Redis's answer, so an error means the message may
/// not have been published: retry it. A call whose connection broke after
/// sending may have published nonetheless; a retry then publishes twice.
pub struct Emitter {
    config: RedisBuilder,
    target: Target,
    layout: Layout,
    node_id: NodeId,
    keys: Keys,
    conn: Mutex<Option<Conn>>,
    rules: Vec<(String, Retention)>,
    /// The publish script's hash, for `EVALSHA`.
    publish_script: redis::Script,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("prefix", &self.config.prefix)
            .field("history", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Emitter {
    /// Connects with the default settings (the nodes' default
    /// [prefix](RedisBuilder::prefix)); a `redis+cluster://` URL is a
    /// Redis Cluster. For other settings, [`RedisBuilder::emitter`].
    pub async fn connect(url: &str) -> Result<Emitter, ConnectError> {
        RedisBuilder::new(url).emitter().await
    }

    pub(crate) async fn open(config: RedisBuilder) -> Result<Emitter, ConnectError> {
        let target = Target::open(&config).map_err(|e| ConnectError::url(&config.url, e))?;
        let conn = target
            .connect(&config)
            .await
            .map_err(|e| ConnectError::unreachable(&config.url, e))?;
        let layout = Layout {
            prefix: config.prefix.clone(),
            cluster: target.is_cluster(),
        };
        let node_id = fastrand::u128(..).to_le_bytes();
        Ok(Emitter {
            keys: Keys::new(layout.clone(), &node_id, config.presence_heartbeat * 3),
            layout,
            target,
            node_id,
            conn: Mutex::new(Some(conn)),
            rules: Vec::new(),
            publish_script: redis::Script::new(history::PUBLISH),
            config,
        })
    }

    /// Declares that the topics matching `pattern` (an exact name, or a
    /// prefix ending in `*`) keep history with `retention`: declare the
    /// app's [`App::history`](wsway::App::history) rules here alike, so
    /// that the store numbers these publishes and trims as the nodes do.
    /// The first matching rule wins.
    pub fn history(mut self, pattern: &str, retention: Retention) -> Self {
        self.rules.push((pattern.to_owned(), retention));
        self
    }

    /// Publishes `msg` (text or binary) to `topic` on every node. Returns
    /// its position on a topic that keeps history, `None` on any other.
    pub async fn publish(
        &self,
        topic: &str,
        msg: impl Into<Message>,
    ) -> Result<Option<Position>, EmitError> {
        let msg = msg.into();
        let channel = self.layout.channel(topic);
        let Some(retention) = self.retention(topic) else {
            let command = if self.layout.cluster {
                "SPUBLISH"
            } else {
                "PUBLISH"
            };
            let mut cmd = redis::cmd(command);
            cmd.arg(&channel).arg(frame::encode(&self.node_id, &msg));
            self.query(&cmd).await?;
            return Ok(None);
        };
        let frame = frame::encode_numbered(&self.node_id, &msg, None);
        let keys = self.layout.history(topic);
        let call = |script| history::publish(script, &keys, &channel, &frame, retention);
        let reply = match self.layout.cluster {
            // Sent whole: a replica promoted after a failover has an empty
            // script cache.
            true => self.query(&call(Script::Text(history::SPUBLISH))).await?,
            false => {
                let by_hash = call(Script::Sha(self.publish_script.get_hash()));
                match self.query(&by_hash).await {
                    // A Redis restarted empty has no scripts: load it.
                    Err(EmitError::Redis(e))
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        self.query(&call(Script::Text(history::PUBLISH))).await?
                    }
                    other => other?,
                }
            }
        };
        history::position(reply).map(Some).ok_or(EmitError::Reply)
    }

    /// Publishes `event` with `data` to `topic`, as the event layer's
    /// [`Message::event`] encodes it (`{"event": .., "data": ..}`), which
    /// `wsway.js` hands to the page's `on(event)` listeners.
    pub async fn emit(
        &self,
        topic: &str,
        event: &str,
        data: &impl Serialize,
    ) -> Result<Option<Position>, EmitError> {
        let msg = Message::event(event, data).map_err(EmitError::Event)?;
        self.publish(topic, msg).await
    }

    /// The members of `topic` on every live node.
    pub async fn presence(&self, topic: &str) -> Result<Vec<Member>, PresenceError> {
        let conn = self
            .conn()
            .await
            .map_err(|e| PresenceError::new(e.to_string()))?;
        presence::members(conn, &self.keys, topic, Vec::new()).await
    }

    /// How many members `topic` has on every live node.
    pub async fn presence_count(&self, topic: &str) -> Result<usize, PresenceError> {
        let conn = self
            .conn()
            .await
            .map_err(|e| PresenceError::new(e.to_string()))?;
        presence::count(conn, &self.keys, topic, 0).await
    }

    fn retention(&self, topic: &str) -> Option<Retention> {
        (self.rules.iter()).find_map(|(p, r)| wsway::topic_matches(p, topic).then_some(*r))
    }

    /// The connection, opened again when the last one broke.
    async fn conn(&self) -> Result<Conn, EmitError> {
        let kept = self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(conn) = kept {
            return Ok(conn);
        }
        let conn = (self.target.connect(&self.config).await).map_err(EmitError::Redis)?;
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `cmd` on the connection; one that broke is dropped, and the
    /// next call opens another (this one is not sent again: it may have
    /// been applied).
    async fn query(&self, cmd: &redis::Cmd) -> Result<redis::Value, EmitError> {
        let mut conn = self.conn().await?;
        let result = cmd.query_async(&mut conn).await;
        if let Err(e) = &result
            && (e.is_io_error() || e.is_connection_dropped() || e.is_timeout())
        {
            *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        result.map_err(EmitError::Redis)
    }
}
