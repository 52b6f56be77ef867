//! Per-connection timers on every runtime: an interval pushes updates while
//! the connection lives and stops by itself when it closes; a one-shot
//! fires once; a cancelled timer stops.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use wsway::{App, Handler, Message, Timer, Ws};

#[derive(Clone, Default)]
struct Ticker {
    ticks: Arc<AtomicU32>,
}

impl Handler for Ticker {
    /// The interval, kept to cancel it on request.
    type Data = Option<Timer>;

    async fn open(&self, ws: &mut Ws<Option<Timer>>) {
        let ticks = self.ticks.clone();
        let timer = ws.every(Duration::from_millis(30), move |conn| {
            let n = ticks.fetch_add(1, Ordering::SeqCst) + 1;
            conn.send(format!("tick {n}"));
        });
        ws.data = Some(timer);
        ws.after(Duration::from_millis(10), |conn| {
            conn.send("once");
        });
    }

    async fn message(&self, ws: &mut Ws<Option<Timer>>, msg: Message) {
        if msg.as_text() == Some("stop") {
            if let Some(timer) = ws.data.take() {
                timer.cancel();
            }
            ws.send("stopped");
        }
    }
}

fn app(ticker: &Ticker) -> App {
    let mut app = App::new();
    app.ws("/ticks", ticker.clone());
    app
}

runtime_tests! {
    async fn an_interval_ends_with_its_connection(rt) {
        let ticker = Ticker::default();
        let server = rt.start(app(&ticker)).await;
        let mut ws = connect(server.local_addr(), "/ticks").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("once"));
        for n in 1..=3 {
            assert_eq!(next_message(&mut ws).await, Frame::text(format!("tick {n}")));
        }
        ws.close(None).await.unwrap();
        finish_close(&mut ws).await;
        eventually("the connection to end", || server.connections() == 0).await;
        // No cleanup was written anywhere: the interval must have stopped.
        let at_close = ticker.ticks.load(Ordering::SeqCst);
        rt.sleep(Duration::from_millis(200)).await;
        assert!(ticker.ticks.load(Ordering::SeqCst) <= at_close + 1, "the interval outlived its connection");
    }

    async fn a_cancelled_timer_stops(rt) {
        let ticker = Ticker::default();
        let server = rt.start(app(&ticker)).await;
        let mut ws = connect(server.local_addr(), "/ticks").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("once"));
        assert_eq!(next_message(&mut ws).await, Frame::text("tick 1"));
        send_text(&mut ws, "stop").await;
        loop {
            match next_message(&mut ws).await {
                Frame::Text(t) if t.as_str() == "stopped" => break,
                Frame::Text(t) if t.as_str().starts_with("tick") => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
        let after_stop = ticker.ticks.load(Ordering::SeqCst);
        rt.sleep(Duration::from_millis(200)).await;
        assert!(ticker.ticks.load(Ordering::SeqCst) <= after_stop + 1, "a cancelled interval kept ticking");
        send_text(&mut ws, "still here").await;
    }
}
