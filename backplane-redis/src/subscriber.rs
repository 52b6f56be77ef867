//! The subscriber task: one Redis connection in subscribed mode, listening
//! to the channel of every topic this node has subscribers for (and only
//! those), handing other nodes' frames to local subscribers, probing its
//! own liveness, and reporting a gap on every topic after a break.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_lite::{StreamExt, future};
use redis::aio::{PubSubSink, PubSubStream};
use wsway::Node;

use crate::backplane::Inner;
use crate::frame::{self, Body};
use crate::wait::{Backoff, within};

pub(crate) async fn run(inner: Arc<Inner>, node: Node) {
    let mut backoff = Backoff::new(inner.config.reconnect_delay);
    let mut first = true;
    // Topics listened to when a connection broke: what was published on
    // them meanwhile is recovered once a connection listens again.
    let mut broken: HashSet<Arc<str>> = HashSet::new();
    let crate::conn::Target::Single(client) = &inner.target else {
        return; // a cluster's is `shard_subscriber`
    };
    while !inner.is_stopping() && node.is_alive() {
        let opened = within(
            &node,
            inner.config.connect_timeout,
            client.get_async_pubsub(),
        )
        .await;
        let Some(Ok(pubsub)) = opened else {
            backoff.wait(&node, inner.stop.listen()).await;
            continue;
        };
        if !first {
            inner.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let (mut sink, mut stream) = pubsub.split();
        // Everything listened to before the break is settled again.
        inner.dirty().extend(broken.iter().cloned());
        if settle(&inner, &node, &mut sink).await.is_err() {
            forget_listening(&inner, &mut broken);
            backoff.wait(&node, inner.stop.listen()).await;
            continue;
        }
        backoff.reset();
        inner.subscribed.store(true, Ordering::Release);
        recover_broken(&inner, &node, &mut broken);
        first = false;
        serve(&inner, &node, &mut sink, &mut stream).await;
        inner.subscribed.store(false, Ordering::Release);
        inner.suspect.store(true, Ordering::Release);
        forget_listening(&inner, &mut broken);
    }
}

/// What other nodes published while no connection listened never reached
/// this node: on every topic of `broken` still listened to, it is fetched
/// from history where there is one, and told as a gap where there is not.
pub(crate) fn recover_broken(inner: &Inner, node: &Node, broken: &mut HashSet<Arc<str>>) {
    let listening = inner.listening().clone();
    for topic in broken.drain().filter(|t| listening.contains(t)) {
        recover(inner, node, &topic);
    }
}

/// What was published on `topic` while this node did not listen: fetched
/// from history where there is one, told as a gap where there is not.
pub(crate) fn recover(inner: &Inner, node: &Node, topic: &str) {
    if node.recover(topic) > 0 {
        inner.gaps.fetch_add(1, Ordering::Relaxed);
    }
}

/// The connection broke: nothing is listened to any more, and what was
/// joins the topics to recover.
pub(crate) fn forget_listening(inner: &Inner, broken: &mut HashSet<Arc<str>>) {
    broken.extend(inner.listening().drain());
    inner.listening_changed.notify(usize::MAX);
}

/// Why `serve` woke.
enum Wake {
    Frame(Option<redis::Msg>),
    Dirty,
    Quiet,
    Stop,
}

/// Reads frames until the connection breaks or the backplane stops.
async fn serve(inner: &Inner, node: &Node, sink: &mut PubSubSink, stream: &mut PubSubStream) {
    loop {
        let dirty = inner.dirty_changed.listen();
        let stop = inner.stop.listen();
        if inner.is_stopping() || !node.is_alive() {
            return;
        }
        if !inner.dirty().is_empty() {
            if settle(inner, node, sink).await.is_err() {
                return;
            }
            continue;
        }
        let quiet = node.runtime().sleep(inner.config.ping_interval);
        let wake = future::or(
            future::or(async { Wake::Frame(stream.next().await) }, async {
                dirty.await;
                Wake::Dirty
            }),
            future::or(
                async {
                    quiet.await;
                    Wake::Quiet
                },
                async {
                    stop.await;
                    Wake::Stop
                },
            ),
        )
        .await;
        match wake {
            Wake::Frame(Some(msg)) => {
                receive(inner, node, msg.get_channel_name(), msg.get_payload_bytes())
            }
            Wake::Frame(None) | Wake::Stop => return,
            Wake::Dirty => {}
            Wake::Quiet => {
                // The liveness probe: a connection that cannot answer a
                // ping in time is dropped and reopened.
                let pong =
                    within(node, inner.config.ping_timeout, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Some(Ok(_))) {
                    return;
                }
            }
        }
    }
}

/// Subscribes to the topics that gained their first local subscriber and
/// unsubscribes from those that lost their last, judged by the real count
/// (the hooks only say which topics to look at). On failure the topics are
/// left dirty for the next connection.
async fn settle(inner: &Inner, node: &Node, sink: &mut PubSubSink) -> Result<(), ()> {
    let Changes { dirty, join, leave } = changes(inner, node);
    let limit = inner.config.response_timeout;
    let channels =
        |topics: &[Arc<str>]| topics.iter().map(|t| inner.channel(t)).collect::<Vec<_>>();
    let mut ok = true;
    if !join.is_empty() {
        ok = matches!(
            within(node, limit, sink.subscribe(channels(&join))).await,
            Some(Ok(()))
        );
        if ok {
            inner.listening().extend(join);
            inner.listening_changed.notify(usize::MAX);
        }
    }
    if ok && !leave.is_empty() {
        ok = matches!(
            within(node, limit, sink.unsubscribe(channels(&leave))).await,
            Some(Ok(()))
        );
        if ok {
            let mut listening = inner.listening();
            for topic in &leave {
                listening.remove(topic);
            }
        }
    }
    if ok {
        return Ok(());
    }
    inner.dirty().extend(dirty);
    Err(())
}

/// What [`settle`] takes on: the dirty topics, and of them those to
/// listen to and those to stop listening to.
pub(crate) struct Changes {
    pub(crate) dirty: Vec<Arc<str>>,
    pub(crate) join: Vec<Arc<str>>,
    pub(crate) leave: Vec<Arc<str>>,
}

/// Takes the dirty topics and judges each by its real subscriber count.
pub(crate) fn changes(inner: &Inner, node: &Node) -> Changes {
    let dirty: Vec<Arc<str>> = inner.dirty().drain().collect();
    let (mut join, mut leave) = (Vec::new(), Vec::new());
    let listening = inner.listening();
    for topic in &dirty {
        // This node's control topic is listened to for as long as it runs.
        let wanted = node.subscriber_count(topic) > 0 || **topic == *inner.control;
        if wanted && !listening.contains(topic) {
            join.push(topic.clone());
        } else if !wanted && listening.contains(topic) {
            leave.push(topic.clone());
        }
    }
    drop(listening);
    Changes { dirty, join, leave }
}

/// Hands one frame from Redis to the local subscribers.
pub(crate) fn receive(inner: &Inner, node: &Node, channel: &str, payload: &[u8]) {
    let Some(topic) = inner.topic(channel) else {
        return;
    };
    match frame::decode(payload) {
        // Numbered by the store: delivered from here on every node alike,
        // our own publishes included (skipping the connection they skip).
        Ok((from, Body::Numbered { at, except, msg })) => {
            let ours = from == inner.node_id;
            if !ours {
                inner.received.fetch_add(1, Ordering::Relaxed);
            }
            node.deliver_at(topic, at, msg, except.filter(|_| ours));
        }
        // A close for every node (a topic whose messages come back from
        // the store): in order with them, ours included.
        Ok((
            _,
            Body::Close {
                code,
                reason,
                all: true,
            },
        )) => {
            node.close_subscribers(topic, code.into(), &reason);
        }
        // Our own publish: already delivered locally, never twice.
        Ok((from, _)) if from == inner.node_id => {}
        Ok((_, Body::Close { code, reason, .. })) => {
            node.close_subscribers(topic, code.into(), &reason);
        }
        Ok((_, Body::CloseOne { conn, code, reason })) => {
            if topic == &*inner.control {
                node.close_connection(conn, code.into(), &reason);
            }
        }
        Ok((_, Body::Message(m))) => {
            inner.received.fetch_add(1, Ordering::Relaxed);
            node.deliver(topic, m);
        }
        Ok((_, Body::Gap)) => signal_gap(inner, node, topic),
        Err(_) => {
            inner.malformed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(crate) fn signal_gap(inner: &Inner, node: &Node, topic: &str) {
    if node.gap(topic) > 0 {
        inner.gaps.fetch_add(1, Ordering::Relaxed);
    }
}
