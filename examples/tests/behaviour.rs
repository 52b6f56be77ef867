//! The behaviour suite: handshake statuses, routing, callbacks and their
//! order, the connection API, limits, backpressure and drain, panic
//! isolation, and in-process graceful shutdown. Every test body runs on every
//! runtime through `runtime_tests!`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_tungstenite::tungstenite::Message as Frame;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use common::*;
use futures_util::StreamExt;
use serde::Deserialize;
use wsway::{
    Accept, App, CloseCode, Error, Handle, Handler, Html, Limits, Message, Origins, RateLimit,
    Request, Response, SendStatus, Server, StatusCode, Ws, on_message, text,
};

/// A handler that logs every callback and acts on commands sent as text.
#[derive(Clone, Default)]
struct Probe {
    log: Log,
    handles: Arc<Mutex<Vec<Handle>>>,
    /// Holds a `gate` message's handler until the test opens it.
    gate: Arc<std::sync::atomic::AtomicBool>,
}

/// `open` waits until the test releases it.
struct SlowOpen {
    log: Log,
    release: Arc<std::sync::atomic::AtomicBool>,
}

impl Handler for SlowOpen {
    type Data = ();

    async fn open(&self, _ws: &mut Ws<()>) {
        self.log.push("open");
        while !self.release.load(std::sync::atomic::Ordering::Acquire) {
            async_io::Timer::after(Duration::from_millis(5)).await;
        }
    }

    async fn close(&self, _ws: &mut Ws<()>, code: CloseCode, _reason: &str) {
        self.log.push(format!("close {}", code.0));
    }
}

#[derive(Deserialize)]
struct ProbeQuery {
    pick: Option<String>,
    reject: Option<u16>,
}

impl Handler for Probe {
    type Data = ();

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<()>, Response> {
        let q: ProbeQuery = req.query()?;
        if let Some(status) = q.reject {
            let status = StatusCode::from_u16(status).unwrap();
            return Err(text(status, "rejected by before_upgrade"));
        }
        let accept = Accept::new(());
        Ok(match q.pick {
            Some(p) => accept.protocol(p),
            None => accept,
        })
    }

    async fn open(&self, ws: &mut Ws<()>) {
        self.log.push("open");
        self.handles.lock().unwrap().push(ws.handle());
    }

    async fn message(&self, ws: &mut Ws<()>, msg: Message) {
        let text = msg.as_text().unwrap_or("<binary>").to_owned();
        self.log.push(format!("message {text}"));
        let mut words = text.split(' ');
        match words.next().unwrap_or("") {
            "panic" => panic!("handler panicked on purpose"),
            "close" => {
                let code: u16 = words.next().unwrap().parse().unwrap();
                let reason = words.next().unwrap_or("").replace('_', " ");
                let reason = if reason == "LONG" {
                    "x".repeat(124)
                } else {
                    reason
                };
                let r = ws.close(code, &reason);
                self.log
                    .push(format!("close-result {:?}", r.map_err(|e| e.kind())));
            }
            "terminate" => ws.terminate(),
            "ping-big" => {
                let r = ws.ping(vec![0u8; 126]);
                self.log
                    .push(format!("ping-result {:?}", r.map_err(|e| e.kind())));
                let r = ws.ping(vec![0u8; 125]);
                self.log
                    .push(format!("ping-ok {:?}", r.map_err(|e| e.kind())));
            }
            "gate" => {
                while !self.gate.load(std::sync::atomic::Ordering::Acquire) {
                    async_io::Timer::after(Duration::from_millis(5)).await;
                }
                self.log.push("gate opened");
            }
            "sleep" => {
                let ms: u64 = words.next().unwrap().parse().unwrap();
                async_io::Timer::after(Duration::from_millis(ms)).await;
                self.log.push(format!("woke {ms}"));
                ws.send(msg);
            }
            _ => {
                ws.send(msg);
            }
        }
    }

    async fn drain(&self, _ws: &mut Ws<()>) {
        self.log.push("drain");
    }

    async fn error(&self, _ws: &mut Ws<()>, err: &Error) {
        self.log.push(format!("error {:?}", err.kind()));
    }

    async fn close(&self, _ws: &mut Ws<()>, code: CloseCode, reason: &str) {
        self.log.push(format!("close {code} {reason}"));
    }
}

fn probe_app(probe: &Probe, limits: Limits) -> App {
    let mut app = App::new();
    app.limits(limits);
    app.ws("/probe", probe.clone())
        .protocols(["chat.v2", "chat.v1"]);
    app
}

async fn start_probe(rt: Runtime, limits: Limits) -> (Probe, wsway::ServerHandle) {
    let probe = Probe::default();
    let handle = rt.start(probe_app(&probe, limits)).await;
    (probe, handle)
}

/// Typed params and query for the routing tests.
struct Rooms;

#[derive(Deserialize)]
struct RoomParams {
    room: String,
    seat: u32,
}

#[derive(Deserialize)]
struct RoomQuery {
    #[serde(default)]
    limit: Option<u8>,
}

/// A team name that its own type checks: lowercase letters and `-`.
struct Slug(String);

impl<'de> serde::Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Slug, D::Error> {
        let s = String::deserialize(d)?;
        if s.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            Ok(Slug(s))
        } else {
            Err(serde::de::Error::custom(format!("`{s}` is not a slug")))
        }
    }
}

