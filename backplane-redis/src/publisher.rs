//! The publisher task: forwards the outbound queue to Redis, a pipeline of
//! `PUBLISH`es (and publish scripts, on topics that keep history) at a
//! time, in order, with this node's presence changes and
//! heartbeat; reconnects when Redis goes away.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_lite::future;
use wsway::Node;

use crate::backplane::Inner;
use crate::conn::Conn;
use crate::frame;
use crate::history::{self, Script};
use crate::outbound::{Kind, Outgoing};
use crate::presence;
use crate::wait::{Backoff, within};

pub(crate) async fn run(inner: Arc<Inner>, node: Node, mut conn: Option<Conn>) {
    let mut backoff = Backoff::new(inner.config.reconnect_delay);
    let beat = inner.config.presence_heartbeat;
    // The first round announces the node before any member is read.
    let mut next_beat = Instant::now();
    loop {
        let changed = inner.outbound.listen();
        let work = inner.outbound.has_work() || !inner.presence.is_empty();
        if !work && (inner.is_stopping() || !node.is_alive()) {
            goodbye(&inner, &node, conn).await;
            return;
        }
        let now = Instant::now();
        if !work && now < next_beat {
            future::or(changed, node.runtime().sleep(next_beat - now)).await;
            continue;
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match inner.target.connect(&inner.config).await {
                Ok(c) => {
                    inner.reconnects.fetch_add(1, Ordering::Relaxed);
                    inner.set_query_connection(Some(&c));
                    backoff.reset();
                    c
                }
                Err(_) => {
                    if inner.is_stopping() {
                        // Stopping with Redis away: what is left is lost,
                        // and says so (counted as dropped). This node's
                        // members expire with its liveness key.
                        let (gaps, batch) = inner.outbound.take(usize::MAX);
                        inner.outbound.failed(gaps, batch);
                        return;
                    }
                    backoff.wait(&node, inner.stop.listen()).await;
                    continue;
                }
            },
        };
        // The subscription connection broke since the last batch: Redis
        // may have restarted and this connection be dead without knowing
        // it yet. A ping finds out before any publish is risked on it.
        if inner.suspect.swap(false, Ordering::AcqRel) {
            let ping = redis::cmd("PING");
            let ping = ping.query_async::<()>(&mut c);
            if !matches!(
                within(&node, inner.config.response_timeout, ping).await,
                Some(Ok(()))
            ) {
                inner.set_query_connection(None);
                continue;
            }
        }
        let (gaps, batch) = inner.outbound.take(inner.config.batch_bytes);
        if inner.is_cluster() {
            let changes = inner.presence.take();
            let beating = Instant::now() >= next_beat;
            if beating {
                next_beat = Instant::now() + beat;
            }
            let round = Round {
                gaps,
                batch,
                changes,
                beating,
            };
            if cluster_round(&inner, &node, &mut c, round).await {
                conn = Some(c);
            } else {
                inner.set_query_connection(None);
            }
            continue;
        }
        // Taken after the batch: a member who joined or left before a
        // publish is written before that publish, in the same pipeline, so
        // a node that hears the publish and asks who is there sees it.
        let changes = inner.presence.take();
        let beating = Instant::now() >= next_beat;
        let pipe = pipeline(&inner, &node, &gaps, &batch, &changes, beating);
        let sent = within(
            &node,
            inner.config.response_timeout,
            pipe.query_async::<Vec<redis::Value>>(&mut c),
        )
        .await;
        match sent {
            Some(Ok(replies)) => {
                inner.outbound.sent();
                let mut replies = replies.into_iter();
                if beating {
                    next_beat = Instant::now() + beat;
                    // The liveness key had gone (first beat, Redis emptied,
                    // or paused past the TTL): sweeps may have cleared our
                    // entries, so all of them are written again.
                    if replies.next() == Some(redis::Value::Int(0)) {
                        inner.presence.mark_all(&node);
                    }
                }
                // The marks' replies follow, in order.
                for (out, reply) in batch.iter().filter(|o| o.kind == Kind::Mark).zip(replies) {
                    node.listening_from(&out.topic, history::position(reply));
                }
                conn = Some(c);
            }
            // Failed or timed out: the publishes may or may not have
            // reached Redis. They are not resent (that could deliver
            // twice); the other nodes get gap notes instead. Presence
            // writes are idempotent and simply made again.
            _ => {
                // Numbered publishes are delivered here only when they come
                // back from Redis: this node's subscribers are told too,
                // and those waiting for a mark go on with a gap.
                for out in &batch {
                    match out.kind {
                        Kind::Plain => {}
                        Kind::Numbered(_) => {
                            node.gap(&out.topic);
                        }
                        Kind::Mark => node.listening_from(&out.topic, None),
                    }
                }
                inner.outbound.failed(gaps, batch);
                inner.presence.restore(changes);
                inner.set_query_connection(None);
            }
        }
    }
}

