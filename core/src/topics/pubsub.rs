//! Topic pub/sub: connections subscribe to named topics; a publish reaches
//! every subscriber. Publishing goes through a [`Backplane`], in-process by
//! default, so that a multi-node backplane plugs in without touching handlers.
//!
//! A published message is converted once and every subscriber's queue holds
//! the same shared buffer: queueing a fan-out copies no payload (each
//! connection's codec copies it once as it frames it for the socket).

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

use serde_json::value::RawValue;

use crate::delivery::history::{History, HistoryError, HistoryFuture, Position, Retention};
use crate::delivery::outbox::{SendStatus, Shared};
use crate::message::{CloseCode, Message};
use crate::runtime::{BoxTask, Rt, Runtime};
use crate::topics::census::{NodeReport, TopicCount, TopicCounts};
use crate::topics::connections::Connections;
use crate::topics::presence::{LocalPresence, Member, PresenceFuture};

/// What a publish did: counted over the subscribers on this node, and what
/// became of the copy bound for other nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Subscribers whose queue accepted the message.
    pub delivered: usize,
    /// Of those, how many are now over their backpressure limit.
    pub backpressured: usize,
    /// Subscribers that refused it (closing, or already over the limit).
    pub dropped: usize,
    /// The copy for the other nodes ([`Forwarded::Local`] in-process).
    pub forwarded: Forwarded,
    /// Where the message stands in the topic's history, when the topic
    /// keeps history ([`App::history`](crate::App::history)) in this
    /// process. With a backplane that [stores history](Backplane::stores_history)
    /// the store gives the position later: `None` here, and every
    /// subscriber (this node's too) gets the message when it comes back.
    pub position: Option<Position>,
}

/// What a multi-node backplane did with the copy of a publish bound for
/// the other nodes. Local delivery never waits for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Forwarded {
    /// There are no other nodes: the in-process backplane.
    #[default]
    Local,
    /// Queued for the other nodes.
    Queued,
    /// Queued, but the outbound queue is over its high-water mark (the
    /// store is slow or away): publishing faster will start dropping.
    Backpressured,
    /// Not forwarded: the outbound queue is full. The other nodes'
    /// subscribers of the topic are told of a gap
    /// ([`Handler::gap`](crate::Handler::gap)) once the store is back.
    Dropped,
}

/// What a [`Topics::disconnect`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disconnected {
    /// Connections of this node that began closing now. On a topic whose
    /// history a multi-node backplane stores, this node's subscribers close
    /// when the close comes back from the store, in order with what was
    /// published before it: 0 here.
    pub closed: usize,
    /// What happened to the close for the other nodes, as for a publish:
    /// [`Forwarded::Dropped`] means it was not sent (retry it).
    pub forwarded: Forwarded,
}

