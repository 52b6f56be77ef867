//! Topic pub/sub on every runtime: subscribe, publish to others or to all,
//! counts, reports, and subscriptions that end with the connection.

mod common;

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use wsway::{Accept, App, CloseCode, Handler, Message, Published, Request, Response, Ws};

/// `/t/:topic`: subscribes on open; a text message `pub X` publishes X to
/// the others, `all X` to everyone, `leave` unsubscribes, `subs` reports.
struct Member;

impl Handler for Member {
    type Data = String;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<String>, Response> {
        Ok(Accept::new(req.params()?))
    }

    async fn open(&self, ws: &mut Ws<String>) {
        let topic = ws.data.clone();
        assert!(ws.subscribe(&topic));
        assert!(!ws.subscribe(&topic), "subscribing twice is a no-op");
        ws.subscribe("everyone");
    }

    async fn message(&self, ws: &mut Ws<String>, msg: Message) {
        let text = msg.as_text().unwrap_or_default().to_owned();
        let topic = ws.data.clone();
        if let Some(rest) = text.strip_prefix("pub ") {
            let r = ws.publish(&topic, rest.to_owned());
            ws.send(format!(
                "report {} {} {}",
                r.delivered, r.backpressured, r.dropped
            ));
        } else if let Some(rest) = text.strip_prefix("all ") {
            ws.topics().publish(&topic, rest.to_owned());
        } else if text == "leave" {
            assert!(ws.unsubscribe(&topic));
            assert!(!ws.is_subscribed(&topic));
            ws.send("left");
        } else if text == "subs" {
            let mut subs: Vec<&str> = ws.subscriptions().collect();
            subs.sort();
            ws.send(subs.join(","));
        }
    }

    async fn close(&self, ws: &mut Ws<String>, _code: CloseCode, _reason: &str) {
        // Still subscribed here: a farewell reaches the room.
        let topic = ws.data.clone();
        ws.publish(&topic, "bye");
    }
}

/// `/greet/:topic`: `open` sends a greeting, then subscribes.
struct Greeter;

impl Handler for Greeter {
    type Data = String;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<String>, Response> {
        Ok(Accept::new(req.params()?))
    }

    async fn open(&self, ws: &mut Ws<String>) {
        ws.send("hello");
        let topic = ws.data.clone();
        ws.subscribe(&topic);
    }
}

fn app() -> App {
    let mut app = App::new();
    app.ws("/t/:topic", Member);
    app.ws("/greet/:topic", Greeter);
    // Room for everything a slow reader is sent (see below).
    app.ws("/slow/:topic", Member)
        .limits(|l| l.backpressure_limit(64 << 20));
    app
}

/// The `i`th message of the slow reader's test: its number, then filler
/// whose letter and length depend on `i`, so a frame cut short, spliced
/// into another or out of place shows.
fn numbered(i: usize) -> String {
    let letter = char::from(b'a' + (i % 26) as u8);
    let len = 500 + i * 79_193 % 600_000;
    format!("{i:05} {}", letter.to_string().repeat(len))
}

