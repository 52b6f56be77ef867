//! Taking a server out of service: `/readyz` fails at once, the pre-drain
//! delay keeps serving, an upgrade that arrives after the drain started
//! gets 503 with `Retry-After`, and the closes are spread over the drain
//! window with the configured code and the reconnect hint.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_io::Async;
use common::*;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use wsway::{App, Server, on_message};

fn app() -> App {
    let mut app = App::new();
    app.ws(
        "/echo",
        on_message(|ws, msg| {
            ws.send(msg);
        }),
    );
    app.livez("/livez").readyz("/readyz");
    app
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    raw(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await
}

async fn echoes(ws: &mut Client) {
    send_text(ws, "still here").await;
    assert_eq!(next_message(ws).await, Frame::text("still here"));
}

use async_tungstenite::tungstenite::Message as Frame;

runtime_tests! {
    async fn readyz_fails_at_once_and_the_pre_drain_delay_keeps_serving(rt) {
        let delay = Duration::from_millis(800);
        let server = rt.start(Server::new(app()).pre_drain_delay(delay)).await;
        let addr = server.local_addr();
        assert_eq!(status_of(&get(addr, "/readyz").await), 200);
        assert_eq!(status_of(&get(addr, "/livez").await), 200);
        let mut before = connect(addr, "/echo").await;

        let signalled = Instant::now();
        server.shutdown();
        // At once: not ready, still live.
        let ready = get(addr, "/readyz").await;
        assert_eq!(status_of(&ready), 503, "{ready}");
        assert!(ready.ends_with("draining"), "{ready}");
        assert_eq!(status_of(&get(addr, "/livez").await), 200);
        // Through the delay, old and new connections are served.
        let mut during = connect(addr, "/echo").await;
        echoes(&mut during).await;
        echoes(&mut before).await;
        assert!(signalled.elapsed() < delay, "the checks ran past the delay: {:?}", signalled.elapsed());

        for ws in [&mut before, &mut during] {
            let (code, reason) = expect_close(ws).await;
            assert_eq!((code, reason.as_str()), (1001, "server shutting down; retry-in=5000"));
            finish_close(ws).await;
        }
        assert!(signalled.elapsed() >= delay, "closed before the delay was over");
        within(WAIT, "the server to stop", server.stopped()).await;
    }

    async fn an_upgrade_that_arrives_after_the_drain_started_gets_503(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        // Accepted before the drain, asked after it started.
        let mut stream = Async::<TcpStream>::connect(addr).await.expect("connect");
        eventually("the connection to be accepted", || server.tasks() == 1).await;
        server.shutdown();
        stream.write_all(upgrade_request("/echo", "").as_bytes()).await.expect("write");
        let mut response = String::new();
        within(WAIT, "the answer", stream.read_to_string(&mut response)).await.expect("read");
        assert_eq!(status_of(&response), 503, "{response}");
        assert!(response.to_ascii_lowercase().contains("retry-after: 1"), "{response}");
        within(WAIT, "the server to stop", server.stopped()).await;
    }

    async fn a_drain_spreads_its_closes_and_carries_the_hint(rt) {
        const CLIENTS: usize = 40;
        let window = Duration::from_millis(1000);
        let server = Server::new(app())
            .drain_window(window)
            .drain_close_code(1012)
            .reconnect_window(Duration::from_secs(3));
        let server = rt.start(server).await;
        let addr = server.local_addr();
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            clients.push(connect(addr, "/echo").await);
        }
        let started = Instant::now();
        server.shutdown();
        // Each client notes when its close came; all are read at once.
        let closes = futures_util::future::join_all(clients.iter_mut().map(|ws| async move {
            let close = expect_close(ws).await;
            let at = started.elapsed();
            finish_close(ws).await;
            (at, close)
        }))
        .await;
        // Closes go out in batches 50 ms apart (2 clients each here), each
        // after the connection's 50 ms grace for messages in flight. Cut
        // the window in ten slices: each holds its fair share (4) plus at
        // most one batch that timer jitter moved across a border; what
        // comes late counts in the last slice. Closing any two batches
        // together already breaks this; half the clients at once, far more.
        const SLICES: usize = 10;
        const GRACE: Duration = Duration::from_millis(50);
        let batch = CLIENTS.div_ceil((window.as_millis() / 50) as usize);
        let fair = CLIENTS / SLICES;
        let mut slices = [0usize; SLICES];
        for (at, (code, reason)) in &closes {
            assert_eq!((*code, reason.as_str()), (1012, "server shutting down; retry-in=3000"));
            let at = at.saturating_sub(GRACE);
            let slice = (at.as_nanos() * SLICES as u128 / window.as_nanos()) as usize;
            slices[slice.min(SLICES - 1)] += 1;
        }
        let last = closes.iter().map(|(at, _)| *at).max().unwrap();
        eprintln!("closes per tenth of the window: {slices:?}; the last after {last:?}");
        for (i, n) in slices.iter().enumerate() {
            assert!(*n <= fair + batch, "{n} of {CLIENTS} closed in tenth {i} of the window: {slices:?}");
        }
        assert!(last < GRACE + window + window / 10, "the last close came {last:?} after the drain began, window {window:?}");
        within(WAIT, "the server to stop", server.stopped()).await;
    }
}
