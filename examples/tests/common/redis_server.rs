//! A `redis-server` of a test's (or benchmark's) own, on a free port with
//! persistence off, that it can kill, restart and pause.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A redis-server of the test's own.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts on a free port. A port found free can be taken before
    /// redis-server binds it (by another test's client or server): then
    /// it starts again on another.
    pub fn start() -> Self {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut server = RedisServer { port, child: None };
            if server.try_start() {
                return server;
            }
        }
        panic!("redis-server exited at once on five free ports in a row")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again) on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "redis-server exited at once: is port {} taken?",
            self.port
        );
    }

    /// Starts on `self.port` and waits until this process (not another
    /// test's server) answers; `false` if it exited instead.
    fn try_start(&mut self) -> bool {
        let mut child = spawn(self.port, &[], None);
        let answered = wait_answering(&mut child, self.port);
        self.child = answered.then_some(child);
        answered
    }

    /// `kill -9`: no goodbye to any client.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} {pid}");
    }

    pub fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> redis::RedisResult<T> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        cmd.query(&mut conn)
    }

    /// The channels with a subscriber, under `prefix`.
    pub fn channels(&self, prefix: &str) -> Vec<String> {
        self.query(
            redis::cmd("PUBSUB")
                .arg("CHANNELS")
                .arg(format!("{prefix}*")),
        )
        .expect("PUBSUB CHANNELS")
    }

    /// The ids of the connections in subscribe mode, sorted: unchanged
    /// across a stretch of time, no subscription was made again in it.
    pub fn subscription_ids(&self) -> Vec<u64> {
        let list: String = self
            .query(redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("pubsub"))
            .expect("CLIENT LIST");
        let mut ids: Vec<u64> = list
            .lines()
            .filter_map(|l| l.strip_prefix("id=")?.split(' ').next()?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// How many connections (nodes) listen to `channel`.
    pub fn numsub(&self, channel: &str) -> usize {
        let (_, n): (String, usize) = self
            .query(redis::cmd("PUBSUB").arg("NUMSUB").arg(channel))
            .expect("PUBSUB NUMSUB");
        n
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        self.kill();
    }
}

/// Starts `redis-server` (`$REDIS_SERVER` if set) on loopback `port`,
/// persistence off, with `extra` arguments, in `dir` if given.
pub fn spawn(port: u16, extra: &[&str], dir: Option<&std::path::Path>) -> Child {
    let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let mut cmd = Command::new(&bin);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(extra)
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start `{bin}` ({e}): `apt-get install redis-server` (as .ci/run does)")
        })
}

/// Waits until `child`, just started on `port`, answers there (true), or
/// exits (false: a port found free can be taken before redis-server binds
/// it, by another test's client or server). The server that answers must
/// be `child`, not another test's.
pub fn wait_answering(child: &mut Child, port: u16) -> bool {
    let ours = format!("process_id:{}\r\n", child.id());
    let url = format!("redis://127.0.0.1:{port}/");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait().is_ok_and(|status| status.is_some()) {
            return false;
        }
        let info = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut conn| redis::cmd("INFO").arg("server").query::<String>(&mut conn));
        if info.is_ok_and(|info| info.contains(&ours)) {
            return true;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not answer on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
