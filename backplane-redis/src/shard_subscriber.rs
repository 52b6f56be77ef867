//! The subscriber on a Redis Cluster: one cluster connection in RESP3,
//! `SSUBSCRIBE` to the shard channel of every topic this node has
//! subscribers for (on the primary that holds its slot), other nodes'
//! frames handed to local subscribers as they arrive as pushes.
//!
//! redis-rs (1.8) does not move a sharded subscription when its slot moves
//! (a failover, a resharding), so this task keeps its own watch: every
//! [`ping_interval`](crate::RedisBuilder::ping_interval) it reads the
//! slot map (the read doubles as the liveness probe), and a topic whose
//! slot has another primary than when it was subscribed is subscribed
//! again there; what was published on it meanwhile is fetched from its
//! history, or told as a gap where there is none.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use event_listener::Event;
use futures_lite::future;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use wsway::Node;

use crate::backplane::Inner;
use crate::conn;
use crate::subscriber::{Changes, changes, forget_listening, receive, recover, recover_broken};
use crate::wait::{Backoff, within};

/// Pushes from the cluster connection, as redis-rs hands them over.
#[derive(Default)]
struct Pushes {
    queue: Mutex<VecDeque<PushInfo>>,
    arrived: Event,
}

impl Pushes {
    fn take(&self) -> VecDeque<PushInfo> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Which primary (`host:port`) held each listened topic's slot when it
/// was subscribed.
type Owners = HashMap<Arc<str>, String>;

pub(crate) async fn run(inner: Arc<Inner>, node: Node) {
    let seeds = inner.config.cluster.clone().unwrap_or_default();
    let mut backoff = Backoff::new(inner.config.reconnect_delay);
    let mut first = true;
    // Topics listened to when the connection broke (see `subscriber`).
    let mut broken: HashSet<Arc<str>> = HashSet::new();
    while !inner.is_stopping() && node.is_alive() {
        let pushes = Arc::new(Pushes::default());
        let sender = pushes.clone();
        let client = redis::cluster::ClusterClientBuilder::new(seeds.clone())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .connection_timeout(inner.config.connect_timeout)
            .response_timeout(inner.config.response_timeout)
            .push_sender(move |push: PushInfo| {
                sender
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_back(push);
                sender.arrived.notify(usize::MAX);
                Ok::<(), std::convert::Infallible>(())
            })
            .build();
        let opened = match client {
            Ok(client) => {
                within(
                    &node,
                    inner.config.connect_timeout,
                    client.get_async_connection(),
                )
                .await
            }
            Err(e) => Some(Err(e)),
        };
        let Some(Ok(mut conn)) = opened else {
            backoff.wait(&node, inner.stop.listen()).await;
            continue;
        };
        if !first {
            inner.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let mut owners = Owners::new();
        inner.dirty().extend(broken.iter().cloned());
        if settle(&inner, &node, &mut conn, &mut owners).await.is_err() {
            forget_listening(&inner, &mut broken);
            backoff.wait(&node, inner.stop.listen()).await;
            continue;
        }
        backoff.reset();
        inner.subscribed.store(true, Ordering::Release);
        recover_broken(&inner, &node, &mut broken);
        first = false;
        serve(&inner, &node, &mut conn, &pushes, &mut owners).await;
        inner.subscribed.store(false, Ordering::Release);
        inner.suspect.store(true, Ordering::Release);
        forget_listening(&inner, &mut broken);
    }
}

/// Why `serve` woke.
enum Wake {
    Pushed,
    Dirty,
    Check,
    Stop,
}

/// Hands pushes to local subscribers, settles subscriptions, and checks
/// the slot map on schedule, until the connection fails a check or the
/// backplane stops.
async fn serve(
    inner: &Inner,
    node: &Node,
    conn: &mut ClusterConnection,
    pushes: &Pushes,
    owners: &mut Owners,
) {
    let mut next_check = Instant::now() + inner.config.ping_interval;
    loop {
        let dirty = inner.dirty_changed.listen();
        let stop = inner.stop.listen();
        let arrived = pushes.arrived.listen();
        if inner.is_stopping() || !node.is_alive() {
            return;
        }
        let mut check_now = false;
        let mut dropped = Vec::new();
        for push in pushes.take() {
            match push.kind {
                PushKind::SMessage => {
                    if let [Value::BulkString(channel), Value::BulkString(payload)] = &push.data[..]
                    {
                        if let Ok(channel) = std::str::from_utf8(channel) {
                            receive(inner, node, channel, payload);
                        }
                    }
                }
                // The server dropped a subscription (its slot went to
                // another shard; it may be back already, so the slot map
                // alone would not tell): subscribed again at once. Our own
                // unsubscriptions are no longer in `owners`.
                PushKind::SUnsubscribe => {
                    check_now = true;
                    if let Some(Value::BulkString(channel)) = push.data.first() {
                        let topic = std::str::from_utf8(channel)
                            .ok()
                            .and_then(|c| inner.topic(c));
                        if let Some((topic, _)) = topic.and_then(|t| owners.get_key_value(t)) {
                            dropped.push(topic.clone());
                        }
                    }
                }
                // A node's connection broke: look at the slot map now
                // rather than at the next check.
                PushKind::Disconnection => check_now = true,
                _ => {}
            }
        }
        if check_now || Instant::now() >= next_check {
            if check(inner, node, conn, owners, dropped).await.is_err() {
                return;
            }
            next_check = Instant::now() + inner.config.ping_interval;
            continue;
        }
        if !inner.dirty().is_empty() {
            if settle(inner, node, conn, owners).await.is_err() {
                return;
            }
            continue;
        }
        let until_check = next_check.saturating_duration_since(Instant::now());
        let timer = node.runtime().sleep(until_check);
        let wake = future::or(
            future::or(
                async {
                    arrived.await;
                    Wake::Pushed
                },
                async {
                    dirty.await;
                    Wake::Dirty
                },
            ),
            future::or(
                async {
                    timer.await;
                    Wake::Check
                },
                async {
                    stop.await;
                    Wake::Stop
                },
            ),
        )
        .await;
        if let Wake::Stop = wake {
            return;
        }
    }
}

/// The slot map: for each range of slots, its primary's `host:port`.
struct SlotMap(Vec<(u16, u16, String)>);

impl SlotMap {
    fn owner(&self, slot: u16) -> Option<&str> {
        self.0
            .iter()
            .find(|(from, to, _)| (*from..=*to).contains(&slot))
            .map(|(_, _, owner)| owner.as_str())
    }
}

/// Reads the slot map (`CLUSTER SLOTS`), within the ping timeout: the
/// connection's liveness probe too.
async fn slot_map(inner: &Inner, node: &Node, conn: &mut ClusterConnection) -> Result<SlotMap, ()> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    let read = cmd.query_async::<Value>(conn);
    let Some(Ok(Value::Array(ranges))) = within(node, inner.config.ping_timeout, read).await else {
        return Err(());
    };
    let mut map = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(from)), Some(Value::Int(to)), Some(Value::Array(primary))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        let host = match primary.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            continue;
        };
        let (Ok(from), Ok(to)) = (u16::try_from(*from), u16::try_from(*to)) else {
            continue;
        };
        map.push((from, to, format!("{host}:{port}")));
    }
    Ok(SlotMap(map))
}

