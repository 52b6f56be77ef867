//! `wsway::testing` itself: the whole upgrade path without a port, refusals
//! with their status and headers, limits and close codes, shared topics,
//! timeouts, and a client that vanishes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use futures_lite::future::block_on;
use wsway::testing::{ClientError, TestServer};
use wsway::{App, CloseCode, Handler, Limits, Message, Origins, StatusCode, Ws, on_message};

/// `/room`: subscribes to "room" in `open`; `close N reason` closes with
/// that code; anything else is published to the room. Logs each close.
struct Room {
    closes: Arc<Mutex<Vec<u16>>>,
}

impl Handler for Room {
    type Data = ();

    async fn open(&self, ws: &mut Ws<()>) {
        ws.subscribe("room");
    }

    async fn message(&self, ws: &mut Ws<()>, msg: Message) {
        let text = msg.as_text().unwrap_or_default().to_owned();
        if let Some(rest) = text.strip_prefix("close ") {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let _ = ws.close(CloseCode(code.parse().unwrap_or(4000)), reason);
        } else {
            ws.publish("room", text);
        }
    }

    async fn close(&self, _ws: &mut Ws<()>, code: CloseCode, _reason: &str) {
        self.closes.lock().unwrap().push(code.0);
    }
}

fn app(closes: Arc<Mutex<Vec<u16>>>) -> App {
    let mut app = App::new();
    app.ws("/room", Room { closes });
    app.ws(
        "/echo",
        on_message(|ws, msg| {
            ws.send(msg);
        }),
    )
    .limits(|l| l.max_message_size(16));
    app.ws(
        "/guarded",
        on_message(|ws, msg| {
            ws.send(msg);
        }),
    )
    .limits(|l: Limits| l.origins(Origins::same_host().allow(["https://app.example.com"])));
    app
}

#[test]
fn clients_share_topics_and_see_close_codes() {
    let closes = Arc::default();
    let server = TestServer::new(app(Arc::clone(&closes)));
    let mut a = server.connect("/room").unwrap();
    let mut b = server.connect("/room").unwrap();
    assert_eq!(server.handle().subscriber_count("room"), 2);
    // To the others: `a` does not hear itself.
    a.send("hi all").unwrap();
    assert_eq!(b.recv_text().unwrap(), "hi all");
    // From outside any connection: everyone.
    assert_eq!(server.handle().publish("room", "news").delivered, 2);
    assert_eq!(a.recv_text().unwrap(), "news");
    assert_eq!(b.recv_text().unwrap(), "news");

    b.send("close 4321 done here").unwrap();
    let (code, reason) = b.expect_close().unwrap();
    assert_eq!((code.0, reason.as_str()), (4321, "done here"));
    let err = b.send("too late").unwrap_err();
    assert_eq!(err.close_code(), Some(CloseCode(4321)), "{err}");
    server.handle().publish("room", "after");
    assert_eq!(a.recv_text().unwrap(), "after");
}

#[test]
fn limits_and_origins_apply() {
    let server = TestServer::new(app(Arc::default()));
    let mut echo = server.connect("/echo").unwrap();
    echo.send("sixteen bytes ok").unwrap();
    assert_eq!(echo.recv_text().unwrap(), "sixteen bytes ok");
    echo.send("seventeen bytes!!").unwrap();
    let (code, _) = echo.expect_close().unwrap();
    assert_eq!(code, CloseCode::TOO_BIG);

    let err = server
        .request("/guarded")
        .header("origin", "https://evil.example")
        .connect()
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN), "{err}");
    let mut ok = server
        .request("/guarded")
        .header("origin", "https://app.example.com")
        .connect()
        .unwrap();
    ok.send(vec![1u8, 2, 3]).unwrap();
    assert_eq!(ok.recv().unwrap().as_bytes(), [1, 2, 3]);

    // Not a WebSocket request at all: the upgrade answer tells.
    let res = server.get("/echo").unwrap();
    assert_eq!(res.status, StatusCode::UPGRADE_REQUIRED, "{}", res.body);
}

#[test]
fn waits_end_at_the_timeout_and_a_vanished_client_is_lost() {
    let closes: Arc<Mutex<Vec<u16>>> = Arc::default();
    let server = TestServer::new(app(closes.clone())).timeout(Duration::from_millis(100));
    let mut quiet = server.connect("/room").unwrap();
    let started = Instant::now();
    let err = quiet.recv().unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(100));

    // Dropped without a close frame: the server sees an abrupt end (1006).
    drop(quiet);
    block_on(common::eventually("the close callback", || {
        !closes.lock().unwrap().is_empty()
    }));
    assert_eq!(*closes.lock().unwrap(), [1006]);
    assert_eq!(server.handle().connections(), 0);
}

