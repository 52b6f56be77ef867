//! Promises the README makes that no other test exercises, each on every
//! runtime: a custom backplane with its subscribe hooks, its start and stop
//! and the gaps it reports (`Handler::gap`, the event layer's
//! `wsway:gap`), `Handle::emit`,
//! `ServerHandle::terminate`, 1008 on the wire under `close_on_backpressure`,
//! the documented default limits, and middleware reading cookies and the
//! remote address.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use wsway::{
    App, Backplane, CloseCode, Events, Handle, Handler, Limits, LocalTopics, Message, Node,
    Published, Request, SendStatus, ServerHandle, Ws, middleware,
};

/// A backplane that records every call and delivers in-process; keeps the
/// `Node` it was started with.
#[derive(Clone, Default)]
struct Recording(Log, Arc<Mutex<Option<Node>>>);

impl Backplane for Recording {
    fn publish(
        &self,
        local: &LocalTopics,
        topic: &str,
        msg: Message,
        except: Option<u64>,
    ) -> Published {
        self.0.push(format!(
            "publish {topic} {}",
            msg.as_text().unwrap_or("<binary>")
        ));
        local.deliver(topic, msg, except)
    }

    fn subscribed(&self, topic: &str) {
        self.0.push(format!("subscribed {topic}"));
    }

    fn unsubscribed(&self, topic: &str) {
        self.0.push(format!("unsubscribed {topic}"));
    }

    fn start(&self, node: Node) {
        self.0.push("start");
        *self.1.lock().unwrap() = Some(node);
    }

    fn stop(&self) -> wsway::rt::BoxTask {
        self.0.push("stop");
        Box::pin(async {})
    }
}

/// Subscribes to `room` on open; publishes what it is sent; `leave`
/// unsubscribes; keeps handles for the tests.
#[derive(Clone, Default)]
struct Member {
    handles: Arc<Mutex<Vec<Handle>>>,
    log: Log,
}

impl Handler for Member {
    type Data = ();

    async fn open(&self, ws: &mut Ws<()>) {
        ws.subscribe("room");
        self.handles.lock().unwrap().push(ws.handle());
        ws.send("joined");
    }

    async fn message(&self, ws: &mut Ws<()>, msg: Message) {
        if msg.as_text() == Some("leave") {
            ws.unsubscribe("room");
            ws.send("left");
        } else {
            ws.publish("room", msg);
        }
    }

    async fn close(&self, _ws: &mut Ws<()>, code: CloseCode, _reason: &str) {
        self.log.push(format!("close {code}"));
    }

    async fn gap(&self, ws: &mut Ws<()>, topic: &str) {
        ws.send(format!("gap {topic}"));
    }
}

/// A server with `Member` on `/room`.
async fn start_members(rt: Runtime) -> (Member, ServerHandle) {
    let member = Member::default();
    let mut app = App::new();
    app.ws("/room", member.clone());
    (member, rt.start(app).await)
}

/// Joins `/room` and reads the greeting (after which `open` has run).
async fn join(addr: std::net::SocketAddr) -> Client {
    let mut ws = connect(addr, "/room").await;
    assert_eq!(next_message(&mut ws).await, Frame::text("joined"));
    ws
}

