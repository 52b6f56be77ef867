//! What the Redis Cluster support (issue 32) builds on, checked against a
//! real cluster before wsway-redis relies on it: our slot function agrees
//! with `CLUSTER KEYSLOT`, and redis-rs' async cluster connection delivers
//! sharded pub/sub (SSUBSCRIBE / SPUBLISH over RESP3) from every primary,
//! and, after a primary is killed and its replica promoted, delivers again
//! once the subscriber sends SSUBSCRIBE anew (redis-rs 1.8.1 does not move
//! a sharded subscription to the promoted replica by itself: wsway-redis
//! must).
//!
//! Needs `redis-server` and `redis-cli` (Debian's `redis-server`, which
//! `.ci/run` installs); ignored by the plain `cargo test`.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis_cluster::{RedisCluster, slot};

/// One channel per primary: hash tags chosen so that their slots land on
/// three different primaries.
fn channel_per_primary(cluster: &RedisCluster) -> Vec<(String, usize)> {
    let mut picked: Vec<(String, usize)> = Vec::new();
    for i in 0.. {
        let channel = format!("wsway:{{room{i}}}");
        let primary = cluster.primary_of(slot(&channel));
        if picked.iter().all(|(_, p)| *p != primary) {
            picked.push((channel, primary));
        }
        if picked.len() == 3 {
            return picked;
        }
    }
    unreachable!()
}

/// The messages received so far, as (channel, payload).
type Received = Arc<Mutex<BTreeSet<(String, String)>>>;

fn sink(received: &Received) -> impl Fn(redis::PushInfo) -> Result<(), ()> + Send + Sync + 'static {
    let received = received.clone();
    move |push: redis::PushInfo| {
        if push.kind == redis::PushKind::SMessage {
            if let [channel, payload] = &push.data[..] {
                let text = |v: &redis::Value| match v {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("{other:?}"),
                };
                received
                    .lock()
                    .unwrap()
                    .insert((text(channel), text(payload)));
            }
        }
        Ok(())
    }
}

async fn wait_for(received: &Received, want: &BTreeSet<(String, String)>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if want.is_subset(&received.lock().unwrap()) {
            return true;
        }
        ::tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[test]
#[ignore = "needs redis-server and redis-cli; .ci/run installs them and runs this"]
fn sharded_pubsub_from_every_primary_and_after_a_failover() {
    let mut cluster = RedisCluster::start();
    for key in [
        "wsway:lobby",
        "wsway:{room}:history",
        "{}",
        "a{b}c",
        "{x}{y}",
    ] {
        let keyslot: u16 = cluster.nodes[0]
            .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .expect("CLUSTER KEYSLOT");
        assert_eq!(slot(key), keyslot, "the slot of {key:?}");
    }
    let channels = channel_per_primary(&cluster);
    let rt = ::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let received: Received = Arc::default();
        let client = redis::cluster::ClusterClientBuilder::new(cluster.seeds())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(sink(&received))
            .build()
            .expect("a cluster client");
        let mut sub = client.get_async_connection().await.expect("connect");
        for (channel, _) in &channels {
            sub.ssubscribe(channel).await.expect("SSUBSCRIBE");
        }
        let publisher = redis::cluster::ClusterClient::new(cluster.seeds()).expect("a client");
        let mut publisher = publisher.get_async_connection().await.expect("connect");
        let publish_all = |round: &'static str| {
            let channels = channels.clone();
            let mut publisher = publisher.clone();
            async move {
                let mut want = BTreeSet::new();
                for (channel, _) in &channels {
                    // Retried while the cluster fails over (a MOVED, a refused
                    // connection): what counts is that it lands once.
                    let deadline = Instant::now() + Duration::from_secs(20);
                    loop {
                        let r: redis::RedisResult<i64> =
                            redis::cmd("SPUBLISH").arg(channel).arg(round).query_async(&mut publisher).await;
                        match r {
                            Ok(_) => break,
                            Err(e) if Instant::now() < deadline => {
                                eprintln!("SPUBLISH {channel}: {e}, retrying");
                                ::tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            Err(e) => panic!("SPUBLISH {channel}: {e}"),
                        }
                    }
                    want.insert((channel.clone(), round.to_owned()));
                }
                want
            }
        };
        let want = publish_all("before").await;
        assert!(wait_for(&received, &want, Duration::from_secs(5)).await, "every primary's message: {:?}", received.lock().unwrap());

        // Kill the primary of the first channel; its replica takes over.
        let killed = Instant::now();
        cluster.fail_over(slot(&channels[0].0));
        eprintln!("failed over in {:?}", killed.elapsed());
        // What redis-rs does by itself: it refreshes its slot map (a keyed
        // command on the subscribing connection reaches the new primary),
        // but it does not move the sharded subscription there. Observed
        // with redis 1.8.1: PUBSUB SHARDNUMSUB stays 0 on the promoted
        // replica for 30 s. Recorded here, not asserted: a fix upstream
        // must not fail this test.
        let nudge: redis::RedisResult<Option<String>> = redis::cmd("GET")
            .arg(format!("{}:ping", channels[0].0))
            .query_async(&mut sub)
            .await;
        let want = publish_all("after, unaided").await;
        let unaided = wait_for(&received, &want, Duration::from_secs(3)).await;
        eprintln!("after the failover, without a new SSUBSCRIBE: keyed command {nudge:?}, delivered: {unaided}");
        // What wsway-redis' cluster subscriber does: SSUBSCRIBE again to the
        // topics of the slots whose primary changed. Delivery resumes at once.
        sub.ssubscribe(&channels[0].0).await.expect("SSUBSCRIBE after the failover");
        let owner = cluster.primary_of(slot(&channels[0].0));
        let numsub: (String, i64) = cluster.nodes[owner]
            .query(redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(&channels[0].0))
            .expect("SHARDNUMSUB");
        assert_eq!(numsub.1, 1, "subscribed at the promoted replica");
        let want = publish_all("after, subscribed again").await;
        assert!(
            wait_for(&received, &want, Duration::from_secs(5)).await,
            "every channel delivers after the failover: {:?}",
            received.lock().unwrap()
        );
        drop(sub);
        let _ = &mut publisher;
    });
}

