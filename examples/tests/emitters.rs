//! Emitters: a process that serves no socket publishes into the app's
//! topics through its Redis, and clients on two nodes get every message
//! in order, once, with the position the store gave it, and resume across
//! the nodes. The Rust emitter (`wsway_redis::Emitter`) runs against one
//! Redis and a Redis Cluster; the Python one
//! (`examples/emitters/wsway_emitter.py`, written from
//! `docs/redis-wire.md` alone) against one Redis.
//!
//! All ignored without a `redis-server` (and, for Python, `python3` with
//! PyPI's `redis`): `.ci/run` installs them and runs these.

mod common;

use async_tungstenite::tungstenite::Message as Frame;
use common::shared_redis::{Kind, SharedRedis};
use common::*;
use serde_json::json;
use wsway::{App, Events, Retention, ServerHandle};

/// `/r/:room` (events) is subscribed to `room:<room>`, which keeps
/// history, and tracked there; `/news` to `news`, which does not.
fn app() -> App {
    let mut app = App::new();
    let mut rooms = Events::<()>::new();
    rooms.on_open(|ws| {
        let room = format!("room:{}", ws.param("room").unwrap_or_default());
        ws.subscribe(&room);
        ws.track(&room, &json!({})).expect("JSON metadata");
    });
    app.ws("/r/:room", rooms);
    let mut news = Events::<()>::new();
    news.on_open(|ws| {
        ws.subscribe("news");
    });
    app.ws("/news", news);
    app.history("room:*", Retention::messages(1000));
    app
}

async fn node(rt: Runtime, redis: &SharedRedis) -> ServerHandle {
    let backplane = (redis.builder().connect().await).expect("connect to the test's Redis");
    let mut app = app();
    app.backplane(backplane);
    rt.start(app).await
}

/// Two nodes, a client of `room:w` on each and of `news` on each, every
/// subscription heard in Redis.
struct Scene {
    redis: SharedRedis,
    a: ServerHandle,
    /// Held: node B serves until the scene ends.
    _b: ServerHandle,
    /// Node A's client, then node B's.
    rooms: Vec<Client>,
    news: [Client; 2],
}

impl Scene {
    async fn start(rt: Runtime, kind: Kind) -> Scene {
        let redis = SharedRedis::start(kind);
        let (a, b) = (node(rt, &redis).await, node(rt, &redis).await);
        let rooms = vec![
            connect(a.local_addr(), "/r/w").await,
            connect(b.local_addr(), "/r/w").await,
        ];
        let news = [
            connect(a.local_addr(), "/news").await,
            connect(b.local_addr(), "/news").await,
        ];
        eventually("both nodes to listen", || {
            redis.listeners("room:w") == 2 && redis.listeners("news") == 2
        })
        .await;
        Scene {
            redis,
            a,
            _b: b,
            rooms,
            news,
        }
    }

    /// A resume of `room:w` from `pos` on node A.
    async fn resume_on_a(&self, pos: &str) -> Client {
        let path = format!("/r/w?{}", resume_query(&[("room:w", pos)]));
        connect(self.a.local_addr(), &path).await
    }
}

/// Expects the `tick` event `n` at `pos` on `room:w`.
async fn expect_tick(ws: &mut Client, n: usize, pos: &str) {
    let v = next_json_with_position(ws).await;
    let want = json!({ "event": "tick", "data": n, "topic": "room:w", "pos": pos });
    assert_eq!(v, want, "tick {n}, in order, once");
}

/// Expects ticks `range`, each at its position.
async fn expect_ticks(ws: &mut Client, positions: &[String], range: std::ops::Range<usize>) {
    for (n, pos) in positions
        .iter()
        .enumerate()
        .take(range.end)
        .skip(range.start)
    {
        expect_tick(ws, n, pos).await;
    }
}

