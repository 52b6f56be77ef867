//! Per-connection timers on every runtime: an interval pushes updates while
//! the connection lives and stops by itself when it closes; a one-shot
//! fires once, or never when its connection closes or it is cancelled
//! first; a cancelled timer stops.
//!
//! A timer's closure is dropped when its task ends, and a dropped closure
//! can never run again: the tests wait for that drop (a count), not for a
//! quiet spell.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use wsway::{App, Handler, Message, Timer, Ws};

/// Counts its own drop: the timer task holding it has ended.
struct Dropped(Arc<AtomicU32>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
struct Ticker {
    ticks: Arc<AtomicU32>,
    /// Interval closures dropped.
    interval_gone: Arc<AtomicU32>,
    /// One-shots that ran, and one-shot closures dropped (run or not).
    shots: Arc<AtomicU32>,
    shot_gone: Arc<AtomicU32>,
}

/// When the `/ticks` one-shot is due: within the test, so that one which
/// failed to end with its connection, or to stop when cancelled, would
/// run (or end) while the test looks.
const LATE: Duration = Duration::from_millis(500);

/// The interval, and the one-shot due at [`LATE`], kept to cancel them on
/// request.
#[derive(Default)]
struct Timers {
    interval: Option<Timer>,
    late: Option<Timer>,
}

impl Handler for Ticker {
    type Data = Timers;

    async fn open(&self, ws: &mut Ws<Timers>) {
        let ticks = self.ticks.clone();
        let guard = Dropped(self.interval_gone.clone());
        ws.data.interval = Some(ws.every(Duration::from_millis(30), move |conn| {
            let _ = &guard;
            let n = ticks.fetch_add(1, Ordering::SeqCst) + 1;
            conn.send(format!("tick {n}"));
        }));
        ws.after(Duration::from_millis(10), |conn| {
            conn.send("once");
        });
        let (shots, guard) = (self.shots.clone(), Dropped(self.shot_gone.clone()));
        ws.data.late = Some(ws.after(LATE, move |conn| {
            let _ = &guard;
            shots.fetch_add(1, Ordering::SeqCst);
            conn.send("late");
        }));
    }

    async fn message(&self, ws: &mut Ws<Timers>, msg: Message) {
        match msg.as_text() {
            Some("stop") => {
                if let Some(timer) = ws.data.interval.take() {
                    timer.cancel();
                }
                ws.send("stopped");
            }
            Some("cancel-late") => {
                if let Some(timer) = ws.data.late.take() {
                    timer.cancel();
                    ws.send(format!("cancelled {}", timer.is_cancelled()));
                }
            }
            _ => {
                ws.send(msg);
            }
        }
    }
}

/// Counts in `ws.data` from its timer; `reset` jumps the count to 1000.
struct Counter;

impl Handler for Counter {
    type Data = u32;

    async fn open(&self, ws: &mut Ws<u32>) {
        ws.every(Duration::from_millis(5), |ws| {
            ws.data += 1;
            ws.send(format!("n={}", ws.data));
        });
    }

    async fn message(&self, ws: &mut Ws<u32>, _msg: Message) {
        ws.data = 1000;
        ws.send("reset");
    }
}

fn app(ticker: &Ticker) -> App {
    let mut app = App::new();
    app.ws("/ticks", ticker.clone());
    app.ws("/count", Counter);
    app
}

runtime_tests! {
    async fn an_interval_ends_with_its_connection(rt) {
        let ticker = Ticker::default();
        let server = rt.start(app(&ticker)).await;
        let mut ws = connect(server.local_addr(), "/ticks").await;
        let opened = std::time::Instant::now();
        assert_eq!(next_message(&mut ws).await, Frame::text("once"));
        for n in 1..=3 {
            assert_eq!(next_message(&mut ws).await, Frame::text(format!("tick {n}")));
        }
        ws.close(None).await.unwrap();
        finish_close(&mut ws).await;
        // No cleanup was written anywhere: both timers must end by themselves,
        // the one-shot without running.
        eventually("the interval to end", || ticker.interval_gone.load(Ordering::SeqCst) == 1).await;
        eventually("the one-shot to end", || ticker.shot_gone.load(Ordering::SeqCst) == 1).await;
        let ended = opened.elapsed();
        assert!(ended < LATE, "the one-shot ended {ended:?} after open, when it was due, not with its connection");
        Runtime::Smol.sleep(LATE.saturating_sub(opened.elapsed()) + Duration::from_millis(100)).await;
        assert_eq!(ticker.shots.load(Ordering::SeqCst), 0, "a one-shot outlived its connection");
        // The timers may see the connection closed before its task has
        // finished unregistering it.
        eventually("the connection to be unregistered", || server.connections() == 0).await;
    }

    async fn a_cancelled_timer_stops(rt) {
        let ticker = Ticker::default();
        let server = rt.start(app(&ticker)).await;
        let mut ws = connect(server.local_addr(), "/ticks").await;
        let opened = std::time::Instant::now();
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
        eventually("the cancelled interval to end", || ticker.interval_gone.load(Ordering::SeqCst) == 1).await;
        // The connection lives on: an echo comes back, behind at most the one
        // tick that was already running when `cancel` was called.
        send_text(&mut ws, "still here").await;
        let mut late_ticks = 0;
        loop {
            match next_message(&mut ws).await {
                Frame::Text(t) if t.as_str() == "still here" => break,
                Frame::Text(t) if t.as_str().starts_with("tick") => late_ticks += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(late_ticks <= 1, "{late_ticks} ticks after the cancel");
        // A cancelled one-shot never runs, and ends at once.
        send_text(&mut ws, "cancel-late").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("cancelled true"));
        eventually("the cancelled one-shot to end", || ticker.shot_gone.load(Ordering::SeqCst) == 1).await;
        let ended = opened.elapsed();
        assert!(ended < LATE, "the cancelled one-shot ended {ended:?} after open, when it was due");
        // Past when it was due: it never ran, and the connection goes on.
        Runtime::Smol.sleep(LATE.saturating_sub(opened.elapsed()) + Duration::from_millis(100)).await;
        send_text(&mut ws, "after").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("after"));
        assert_eq!(ticker.shots.load(Ordering::SeqCst), 0, "a cancelled one-shot ran");
        assert_eq!(server.connections(), 1);
    }

    async fn ticks_read_and_change_the_connections_data(rt) {
        let server = rt.start(app(&Ticker::default())).await;
        let mut ws = connect(server.local_addr(), "/count").await;
        assert_eq!(next_message(&mut ws).await, Frame::text("n=1"));
        assert_eq!(next_message(&mut ws).await, Frame::text("n=2"));
        send_text(&mut ws, "reset").await;
        // Ticks run on the connection's task, between callbacks: each one
        // sees the count the last left, and the reset, once made, is what
        // the very next tick counts from.
        let mut last = 2;
        loop {
            let Frame::Text(t) = next_message(&mut ws).await else { panic!("not text") };
            if t.as_str() == "reset" {
                break;
            }
            last += 1;
            assert_eq!(t.as_str(), format!("n={last}"));
        }
        assert_eq!(next_message(&mut ws).await, Frame::text("n=1001"));
        assert_eq!(next_message(&mut ws).await, Frame::text("n=1002"));
    }
}