/// Subscribes again, where their slot went, to the topics whose primary
/// changed since they were subscribed or whose subscription the server
/// `dropped`, and recovers what they missed.
async fn check(
    inner: &Inner,
    node: &Node,
    conn: &mut ClusterConnection,
    owners: &mut Owners,
    dropped: Vec<Arc<str>>,
) -> Result<(), ()> {
    let map = slot_map(inner, node, conn).await?;
    let dropped: HashSet<Arc<str>> = dropped.into_iter().collect();
    let moved: Vec<(Arc<str>, String)> = owners
        .iter()
        .filter_map(|(topic, was)| {
            let now = map.owner(conn::slot(&inner.channel(topic)))?;
            (now != was || dropped.contains(topic)).then(|| (topic.clone(), now.to_owned()))
        })
        .collect();
    for (topic, now) in moved {
        let again = conn.ssubscribe(inner.channel(&topic));
        if !matches!(
            within(node, inner.config.response_timeout, again).await,
            Some(Ok(()))
        ) {
            return Err(());
        }
        owners.insert(topic.clone(), now);
        recover(inner, node, &topic);
    }
    Ok(())
}

/// Subscribes to the topics that gained their first local subscriber and
/// unsubscribes from those that lost their last (one command per topic:
/// a sharded command may not span slots). On failure the topics are left
/// dirty for the next connection.
async fn settle(
    inner: &Inner,
    node: &Node,
    conn: &mut ClusterConnection,
    owners: &mut Owners,
) -> Result<(), ()> {
    let Changes { dirty, join, leave } = changes(inner, node);
    let failed = |dirty: Vec<Arc<str>>| {
        inner.dirty().extend(dirty);
        Err(())
    };
    // Read before subscribing: a slot that moves after this is caught by
    // the next check.
    let map = match join.is_empty() {
        true => SlotMap(Vec::new()),
        false => match slot_map(inner, node, conn).await {
            Ok(map) => map,
            Err(()) => return failed(dirty),
        },
    };
    let limit = inner.config.response_timeout;
    for topic in join {
        let subscribed = within(node, limit, conn.ssubscribe(inner.channel(&topic))).await;
        if !matches!(subscribed, Some(Ok(()))) {
            return failed(dirty);
        }
        let owner = map
            .owner(conn::slot(&inner.channel(&topic)))
            .unwrap_or_default();
        owners.insert(topic.clone(), owner.to_owned());
        inner.listening().insert(topic);
        inner.listening_changed.notify(usize::MAX);
    }
    for topic in leave {
        let left = within(node, limit, conn.sunsubscribe(inner.channel(&topic))).await;
        if !matches!(left, Some(Ok(()))) {
            return failed(dirty);
        }
        owners.remove(&topic);
        inner.listening().remove(&topic);
    }
    Ok(())
}