/// Settings for a node on the cluster, checking its slot map every 200 ms.
fn quick(cluster: &RedisCluster) -> wsway_redis::RedisBuilder {
    wsway_redis::Redis::cluster(cluster.seeds()).ping_interval(Duration::from_millis(200))
}

/// A wsway node of `app` on the cluster, with `settings`.
async fn node_of(
    rt: common::Runtime,
    settings: wsway_redis::RedisBuilder,
    mut app: wsway::App,
) -> (wsway_redis::Redis, wsway::ServerHandle) {
    let redis = settings.connect().await.expect("connect to the cluster");
    app.backplane(redis.clone());
    (redis, rt.start(app).await)
}

/// A wsway node of the bench app (`/room/:name`, its publishes reaching
/// the sender too) on the cluster.
async fn cluster_node(
    rt: common::Runtime,
    cluster: &RedisCluster,
) -> (wsway_redis::Redis, wsway::ServerHandle) {
    node_of(rt, quick(cluster), examples::bench::app()).await
}

/// An app whose `/seat/:room` is a [`Seat`].
fn seats() -> wsway::App {
    let mut app = wsway::App::new();
    app.ws("/seat/:room", Seat);
    app
}

/// Rooms whose channels land on three different primaries.
fn rooms_per_primary(cluster: &RedisCluster) -> Vec<String> {
    let mut picked: Vec<(String, usize)> = Vec::new();
    for i in 0.. {
        let room = format!("room{i}");
        let primary = cluster.primary_of(slot(&format!("wsway:{{={room}}}")));
        if picked.iter().all(|(_, p)| *p != primary) {
            picked.push((room, primary));
        }
        if picked.len() == 3 {
            return picked.into_iter().map(|(r, _)| r).collect();
        }
    }
    unreachable!()
}

/// How many connections listen to a room's shard channel, at its primary.
fn listeners(cluster: &RedisCluster, room: &str) -> usize {
    cluster.shard_listeners(&format!("wsway:{{={room}}}"))
}

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use futures_util::StreamExt;