/// How published messages reach subscribers. The default delivers within
/// this process; a multi-node backplane (Redis pub/sub, say) also forwards
/// each publish to the other nodes and calls [`LocalTopics::deliver`] for
/// what they publish.
pub trait Backplane: Send + Sync + 'static {
    /// Publishes `msg` on `topic`: delivers it to this node's subscribers
    /// through `local` (skipping `except`, a connection id) and to other
    /// nodes, if any. Returns what happened on this node.
    fn publish(
        &self,
        local: &LocalTopics,
        topic: &str,
        msg: Message,
        except: Option<u64>,
    ) -> Published;

    /// The first local subscriber to `topic`, which keeps history in this
    /// backplane's store ([`stores_history`](Self::stores_history)), is
    /// about to join; it is visible (and publishes can see it) only after
    /// this returns. A backplane asks its store where the topic stands here,
    /// ahead of those publishes, and answers with
    /// [`Node::listening_from`]. Default: nothing.
    fn subscribing(&self, topic: &str) {
        let _ = topic;
    }

    /// The first local subscriber joined `topic` (a backplane may start
    /// listening for it). Default: nothing.
    fn subscribed(&self, topic: &str) {
        let _ = topic;
    }

    /// The last local subscriber left `topic`. Default: nothing.
    fn unsubscribed(&self, topic: &str) {
        let _ = topic;
    }

    /// A connection on this node was tracked in `topic`, had its metadata
    /// updated, or left (read the current state with
    /// [`Node::member_meta`]). Default: nothing.
    fn presence_changed(&self, topic: &str, member: u64) {
        let _ = (topic, member);
    }

    /// The [`Member::id`] connection `conn` of this node has in presence
    /// lists, unique across nodes. Default: the connection id, as the
    /// in-process backplane lists it.
    fn member_id(&self, conn: u64) -> String {
        conn.to_string()
    }

    /// The members of `topic` on every node. Default: this node's
    /// ([`LocalTopics::members`]).
    fn presence(&self, local: &LocalTopics, topic: &str) -> PresenceFuture<Vec<Member>> {
        let members = local.members(topic);
        Box::pin(async move { Ok(members) })
    }

    /// How many members `topic` has on every node, without listing them.
    /// Default: this node's ([`LocalTopics::member_count`]).
    fn presence_count(&self, local: &LocalTopics, topic: &str) -> PresenceFuture<usize> {
        let count = local.member_count(topic);
        Box::pin(async move { Ok(count) })
    }

    /// What every live node last reported of its topics, this node's as
    /// it is now ([`LocalTopics::report`]); the server API's `/topics` and
    /// [`Topics::topic_counts`] add them up. A multi-node backplane gathers
    /// them through its store and fails (as a presence query does) when it
    /// does not answer. Default: this node's alone.
    fn nodes(&self, local: &LocalTopics) -> PresenceFuture<Vec<NodeReport>> {
        let own = local.report("local");
        Box::pin(async move { Ok(vec![own]) })
    }

    /// True when this backplane keeps the history of topics that keep it
    /// ([`App::history`](crate::App::history)) in a store shared by the
    /// nodes. Then it numbers their publishes there (a publish is not
    /// delivered locally at once: it comes back through
    /// [`Node::deliver_at`] with its position, on every node alike), and
    /// this node's rings are windows onto the store: what a resuming
    /// subscriber needs beyond them is asked of
    /// [`fetch_history`](Self::fetch_history). Default: false (each
    /// node's rings are the history, as in process).
    fn stores_history(&self) -> bool {
        false
    }

    /// What the store holds of `topic` after offset `after` in its current
    /// epoch (see [`StoredHistory`](crate::StoredHistory)). Called only
    /// when [`stores_history`](Self::stores_history) is true, and only
    /// while this node has subscribers to `topic`; the answer must not miss
    /// anything published after this node started listening to it.
    fn fetch_history(&self, topic: &str, after: u64, retention: Retention) -> HistoryFuture {
        let _ = (topic, after, retention);
        Box::pin(async { Err(HistoryError::new("this backplane keeps no history")) })
    }

    /// As [`fetch_history`](Self::fetch_history), for a reader outside any
    /// connection (the server API's `/history`): this node may have no
    /// subscriber to `topic` and need not listen to it, since nothing live
    /// follows the answer. Called only when
    /// [`stores_history`](Self::stores_history) is true. Default:
    /// `fetch_history`.
    fn read_history(&self, topic: &str, after: u64, retention: Retention) -> HistoryFuture {
        self.fetch_history(topic, after, retention)
    }

    /// Closes every subscriber of `topic` on every node with `code` and
    /// `reason` (already checked as sendable), after what was published to
    /// it before: a multi-node backplane closes this node's subscribers as
    /// it delivers (at once, or when its own publishes come back from the
    /// store) and sends the close to the other nodes in order with its
    /// publishes ([`Node::close_subscribers`] there). Default: this node's
    /// subscribers, at once.
    fn disconnect(
        &self,
        local: &LocalTopics,
        topic: &str,
        code: CloseCode,
        reason: &str,
    ) -> Disconnected {
        Disconnected {
            closed: local.close_subscribers(topic, code, reason),
            forwarded: Forwarded::Local,
        }
    }

    /// Closes the connection whose [`Member::id`] is `member` with `code`
    /// and `reason` (already checked as sendable): at once when it is this
    /// node's, else by sending the close to the node that holds it
    /// ([`Node::close_connection`] there). `None` when `member` is not an
    /// id this backplane gives. Default: `member` is this node's
    /// connection id.
    fn disconnect_member(
        &self,
        local: &LocalTopics,
        member: &str,
        code: CloseCode,
        reason: &str,
    ) -> Option<Disconnected> {
        let conn = member.parse().ok()?;
        Some(Disconnected {
            closed: usize::from(local.close_connection(conn, code, reason)),
            forwarded: Forwarded::Local,
        })
    }

    /// An admin page began watching this node: a multi-node backplane
    /// reports this node's figures ([`Backplane::nodes`]) every second
    /// from now on, and tells the other nodes to ([`Node::is_watched_here`],
    /// [`Node::set_watched_elsewhere`]). Called once per page. Default:
    /// nothing.
    fn watching(&self) {}

    /// A server is starting with this backplane: start background work
    /// (reading what other nodes publish, say) on `node`'s runtime. Called
    /// once per server start, before the first connection. Default: nothing.
    fn start(&self, node: Node) {
        let _ = node;
    }

    /// The server has closed its connections: finish forwarding what was
    /// accepted and stop the background work. The server waits for the
    /// returned future for a few seconds at most. Default: nothing to do.
    fn stop(&self) -> BoxTask {
        Box::pin(async {})
    }
}