/// One round's pipeline: the heartbeat (its reply first), presence writes,
/// gap notes, then the batch in order (marks' replies after the
/// heartbeat's; every other reply ignored).
fn pipeline(
    inner: &Inner,
    node: &Node,
    gaps: &[Arc<str>],
    batch: &[Outgoing],
    changes: &[(Arc<str>, u64)],
    beating: bool,
) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    if beating {
        presence::heartbeat(&mut pipe, &inner.keys);
    }
    presence::write(&mut pipe, &inner.keys, node, changes);
    let gap_note = frame::encode_gap(&inner.node_id);
    for topic in gaps {
        pipe.cmd("PUBLISH")
            .arg(inner.channel(topic))
            .arg(&gap_note[..])
            .ignore();
    }
    for out in batch {
        let channel = inner.channel(&out.topic);
        let keys = || inner.layout.history(&out.topic);
        match out.kind {
            Kind::Plain => {
                pipe.cmd("PUBLISH")
                    .arg(channel)
                    .arg(&out.frame[..])
                    .ignore();
            }
            Kind::Numbered(retention) => {
                let sha = Script::Sha(inner.publish_script.get_hash());
                pipe.add_command(history::publish(
                    sha,
                    &keys(),
                    &channel,
                    &out.frame,
                    retention,
                ))
                .ignore();
            }
            Kind::Mark => {
                let sha = Script::Sha(inner.mark_script.get_hash());
                pipe.add_command(history::mark(sha, &keys()));
            }
        }
    }
    pipe
}

/// What one round sends: gap notes, the batch, presence changes, and
/// whether it carries the heartbeat.
struct Round {
    gaps: Vec<Arc<str>>,
    batch: Vec<Outgoing>,
    changes: Vec<(Arc<str>, u64)>,
    beating: bool,
}

/// One round on a cluster: split by the slot of each topic (a pipeline may
/// not cross slots), each slot's pipeline in order, all of them at once.
/// A slot whose pipeline fails turns its publishes into gap notes, as on
/// one server, and its presence writes are made again later; the others
/// are sent. Gives whether every pipeline got its answer (else the
/// connection is suspect).
async fn cluster_round(inner: &Inner, node: &Node, conn: &mut Conn, round: Round) -> bool {
    let parts = split_by_slot(inner, node, round);
    let limit = inner.config.response_timeout;
    let sends = parts.iter().map(|p| {
        let mut conn = conn.clone();
        let pipe = slot_pipeline(inner, node, p);
        async move {
            within(
                node,
                limit,
                pipe.query_async::<Vec<redis::Value>>(&mut conn),
            )
            .await
        }
    });
    let results = join_all(sends.collect()).await;
    let mut all = true;
    for (part, result) in parts.into_iter().zip(results) {
        match result {
            Some(Ok(replies)) => {
                let mut replies = replies.into_iter();
                // Topics where this node's heartbeat found its entries
                // gone (the slot's primary restarted empty, or failed over
                // before they reached its replica): written again.
                let lost: Vec<&Arc<str>> = part
                    .beats
                    .iter()
                    .zip(replies.by_ref())
                    .filter(|(_, reply)| *reply == redis::Value::Int(0))
                    .map(|(topic, _)| topic)
                    .collect();
                if !lost.is_empty() {
                    inner.presence.mark_topics(node, &lost);
                }
                let marks = part.batch.iter().filter(|o| o.kind == Kind::Mark);
                for (out, reply) in marks.zip(replies) {
                    node.listening_from(&out.topic, history::position(reply));
                }
            }
            _ => {
                all = false;
                for out in &part.batch {
                    match out.kind {
                        Kind::Plain => {}
                        Kind::Numbered(_) => {
                            node.gap(&out.topic);
                        }
                        Kind::Mark => node.listening_from(&out.topic, None),
                    }
                }
                inner.outbound.failed(part.gaps, part.batch);
                inner.presence.restore(part.changes);
            }
        }
    }
    inner.outbound.sent();
    all
}