runtime_tests! {
    #[ignore = "needs redis-server and redis-cli; .ci/run installs them and runs this"]
    async fn two_nodes_share_rooms_on_every_shard_exactly_once_in_order(rt) {
        let cluster = RedisCluster::start();
        let (ra, a) = cluster_node(rt, &cluster).await;
        let (rb, b) = cluster_node(rt, &cluster).await;
        let rooms = rooms_per_primary(&cluster);
        let mut senders = Vec::new();
        let mut peers = Vec::new();
        for room in &rooms {
            let path = format!("/room/{room}");
            senders.push(connect(a.local_addr(), &path).await);
            peers.push(connect(b.local_addr(), &path).await);
        }
        eventually("both nodes to listen on every shard", || rooms.iter().all(|r| listeners(&cluster, r) == 2)).await;

        const N: u32 = 100;
        for (sender, room) in senders.iter_mut().zip(&rooms) {
            for i in 0..N {
                let frame = match i % 2 {
                    0 => Frame::text(format!("{room} m{i}")),
                    _ => Frame::binary(i.to_be_bytes().to_vec()),
                };
                sender.send(frame).await.expect("send");
            }
            send_text(sender, "end").await;
        }
        // Each room's peer on the other node, and its sender (the app
        // publishes to the sender too): every message once, in order.
        for (r, room) in rooms.iter().enumerate() {
            for ws in [&mut peers[r], &mut senders[r]] {
                for i in 0..N {
                    let want = match i % 2 {
                        0 => Frame::text(format!("{room} m{i}")),
                        _ => Frame::binary(i.to_be_bytes().to_vec()),
                    };
                    assert_eq!(next_message(ws).await, want, "{room}, message {i}");
                }
                assert_eq!(next_message(ws).await, Frame::text("end"), "{room}: nothing twice");
            }
        }
        assert_eq!(rb.stats().received, 3 * (u64::from(N) + 1), "node B heard every publish once");
        assert_eq!(ra.stats().received, 0, "node A never hears its own");
    }

    #[ignore = "needs redis-server and redis-cli; .ci/run installs them and runs this"]
    async fn a_failover_resubscribes_and_tells_the_gap(rt) {
        let mut cluster = RedisCluster::start();
        let (_ra, a) = cluster_node(rt, &cluster).await;
        let (rb, b) = cluster_node(rt, &cluster).await;
        let rooms = rooms_per_primary(&cluster);
        let path = format!("/room/{}", rooms[0]);
        let mut sender = connect(a.local_addr(), &path).await;
        let mut peer = connect(b.local_addr(), &path).await;
        eventually("both nodes to listen", || listeners(&cluster, &rooms[0]) == 2).await;
        send_text(&mut sender, "before").await;
        assert_eq!(next_message(&mut peer).await, Frame::text("before"));

        cluster.fail_over(slot(&format!("wsway:{{={}}}", rooms[0])));
        // Node B subscribes again at the promoted replica by itself, and
        // tells its member that it may have missed messages (the room
        // keeps no history): a gap, never a silent loss.
        eventually("node B to listen at the new primary", || listeners(&cluster, &rooms[0]) >= 1).await;
        eventually("the gap to be told", || rb.stats().gaps >= 1).await;
        // Publishes flow again, A's publisher following the new primary.
        let mut delivered = false;
        for i in 0..100 {
            send_text(&mut sender, &format!("after {i}")).await;
            let got = within(Duration::from_millis(500), "an echo", next_message(&mut sender)).await;
            assert!(matches!(got, Frame::Text(_)), "{got:?}");
            if rb.stats().received >= 2 {
                delivered = true;
                break;
            }
        }
        assert!(delivered, "node B hears node A again after the failover");
    }

    /// Three nodes, 300 members in 30 rooms over every shard, each room
    /// published to from one node every 20 ms; one primary `kill -9`ed
    /// mid-stream ([`killed_under_load`]). The rooms keep no history: a
    /// node whose subscription broke cannot know what it missed, and tells
    /// all its members there, even those its own publishes reached.
    #[ignore = "needs redis-server and redis-cli; .ci/run installs them and runs this"]
    async fn a_primary_killed_under_load_loses_nothing_silently(rt) {
        killed_under_load(rt, false).await;
    }

    /// [`killed_under_load`] with rooms that keep history: a node fetches
    /// what it missed, and the failed shard's rooms start a new epoch, told
    /// to every member there (a promoted replica cannot show it holds
    /// every write), ahead of what follows.
    #[ignore = "needs redis-server and redis-cli; .ci/run installs them and runs this"]
    async fn a_primary_killed_under_load_with_history_loses_nothing_silently(rt) {
        killed_under_load(rt, true).await;
    }

    /// A primary dies holding writes its replica never got (the replica
    /// was stopped and cut off first, as a lagging replica is): members
    /// got those messages live, the promoted replica does not have them.
    /// Numbering on from what it has would give the next publishes
    /// positions the members hold already, and they would be dropped as
    /// repeats; instead the room's history starts a new epoch there and
    /// every member is told.
    #[ignore = "needs redis-server and redis-cli; .ci/run installs them and runs this"]
    async fn a_replica_promoted_without_the_last_writes_is_told(rt) {
        let cluster = RedisCluster::start();
        let mut nodes = Vec::new();
        let mut backplanes = Vec::new();
        for _ in 0..2 {
            let mut app = seats();
            app.history("lw*", wsway::Retention::messages(1000));
            let (redis, node) = node_of(rt, quick(&cluster), app).await;
            backplanes.push(redis);
            nodes.push(node);
        }
        let room = "lw0";
        let room_slot = slot(&format!("wsway:{{={room}}}"));
        let path = format!("/seat/{room}");
        let here = connect(nodes[0].local_addr(), &path).await;
        let there = connect(nodes[1].local_addr(), &path).await;
        eventually("both nodes to listen", || listeners(&cluster, room) == 2).await;

        let mut accepted = Vec::new();
        let (seen_here, seen_there) = (Shared::default(), Shared::default());
        let scenario = async {
            let mut publish = |seqs: std::ops::RangeInclusive<u64>| {
                for seq in seqs {
                    if let wsway::Forwarded::Queued = nodes[0].publish(room, format!("0 {seq}")).forwarded {
                        accepted.push(seq);
                    }
                }
            };
            publish(1..=5);
            eventually("node B to hear 1..5", || backplanes[1].stats().received >= 5).await;
            let primary = cluster.primary_of(room_slot);
            let replica = cluster.replica_of(primary);
            cluster.nodes[replica].pause(true);
            let cut: u32 = cluster.nodes[primary]
                .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"))
                .expect("CLIENT KILL TYPE replica");
            assert_eq!(cut, 1, "the replica's link cut");
            publish(6..=10);
            eventually("node B to hear 6..10", || backplanes[1].stats().received >= 10).await;
            let mut cluster = cluster;
            cluster.nodes[primary].kill();
            cluster.nodes[replica].pause(false);
            let promoting = std::thread::spawn(move || {
                cluster.wait_promoted(room_slot, primary);
                cluster
            });
            eventually("the replica to be promoted", || promoting.is_finished()).await;
            let cluster = promoting.join().expect("the promotion thread");
            assert_eq!(cluster.primary_of(room_slot), replica);
            eventually("both nodes to listen again", || listeners(&cluster, room) == 2).await;
            publish(11..=30);
            // A gap reaches a handler after the messages queued before it
            // ran: the end waits until both members were told.
            eventually("both members to be told of a gap", || {
                [&seen_here, &seen_there].iter().all(|seen| seen.lock().unwrap().contains(&None))
            })
            .await;
            nodes[0].publish(room, "end");
            cluster
        };
        let watchers = futures_util::future::join(
            watch_into(here, seen_here.clone()),
            watch_into(there, seen_there.clone()),
        );
        let ((here, there), _cluster) = futures_util::future::join(watchers, scenario).await;
        for (who, seen) in [("the publishing node's member", here), ("the other node's member", there)] {
            let mut tally = Tally::default();
            tally.add(&accepted, &seen);
            eprintln!("{who}: {} accepted: {tally:?}; saw {seen:?}", accepted.len());
            assert_eq!(
                (tally.lost_silent, tally.duplicated, tally.out_of_order),
                (0, 0, 0),
                "{who}: {tally:?}"
            );
            let after_10 = seen.iter().skip_while(|s| **s != Some(10));
            assert!(
                after_10.clone().any(Option::is_none),
                "{who} is told that the history it held is gone: {seen:?}"
            );
            assert!(seen.contains(&Some(30)), "{who}: publishing goes on: {seen:?}");
        }
    }

    /// A slot holding a live room (with history) moves to another primary
    /// and back, ten times, with `redis-cli --cluster reshard`, while a node publishes
    /// to it every 5 ms: each member, on the publishing node and on the
    /// other, gets every publish once, in order, and no gap.
    #[ignore = "needs redis-server and redis-cli; .ci/run installs them and runs this"]
    async fn a_slot_migrating_while_publishing_loses_and_repeats_nothing(rt) {
        const MOVES: usize = 10;
        let cluster = RedisCluster::start();
        let (from, to) = (cluster.primary_of(0), cluster.primary_of(16383));
        let target = cluster.first_slot(from);
        let room = (0..)
            .map(|i| format!("mig{i}"))
            .find(|r| slot(&format!("wsway:{{={r}}}")) == target)
            .expect("a room in the slot");
        let mut nodes = Vec::new();
        for _ in 0..2 {
            let mut app = seats();
            app.history("mig*", wsway::Retention::messages(100_000));
            nodes.push(node_of(rt, quick(&cluster), app).await.1);
        }
        let path = format!("/seat/{room}");
        let here = connect(nodes[0].local_addr(), &path).await;
        let there = connect(nodes[1].local_addr(), &path).await;
        eventually("both nodes to listen", || listeners(&cluster, &room) == 2).await;

        let mut accepted = Vec::new();
        let mut refused = 0;
        let mut moving = None;
        let mut cluster = Some(cluster);
        let publishing = async {
            let mut seq = 0u64;
            let mut done_at = None;
            loop {
                seq += 1;
                match nodes[0].publish(&room, format!("0 {seq}")).forwarded {
                    wsway::Forwarded::Queued | wsway::Forwarded::Backpressured => accepted.push(seq),
                    _ => refused += 1,
                }
                if seq == 100 {
                    let c = cluster.take().expect("the cluster");
                    moving = Some(std::thread::spawn(move || {
                        let started = Instant::now();
                        for _ in 0..MOVES {
                            c.move_first_slot(target, to);
                            c.move_first_slot(target, from);
                        }
                        eprintln!("moved the slot there and back {MOVES} times in {:?}", started.elapsed());
                        c
                    }));
                }
                if done_at.is_none() && moving.as_ref().is_some_and(|m| m.is_finished()) {
                    done_at = Some(seq + 200);
                }
                if done_at == Some(seq) {
                    break;
                }
                assert!(seq < 20_000, "the migration did not end");
                rt.sleep(Duration::from_millis(5)).await;
            }
            let cluster = moving.take().expect("a migration").join().expect("the migration thread");
            nodes[0].publish(&room, "end");
            cluster
        };
        let watchers = futures_util::future::join(watch(here), watch(there));
        let ((here, there), _cluster) = futures_util::future::join(watchers, publishing).await;
        for (who, seen) in [("the publishing node's member", here), ("the other node's member", there)] {
            let mut tally = Tally::default();
            tally.add(&accepted, &seen);
            eprintln!("{who}: {} accepted, {refused} refused: {tally:?}", accepted.len());
            assert_eq!(
                (tally.delivered, tally.duplicated, tally.out_of_order, tally.lost_told + tally.lost_silent),
                (accepted.len() as u64, 0, 0, 0),
                "{who}: {tally:?}"
            );
            assert_eq!(tally.told_spare, 0, "{who}: a gap was told: {tally:?}");
        }
        assert_eq!(refused, 0);
    }
}