/// This node as a [`Backplane`] sees it, from [`Backplane::start`]: the
/// runtime to run background work on, and the local subscribers to hand
/// other nodes' messages to. Cloneable; it does not keep the app alive.
#[derive(Clone)]
pub struct Node {
    runtime: Rt,
    topics: Weak<TopicsInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}

impl Node {
    /// The server's runtime: spawn and sleep through it, and the backplane
    /// runs on tokio, async-std or smol alike.
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    /// Delivers a message another node published to this node's
    /// subscribers of `topic`. Nothing once the app is gone.
    pub fn deliver(&self, topic: &str, msg: Message) -> Published {
        match self.topics.upgrade() {
            Some(t) => t.local.deliver(topic, msg, None),
            None => Published::default(),
        }
    }

    /// Delivers a message the store numbered `at` on a topic that keeps
    /// history (see [`Backplane::stores_history`]), to this node's
    /// subscribers of `topic` except `except` (a connection id on this
    /// node). Messages are taken in offset order: a duplicate is ignored,
    /// and when offsets were skipped (this node missed them) its
    /// subscribers catch up from the store before going on. On a topic
    /// with no history rule here it is delivered as it is.
    pub fn deliver_at(
        &self,
        topic: &str,
        at: Position,
        msg: Message,
        except: Option<u64>,
    ) -> Published {
        match self.topics.upgrade() {
            Some(t) => t.deliver_at(&self.runtime, topic, at, msg, except),
            None => Published::default(),
        }
    }

    /// Where `topic` stood in the store (its last position, `None` if the
    /// store could not tell) when this node's first subscriber to it
    /// joined, asked by the backplane in [`Backplane::subscribing`], ahead
    /// of any publish this node made later. Subscribers that joined meanwhile without a position go on
    /// from there (or are told of a gap): a connection that subscribes
    /// and then publishes sees its own message. Only with
    /// [`Backplane::stores_history`].
    pub fn listening_from(&self, topic: &str, last: Option<Position>) {
        if let Some(t) = self.topics.upgrade() {
            t.listening_from(&self.runtime, topic, last);
        }
    }

    /// Tells this node's subscribers of `topic` that messages published on
    /// it elsewhere may have been missed (through
    /// [`Handler::gap`](crate::Handler::gap)). Returns how many were told.
    pub fn gap(&self, topic: &str) -> usize {
        self.topics.upgrade().map_or(0, |t| t.local.gap(topic))
    }

    /// Closes this node's subscribers of `topic`, for a
    /// [`disconnect`](Backplane::disconnect) made on another node (or on a
    /// topic whose messages come back from the store, this one). Returns
    /// how many began closing.
    pub fn close_subscribers(&self, topic: &str, code: CloseCode, reason: &str) -> usize {
        (self.topics.upgrade()).map_or(0, |t| t.local.close_subscribers(topic, code, reason))
    }

    /// Closes connection `conn` of this node, for a
    /// [`disconnect_member`](Backplane::disconnect_member) made on another
    /// node. False when it is not open here.
    pub fn close_connection(&self, conn: u64, code: CloseCode, reason: &str) -> bool {
        (self.topics.upgrade()).is_some_and(|t| t.local.close_connection(conn, code, reason))
    }

