//! README's defaults, as they trip with nothing configured: a message in
//! 131 072 fragments is taken and one in 131 073 closes with 1009; a peer
//! that never answers the server's close is dropped after the 5 s close
//! timeout; a request head that never ends is dropped after the 10 s
//! handshake timeout; a drain spreads its closes over the 2 s window; and
//! a connection stuck in a handler that never returns is cut at the 10 s
//! shutdown deadline. (`core`'s `defaults_table` test pins every row's
//! number to the code; this one shows them at work, on every runtime.)
//!
//! One body per runtime runs them all at once: they mostly wait.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use async_io::Async;
use common::*;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use wsway::{App, CloseCode, Server, on_message};

fn app() -> App {
    let mut app = App::new();
    app.ws(
        "/echo",
        on_message(|ws, msg| {
            if msg.as_text() == Some("bye") {
                let _ = ws.close(CloseCode::NORMAL, "bye");
            } else {
                ws.send(msg);
            }
        }),
    );
    app.ws("/stuck", Stuck);
    app
}

/// A handler whose `message` never returns: only the shutdown deadline
/// ends its connection.
struct Stuck;

impl wsway::Handler for Stuck {
    type Data = ();

    async fn message(&self, _ws: &mut wsway::Ws<()>, _msg: wsway::Message) {
        futures_lite::future::pending::<()>().await;
    }
}

/// Reads and drops what comes until the server hangs up on `s` (EOF or
/// reset).
async fn hangs_up(s: &mut Async<TcpStream>, limit: Duration) {
    let mut buf = [0u8; 1024];
    within(limit, "the server to hang up", async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// A message of `n` one-byte fragments, masked.
fn fragmented(n: usize) -> Vec<u8> {
    let mut out = masked_frame(0x01, b"x");
    for _ in 1..n - 1 {
        out.extend(masked_frame(0x00, b"x"));
    }
    out.extend(masked_frame(0x80, b"x"));
    out
}

async fn max_fragments(addr: SocketAddr) {
    const MAX: usize = 131_072;
    let (mut s, _) = upgraded_raw_with(addr, "/echo", "").await;
    s.write_all(&fragmented(MAX)).await.unwrap();
    assert_eq!(
        read_raw_frame(&mut s).await,
        (0x81, vec![b'x'; MAX]),
        "{MAX} fragments echoed"
    );
    let (mut s, _) = upgraded_raw_with(addr, "/echo", "").await;
    s.write_all(&fragmented(MAX + 1)).await.unwrap();
    let (first, payload) = read_raw_frame(&mut s).await;
    assert_eq!(
        (first, &payload[..2]),
        (0x88, &1009u16.to_be_bytes()[..]),
        "{} fragments",
        MAX + 1
    );
}

async fn close_timeout(addr: SocketAddr) {
    let (mut s, _) = upgraded_raw_with(addr, "/echo", "").await;
    // Timed from before the server could start its close.
    let started = Instant::now();
    s.write_all(&masked_frame(0x81, b"bye")).await.unwrap();
    assert_eq!(read_raw_frame(&mut s).await.0, 0x88, "the server's close");
    // Never answered, never hung up on from this side.
    hangs_up(&mut s, Duration::from_secs(8)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "an unanswered close was dropped after {took:?}, not the 5 s close timeout"
    );
}

async fn handshake_timeout(addr: SocketAddr) {
    // Timed from before the connection was made.
    let started = Instant::now();
    let mut s = Async::<TcpStream>::connect(addr).await.unwrap();
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    hangs_up(&mut s, Duration::from_secs(13)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(11),
        "a request head that never ended was dropped after {took:?}, not the 10 s handshake timeout"
    );
}

/// 80 clients that answer the drain's close, and one stuck in `message`.
async fn drain_window_and_shutdown_deadline(rt: Runtime) {
    const CLIENTS: usize = 80;
    let server = rt.start(Server::new(app())).await;
    let addr = server.local_addr();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(connect(addr, "/echo").await);
    }
    let (mut stuck, _) = upgraded_raw_with(addr, "/stuck", "").await;
    stuck
        .write_all(&masked_frame(0x81, b"never answered"))
        .await
        .unwrap();
    eventually("every client open", || server.connections() == CLIENTS + 1).await;
    let started = Instant::now();
    server.shutdown();
    let closes = futures_util::future::join_all(clients.iter_mut().map(|ws| async move {
        let close = expect_close(ws).await;
        let at = started.elapsed();
        finish_close(ws).await;
        (close.0, at)
    }))
    .await;
    // Spread over 2 s (after each connection's 50 ms grace): the last
    // batch goes out near its end, none after it.
    let last = closes.iter().map(|(_, at)| *at).max().unwrap();
    let first = closes.iter().map(|(_, at)| *at).min().unwrap();
    assert!(closes.iter().all(|(code, _)| *code == 1001), "{closes:?}");
    assert!(
        first < Duration::from_millis(300),
        "the first close came after {first:?}"
    );
    assert!(
        last >= Duration::from_millis(1900) && last < Duration::from_millis(2300),
        "the last close came after {last:?}, not at the end of the 2 s drain window"
    );
    // The stuck one is cut at the deadline.
    within(
        Duration::from_secs(15),
        "the server to stop",
        server.stopped(),
    )
    .await;
    let stopped = started.elapsed();
    assert!(
        stopped >= Duration::from_secs(10) && stopped < Duration::from_millis(11_500),
        "stopped {stopped:?} after shutdown with a handler that never returned, not at the 10 s deadline"
    );
    // And by then it is gone.
    hangs_up(&mut stuck, Duration::from_secs(1)).await;
}

runtime_tests! {
    async fn every_default_trips_where_the_readme_says(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let one_server = futures_lite::future::zip(
            Box::pin(max_fragments(addr)),
            futures_lite::future::zip(Box::pin(close_timeout(addr)), Box::pin(handshake_timeout(addr))),
        );
        futures_lite::future::zip(Box::pin(one_server), Box::pin(drain_window_and_shutdown_deadline(rt))).await;
    }
}
