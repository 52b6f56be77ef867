//! Several nodes sharing topics through `wsway-redis`, against a real
//! `redis-server` that each test starts on a free port (persistence off),
//! kills, restarts and pauses. The bodies in `redis_tests!` run against
//! one Redis (`single::`) and a Redis Cluster of three primaries and
//! three replicas (`cluster::`).
//!
//! Needs Debian's `redis-server`, which `.ci/run` installs before running
//! these with `--ignored`. Run by hand without it, a test fails and says
//! what is missing.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use async_tungstenite::tungstenite::Message as Frame;
use common::redis_server::RedisServer;
use common::shared_redis::{Kind, SharedRedis};
use common::*;
use futures_util::StreamExt;
use wsway::{Accept, App, Handler, Message, Request, Response, ServerHandle, Ws};
use wsway_redis::Redis;

/// `/room/:topic`: subscribes on open; every message is published to the
/// others in the room (on every node); `sub X` / `unsub X` join and leave
/// another topic; a gap is reported to the client as `gap TOPIC`.
/// Presence: `track NAME` / `untrack` in the room, `who` answers
/// `who JSON` (the members), `count` answers `count N`; a tracked member
/// that closes says `bye NAME` to the room (after it has left the
/// room's presence).
struct Member;

#[derive(Default)]
struct Seat {
    topic: String,
    name: Option<String>,
}

impl Handler for Member {
    type Data = Seat;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<Seat>, Response> {
        Ok(Accept::new(Seat {
            topic: req.params()?,
            name: None,
        }))
    }

    async fn open(&self, ws: &mut Ws<Seat>) {
        let topic = ws.data.topic.clone();
        ws.subscribe(&topic);
    }

    async fn message(&self, ws: &mut Ws<Seat>, msg: Message) {
        let topic = ws.data.topic.clone();
        match msg.as_text() {
            Some(t) if t.starts_with("sub ") => {
                let topic = t[4..].to_owned();
                ws.subscribe(&topic);
                ws.send(format!("joined {topic}"));
            }
            Some(t) if t.starts_with("unsub ") => {
                let topic = t[6..].to_owned();
                ws.unsubscribe(&topic);
                ws.send(format!("left {topic}"));
            }
            Some(t) if t.starts_with("track ") => {
                let name = t[6..].to_owned();
                let meta = serde_json::json!({ "name": name });
                ws.track(&topic, &meta).expect("JSON metadata");
                ws.data.name = Some(name);
                ws.send("tracked");
            }
            Some("untrack") => {
                ws.untrack(&topic);
                ws.data.name = None;
                ws.send("untracked");
            }
            Some("who") => {
                let answer = match ws.topics().presence(&topic).await {
                    Ok(members) => serde_json::to_string(&members).unwrap(),
                    Err(e) => format!("error: {e}"),
                };
                ws.send(format!("who {answer}"));
            }
            Some("count") => {
                let answer = match ws.topics().presence_count(&topic).await {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                ws.send(format!("count {answer}"));
            }
            _ => {
                ws.publish(&topic, msg);
            }
        }
    }

    async fn gap(&self, ws: &mut Ws<Seat>, topic: &str) {
        ws.send(format!("gap {topic}"));
    }

    async fn close(&self, ws: &mut Ws<Seat>, _code: wsway::CloseCode, _reason: &str) {
        if let Some(name) = ws.data.name.take() {
            let topic = ws.data.topic.clone();
            ws.publish(&topic, format!("bye {name}"));
        }
    }
}

/// A node: its own app and server, sharing `redis` with the others.
async fn node(rt: Runtime, redis: Redis) -> ServerHandle {
    let mut app = App::new();
    app.ws("/room/:topic", Member);
    app.backplane(redis);
    rt.start(app).await
}

/// A node on its own, with the in-process backplane.
async fn lone_node(rt: Runtime) -> ServerHandle {
    let mut app = App::new();
    app.ws("/room/:topic", Member);
    rt.start(app).await
}

/// A node whose `/me` signs in with `Bearer t-<user>` and joins that
/// user's room, and nothing else; with its topics, to publish from.
async fn user_node(rt: Runtime, redis: Redis) -> (wsway::Topics, ServerHandle) {
    #[derive(Clone)]
    struct User(String);
    let mut app = App::new();
    app.user_rooms(wsway::UserRooms::new(|u: &User| u.0.clone()));
    app.ws("/me", wsway::on_message(|_ws, _msg| {}))
        .middleware(wsway::Bearer::header(|token: String| async move {
            token.strip_prefix("t-").map(|id| User(id.to_owned()))
        }));
    app.backplane(redis);
    (app.topics(), rt.start(app).await)
}

/// Quick reconnects and a quick liveness probe, so the failure tests run in
/// seconds.
async fn quick(builder: wsway_redis::RedisBuilder, queue_bytes: usize) -> Redis {
    builder
        .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(200))
        .queue_bytes(queue_bytes)
        .connect()
        .await
        .expect("connect to the test's redis-server")
}

async fn send(ws: &mut Client, frame: Frame) {
    within(WAIT, "send", ws.send(frame)).await.expect("send");
}

