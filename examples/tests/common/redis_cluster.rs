//! A Redis Cluster of a test's own: three primaries and three replicas
//! (`redis-server --cluster-enabled yes`, joined by `redis-cli --cluster
//! create --cluster-replicas 1`) on free loopback ports, persistence off,
//! that it can kill a primary of and watch fail over.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};

use super::redis_server;
use std::time::{Duration, Instant};

/// How long a node may be silent before the others fail it over: short, so
/// a failover test takes seconds.
const NODE_TIMEOUT_MS: u32 = 1000;

/// A running cluster; dropping it kills every node.
pub struct RedisCluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

/// One `redis-server` of the cluster.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A command to this node alone (no redirection followed).
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> redis::RedisResult<T> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        cmd.query(&mut conn)
    }

    /// `kill -STOP` (`true`) or `kill -CONT` (`false`): a node that stopped
    /// answers nothing, replication included, until it goes on.
    pub fn pause(&self, stopped: bool) {
        let child = self.child.as_ref().expect("a running node");
        let signal = if stopped { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {signal} failed");
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free port for a cluster node: its bus listens 10 000 above it, so
/// that one must be free too, and at most 65 535 (redis-server refuses to
/// start otherwise, and half the ephemeral range is above 55 535).
fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let bus_free = port
            .checked_add(10_000)
            .is_some_and(|bus| TcpListener::bind(("127.0.0.1", bus)).is_ok());
        if bus_free {
            return port;
        }
    }
    panic!("no free port with a free cluster bus port 10 000 above it")
}

impl RedisCluster {
    /// Starts six nodes and joins them: three primaries holding the 16384
    /// slots between them, a replica each. Returns once every node reports
    /// `cluster_state:ok`.
    pub fn start() -> Self {
        let cluster = Self::spawn(6);
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addresses.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        redis_cli(&create);
        cluster.wait_ok();
        // A replica fails over only with fresh data: wait until each has
        // synced with its primary.
        wait_until(Duration::from_secs(30), "every replica to sync", || {
            let synced = cluster.nodes.iter().filter(|n| {
                n.query::<String>(redis::cmd("INFO").arg("replication"))
                    .is_ok_and(|info| {
                        info.contains("role:slave") && info.contains("master_link_status:up")
                    })
            });
            synced.count() == 3
        });
        cluster
    }

    /// Starts `n` primaries and no replica, the slots split evenly between
    /// them in order (one node may be a whole cluster; `redis-cli --cluster
    /// create` wants three): what a benchmark compares.
    pub fn start_primaries(n: u16) -> Self {
        let cluster = Self::spawn(usize::from(n));
        for (i, node) in cluster.nodes.iter().enumerate() {
            let i = i as u16;
            let (first, last) = (share_start(i, n), share_start(i + 1, n) - 1);
            let _: () = node
                .query(
                    redis::cmd("CLUSTER")
                        .arg("ADDSLOTSRANGE")
                        .arg(first)
                        .arg(last),
                )
                .expect("CLUSTER ADDSLOTSRANGE");
            if i > 0 {
                let _: () = node
                    .query(
                        redis::cmd("CLUSTER")
                            .arg("MEET")
                            .arg("127.0.0.1")
                            .arg(cluster.nodes[0].port),
                    )
                    .expect("CLUSTER MEET");
            }
        }
        wait_until(
            Duration::from_secs(30),
            "every node to know the others",
            || {
                cluster.nodes.iter().all(|node| {
                    node.query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                        .is_ok_and(|info| info.contains(&format!("cluster_known_nodes:{n}\r\n")))
                })
            },
        );
        cluster.wait_ok();
        cluster
    }

