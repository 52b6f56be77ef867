//! No message lost across a rolling restart, with history in Redis: two
//! chat processes (`--redis`) behind one held socket, 500 members in 10
//! rooms, a writer per room sending 50 lines a second, and each process
//! replaced in turn (a new one joins the socket, the old one drains).
//! Members reconnect as `wsway.js` does: at a moment within the close's
//! `retry-in`, with their last position in their room.
//!
//! Every member must end with every message of its room from the first it
//! got, exactly once and in order: the offsets it received (raw, without
//! `wsway.js`'s duplicate filter) are contiguous up to the room's last
//! offset in Redis, in one epoch, and it is never told of a gap.
//!
//! Needs `redis-server` (ignored without it; `.ci/run` installs it and
//! runs this).

mod common;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::{self, Message as Frame};
use common::redis_server::RedisServer;
use common::*;
use futures_util::StreamExt;

const ROOMS: usize = 10;
const PER_ROOM: usize = 50;
/// Lines a second from each room's writer.
const RATE: u64 = 50;

/// What the run counted, across members and writers.
#[derive(Default)]
struct Tally {
    connected: AtomicUsize,
    refused: AtomicUsize,
    failed_upgrades: AtomicUsize,
    closes: Mutex<std::collections::HashMap<u16, usize>>,
    lines: AtomicUsize,
}

/// One member's record: every offset it received in its room, in order,
/// and anything that breaks the promise.
#[derive(Default)]
struct Log {
    epoch: Option<String>,
    offsets: Vec<u64>,
    gaps: usize,
    other_epochs: usize,
}

fn room_topic(room: usize) -> String {
    format!("room:r{room}")
}

