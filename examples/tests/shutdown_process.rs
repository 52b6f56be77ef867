//! A deploy restart, for real: the echo example runs as its own process, 200
//! clients each send messages, and SIGTERM arrives right behind them. Every
//! reply must arrive before the close frame, every client must see 1001, and
//! the process must exit 0 well before the shutdown deadline.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use futures_util::future::join_all;

const CLIENTS: usize = 200;
const MESSAGES: usize = 20;

/// Starts an example binary on a free port and returns it with its address,
/// read from the `listening on` line it prints.
fn spawn_example(bin: &str, rt: Runtime) -> (std::process::Child, SocketAddr) {
    let mut child = Command::new(bin)
        .args(["--port", "0", "--runtime", rt.name()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the example");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(WAIT)
        .expect("the example to print its address");
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("an address");
    (child, addr)
}

/// Waits for the process to exit, up to `limit`; kills it and fails otherwise.
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(child: &std::process::Child) {
    signal(child, "-TERM");
}

fn signal(child: &std::process::Child, which: &str) {
    let ok = Command::new("kill")
        .args([which, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success());
}

runtime_tests! {
    async fn sigterm_flushes_every_reply_then_closes_1001(rt) {
        let (mut child, addr) = spawn_example(env!("CARGO_BIN_EXE_echo"), rt);
        let mut clients = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            clients.push(connect(addr, "/echo").await);
        }
        // Every client sends its messages; SIGTERM follows at once, before
        // any reply has been read.
        for (c, ws) in clients.iter_mut().enumerate() {
            for m in 0..MESSAGES {
                send_text(ws, &format!("client {c} message {m}")).await;
            }
        }
        let signalled = Instant::now();
        sigterm(&child);

        let outcomes = join_all(clients.iter_mut().enumerate().map(|(c, ws)| async move {
            for m in 0..MESSAGES {
                assert_eq!(next_message(ws).await, Frame::text(format!("client {c} message {m}")));
            }
            let close = expect_close(ws).await;
            finish_close(ws).await;
            close
        }))
        .await;
        for (code, reason) in outcomes {
            assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
        }
        eprintln!("{CLIENTS} clients closed with 1001 {:?} after SIGTERM", signalled.elapsed());
        let status = wait_exit(&mut child, Duration::from_secs(9));
        assert!(status.success(), "exit status {status}");
        let took = signalled.elapsed();
        assert!(took < Duration::from_secs(5), "shutdown took {took:?}, deadline is 10 s");
    }

    async fn sigint_shuts_the_chat_example_down_too(rt) {
        let (mut child, addr) = spawn_example(env!("CARGO_BIN_EXE_chat"), rt);
        let mut members = Vec::new();
        for i in 0..5 {
            let mut ws = connect(addr, &format!("/chat/lobby?name=m{i}")).await;
            next_message(&mut ws).await; // its own join
            members.push(ws);
        }
        signal(&child, "-INT");
        for ws in &mut members {
            assert_eq!(expect_close(ws).await.0, 1001);
            finish_close(ws).await;
        }
        let status = wait_exit(&mut child, Duration::from_secs(9));
        assert!(status.success(), "exit status {status}");
    }
}