runtime_tests! {
    async fn open_has_run_when_the_client_sees_the_101(rt) {
        // Another client publishes the moment the upgrade completes, with
        // no reply awaited first: the new member is already subscribed, and
        // what its `open` sent comes first.
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let mut publisher = connect(addr, "/t/lobby").await;
        for i in 0..1000 {
            let mut member = connect(addr, "/greet/lobby").await;
            send_text(&mut publisher, &format!("pub {i}")).await;
            assert_eq!(next_message(&mut member).await, Frame::text("hello"), "round {i}");
            assert_eq!(next_message(&mut member).await, Frame::text(i.to_string()), "round {i}");
            drop(member);
        }
    }

    async fn publish_reaches_the_other_subscribers(rt) {
        let app = app();
        let topics = app.topics();
        let server = rt.start(app).await;
        let addr = server.local_addr();
        let mut a = connect(addr, "/t/red").await;
        let mut b = connect(addr, "/t/red").await;
        let mut c = connect(addr, "/t/blue").await;
        eventually("three subscribers", || server.subscriber_count("everyone") == 3).await;
        assert_eq!(server.subscriber_count("red"), 2);
        assert_eq!(topics.subscriber_count("blue"), 1);

        send_text(&mut a, "subs").await;
        assert_eq!(next_message(&mut a).await, Frame::text("everyone,red"));

        // To the others only: b gets it, a gets just its report.
        send_text(&mut a, "pub hello").await;
        assert_eq!(next_message(&mut b).await, Frame::text("hello"));
        assert_eq!(next_message(&mut a).await, Frame::text("report 1 0 0"));

        // To everyone subscribed, the sender included.
        send_text(&mut a, "all hi").await;
        assert_eq!(next_message(&mut a).await, Frame::text("hi"));
        assert_eq!(next_message(&mut b).await, Frame::text("hi"));

        // From outside any connection: the server handle and the app's topics.
        let r = server.publish("everyone", "broadcast");
        assert_eq!(r, Published { delivered: 3, backpressured: 0, dropped: 0, forwarded: wsway::Forwarded::Local, position: None });
        for ws in [&mut a, &mut b, &mut c] {
            assert_eq!(next_message(ws).await, Frame::text("broadcast"));
        }
        assert_eq!(topics.publish("nobody", "x"), Published::default());

        // Closing ends subscriptions, after a farewell from `close`.
        c.close(None).await.unwrap();
        eventually("blue to empty", || server.subscriber_count("blue") == 0).await;
        eventually("everyone to lose c", || server.subscriber_count("everyone") == 2).await;
        a.close(None).await.unwrap();
        assert_eq!(next_message(&mut b).await, Frame::text("bye"));
        eventually("red to lose a", || server.subscriber_count("red") == 1).await;
        // Unsubscribing ends one subscription and keeps the others.
        send_text(&mut b, "leave").await;
        assert_eq!(next_message(&mut b).await, Frame::text("left"));
        assert_eq!(server.subscriber_count("red"), 0);
        assert_eq!(server.subscriber_count("everyone"), 1);
    }

    async fn a_large_publish_reaches_two_hundred_subscribers(rt) {
        // 200 subscribers each receive the same 64 KiB message; the report
        // counts them all. (That their queues share one buffer is checked
        // where the queues can be seen: core's pubsub unit tests.)
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let mut subs = Vec::new();
        for _ in 0..200 {
            subs.push(connect(addr, "/t/big").await);
        }
        eventually("200 subscribers", || server.subscriber_count("big") == 200).await;
        let payload = "z".repeat(64 * 1024);
        let r = server.publish("big", payload.clone());
        assert_eq!(r.delivered, 200);
        for ws in &mut subs {
            assert_eq!(next_message(ws).await, Frame::text(payload.clone()));
        }
    }

    async fn a_slow_reader_gets_every_publish_whole_and_in_order(rt) {
        // Publishes from outside the connection are written to its socket
        // by the publishing task while its driver is not writing; what the
        // socket does not take is finished and queued by the driver. 18 MB
        // in frames of up to 600 kB, for a reader that does not read at
        // first, overflow the socket's buffers in the middle of a frame,
        // and both paths take turns, half of them while it reads.
        // Its own replies ("subs") go through its queue in between.
        let app = app();
        let topics = app.topics();
        let server = rt.start(app).await;
        let mut ws = connect(server.local_addr(), "/slow/feed").await;
        eventually("subscribed", || server.subscriber_count("feed") == 1).await;
        const N: usize = 60;
        for i in 0..N / 2 {
            assert_eq!(topics.publish("feed", numbered(i)).delivered, 1, "message {i}");
        }
        let publisher = std::thread::spawn(move || {
            for i in N / 2..N {
                assert_eq!(topics.publish("feed", numbered(i)).delivered, 1, "message {i}");
            }
        });
        // Its replies were queued behind what was published before them,
        // and may come last.
        let (mut next, mut asked, mut replies) = (0, 0, 0);
        while next < N || replies < 3 {
            if next % 20 == 10 && asked == next / 20 {
                send_text(&mut ws, "subs").await;
                asked += 1;
            }
            match next_message(&mut ws).await {
                Frame::Text(t) if t.as_str() == "everyone,feed" => replies += 1,
                Frame::Text(t) => {
                    assert!(t.as_str() == numbered(next), "message {next} is not whole and next: {:?}", &t.as_str()[..12.min(t.len())]);
                    next += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        publisher.join().unwrap();
        send_text(&mut ws, "subs").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("everyone,feed"), "nothing more");
    }

    async fn bench_rooms_include_the_sender(rt) {
        let server = rt.start(examples::bench::app()).await;
        let addr = server.local_addr();
        let mut a = connect(addr, "/room/r1").await;
        let mut b = connect(addr, "/room/r1").await;
        let mut other = connect(addr, "/room/r2").await;
        eventually("two members", || server.subscriber_count("r1") == 2).await;
        send_text(&mut a, "m1").await;
        assert_eq!(next_message(&mut a).await, Frame::text("m1"));
        assert_eq!(next_message(&mut b).await, Frame::text("m1"));
        send_text(&mut other, "m2").await;
        assert_eq!(next_message(&mut other).await, Frame::text("m2"));
        let mut e = connect(addr, "/echo").await;
        send_text(&mut e, "echo").await;
        assert_eq!(next_message(&mut e).await, Frame::text("echo"));
    }
}