redis_tests! {
    async fn a_rust_emitter_reaches_both_nodes_in_order_and_clients_resume_across_them(rt, kind) {
        let mut scene = Scene::start(rt, kind).await;
        let emitter = (scene.redis.builder().emitter().await)
            .expect("an emitter")
            .history("room:*", Retention::messages(1000));

        // Presence as the nodes write it, read without serving.
        let counted = within(WAIT, "both members counted", async {
            loop {
                match emitter.presence_count("room:w").await {
                    Ok(2) => return 2,
                    Ok(_) => rt.sleep(std::time::Duration::from_millis(20)).await,
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .await;
        assert_eq!(counted, 2);
        let members = emitter.presence("room:w").await.expect("presence");
        assert_eq!(members.len(), 2, "{members:?}");

        let mut positions = Vec::new();
        for n in 0..20 {
            let at = emitter.emit("room:w", "tick", &n).await.expect("published");
            positions.push(at.expect("a position on a topic that keeps history").to_string());
        }
        let [on_a, on_b] = &mut scene.rooms[..] else { unreachable!() };
        expect_ticks(on_a, &positions, 0..20).await;
        expect_ticks(on_b, &positions, 0..10).await;
        // B's client leaves after tick 9; ten more; back on node A.
                drop(scene.rooms.pop());
        for n in 20..30 {
            let at = emitter.emit("room:w", "tick", &n).await.expect("published");
            positions.push(at.expect("a position").to_string());
        }
        let mut back = scene.resume_on_a(&positions[9]).await;
        expect_ticks(&mut back, &positions, 10..30).await;

        // A topic without history: text and binary as they were, no position.
        assert_eq!(emitter.publish("news", "plain").await.expect("published"), None);
        emitter.publish("news", vec![0u8, 159, 1]).await.expect("published");
        for ws in &mut scene.news {
            assert_eq!(next_message(ws).await, Frame::text("plain"));
            assert_eq!(next_message(ws).await, Frame::binary(vec![0u8, 159, 1]));
        }
    }
}

/// Runs `code` in Python with `examples/emitters` on its path and the
/// test's Redis URL as `URL`, off the runtime; its output, line by line.
async fn python(url: &str, code: &str) -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/emitters");
    let program = format!("URL = {url:?}\n{code}");
    let (tx, rx) = async_channel::bounded(1);
    std::thread::spawn(move || {
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(program)
            .env("PYTHONPATH", dir)
            .output();
        let _ = tx.send_blocking(out);
    });
    let out = within(WAIT, "the Python emitter", rx.recv())
        .await
        .expect("the thread answers")
        .expect("python3 runs (.ci/run installs it with PyPI's `redis`)");
    assert!(
        out.status.success(),
        "the Python emitter failed (does `python3 -c 'import redis'` work? \
         .ci/run installs PyPI's `redis`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    text.lines().map(str::to_owned).collect()
}

/// `first..last` ticks through the Python emitter: their positions.
async fn python_ticks(url: &str, first: usize, last: usize) -> Vec<String> {
    let code = format!(
        "from wsway_emitter import Emitter\n\
         e = Emitter(URL, history={{'room:*': (1000, 600000)}})\n\
         for n in range({first}, {last}):\n    print(e.emit('room:w', 'tick', n))\n"
    );
    python(url, &code).await
}

mod python {
    use super::common;
    use super::*;

    crate::runtime_tests! {
        #[ignore = "needs redis-server, python3 and PyPI's redis: .ci/run installs them and runs these"]
        async fn a_python_emitter_reaches_both_nodes_in_order_and_clients_resume_across_them(rt) {
            let mut scene = Scene::start(rt, Kind::Single).await;
            let url = scene.redis.url();
            let mut positions = python_ticks(&url, 0, 20).await;
            assert_eq!(positions.len(), 20, "{positions:?}");
            let [on_a, on_b] = &mut scene.rooms[..] else { unreachable!() };
            expect_ticks(on_a, &positions, 0..20).await;
            expect_ticks(on_b, &positions, 0..10).await;
                        drop(scene.rooms.pop());
            positions.extend(python_ticks(&url, 20, 30).await);
            let mut back = scene.resume_on_a(&positions[9]).await;
            expect_ticks(&mut back, &positions, 10..30).await;

            let plain = python(&url, "from wsway_emitter import Emitter\n\
                 e = Emitter(URL)\n\
                 print(e.publish('news', 'plain'))\n\
                 print(e.publish('news', bytes([0, 159, 1])))\n").await;
            assert_eq!(plain, ["None", "None"], "no position without history");
            for ws in &mut scene.news {
                assert_eq!(next_message(ws).await, Frame::text("plain"));
                assert_eq!(next_message(ws).await, Frame::binary(vec![0u8, 159, 1]));
            }
        }
    }
}