runtime_tests! {
    async fn a_custom_backplane_carries_publishes_and_hears_subscriptions(rt) {
        let backplane = Recording::default();
        let mut app = App::new();
        app.backplane(backplane.clone());
        app.ws("/room", Member::default());
        let server = rt.start(app).await;
        let addr = server.local_addr();
        let mut a = join(addr).await;
        let mut b = join(addr).await;
        // Only the first local subscriber is announced.
        assert_eq!(backplane.0.snapshot(), ["start", "subscribed room"]);
        send_text(&mut a, "hello").await;
        assert_eq!(next_message(&mut b).await, Frame::text("hello"));
        assert_eq!(backplane.0.snapshot(), ["start", "subscribed room", "publish room hello"]);
        // Only the last one to leave is.
        send_text(&mut a, "leave").await;
        assert_eq!(next_message(&mut a).await, Frame::text("left"));
        assert_eq!(backplane.0.count("unsubscribed"), 0);
        b.close(None).await.unwrap();
        finish_close(&mut b).await;
        eventually("the last subscriber to leave", || backplane.0.count("unsubscribed room") == 1).await;
        // Server-side publishes go through it too.
        server.publish("room", "notice");
        assert_eq!(backplane.0.count("publish room notice"), 1);
    }

    async fn a_backplane_starts_delivers_reports_gaps_and_stops_with_the_server(rt) {
        let backplane = Recording::default();
        let mut app = App::new();
        app.backplane(backplane.clone());
        app.ws("/room", Member::default());
        let mut events = Events::<()>::new();
        events.on_open(|ws| {
            ws.subscribe("room");
        });
        app.ws("/events", events);
        let server = rt.start(app).await;
        let addr = server.local_addr();
        assert_eq!(backplane.0.snapshot(), ["start"], "started once, before any connection");
        let node = backplane.1.lock().unwrap().clone().expect("started with a node");
        let mut raw = join(addr).await;
        let mut ev = connect(addr, "/events").await;
        eventually("two subscribers", || node.subscriber_count("room") == 2).await;

        // What another node published reaches the local subscribers.
        let r = node.deliver("room", Message::text("from elsewhere"));
        assert_eq!((r.delivered, r.forwarded), (2, wsway::Forwarded::Local));
        assert_eq!(next_message(&mut raw).await, Frame::text("from elsewhere"));
        assert_eq!(next_message(&mut ev).await, Frame::text("from elsewhere"));

        // A gap: the raw handler's callback runs, the event layer pushes wsway:gap.
        assert_eq!(node.gap("room"), 2);
        assert_eq!(node.gap("nobody"), 0);
        assert_eq!(next_message(&mut raw).await, Frame::text("gap room"));
        assert_eq!(next_json(&mut ev).await, serde_json::json!({"event": "wsway:gap", "data": {"topic": "room"}}));

        drop((raw, ev));
        server.shutdown();
        within(WAIT, "the server to stop", server.stopped()).await;
        assert_eq!(backplane.0.count("stop"), 1, "{:?}", backplane.0.snapshot());
        drop(server);
    }

    async fn handle_emit_sends_an_event_envelope(rt) {
        let (member, server) = start_members(rt).await;
        let mut ws = join(server.local_addr()).await;
        let handle = member.handles.lock().unwrap()[0].clone();
        let status = handle.emit("price", &serde_json::json!({"amount": 10})).expect("serializable");
        assert!(status.is_accepted(), "{status:?}");
        assert_eq!(next_json(&mut ws).await, serde_json::json!({"event": "price", "data": {"amount": 10}}));
    }

    async fn terminate_drops_every_socket_and_runs_every_close(rt) {
        let (member, server) = start_members(rt).await;
        let addr = server.local_addr();
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(join(addr).await);
        }
        server.terminate();
        for ws in &mut clients {
            // No close frame: the stream ends (or resets).
            match next_frame(ws).await {
                None | Some(Err(_)) => {}
                other => panic!("expected the socket to drop, got {other:?}"),
            }
        }
        within(WAIT, "the server to stop", server.stopped()).await;
        assert!(server.is_stopped());
        assert_eq!(member.log.snapshot(), ["close 1006", "close 1006", "close 1006"]);
        assert_eq!(server.connections(), 0);
        // Nothing listens any more.
        assert!(std::net::TcpStream::connect(addr).is_err(), "still accepting after terminate");
    }

    async fn close_on_backpressure_sends_1008(rt) {
        struct Firehose(Arc<Mutex<Option<Handle>>>);
        impl Handler for Firehose {
            type Data = ();
            async fn open(&self, ws: &mut Ws<()>) {
                *self.0.lock().unwrap() = Some(ws.handle());
            }
        }
        let slot = Arc::new(Mutex::new(None));
        let mut app = App::new();
        app.ws("/firehose", Firehose(slot.clone()))
            .limits(|l| l.backpressure_limit(64 * 1024).close_on_backpressure(true));
        let server = rt.start(app).await;
        let mut ws = connect(server.local_addr(), "/firehose").await;
        eventually("the open", || slot.lock().unwrap().is_some()).await;
        let handle = slot.lock().unwrap().clone().unwrap();
        // The client reads nothing until the server has refused a send.
        let mut sent = 0;
        loop {
            match handle.send(Message::binary(vec![0u8; 16 * 1024])) {
                SendStatus::Closed => break,
                _ => sent += 1,
            }
            assert!(sent < 1_000_000, "the server never gave up");
            if sent % 64 == 0 {
                rt.sleep(Duration::from_millis(1)).await;
            }
        }
        // Then reads: whatever got through, then the close frame with 1008.
        assert_eq!(expect_close(&mut ws).await.0, 1008);
    }

    async fn the_documented_default_limits_hold_on_the_wire(rt) {
        // README and core docs: 16 MiB messages, 1 MiB backpressure limit.
        let (member, server) = start_members(rt).await;
        let mut ws = join(server.local_addr()).await;
        let handle = member.handles.lock().unwrap()[0].clone();
        // 1 MiB: one byte over it in a single send reports backpressure
        // (the status is computed as the message is queued).
        let over = handle.send(Message::binary(vec![0u8; (1 << 20) + 1]));
        assert!(matches!(over, SendStatus::Backpressure { .. }), "{over:?}");
        // 16 MiB: exactly that much is one message (published to the first
        // member), one byte more closes with 1009.
        let mut big = join(server.local_addr()).await;
        big.send(Frame::binary(vec![1u8; 16 << 20])).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Frame::binary(vec![0u8; (1 << 20) + 1]));
        match next_message(&mut ws).await {
            Frame::Binary(b) => assert_eq!(b.len(), 16 << 20),
            other => panic!("expected the 16 MiB message, got {other:?}"),
        }
        big.send(Frame::binary(vec![1u8; (16 << 20) + 1])).await.unwrap();
        assert_eq!(expect_close(&mut big).await.0, 1009);
    }

    async fn middleware_reads_cookies_and_the_remote_address(rt) {
        #[derive(Clone)]
        struct Seen(String);
        struct Show;
        impl Handler for Show {
            type Data = ();
            async fn open(&self, ws: &mut Ws<()>) {
                let seen = ws.value::<Seen>().map(|s| s.0.clone()).unwrap_or_default();
                ws.send(seen);
            }
        }
        let mut app = App::new();
        app.middleware(middleware::from_fn(|req: &mut Request| {
            let session = req.cookie("session").unwrap_or("none").to_owned();
            let ip = req.remote_addr().ip();
            req.insert(Seen(format!("session={session} ip={ip}")));
            Ok(())
        }));
        app.ws("/show", Show);
        let server = rt.start(app).await;
        let addr = server.local_addr();
        let req = request_with(addr, "/show", &[("cookie", "theme=dark; session=abc123")]);
        let mut ws = connect_request(addr, req).await;
        assert_eq!(next_message(&mut ws).await, Frame::text("session=abc123 ip=127.0.0.1"));
        let mut bare = connect(addr, "/show").await;
        assert_eq!(next_message(&mut bare).await, Frame::text("session=none ip=127.0.0.1"));
    }
}

#[test]
fn the_documented_defaults_are_the_defaults() {
    let l = Limits::default();
    assert_eq!(l.get_max_message_size(), 16 << 20);
    assert_eq!(l.get_idle_timeout(), Some(Duration::from_secs(120)));
    assert_eq!(l.get_backpressure_limit(), 1 << 20);
}