#[test]
fn an_app_can_run_on_its_own_runtime() {
    // A handler that needs tokio's timers runs on tokio; the client still
    // blocks the test's own thread.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _inside = tokio.enter();
    struct Later;
    impl Handler for Later {
        type Data = ();
        async fn message(&self, ws: &mut Ws<()>, msg: Message) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            ws.send(msg);
        }
    }
    let mut app = App::new();
    app.ws("/later", Later);
    let server = TestServer::with_runtime(app, wsway_tokio::runtime());
    let mut client = server.connect("/later").unwrap();
    client.send("tick").unwrap();
    assert_eq!(client.recv_text().unwrap(), "tick");
}

/// What a test of an app's resume needs: pushes with their positions, the
/// client's last positions (its own publishes included, through
/// `wsway:pos`), a reconnect that resumes from them, and a check that
/// nothing more comes, on every runtime.
mod resume {
    use std::time::Duration;

    use examples::served_tests;
    use wsway::testing::Push;
    use wsway::{App, EventError, Events, Retention, StatusCode};

    fn board() -> App {
        let mut events = Events::<()>::new();
        events.on_open(|ws| {
            let team = format!("board:{}", ws.param("team").unwrap_or_default());
            ws.subscribe(&team);
        });
        events.on("move", |ws, card: String| -> Result<(), EventError> {
            let team = format!("board:{}", ws.param("team").unwrap_or_default());
            ws.publish_event(&team, "moved", &card)?;
            Ok(())
        });
        let mut app = App::new();
        app.ws("/board/:team", events)
            .middleware(wsway::middleware::from_fn(|req| match req.param("team") {
                Some("closed") => Err(wsway::text(StatusCode::FORBIDDEN, "this board is closed")),
                _ => Ok(()),
            }));
        app.history("board:*", Retention::messages(100));
        app
    }

    served_tests! {
        fn a_client_resumes_from_its_positions(served) {
            let server = served.serve(board());
            let join = |path: &str| server.request(path).protocols(&["wsway.v1"]).connect().unwrap();
            let (mut ann, mut bob) = (join("/board/red"), join("/board/red"));
            // Bob's move reaches ann with its position; ann's reaches bob,
            // and ann keeps its position too.
            bob.emit::<()>("move", &"card 1").unwrap();
            let push: Push<String> = ann.next_push_with_position("moved").unwrap();
            assert_eq!((push.data.as_str(), push.topic.as_deref()), ("card 1", Some("board:red")));
            ann.emit::<()>("move", &"card 2").unwrap();
            assert_eq!(bob.next_push::<String>("moved").unwrap(), "card 2");
            let at = bob.positions()["board:red"].clone();
            assert!(at.ends_with(":2"), "{at}");
            // ann's own move never comes to her; her position is past it.
            ann.expect_silence(Duration::from_millis(100)).unwrap();
            assert_eq!(ann.positions()["board:red"], at);

            // Away while bob moves twice; back, she gets both, then silence.
            let kept = ann.positions().clone();
            drop(ann);
            bob.emit::<()>("move", &"card 3").unwrap();
            bob.emit::<()>("move", &"card 4").unwrap();
            let mut back = server.request("/board/red").protocols(&["wsway.v1"]).resume(&kept).connect().unwrap();
            assert_eq!(back.next_push::<String>("moved").unwrap(), "card 3");
            assert_eq!(back.next_push::<String>("moved").unwrap(), "card 4");
            back.expect_silence(Duration::from_millis(100)).unwrap();
            // A push breaks the silence; nothing at all is a timeout.
            bob.emit::<()>("move", &"card 5").unwrap();
            let broke = back.expect_silence(Duration::from_secs(1)).unwrap_err();
            assert!(broke.to_string().contains("card 5"), "{broke}");
            back.set_timeout(Duration::from_millis(100));
            assert!(back.next_push::<String>("moved").unwrap_err().is_timeout());

            // A refusal's status, body and headers, without a match.
            let refused = server.request("/board/closed").connect().unwrap_err();
            assert_eq!(refused.status(), Some(StatusCode::FORBIDDEN));
            assert_eq!(refused.body(), Some("this board is closed"));
            assert!(refused.headers().is_some_and(|h| h.contains_key("content-type")));
        }
    }
}
