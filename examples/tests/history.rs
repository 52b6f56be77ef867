//! Topics that keep history: positions on every push, and a client that
//! reconnects with its last position gets what it missed, in order and
//! once, before anything new; when that is gone, it is told (`wsway:gap`).
//!
//! Each test body runs against every store: in process (`in_process::`),
//! in one Redis through `wsway-redis` (`redis::`) and in a Redis Cluster
//! of three primaries (`cluster::`); the last two are ignored without a
//! `redis-server`: `.ci/run` installs one and runs them.

mod common;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::shared_redis::{Kind, SharedRedis};
use common::*;
use serde_json::json;
use wsway::{App, Events, Retention, ServerHandle, Topics};

/// Where topic history is kept.
#[derive(Clone, Copy, Debug)]
enum Store {
    InProcess,
    Redis,
    /// A Redis Cluster of three primaries and three replicas.
    Cluster,
}

/// A node of the app under test on its store, and the Redis it uses.
struct Node {
    server: ServerHandle,
    /// Held for the node's life (dropping it stops the Redis).
    redis: Option<SharedRedis>,
}

impl Deref for Node {
    type Target = ServerHandle;
    fn deref(&self) -> &ServerHandle {
        &self.server
    }
}

impl Store {
    async fn start(self, rt: Runtime, mut app: App) -> Node {
        let redis = match self {
            Store::InProcess => None,
            Store::Redis => Some(SharedRedis::start(Kind::Single)),
            Store::Cluster => Some(SharedRedis::start(Kind::Cluster)),
        };
        if let Some(redis) = &redis {
            // Room for the 25 MiB burst below (the default 8 MiB queue
            // would drop some of it on the way to Redis, and say so), and
            // quick reconnects.
            let backplane = redis
                .builder()
                .queue_bytes(64 << 20)
                .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
                .connect()
                .await;
            app.backplane(backplane.expect("redis"));
        }
        Node {
            server: rt.start(app).await,
            redis,
        }
    }
}

impl Node {
    /// Waits until `n` local subscribers are on `topic`. Not until this
    /// node listens to it in Redis: a publish made as soon as a
    /// connection has subscribed must reach it all the same.
    async fn subscribed(&self, topic: &str, n: usize) {
        eventually("the subscribers", || self.subscriber_count(topic) == n).await;
    }
}

/// `/counted/:room`: a subscriber like `/r/:room`'s that counts, on the
/// server, the times it went over its send limit and flushed back under
/// it (its `drain` callbacks): deferred pushes catch up from history.
struct CountsDrains(Arc<AtomicU64>);

impl wsway::Handler for CountsDrains {
    type Data = ();

    async fn open(&self, ws: &mut wsway::Ws<()>) {
        let room = format!("room:{}", ws.param("room").unwrap_or_default());
        ws.subscribe(&room);
    }

