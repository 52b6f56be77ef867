//! Restarts on a listening socket the harness holds: the example processes
//! take it the way systemd socket activation passes it (`LISTEN_FDS`), and
//! a restart (start the next process on the same socket, SIGTERM the old
//! one) refuses no connect.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_io::Async;
use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use futures_lite::future;
use futures_util::StreamExt;

/// What the prober saw.
#[derive(Default)]
struct Probes {
    /// Echo round trips completed.
    echoed: AtomicUsize,
    /// TCP connects that failed (refused or reset).
    refused: AtomicUsize,
    /// Upgrades that failed after the TCP connect (no answer, or a wrong one).
    failed_upgrades: AtomicUsize,
    /// Upgrades the draining process answered with 503 and Retry-After.
    retry_later: AtomicUsize,
    /// Connections the draining process closed before the echo (1001).
    drained: AtomicUsize,
    /// Anything else (a close with another code, a wrong echo).
    other: AtomicUsize,
}

/// Opens connection after connection to `addr`, each a handshake, an echo
/// and a close, until `stop`.
async fn probe(addr: SocketAddr, probes: &Probes, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        let Ok(stream) = within(WAIT, "tcp connect", Async::<TcpStream>::connect(addr)).await
        else {
            probes.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let upgrade = within(
            WAIT,
            "upgrade",
            async_tungstenite::client_async(format!("ws://{addr}/echo"), stream),
        );
        let mut ws = match upgrade.await {
            Ok((ws, _)) => ws,
            // Arrived as the drain started: told to come back, not dropped.
            Err(async_tungstenite::tungstenite::Error::Http(res))
                if res.status() == 503 && res.headers().contains_key("retry-after") =>
            {
                probes.retry_later.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                eprintln!("upgrade failed: {e}");
                probes.failed_upgrades.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if ws.send(Frame::text("ping")).await.is_err() {
            probes.drained.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match within(WAIT, "the echo", ws.next()).await {
            Some(Ok(Frame::Text(t))) if t == "ping" => {
                probes.echoed.fetch_add(1, Ordering::Relaxed);
                let _ = ws.close(None).await;
            }
            Some(Ok(Frame::Close(Some(c)))) if u16::from(c.code) == 1001 => {
                probes.drained.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                probes.other.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Waits until the prober has completed `n` more echoes.
async fn echoes(probes: &Probes, n: usize) {
    let target = probes.echoed.load(Ordering::Relaxed) + n;
    let started = std::time::Instant::now();
    while probes.echoed.load(Ordering::Relaxed) < target {
        assert!(started.elapsed() < WAIT, "the prober stalled");
        async_io::Timer::after(Duration::from_millis(5)).await;
    }
}

runtime_tests! {
    async fn a_restart_on_a_held_socket_refuses_no_connect(rt) {
        let (socket, addr) = held_socket();
        let fd = socket.as_raw_fd();
        let bin = env!("CARGO_BIN_EXE_echo");
        let mut a = Example::spawn_on_socket(bin, rt, fd, &[], &[]);
        assert_eq!(a.addr, addr, "A serves the socket it was given, not --port 0");

        let probes = Arc::new(Probes::default());
        let stop = Arc::new(AtomicBool::new(false));
        let restart = {
            let (probes, stop) = (probes.clone(), stop.clone());
            async move {
            echoes(&probes, 20).await;
            let b = Example::spawn_on_socket(bin, rt, fd, &[], &[]);
            assert_eq!(b.addr, addr);
            a.signal("-TERM");
            // A stops accepting at once; the socket stays open for B.
            let status = within(WAIT, "A to exit", blocking(move || {
                let status = a.wait_exit(Duration::from_secs(10));
                (status, a)
            }))
            .await;
            assert!(status.0.success(), "A exited with {:?}: {}", status.0, status.1.output());
            echoes(&probes, 50).await;
            stop.store(true, Ordering::Release);
            b
            }
        };
        let (b, ()) = future::zip(restart, probe(addr, &probes, &stop)).await;
        let seen = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        eprintln!(
            "{} echoes, {} drained with 1001, {} told to retry ({})",
            seen(&probes.echoed),
            seen(&probes.drained),
            seen(&probes.retry_later),
            rt.name()
        );
        assert_eq!(seen(&probes.refused), 0, "connects refused or reset");
        assert_eq!(seen(&probes.failed_upgrades), 0, "upgrades that failed");
        assert_eq!(seen(&probes.other), 0, "connections that ended otherwise");
        drop(b);
    }

    async fn a_wrong_inherited_descriptor_is_a_clear_error(rt) {
        let bin = env!("CARGO_BIN_EXE_echo");
        for (redirect, says) in [("3<&-", "descriptor 3 is not open"), ("3</dev/null", "not a socket")] {
            let script = format!("exec {redirect}; export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$@\"");
            let run = blocking(move || {
                std::process::Command::new("bash")
                    .args(["-c", &script, "bash", bin, "--runtime", rt.name()])
                    .output()
            });
            let out = within(WAIT, "the example to give up", run).await.expect("run echo");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{redirect}: {stderr}");
            assert!(stderr.contains(says), "{redirect}: {stderr}");
        }
    }

    async fn a_chat_sign_in_survives_a_restart(rt) {
        let (socket, addr) = held_socket();
        let fd = socket.as_raw_fd();
        let bin = env!("CARGO_BIN_EXE_chat");
        let secret = [("CHAT_SECRET", "one deployment")];
        let mut a = Example::spawn_on_socket(bin, rt, fd, &[], &secret);
        let token = chat_login(addr, "ann").await;
        let mut ws = chat_enter(addr, "den", "ann", &token).await;
        a.signal("-TERM");
        let b = Example::spawn_on_socket(bin, rt, fd, &[], &secret);
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, 1001);
        assert!(reason.contains("retry-in="), "{reason}");
        finish_close(&mut ws).await;
        let status = within(WAIT, "A to exit", blocking(move || a.wait_exit(Duration::from_secs(10)))).await;
        assert!(status.success());
        // The same token, on the process started after the restart.
        let mut again = chat_enter(addr, "den", "ann", &token).await;
        let who = call(&mut again, serde_json::json!({"event": "chat:who", "id": 1})).await;
        assert_eq!(who["data"]["members"], serde_json::json!(["ann"]));
        drop(b);

        // Another deployment's secret does not take it.
        let (other_socket, other_addr) = held_socket();
        let _c = Example::spawn_on_socket(bin, rt, other_socket.as_raw_fd(), &[], &[("CHAT_SECRET", "another")]);
        let offer = format!("wsway.v1, bearer.{token}");
        let req = request_with(other_addr, "/chat/den", &[("sec-websocket-protocol", &offer)]);
        match try_connect(other_addr, req).await {
            Err(async_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
            other => panic!("expected a 401, got {other:?}"),
        }
    }
}
