//! Replay throughput: how fast a client that reconnects with its last
//! position gets what it missed, against the same messages delivered live.
//!
//! ```sh
//! cargo bench -p examples --bench replay -- [--messages 50000] [--runtime tokio|smol|async-std] [--redis]
//! ```
//!
//! One server (in this process, on the chosen runtime) with a topic that
//! keeps `--messages` pushes of about 64 bytes; the backpressure limit is
//! raised so the whole replay fits in one go. The client runs on async-io.
//!
//! With `--redis` the history is kept in a `redis-server` of its own
//! (persistence off): the live figure includes the round trip through
//! Redis, the replay on the same server comes from its window, and a
//! second server (a node that saw none of it) replays from Redis.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::{Client, Runtime, connect, next_json_with_position};
use wsway::{App, Events, Position, Retention, ServerHandle};

fn app(messages: usize) -> App {
    let mut app = App::new();
    let mut events = Events::<()>::new();
    events.on_open(|ws| {
        ws.subscribe("room:bench");
    });
    app.ws("/r", events)
        .limits(|l| l.backpressure_limit(256 << 20));
    app.history(
        "room:*",
        Retention::messages(messages).max_age(Duration::from_secs(600)),
    );
    app
}

/// Reads `n` pushes; returns the last one's position.
async fn read(ws: &mut Client, n: usize) -> String {
    let mut last = String::new();
    for _ in 0..n {
        let v = next_json_with_position(ws).await;
        last = v["pos"].as_str().unwrap_or_default().to_owned();
    }
    last
}

/// A server of `app(messages)`, its history in `redis` if given.
async fn start(rt: Runtime, messages: usize, redis: Option<&RedisServer>) -> ServerHandle {
    let mut app = app(messages);
    if let Some(redis) = redis {
        let backplane = wsway_redis::Redis::builder(&redis.url())
            .queue_bytes(256 << 20)
            .connect()
            .await;
        app.backplane(backplane.expect("redis"));
    }
    rt.start(app).await
}

/// Resumes on `addr` from just before `first`, reads `messages` pushes
/// and checks the last one; returns the rate.
async fn replay(addr: std::net::SocketAddr, first: Position, messages: usize) -> f64 {
    let since = format!("{:x}:{}", first.epoch, first.offset - 1);
    let query = format!("{{\"room:bench\":\"{since}\"}}")
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect::<String>();
    let started = Instant::now();
    let mut resumed = connect(addr, &format!("/r?wsway-resume={query}")).await;
    let last = read(&mut resumed, messages).await;
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    assert_eq!(
        last,
        format!("{:x}:{}", first.epoch, first.offset + messages as u64 - 1)
    );
    rate
}

async fn run(rt: Runtime, messages: usize, redis: Option<RedisServer>) {
    let server = start(rt, messages, redis.as_ref()).await;
    let addr = server.local_addr();
    let payload = "x".repeat(40);

    // Live: a connected client receives `messages` pushes.
    let mut live = connect(addr, "/r").await;
    while server.subscriber_count("room:bench") == 0 {
        async_io::Timer::after(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    for i in 0..messages {
        server
            .topics()
            .publish_event("room:bench", "m", &(i, &payload))
            .unwrap();
    }
    let first = next_json_with_position(&mut live).await;
    let first = Position::parse(first["pos"].as_str().unwrap()).unwrap();
    read(&mut live, messages - 1).await;
    let live_rate = messages as f64 / started.elapsed().as_secs_f64();

    // Replay: a client that was just before the first of them resumes.
    let replay_rate = replay(addr, first, messages).await;
    print!(
        "{}{}: {messages} messages of ~64 B; live {:.0} msg/s, replay {:.0} msg/s ({:.2}× live)",
        rt.name(),
        if redis.is_some() { " with Redis" } else { "" },
        live_rate,
        replay_rate,
        replay_rate / live_rate
    );
    // With Redis, a node that saw none of it replays from Redis.
    if redis.is_some() {
        let other = start(rt, messages, redis.as_ref()).await;
        let fetched_rate = replay(other.local_addr(), first, messages).await;
        print!(
            ", from Redis on another node {:.0} msg/s ({:.2}× live)",
            fetched_rate,
            fetched_rate / live_rate
        );
    }
    println!();
}

fn main() {
    let mut messages = 50_000;
    let mut runtime = Runtime::Tokio;
    let mut redis = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--redis" => redis = true,
            "--messages" => {
                messages = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--messages N")
            }
            "--runtime" => {
                runtime = match args.next().as_deref() {
                    Some("smol") => Runtime::Smol,
                    Some("async-std") => Runtime::AsyncStd,
                    _ => Runtime::Tokio,
                }
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let redis = redis.then(RedisServer::start);
    runtime.run(move |rt| run(rt, messages, redis));
}