/// Enters `room` through whichever process takes the connection (with the
/// last position, once there is one), retrying a draining process's 503.
async fn enter(
    addr: SocketAddr,
    room: usize,
    token: &str,
    last: Option<&str>,
    tally: &Tally,
) -> Client {
    let path = match last {
        Some(pos) => format!(
            "/chat/r{room}?{}",
            resume_query(&[(&room_topic(room), pos)])
        ),
        None => format!("/chat/r{room}"),
    };
    loop {
        let offer = format!("wsway.v1, bearer.{token}");
        let req = request_with(addr, &path, &[("sec-websocket-protocol", &offer)]);
        match try_connect(addr, req).await {
            Ok((ws, _)) => return ws,
            Err(tungstenite::Error::Http(res)) if res.status() == 503 => {
                async_io::Timer::after(Duration::from_millis(200)).await;
            }
            Err(tungstenite::Error::Io(_)) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                async_io::Timer::after(Duration::from_millis(100)).await;
            }
            Err(_) => {
                tally.failed_upgrades.fetch_add(1, Ordering::Relaxed);
                async_io::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why a connection ended: its close code and reason (1006 when there was
/// no close frame).
async fn ended(ws: &mut Client, frame: Option<tungstenite::protocol::CloseFrame>) -> (u16, String) {
    let end = frame.map_or((1006, String::new()), |f| {
        (u16::from(f.code), f.reason.to_string())
    });
    while let Some(Ok(_)) = ws.next().await {}
    end
}

/// A member of `room`: in it until `stop`, recording the offset of every
/// push, reconnecting after each drain as `wsway.js` does. `last` is where
/// it is now, for the harness to compare with the room's last offset.
async fn member(
    i: usize,
    room: usize,
    addr: SocketAddr,
    token: String,
    last: &AtomicU64,
    stop: &AtomicBool,
    tally: &Tally,
) -> Log {
    let mut log = Log::default();
    let mut pos: Option<String> = None;
    while !stop.load(Ordering::Acquire) {
        let mut ws = enter(addr, room, &token, pos.as_deref(), tally).await;
        tally.connected.fetch_add(1, Ordering::AcqRel);
        let (code, reason) = loop {
            let next = futures_lite::future::or(async { Some(ws.next().await) }, async {
                async_io::Timer::after(Duration::from_millis(100)).await;
                None
            });
            match next.await {
                None if stop.load(Ordering::Acquire) => {
                    let _ = ws.close(None).await;
                    break (1000, String::new());
                }
                None => {}
                Some(Some(Ok(Frame::Text(t)))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["event"] == "wsway:gap" {
                        log.gaps += 1;
                    }
                    if let Some(p) = v["pos"].as_str() {
                        let (epoch, offset) = p.split_once(':').unwrap();
                        match &log.epoch {
                            None => log.epoch = Some(epoch.to_owned()),
                            Some(e) if e != epoch => log.other_epochs += 1,
                            Some(_) => {}
                        }
                        let offset: u64 = offset.parse().unwrap();
                        log.offsets.push(offset);
                        last.store(offset, Ordering::Release);
                        pos = Some(p.to_owned());
                    }
                }
                Some(Some(Ok(Frame::Close(frame)))) => break ended(&mut ws, frame).await,
                Some(Some(Ok(_))) => {}
                Some(_) => break ended(&mut ws, None).await,
            }
        };
        tally.connected.fetch_sub(1, Ordering::AcqRel);
        if code == 1000 {
            break;
        }
        *tally.closes.lock().unwrap().entry(code).or_default() += 1;
        async_io::Timer::after(reconnect_delay(&reason, i)).await;
    }
    log
}

/// The writer of `room`: a line every 1/RATE s while `writing`, through
/// whichever process serves it (lines due while it reconnects are not
/// sent; what counts is what was published).
async fn writer(room: usize, addr: SocketAddr, token: String, writing: &AtomicBool, tally: &Tally) {
    let mut n = 0u64;
    let started = Instant::now();
    'connection: while writing.load(Ordering::Acquire) {
        let mut ws = enter(addr, room, &token, None, tally).await;
        while writing.load(Ordering::Acquire) {
            let due = started + Duration::from_millis(n * 1000 / RATE);
            let wait = due.saturating_duration_since(Instant::now());
            // Reads what the room sends meanwhile (it would back up
            // otherwise), and notices a close.
            let read = futures_lite::future::or(async { Some(ws.next().await) }, async {
                async_io::Timer::after(wait).await;
                None
            });
            match read.await {
                Some(Some(Ok(Frame::Close(frame)))) => {
                    let (_, reason) = ended(&mut ws, frame).await;
                    async_io::Timer::after(reconnect_delay(&reason, room)).await;
                    continue 'connection;
                }
                Some(None | Some(Err(_))) => continue 'connection,
                Some(Some(Ok(_))) => continue,
                None => {}
            }
            n += 1;
            let line = serde_json::json!({"event": "chat:send", "data": {"text": format!("line {n}")}, "id": n});
            if ws.send(Frame::text(line.to_string())).await.is_err() {
                continue 'connection;
            }
            tally.lines.fetch_add(1, Ordering::Relaxed);
        }
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    }
}

fn last_offset(redis: &RedisServer, room: usize) -> u64 {
    let s: Option<u64> = redis
        .query(
            redis::cmd("HGET")
                .arg(format!("wsway:history-meta:{}", room_topic(room)))
                .arg("s"),
        )
        .expect("HGET");
    s.unwrap_or(0)
}

async fn every_member_of_every_room_once_in_order(rt: Runtime) {
    let redis = RedisServer::start();
    let url = redis.url();
    let (socket, addr) = held_socket();
    let fd = socket.as_raw_fd();
    let bin = env!("CARGO_BIN_EXE_chat");
    let secret = [("CHAT_SECRET", "one deployment")];
    let spawn = || Example::spawn_on_socket(bin, rt, fd, &["--redis", &url], &secret);
    let mut old = vec![spawn(), spawn()];

    let members = ROOMS * PER_ROOM;
    let mut tokens = Vec::new();
    for i in 0..members {
        tokens.push(chat_login(addr, &format!("m{i}")).await);
    }
    let mut writer_tokens = Vec::new();
    for room in 0..ROOMS {
        writer_tokens.push(chat_login(addr, &format!("w{room}")).await);
    }
    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let writing = AtomicBool::new(true);
    let lasts: Vec<AtomicU64> = (0..members).map(|_| AtomicU64::new(0)).collect();
    // Each room's last offset once the writers stopped and every member
    // had it (members leaving afterwards add their farewells).
    let finals = Mutex::new(Vec::new());

    let members_done = futures_util::future::join_all(
        tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| member(i, i % ROOMS, addr, t, &lasts[i], &stop, &tally)),
    );
    let writers_done = futures_util::future::join_all(
        writer_tokens
            .into_iter()
            .enumerate()
            .map(|(room, t)| writer(room, addr, t, &writing, &tally)),
    );
    let harness = async {
        eventually_for(Duration::from_secs(60), "every member in", || {
            tally.connected.load(Ordering::Acquire) == members
        })
        .await;
        async_io::Timer::after(Duration::from_secs(1)).await;
        // Each process in turn: a new one joins the socket, the old one
        // drains, and every member is back before the next.
        for _ in 0..2 {
            let next = spawn();
            let mut leaving = old.remove(0);
            leaving.signal("-TERM");
            let (status, leaving) = within(
                Duration::from_secs(20),
                "the old process to exit",
                blocking(move || (leaving.wait_exit(Duration::from_secs(11)), leaving)),
            )
            .await;
            assert!(status.success(), "{status:?}: {}", leaving.output());
            old.push(next);
            eventually_for(Duration::from_secs(30), "every member back", || {
                tally.connected.load(Ordering::Acquire) == members
            })
            .await;
            async_io::Timer::after(Duration::from_secs(1)).await;
        }
        writing.store(false, Ordering::Release);
        // Every member reaches its room's last offset.
        eventually_for(
            Duration::from_secs(30),
            "every member to have its room's last message",
            || {
                (0..members)
                    .all(|i| lasts[i].load(Ordering::Acquire) == last_offset(&redis, i % ROOMS))
            },
        )
        .await;
        *finals.lock().unwrap() = (0..ROOMS).map(|room| last_offset(&redis, room)).collect();
        stop.store(true, Ordering::Release);
    };
    let (logs, (_, ())) = within(
        Duration::from_secs(180),
        "the rolling restart",
        // Boxed: async-std polls on the test thread's stack.
        Box::pin(futures_lite::future::zip(
            Box::pin(members_done),
            futures_lite::future::zip(Box::pin(writers_done), Box::pin(harness)),
        )),
    )
    .await;

    let closes = tally.closes.lock().unwrap().clone();
    let (refused, failed) = (
        tally.refused.load(Ordering::Relaxed),
        tally.failed_upgrades.load(Ordering::Relaxed),
    );
    let received: usize = logs.iter().map(|l| l.offsets.len()).sum();
    let finals = finals.into_inner().unwrap();
    let mut broken = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let room_last = finals[i % ROOMS];
        let first = *log.offsets.first().unwrap_or(&0);
        let contiguous = log.offsets.windows(2).all(|w| w[1] == w[0] + 1);
        let complete = log.offsets.last() >= Some(&room_last);
        if !contiguous || !complete || log.gaps > 0 || log.other_epochs > 0 {
            let jumps: Vec<(u64, u64)> = log
                .offsets
                .windows(2)
                .filter(|w| w[1] != w[0] + 1)
                .map(|w| (w[0], w[1]))
                .take(5)
                .collect();
            broken.push(format!(
                "m{i}: {first}..={:?} of {room_last}, jumps {jumps:?}, {} gaps, {} other epochs",
                log.offsets.last(),
                log.gaps,
                log.other_epochs
            ));
        }
    }
    eprintln!(
        "{}: {members} members, {} lines written, {received} pushes received, closes {closes:?}, {refused} refused, {failed} failed upgrades",
        rt.name(),
        tally.lines.load(Ordering::Relaxed)
    );
    assert!(
        broken.is_empty(),
        "{} members missed, repeated or reordered messages: {:?}",
        broken.len(),
        &broken[..broken.len().min(10)]
    );
    assert!(
        tally.lines.load(Ordering::Relaxed) > (ROOMS as u64 * RATE * 5) as usize,
        "the writers kept writing"
    );
    assert!(
        closes.values().sum::<usize>() >= members,
        "every member was restarted at least once: {closes:?}"
    );
    assert!(closes.keys().all(|&c| c == 1001), "closed with {closes:?}");
    assert_eq!(
        (refused, failed),
        (0, 0),
        "connects refused or upgrades failed"
    );
}

runtime_tests_in_turn!(
    #[ignore = "needs redis-server: .ci/run installs it and runs this"]
    every_member_of_every_room_once_in_order,
    "500 members, 3 processes and Redis: one runtime at a time."
);
