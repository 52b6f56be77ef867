//! Several `bench-server` processes sharing rooms through one Redis:
//! cross-node delivery latency, and exactly-once delivery under load.
//!
//! ```sh
//! cargo bench -p examples --bench nodes -- [--runtime tokio|smol|async-std]
//!     [--latency-rate 1000] [--latency-seconds 10]
//!     [--nodes 3] [--clients 300] [--rooms 10] [--rate 2000] [--seconds 30]
//!     [--cluster] [--history]
//! ```
//!
//! With `--cluster`, the exactly-once run goes to a Redis Cluster instead,
//! twice in one run: one primary holding every slot, then three primaries
//! (no replicas), with the same rooms (30 by default, ten per third of the
//! slots), reporting deliveries per second and each primary's CPU. With
//! `--history`, the rooms keep their last 1000 messages in Redis: each
//! publish is numbered, kept and published by one script on its primary.
//!
//! Starts its own `redis-server` (persistence off) and the servers, each
//! with `--redis`. Every payload carries its room, its sender, the sender's
//! sequence number and its send time, so each client counts what it got:
//! every message must arrive exactly once at every member of its room
//! (the sender included: `/room` publishes to self), in each sender's
//! order, and never in another room. The clients run in this process on
//! async-io; everything shares this machine's two cores, so latencies
//! include scheduling between five processes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message as Frame;
use common::redis_cluster::RedisCluster;
use common::redis_server::RedisServer;
use common::{Example, Runtime, connect};
use futures_util::StreamExt;

const HEADER: usize = 2 + 4 + 4 + 8;

struct Options {
    runtime: Runtime,
    latency_rate: u64,
    latency_seconds: u64,
    nodes: usize,
    clients: usize,
    rooms: usize,
    rate: u64,
    seconds: u64,
    cluster: bool,
    history: bool,
}

fn options() -> Options {
    let mut o = Options {
        runtime: Runtime::Tokio,
        latency_rate: 1000,
        latency_seconds: 10,
        nodes: 3,
        clients: 300,
        rooms: 10,
        rate: 2000,
        seconds: 30,
        cluster: false,
        history: false,
    };
    let mut rooms_given = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> u64 {
            let v = args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
            v.parse()
                .unwrap_or_else(|_| panic!("{arg}: not a number: {v}"))
        };
        match arg.as_str() {
            "--bench" => {}
            "--runtime" => {
                o.runtime = match args.next().as_deref() {
                    Some("tokio") => Runtime::Tokio,
                    Some("smol") => Runtime::Smol,
                    Some("async-std") => Runtime::AsyncStd,
                    other => panic!("--runtime tokio|smol|async-std, not {other:?}"),
                }
            }
            "--latency-rate" => o.latency_rate = value(),
            "--latency-seconds" => o.latency_seconds = value(),
            "--nodes" => o.nodes = value() as usize,
            "--clients" => o.clients = value() as usize,
            "--rooms" => {
                o.rooms = value() as usize;
                rooms_given = true;
            }
            "--cluster" => o.cluster = true,
            "--history" => o.history = true,
            "--rate" => o.rate = value(),
            "--seconds" => o.seconds = value(),
            other => panic!("unknown argument {other}"),
        }
    }
    if o.cluster && !rooms_given {
        o.rooms = 30;
    }
    o
}

/// One message as a client sees it.
struct Stamp {
    room: u16,
    sender: u32,
    seq: u32,
    sent_ns: u64,
}

fn stamp(room: u16, sender: u32, seq: u32, sent_ns: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER + 46);
    b.extend_from_slice(&room.to_be_bytes());
    b.extend_from_slice(&sender.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&sent_ns.to_be_bytes());
    b.resize(HEADER + 46, b'x'); // 64 B, as wsload's broadcast
    b
}

fn read_stamp(b: &[u8]) -> Option<Stamp> {
    if b.len() < HEADER {
        return None;
    }
    Some(Stamp {
        room: u16::from_be_bytes(b[0..2].try_into().ok()?),
        sender: u32::from_be_bytes(b[2..6].try_into().ok()?),
        seq: u32::from_be_bytes(b[6..10].try_into().ok()?),
        sent_ns: u64::from_be_bytes(b[10..18].try_into().ok()?),
    })
}

/// What one client counted.
#[derive(Default)]
struct Tally {
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    foreign: u64,
    malformed: u64,
    /// The next sequence number expected from each sender.
    next: HashMap<u32, u32>,
    latencies_us: Vec<u32>,
    /// Latencies of messages whose sender is on another node.
    cross_us: Vec<u32>,
}