    /// This node may have missed what was published on `topic` for a
    /// while (its link to the store broke): on a topic whose history the
    /// backplane stores, what was missed is fetched and delivered in
    /// order; on any other, subscribers are told of a gap. Returns how
    /// many were told.
    pub fn recover(&self, topic: &str) -> usize {
        self.topics
            .upgrade()
            .map_or(0, |t| t.recover(&self.runtime, topic))
    }

    /// Subscribers of `topic` on this node: a backplane listens to the
    /// topic on its store while this is above zero.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.topics
            .upgrade()
            .map_or(0, |t| t.local.subscriber_count(topic))
    }

    /// The metadata connection `member` is tracked with in `topic` on this
    /// node, if it is.
    pub fn member_meta(&self, topic: &str, member: u64) -> Option<Arc<RawValue>> {
        self.topics.upgrade()?.local.presence.meta(topic, member)
    }

    /// Members of `topic` on this node.
    pub fn member_count(&self, topic: &str) -> usize {
        self.topics
            .upgrade()
            .map_or(0, |t| t.local.presence.count(topic))
    }

    /// This node's topics and their subscribers, as `node` (its id),
    /// for a backplane to share with the others (see [`Backplane::nodes`]).
    pub fn report(&self, node: &str) -> NodeReport {
        (self.topics.upgrade()).map_or_else(NodeReport::default, |t| t.local.report(node))
    }

    /// Every (topic, connection) tracked on this node: what a backplane
    /// writes again when its store lost it.
    pub fn tracked(&self) -> Vec<(Arc<str>, u64)> {
        self.topics
            .upgrade()
            .map_or_else(Vec::new, |t| t.local.presence.all())
    }

    /// True while an admin page ([`App::admin`](crate::App::admin)) of
    /// this process watches: a backplane tells the other nodes, so that
    /// they count and report often too.
    pub fn is_watched_here(&self) -> bool {
        crate::watch::watched_here()
    }

    /// Whether an admin page watches another node: this one then counts
    /// what the page shows (messages, closes, publishes) and its
    /// backplane should report often. A backplane sets it from what the
    /// store says.
    pub fn set_watched_elsewhere(&self, watched: bool) {
        crate::watch::set_elsewhere(watched);
    }

    /// True while the app (its topics) is alive: background work ends when
    /// it is not.
    pub fn is_alive(&self) -> bool {
        self.topics.strong_count() > 0
    }
}

/// The default backplane: one process, no forwarding.
#[derive(Debug, Default, Clone, Copy)]
pub struct InProcess;

impl Backplane for InProcess {
    fn publish(
        &self,
        local: &LocalTopics,
        topic: &str,
        msg: Message,
        except: Option<u64>,
    ) -> Published {
        match local.history.retention(topic) {
            Some(retention) => local.record(topic, retention, msg, except),
            None => local.deliver(topic, msg, except),
        }
    }
}

/// This node's subscribers and tracked members, by topic, and its
/// connections.
#[derive(Default)]
pub struct LocalTopics {
    topics: RwLock<HashMap<Arc<str>, Vec<Arc<Shared>>>>,
    presence: LocalPresence,
    pub(crate) history: History,
    /// The serving server's connections (set when it starts).
    connections: RwLock<Option<Weak<dyn Connections>>>,
    /// Publishes by topic while an admin page watches.
    published: crate::watch::Published,
}

