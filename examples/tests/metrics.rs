//! The metrics equal what the clients counted: a scripted session (echo,
//! a room, a flood into a small queue, keep-alive pings, refused
//! handshakes, every kind of close, a drain with a client that never
//! answers), then `/metrics` read as Prometheus text, in this process.
//!
//! One recorder serves the whole process, so each runtime's session runs
//! alone and the counters are compared as differences across it.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_io::Async;
use async_tungstenite::tungstenite::Message as Frame;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCode;
use common::*;
use futures_util::SinkExt;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use wsway::{Accept, App, Handler, Request, Response, SendStatus, Server, Ws, on_message};

fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("the only recorder")
        })
        .clone()
}

/// `name{labels}` to value, from Prometheus' text format.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// What the clients counted.
#[derive(Default, Debug)]
struct Tally {
    sent: usize,
    sent_bytes: usize,
    received: usize,
    received_bytes: usize,
    pings: usize,
}

impl Tally {
    async fn send(&mut self, ws: &mut Client, msg: Frame) {
        self.sent += 1;
        self.sent_bytes += msg.len();
        within(WAIT, "send", ws.send(msg)).await.expect("send");
    }

    /// The next data message, counting it (and any ping on the way).
    async fn recv(&mut self, ws: &mut Client) -> Frame {
        loop {
            match next_frame(ws).await {
                Some(Ok(Frame::Ping(_))) => self.pings += 1,
                Some(Ok(Frame::Pong(_))) => {}
                Some(Ok(m @ (Frame::Text(_) | Frame::Binary(_)))) => {
                    self.received += 1;
                    self.received_bytes += m.len();
                    return m;
                }
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    async fn close(&mut self, ws: &mut Client, code: u16) {
        let frame = CloseFrame {
            code: WireCode::from(code),
            reason: "".into(),
        };
        within(WAIT, "close", ws.close(Some(frame)))
            .await
            .expect("close");
        while let Some(Ok(_)) = next_frame(ws).await {}
    }
}

/// Sends as many 1 KiB messages as asked in `?n=` when it opens, into an
/// 8 KiB queue, and counts what `send` said.
#[derive(Clone, Default)]
struct Flood {
    backpressured: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Handler for Flood {
    type Data = usize;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<usize>, Response> {
        let n = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("n="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(Accept::new(n))
    }

    async fn open(&self, ws: &mut Ws<usize>) {
        for _ in 0..ws.data {
            match ws.send(vec![7u8; 1024]) {
                SendStatus::Backpressure { .. } => {
                    self.backpressured.fetch_add(1, Ordering::Relaxed);
                }
                SendStatus::Dropped { .. } => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }
}

fn app(flood: Flood) -> App {
    let mut app = App::new();
    app.ws(
        "/echo",
        on_message(|ws, msg| {
            ws.send(msg);
        }),
    );
    // Pinged after 150 ms of quiet.
    app.ws("/quiet", on_message(|_, _| {}))
        .limits(|l| l.idle_timeout(Some(Duration::from_millis(300))));
    app.ws("/flood", flood)
        .limits(|l| l.backpressure_limit(8 * 1024).close_on_backpressure(false));
    examples::metrics_route(&mut app, recorder());
    app
}

/// Subscribes on open, for the room route (`on_message` has no `open`).
struct Member;

impl Handler for Member {
    type Data = ();
    async fn open(&self, ws: &mut Ws<()>) {
        ws.subscribe("room");
    }
    async fn message(&self, ws: &mut Ws<()>, msg: wsway::Message) {
        ws.publish("room", msg);
    }
}

async fn scrape(addr: std::net::SocketAddr) -> HashMap<String, f64> {
    let page = raw(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&page), 200, "{page}");
    assert!(page.contains("text/plain; version=0.0.4"), "{page}");
    parse(page.split_once("\r\n\r\n").map_or("", |(_, body)| body))
}

async fn session(rt: Runtime) {
    let before = parse(&recorder().render());
    let delta = |now: &HashMap<String, f64>, key: &str| {
        now.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
    };
    let flood = Flood::default();
    let mut app = app(flood.clone());
    app.ws("/members", Member).publish_to_self(true);
    let server = Server::new(app)
        .connection_limit(Some(4))
        .shutdown_timeout(Duration::from_millis(600))
        .drain_window(Duration::ZERO);
    let server = rt.start(server).await;
    let addr = server.local_addr();
    let mut t = Tally::default();

    // Three echo clients, text and binary, closing normally.
    for i in 0..3 {
        let mut ws = connect(addr, "/echo").await;
        for j in 0..5 {
            t.send(&mut ws, Frame::text(format!("hello {i}.{j}"))).await;
            t.recv(&mut ws).await;
        }
        t.send(&mut ws, Frame::binary(vec![0u8; 3000])).await;
        t.recv(&mut ws).await;
        t.close(&mut ws, 1000).await;
    }

    // A quiet client answers two keep-alive pings, then closes with 4000.
    let mut quiet = connect(addr, "/quiet").await;
    within(WAIT, "two pings", async {
        while t.pings < 2 {
            match next_frame(&mut quiet).await {
                Some(Ok(Frame::Ping(_))) => {
                    t.pings += 1;
                    // The pong was queued by the read; send it now.
                    quiet.flush().await.expect("pong");
                }
                other => panic!("expected a ping, got {other:?}"),
            }
        }
    })
    .await;
    t.close(&mut quiet, 4000).await;

    // A flood into a small queue: some sends over the limit, some dropped.
    let asked = 40;
    let mut flooded = connect(addr, &format!("/flood?n={asked}")).await;
    let mut got = 0;
    while got + flood.dropped.load(Ordering::Relaxed) < asked {
        t.recv(&mut flooded).await;
        got += 1;
    }
    t.close(&mut flooded, 1000).await;
    assert!(
        flood.dropped.load(Ordering::Relaxed) > 0
            && flood.backpressured.load(Ordering::Relaxed) > 0
    );

    // Refused handshakes.
    for (extra, status) in [("", 426), ("", 426), ("Content-Length: 3\r\n", 400)] {
        let mut req = upgrade_request("/echo", extra);
        if status == 426 {
            req = req.replace("Version: 13", "Version: 8");
        }
        assert_eq!(status_of(&raw(addr, &req).await), status);
    }

    // A room of three: one message reaches all three; one member vanishes.
    eventually("every earlier connection gone", || server.tasks() == 0).await;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(connect(addr, "/members").await);
    }
    eventually("three members", || server.subscriber_count("room") == 3).await;
    t.send(&mut members[0], Frame::text("to everyone")).await;
    for m in &mut members {
        t.recv(m).await;
    }
    drop(members.pop());
    eventually("two members", || server.subscriber_count("room") == 2).await;

    // A client that will not answer the drain's close.
    let _stubborn = upgraded_raw(addr, "/echo").await;
    eventually("three open", || server.connections() == 3).await;

    // At the connection limit (4), a socket is refused at accept with 503.
    let held = Async::<std::net::TcpStream>::connect(addr).await.unwrap();
    eventually("four tasks", || server.tasks() == 4).await;
    assert_eq!(
        status_of(&raw(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await),
        503
    );
    drop(held);
    eventually("three tasks", || server.tasks() == 3).await;

    let now = scrape(addr).await;
    let d = |k: &str| delta(&now, k);
    let counted = |k: &str, n: usize| assert_eq!(d(k), n as f64, "{k}: {t:?}");
    counted("wsway_connections_total", 3 + 1 + 1 + 3 + 1);
    assert_eq!(now["wsway_connections_open"], 3.0);
    counted("wsway_messages_received_total", t.sent);
    counted("wsway_received_bytes_total", t.sent_bytes);
    counted("wsway_messages_sent_total", t.received);
    counted("wsway_sent_bytes_total", t.received_bytes);
    counted(
        "wsway_sends_backpressured_total",
        flood.backpressured.load(Ordering::Relaxed),
    );
    counted(
        "wsway_sends_dropped_total",
        flood.dropped.load(Ordering::Relaxed),
    );
    counted("wsway_handshakes_refused_total{status=\"426\"}", 2);
    counted("wsway_handshakes_refused_total{status=\"400\"}", 1);
    counted("wsway_handshakes_refused_total{status=\"503\"}", 1);
    counted("wsway_closes_total{code=\"1000\",by=\"client\"}", 4);
    counted("wsway_closes_total{code=\"4000\",by=\"client\"}", 1);
    counted("wsway_closes_total{code=\"1006\",by=\"none\"}", 1);
    counted("wsway_ping_rtt_seconds_count", t.pings);
    assert_eq!(now["wsway_topics"], 1.0);
    assert_eq!(now["wsway_subscribers"], 2.0);

    // The drain: the two members answer, the stubborn one is cut.
    server.shutdown();
    for m in &mut members {
        assert_eq!(expect_close(m).await.0, 1001);
        finish_close(m).await;
    }
    within(WAIT, "stopped", server.stopped()).await;
    let end = parse(&recorder().render());
    let d = |k: &str| delta(&end, k);
    assert_eq!(d("wsway_closes_total{code=\"1001\",by=\"server\"}"), 2.0);
    assert_eq!(d("wsway_closes_total{code=\"1006\",by=\"server\"}"), 1.0);
    assert_eq!(d("wsway_drain_terminated_total"), 1.0);
    assert_eq!(end["wsway_drain_connections"], 0.0);
    assert_eq!(end["wsway_connections_open"], 0.0);
    assert_eq!(end["wsway_subscribers"], 0.0);
    assert_eq!(end["wsway_topics"], 0.0);
    assert_eq!(end["wsway_send_queue_bytes"], 0.0);
}

runtime_tests_in_turn!(
    session,
    "One recorder for the process: each runtime's session runs alone."
);