    /// Starts `n` cluster-enabled nodes that know nothing of each other.
    fn spawn(n: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "wsway-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the nodes' files");
        let mut nodes: Vec<Node> = Vec::new();
        for _ in 0..n {
            nodes.push(start_node(&dir, &nodes));
        }
        RedisCluster { nodes, dir }
    }

    /// A `redis+cluster://` URL naming every node.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Seed URLs: every node.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Waits until every running node says `cluster_state:ok` and agrees
    /// on three primaries that serve every slot.
    pub fn wait_ok(&self) {
        wait_until(Duration::from_secs(30), "the cluster to be ok", || {
            self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                n.query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            })
        });
    }

    /// Kills the primary of `slot` (`kill -9`) and waits until its
    /// replica has taken over and the cluster is ok again; returns the
    /// killed node's index.
    pub fn fail_over(&mut self, slot: u16) -> usize {
        let victim = self.primary_of(slot);
        self.nodes[victim].kill();
        self.wait_promoted(slot, victim);
        victim
    }

    /// Waits until the primary of `slot` is another node than `was` and
    /// the cluster is ok again.
    pub fn wait_promoted(&self, slot: u16, was: usize) {
        wait_until(Duration::from_secs(30), "a replica to be promoted", || {
            self.primary_of(slot) != was
        });
        self.wait_ok();
    }

    /// The replica of the primary `node`.
    pub fn replica_of(&self, node: usize) -> usize {
        let of = format!("master_port:{}\r\n", self.nodes[node].port);
        self.nodes
            .iter()
            .position(|n| {
                n.is_running()
                    && n.query::<String>(redis::cmd("INFO").arg("replication"))
                        .is_ok_and(|info| info.contains("role:slave") && info.contains(&of))
            })
            .expect("a replica of the primary")
    }

    /// Moves `slot` (with its keys) to the primary `to`, as an operator
    /// does: `redis-cli --cluster reshard`, which moves the lowest slots of
    /// the source first, so `slot` must be the first its primary holds.
    pub fn move_first_slot(&self, slot: u16, to: usize) {
        let from = self.primary_of(slot);
        let id = |n: usize| -> String {
            self.nodes[n]
                .query(redis::cmd("CLUSTER").arg("MYID"))
                .expect("CLUSTER MYID")
        };
        let at = format!("127.0.0.1:{}", self.nodes[from].port);
        let (from_id, to_id) = (id(from), id(to));
        redis_cli(&[
            "--cluster",
            "reshard",
            &at,
            "--cluster-from",
            &from_id,
            "--cluster-to",
            &to_id,
            "--cluster-slots",
            "1",
            "--cluster-yes",
        ]);
        // Every node agrees before the next reshard (redis-cli checks).
        wait_until(
            Duration::from_secs(30),
            "every node to see the slot moved",
            || {
                self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                    Self::ranges_at(&self.nodes, n)
                        .iter()
                        .any(|r| (r.0..=r.1).contains(&slot) && r.2 == to)
                })
            },
        );
        self.wait_ok();
    }

    /// How many connections listen to shard `channel`, at its primary (0
    /// while it does not answer).
    pub fn shard_listeners(&self, channel: &str) -> usize {
        let owner = self.primary_of(slot(channel));
        self.nodes[owner]
            .query::<(String, usize)>(redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(channel))
            .map_or(0, |(_, n)| n)
    }

    /// The first slot `node` (a primary) holds.
    pub fn first_slot(&self, node: usize) -> u16 {
        self.ranges()
            .into_iter()
            .filter(|r| r.2 == node)
            .map(|r| r.0)
            .min()
            .expect("a primary holds slots")
    }

    /// The node that is primary for `slot` now, as the running nodes see it.
    pub fn primary_of(&self, slot: u16) -> usize {
        self.ranges()
            .into_iter()
            .find(|r| (r.0..=r.1).contains(&slot))
            .unwrap_or_else(|| panic!("no primary serves slot {slot}"))
            .2
    }

    /// The slot ranges and their primaries, as (first, last, node), from
    /// CLUSTER SLOTS on a running node.
    fn ranges(&self) -> Vec<(u16, u16, usize)> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node");
        Self::ranges_at(&self.nodes, node)
    }

    fn ranges_at(nodes: &[Node], node: &Node) -> Vec<(u16, u16, usize)> {
        let slots: redis::Value = node
            .query(redis::cmd("CLUSTER").arg("SLOTS"))
            .expect("CLUSTER SLOTS");
        let redis::Value::Array(ranges) = slots else {
            panic!("CLUSTER SLOTS: {slots:?}")
        };
        let mut out = Vec::new();
        for range in ranges {
            let redis::Value::Array(fields) = range else {
                continue;
            };
            let (
                Some(redis::Value::Int(from)),
                Some(redis::Value::Int(to)),
                Some(redis::Value::Array(primary)),
            ) = (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let Some(redis::Value::Int(port)) = primary.get(1) else {
                continue;
            };
            let node = nodes
                .iter()
                .position(|n| i64::from(n.port) == *port)
                .expect("a known node");
            out.push((*from as u16, *to as u16, node));
        }
        out
    }
}

/// The first slot of the `i`th of `n` even shares, as
/// [`RedisCluster::start_primaries`] hands them out (`i == n`: 16384).
fn share_start(i: u16, n: u16) -> u16 {
    (16384 * u32::from(i) / u32::from(n)) as u16
}

/// Which of `n` primaries [`RedisCluster::start_primaries`] gives `slot`.
pub fn share_of(slot: u16, n: u16) -> usize {
    (0..n).rfind(|&i| slot >= share_start(i, n)).unwrap_or(0) as usize
}

/// The hash slot of a key (or channel), as Redis Cluster computes it:
/// CRC16 of its hash tag (`{..}`) if it has one, else of the whole key.
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let close = bytes[open + 1..].iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &bytes[open + 1..open + 1 + close])
        })
        .unwrap_or(bytes);
    crc16_xmodem(tagged) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Starts one cluster-enabled node on a free port none of `others` uses
/// (nor their buses) and waits until it answers. A port found free can be
/// taken before redis-server binds it (by another test's client or
/// server): then redis-server exits, and the node starts again on another
/// port.
fn start_node(dir: &std::path::Path, others: &[Node]) -> Node {
    let clashes = |port: u16| {
        others.iter().any(|o| {
            [o.port, o.port + 10_000].contains(&port)
                || [o.port, o.port + 10_000].contains(&(port + 10_000))
        })
    };
    for _ in 0..5 {
        let port = free_port();
        if clashes(port) {
            continue;
        }
        let config = format!("nodes-{port}.conf");
        let timeout = NODE_TIMEOUT_MS.to_string();
        let extra = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &config,
            "--cluster-node-timeout",
            &timeout,
        ];
        let mut child = redis_server::spawn(port, &extra, Some(dir));
        if redis_server::wait_answering(&mut child, port) {
            return Node {
                port,
                child: Some(child),
            };
        }
    }
    panic!("redis-server exited at once on five free ports in a row")
}

/// Runs `redis-cli` (it comes with redis-server) and checks it succeeded.
fn redis_cli(args: &[&str]) {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli (it comes with redis-server)");
    assert!(
        out.status.success(),
        "redis-cli {} failed:\n{}{}",
        args[..2].join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
