//! Headless Chromium opens the admin page of two chat processes (the
//! example binary, `--redis`) under load: ten members in a room on the two
//! processes, one of them publishing 20 lines a second. The page's counts
//! (in all and per process) must be what the test made, its rates what it
//! sends (within a third), and its disconnect button must close a user's
//! socket with the code. The page's screenshot is kept in
//! `target/artifacts/` (CI keeps it; not committed).
//!
//! Needs Chromium, `npm ci` in `examples/browser` and a `redis-server`:
//! `.ci/run` installs them and runs this with `--ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message as Frame;
use common::redis_server::RedisServer;
use common::*;
use futures_util::StreamExt;

const KEY: &str = "admin-browser-key-0123";
/// Lines a second the publisher sends.
const RATE: f64 = 20.0;

/// What the test needs, or how to get it.
fn prerequisites() -> Result<(), String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!(
            "no Chromium at {chromium}: `apt-get install chromium` (as .ci/run does)"
        ));
    }
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/playwright-core");
    if !module.exists() {
        return Err("playwright-core is not installed: `npm ci --prefix examples/browser` (as .ci/run does)".into());
    }
    Ok(())
}

/// Where the screenshot goes: `$ARTIFACTS_DIR`, else `target/artifacts`.
fn artifacts() -> PathBuf {
    let dir = std::env::var_os("ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts"));
    std::fs::create_dir_all(&dir).expect("the artifacts folder");
    dir
}

/// Reads a member's socket until `stop`, or to its close: the code it
/// was closed with, if it was.
async fn member(mut ws: Client, stop: &AtomicBool) -> Option<u16> {
    while !stop.load(Ordering::Acquire) {
        let next = futures_lite::future::or(async { Some(ws.next().await) }, async {
            async_io::Timer::after(Duration::from_millis(200)).await;
            None
        })
        .await;
        match next {
            None
            | Some(Some(Ok(Frame::Text(_) | Frame::Ping(_) | Frame::Pong(_) | Frame::Binary(_)))) =>
                {}
            Some(Some(Ok(Frame::Close(frame)))) => {
                while let Some(Ok(_)) = next_frame(&mut ws).await {}
                return frame.map(|f| f.code.into());
            }
            Some(_) => return None,
        }
    }
    None
}

/// Sends `chat:send` at [`RATE`] on a fixed schedule until `stop`,
/// reading (and dropping) what comes back.
async fn publisher(ws: Client, stop: &AtomicBool) {
    let (mut sink, mut stream) = ws.split();
    let drain = async {
        while let Some(Ok(_)) = stream.next().await {
            if stop.load(Ordering::Acquire) {
                return;
            }
        }
    };
    let send = async {
        let start = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::Acquire) {
            let due = start + Duration::from_secs_f64(n as f64 / RATE);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                async_io::Timer::after(wait).await;
            }
            let call = serde_json::json!({ "event": "chat:send", "data": { "text": format!("line {n}") }, "id": n + 1 });
            if sink.send(Frame::text(call.to_string())).await.is_err() {
                return;
            }
            n += 1;
        }
    };
    futures_lite::future::or(drain, send).await;
}

runtime_tests! {
    #[ignore = "needs Chromium, playwright-core and redis-server; .ci/run installs them and runs this"]
    async fn the_admin_page_shows_two_processes_under_load(rt) {
        if let Err(missing) = prerequisites() {
            panic!("the admin browser test cannot run: {missing}");
        }
        let redis = RedisServer::start();
        let url = redis.url();
        let spawn = || {
            let bin = env!("CARGO_BIN_EXE_chat");
            let mut cmd = Example::command(bin, rt, &["--redis", &url, "--presence-heartbeat", "500"]);
            cmd.env("WSWAY_ADMIN_KEY", KEY).env("CHAT_SECRET", "the admin test");
            Example::spawn_command(cmd)
        };
        let (a, b) = (spawn(), spawn());
        // Six members on A, four on B, and the publisher on A.
        let mut members = Vec::new();
        for (addr, side, n) in [(a.addr, "a", 6), (b.addr, "b", 4)] {
            for i in 0..n {
                let name = format!("m-{side}{i}");
                let token = chat_login(addr, &name).await;
                members.push(chat_enter(addr, "load", &name, &token).await);
            }
        }
        let token = chat_login(a.addr, "publisher").await;
        let writer = chat_enter(a.addr, "load", "publisher", &token).await;
        // The page's own stream is one more connection, on A.
        let expected = serde_json::json!({
            "total": 6 + 4 + 1 + 1,
            "perNode": [4, 6 + 1 + 1],
            "inRate": RATE,
            "outRateOfFewer": 4.0 * RATE,
            "tolerance": 0.34,
            "user": "m-b0",
            "code": 4003,
        });
        let shot = artifacts().join(format!("admin-{}.png", rt.name()));
        let _ = std::fs::remove_file(&shot);
        let stop = AtomicBool::new(false);
        let closes = Mutex::new(Vec::new());
        let readers = futures_util::future::join_all(members.into_iter().enumerate().map(|(i, ws)| {
            let (stop, closes) = (&stop, &closes);
            async move {
                let code = member(ws, stop).await;
                closes.lock().unwrap().push((i, code));
            }
        }));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/admin.mjs");
        let mut command = Command::new("node");
        command.arg(&script).arg(format!("http://{}", a.addr)).arg(KEY).arg(&shot).arg(expected.to_string());
        let browser = async {
            let out = blocking(move || command.output()).await.expect("node runs");
            stop.store(true, Ordering::Release);
            out
        };
        let (out, (_, ())) = within(
            Duration::from_secs(150),
            "the admin browser script",
            futures_lite::future::zip(browser, futures_lite::future::zip(readers, publisher(writer, &stop))),
        )
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{stdout}{stderr}");
        assert!(out.status.success(), "the admin browser script failed ({}):\n{stdout}\n{stderr}", out.status);
        assert_eq!(stdout.matches("ok: ").count(), 7, "every check ran:\n{stdout}");
        // m-b0 (the seventh member) was closed with the code; nobody else.
        let closes = closes.into_inner().unwrap();
        let closed: Vec<_> = closes.iter().filter(|(_, code)| code.is_some()).collect();
        assert_eq!(closed, [&(6, Some(4003))], "only m-b0, with the code");
        assert!(shot.exists(), "the screenshot is at {}", shot.display());
        drop((a, b));
    }
}
