//! The rolling restart, at the process level: a harness holds the listening
//! socket, process A serves 2 000 clients on it, process B starts on the
//! same socket, and A gets SIGTERM. Every client must be closed with the
//! drain code (none with 1006), come back on B within the drain window plus
//! the reconnect hint plus 2 s, and never see a connect refused or reset;
//! A must exit 0 within its deadline. The clients behave as `wsway.js`
//! does: one reconnect at a random moment within the close's `retry-in`.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use async_tungstenite::tungstenite::{self, Message as Frame};
use common::*;
use futures_util::StreamExt;

const CLIENTS: usize = 2000;
/// The examples' defaults: closes over 2 s, reconnects within 5 s.
const DRAIN_WINDOW: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Tally {
    connected: AtomicUsize,
    refused: AtomicUsize,
    failed_upgrades: AtomicUsize,
    told_to_retry: AtomicUsize,
    closed_1001: AtomicUsize,
    closed_otherwise: AtomicUsize,
    back: AtomicUsize,
    /// Messages echoed (acknowledged) before the close, and those sent
    /// but not echoed when it came (not acknowledged: a client resends).
    acked: AtomicUsize,
    unacked_at_close: AtomicUsize,
    /// How long after SIGTERM the last client was back.
    last_back: Mutex<Duration>,
}

async fn open(addr: SocketAddr, tally: &Tally) -> Client {
    loop {
        let Ok(stream) = Async::<TcpStream>::connect(addr).await else {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            Timer::after(Duration::from_millis(100)).await;
            continue;
        };
        match async_tungstenite::client_async(format!("ws://{addr}/echo"), stream).await {
            Ok((ws, _)) => return ws,
            Err(tungstenite::Error::Http(res)) if res.status() == 503 => {
                tally.told_to_retry.fetch_add(1, Ordering::Relaxed);
                Timer::after(Duration::from_secs(1)).await;
            }
            Err(_) => {
                tally.failed_upgrades.fetch_add(1, Ordering::Relaxed);
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client: echoes on A until the drain closes it, then reconnects as
/// `wsway.js` would and echoes once on B.
async fn client(i: usize, addr: SocketAddr, tally: &Tally, signalled: &Mutex<Option<Instant>>) {
    let mut ws = open(addr, tally).await;
    tally.connected.fetch_add(1, Ordering::Relaxed);
    let mut seq = 0u64;
    let (code, reason) = loop {
        if ws.send(Frame::text(seq.to_string())).await.is_err() {
            break (1006, String::new());
        }
        match ws.next().await {
            Some(Ok(Frame::Text(t))) if t.as_str() == seq.to_string() => {
                tally.acked.fetch_add(1, Ordering::Relaxed);
                seq += 1;
            }
            // The message went out after the server's close: the server
            // never took it, so the client has no ack and would resend.
            Some(Ok(Frame::Close(Some(f)))) => {
                tally.unacked_at_close.fetch_add(1, Ordering::Relaxed);
                break (u16::from(f.code), f.reason.to_string());
            }
            _ => break (1006, String::new()),
        }
        // About one message a second per client, staggered; a close that
        // comes meanwhile ends the wait.
        let pause = Timer::after(Duration::from_millis(700 + (i % 600) as u64));
        let idle = futures_lite::future::or(
            async {
                pause.await;
                None
            },
            async { Some(ws.next().await) },
        );
        match idle.await {
            None => {}
            Some(Some(Ok(Frame::Close(Some(f))))) => {
                break (u16::from(f.code), f.reason.to_string());
            }
            Some(_) => break (1006, String::new()),
        }
    };
    if code == 1001 {
        tally.closed_1001.fetch_add(1, Ordering::Relaxed);
    } else {
        tally.closed_otherwise.fetch_add(1, Ordering::Relaxed);
    }
    // Reply to the close and wait for the server to hang up.
    while let Some(Ok(_)) = ws.next().await {}
    Timer::after(reconnect_delay(&reason, i)).await;
    let mut ws = open(addr, tally).await;
    ws.send(Frame::text("back")).await.expect("send on B");
    match ws.next().await {
        Some(Ok(Frame::Text(t))) if t.as_str() == "back" => {}
        other => panic!("client {i}: no echo on B: {other:?}"),
    }
    let since = signalled.lock().unwrap().expect("signalled").elapsed();
    {
        let mut last = tally.last_back.lock().unwrap();
        *last = (*last).max(since);
    }
    tally.back.fetch_add(1, Ordering::Relaxed);
    let _ = ws.close(None).await;
}

async fn rolling_restart(rt: Runtime) {
    let (socket, addr) = held_socket();
    let fd = socket.as_raw_fd();
    let bin = env!("CARGO_BIN_EXE_echo");
    let mut a = Example::spawn_on_socket(bin, rt, fd, &[], &[]);

    let tally = Tally::default();
    let signalled = Mutex::new(None);
    let clients =
        futures_util::future::join_all((0..CLIENTS).map(|i| client(i, addr, &tally, &signalled)));
    let restart = async {
        let started = Instant::now();
        while tally.connected.load(Ordering::Relaxed) < CLIENTS {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "clients did not connect"
            );
            Timer::after(Duration::from_millis(20)).await;
        }
        let b = Example::spawn_on_socket(bin, rt, fd, &[], &[]);
        *signalled.lock().unwrap() = Some(Instant::now());
        a.signal("-TERM");
        let exited = within(
            Duration::from_secs(20),
            "A to exit",
            blocking(move || {
                // The shutdown deadline is 10 s; exiting takes a moment more.
                let status = a.wait_exit(Duration::from_secs(11));
                (status, a.output())
            }),
        )
        .await;
        assert!(
            exited.0.success(),
            "A exited with {:?}: {}",
            exited.0,
            exited.1
        );
        b
    };
    let (_, b) = within(
        Duration::from_secs(120),
        "the restart",
        futures_lite::future::zip(clients, restart),
    )
    .await;

    let n = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    let last_back = *tally.last_back.lock().unwrap();
    eprintln!(
        "{}: {CLIENTS} clients, {} messages acked before the close, {} sent after it (never taken), {} told to retry, last back after {last_back:?}",
        rt.name(),
        n(&tally.acked),
        n(&tally.unacked_at_close),
        n(&tally.told_to_retry),
    );
    assert_eq!(n(&tally.refused), 0, "connects refused or reset");
    assert_eq!(n(&tally.failed_upgrades), 0, "upgrades dropped");
    assert_eq!(n(&tally.closed_1001), CLIENTS, "closed with the drain code");
    assert_eq!(
        n(&tally.closed_otherwise),
        0,
        "closed with 1006 or another code"
    );
    assert_eq!(n(&tally.back), CLIENTS, "back on B");
    let bound = DRAIN_WINDOW + Duration::from_secs(5) + Duration::from_secs(2);
    assert!(
        last_back <= bound,
        "the last client was back after {last_back:?}, over {bound:?}"
    );
    drop(b);
}

runtime_tests_in_turn!(
    rolling_restart,
    "Each runtime's 2 000 clients and two processes run alone, so the \
     timing bound is not shared with another runtime's restart."
);
