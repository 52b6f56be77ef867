//! A deploy restart, for real: the echo example runs as its own process, 200
//! clients each send messages, and SIGTERM arrives right behind them. Every
//! reply must arrive before the close frame, every client must see 1001, and
//! the process must exit 0 well before the shutdown deadline.

mod common;

use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use futures_util::future::join_all;

const CLIENTS: usize = 200;
const MESSAGES: usize = 20;

runtime_tests! {
    async fn sigterm_flushes_every_reply_then_closes_1001(rt) {
        let mut example = Example::spawn(env!("CARGO_BIN_EXE_echo"), rt);
        let addr = example.addr;
        let mut clients = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            clients.push(connect(addr, "/echo").await);
        }
        // Every client sends its messages; SIGTERM follows at once, before
        // any reply has been read.
        for (c, ws) in clients.iter_mut().enumerate() {
            for m in 0..MESSAGES {
                send_text(ws, &format!("client {c} message {m}")).await;
            }
        }
        let signalled = Instant::now();
        example.signal("-TERM");

        let outcomes = join_all(clients.iter_mut().enumerate().map(|(c, ws)| async move {
            for m in 0..MESSAGES {
                assert_eq!(next_message(ws).await, Frame::text(format!("client {c} message {m}")));
            }
            let close = expect_close(ws).await;
            finish_close(ws).await;
            close
        }))
        .await;
        for (code, reason) in outcomes {
            assert_eq!((code, reason.as_str()), (1001, "server shutting down; retry-in=5000"));
        }
        eprintln!("{CLIENTS} clients closed with 1001 {:?} after SIGTERM", signalled.elapsed());
        let status = example.wait_exit(Duration::from_secs(9));
        assert!(status.success(), "exit status {status}");
        let took = signalled.elapsed();
        assert!(took < Duration::from_secs(5), "shutdown took {took:?}, deadline is 10 s");
    }

    async fn sigint_shuts_the_chat_example_down_too(rt) {
        let mut example = Example::spawn(env!("CARGO_BIN_EXE_chat"), rt);
        let addr = example.addr;
        let mut members = Vec::new();
        for i in 0..5 {
            members.push(chat_join(addr, "lobby", &format!("m{i}")).await);
        }
        example.signal("-INT");
        for ws in &mut members {
            assert_eq!(expect_close(ws).await.0, 1001);
            finish_close(ws).await;
        }
        let status = example.wait_exit(Duration::from_secs(9));
        assert!(status.success(), "exit status {status}");
    }
}