    async fn drain(&self, _ws: &mut wsway::Ws<()>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn app() -> App {
    app_counting_drains(Arc::default())
}

fn app_counting_drains(drains: Arc<AtomicU64>) -> App {
    let mut app = App::new();
    app.ws("/counted/:room", CountsDrains(drains));
    let mut events = Events::<()>::new();
    events.on_open(|ws| {
        let room = format!("room:{}", ws.param("room").unwrap_or_default());
        ws.subscribe(&room);
    });
    // To the room's others (the sender is left out).
    events.on("say", |ws, text: String| -> Result<(), wsway::EventError> {
        let room = format!("room:{}", ws.param("room").unwrap_or_default());
        ws.publish_event(&room, "said", &text)?;
        Ok(())
    });
    app.ws("/r/:room", events);
    app.history("room:*", Retention::messages(1000));
    app
}

/// Publishes `{"event": "tick", "data": n}` on `room:a`, `per_second`
/// times a second, from n = 1, until stopped.
#[derive(Clone, Default)]
struct Ticker {
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Ticker {
    /// The ticker, and the publishing to run beside the clients.
    fn start(topics: Topics, per_second: u64) -> (Ticker, impl Future<Output = ()>) {
        let ticker = Ticker::default();
        let (sent, stop) = (ticker.sent.clone(), ticker.stop.clone());
        let publishing = async move {
            let started = std::time::Instant::now();
            while !stop.load(Ordering::Acquire) {
                let due = (started.elapsed().as_secs_f64() * per_second as f64) as u64 + 1;
                while sent.load(Ordering::Acquire) < due {
                    let n = sent.load(Ordering::Acquire) + 1;
                    topics.publish_event("room:a", "tick", &n).expect("publish");
                    sent.store(n, Ordering::Release);
                }
                async_io::Timer::after(Duration::from_millis(5)).await;
            }
        };
        (ticker, publishing)
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Acquire)
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The next push: (its data, its position). The n-th publish is at
/// offset n.
async fn tick(ws: &mut Client) -> (u64, String) {
    let v = next_json_with_position(ws).await;
    assert_eq!(v["event"], "tick", "{v}");
    assert_eq!(v["topic"], "room:a", "{v}");
    let n = v["data"].as_u64().unwrap();
    let pos = v["pos"].as_str().unwrap().to_owned();
    assert!(
        pos.ends_with(&format!(":{n}")),
        "offsets count publishes: {v}"
    );
    (n, pos)
}

fn resume_path(room: &str, topic: &str, pos: &str) -> String {
    format!("/r/{room}?{}", resume_query(&[(topic, pos)]))
}

/// Each body, once per store (and, by `runtime_tests!`, per runtime).
macro_rules! store_tests {
    ($($(#[$meta:meta])* async fn $name:ident($rt:ident, $store:ident) $body:block)*) => {
        $( async fn $name($rt: Runtime, $store: Store) $body )*

        mod in_process {
            use super::common;
            crate::runtime_tests! {
                $( async fn $name(rt) { Box::pin(super::$name(rt, super::Store::InProcess)).await } )*
            }
        }

        mod redis {
            use super::common;
            crate::runtime_tests! {
                $(
                    #[ignore = "needs redis-server: .ci/run installs it and runs these"]
                    async fn $name(rt) { Box::pin(super::$name(rt, super::Store::Redis)).await }
                )*
            }
        }

        mod cluster {
            use super::common;
            crate::runtime_tests! {
                $(
                    #[ignore = "needs redis-server and redis-cli: .ci/run installs them and runs these"]
                    async fn $name(rt) { Box::pin(super::$name(rt, super::Store::Cluster)).await }
                )*
            }
        }
    };
}

store_tests! {
    async fn a_cut_connection_resumes_with_every_message_once_in_order(rt, store) {
        let server = store.start(rt, app()).await;
        let addr = server.local_addr();
        let mut first = connect(addr, "/r/a").await;
        server.subscribed("room:a", 1).await;
        let (ticker, publishing) = Ticker::start(server.topics(), 100);
        let client = async {
            let mut seen = Vec::new();
            let mut pos = String::new();
            while seen.len() < 50 {
                let (n, p) = tick(&mut first).await;
                seen.push(n);
                pos = p;
            }
            // The connection is cut, not closed: the server never hears of
            // it (the socket stays open, unread). Two seconds later the
            // client is back with where it was.
            let cut = first;
            async_io::Timer::after(Duration::from_secs(2)).await;
            let mut second = connect(addr, &resume_path("a", "room:a", &pos)).await;
            let target = ticker.sent() + 20;
            while *seen.last().unwrap() < target {
                seen.push(tick(&mut second).await.0);
            }
            ticker.stop();
            drop(cut);
            seen
        };
        let ((), seen) = futures_lite::future::zip(Box::pin(publishing), Box::pin(client)).await;
        let expected: Vec<u64> = (1..=*seen.last().unwrap()).collect();
        assert!(seen.len() > 250, "the publisher kept going: {}", seen.len());
        assert_eq!(seen, expected, "every message once, in order, across the cut");
    }

    async fn a_resume_that_history_no_longer_holds_is_told(rt, store) {
        let server = store.start(rt, app()).await;
        let addr = server.local_addr();
        let mut ws = connect(addr, "/r/a").await;
        server.subscribed("room:a", 1).await;
        server.topics().publish_event("room:a", "tick", &1).unwrap();
        let (_, pos) = tick(&mut ws).await;
        let pos = wsway::Position::parse(&pos).unwrap();
        // Another epoch (a restarted store): the state is lost, and said.
        let stale = format!("{:x}:{}", pos.epoch ^ 1, pos.offset);
        let mut back = connect(addr, &resume_path("a", "room:a", &stale)).await;
        assert_eq!(next_json(&mut back).await, json!({"event": "wsway:gap", "data": {"topic": "room:a"}}));
        server.topics().publish_event("room:a", "tick", &2).unwrap();
        assert_eq!(tick(&mut back).await.0, 2, "live after the gap");
        // Up to date: nothing replayed, nothing told.
        let current = format!("{:x}:{}", pos.epoch, 2);
        let mut fresh = connect(addr, &resume_path("a", "room:a", &current)).await;
        server.topics().publish_event("room:a", "tick", &3).unwrap();
        assert_eq!(tick(&mut fresh).await.0, 3);
        // Garbage is no position: a plain subscribe.
        let mut odd = connect(addr, "/r/a?wsway-resume=%7Bnot%20json").await;
        server.subscribed("room:a", 4).await;
        server.topics().publish_event("room:a", "tick", &4).unwrap();
        assert_eq!(tick(&mut odd).await.0, 4);
    }

    async fn backpressure_drops_on_a_plain_topic_are_told_once_drained(rt, store) {
        let mut app = App::new();
        let mut events = Events::<()>::new();
        events.on_open(|ws| {
            ws.subscribe("plain:x");
        });
        app.ws("/p", events);
        let server = store.start(rt, app).await;
        let mut ws = connect(server.local_addr(), "/p").await;
        server.subscribed("plain:x", 1).await;
        // A burst of 400 × 64 KiB (more than the kernel's socket buffers
        // and the 1 MiB backpressure limit hold), the client reading
        // nothing meanwhile.
        const N: usize = 400;
        let big = "x".repeat(64 * 1024);
        let mut dropped = 0;
        for i in 0..N as u32 {
            dropped += server.topics().publish_event("plain:x", "big", &(i, &big)).unwrap().dropped;
        }
        assert!(dropped > 0, "the burst went over the limit");
        let mut got = Vec::new();
        loop {
            let v = next_json(&mut ws).await;
            match v["event"].as_str() {
                Some("big") => got.push(v["data"][0].as_u64().unwrap()),
                Some("wsway:gap") => {
                    assert_eq!(v["data"], json!({"topic": "plain:x"}));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        eprintln!("{} of {N} delivered, {dropped} dropped and told", got.len());
        assert_eq!(got.len() + dropped, N, "every message delivered or reported");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
        // Told once; what comes next arrives normally.
        server.topics().publish_event("plain:x", "big", &(N, "after")).unwrap();
        assert_eq!(next_json(&mut ws).await["data"][0], N);
    }

    async fn a_sender_resumes_after_its_own_publish_without_it(rt, store) {
        let server = store.start(rt, app()).await;
        let addr = server.local_addr();
        let mut ann = connect(addr, "/r/a").await;
        let mut bob = connect(addr, "/r/a").await;
        server.subscribed("room:a", 2).await;
        send_text(&mut ann, &json!({"event": "say", "data": "mine", "id": 1}).to_string()).await;
        let heard = next_json_with_position(&mut bob).await;
        assert_eq!((&heard["event"], &heard["data"]), (&json!("said"), &json!("mine")), "{heard}");
        // Left out of her own publish, ann gets where it went, beside her
        // ack (first in process; after it with Redis, which numbers it).
        let mut got = [next_json_with_position(&mut ann).await, next_json_with_position(&mut ann).await];
        got.sort_by_key(|v| v.get("event").is_some());
        let [ack, note] = got;
        assert_eq!(ack, json!({"id": 1, "ok": true, "data": null}));
        assert_eq!(note, json!({"event": "wsway:pos", "topic": "room:a", "pos": heard["pos"]}));
        ann.close(None).await.expect("close");
        finish_close(&mut ann).await;
        server.topics().publish_event("room:a", "tick", &2).unwrap();
        // Back from that position: the tick she missed, not her own line.
        let pos = note["pos"].as_str().unwrap();
        let mut again = connect(addr, &resume_path("a", "room:a", pos)).await;
        let missed = next_json_with_position(&mut again).await;
        assert_eq!((&missed["event"], &missed["data"]), (&json!("tick"), &json!(2)), "{missed}");
        server.topics().publish_event("room:a", "tick", &3).unwrap();
        assert_eq!(next_json(&mut again).await, json!({"event": "tick", "data": 3}));
    }

    async fn a_subscriber_over_its_limit_catches_up_from_history(rt, store) {
        let drains = Arc::new(AtomicU64::new(0));
        let server = store.start(rt, app_counting_drains(drains.clone())).await;
        let mut ws = connect(server.local_addr(), "/counted/a").await;
        server.subscribed("room:a", 1).await;
        // The same burst as on a plain topic; this one keeps history.
        const N: u64 = 400;
        let big = "x".repeat(64 * 1024);
        let mut deferred = 0;
        for i in 1..=N {
            deferred += server.topics().publish_event("room:a", "tick", &(i, &big)).unwrap().dropped;
        }
        // With Redis the publish is delivered when it comes back numbered,
        // so its report cannot count deferrals: the server's drain count
        // does, on both stores.
        assert!(deferred > 0 || !matches!(store, Store::InProcess), "the burst went over the limit");
        // Live publishes while it is behind wait their turn too.
        server.topics().publish_event("room:a", "tick", &(N + 1, "last")).unwrap();
        for i in 1..=N + 1 {
            let v = next_json_with_position(&mut ws).await;
            assert_eq!(v["event"], "tick", "message {i}: {v}");
            assert_eq!(v["data"][0], i, "every message once, in order");
        }
        let drains = drains.load(Ordering::Relaxed);
        assert!(drains > 0, "the subscriber never went over its limit (no drain)");
        eprintln!("{deferred} of {N} deferred past the limit ({drains} drains), all caught up from history");
    }
}

runtime_tests! {
    #[ignore = "needs redis-server: .ci/run installs it and runs these"]
    async fn a_redis_restarted_empty_is_told_within_a_second(rt) {
        let mut server = Store::Redis.start(rt, app()).await;
        let mut ws = connect(server.local_addr(), "/r/a").await;
        server.subscribed("room:a", 1).await;
        for n in 1..=3 {
            server.topics().publish_event("room:a", "tick", &n).unwrap();
        }
        let mut epoch = String::new();
        for n in 1..=3 {
            let (got, pos) = tick(&mut ws).await;
            assert_eq!(got, n);
            epoch = pos.split(':').next().unwrap().to_owned();
        }
        let redis = server.redis.as_mut().unwrap().single_mut();
        redis.kill();
        redis.restart();
        let back = std::time::Instant::now();
        // Told without anything being published: the node asks Redis what
        // it missed and finds another epoch.
        let v = within(Duration::from_secs(1), "the gap, within 1 s", next_json(&mut ws)).await;
        assert_eq!(v, json!({"event": "wsway:gap", "data": {"topic": "room:a"}}));
        eprintln!("told {:?} after Redis answered again", back.elapsed());
        // And on from there, numbered afresh in the new epoch.
        server.subscribed("room:a", 1).await;
        server.topics().publish_event("room:a", "tick", &4).unwrap();
        let v = next_json_with_position(&mut ws).await;
        assert_eq!(v["data"], 4, "{v}");
        let pos = v["pos"].as_str().unwrap();
        assert!(pos.ends_with(":1") && !pos.starts_with(&format!("{epoch}:")), "{pos}");
    }

    #[ignore = "needs redis-server: .ci/run installs it and runs these"]
    async fn a_node_that_loses_its_subscription_recovers_from_history(rt) {
        let server = Store::Redis.start(rt, app()).await;
        let url = server.redis.as_ref().unwrap().url();
        let mut ws = connect(server.local_addr(), "/r/a").await;
        server.subscribed("room:a", 1).await;
        let (ticker, publishing) = Ticker::start(server.topics(), 100);
        let client = async {
            let mut seen = Vec::new();
            while seen.len() < 50 {
                seen.push(tick(&mut ws).await.0);
            }
            // The node's subscription connection is dropped and cannot
            // come back for a while (Redis takes no new connection): what
            // is published meanwhile never reaches the node live.
            let mut admin = ::redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .expect("an admin connection");
            let config = |max: &str| ::redis::cmd("CONFIG").arg("SET").arg("maxclients").arg(max).clone();
            let clients: String = ::redis::cmd("INFO").arg("clients").query(&mut admin).unwrap();
            let now = clients
                .lines()
                .find_map(|l| l.strip_prefix("connected_clients:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .expect("connected_clients");
            let () = config(&(now - 1).to_string()).query(&mut admin).unwrap();
            let killed: usize = ::redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query(&mut admin)
                .unwrap();
            assert_eq!(killed, 1, "the node's subscription");
            let before = ticker.sent();
            async_io::Timer::after(Duration::from_millis(300)).await;
            let unheard = ticker.sent() - before;
            let listeners: (String, usize) = ::redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg("wsway:room:a")
                .query(&mut admin)
                .unwrap();
            assert_eq!(listeners.1, 0, "nobody listened meanwhile");
            assert!(unheard > 10, "published meanwhile: {unheard}");
            let () = config("10000").query(&mut admin).unwrap();
            let target = ticker.sent() + 100;
            while *seen.last().unwrap() < target {
                seen.push(tick(&mut ws).await.0);
            }
            ticker.stop();
            seen
        };
        let ((), seen) = futures_lite::future::zip(Box::pin(publishing), Box::pin(client)).await;
        let expected: Vec<u64> = (1..=*seen.last().unwrap()).collect();
        assert_eq!(seen, expected, "every message once, in order, no gap");
    }
}
