//! Topics that keep history: positions on every push, and a client that
//! reconnects with its last position gets what it missed, in order and
//! once, before anything new; when that is gone, it is told (`wsway:gap`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use serde_json::json;
use wsway::{App, Events, Retention, Topics};

fn app() -> App {
    let mut app = App::new();
    let mut events = Events::<()>::new();
    events.on_open(|ws| {
        let room = format!("room:{}", ws.param("room").unwrap_or_default());
        ws.subscribe(&room);
    });
    app.ws("/r/:room", events);
    app.history("room:*", Retention::messages(1000));
    app
}

/// Publishes `{"event": "tick", "data": n}` on `topic`, `per_second`
/// times a second, until `stop`; counts in `sent`.
async fn publisher(
    topics: Topics,
    topic: &str,
    per_second: u64,
    sent: &AtomicU64,
    stop: &AtomicBool,
) {
    let started = std::time::Instant::now();
    while !stop.load(Ordering::Acquire) {
        let due = (started.elapsed().as_secs_f64() * per_second as f64) as u64 + 1;
        while sent.load(Ordering::Acquire) < due {
            let n = sent.load(Ordering::Acquire) + 1;
            let report = topics.publish_event(topic, "tick", &n).expect("publish");
            let pos = report
                .position
                .expect("a topic that keeps history gives positions");
            assert_eq!(pos.offset, n, "offsets count the topic's publishes");
            sent.store(n, Ordering::Release);
        }
        async_io::Timer::after(Duration::from_millis(5)).await;
    }
}

/// The next push: (its data, its position).
async fn tick(ws: &mut Client) -> (u64, String) {
    let v = next_json_with_position(ws).await;
    assert_eq!(v["event"], "tick", "{v}");
    assert_eq!(v["topic"], "room:a", "{v}");
    (
        v["data"].as_u64().unwrap(),
        v["pos"].as_str().unwrap().to_owned(),
    )
}

fn resume_path(room: &str, topic: &str, pos: &str) -> String {
    let json = json!({ topic: pos }).to_string();
    let encoded: String = form_encode(&json);
    format!("/r/{room}?wsway-resume={encoded}")
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

runtime_tests! {
    async fn a_cut_connection_resumes_with_every_message_once_in_order(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let mut first = connect(addr, "/r/a").await;
        eventually("the subscriber", || server.subscriber_count("room:a") == 1).await;
        let (sent, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let publishing = {
            let (topics, sent, stop) = (server.topics(), sent.clone(), stop.clone());
            async move { publisher(topics, "room:a", 100, &sent, &stop).await }
        };
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
            let target = sent.load(Ordering::Acquire) + 20;
            while *seen.last().unwrap() < target {
                seen.push(tick(&mut second).await.0);
            }
            stop.store(true, Ordering::Release);
            drop(cut);
            seen
        };
        let ((), seen) = futures_lite::future::zip(Box::pin(publishing), Box::pin(client)).await;
        let expected: Vec<u64> = (1..=*seen.last().unwrap()).collect();
        assert!(seen.len() > 250, "the publisher kept going: {}", seen.len());
        assert_eq!(seen, expected, "every message once, in order, across the cut");
    }

    async fn a_resume_that_history_no_longer_holds_is_told(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let mut ws = connect(addr, "/r/a").await;
        eventually("the first subscriber", || server.subscriber_count("room:a") == 1).await;
        let r = server.topics().publish_event("room:a", "tick", &1).unwrap();
        let pos = r.position.unwrap();
        assert_eq!(tick(&mut ws).await, (1, pos.to_string()));
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
        eventually("the fourth subscriber", || server.subscriber_count("room:a") == 4).await;
        server.topics().publish_event("room:a", "tick", &4).unwrap();
        assert_eq!(tick(&mut odd).await.0, 4);
    }

    async fn backpressure_drops_on_a_plain_topic_are_told_once_drained(rt) {
        let mut app = App::new();
        let mut events = Events::<()>::new();
        events.on_open(|ws| {
            ws.subscribe("plain:x");
        });
        app.ws("/p", events);
        let server = rt.start(app).await;
        let mut ws = connect(server.local_addr(), "/p").await;
        eventually("the subscriber", || server.subscriber_count("plain:x") == 1).await;
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

    async fn a_subscriber_over_its_limit_catches_up_from_history(rt) {
        let server = rt.start(app()).await;
        let mut ws = connect(server.local_addr(), "/r/a").await;
        eventually("the subscriber", || server.subscriber_count("room:a") == 1).await;
        // The same burst as on a plain topic; this one keeps history.
        const N: u64 = 400;
        let big = "x".repeat(64 * 1024);
        let mut deferred = 0;
        for i in 1..=N {
            deferred += server.topics().publish_event("room:a", "tick", &(i, &big)).unwrap().dropped;
        }
        assert!(deferred > 0, "the burst went over the limit");
        // Live publishes while it is behind wait their turn too.
        server.topics().publish_event("room:a", "tick", &(N + 1, "last")).unwrap();
        for i in 1..=N + 1 {
            let v = next_json_with_position(&mut ws).await;
            assert_eq!(v["event"], "tick", "message {i}: {v}");
            assert_eq!(v["data"][0], i, "every message once, in order");
        }
        eprintln!("{deferred} of {N} deferred past the limit, all caught up from history");
    }
}