/// Three nodes, 300 members in 30 rooms over every shard, each room
/// published to from one node every 20 ms; one primary `kill -9`ed
/// mid-stream. Every publish Redis was handed reaches each member once,
/// in order, or the member is told of a gap where it was lost, ahead of
/// what followed the hole. Gives the counts.
async fn killed_under_load(rt: common::Runtime, history: bool) -> Tally {
    const ROOMS: usize = 30;
    const PER_ROOM: usize = 10;
    let cluster = RedisCluster::start();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        // Below the default 2 s, which rides through most of a failover:
        // more publishes fail, and more gaps are told.
        let settings = quick(&cluster).response_timeout(Duration::from_millis(500));
        let mut app = seats();
        if history {
            app.history("load*", wsway::Retention::messages(10_000));
        }
        nodes.push(node_of(rt, settings, app).await.1);
    }
    let rooms: Vec<String> = (0..ROOMS).map(|r| format!("load{r}")).collect();
    let primaries: BTreeSet<usize> = rooms
        .iter()
        .map(|r| cluster.primary_of(slot(&format!("wsway:{{={r}}}"))))
        .collect();
    assert_eq!(primaries.len(), 3, "the rooms spread over every shard");
    let mut members = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        for i in 0..PER_ROOM {
            let node = &nodes[(r + i) % 3];
            members.push((
                r,
                connect(node.local_addr(), &format!("/seat/{room}")).await,
            ));
        }
    }
    eventually("every node to listen to its rooms", || {
        rooms.iter().all(|r| listeners(&cluster, r) == 3)
    })
    .await;

    // Publish, kill a primary (on a thread: the failover takes seconds),
    // and go on two seconds past its end.
    let victim_slot = slot(&format!("wsway:{{={}}}", rooms[0]));
    let mut accepted: Vec<Vec<u64>> = vec![Vec::new(); ROOMS];
    let (mut refused, mut seq) = (0u64, 0u64);
    let mut failover = None;
    let mut cluster = Some(cluster);
    let mut done_at = None;
    let watchers = futures_util::future::join_all(
        members
            .drain(..)
            .map(|(r, ws)| async move { (r, watch(ws).await) }),
    );
    let publishing = async {
        loop {
            seq += 1;
            for (r, room) in rooms.iter().enumerate() {
                let sent = nodes[r % 3].publish(room, format!("{r} {seq}"));
                match sent.forwarded {
                    wsway::Forwarded::Queued | wsway::Forwarded::Backpressured => {
                        accepted[r].push(seq)
                    }
                    _ => refused += 1,
                }
            }
            if seq == 50 {
                let mut c = cluster.take().expect("the cluster");
                failover = Some(std::thread::spawn(move || {
                    let killed = Instant::now();
                    c.fail_over(victim_slot);
                    eprintln!("failed over in {:?}", killed.elapsed());
                    c
                }));
            }
            if done_at.is_none() && failover.as_ref().is_some_and(|f| f.is_finished()) {
                done_at = Some(seq + 100);
            }
            if done_at == Some(seq) {
                break;
            }
            assert!(seq < 5_000, "the failover did not end");
            rt.sleep(Duration::from_millis(20)).await;
        }
        // The rooms' ends, once every node listens again.
        let cluster = failover
            .take()
            .expect("a failover")
            .join()
            .expect("the failover thread");
        eventually("every node to listen again", || {
            rooms.iter().all(|r| listeners(&cluster, r) == 3)
        })
        .await;
        for (r, room) in rooms.iter().enumerate() {
            nodes[r % 3].publish(room, "end");
        }
        cluster
    };
    let (seen, _cluster) = futures_util::future::join(watchers, publishing).await;
    let mut tally = Tally::default();
    for (r, seen) in &seen {
        tally.add(&accepted[*r], seen);
    }
    let published: usize = accepted.iter().map(Vec::len).sum();
    eprintln!(
        "{published} publishes accepted, {refused} refused; over {} members: {tally:?}",
        seen.len()
    );
    assert_eq!(tally.lost_silent, 0, "{tally:?}");
    assert_eq!(tally.duplicated, 0, "{tally:?}");
    assert_eq!(tally.out_of_order, 0, "{tally:?}");
    assert!(
        tally.lost_told > 0 || tally.delivered == (published * PER_ROOM) as u64,
        "{tally:?}"
    );
    tally
}

