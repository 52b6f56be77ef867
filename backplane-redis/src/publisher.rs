//! The publisher task: forwards the outbound queue to Redis, a pipeline of
//! `PUBLISH`es at a time, in order; reconnects when Redis goes away.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redis::aio::MultiplexedConnection;
use wsway::Node;

use crate::backplane::Inner;
use crate::config::RedisBuilder;
use crate::frame;
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
    loop {
        let changed = inner.outbound.listen();
        if !inner.outbound.has_work() {
            if inner.is_stopping() || !node.is_alive() {
                return;
            }
            changed.await;
            continue;
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match connect(&inner.client, &inner.config).await {
                Ok(c) => {
                    inner.reconnects.fetch_add(1, Ordering::Relaxed);
                    backoff.reset();
                    c
                }
                Err(_) => {
                    if inner.is_stopping() {
                        // Stopping with Redis away: what is left is lost,
                        // and says so (counted as dropped).
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
        let mut pipe = redis::pipe();
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
            pipe.query_async::<()>(&mut c),
        )
        .await;
        match sent {
            Some(Ok(())) => {
                inner.outbound.sent();
                conn = Some(c);
            }
            // Failed or timed out: the publishes may or may not have
            // reached Redis. They are not resent (that could deliver
            // twice); the other nodes get gap notes instead.
            _ => inner.outbound.failed(gaps, batch),
        }
    }
}
