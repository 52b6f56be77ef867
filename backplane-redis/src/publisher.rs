//! The publisher task: forwards the outbound queue to Redis, a pipeline of
//! `PUBLISH`es at a time, in order, with this node's presence changes and
//! heartbeat; reconnects when Redis goes away.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_lite::future;
use redis::aio::MultiplexedConnection;
use wsway::Node;

use crate::backplane::Inner;
use crate::config::RedisBuilder;
use crate::frame;
use crate::presence;
use crate::wait::{Backoff, within};

/// Opens the publishing connection and checks that Redis answers.
pub(crate) async fn connect(
    client: &redis::Client,
    config: &RedisBuilder,
) -> redis::RedisResult<MultiplexedConnection> {
    let settings = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&settings)
        .await?;
    redis::cmd("PING").query_async::<()>(&mut conn).await?;
    Ok(conn)
}

pub(crate) async fn run(inner: Arc<Inner>, node: Node, mut conn: Option<MultiplexedConnection>) {
    let mut backoff = Backoff::new(inner.config.reconnect_delay);
    let gap_note = frame::encode_gap(&inner.node_id);
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
            None => match connect(&inner.client, &inner.config).await {
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
        let (gaps, batch) = inner.outbound.take(inner.config.batch_bytes);
        // Taken after the batch: a member who joined or left before a
        // publish is written before that publish, in the same pipeline, so
        // a node that hears the publish and asks who is there sees it.
        let changes = inner.presence.take();
        let beating = Instant::now() >= next_beat;
        let mut pipe = redis::pipe();
        if beating {
            presence::heartbeat(&mut pipe, &inner.keys, beat * 3);
        }
        presence::write(&mut pipe, &inner.keys, &node, &changes);
        for topic in &gaps {
            pipe.cmd("PUBLISH")
                .arg(inner.channel(topic))
                .arg(&gap_note[..])
                .ignore();
        }
        for out in &batch {
            pipe.cmd("PUBLISH")
                .arg(inner.channel(&out.topic))
                .arg(&out.frame[..])
                .ignore();
        }
        let sent = within(
            &node,
            inner.config.response_timeout,
            pipe.query_async::<Vec<i64>>(&mut c),
        )
        .await;
        match sent {
            Some(Ok(replies)) => {
                inner.outbound.sent();
                if beating {
                    next_beat = Instant::now() + beat;
                    // The liveness key had gone (first beat, Redis emptied,
                    // or paused past the TTL): sweeps may have cleared our
                    // entries, so all of them are written again.
                    if replies.first() == Some(&0) {
                        inner.presence.mark_all(&node);
                    }
                }
                conn = Some(c);
            }
            // Failed or timed out: the publishes may or may not have
            // reached Redis. They are not resent (that could deliver
            // twice); the other nodes get gap notes instead. Presence
            // writes are idempotent and simply made again.
            _ => {
                inner.outbound.failed(gaps, batch);
                inner.presence.restore(changes);
                inner.set_query_connection(None);
            }
        }
    }
}

/// A node that stops takes its members out at once (best effort: if Redis
/// does not answer, they expire with the liveness key).
async fn goodbye(inner: &Inner, node: &Node, conn: Option<MultiplexedConnection>) {
    inner.set_query_connection(None);
    let Some(mut c) = conn else {
        return;
    };
    let mut pipe = redis::pipe();
    presence::leave(&mut pipe, &inner.keys);
    let _ = within(
        node,
        inner.config.response_timeout,
        pipe.query_async::<()>(&mut c),
    )
    .await;
}