/// `/seat/:room`: subscribes to its room and reports a gap as `gap`.
struct Seat;

impl wsway::Handler for Seat {
    type Data = String;

    async fn before_upgrade(
        &self,
        req: &wsway::Request,
    ) -> Result<wsway::Accept<String>, wsway::Response> {
        Ok(wsway::Accept::new(req.params()?))
    }

    async fn open(&self, ws: &mut wsway::Ws<String>) {
        let room = ws.data.clone();
        ws.subscribe(&room);
    }

    async fn gap(&self, ws: &mut wsway::Ws<String>, _topic: &str) {
        ws.send("gap");
    }
}

/// What one member saw: each sequence number it got, and `None` where it
/// was told of a gap, in order.
type Seen = Vec<Option<u64>>;

/// What a member saw so far, for a test to wait on.
type Shared = Arc<Mutex<Seen>>;

/// Reads a member's room until `end`.
async fn watch(ws: Client) -> Seen {
    watch_into(ws, Shared::default()).await
}

/// [`watch`], keeping what was seen so far in `shared`.
async fn watch_into(mut ws: Client, shared: Shared) -> Seen {
    loop {
        let what = {
            let seen = shared.lock().unwrap();
            let last = &seen[seen.len().saturating_sub(3)..];
            format!(
                "the room's end (after {} messages, the last {last:?})",
                seen.len()
            )
        };
        let frame = within(Duration::from_secs(30), &what, ws.next()).await;
        let Some(Ok(Frame::Text(t))) = frame else {
            panic!("a member's socket ended: {frame:?}");
        };
        let mut seen = shared.lock().unwrap();
        match t.as_str() {
            "end" => return seen.clone(),
            "gap" => seen.push(None),
            t => seen.push(Some(
                t.rsplit(' ')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("a number"),
            )),
        }
    }
}