impl LocalTopics {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Vec<Arc<Shared>>>> {
        // Only plain collection updates run under the lock: poisoning is harmless.
        self.topics.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Vec<Arc<Shared>>>> {
        self.topics.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `msg` for every local subscriber of `topic` except `except`.
    pub fn deliver(&self, topic: &str, msg: Message, except: Option<u64>) -> Published {
        self.deliver_frame(topic, msg.into_codec(), except, None, None)
    }

    /// Queues `frame` for the subscribers of `topic`. With `recorded` (the
    /// message's position on a topic that keeps history), a subscriber that
    /// cannot take it falls behind and catches up from history once its
    /// queue drains, and one that is behind is skipped until then: nothing
    /// lost for good, nothing out of order. On a plain topic it is told of
    /// a gap instead. `except` gets `note` (its position) in its place,
    /// when there is one.
    pub(crate) fn deliver_frame(
        &self,
        topic: &str,
        frame: crate::protocol::Outgoing,
        except: Option<u64>,
        recorded: Option<Position>,
        note: Option<crate::protocol::Outgoing>,
    ) -> Published {
        let mut report = Published::default();
        let topics = self.read();
        let Some((name, subs)) = topics.get_key_value(topic) else {
            return report;
        };
        // Framed once, by the first subscriber written to directly.
        let framed = std::cell::OnceCell::new();
        let corked = crate::delivery::cork::is_on();
        for sub in subs {
            if Some(sub.id) == except {
                // Behind, it catches up from history, where it is anyway.
                if let Some(note) = &note
                    && sub.behind_on(topic).is_none()
                {
                    let _ = sub.push(note.clone(), true);
                }
                continue;
            }
            if recorded.is_some() && sub.behind_on(topic).is_some() {
                report.dropped += 1;
                continue;
            }
            // A clone shares the payload buffer: no copy per subscriber.
            // Corked (published from a connection's task): written with
            // the rest of that poll's publishes; else straight away.
            let status = if corked {
                let (status, first) = sub.push_corked(frame.clone());
                if first && !crate::delivery::cork::reached(sub.clone()) {
                    sub.waker.wake();
                }
                status
            } else {
                sub.push_framed(frame.clone(), true, &framed)
            };
            match status {
                SendStatus::Queued { .. } => report.delivered += 1,
                SendStatus::Backpressure { .. } => {
                    report.delivered += 1;
                    report.backpressured += 1;
                }
                SendStatus::Dropped { .. } => {
                    match recorded {
                        Some(at) => sub.set_behind(
                            name,
                            Some(Position {
                                offset: at.offset - 1,
                                ..at
                            }),
                        ),
                        // Right for memory, but never silent: once its
                        // queue has drained, the subscriber hears of a gap.
                        None => {
                            sub.push_gap(name);
                        }
                    }
                    report.dropped += 1;
                }
                SendStatus::Closed => report.dropped += 1,
            }
        }
        report
    }

    /// Subscribers of `topic` on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.read().get(topic).map_or(0, Vec::len)
    }

    /// This node's topics and their subscribers (its busiest
    /// [`REPORTED_TOPICS`](crate::REPORTED_TOPICS)), as node `node`.
    pub fn report(&self, node: &str) -> NodeReport {
        let counts = (self.read().iter())
            .map(|(topic, subs)| TopicCount {
                topic: topic.to_string(),
                subscribers: subs.len(),
            })
            .collect();
        let mut report = NodeReport::new(node, counts);
        let stats = &mut report.stats;
        stats.at_ms = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if let Some(connections) = self.connections() {
            stats.connections = connections.open();
            stats.draining = connections.draining();
        }
        stats.watched = crate::watch::counting();
        (stats.messages_in, stats.messages_out, stats.closes) = crate::watch::totals();
        stats.published = self.published.busiest(crate::REPORTED_TOPICS);
        report
    }

    /// How much history `topic` keeps, if it keeps any
    /// ([`App::history`](crate::App::history)).
    pub fn retention(&self, topic: &str) -> Option<Retention> {
        self.history.retention(topic)
    }

    /// Calls `f` with every local subscriber of `topic` (and the topic's
    /// shared name), under the subscriber table's shared lock.
    pub(crate) fn each(&self, topic: &str, mut f: impl FnMut(&Arc<str>, &Arc<Shared>)) {
        let topics = self.read();
        if let Some((name, subs)) = topics.get_key_value(topic) {
            for sub in subs {
                f(name, sub);
            }
        }
    }

    /// The members tracked in `topic` on this node, ordered by id.
    pub fn members(&self, topic: &str) -> Vec<Member> {
        self.presence.members(topic)
    }

    /// Members tracked in `topic` on this node.
    pub fn member_count(&self, topic: &str) -> usize {
        self.presence.count(topic)
    }