/// Reads until `stop`, counting into `tally`; messages with `sender ==
/// u32::MAX` are readiness probes.
async fn count(
    mut rx: async_tungstenite::WebSocketReceiver<async_io::Async<std::net::TcpStream>>,
    room: u16,
    node_of: Arc<dyn Fn(u32) -> usize + Send + Sync>,
    my_node: usize,
    epoch: Instant,
    tally: Arc<Mutex<Tally>>,
    probed: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut seen_probe = false;
    while let Some(Ok(frame)) = rx.next().await {
        let Frame::Binary(b) = frame else { continue };
        let now = epoch.elapsed().as_nanos() as u64;
        let mut t = tally.lock().unwrap();
        let Some(s) = read_stamp(&b) else {
            t.malformed += 1;
            continue;
        };
        if s.sender == u32::MAX {
            if !seen_probe {
                seen_probe = true;
                probed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            continue;
        }
        if s.room != room {
            t.foreign += 1;
            continue;
        }
        t.received += 1;
        let next = t.next.get(&s.sender).copied().unwrap_or(0);
        match s.seq.cmp(&next) {
            std::cmp::Ordering::Equal => {
                t.next.insert(s.sender, next + 1);
            }
            std::cmp::Ordering::Less => t.duplicates += 1,
            std::cmp::Ordering::Greater => {
                t.out_of_order += 1;
                t.next.insert(s.sender, s.seq + 1);
            }
        }
        let us = (now.saturating_sub(s.sent_ns) / 1000) as u32;
        t.latencies_us.push(us);
        if node_of(s.sender) != my_node {
            t.cross_us.push(us);
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut v: Vec<u32>) -> String {
    v.sort_unstable();
    format!(
        "p50 {} µs, p99 {} µs, max {} µs ({} samples)",
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(0),
        v.len()
    )
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15; index 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// A room of clients, spread over nodes, and what they counted.
struct Members {
    sinks: Vec<async_tungstenite::WebSocketSender<async_io::Async<std::net::TcpStream>>>,
    rooms: Vec<u16>,
    tallies: Vec<Arc<Mutex<Tally>>>,
    probed: Arc<std::sync::atomic::AtomicUsize>,
}

async fn join(
    addrs: &[SocketAddr],
    placement: &[(u16, usize)],
    node_of: Arc<dyn Fn(u32) -> usize + Send + Sync>,
    epoch: Instant,
) -> Members {
    let probed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut m = Members {
        sinks: Vec::new(),
        rooms: Vec::new(),
        tallies: Vec::new(),
        probed: probed.clone(),
    };
    for &(room, node) in placement {
        let ws = connect(addrs[node], &format!("/room/r{room}")).await;
        let (tx, rx) = ws.split();
        let tally = Arc::new(Mutex::new(Tally::default()));
        smol::spawn(count(
            rx,
            room,
            node_of.clone(),
            node,
            epoch,
            tally.clone(),
            probed.clone(),
        ))
        .detach();
        m.sinks.push(tx);
        m.rooms.push(room);
        m.tallies.push(tally);
    }
    m
}

/// Sends probes from every room's first member until every member has had
/// one: every node listens to every room.
async fn probe(m: &mut Members) {
    let started = Instant::now();
    let mut first: HashMap<u16, usize> = HashMap::new();
    for (i, r) in m.rooms.iter().enumerate() {
        first.entry(*r).or_insert(i);
    }
    while m.probed.load(std::sync::atomic::Ordering::Relaxed) < m.sinks.len() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the rooms did not connect across nodes"
        );
        for (&room, &i) in &first {
            let _ = m.sinks[i]
                .send(Frame::binary(stamp(room, u32::MAX, 0, 0)))
                .await;
        }
        async_io::Timer::after(Duration::from_millis(50)).await;
    }
    // Let the last probes drain before counting starts.
    async_io::Timer::after(Duration::from_millis(300)).await;
}

/// Sends `rate` messages a second for `seconds`, round-robin over
/// `senders` (indices into the members); returns how many each room got.
async fn drive(
    m: &mut Members,
    senders: &[usize],
    rate: u64,
    seconds: u64,
    epoch: Instant,
) -> HashMap<u16, u64> {
    let total = rate * seconds;
    let mut per_room: HashMap<u16, u64> = HashMap::new();
    let mut seq: Vec<u32> = vec![0; m.sinks.len()];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        while sent < due {
            let i = senders[(sent % senders.len() as u64) as usize];
            let room = m.rooms[i];
            let now = epoch.elapsed().as_nanos() as u64;
            let frame = Frame::binary(stamp(room, i as u32, seq[i], now));
            m.sinks[i].send(frame).await.expect("send");
            seq[i] += 1;
            *per_room.entry(room).or_insert(0) += 1;
            sent += 1;
        }
        async_io::Timer::after(Duration::from_micros(500)).await;
    }
    per_room
}

/// Waits until every member has `expected[room]` messages (or 15 s pass).
async fn drain(m: &Members, expected: &HashMap<u16, u64>) {
    let started = Instant::now();
    loop {
        let done = m
            .tallies
            .iter()
            .zip(&m.rooms)
            .all(|(t, r)| t.lock().unwrap().received >= expected[r]);
        if done || started.elapsed() > Duration::from_secs(15) {
            // Anything late (a duplicate) gets a moment to show.
            async_io::Timer::after(Duration::from_millis(500)).await;
            return;
        }
        async_io::Timer::after(Duration::from_millis(20)).await;
    }
}

fn report(m: &Members, expected: &HashMap<u16, u64>) -> bool {
    let mut t = Tally::default();
    let mut want = 0;
    for (tally, room) in m.tallies.iter().zip(&m.rooms) {
        let got = tally.lock().unwrap();
        want += expected[room];
        t.received += got.received;
        t.duplicates += got.duplicates;
        t.out_of_order += got.out_of_order;
        t.foreign += got.foreign;
        t.malformed += got.malformed;
        t.latencies_us.extend(&got.latencies_us);
        t.cross_us.extend(&got.cross_us);
    }
    let missing = want.saturating_sub(t.received - t.duplicates);
    println!("  deliveries expected {want}, received {}", t.received);
    println!(
        "  missing {missing}, duplicates (echoes) {}, out of order {}, other room {}, malformed {}",
        t.duplicates, t.out_of_order, t.foreign, t.malformed
    );
    println!("  every delivery: {}", summary(t.latencies_us));
    println!("  across nodes:   {}", summary(t.cross_us));
    missing == 0 && t.duplicates == 0 && t.out_of_order == 0 && t.foreign == 0 && t.malformed == 0
}

fn spawn_nodes(o: &Options, url: &str, n: usize) -> Vec<Example> {
    (0..n)
        .map(|_| {
            let bin = env!("CARGO_BIN_EXE_bench-server");
            let mut cmd = Example::command(bin, o.runtime, &["--redis", url]);
            if o.history {
                cmd.env("BENCH_HISTORY", "1000");
            }
            Example::spawn_command(cmd)
        })
        .collect()
}

async fn latency(o: &Options, epoch: Instant) -> bool {
    let redis = RedisServer::start();
    let nodes = spawn_nodes(o, &redis.url(), 2);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    // One publisher on node 0, ten listeners on node 1.
    let placement: Vec<(u16, usize)> = std::iter::once((0, 0))
        .chain((0..10).map(|_| (0, 1)))
        .collect();
    let node_of: Arc<dyn Fn(u32) -> usize + Send + Sync> =
        Arc::new(|sender| usize::from(sender != 0));
    let mut m = join(&addrs, &placement, node_of, epoch).await;
    probe(&mut m).await;
    println!(
        "latency: 1 publisher on node A, 10 subscribers on node B, {} msg/s × 64 B for {} s, {}",
        o.latency_rate,
        o.latency_seconds,
        o.runtime.name()
    );
    let sent = drive(&mut m, &[0], o.latency_rate, o.latency_seconds, epoch).await;
    drain(&m, &sent).await;
    report(&m, &sent)
}

/// Where the nodes meet: its URL, and the Redis processes whose CPU counts.
struct Store {
    url: String,
    name: String,
    pids: Vec<u32>,
}

/// Every client publishes in turn to its room, which has members on every
/// node; each must get every message once, in order.
async fn several(o: &Options, store: &Store, room_ids: &[u16], epoch: Instant) -> bool {
    let nodes = spawn_nodes(o, &store.url, o.nodes);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let (rooms, n) = (room_ids.len(), o.nodes);
    // Client c is in room c % rooms, on node (c / rooms) % nodes: every
    // room has members on every node.
    let placement: Vec<(u16, usize)> = (0..o.clients)
        .map(|c| (room_ids[c % rooms], (c / rooms) % n))
        .collect();
    let owners: Arc<Vec<usize>> = Arc::new(placement.iter().map(|p| p.1).collect());
    let node_of: Arc<dyn Fn(u32) -> usize + Send + Sync> =
        Arc::new(move |sender| owners[sender as usize]);
    let mut m = join(&addrs, &placement, node_of, epoch).await;
    probe(&mut m).await;
    println!(
        "several nodes on {}: {} processes, {} clients in {} rooms{}, {} msg/s × 64 B for {} s (every client publishes in turn), {}",
        store.name,
        n,
        o.clients,
        rooms,
        if o.history { " keeping history" } else { "" },
        o.rate,
        o.seconds,
        o.runtime.name()
    );
    let pids: Vec<u32> = nodes.iter().map(Example::pid).collect();
    // What Redis spends with nothing published (its cron, the cluster
    // bus, the nodes' pings), to tell apart from what publishing costs.
    let idle_for = Duration::from_secs(3);
    let idle_before: Vec<f64> = store.pids.iter().map(|&p| cpu_seconds(p)).collect();
    async_io::Timer::after(idle_for).await;
    let idle: Vec<f64> = store
        .pids
        .iter()
        .zip(&idle_before)
        .map(|(&p, b)| (cpu_seconds(p) - b) / idle_for.as_secs_f64())
        .collect();
    let cpu_before: Vec<f64> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let redis_before: Vec<f64> = store.pids.iter().map(|&p| cpu_seconds(p)).collect();
    let started = Instant::now();
    let senders: Vec<usize> = (0..o.clients).collect();
    let sent = drive(&mut m, &senders, o.rate, o.seconds, epoch).await;
    let elapsed = started.elapsed().as_secs_f64();
    drain(&m, &sent).await;
    let ok = report(&m, &sent);
    let busy = |pids: &[u32], before: &[f64]| -> Vec<f64> {
        pids.iter()
            .zip(before)
            .map(|(&p, b)| (cpu_seconds(p) - b) / elapsed)
            .collect()
    };
    let show = |v: &[f64]| {
        v.iter()
            .map(|c| format!("{c:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let published: u64 = sent.values().sum();
    let delivered: u64 = m.tallies.iter().map(|t| t.lock().unwrap().received).sum();
    let redis_cpu = busy(&store.pids, &redis_before);
    // Each publish goes to Redis once and comes back to every node.
    let from_redis = published as f64 * n as f64 / elapsed;
    println!(
        "  deliveries/s: {:.0} to clients, {from_redis:.0} from Redis to nodes",
        delivered as f64 / elapsed
    );
    let over_idle: f64 = redis_cpu.iter().zip(&idle).map(|(c, i)| c - i).sum();
    println!(
        "  CPU (cores busy): nodes {}; Redis per primary {} (idle {}; over idle, total {over_idle:.2}, µs per delivery from Redis: {:.2})",
        show(&busy(&pids, &cpu_before)),
        show(&redis_cpu),
        show(&idle),
        over_idle * 1e6 / from_redis
    );
    ok
}

/// Rooms `0..` picked so that each third of the slots (the three
/// primaries' shares, as `start_primaries(3)` splits them) holds a third.
fn rooms_over_thirds(count: usize) -> Vec<u16> {
    let third = |id: u16| {
        let slot = common::redis_cluster::slot(&format!("wsway:{{=r{id}}}"));
        common::redis_cluster::share_of(slot, 3)
    };
    let mut per = [0usize; 3];
    let mut picked = Vec::new();
    for id in 0..u16::MAX {
        let t = third(id);
        if per[t] < count.div_ceil(3) {
            per[t] += 1;
            picked.push(id);
        }
        if picked.len() == count {
            break;
        }
    }
    picked
}

async fn on_one_redis(o: &Options, epoch: Instant) -> bool {
    let redis = RedisServer::start();
    let store = Store {
        url: redis.url(),
        name: "one Redis".into(),
        pids: vec![redis.pid()],
    };
    let rooms: Vec<u16> = (0..o.rooms as u16).collect();
    several(o, &store, &rooms, epoch).await
}

/// The same rooms on one primary, then on three.
async fn on_clusters(o: &Options, epoch: Instant) -> bool {
    let rooms = rooms_over_thirds(o.rooms);
    let mut ok = true;
    for primaries in [1, 3] {
        let cluster = RedisCluster::start_primaries(primaries);
        let store = Store {
            url: cluster.url(),
            name: format!("a Redis Cluster of {primaries} primaries"),
            pids: cluster.nodes.iter().filter_map(|n| n.pid()).collect(),
        };
        ok &= several(o, &store, &rooms, epoch).await;
    }
    ok
}

fn main() {
    let o = options();
    let epoch = Instant::now();
    let ok = smol::block_on(async {
        if o.cluster {
            return on_clusters(&o, epoch).await;
        }
        let a = latency(&o, epoch).await;
        let b = on_one_redis(&o, epoch).await;
        a && b
    });
    if !ok {
        eprintln!("FAILED: a message was lost, repeated, reordered or misrouted");
        std::process::exit(1);
    }
}