/// One slot's share of a round.
#[derive(Default)]
struct Part {
    /// Topics where this node's heartbeat is renewed (their replies first).
    beats: Vec<Arc<str>>,
    changes: Vec<(Arc<str>, u64)>,
    gaps: Vec<Arc<str>>,
    batch: Vec<Outgoing>,
}

fn split_by_slot(inner: &Inner, node: &Node, round: Round) -> Vec<Part> {
    let mut parts = Parts::default();
    let slot_of = |topic: &str| inner.layout.slot(topic);
    if round.beating {
        let mut topics: Vec<Arc<str>> = node.tracked().into_iter().map(|(t, _)| t).collect();
        topics.sort_unstable();
        topics.dedup();
        for topic in topics {
            parts.of(slot_of(&topic)).beats.push(topic);
        }
    }
    for change in round.changes {
        parts.of(slot_of(&change.0)).changes.push(change);
    }
    for topic in round.gaps {
        parts.of(slot_of(&topic)).gaps.push(topic);
    }
    for out in round.batch {
        parts.of(slot_of(&out.topic)).batch.push(out);
    }
    parts.parts
}

/// A round's parts, one per slot, in the order their slots first came.
#[derive(Default)]
struct Parts {
    parts: Vec<Part>,
    index: std::collections::HashMap<u16, usize>,
}

impl Parts {
    fn of(&mut self, slot: u16) -> &mut Part {
        let parts = &mut self.parts;
        let at = *self.index.entry(slot).or_insert_with(|| {
            parts.push(Part::default());
            parts.len() - 1
        });
        &mut self.parts[at]
    }
}

/// A slot's pipeline: heartbeats (their replies first), presence writes
/// (before the publishes, as on one server), gap notes, then the batch in
/// order (marks' replies after the heartbeats').
fn slot_pipeline(inner: &Inner, node: &Node, part: &Part) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for topic in &part.beats {
        presence::beat_topic(&mut pipe, &inner.keys, topic);
    }
    presence::write(&mut pipe, &inner.keys, node, &part.changes);
    let gap_note = frame::encode_gap(&inner.node_id);
    for topic in &part.gaps {
        pipe.cmd("SPUBLISH")
            .arg(inner.channel(topic))
            .arg(&gap_note[..])
            .ignore();
    }
    for out in &part.batch {
        let channel = inner.channel(&out.topic);
        let keys = inner.layout.history(&out.topic);
        match out.kind {
            Kind::Plain => {
                pipe.cmd("SPUBLISH")
                    .arg(channel)
                    .arg(&out.frame[..])
                    .ignore();
            }
            Kind::Numbered(retention) => {
                let script = Script::Text(history::SPUBLISH);
                pipe.add_command(history::publish(
                    script, &keys, &channel, &out.frame, retention,
                ))
                .ignore();
            }
            Kind::Mark => {
                pipe.add_command(history::mark(Script::Text(history::CLUSTER_MARK), &keys));
            }
        }
    }
    pipe
}

/// Runs every future to its end, at once; their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// A node that stops takes its members out at once (best effort: if Redis
/// does not answer, they expire with the liveness key).
async fn goodbye(inner: &Inner, node: &Node, conn: Option<Conn>) {
    inner.set_query_connection(None);
    let Some(mut c) = conn else {
        return;
    };
    let mut pipe = redis::pipe();
    crate::report::leave(&mut pipe, inner);
    // On a cluster each member's leave was written as it closed; what is
    // left expires with this node's deadlines.
    if !inner.is_cluster() {
        presence::leave(&mut pipe, &inner.keys);
    }
    let _ = within(
        node,
        inner.config.response_timeout,
        pipe.query_async::<()>(&mut c),
    )
    .await;
}