/// `/board/:team`: one parameter, typed as a [`Slug`].
struct Board;

impl Handler for Board {
    type Data = String;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<String>, Response> {
        let Slug(team) = req.params()?;
        Ok(Accept::new(team))
    }

    async fn open(&self, ws: &mut Ws<String>) {
        let board = format!("board {}", ws.data);
        ws.send(board);
    }
}

#[derive(Default)]
struct Seat {
    label: String,
}

impl Handler for Rooms {
    type Data = Seat;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<Seat>, Response> {
        let p: RoomParams = req.params()?;
        let q: RoomQuery = req.query()?;
        Ok(Accept::new(Seat {
            label: format!("{}#{} limit={:?}", p.room, p.seat, q.limit),
        }))
    }

    async fn open(&self, ws: &mut Ws<Seat>) {
        let rest: Option<String> = ws.param("rest").map(str::to_owned);
        ws.send(format!("{} rest={rest:?}", ws.data.label));
    }
}

runtime_and_mounted_tests! {
    async fn echo_round_trip(rt) {
        let (_probe, server) = start_probe(rt, Limits::default()).await;
        let mut ws = connect(server.local_addr(), "/probe").await;
        send_text(&mut ws, "hello").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("hello"));
        ws.send(Frame::binary(vec![1u8, 2, 3])).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Frame::binary(vec![1u8, 2, 3]));
        assert_eq!(server.connections(), 1);
    }

    async fn handshake_statuses(rt) {
        let (_probe, server) = start_probe(rt, Limits::default()).await;
        let addr = server.local_addr();
        let ok = raw(addr, &upgrade_request("/probe", "")).await;
        assert_eq!(status_of(&ok), 101, "{ok}");
        assert!(ok.to_lowercase().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{ok}");

        let post = raw(addr, &upgrade_request("/probe", "").replacen("GET", "POST", 1)).await;
        assert_eq!(status_of(&post), 405, "{post}");

        let v8 = raw(addr, &upgrade_request("/probe", "").replace("Version: 13", "Version: 8")).await;
        assert_eq!(status_of(&v8), 426, "{v8}");
        assert!(v8.to_lowercase().contains("sec-websocket-version: 13"), "{v8}");

        let key = raw(addr, &upgrade_request("/probe", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")).await;
        assert_eq!(status_of(&key), 400, "{key}");

        let no_conn = raw(addr, &upgrade_request("/probe", "").replace("Connection: Upgrade\r\n", "")).await;
        assert_eq!(status_of(&no_conn), 400, "{no_conn}");

        let lists = upgrade_request("/probe", "")
            .replace("Upgrade: websocket", "Upgrade: foo, WebSocket")
            .replace("Connection: Upgrade", "Connection: keep-alive, UPGRADE");
        assert_eq!(status_of(&raw(addr, &lists).await), 101);

        let http10 = raw(addr, &upgrade_request("/probe", "").replace("HTTP/1.1", "HTTP/1.0")).await;
        assert_eq!(status_of(&http10), 400, "{http10}");

        let plain = raw(addr, "GET /probe HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status_of(&plain), 426, "{plain}");

        let missing = raw(addr, &upgrade_request("/nowhere", "")).await;
        assert_eq!(status_of(&missing), 404, "{missing}");

        let rejected = raw(addr, &upgrade_request("/probe?reject=401", "")).await;
        assert_eq!(status_of(&rejected), 401, "{rejected}");
    }

    async fn cross_site_upgrades_are_refused(rt) {
        let probe = Probe::default();
        let mut app = probe_app(&probe, Limits::default());
        app.ws("/public", probe.clone()).limits(|l| l.origins(Origins::any()));
        app.ws("/partners", probe.clone())
            .limits(|l| l.origins(Origins::same_host().allow(["https://*.partner.example"])));
        let server = rt.start(app).await;
        let addr = server.local_addr();
        let with_origin = |path: &str, origin: &str| {
            upgrade_request(path, &format!("Origin: {origin}\r\n"))
                .replace("Host: localhost", &format!("Host: {addr}"))
        };
        // No Origin (a non-browser client) and the page's own host pass.
        assert_eq!(status_of(&raw(addr, &upgrade_request("/probe", "")).await), 101);
        assert_eq!(status_of(&raw(addr, &with_origin("/probe", &format!("http://{addr}"))).await), 101);
        // A page on another site is refused before the upgrade.
        let evil = raw(addr, &with_origin("/probe", "https://evil.example")).await;
        assert_eq!(status_of(&evil), 403, "{evil}");
        assert_eq!(status_of(&raw(addr, &with_origin("/probe", "null")).await), 403);
        // The opt-out and the allow-list.
        assert_eq!(status_of(&raw(addr, &with_origin("/public", "https://evil.example")).await), 101);
        assert_eq!(status_of(&raw(addr, &with_origin("/partners", "https://app.partner.example")).await), 101);
        assert_eq!(status_of(&raw(addr, &with_origin("/partners", "https://partner.example.evil")).await), 403);
        assert_eq!(probe.log.count("open"), 4, "refused upgrades never opened");
    }

    async fn upgrade_requests_with_a_body_are_refused(rt) {
        let (_probe, server) = start_probe(rt, Limits::default()).await;
        let addr = server.local_addr();
        let r = raw(addr, &upgrade_request("/probe", "Content-Length: 5\r\n")).await;
        assert_eq!(status_of(&r), 400, "{r}");
        let r = raw(addr, &upgrade_request("/probe", "Transfer-Encoding: chunked\r\n")).await;
        assert_eq!(status_of(&r), 400, "{r}");
        let r = raw(addr, &upgrade_request("/probe", "Content-Length: 0\r\n")).await;
        assert_eq!(status_of(&r), 101, "{r}");
    }

    async fn subprotocols_are_only_ever_offered_ones(rt) {
        let (_probe, server) = start_probe(rt, Limits::default()).await;
        let addr = server.local_addr();
        let offer = |path: &str, protocols: &str| {
            let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
            req.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
            req
        };
        // The route's preference order wins among what the client offered.
        let (_ws, res) = try_connect(addr, offer("/probe", "chat.v1, chat.v2")).await.unwrap();
        assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v2");
        // Nothing in common: no protocol header at all.
        let r = raw(addr, &upgrade_request("/probe", "Sec-WebSocket-Protocol: other\r\n")).await;
        assert_eq!(status_of(&r), 101);
        assert!(!r.to_lowercase().contains("sec-websocket-protocol"), "{r}");
        // The handler picks one the client offered.
        let (_ws, res) = try_connect(addr, offer("/probe?pick=chat.v1", "chat.v1, chat.v2")).await.unwrap();
        assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v1");
        // The handler picks one the client did not offer: refused before the 101.
        let r = raw(addr, &upgrade_request("/probe?pick=evil", "Sec-WebSocket-Protocol: chat.v1\r\n")).await;
        assert_eq!(status_of(&r), 500, "{r}");
    }

    async fn typed_params_and_query(rt) {
        let mut app = App::new();
        app.ws("/room/:room/:seat", Rooms);
        app.ws("/files/:room/:seat/*rest", Rooms);
        app.ws("/board/:team", Board);
        app.get("/", |_req| async { Html("<p>page</p>") });
        app.fallback(|req: Request| async move { (StatusCode::NOT_FOUND, format!("no page at {}", req.path())) });
        let server = rt.start(app).await;
        let addr = server.local_addr();

        let mut ws = connect(addr, "/room/lobby%20one/7?limit=5").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("lobby one#7 limit=Some(5) rest=None"));
        let mut ws = connect(addr, "/files/a/1/x/y.txt").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("a#1 limit=None rest=Some(\"x/y.txt\")"));

        let bad_param = raw(addr, &upgrade_request("/room/lobby/seven", "")).await;
        assert_eq!(status_of(&bad_param), 400, "{bad_param}");
        assert!(bad_param.contains("invalid path parameter `seat`"), "{bad_param}");
        let bad_query = raw(addr, &upgrade_request("/room/lobby/7?limit=999", "")).await;
        assert_eq!(status_of(&bad_query), 400, "{bad_query}");
        assert!(bad_query.contains("invalid query parameter `limit`"), "{bad_query}");

        // A lone parameter whose own type refuses it is named too.
        let bad_slug = raw(addr, &upgrade_request("/board/Not%20A%20Slug", "")).await;
        assert_eq!(status_of(&bad_slug), 400, "{bad_slug}");
        assert!(bad_slug.contains("invalid path parameter `team`: `Not A Slug` is not a slug"), "{bad_slug}");
        let mut ws = connect(addr, "/board/red-team").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("board red-team"));

        let page = raw(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status_of(&page), 200);
        assert!(page.contains("text/html") && page.contains("<p>page</p>"), "{page}");
        let other = raw(addr, "GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status_of(&other), 404);
        assert!(other.contains("no page at /elsewhere"), "{other}");
    }

    async fn no_upgrade_handling_without_ws_routes(rt) {
        let mut app = App::new();
        app.get("/", |_req| async { "plain page" });
        assert!(!app.has_websockets());
        let server = rt.start(app).await;
        let r = raw(server.local_addr(), &upgrade_request("/", "")).await;
        assert_eq!(status_of(&r), 200, "{r}");
        assert!(r.contains("plain page"), "{r}");
        assert_eq!(server.connections(), 0);
    }

    async fn callbacks_run_in_order_and_close_once(rt) {
        let (probe, server) = start_probe(rt, Limits::default()).await;
        let mut ws = connect(server.local_addr(), "/probe").await;
        for m in ["one", "two", "three"] {
            send_text(&mut ws, m).await;
        }
        for m in ["one", "two", "three"] {
            assert_eq!(next_message(&mut ws).await, Frame::text(m));
        }
        ws.close(Some(CloseFrame { code: 4001.into(), reason: "client bye".into() })).await.unwrap();
        finish_close(&mut ws).await;
        // Every callback of a connection runs inside its task: once the task
        // is gone, a second `close` can no longer come.
        eventually("the connection's task to end", || server.tasks() == 0).await;
        assert_eq!(
            probe.log.snapshot(),
            ["open", "message one", "message two", "message three", "close 4001 client bye"]
        );
        assert_eq!(server.connections(), 0);
    }

    async fn a_client_that_leaves_during_open_still_gets_close(rt) {
        // `open` runs before the 101: a client gone while it runs still has
        // its connection ended as lost, `close` with 1006, exactly once.
        let log = Log::default();
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut app = App::new();
        app.ws("/slow", SlowOpen { log: log.clone(), release: release.clone() });
        let server = rt.start(app).await;
        let addr = server.local_addr();
        let mut s = within(WAIT, "tcp connect", async_io::Async::<std::net::TcpStream>::connect(addr))
            .await
            .unwrap();
        futures_lite::AsyncWriteExt::write_all(&mut s, upgrade_request("/slow", "").as_bytes())
            .await
            .unwrap();
        log.wait_for("open").await;
        drop(s);
        release.store(true, std::sync::atomic::Ordering::Release);
        log.wait_for("close").await;
        eventually("the connection to be gone", || server.connections() == 0).await;
        eventually("its tasks to end", || server.tasks() == 0).await;
        assert_eq!(log.snapshot(), ["open", "close 1006"]);
    }

    async fn no_frame_is_read_while_message_runs(rt) {
        // While `message` runs, the server reads nothing more: the client's
        // socket fills up and stays full. A server that read ahead would
        // keep taking bytes until the 256 MiB cap fails the test.
        let (probe, server) = start_probe(rt, Limits::default()).await;
        let mut stream = upgraded_raw(server.local_addr(), "/probe").await;
        use futures_lite::AsyncWriteExt;
        stream.write_all(&masked_frame(0x81, b"gate")).await.unwrap();
        probe.log.wait_for("message gate").await;
        let filled = fill_until_stalled(&stream, &masked_frame(0x82, &[7u8; 60_000])).await;
        assert!(filled.is_ok(), "the server read {filled:?} bytes while message ran");
        assert_eq!(probe.log.count("message"), 1, "{:?}", probe.log.snapshot());
        // Once `message` returns, reading resumes.
        probe.gate.store(true, std::sync::atomic::Ordering::Release);
        probe.log.wait_for("gate opened").await;
        probe.log.wait_for("message <binary>").await;
    }

    async fn close_codes_and_reasons_as_sent(rt) {
        let (probe, server) = start_probe(rt, Limits::default()).await;
        let addr = server.local_addr();
        let mut ws = connect(addr, "/probe").await;
        // Invalid codes and long reasons are errors that change nothing.
        for bad in ["close 1005", "close 999", "close 5000", "close 1015", "close 1000 LONG"] {
            send_text(&mut ws, bad).await;
        }
        send_text(&mut ws, "still-open").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("still-open"));
        let results: Vec<String> =
            probe.log.snapshot().into_iter().filter(|e| e.starts_with("close-result")).collect();
        assert_eq!(
            results,
            [
                "close-result Err(InvalidCloseCode)",
                "close-result Err(InvalidCloseCode)",
                "close-result Err(InvalidCloseCode)",
                "close-result Err(InvalidCloseCode)",
                "close-result Err(CloseReasonTooLong)",
            ]
        );
        // A valid one: the client sees exactly that code and reason.
        send_text(&mut ws, "close 4000 see_you").await;
        assert_eq!(expect_close(&mut ws).await, (4000, "see you".to_owned()));
        assert!(next_frame(&mut ws).await.is_none_or(|r| r.is_err() || matches!(r, Ok(Frame::Close(_)))));
        assert_eq!(probe.log.wait_for("close 4000").await, "close 4000 see you");
        assert_eq!(probe.log.count("error"), 0);
    }

    async fn ping_payloads_over_125_bytes_are_errors(rt) {
        let (probe, server) = start_probe(rt, Limits::default()).await;
        let mut ws = connect(server.local_addr(), "/probe").await;
        send_text(&mut ws, "ping-big").await;
        match next_frame(&mut ws).await {
            Some(Ok(Frame::Ping(p))) => assert_eq!(p.len(), 125),
            other => panic!("expected the 125-byte ping, got {other:?}"),
        }
        assert_eq!(probe.log.wait_for("ping-result").await, "ping-result Err(ControlPayloadTooLong)");
        assert_eq!(probe.log.wait_for("ping-ok").await, "ping-ok Ok(())");
    }

    async fn terminate_drops_without_a_close_frame(rt) {
        let (probe, server) = start_probe(rt, Limits::default()).await;
        let mut ws = connect(server.local_addr(), "/probe").await;
        send_text(&mut ws, "terminate").await;
        match next_frame(&mut ws).await {
            None | Some(Err(_)) => {}
            other => panic!("expected the socket to drop, got {other:?}"),
        }
        assert_eq!(probe.log.wait_for("close").await, "close 1006 ");
    }

    async fn handle_sends_from_another_task(rt) {
        let (probe, server) = start_probe(rt, Limits::default()).await;
        let mut ws = connect(server.local_addr(), "/probe").await;
        probe.log.wait_for("open").await;
        let handle = probe.handles.lock().unwrap()[0].clone();
        let sender = std::thread::spawn(move || {
            for i in 0..100 {
                assert!(handle.send(format!("from thread {i}")).is_accepted());
            }
            handle
        });
        for i in 0..100 {
            assert_eq!(next_message(&mut ws).await, Frame::text(format!("from thread {i}")));
        }
        let handle = sender.join().unwrap();
        handle.close(CloseCode::NORMAL, "done").unwrap();
        assert_eq!(expect_close(&mut ws).await, (1000, "done".to_owned()));
        assert_eq!(handle.send("late"), SendStatus::Closed);
    }

    async fn oversize_message_closes_with_1009(rt) {
        let (probe, server) = start_probe(rt, Limits::default().max_message_size(1024)).await;
        let addr = server.local_addr();
        let mut ws = connect(addr, "/probe").await;
        send_text(&mut ws, &"x".repeat(1000)).await;
        assert_eq!(next_message(&mut ws).await, Frame::text("x".repeat(1000)));
        ws.send(Frame::binary(vec![7u8; 100_000])).await.unwrap();
        assert_eq!(expect_close(&mut ws).await.0, 1009);
        assert_eq!(probe.log.wait_for("error").await, "error MessageTooLarge");
        assert_eq!(probe.log.wait_for("close").await, "close 1009 message too big");
        // Fragments add up: 3 × 500 bytes is over 1024 too.
        let mut ws = connect(addr, "/probe").await;
        use async_tungstenite::tungstenite::protocol::frame::{Frame as RawFrame, coding::{Data, OpCode}};
        let part = |op, fin| Frame::Frame(RawFrame::message(vec![b'a'; 500], op, fin));
        ws.send(part(OpCode::Data(Data::Text), false)).await.unwrap();
        ws.send(part(OpCode::Data(Data::Continue), false)).await.unwrap();
        ws.send(part(OpCode::Data(Data::Continue), true)).await.unwrap();
        assert_eq!(expect_close(&mut ws).await.0, 1009);
    }

    async fn invalid_utf8_closes_with_1007(rt) {
        let (probe, server) = start_probe(rt, Limits::default()).await;
        let mut ws = connect(server.local_addr(), "/probe").await;
        use async_tungstenite::tungstenite::protocol::frame::{Frame as RawFrame, coding::{Data, OpCode}};
        ws.send(Frame::Frame(RawFrame::message(vec![0xff, 0xfe], OpCode::Data(Data::Text), true)))
            .await
            .unwrap();
        assert_eq!(expect_close(&mut ws).await.0, 1007);
        assert_eq!(probe.log.wait_for("error").await, "error InvalidUtf8");
    }

    async fn a_failed_connection_gets_its_close_frame_then_fin(rt) {
        // A raw client: after a protocol failure the server must send the
        // close frame and half-close (FIN) on its own, so that the frame is
        // read rather than lost to a reset, and the client is not left waiting.
        let (_probe, server) = start_probe(rt, Limits::default()).await;
        let mut stream = async_io::Async::<std::net::TcpStream>::connect(server.local_addr()).await.unwrap();
        use futures_lite::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(upgrade_request("/probe", "").as_bytes()).await.unwrap();
        // A masked text frame (key 0) whose payload is not UTF-8.
        stream.write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe]).await.unwrap();
        let mut received = Vec::new();
        within(Duration::from_secs(3), "the server's FIN", stream.read_to_end(&mut received))
            .await
            .expect("read");
        let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
        let frame = &received[head_end..];
        assert_eq!(&frame[..4], &[0x88, frame[1], 0x03, 0xef], "a close frame with 1007, got {frame:?}");
    }

    async fn idle_timeout_pings_then_closes(rt) {
        let limits = Limits::default().idle_timeout(Some(Duration::from_millis(600)));
        let (probe, server) = start_probe(rt, limits).await;
        let addr = server.local_addr();
        // A client that reads (and so answers pings) stays open.
        let mut live = connect(addr, "/probe").await;
        let mut quiet = connect(addr, "/probe").await;
        // The reading client answers pings (the client library replies with
        // pongs as it reads): three of them mean it outlived the timeout.
        let mut pings = 0;
        while pings < 3 {
            match next_frame(&mut live).await {
                Some(Ok(Frame::Ping(_))) => pings += 1,
                other => panic!("live client got {other:?}"),
            }
        }
        // The one that never read gets a ping, then the close.
        match next_frame(&mut quiet).await {
            Some(Ok(Frame::Ping(_))) => {}
            other => panic!("expected a ping first, got {other:?}"),
        }
        assert_eq!(expect_close(&mut quiet).await, (1001, "idle timeout".to_owned()));
        assert_eq!(probe.log.wait_for("error").await, "error IdleTimeout");
        send_text(&mut live, "alive").await;
        assert_eq!(next_message(&mut live).await, Frame::text("alive"));
        assert_eq!(probe.log.count("error"), 1);
    }

    async fn handler_panic_closes_only_that_socket(rt) {
        let (probe, server) = start_probe(rt, Limits::default()).await;
        let addr = server.local_addr();
        let mut bystander = connect(addr, "/probe").await;
        let mut victim = connect(addr, "/probe").await;
        send_text(&mut victim, "first").await;
        assert_eq!(next_message(&mut victim).await, Frame::text("first"));
        send_text(&mut victim, "panic").await;
        assert_eq!(expect_close(&mut victim).await, (1011, "internal error".to_owned()));
        assert_eq!(probe.log.wait_for("error").await, "error HandlerPanic");
        for i in 0..10 {
            send_text(&mut bystander, &format!("still here {i}")).await;
            assert_eq!(next_message(&mut bystander).await, Frame::text(format!("still here {i}")));
        }
        let mut newcomer = connect(addr, "/probe").await;
        send_text(&mut newcomer, "hi").await;
        assert_eq!(next_message(&mut newcomer).await, Frame::text("hi"));
    }

    async fn slow_reader_gets_backpressure_then_drain(rt) {
        // The handler fills the socket until `send` reports backpressure; the
        // client reads nothing at first.
        #[derive(Clone, Default)]
        struct Flood {
            log: Log,
            handle: Arc<Mutex<Option<Handle>>>,
            accepted: Arc<Mutex<Vec<u32>>>,
        }
        impl Flood {
            fn fill(&self, ws: &Ws<u32>) -> u32 {
                let mut seq = ws.data;
                loop {
                    let mut payload = vec![0u8; 64 * 1024];
                    payload[..4].copy_from_slice(&seq.to_be_bytes());
                    let status = ws.send(Message::binary(payload));
                    self.log.push(format!("status {status:?}"));
                    match status {
                        SendStatus::Queued { .. } => self.accepted.lock().unwrap().push(seq),
                        SendStatus::Backpressure { .. } => {
                            self.accepted.lock().unwrap().push(seq);
                            // Over the limit: the next send is refused.
                            let extra = ws.send(Message::binary(vec![0u8; 8]));
                            self.log.push(format!("extra {extra:?}"));
                            return seq + 1;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                    seq += 1;
                }
            }
        }
        impl Handler for Flood {
            type Data = u32;
            async fn open(&self, ws: &mut Ws<u32>) {
                *self.handle.lock().unwrap() = Some(ws.handle());
                ws.data = self.fill(ws);
            }
            async fn drain(&self, ws: &mut Ws<u32>) {
                self.log.push("drain");
                // Keep the socket full for a while, then stop.
                if ws.data < 1000 {
                    ws.data = self.fill(ws);
                } else {
                    let _ = ws.close(1000u16, "done");
                }
            }
        }
        let flood = Flood::default();
        let mut app = App::new();
        app.ws("/flood", flood.clone()).limits(|l| l.backpressure_limit(256 * 1024));
        let server = rt.start(app).await;
        let mut ws = connect(server.local_addr(), "/flood").await;

        // Not reading: the server holds what it accepted, over its limit,
        // and refuses more.
        // Over the limit as soon as `send` says so, but `open` tries its
        // extra send just after: wait for that too.
        eventually("the queue over its limit, and the send after it", || {
            flood.handle.lock().unwrap().as_ref().is_some_and(|h| h.buffered_amount() > 256 * 1024)
                && flood.log.count("extra") > 0
        }).await;
        // Every send over the limit was refused. Read from one snapshot: a
        // drain may be filling again meanwhile, between a `Backpressure`
        // and its refused extra, which only the last entry can be.
        let log = flood.log.snapshot();
        for (i, entry) in log.iter().enumerate() {
            if entry.starts_with("status Backpressure")
                && let Some(next) = log.get(i + 1)
            {
                assert!(next.starts_with("extra Dropped"), "{entry}, then {next}");
            }
        }
        // 1000 messages of 64 KiB are far more than the limit and every
        // kernel buffer between us hold: while the peer reads nothing, the
        // flood must stall (no drain lets it go on). Only a pass depends on
        // the 1 s pause: a bad server can look stalled on a loaded machine,
        // a good one can never reach 1000.
        let mut seen = 0;
        loop {
            let accepted = flood.accepted.lock().unwrap().len();
            assert!(accepted < 1000, "{accepted} messages accepted while the peer read nothing");
            if accepted == seen {
                break;
            }
            seen = accepted;
            rt.sleep(Duration::from_secs(1)).await;
        }

        // Reading: drains fire and every accepted message arrives, in order.
        let mut received = Vec::new();
        loop {
            match next_frame(&mut ws).await {
                Some(Ok(Frame::Binary(b))) => received.push(u32::from_be_bytes(b[..4].try_into().unwrap())),
                Some(Ok(Frame::Close(_))) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(received, *flood.accepted.lock().unwrap(), "every accepted message, in order");
        assert!(received.len() >= 1000);
        // Each time over the limit ended in exactly one drain: no drain came
        // without a flush below the limit, and none was missed.
        let episodes = flood.log.count("status Backpressure");
        assert!(episodes >= 2, "{episodes}");
        assert_eq!(flood.log.count("drain"), episodes);
        assert_eq!(flood.log.count("extra Dropped"), episodes, "a send over the limit is dropped");
    }

    async fn oversize_frame_closes_with_1009(rt) {
        let (probe, server) = start_probe(rt, Limits::default().max_frame_size(100)).await;
        let mut ws = connect(server.local_addr(), "/probe").await;
        send_text(&mut ws, &"y".repeat(100)).await;
        assert_eq!(next_message(&mut ws).await, Frame::text("y".repeat(100)));
        send_text(&mut ws, &"y".repeat(101)).await;
        assert_eq!(expect_close(&mut ws).await.0, 1009);
        assert_eq!(probe.log.wait_for("error").await, "error MessageTooLarge");
    }

    async fn close_on_backpressure_closes_a_reader_that_stalls(rt) {
        struct Firehose(Log);
        impl Handler for Firehose {
            type Data = ();
            async fn open(&self, ws: &mut Ws<()>) {
                let handle = ws.handle();
                let log = self.0.clone();
                // Another thread keeps sending until the connection refuses.
                std::thread::spawn(move || loop {
                    match handle.send(Message::binary(vec![0u8; 16 * 1024])) {
                        SendStatus::Closed => return log.push("refused"),
                        _ => std::thread::sleep(Duration::from_micros(50)),
                    }
                });
            }
            async fn error(&self, _ws: &mut Ws<()>, err: &Error) {
                self.0.push(format!("error {:?}", err.kind()));
            }
            async fn close(&self, _ws: &mut Ws<()>, code: CloseCode, _reason: &str) {
                self.0.push(format!("close {code}"));
            }
        }
        let log = Log::default();
        let mut app = App::new();
        app.ws("/firehose", Firehose(log.clone()))
            .limits(|l| l.backpressure_limit(64 * 1024).close_on_backpressure(true).close_timeout(Duration::from_millis(300)));
        let server = rt.start(app).await;
        let _ws = connect(server.local_addr(), "/firehose").await;
        // The client never reads: the server must give up on it, not buffer forever.
        assert_eq!(log.wait_for("error").await, "error Backpressure");
        log.wait_for("refused").await;
        log.wait_for("close").await;
        eventually("the connection to be gone", || server.connections() == 0).await;
    }

    async fn rate_limits_close_or_drop(rt) {
        let probe = Probe::default();
        let mut app = probe_app(&probe, Limits::default());
        let per = Duration::from_millis(300);
        app.ws("/strict", probe.clone())
            .limits(move |l| l.rate_limit(Some(RateLimit::per(per).messages(3))));
        app.ws("/lenient", probe.clone())
            .limits(move |l| l.rate_limit(Some(RateLimit::per(per).bytes(30).drop_excess())));
        let server = rt.start(app).await;
        let addr = server.local_addr();

        // Over the limit: 1008, after the messages within it were answered.
        let mut ws = connect(addr, "/strict").await;
        for i in 0..5 {
            send_text(&mut ws, &format!("m{i}")).await;
        }
        for i in 0..3 {
            assert_eq!(next_message(&mut ws).await, Frame::text(format!("m{i}")));
        }
        assert_eq!(expect_close(&mut ws).await, (1008, "rate limit".to_owned()));
        assert_eq!(probe.log.wait_for("error").await, "error RateLimited");

        // Dropping instead: the excess never reaches `message`, the socket stays.
        let mut ws = connect(addr, "/lenient").await;
        for i in 0..5 {
            send_text(&mut ws, &format!("ten bytes{i}")).await;
        }
        for i in 0..3 {
            assert_eq!(next_message(&mut ws).await, Frame::text(format!("ten bytes{i}")));
        }
        rt.sleep(per + Duration::from_millis(50)).await;
        send_text(&mut ws, "next window").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("next window"));
        assert_eq!(probe.log.count("error RateLimited"), 2, "once for the strict socket, once for the window");
        assert_eq!(probe.log.count("message ten bytes"), 3);
    }

    async fn max_connections_gives_503(rt) {
        let (_probe, server) = start_probe(rt, Limits::default().max_connections(Some(2))).await;
        let addr = server.local_addr();
        let mut a = connect(addr, "/probe").await;
        let _b = connect(addr, "/probe").await;
        let r = raw(addr, &upgrade_request("/probe", "")).await;
        assert_eq!(status_of(&r), 503, "{r}");
        a.close(None).await.unwrap();
        eventually("a slot to free up", || server.connections() < 2).await;
        let _c = connect(addr, "/probe").await;
    }

    async fn graceful_shutdown_flushes_then_closes_1001(rt) {
        let probe = Probe::default();
        let server = rt.start(Server::new(probe_app(&probe, Limits::default())).shutdown_timeout(Duration::from_secs(5))).await;
        let addr = server.local_addr();
        let mut clients = Vec::new();
        for _ in 0..20 {
            clients.push(connect(addr, "/probe").await);
        }
        eventually("all opens", || probe.log.count("open") == 20).await;
        // Queue work from outside just before the shutdown: it must all arrive first.
        for h in probe.handles.lock().unwrap().iter() {
            for i in 0..50 {
                h.send(format!("queued {i}"));
            }
        }
        server.shutdown();
        for ws in &mut clients {
            for i in 0..50 {
                assert_eq!(next_message(ws).await, Frame::text(format!("queued {i}")));
            }
            assert_eq!(expect_close(ws).await.0, 1001);
        }
        for ws in &mut clients {
            finish_close(ws).await;
        }
        within(WAIT, "the server to stop", server.stopped()).await;
        assert_eq!(probe.log.count("close 1001"), 20, "{:?}", probe.log.snapshot());
        // New connections are refused once stopped.
        assert!(std::net::TcpStream::connect(addr).is_err());
    }

    async fn shutdown_closes_a_client_that_never_stops_sending(rt) {
        // Plain echo: the probe would log every one of the flood's messages.
        let server = rt
            .start(Server::new(examples::echo::app()).shutdown_timeout(Duration::from_secs(8)))
            .await;
        let ws = connect(server.local_addr(), "/echo").await;
        let (mut tx, mut rx) = ws.split();
        let flood = async {
            // Sends without pause until the server closes, yielding after each
            // send so the watcher below (same task) runs too.
            while tx.send(Frame::text("more")).await.is_ok() {
                futures_lite::future::yield_now().await;
            }
        };
        let watch = async {
            rt.sleep(Duration::from_millis(200)).await;
            let started = std::time::Instant::now();
            server.shutdown();
            loop {
                match within(WAIT, "frames", rx.next()).await {
                    Some(Ok(Frame::Close(Some(f)))) => return (u16::from(f.code), started.elapsed()),
                    Some(Ok(_)) => continue,
                    other => panic!("expected a close frame, got {other:?}"),
                }
            }
        };
        let (code, took) = futures_lite::future::or(async { flood.await; (0, Duration::ZERO) }, watch).await;
        assert_eq!(code, 1001);
        assert!(took < Duration::from_secs(2), "closed only after {took:?}: not by the grace");
    }

    async fn shutdown_terminates_peers_that_never_answer(rt) {
        let probe = Probe::default();
        let server = rt.start(Server::new(probe_app(&probe, Limits::default())).shutdown_timeout(Duration::from_millis(500))).await;
        // A raw client that completes the upgrade, then never reads or answers.
        let mut stream = async_io::Async::<std::net::TcpStream>::connect(server.local_addr()).await.unwrap();
        use futures_lite::AsyncWriteExt;
        stream.write_all(upgrade_request("/probe", "").as_bytes()).await.unwrap();
        probe.log.wait_for("open").await;
        let mut polite = connect(server.local_addr(), "/probe").await;
        let started = std::time::Instant::now();
        server.shutdown();
        assert_eq!(expect_close(&mut polite).await.0, 1001);
        finish_close(&mut polite).await;
        within(WAIT, "the server to stop", server.stopped()).await;
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(probe.log.count("close"), 2, "{:?}", probe.log.snapshot());
        drop(stream);
    }

    own_server_only: {
        async fn too_many_headers_get_431(rt) {
            let (_probe, server) = start_probe(rt, Limits::default()).await;
            let extra: String = (0..110).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
            let r = raw(server.local_addr(), &upgrade_request("/probe", &extra)).await;
            assert_eq!(status_of(&r), 431, "{r}");
            let huge = format!("X-Huge: {}\r\n", "h".repeat(20_000));
            let r = raw(server.local_addr(), &upgrade_request("/probe", &huge)).await;
            assert_eq!(status_of(&r), 431, "a 20 KB head is over the 16 KiB default: {r}");
            let r = raw(server.local_addr(), &upgrade_request("/probe", "X-One: 1\r\n")).await;
            assert_eq!(status_of(&r), 101, "{r}");
        }

        async fn sockets_over_the_connection_limit_get_a_canned_503(rt) {
            let probe = Probe::default();
            let server = rt.start(Server::new(probe_app(&probe, Limits::default())).connection_limit(Some(2))).await;
            let addr = server.local_addr();
            let a = connect(addr, "/probe").await;
            let _b = connect(addr, "/probe").await;
            eventually("two opens", || probe.log.count("open") == 2).await;
            // The third socket is answered and closed without being served.
            let over = raw(addr, "").await;
            assert_eq!(status_of(&over), 503, "{over}");
            drop(a);
            // The limit counts sockets: a slot is free once a's task has ended.
            eventually("a slot to free up", || server.tasks() < 2).await;
            let mut c = connect(addr, "/probe").await;
            send_text(&mut c, "in").await;
            assert_eq!(next_message(&mut c).await, Frame::text("in"));
        }

        async fn half_a_request_is_dropped_at_the_handshake_timeout(rt) {
            let probe = Probe::default();
            let mut app = probe_app(&probe, Limits::default());
            app.handshake_timeout(Duration::from_millis(300));
            let server = rt.start(app).await;
            let started = std::time::Instant::now();
            let mut stream = async_io::Async::<std::net::TcpStream>::connect(server.local_addr()).await.unwrap();
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            stream.write_all(b"GET /probe HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            let mut buf = [0u8; 512];
            let n = within(WAIT, "the server to drop the connection", stream.read(&mut buf)).await;
            // Dropped: end of stream or a reset, never an answer.
            assert!(matches!(n, Ok(0) | Err(_)), "the server answered {:?}", n.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()));
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(5), "{waited:?}");
        }

        async fn a_slowloris_that_keeps_trickling_is_still_dropped(rt) {
            let probe = Probe::default();
            let mut app = probe_app(&probe, Limits::default());
            app.handshake_timeout(Duration::from_millis(300));
            let server = rt.start(app).await;
            let started = std::time::Instant::now();
            let mut stream = async_io::Async::<std::net::TcpStream>::connect(server.local_addr()).await.unwrap();
            use futures_lite::AsyncWriteExt;
            stream.write_all(b"GET /probe HTTP/1.1\r\n").await.unwrap();
            // One header byte every 50 ms: always progressing, never finishing.
            let dropped = within(WAIT, "the server to drop the trickling client", async {
                for i in 0.. {
                    if stream.write_all(&[b'a' + (i % 26) as u8]).await.is_err() {
                        return i;
                    }
                    async_io::Timer::after(Duration::from_millis(50)).await;
                }
                unreachable!()
            })
            .await;
            let waited = started.elapsed();
            assert!(waited < Duration::from_secs(3), "dropped only after {waited:?} ({dropped} bytes)");
            assert_eq!(probe.log.count("open"), 0);
        }
    }
}

#[test]
fn malformed_and_conflicting_routes_fail_at_registration() {
    let mut app = App::new();
    let err = app.try_ws("no-slash", on_message(|_, _| {})).err().unwrap();
    assert_eq!(
        err.to_string(),
        "invalid route `no-slash`: a route must start with `/`"
    );
    app.ws("/chat/:room", on_message(|_, _| {}));
    let err = app
        .try_ws("/chat/:other", on_message(|_, _| {}))
        .err()
        .unwrap();
    assert!(
        err.to_string().starts_with("invalid route `/chat/:other`"),
        "{err}"
    );
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        app.ws("/x/*rest/y", on_message(|_, _| {}));
    }));
    assert!(panicked.is_err());
}