async fn text(ws: &mut Client) -> String {
    match next_message(ws).await {
        Frame::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Sends `cmd` and returns the answer starting with `answer ` (what the
/// room publishes meanwhile is skipped).
async fn ask(ws: &mut Client, cmd: &str, answer: &str) -> String {
    send_text(ws, cmd).await;
    loop {
        let t = text(ws).await;
        if t == answer {
            return String::new();
        }
        if let Some(rest) = t.strip_prefix(answer).and_then(|r| r.strip_prefix(' ')) {
            return rest.to_owned();
        }
    }
}

/// The room's members as `(name, id)`, sorted by name, from `who`.
async fn who(ws: &mut Client) -> Vec<(String, String)> {
    let json = ask(ws, "who", "who").await;
    let members: Vec<serde_json::Value> =
        serde_json::from_str(&json).unwrap_or_else(|_| panic!("who answered {json}"));
    let mut named: Vec<(String, String)> = members
        .iter()
        .map(|m| {
            (
                m["meta"]["name"].as_str().unwrap().to_owned(),
                m["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    named.sort();
    named
}

fn names(members: &[(String, String)]) -> Vec<&str> {
    members.iter().map(|(n, _)| n.as_str()).collect()
}

async fn count(ws: &mut Client) -> usize {
    let n = ask(ws, "count", "count").await;
    n.parse().unwrap_or_else(|_| panic!("count answered {n}"))
}

/// Presence in one room as two nodes see it (or one node twice): tracked
/// members with their metadata, counted, and gone at once when they close
/// or untrack. No polling: a member's presence change is visible before
/// anything it publishes afterwards arrives. `listening` says when both
/// nodes hear the room (a plain publish made before cannot reach a node).
async fn presence_in_a_room(
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
    listening: impl FnMut() -> bool,
) -> (Client, Client) {
    let mut ann = connect(a, "/room/lobby").await;
    let mut al = connect(a, "/room/lobby").await;
    let mut bob = connect(b, "/room/lobby").await;
    eventually("both nodes to listen to the room", listening).await;
    for (ws, name) in [(&mut ann, "ann"), (&mut al, "al"), (&mut bob, "bob")] {
        assert_eq!(ask(ws, &format!("track {name}"), "tracked").await, "");
    }
    // bob's and al's last changes came before these publishes.
    send_text(&mut bob, "from bob").await;
    assert_eq!(text(&mut ann).await, "from bob");
    send_text(&mut al, "from al").await;
    assert_eq!(text(&mut bob).await, "from al");
    assert_eq!(text(&mut ann).await, "from al");
    for ws in [&mut ann, &mut bob] {
        let members = who(ws).await;
        assert_eq!(names(&members), ["al", "ann", "bob"]);
        let ids: std::collections::HashSet<&String> = members.iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), 3, "one id per member: {members:?}");
        assert_eq!(count(ws).await, 3);
    }
    assert_eq!(
        ask(&mut ann, "track ann again", "tracked").await,
        "",
        "an update, not a second entry"
    );
    assert_eq!(count(&mut bob).await, 3);

    // A member that closes is gone from presence before its farewell arrives.
    al.close(None).await.expect("close");
    assert_eq!(text(&mut bob).await, "bye al");
    assert_eq!(names(&who(&mut bob).await), ["ann again", "bob"]);
    assert_eq!(count(&mut bob).await, 2);
    // So is one that untracks.
    assert_eq!(ask(&mut ann, "untrack", "untracked").await, "");
    send_text(&mut ann, "still here").await;
    assert_eq!(text(&mut bob).await, "still here");
    assert_eq!(names(&who(&mut bob).await), ["bob"]);
    assert_eq!(count(&mut ann).await, 1);
    assert_eq!(ask(&mut ann, "track ann", "tracked").await, "");
    send_text(&mut ann, "back").await;
    assert_eq!(text(&mut bob).await, "back");
    assert_eq!(names(&who(&mut bob).await), ["ann", "bob"]);
    (ann, bob)
}

/// What one chat member saw across restarts: when it was in the room
/// (from its welcome to its close), and each message text it got, with
/// how many times.
#[derive(Default)]
struct Seen {
    spans: Vec<(std::time::Instant, std::time::Instant)>,
    got: std::collections::HashMap<String, u32>,
}

/// Counts for the rolling restart of two chat processes.
#[derive(Default)]
struct Rolling {
    refused: std::sync::atomic::AtomicUsize,
    dropped_upgrades: std::sync::atomic::AtomicUsize,
    closes: std::sync::Mutex<std::collections::HashMap<u16, usize>>,
}

/// Enters the chat room through whichever process takes the connection,
/// retrying a 503 (a draining process) after its Retry-After.
async fn enter_anyhow(addr: std::net::SocketAddr, token: &str, tally: &Rolling) -> Client {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        let offer = format!("wsway.v1, bearer.{token}");
        let req = request_with(addr, "/chat/den", &[("sec-websocket-protocol", &offer)]);
        match try_connect(addr, req).await {
            Ok((ws, _)) => return ws,
            Err(async_tungstenite::tungstenite::Error::Http(res)) if res.status() == 503 => {
                async_io::Timer::after(Duration::from_secs(1)).await;
            }
            Err(async_tungstenite::tungstenite::Error::Io(_)) => {
                tally.refused.fetch_add(1, Relaxed);
                async_io::Timer::after(Duration::from_millis(100)).await;
            }
            Err(_) => {
                tally.dropped_upgrades.fetch_add(1, Relaxed);
                async_io::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A member: in the room until `stop`, reconnecting after each drain
/// within its retry-in window, as wsway.js does.
async fn member(
    i: usize,
    addr: std::net::SocketAddr,
    token: String,
    tally: &Rolling,
    stop: &std::sync::atomic::AtomicBool,
) -> Seen {
    let mut seen = Seen::default();
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let mut ws = enter_anyhow(addr, &token, tally).await;
        let mut since = None;
        let (code, reason) = loop {
            let next = futures_lite::future::or(async { Some(ws.next().await) }, async {
                async_io::Timer::after(Duration::from_millis(100)).await;
                None
            });
            match next.await {
                None if stop.load(std::sync::atomic::Ordering::Acquire) => {
                    break (1000, String::new());
                }
                None => {}
                Some(Some(Ok(Frame::Text(t)))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    match v["event"].as_str() {
                        Some("chat:welcome") => since = Some(std::time::Instant::now()),
                        Some("chat:message") => {
                            *seen
                                .got
                                .entry(v["data"]["text"].as_str().unwrap().to_owned())
                                .or_default() += 1;
                        }
                        _ => {}
                    }
                }
                Some(Some(Ok(Frame::Close(Some(f))))) => {
                    break (u16::from(f.code), f.reason.to_string());
                }
                Some(Some(Ok(_))) => {}
                Some(_) => break (1006, String::new()),
            }
        };
        if let Some(since) = since {
            seen.spans.push((since, std::time::Instant::now()));
        }
        if code == 1000 {
            let _ = ws.close(None).await;
            break;
        }
        *tally.closes.lock().unwrap().entry(code).or_default() += 1;
        while let Some(Ok(_)) = ws.next().await {}
        async_io::Timer::after(reconnect_delay(&reason, i)).await;
    }
    seen
}

/// Reads until `want`, returning what came before it.
async fn until(ws: &mut Client, want: &str) -> Vec<String> {
    let mut before = Vec::new();
    loop {
        let t = text(ws).await;
        if t == want {
            return before;
        }
        before.push(t);
    }
}

runtime_tests! {


    #[ignore = "needs redis-server; .ci/run installs it and runs this"]
    async fn redis_killed_and_restarted(rt) {
        let mut redis = RedisServer::start();
        let (ra, rb) = (quick(Redis::builder(&redis.url()), 8 << 20).await, quick(Redis::builder(&redis.url()), 8 << 20).await);
        let (a, b) = (node(rt, ra.clone()).await, node(rt, rb.clone()).await);
        let mut on_a = connect(a.local_addr(), "/room/r").await;
        let mut also_a = connect(a.local_addr(), "/room/r").await;
        let mut on_b = connect(b.local_addr(), "/room/r").await;
        eventually("both nodes to listen", || redis.numsub("wsway:r") == 2).await;
        send_text(&mut on_a, "before").await;
        assert_eq!(text(&mut also_a).await, "before");
        assert_eq!(text(&mut on_b).await, "before");

        redis.kill();
        // Local delivery does not wait for Redis.
        send_text(&mut on_a, "during").await;
        assert_eq!(text(&mut also_a).await, "during");
        eventually("node B to notice", || !rb.is_subscribed()).await;

        redis.restart();
        // Both subscriptions broke: every subscriber is told, on both nodes.
        let early = until(&mut on_b, "gap r").await;
        assert!(early.iter().all(|m| m == "during"), "{early:?}");
        until(&mut also_a, "gap r").await;
        until(&mut on_a, "gap r").await;
        eventually("both nodes to listen again", || redis.numsub("wsway:r") == 2).await;
        send_text(&mut on_a, "after").await;
        let late = until(&mut on_b, "after").await;
        let during = early.iter().chain(&late).filter(|m| *m == "during").count();
        assert!(during <= 1, "the outage's message arrived {during} times");
        assert!(late.iter().all(|m| m == "during" || m == "gap r"), "{late:?}");
        assert_eq!(text(&mut also_a).await, "after");
        assert!(ra.stats().reconnects >= 1 && rb.stats().reconnects >= 1, "{:?} {:?}", ra.stats(), rb.stats());
    }

    #[ignore = "needs redis-server; .ci/run installs it and runs this"]
    async fn redis_paused_bounds_the_queue_and_the_gap_is_told(rt) {
        let redis = RedisServer::start();
        const QUEUE: usize = 64 << 10;
        let (ra, rb) = (quick(Redis::builder(&redis.url()), QUEUE).await, quick(Redis::builder(&redis.url()), QUEUE).await);
        let (a, b) = (node(rt, ra.clone()).await, node(rt, rb.clone()).await);
        let mut on_a = connect(a.local_addr(), "/room/r").await;
        let mut on_b = connect(b.local_addr(), "/room/r").await;
        eventually("both nodes to listen", || redis.numsub("wsway:r") == 2).await;

        redis.signal("-STOP");
        let mut forwarded = std::collections::HashMap::new();
        for i in 0..200u32 {
            let mut payload = vec![b'x'; 1024];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            let r = a.publish("r", Message::binary(payload));
            assert_eq!(r.delivered, 1, "local delivery never waits");
            *forwarded.entry(format!("{:?}", r.forwarded)).or_insert(0) += 1;
            assert!(ra.queued_bytes() <= QUEUE, "queue {} over {QUEUE}", ra.queued_bytes());
        }
        assert!(forwarded.contains_key("Dropped") && forwarded.contains_key("Backpressured"), "{forwarded:?}");
        for i in 0..200u32 {
            match next_message(&mut on_a).await {
                Frame::Binary(b) => assert_eq!(b[..4], i.to_be_bytes()),
                other => panic!("{other:?}"),
            }
        }
        // The liveness probe: quiet 200 ms, ping unanswered 200 ms.
        eventually("node B to drop its dead subscription", || !rb.is_subscribed()).await;
        redis.signal("-CONT");

        // B is told of the gap; what it got in between came once each, in order.
        let mut seen = Vec::new();
        loop {
            match next_message(&mut on_b).await {
                Frame::Text(t) if t == "gap r" => break,
                Frame::Binary(b) => seen.push(u32::from_be_bytes(b[..4].try_into().unwrap())),
                other => panic!("{other:?}"),
            }
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, once each: {seen:?}");
        eventually("both nodes to listen again", || redis.numsub("wsway:r") == 2).await;
        a.publish("r", "after");
        loop {
            match next_message(&mut on_b).await {
                Frame::Text(t) if t == "after" => break,
                Frame::Text(t) if t == "gap r" => {}
                Frame::Binary(b) => {
                    let n = u32::from_be_bytes(b[..4].try_into().unwrap());
                    assert!(seen.last().is_none_or(|&l| n > l), "{n} after {seen:?}");
                    seen.push(n);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(ra.stats().dropped > 0);
    }


    async fn presence_on_one_node_has_the_same_api(rt) {
        let server = lone_node(rt).await;
        let addr = server.local_addr();
        let (mut ann, _bob) = presence_in_a_room(addr, addr, || true).await;
        let members = who(&mut ann).await;
        let ids: Vec<&str> = members.iter().map(|(_, id)| id.as_str()).collect();
        assert!(ids.iter().all(|id| id.parse::<u64>().is_ok()), "connection ids: {ids:?}");
    }

    #[ignore = "needs redis-server; .ci/run installs it and runs this"]
    async fn two_chat_processes_behind_one_socket_restart_in_turn(rt) {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Instant;
        let redis = RedisServer::start();
        let url = redis.url();
        let (socket, addr) = held_socket();
        let fd = socket.as_raw_fd();
        let bin = env!("CARGO_BIN_EXE_chat");
        let secret = [("CHAT_SECRET", "one deployment")];
        let spawn = || Example::spawn_on_socket(bin, rt, fd, &["--redis", &url], &secret);
        let mut old = vec![spawn(), spawn()];
        const MEMBERS: usize = 10;
        let mut tokens = Vec::new();
        for i in 0..MEMBERS {
            tokens.push(chat_login(addr, &format!("m{i}")).await);
        }
        let writer_token = chat_login(addr, "writer").await;
        let tally = Rolling::default();
        let stop = AtomicBool::new(false);
        let members = futures_util::future::join_all(
            tokens.into_iter().enumerate().map(|(i, t)| member(i, addr, t, &tally, &stop)),
        );
        // The writer sends a line every 50 ms and notes when each was
        // sent and acked (the ack comes after the publish).
        let acked = std::sync::Mutex::new(Vec::<(String, Instant, Instant)>::new());
        let writer = async {
            let mut n = 0u32;
            'connection: while !stop.load(Ordering::Acquire) {
                let mut ws = enter_anyhow(addr, &writer_token, &tally).await;
                while !stop.load(Ordering::Acquire) {
                    let text = format!("line {n}");
                    n += 1;
                    let sent = Instant::now();
                    let call = serde_json::json!({"event": "chat:send", "data": {"text": text}, "id": n});
                    if ws.send(Frame::text(call.to_string())).await.is_err() {
                        continue 'connection;
                    }
                    loop {
                        match ws.next().await {
                            Some(Ok(Frame::Text(t))) => {
                                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                                if v["id"] == n && v["ok"] == true {
                                    acked.lock().unwrap().push((text.clone(), sent, Instant::now()));
                                    break;
                                }
                            }
                            Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => {
                                while let Some(Ok(_)) = ws.next().await {}
                                async_io::Timer::after(Duration::from_millis(300)).await;
                                continue 'connection;
                            }
                            Some(Ok(_)) => {}
                        }
                    }
                    async_io::Timer::after(Duration::from_millis(50)).await;
                }
                let _ = ws.close(None).await;
            }
        };
        let restarts = async {
            async_io::Timer::after(Duration::from_secs(2)).await;
            // One after the other: a new process joins the socket, then
            // the old one drains.
            for _ in 0..2 {
                let next = spawn();
                let mut leaving = old.remove(0);
                leaving.signal("-TERM");
                let (status, leaving) = within(Duration::from_secs(20), "the old process to exit", blocking(move || {
                    (leaving.wait_exit(Duration::from_secs(11)), leaving)
                }))
                .await;
                assert!(status.success(), "{status:?}: {}", leaving.output());
                old.push(next);
                async_io::Timer::after(Duration::from_secs(8)).await;
            }
            stop.store(true, Ordering::Release);
        };
        let (seen, ((), ())) = within(
            Duration::from_secs(120),
            "the rolling restart",
            // Boxed: async-std polls on the test thread's stack.
            Box::pin(futures_lite::future::zip(
                Box::pin(members),
                futures_lite::future::zip(Box::pin(writer), Box::pin(restarts)),
            )),
        )
        .await;

        let acked = acked.into_inner().unwrap();
        let closes = tally.closes.lock().unwrap().clone();
        let refused = tally.refused.load(Ordering::Relaxed);
        let dropped = tally.dropped_upgrades.load(Ordering::Relaxed);
        // Every acked line reached, exactly once, every member that was in
        // the room from before it was sent until well after its ack.
        let mut owed = 0;
        let mut missing = Vec::new();
        for (text, sent, ack) in &acked {
            for (i, s) in seen.iter().enumerate() {
                let present = s.spans.iter().any(|(from, to)| from < sent && *to > *ack + Duration::from_secs(1));
                if present {
                    owed += 1;
                    if s.got.get(text).copied() != Some(1) {
                        missing.push(format!("m{i}: {text} x{:?}", s.got.get(text)));
                    }
                }
            }
        }
        let duplicates: usize = seen.iter().flat_map(|s| s.got.values()).filter(|&&c| c > 1).count();
        eprintln!(
            "{}: {} lines acked, {owed} deliveries owed, closes {closes:?}, {refused} refused, {dropped} dropped upgrades",
            rt.name(),
            acked.len()
        );
        assert!(acked.len() > 100, "the writer kept writing through the restarts: {}", acked.len());
        assert!(missing.is_empty(), "acked lines lost: {missing:?}");
        assert_eq!(duplicates, 0, "a line delivered twice");
        assert_eq!((refused, dropped), (0, 0), "connects refused or upgrades dropped");
        assert!(closes.keys().all(|&c| c == 1001), "closed with {closes:?}");
        assert!(closes.values().sum::<usize>() >= MEMBERS, "every member was restarted at least once: {closes:?}");
    }

    async fn an_example_with_an_unreachable_redis_exits_with_the_reason(rt) {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_bench-server"))
                .args(["--port", "0", "--runtime", rt.name(), "--redis", &format!("redis://127.0.0.1:{closed}/")])
                .output()
        });
        let out = within(Duration::from_secs(20), "the example to give up", out).await.expect("run bench-server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("cannot reach Redis at `redis://127.0.0.1:"), "{stderr}");
    }

    async fn a_bad_url_or_an_unreachable_redis_fails_fast(_rt) {
        let err = Redis::connect("http://127.0.0.1:1/").await.expect_err("not a redis URL");
        assert!(err.is_bad_url(), "{err}");
        assert!(err.to_string().starts_with("invalid Redis URL `http://127.0.0.1:1/`"), "{err}");

        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("redis://:hunter2@127.0.0.1:{closed}/");
        let started = std::time::Instant::now();
        let err = within(Duration::from_secs(10), "connect to fail", Redis::connect(&url)).await.expect_err("nothing listens there");
        assert!(!err.is_bad_url(), "{err}");
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("cannot reach Redis at `redis://:***@127.0.0.1:{closed}/`")), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

        // A listener that takes the connection and never answers: the
        // connect timeout (3 s by default, or as set) ends the wait.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}/", silent.local_addr().unwrap());
        for (timeout, connecting) in [
            (Duration::from_secs(3), Redis::builder(&url)),
            (Duration::from_millis(500), Redis::builder(&url).connect_timeout(Duration::from_millis(500))),
        ] {
            let started = std::time::Instant::now();
            let err = within(Duration::from_secs(10), "connect to give up", Box::pin(connecting.connect())).await.expect_err("nobody answers");
            let took = started.elapsed();
            assert!(err.to_string().starts_with("cannot reach Redis at"), "{err}");
            assert!(took >= timeout && took < timeout + Duration::from_millis(500), "gave up after {took:?}, timeout {timeout:?}");
        }
        drop(silent);
    }

    #[ignore = "needs redis-server; .ci/run installs it and runs this"]
    async fn a_paused_redis_is_noticed_within_2_s_with_the_defaults(rt) {
        let redis = RedisServer::start();
        let backplane = Redis::connect(&redis.url()).await.expect("connect with the defaults");
        let a = node(rt, backplane.clone()).await;
        let _member = connect(a.local_addr(), "/room/r").await;
        eventually("the node to listen", || redis.numsub("wsway:r") == 1 && backplane.is_subscribed()).await;
        redis.signal("-STOP");
        let paused = std::time::Instant::now();
        // A ping after 1 s of quiet, unanswered for 1 s.
        eventually("the paused Redis to be noticed", || !backplane.is_subscribed()).await;
        let noticed = paused.elapsed();
        redis.signal("-CONT");
        assert!(noticed <= Duration::from_millis(2050), "a paused Redis was noticed after {noticed:?}");
        eventually("the node to listen again", || backplane.is_subscribed()).await;
    }
}

// Against one Redis (`single::`) and a Redis Cluster (`cluster::`).
redis_tests! {
    async fn two_nodes_share_a_room_exactly_once_in_order(rt, kind) {
        let redis = SharedRedis::start(kind);
        let (ra, rb) = (quick(redis.builder(), 8 << 20).await, quick(redis.builder(), 8 << 20).await);
        let (a, b) = (node(rt, ra.clone()).await, node(rt, rb.clone()).await);
        let mut sender = connect(a.local_addr(), "/room/lobby").await;
        let mut peers = [
            connect(a.local_addr(), "/room/lobby").await,
            connect(b.local_addr(), "/room/lobby").await,
            connect(b.local_addr(), "/room/lobby").await,
        ];
        eventually("both nodes to listen to the room", || redis.listeners("lobby") == 2).await;

        const N: u32 = 300;
        for i in 0..N {
            let frame = if i % 2 == 0 {
                Frame::text(format!("m{i}"))
            } else {
                Frame::binary(i.to_be_bytes().to_vec())
            };
            send(&mut sender, frame).await;
        }
        send_text(&mut sender, "end").await;
        for (p, peer) in peers.iter_mut().enumerate() {
            for i in 0..N {
                let got = next_message(peer).await;
                if i % 2 == 0 {
                    assert_eq!(got, Frame::text(format!("m{i}")), "peer {p}, message {i}");
                } else {
                    assert_eq!(got, Frame::binary(i.to_be_bytes().to_vec()), "peer {p}, message {i}: binary stays binary");
                }
            }
            // Exactly once: nothing repeated before the marker.
            assert_eq!(text(peer).await, "end", "peer {p}");
        }
        // Node B got every frame once; node A skipped its own.
        assert_eq!(rb.stats().received, u64::from(N) + 1);
        assert_eq!(ra.stats().received, 0, "a node never delivers its own publish twice");

        // The other way, and from the server side: everyone, the sender too.
        let r = b.publish("lobby", "from b");
        assert_eq!((r.delivered, r.forwarded), (2, wsway::Forwarded::Queued));
        for ws in std::iter::once(&mut sender).chain(peers.iter_mut()) {
            assert_eq!(text(ws).await, "from b");
        }
        // The publisher got nothing of its own 300: its next message is "from b".
        assert_eq!(ra.stats().received, 1);
    }
    async fn emit_to_user_reaches_that_user_on_every_node(rt, kind) {
        let redis = SharedRedis::start(kind);
        let (ra, rb) = (quick(redis.builder(), 8 << 20).await, quick(redis.builder(), 8 << 20).await);
        let (a, b) = (user_node(rt, ra).await, user_node(rt, rb).await);
        let (topics_a, a) = a;
        let (_, b) = b;
        let signed_in = |addr, user: &str| {
            let auth = format!("Bearer t-{user}");
            connect_request(addr, request_with(addr, "/me", &[("authorization", &auth)]))
        };
        let mut ann_on_a = signed_in(a.local_addr(), "ann").await;
        let mut ann_on_b = signed_in(b.local_addr(), "ann").await;
        let mut bob_on_b = signed_in(b.local_addr(), "bob").await;
        eventually("both nodes to listen to ann's room, and B to bob's", || {
            redis.listeners("user:ann") == 2 && redis.listeners("user:bob") == 1
        })
        .await;

        let sent = topics_a.publish_to_user("ann", "for ann").unwrap();
        assert_eq!(sent.delivered, 1, "one of ann's connections is on this node");
        topics_a.publish_to_user("bob", "for bob").unwrap();
        assert_eq!(text(&mut ann_on_a).await, "for ann");
        assert_eq!(text(&mut ann_on_b).await, "for ann", "and the other on the other node");
        assert_eq!(text(&mut bob_on_b).await, "for bob", "bob's first message is his own");
    }
    async fn channels_follow_local_subscribers(rt, kind) {
        let redis = SharedRedis::start(kind);
        let server = node(rt, quick(redis.builder(), 8 << 20).await).await;
        let mut ws = connect(server.local_addr(), "/room/base").await;
        eventually("the base channel", || redis.topics() == ["base"]).await;
        for i in 0..1000 {
            let topic = format!("t{}", i % 10);
            send_text(&mut ws, &format!("sub {topic}")).await;
            assert_eq!(text(&mut ws).await, format!("joined {topic}"));
            if i == 0 {
                eventually("a channel per topic with a subscriber", || redis.listeners("t0") == 1).await;
            }
            send_text(&mut ws, &format!("unsub {topic}")).await;
            assert_eq!(text(&mut ws).await, format!("left {topic}"));
        }
        eventually("only the base channel after 1000 cycles", || redis.topics() == ["base"]).await;
        drop(ws);
        eventually("no channel once the last subscriber left", || redis.topics().is_empty()).await;
    }
    async fn a_gap_on_one_node_reaches_the_members_of_another_whose_subscription_held(rt, kind) {
        let redis = SharedRedis::start(kind);
        // Only A loses publishes: a small queue, behind writes Redis holds.
        const QUEUE: usize = 8 << 10;
        let (ra, rb) = (quick(redis.builder(), QUEUE).await, quick(redis.builder(), 8 << 20).await);
        let (a, b) = (node(rt, ra.clone()).await, node(rt, rb.clone()).await);
        let mut on_b = connect(b.local_addr(), "/room/r").await;
        eventually("B to listen", || redis.listeners("r") == 1).await;
        let subscriptions = redis.subscription_ids();

        // Writes paused (PUBLISH among them); subscriptions and their
        // pings go on, so B never loses its own.
        redis.pause_writes("r", 10_000);
        let mut dropped = 0;
        for i in 0..200u32 {
            let mut payload = vec![b'x'; 1024];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            if matches!(a.publish("r", Message::binary(payload)).forwarded, wsway::Forwarded::Dropped) {
                dropped += 1;
            }
        }
        assert!(dropped > 100, "only {dropped} of 200 dropped behind an 8 KiB queue");
        // Past the liveness probe's 400 ms: a subscription that were to
        // break would have broken by now.
        Runtime::Smol.sleep(Duration::from_millis(800)).await;
        assert!(rb.is_subscribed(), "B's subscription broke while writes were paused");
        redis.unpause("r");

        // B's member hears of the gap, from A's note alone; what it got
        // around it came once each, in order.
        let mut seen = Vec::new();
        loop {
            match next_message(&mut on_b).await {
                Frame::Text(t) if t == "gap r" => break,
                Frame::Binary(m) => seen.push(u32::from_be_bytes(m[..4].try_into().unwrap())),
                other => panic!("{other:?}"),
            }
        }
        assert!(seen.len() < 200 && seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        a.publish("r", "after");
        loop {
            match next_message(&mut on_b).await {
                Frame::Text(t) if t == "after" => break,
                Frame::Binary(m) => {
                    let n = u32::from_be_bytes(m[..4].try_into().unwrap());
                    assert!(seen.last().is_none_or(|&l| n > l), "{n} after {seen:?}");
                    seen.push(n);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(redis.subscription_ids(), subscriptions, "a subscription was made again");
        assert_eq!(rb.stats().gaps, 1, "{:?}", rb.stats());
        assert!(ra.stats().dropped >= dropped, "{:?}", ra.stats());
    }
    async fn two_bench_server_processes_share_rooms(rt, kind) {
        let redis = SharedRedis::start(kind);
        let url = redis.url();
        let bin = env!("CARGO_BIN_EXE_bench-server");
        let one = Example::spawn_with(bin, rt, &["--redis", &url]);
        let two = Example::spawn_with(bin, rt, &["--redis", &url]);
        let mut here = connect(one.addr, "/room/lobby").await;
        let mut there = connect(two.addr, "/room/lobby").await;
        eventually("both processes to listen to the room", || redis.listeners("lobby") == 2).await;
        send_text(&mut here, "hello across processes").await;
        // /room publishes to self: both members get it, once.
        assert_eq!(text(&mut here).await, "hello across processes");
        assert_eq!(text(&mut there).await, "hello across processes");
        send_text(&mut there, "and back").await;
        assert_eq!(text(&mut here).await, "and back");
        assert_eq!(text(&mut there).await, "and back");
    }
    /// The store loses the room's presence: one Redis restarted empty, or
    /// on a cluster the room's shard flushed (a primary restarted empty
    /// with no replica to take over). Each node finds its liveness gone at
    /// its next heartbeat and writes its members there again.
    async fn presence_is_written_again_when_the_store_loses_it(rt, kind) {
        let mut redis = SharedRedis::start(kind);
        let beat = Duration::from_millis(200);
        let quick_beat = |builder: wsway_redis::RedisBuilder| async {
            builder
                .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
                .ping_interval(Duration::from_millis(200))
                .ping_timeout(Duration::from_millis(200))
                .presence_heartbeat(beat)
                .connect()
                .await
                .expect("connect")
        };
        let (a, b) = (
            node(rt, quick_beat(redis.builder()).await).await,
            node(rt, quick_beat(redis.builder()).await).await,
        );
        let mut ann = connect(a.local_addr(), "/room/r").await;
        let mut bob = connect(b.local_addr(), "/room/r").await;
        ask(&mut ann, "track ann", "tracked").await;
        ask(&mut bob, "track bob", "tracked").await;
        eventually("both nodes to listen", || redis.listeners("r") == 2).await;
        assert_eq!(count(&mut bob).await, 2);
        match kind {
            Kind::Single => {
                let server = redis.single_mut();
                server.kill();
                assert!(ask(&mut bob, "who", "who").await.starts_with("error: presence is unavailable"), "no partial answer while Redis is away");
                server.restart();
                until(&mut bob, "gap r").await;
            }
            Kind::Cluster => {
                let _: () = redis.query_at("r", &mut redis::cmd("FLUSHALL"));
            }
        }
        // Each node writes its own again, at its own next heartbeat: bob
        // sees ann once node A has, ann counts bob once node B has.
        let started = std::time::Instant::now();
        loop {
            let listed = serde_json::from_str::<serde_json::Value>(&ask(&mut bob, "who", "who").await)
                .is_ok_and(|members| members.as_array().map(Vec::len) == Some(2));
            if listed && count(&mut ann).await == 2 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "presence was not written again");
            rt.sleep(Duration::from_millis(20)).await;
        }
    }
    async fn presence_spans_nodes_and_a_leave_shows_at_once(rt, kind) {
        let redis = SharedRedis::start(kind);
        // Heartbeats far apart: whatever shows at once here is not the TTL.
        let slow = || async {
            redis.builder()
                .presence_heartbeat(Duration::from_secs(20))
                .connect()
                .await
                .expect("connect")
        };
        let (a, b) = (node(rt, slow().await).await, node(rt, slow().await).await);
        let (_ann, mut bob) = presence_in_a_room(a.local_addr(), b.local_addr(), || redis.listeners("lobby") == 2).await;
        // A node that stops takes its members with it at once.
        let started = std::time::Instant::now();
        a.shutdown();
        within(WAIT, "node A to stop", a.stopped()).await;
        loop {
            if names(&who(&mut bob).await) == ["bob"] {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "node A's members outlived its stop");
            rt.sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(count(&mut bob).await, 1);
        // It left the registry: the node set on one Redis, the room's
        // deadlines on a cluster.
        let registry: Vec<String> = match kind {
            Kind::Single => redis.query_at("lobby", redis::cmd("SMEMBERS").arg("wsway:nodes")),
            Kind::Cluster => redis.query_at("lobby", redis::cmd("HKEYS").arg("wsway:{=lobby}:alive")),
        };
        assert_eq!(registry.len(), 1, "the stopped node left the registry: {registry:?}");
    }
    async fn two_chat_processes_share_rooms_and_a_crashed_ones_members_vanish(rt, kind) {
        let redis = SharedRedis::start(kind);
        let url = redis.url();
        let bin = env!("CARGO_BIN_EXE_chat");
        const BEAT_MS: u64 = 1000;
        let beat = BEAT_MS.to_string();
        let one = Example::spawn_with(bin, rt, &["--redis", &url, "--presence-heartbeat", &beat]);
        let two = Example::spawn_with(bin, rt, &["--redis", &url, "--presence-heartbeat", &beat]);
        let mut ann = chat_join(one.addr, "den", "ann").await;
        eventually("process one to listen to the room", || redis.listeners("room:den") == 1).await;
        let mut bob = chat_join(two.addr, "den", "bob").await;
        // bob's join crossed processes, after his presence.
        assert_eq!(next_json(&mut ann).await, serde_json::json!({"event": "chat:join", "data": {"name": "bob"}}));
        let who = serde_json::json!({"event": "chat:who", "id": 1});
        let both = serde_json::json!({"id": 1, "ok": true, "data": {"members": ["ann", "bob"], "count": 2}});
        assert_eq!(call(&mut ann, who.clone()).await, both);
        assert_eq!(call(&mut bob, who.clone()).await, both);
        let hi = serde_json::json!({"event": "chat:message", "data": {"name": "ann", "text": "hi bob"}});
        // The room keeps history: the line is numbered in Redis and comes
        // back to ann's process as to bob's, so her ack may come first.
        let first = call(&mut ann, serde_json::json!({"event": "chat:send", "data": {"text": "hi bob"}, "id": 2})).await;
        let mut got = [first, next_json(&mut ann).await];
        got.sort_by_key(|v| v.to_string());
        let ack = serde_json::json!({"id": 2, "ok": true, "data": {"sent": true}});
        assert_eq!(got, [hi.clone(), ack], "the line and its ack");
        assert_eq!(next_json(&mut bob).await, hi);

        // Where each member's entry sits: fields are `NODE:CONN`.
        let hash = |key: &str| -> std::collections::HashMap<String, String> {
            redis.query_at("room:den", redis::cmd("HGETALL").arg(key))
        };
        let key = |name: &str| match kind {
            Kind::Single => format!("wsway:{name}:room:den"),
            Kind::Cluster => format!("wsway:{{=room:den}}:{name}"),
        };
        let node_of = |field: &String| field.split(':').next().unwrap().to_owned();
        let entries = hash(&key("presence"));
        assert_eq!(entries.len(), 2, "{entries:?}");
        let (dead, live): (Vec<_>, Vec<_>) = entries.iter().partition(|(_, meta)| meta.contains("\"ann\""));
        let (dead, live) = (node_of(dead[0].0), node_of(live[0].0));

        one.signal("-KILL");
        let killed = std::time::Instant::now();
        // The liveness key lives three heartbeats past the last one: a
        // reader polling every POLL sees ann gone by then, plus one poll,
        // counted from when the poll asks (its round trip is not Redis').
        const POLL: Duration = Duration::from_millis(100);
        let bound = Duration::from_millis(3 * BEAT_MS) + POLL;
        let alone = serde_json::json!({"id": 1, "ok": true, "data": {"members": ["bob"], "count": 1}});
        let vanished = loop {
            let asked = killed.elapsed();
            if call(&mut bob, who.clone()).await == alone {
                break asked;
            }
            assert!(asked < bound, "ann was still listed {asked:?} after her process died (bound {bound:?})");
            rt.sleep(POLL).await;
        };
        eprintln!("a crashed process's member was gone {vanished:?} after the kill (heartbeat {BEAT_MS} ms)");

        // The live node's next heartbeat sweeps the dead one's entries out
        // of the hashes themselves, not only out of what readers see.
        let swept = || {
            let members = hash(&key("presence"));
            let counts = hash(&key("count"));
            // The registry: the node set and each node's topics on one
            // Redis, the room's deadlines on a cluster.
            let registry = match kind {
                Kind::Single => {
                    let nodes: Vec<String> = redis.query_at("room:den", redis::cmd("SMEMBERS").arg("wsway:nodes"));
                    let topics: bool = redis.query_at("room:den", redis::cmd("EXISTS").arg(format!("wsway:node-topics:{dead}")));
                    nodes == [live.clone()] && !topics
                }
                Kind::Cluster => hash(&key("alive")).keys().collect::<Vec<_>>() == [&live],
            };
            members.keys().all(|f| node_of(f) == live)
                && members.len() == 1
                && counts.keys().collect::<Vec<_>>() == [&live]
                && registry
        };
        eventually_for(Duration::from_millis(BEAT_MS) + POLL, "the sweep to clear the dead node's entries", swept).await;
    }
}
