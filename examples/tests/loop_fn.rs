//! Loop-style handlers (`ws_fn`) on every runtime: one async function owns
//! the connection, and keeps every guarantee of the callback form: nothing
//! is read until `recv` asks, typed JSON with malformed frames reported,
//! send status and the drain, limits, topics, timers, the shutdown's 1001,
//! a cancellation when the peer goes or the server stops, panics contained,
//! middleware and a check before the upgrade. Then the shell example.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_tungstenite::tungstenite::Message as Frame;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCode;
use common::*;
use futures_util::SinkExt;
use wsway::{App, Limits, Message, SendStatus, StatusCode, middleware, text, ws_fn};

#[derive(serde::Deserialize)]
struct Double {
    n: i64,
}

/// What the test tells a waiting loop: go on.
#[derive(Clone, Default)]
struct Go(Arc<AtomicBool>);

/// Attached by the route's middleware, read by the loop.
#[derive(Clone)]
struct Tag(&'static str);

/// One app with a route per behaviour; `log` hears what the loops saw.
fn app(log: &Log, go: &Go) -> App {
    let mut app = App::new();

    app.ws_fn("/json", |_req, mut socket| async move {
        while let Some(read) = socket.recv_json::<Double>().await {
            match read {
                Ok(Double { n }) => {
                    let _ = socket.send_json(&serde_json::json!({ "double": 2 * n }));
                }
                Err(e) => {
                    socket.send(format!("error: {e}"));
                }
            }
        }
    });

    let (l, g) = (log.clone(), go.clone());
    app.ws_fn("/gate", move |_req, mut socket| {
        let (log, go) = (l.clone(), g.clone());
        async move {
            let first = socket.recv().await;
            log.push(format!(
                "got {}",
                first.as_ref().and_then(Message::as_text).unwrap_or("")
            ));
            while !go.0.load(Ordering::SeqCst) {
                socket.sleep(Duration::from_millis(5)).await;
            }
            log.push(format!(
                "state {:?} cancelled {}",
                socket.ready_state(),
                socket.cancellation().is_cancelled()
            ));
            while let Some(msg) = socket.recv().await {
                log.push(format!("got {}", msg.as_text().unwrap_or("")));
            }
            let (code, _) = socket
                .closed_with()
                .unwrap_or((wsway::CloseCode(0), String::new()));
            log.push("recv ended");
            log.push(format!("closed {}", code.as_u16()));
        }
    });

    app.ws_fn("/slow", |_req, mut socket| async move {
        let mut n = 0u32;
        while let Some(msg) = socket.recv().await {
            n += 1;
            if n % 10 == 0 {
                socket.sleep(Duration::from_millis(2)).await;
            }
            socket.send(msg);
        }
    });

    let l = log.clone();
    app.ws_fn("/work", move |_req, mut socket| {
        let log = l.clone();
        async move {
            // Work started for the connection, on a thread of its own: it
            // ends when the connection does.
            let cancel = socket.cancellation();
            let worker_log = log.clone();
            std::thread::spawn(move || {
                futures_lite::future::block_on(cancel.cancelled());
                worker_log.push("worker stopped");
            });
            socket.send("started");
            while let Some(msg) = socket.recv().await {
                socket.send(msg);
            }
            let (code, _) = socket.closed().await;
            log.push(format!("work returned {}", code.as_u16()));
        }
    });

    // The socket handed to a thread of its own: every wake-up crosses
    // tasks (the driver's, and the thread's executor).
    let l = log.clone();
    app.ws_fn("/moved", move |_req, mut socket| {
        let log = l.clone();
        async move {
            std::thread::spawn(move || {
                futures_lite::future::block_on(async move {
                    while let Some(msg) = socket.recv().await {
                        socket.send(msg);
                    }
                    let (code, _) = socket.closed().await;
                    log.push(format!("moved ended {}", code.as_u16()));
                })
            });
        }
    });

    app.ws_fn("/panic", |_req, mut socket| async move {
        while let Some(msg) = socket.recv().await {
            if msg.as_text() == Some("boom") {
                panic!("boom on purpose");
            }
            socket.send(msg);
        }
    });

    app.ws_fn("/return", |_req, socket| async move {
        socket.send("hi");
    });

    app.ws_fn("/keep", |_req, socket| async move {
        socket.subscribe("news");
        socket.send("kept");
        socket.keep_open();
    });

    let l = log.clone();
    app.ws_fn("/flood", move |_req, mut socket| {
        let log = l.clone();
        async move {
            let Some(_go) = socket.recv().await else {
                return;
            };
            let chunk = vec![7u8; 16 * 1024];
            let mut sent = 0;
            loop {
                match socket.send_binary(chunk.clone()) {
                    SendStatus::Queued { .. } => sent += 1,
                    SendStatus::Backpressure { .. } => {
                        sent += 1;
                        break;
                    }
                    other => {
                        log.push(format!("flood refused: {other:?}"));
                        return;
                    }
                }
            }
            let dropped = socket.send_binary(chunk.clone());
            log.push(format!("backpressured after {sent}, then {dropped:?}"));
            socket.drained().await;
            socket.send(format!("drained after {sent}"));
            while socket.recv().await.is_some() {}
        }
    })
    .limits(|l| l.backpressure_limit(64 * 1024));

    let l = log.clone();
    app.ws_fn("/small", move |_req, mut socket| {
        let log = l.clone();
        async move {
            while socket.recv().await.is_some() {}
            let code = socket.closed_with().map(|(c, _)| c.as_u16());
            let kind = socket.error().map(|e| e.kind());
            log.push(format!("small ended {code:?} {kind:?}"));
        }
    })
    .limits(|l: Limits| l.max_message_size(1024));

    // `recv` raced, every time round, against a future that is ready on
    // its second poll: most `recv`s are dropped unfinished. Cancel-safe,
    // none takes a message with it.
    app.ws_fn("/race", |_req, mut socket| async move {
        loop {
            let next = futures_lite::future::or(async { Some(socket.recv().await) }, async {
                futures_lite::future::yield_now().await;
                None
            })
            .await;
            match next {
                Some(Some(msg)) => {
                    socket.send(msg);
                }
                Some(None) => break,
                None => {}
            }
        }
    });

    // Functions that ignore the end: they are dropped at the cleanup
    // timeout, and leave their topic then.
    for (path, cleanup) in [
        ("/stubborn", None),
        ("/stubborn-quick", Some(Duration::from_millis(300))),
    ] {
        let l = log.clone();
        let route = ws_fn(move |_req, mut socket| {
            let log = l.clone();
            async move {
                socket.subscribe(path);
                socket.send("subscribed");
                while socket.recv().await.is_some() {}
                log.push(format!("{path} cleanup"));
                socket.sleep(Duration::from_secs(10)).await;
                log.push(format!("{path} outlived its cleanup"));
            }
        });
        app.ws(
            path,
            match cleanup {
                Some(t) => route.cleanup_timeout(t),
                None => route,
            },
        );
    }

    app.ws(
        "/guarded/:id",
        ws_fn(|req, socket| async move {
            let tag = req.value::<Tag>().map_or("none", |t| t.0);
            socket.send(format!("{} {tag}", req.param("id").unwrap_or("")));
            let mut socket = socket;
            while socket.recv().await.is_some() {}
        })
        .before_upgrade(|req| match req.param("id") {
            Some("x") => Err(text(StatusCode::FORBIDDEN, "not x")),
            _ => Ok(()),
        }),
    )
    .middleware(middleware::from_fn(|req| {
        req.insert(Tag("from middleware"));
        Ok(())
    }));
    app
}

async fn text_of(ws: &mut Client) -> String {
    match next_message(ws).await {
        Frame::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

runtime_tests! {
    async fn typed_json_and_malformed_frames_reported(rt) {
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let mut ws = connect(server.local_addr(), "/json").await;
        send_text(&mut ws, r#"{"n": 21}"#).await;
        assert_eq!(text_of(&mut ws).await, r#"{"double":42}"#);
        send_text(&mut ws, "not json").await;
        let error = text_of(&mut ws).await;
        assert!(error.starts_with("error: the message is not the JSON expected"), "{error}");
        ws.send(Frame::Binary(vec![1, 2, 3].into())).await.unwrap();
        assert_eq!(
            text_of(&mut ws).await,
            "error: expected a JSON text message, got a binary one of 3 bytes"
        );
        // Still open after both, and in order.
        send_text(&mut ws, r#"{"n": -2}"#).await;
        assert_eq!(text_of(&mut ws).await, r#"{"double":-4}"#);
        server.shutdown();
        assert_eq!(expect_close(&mut ws).await.0, 1001);
        finish_close(&mut ws).await;
        within(WAIT, "the server to stop", server.stopped()).await;
    }

    async fn nothing_is_read_until_recv_asks(rt) {
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let mut ws = connect(server.local_addr(), "/gate").await;
        send_text(&mut ws, "one").await;
        send_text(&mut ws, "two").await;
        ws.close(Some(CloseFrame { code: WireCode::Normal, reason: "".into() }))
            .await
            .unwrap();
        log.wait_for("got one").await;
        // Time for a driver that reads ahead to see the close frame queued
        // behind "two" (it must not: the loop has not asked).
        rt.sleep(Duration::from_millis(100)).await;
        go.0.store(true, Ordering::SeqCst);
        log.wait_for("closed").await;
        assert_eq!(
            log.snapshot(),
            [
                "got one",
                "state Open cancelled false",
                "got two",
                "recv ended",
                "closed 1000",
            ]
        );
        finish_close(&mut ws).await;
    }

    async fn bytes_stay_in_the_socket_until_recv_asks(rt) {
        // The function holds "one" and does not call `recv` again: the
        // client's socket fills up and stays full.
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let mut stream = upgraded_raw(server.local_addr(), "/gate").await;
        futures_lite::AsyncWriteExt::write_all(&mut stream, &masked_frame(0x81, b"one")).await.unwrap();
        log.wait_for("got one").await;
        let filled = fill_until_stalled(&stream, &masked_frame(0x81, &[b'x'; 60_000])).await;
        assert!(filled.is_ok(), "the server read {filled:?} bytes while the function did not ask");
        assert_eq!(log.count("got"), 1, "{:?}", log.snapshot());
        // Once it asks again, reading resumes.
        go.0.store(true, Ordering::SeqCst);
        eventually("the next message to be read", || log.count("got") >= 2).await;
    }

    async fn recv_is_cancel_safe(rt) {
        const MESSAGES: usize = 300;
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let mut ws = connect(server.local_addr(), "/race").await;
        for i in 0..MESSAGES {
            send_text(&mut ws, &format!("m{i}")).await;
        }
        for i in 0..MESSAGES {
            assert_eq!(text_of(&mut ws).await, format!("m{i}"), "a message lost to a dropped recv");
        }
    }

    async fn a_function_that_ignores_the_end_is_dropped_at_its_cleanup_timeout(rt) {
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let ends = [("/stubborn", Duration::from_secs(1)), ("/stubborn-quick", Duration::from_millis(300))]
            .map(|(path, timeout)| {
                let (log, server) = (log.clone(), server.clone());
                async move {
                    let mut ws = connect(server.local_addr(), path).await;
                    assert_eq!(text_of(&mut ws).await, "subscribed");
                    ws.close(None).await.unwrap();
                    log.wait_for(&format!("{path} cleanup")).await;
                    let ended = std::time::Instant::now();
                    // Its topic is left when the function is dropped, not before.
                    eventually("the function to be dropped", || server.subscriber_count(path) == 0).await;
                    let took = ended.elapsed();
                    assert!(took >= timeout - Duration::from_millis(20), "{path}: dropped after {took:?}, cleanup timeout {timeout:?}");
                    assert!(took < timeout + Duration::from_millis(500), "{path}: dropped after {took:?}, cleanup timeout {timeout:?}");
                }
            });
        let [default, quick] = ends;
        futures_lite::future::zip(Box::pin(default), Box::pin(quick)).await;
        assert_eq!(log.count("/stubborn outlived"), 0, "{:?}", log.snapshot());
        assert_eq!(log.count("/stubborn-quick outlived"), 0, "{:?}", log.snapshot());
        eventually("every connection to end", || server.connections() == 0).await;
    }

    async fn a_slow_loop_loses_and_reorders_nothing(rt) {
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let mut ws = connect(server.local_addr(), "/slow").await;
        for i in 0..300 {
            ws.feed(Frame::Text(format!("m{i}").into())).await.unwrap();
        }
        ws.flush().await.unwrap();
        for i in 0..300 {
            assert_eq!(text_of(&mut ws).await, format!("m{i}"));
        }
    }

    async fn cancellation_fires_when_the_peer_goes_and_at_shutdown(rt) {
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        // The peer vanishes: no close frame, the TCP connection just ends.
        let mut gone = connect(server.local_addr(), "/work").await;
        assert_eq!(text_of(&mut gone).await, "started");
        drop(gone);
        log.wait_for("work returned").await;
        eventually("the worker to stop", || log.count("worker stopped") == 1).await;
        assert_eq!(log.count("work returned 1006"), 1, "{:?}", log.snapshot());

        // The server shuts down: 1001, then `recv` ends and the worker stops.
        let mut ws = connect(server.local_addr(), "/work").await;
        assert_eq!(text_of(&mut ws).await, "started");
        send_text(&mut ws, "still here").await;
        assert_eq!(text_of(&mut ws).await, "still here");
        server.shutdown();
        assert_eq!(expect_close(&mut ws).await.0, 1001);
        finish_close(&mut ws).await;
        eventually("the second worker to stop", || log.count("worker stopped") == 2).await;
        log.wait_for("work returned").await;
        eventually("the loop to return", || log.count("work returned") == 2).await;
        assert_eq!(log.count("work returned 1001"), 1, "{:?}", log.snapshot());
        within(WAIT, "the server to stop", server.stopped()).await;
    }

    async fn a_socket_moved_to_another_thread_works_the_same(rt) {
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let mut ws = connect(server.local_addr(), "/moved").await;
        for i in 0..200 {
            ws.feed(Frame::Text(format!("m{i}").into())).await.unwrap();
        }
        ws.flush().await.unwrap();
        for i in 0..200 {
            assert_eq!(text_of(&mut ws).await, format!("m{i}"));
        }
        ws.close(None).await.unwrap();
        finish_close(&mut ws).await;
        log.wait_for("moved ended").await;
        assert_eq!(log.snapshot(), ["moved ended 1005"]);
    }

    async fn a_panic_closes_its_connection_with_1011_only(rt) {
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let mut other = connect(server.local_addr(), "/panic").await;
        let mut ws = connect(server.local_addr(), "/panic").await;
        send_text(&mut ws, "fine").await;
        assert_eq!(text_of(&mut ws).await, "fine");
        send_text(&mut ws, "boom").await;
        assert_eq!(expect_close(&mut ws).await.0, 1011);
        send_text(&mut other, "still fine").await;
        assert_eq!(text_of(&mut other).await, "still fine");
        let mut fresh = connect(server.local_addr(), "/panic").await;
        send_text(&mut fresh, "new").await;
        assert_eq!(text_of(&mut fresh).await, "new");
    }

    async fn returning_closes_unless_kept_open(rt) {
        let (log, go) = (Log::default(), Go::default());
        let app = app(&log, &go);
        let topics = app.topics();
        let server = rt.start(app).await;

        let mut ws = connect(server.local_addr(), "/return").await;
        assert_eq!(text_of(&mut ws).await, "hi");
        assert_eq!(expect_close(&mut ws).await.0, 1000);

        let mut kept = connect(server.local_addr(), "/keep").await;
        assert_eq!(text_of(&mut kept).await, "kept");
        assert_eq!(topics.publish("news", "first").delivered, 1);
        assert_eq!(text_of(&mut kept).await, "first");
        // Its messages are read and dropped; it stays open and subscribed.
        send_text(&mut kept, "anyone?").await;
        kept.send(Frame::Ping(b"p".to_vec().into())).await.unwrap();
        assert_eq!(next_message_or_pong(&mut kept).await, Frame::Pong(b"p".to_vec().into()));
        assert_eq!(topics.publish("news", "second").delivered, 1);
        assert_eq!(text_of(&mut kept).await, "second");
        kept.close(None).await.unwrap();
        finish_close(&mut kept).await;
        eventually("the kept socket to leave its topic", || {
            topics.publish("news", "third").delivered == 0
        })
        .await;
    }

    async fn send_status_and_drain(rt) {
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let mut ws = connect(server.local_addr(), "/flood").await;
        send_text(&mut ws, "go").await;
        let said = log.wait_for("backpressured after").await;
        // 16 KiB chunks until over 64 KiB: the fifth goes over, the sixth
        // is refused.
        assert_eq!(said, "backpressured after 5, then Dropped { buffered: 81920 }");
        let sent = 5;
        for _ in 0..sent {
            match next_message(&mut ws).await {
                Frame::Binary(b) => assert_eq!(b.len(), 16 * 1024),
                other => panic!("expected a chunk, got {other:?}"),
            }
        }
        assert_eq!(text_of(&mut ws).await, format!("drained after {sent}"));
    }

    async fn limits_close_and_the_loop_hears_why(rt) {
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let mut ws = connect(server.local_addr(), "/small").await;
        send_text(&mut ws, &"x".repeat(2048)).await;
        assert_eq!(expect_close(&mut ws).await.0, 1009);
        finish_close(&mut ws).await;
        // The server lingers until the client hangs up too.
        drop(ws);
        log.wait_for("small ended").await;
        assert_eq!(log.snapshot(), ["small ended Some(1009) Some(MessageTooLarge)"]);
    }

    async fn middleware_and_the_check_before_the_upgrade(rt) {
        let (log, go) = (Log::default(), Go::default());
        let server = rt.start(app(&log, &go)).await;
        let addr = server.local_addr();
        let mut ws = connect(addr, "/guarded/a").await;
        assert_eq!(text_of(&mut ws).await, "a from middleware");
        let refused = raw(addr, &upgrade_request("/guarded/x", "")).await;
        assert_eq!(status_of(&refused), 403, "{refused}");
        assert!(refused.ends_with("not x"), "{refused}");
    }
}

/// The next frame that is not a message the server pushed meanwhile.
async fn next_message_or_pong(ws: &mut Client) -> Frame {
    loop {
        match next_frame(ws).await {
            Some(Ok(Frame::Pong(p))) => return Frame::Pong(p),
            Some(Ok(Frame::Text(_) | Frame::Binary(_))) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}
