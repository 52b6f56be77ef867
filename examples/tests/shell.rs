//! The shell example (one loop per connection) on every runtime: commands,
//! topics between shells, a timed count that leaves commands working, the
//! check before the upgrade, and the count of running shells, which drops
//! once a vanished client's loop has returned.

mod common;

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use futures_util::SinkExt;

async fn line(ws: &mut Client) -> String {
    match next_message(ws).await {
        Frame::Text(t) => t.to_string(),
        other => panic!("expected a line, got {other:?}"),
    }
}

async fn open(addr: std::net::SocketAddr, id: &str) -> Client {
    let mut ws = connect(addr, &format!("/term/{id}")).await;
    assert_eq!(line(&mut ws).await, format!("shell {id}: type help"));
    ws
}

async fn running(addr: std::net::SocketAddr) -> String {
    let res = raw(
        addr,
        "GET /term HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    res.rsplit("\r\n\r\n").next().unwrap_or("").to_owned()
}

runtime_tests! {
    async fn commands(rt) {
        let server = rt.start(examples::shell::app()).await;
        let mut ws = open(server.local_addr(), "a").await;
        send_text(&mut ws, "help").await;
        assert!(line(&mut ws).await.starts_with("commands: help, echo TEXT"));
        send_text(&mut ws, "echo hello there").await;
        assert_eq!(line(&mut ws).await, "hello there");
        send_text(&mut ws, "frobnicate").await;
        assert_eq!(line(&mut ws).await, r#"error: unknown command "frobnicate" (try help)"#);
        ws.send(Frame::Binary(vec![1].into())).await.unwrap();
        assert_eq!(line(&mut ws).await, "error: commands are text");
        send_text(&mut ws, "count 0").await;
        assert_eq!(line(&mut ws).await, "error: count takes a number from 1 to 1000");
        send_text(&mut ws, "exit").await;
        assert_eq!(line(&mut ws).await, "bye");
        assert_eq!(expect_close(&mut ws).await.0, 1000);
    }

    async fn topics_between_shells(rt) {
        let server = rt.start(examples::shell::app()).await;
        let addr = server.local_addr();
        let (mut a, mut b) = (open(addr, "a").await, open(addr, "b").await);
        send_text(&mut a, "join room").await;
        assert_eq!(line(&mut a).await, "joined room");
        send_text(&mut b, "say room hello").await;
        assert_eq!(line(&mut b).await, "said to 1 on room");
        assert_eq!(line(&mut a).await, "room: hello");
        send_text(&mut a, "leave room").await;
        assert_eq!(line(&mut a).await, "left room");
        send_text(&mut b, "say room anyone").await;
        assert_eq!(line(&mut b).await, "said to 0 on room");
    }

    async fn a_count_ticks_while_commands_still_run(rt) {
        let server = rt.start(examples::shell::app()).await;
        let mut ws = open(server.local_addr(), "a").await;
        // Sent together: the echo is answered long before the first tick.
        ws.feed(Frame::text("count 3")).await.unwrap();
        ws.feed(Frame::text("echo meanwhile")).await.unwrap();
        ws.flush().await.unwrap();
        let mut lines = Vec::new();
        for _ in 0..6 {
            lines.push(line(&mut ws).await);
        }
        assert_eq!(
            lines,
            ["counting down from 3", "meanwhile", "count 3", "count 2", "count 1", "count done"]
        );

        send_text(&mut ws, "count 1000").await;
        assert_eq!(line(&mut ws).await, "counting down from 1000");
        assert_eq!(line(&mut ws).await, "count 1000");
        send_text(&mut ws, "stop").await;
        // A tick may come before the stop is read; none after it.
        let mut said = line(&mut ws).await;
        while said.starts_with("count ") {
            said = line(&mut ws).await;
        }
        assert_eq!(said, "stopped");
        send_text(&mut ws, "echo after").await;
        assert_eq!(line(&mut ws).await, "after");
    }

    async fn bad_ids_are_refused_before_the_upgrade(rt) {
        let server = rt.start(examples::shell::app()).await;
        let addr = server.local_addr();
        let long = "x".repeat(33);
        for id in ["a%20b", long.as_str(), "semi;colon"] {
            let res = raw(addr, &upgrade_request(&format!("/term/{id}"), "")).await;
            assert_eq!(status_of(&res), 400, "{id}: {res}");
            assert!(res.ends_with("a terminal id is 1 to 32 letters, digits, - or _"), "{res}");
        }
    }

    async fn a_vanished_client_stops_counting_once_its_loop_returns(rt) {
        let server = rt.start(examples::shell::app()).await;
        let addr = server.local_addr();
        let mut a = open(addr, "a").await;
        let b = open(addr, "b").await;
        assert_eq!(running(addr).await, "2");
        // Mid-count, with no close frame: the loop must notice and return.
        send_text(&mut a, "count 1000").await;
        assert_eq!(line(&mut a).await, "counting down from 1000");
        drop(a);
        until_running(rt, addr, "1").await;
        drop(b);
        until_running(rt, addr, "0").await;
    }
}

/// Waits until `GET /term` says `n`.
async fn until_running(rt: Runtime, addr: std::net::SocketAddr, n: &str) {
    within(WAIT, &format!("{n} shells running"), async {
        while running(addr).await != n {
            rt.sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
}