    /// Tells every local subscriber of `topic` of a possible gap; returns
    /// how many were told.
    pub fn gap(&self, topic: &str) -> usize {
        let topics = self.read();
        let Some((name, subs)) = topics.get_key_value(topic) else {
            return 0;
        };
        subs.iter().filter(|s| s.push_gap(name)).count()
    }

    /// Closes every local subscriber of `topic` with `code` and `reason`
    /// (a close handshake after what is queued for each). Returns how many
    /// began closing; one already closing is not counted. The code and
    /// reason must be sendable ([`CloseCode::is_sendable`](crate::CloseCode::is_sendable),
    /// at most [`MAX_CLOSE_REASON`](crate::MAX_CLOSE_REASON) bytes).
    pub fn close_subscribers(&self, topic: &str, code: CloseCode, reason: &str) -> usize {
        let topics = self.read();
        let Some(subs) = topics.get(topic) else {
            return 0;
        };
        (subs.iter())
            .filter(|s| s.request_close(code, reason, true).is_ok())
            .count()
    }

    /// The serving server's connections, while it serves.
    fn connections(&self) -> Option<Arc<dyn Connections>> {
        let held = self.connections.read().unwrap_or_else(|e| e.into_inner());
        held.as_ref().and_then(Weak::upgrade)
    }

    /// Closes connection `conn` of this node (a [`Ws::id`](crate::Ws::id))
    /// with `code` and `reason` (a close handshake after what is queued
    /// for it). False when no such connection is open here, or it was
    /// already closing. The code and reason must be sendable, as for
    /// [`close_subscribers`](Self::close_subscribers).
    pub fn close_connection(&self, conn: u64, code: CloseCode, reason: &str) -> bool {
        (self.connections().and_then(|c| c.get(conn)))
            .is_some_and(|c| c.request_close(code, reason, true).is_ok())
    }

    /// Adds a subscriber; true when it is the topic's first.
    pub(crate) fn add(&self, topic: &Arc<str>, sub: &Arc<Shared>) -> bool {
        let mut topics = self.write();
        let subs = topics.entry(topic.clone()).or_default();
        subs.push(sub.clone());
        let first = subs.len() == 1;
        crate::observe::subscribed(first);
        first
    }

    /// Removes a subscriber; true when the topic is now empty.
    pub(crate) fn remove(&self, topic: &str, id: u64) -> bool {
        let mut topics = self.write();
        let Some(subs) = topics.get_mut(topic) else {
            return false;
        };
        let found = subs.iter().position(|s| s.id == id);
        if let Some(i) = found {
            subs.swap_remove(i);
        }
        let empty = subs.is_empty();
        if found.is_some() {
            crate::observe::unsubscribed(empty);
        }
        if empty {
            topics.remove(topic);
        }
        empty
    }
}

/// Publishing and counting from anywhere: a cloneable, `Send + Sync` handle
/// to the app's topics. Get one from [`App::topics`](crate::App::topics) or
/// [`ServerHandle::topics`](crate::ServerHandle::topics).
#[derive(Clone)]
pub struct Topics {
    pub(crate) inner: Arc<TopicsInner>,
}

pub(crate) struct TopicsInner {
    pub(crate) local: LocalTopics,
    pub(crate) backplane: RwLock<Arc<dyn Backplane>>,
    /// Set by [`App::user_rooms`](crate::App::user_rooms).
    pub(crate) user_rooms: RwLock<Option<Arc<crate::topics::rooms::UserRooms>>>,
}

impl TopicsInner {
    pub(crate) fn backplane(&self) -> Arc<dyn Backplane> {
        self.backplane
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            inner: Arc::new(TopicsInner {
                local: LocalTopics::default(),
                backplane: RwLock::new(Arc::new(InProcess)),
                user_rooms: RwLock::new(None),
            }),
        }
    }
}

impl std::fmt::Debug for Topics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topics").finish_non_exhaustive()
    }
}

impl Topics {
    pub(crate) fn backplane(&self) -> Arc<dyn Backplane> {
        self.inner.backplane()
    }

    /// Publishes `msg` to every subscriber of `topic`.
    pub fn publish(&self, topic: &str, msg: impl Into<Message>) -> Published {
        self.publish_except(topic, msg.into(), None)
    }