/// The failover counts over every (member, accepted publish of its room).
#[derive(Debug, Default)]
struct Tally {
    delivered: u64,
    duplicated: u64,
    out_of_order: u64,
    lost_told: u64,
    lost_silent: u64,
    /// Gap notices to members that missed nothing around them.
    told_spare: u64,
    /// Further notices of a hole a member was told of already.
    told_again: u64,
    /// Members told of a gap who missed nothing at all.
    told_unharmed: u64,
}

impl Tally {
    /// `accepted`: the room's publishes that Redis was handed (`Queued`),
    /// in order; `seen`: what a member got.
    fn add(&mut self, accepted: &[u64], seen: &Seen) {
        let got: Vec<u64> = seen.iter().flatten().copied().collect();
        self.out_of_order += got.windows(2).filter(|w| w[0] >= w[1]).count() as u64;
        let mut counts = std::collections::HashMap::new();
        for s in &got {
            *counts.entry(*s).or_insert(0u64) += 1;
        }
        // Where each received number sits in `seen`: a lost one is told
        // when a gap notice sits between the received ones around it.
        let at: std::collections::HashMap<u64, usize> = seen
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((s.as_ref().copied()?, i)))
            .collect();
        let mut received_before = None;
        let mut useful_gaps = std::collections::HashSet::new();
        for (k, &s) in accepted.iter().enumerate() {
            match counts.get(&s) {
                Some(&n) => {
                    self.delivered += 1;
                    self.duplicated += n - 1;
                    received_before = Some(at[&s]);
                }
                None => {
                    let from = received_before.map_or(0, |i| i + 1);
                    let to = accepted[k..]
                        .iter()
                        .find_map(|n| at.get(n).copied())
                        .unwrap_or(seen.len());
                    match (from..to).find(|&i| seen[i].is_none()) {
                        Some(i) => {
                            self.lost_told += 1;
                            useful_gaps.insert(i);
                        }
                        None => self.lost_silent += 1,
                    }
                }
            }
        }
        // A notice between two received messages with an accepted one
        // missing there tells of that hole; any other notice is spare.
        let mut in_holes: usize = 0;
        for (i, _) in seen.iter().enumerate().filter(|(_, s)| s.is_none()) {
            let before = seen[..i].iter().rev().find_map(|s| *s).unwrap_or(0);
            let after = seen[i + 1..].iter().find_map(|s| *s).unwrap_or(u64::MAX);
            let hole = accepted
                .iter()
                .any(|a| (before + 1..after).contains(a) && !counts.contains_key(a));
            if hole {
                in_holes += 1;
            } else {
                self.told_spare += 1;
            }
        }
        self.told_again += in_holes.saturating_sub(useful_gaps.len()) as u64;
        let harmed = accepted.iter().any(|a| !counts.contains_key(a));
        if !harmed && seen.contains(&None) {
            self.told_unharmed += 1;
        }
    }
}