    pub(crate) fn publish_except(
        &self,
        topic: &str,
        msg: Message,
        except: Option<u64>,
    ) -> Published {
        self.inner.local.published.count(topic);
        self.backplane()
            .publish(&self.inner.local, topic, msg, except)
    }

    /// Subscribers of `topic` on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.inner.local.subscriber_count(topic)
    }

    /// Who is in `topic`, on every node: each tracked connection
    /// ([`Ws::track`](crate::Ws::track)) with its metadata. With a
    /// multi-node backplane this asks its store, and fails if the store
    /// does not answer.
    pub async fn presence(&self, topic: &str) -> Result<Vec<Member>, crate::PresenceError> {
        self.backplane().presence(&self.inner.local, topic).await
    }

    /// The [`Member::id`] that connection `conn` (a [`Ws::id`](crate::Ws::id))
    /// has in [`presence`](Self::presence) lists: its id in process
    /// (`"7"`), its node's and its own with `wsway-redis`
    /// (`"cf6e…:7"`). Unique across nodes while the connection lives;
    /// opaque, for comparing with the ids in a list.
    pub fn member_id(&self, conn: u64) -> String {
        self.backplane().member_id(conn)
    }

    /// How many connections are tracked in `topic` on every node, without
    /// listing them: cheap for large topics.
    pub async fn presence_count(&self, topic: &str) -> Result<usize, crate::PresenceError> {
        self.backplane()
            .presence_count(&self.inner.local, topic)
            .await
    }

    /// Every live node's report (this one's as it is now).
    pub(crate) async fn reports(&self) -> Result<Vec<NodeReport>, crate::PresenceError> {
        self.backplane().nodes(&self.inner.local).await
    }

    /// The `most` busiest topics over every node, with their subscribers
    /// summed: what each node last reported (this one's as it is now),
    /// so another node's count may be a heartbeat old. With a multi-node
    /// backplane this asks its store, and fails if the store does not
    /// answer.
    ///
    /// ```
    /// # async fn f(topics: wsway::Topics) -> Result<(), wsway::PresenceError> {
    /// for t in topics.topic_counts(10).await?.topics {
    ///     println!("{}: {}", t.topic, t.subscribers);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn topic_counts(&self, most: usize) -> Result<TopicCounts, crate::PresenceError> {
        Ok(crate::topics::census::add_up(&self.reports().await?, most))
    }

    /// Closes one connection, on whichever node holds it, with `code` and
    /// `reason`, after what was sent to it before: `member` is its
    /// [`Member::id`] (from a presence list, or [`member_id`](Self::member_id)).
    /// Fails on an id this app's backplane never gives, and on a code or
    /// reason that may not be sent. On another node the close travels
    /// through the backplane: `closed` is then 0.
    pub fn disconnect_member(
        &self,
        member: &str,
        code: impl Into<CloseCode>,
        reason: &str,
    ) -> Result<Disconnected, crate::Error> {
        let code = code.into();
        crate::error::check_close(code, reason)?;
        (self.backplane())
            .disconnect_member(&self.inner.local, member, code, reason)
            .ok_or_else(|| crate::Error::new(crate::ErrorKind::InvalidMemberId))
    }

    /// Closes every subscriber of `topic`, on every node, with `code` and
    /// `reason`, after what was published to it before (so a goodbye
    /// published first arrives first). Fails on a code an endpoint may not
    /// send or a reason over [`MAX_CLOSE_REASON`](crate::MAX_CLOSE_REASON)
    /// bytes. A user's sockets are the subscribers of their room
    /// ([`Topics::user_topic`]).
    ///
    /// ```
    /// # fn f(topics: wsway::Topics) -> Result<(), wsway::Error> {
    /// topics.publish("room:7", "this room is closing");
    /// let done = topics.disconnect("room:7", 4000, "room closed")?;
    /// println!("{} closing here", done.closed);
    /// # Ok(()) }
    /// ```
    pub fn disconnect(
        &self,
        topic: &str,
        code: impl Into<CloseCode>,
        reason: &str,
    ) -> Result<Disconnected, crate::Error> {
        let code = code.into();
        crate::error::check_close(code, reason)?;
        Ok(self
            .backplane()
            .disconnect(&self.inner.local, topic, code, reason))
    }

    /// Tracks (or updates) connection `id` in `topic`; true when new.
    pub(crate) fn track(&self, topic: &Arc<str>, id: u64, meta: Arc<RawValue>) -> bool {
        let new = self.inner.local.presence.track(topic, id, meta);
        self.backplane().presence_changed(topic, id);
        new
    }

    pub(crate) fn untrack(&self, topic: &str, id: u64) {
        if self.inner.local.presence.untrack(topic, id) {
            self.backplane().presence_changed(topic, id);
        }
    }

    /// Starts the backplane's background work on `runtime`, for a server
    /// whose connections are `connections`.
    pub(crate) fn start(&self, runtime: Rt, connections: Arc<dyn Connections>) {
        *(self.inner.local.connections.write()).unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::downgrade(&connections));
        self.backplane().start(Node {
            runtime,
            topics: Arc::downgrade(&self.inner),
        });
    }

    /// Asks the backplane to finish forwarding and stop.
    pub(crate) fn stop(&self) -> BoxTask {
        self.backplane().stop()
    }

    pub(crate) fn set_backplane(&self, backplane: Arc<dyn Backplane>) {
        self.inner
            .local
            .history
            .set_stored(backplane.stores_history());
        *self
            .inner
            .backplane
            .write()
            .unwrap_or_else(|e| e.into_inner()) = backplane;
    }

    pub(crate) fn subscribe(&self, topic: &Arc<str>, sub: &Arc<Shared>) {
        if self.inner.local.add(topic, sub) {
            self.backplane().subscribed(topic);
        }
    }

    pub(crate) fn keep_history(&self, pattern: &str, retention: Retention) {
        self.inner.local.history.keep(pattern, retention);
    }

    pub(crate) fn unsubscribe(&self, topic: &str, id: u64) {
        let local = &self.inner.local;
        if local.remove(topic, id) {
            if local.history.is_stored() {
                // Not listened to any more: the window would go stale.
                local.history.forget(topic);
            }
            self.backplane().unsubscribed(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn subscribers_share_one_payload_buffer() {
        let topics = Topics::default();
        let topic: Arc<str> = "room".into();
        let subs: Vec<Arc<Shared>> = (1..=3)
            .map(|id| Arc::new(Shared::new(id, 1 << 20, false)))
            .collect();
        for s in &subs {
            topics.subscribe(&topic, s);
        }
        assert_eq!(topics.subscriber_count("room"), 3);
        let report = topics.publish_except("room", Message::binary(vec![7u8; 4096]), Some(2));
        assert_eq!(
            report,
            Published {
                delivered: 2,
                backpressured: 0,
                dropped: 0,
                forwarded: Forwarded::Local,
                position: None,
            }
        );

        let mut pointers = Vec::new();
        for s in [&subs[0], &subs[2]] {
            let mut batch = VecDeque::new();
            s.take_queue(&mut batch);
            match batch.pop_front() {
                Some(m) if m.opcode == crate::protocol::Opcode::Binary => {
                    pointers.push(m.payload.as_ptr())
                }
                other => panic!("expected the published message, got {other:?}"),
            }
        }
        assert_eq!(pointers[0], pointers[1], "one buffer, shared");
        let mut batch = VecDeque::new();
        subs[1].take_queue(&mut batch);
        assert!(batch.is_empty(), "the excluded publisher got nothing");

        // Text (every event-layer push) shares its buffer too.
        topics.publish_except("room", Message::text("x".repeat(4096)), None);
        let mut pointers = Vec::new();
        for s in &subs {
            let mut batch = VecDeque::new();
            s.take_queue(&mut batch);
            match batch.pop_front() {
                Some(m) if m.opcode == crate::protocol::Opcode::Text => {
                    pointers.push(m.payload.as_ptr())
                }
                other => panic!("expected the published text, got {other:?}"),
            }
        }
        assert!(
            pointers.windows(2).all(|w| w[0] == w[1]),
            "one text buffer, shared"
        );

        topics.unsubscribe("room", 1);
        topics.unsubscribe("room", 2);
        topics.unsubscribe("room", 3);
        assert_eq!(topics.subscriber_count("room"), 0);
    }
}
