//! A subscriber that stops reading while the server keeps publishing: its
//! memory stays bounded by the backpressure limit, the configured policy
//! applies to it, and the other subscribers of the same topic keep
//! receiving everything, in order.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use futures_util::future::join_all;
use wsway::{App, CloseCode, Error, Handle, Handler, Message, ServerHandle, Ws};

const LIMIT: usize = 256 << 10;
const SIZE: usize = 16 << 10;
const COUNT: u32 = 1000;

#[derive(Clone, Default)]
struct Subscriber {
    handles: Arc<Mutex<Vec<Handle>>>,
    log: Log,
}

impl Handler for Subscriber {
    type Data = ();

    async fn open(&self, ws: &mut Ws<()>) {
        ws.subscribe("feed");
        self.handles.lock().unwrap().push(ws.handle());
    }

    /// Echoes: a reply proves the connection is still open.
    async fn message(&self, ws: &mut Ws<()>, msg: Message) {
        ws.send(msg);
    }

    async fn error(&self, _ws: &mut Ws<()>, err: &Error) {
        self.log.push(format!("error {:?}", err.kind()));
    }

    async fn close(&self, _ws: &mut Ws<()>, code: CloseCode, _reason: &str) {
        self.log.push(format!("close {code}"));
    }
}

async fn start(rt: Runtime, close: bool) -> (Subscriber, ServerHandle) {
    let sub = Subscriber::default();
    let mut app = App::new();
    app.ws("/feed", sub.clone())
        .limits(move |l| l.backpressure_limit(LIMIT).close_on_backpressure(close));
    (sub, rt.start(app).await)
}

/// Messages in a burst: 8 × 16 KiB stays under the limit, so a reader that
/// has caught up before each burst is never over it.
const BURST: u32 = 8;

/// Publishes COUNT numbered messages in bursts, each once every reading
/// client has received the one before (counts, not a clock, set the pace),
/// and checks the stalled subscriber's queue after every publish.
async fn publish_all(
    server: &ServerHandle,
    slow: &Handle,
    read: &[Arc<AtomicU32>],
) -> (usize, usize) {
    let (mut dropped, mut max_buffered) = (0, 0);
    for seq in 0..COUNT {
        if seq % BURST == 0 {
            within(WAIT, "the readers to catch up", async {
                while read.iter().any(|r| r.load(Ordering::Acquire) < seq) {
                    async_io::Timer::after(Duration::from_millis(1)).await;
                }
            })
            .await;
        }
        let mut payload = vec![0u8; SIZE];
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        dropped += server.publish("feed", Message::binary(payload)).dropped;
        max_buffered = max_buffered.max(slow.buffered_amount());
    }
    (dropped, max_buffered)
}

async fn read_all(ws: &mut Client, read: Arc<AtomicU32>) {
    for seq in 0..COUNT {
        match next_message(ws).await {
            Frame::Binary(b) => assert_eq!(u32::from_be_bytes(b[..4].try_into().unwrap()), seq),
            other => panic!("expected message {seq}, got {other:?}"),
        }
        read.store(seq + 1, Ordering::Release);
    }
}

/// Runs the flood; returns the handler's log and the clients, still open.
async fn scenario(rt: Runtime, close: bool) -> (Subscriber, Vec<Client>) {
    let (sub, server) = start(rt, close).await;
    let addr = server.local_addr();
    // The stalled subscriber opens alone first, so its handle is known to
    // be the first (the order of concurrent opens is not).
    let slow = connect(addr, "/feed").await;
    eventually("the stalled subscriber's open", || {
        sub.handles.lock().unwrap().len() == 1
    })
    .await;
    let slow_handle = sub.handles.lock().unwrap()[0].clone();
    let mut fast = vec![connect(addr, "/feed").await, connect(addr, "/feed").await];
    eventually("three subscribers", || server.subscriber_count("feed") == 3).await;

    let progress: Vec<Arc<AtomicU32>> = fast.iter().map(|_| Arc::default()).collect();
    let readers = join_all(
        fast.iter_mut()
            .zip(&progress)
            .map(|(ws, p)| read_all(ws, p.clone())),
    );
    let ((dropped, max_buffered), _) = futures_lite::future::zip(
        publish_all(&server, &slow_handle, &progress),
        within(Duration::from_secs(60), "the fast subscribers", readers),
    )
    .await;
    // The stalled one never holds more than the limit and one message.
    assert!(
        max_buffered <= LIMIT + SIZE,
        "buffered {max_buffered} over {LIMIT} + {SIZE}"
    );
    assert!(dropped > 0, "the stalled subscriber must have refused some");
    fast.push(slow);
    (sub, fast)
}

runtime_tests! {
    async fn a_stalled_subscriber_is_bounded_and_others_get_everything(rt) {
        let (sub, clients) = scenario(rt, false).await;
        // Dropping is the policy: no error, every connection stays.
        assert_eq!(sub.log.snapshot(), Vec::<String>::new());
        drop(clients);
    }

    async fn close_policy_closes_only_the_stalled_subscriber(rt) {
        let (sub, clients) = scenario(rt, true).await;
        assert_eq!(sub.log.wait_for("error").await, "error Backpressure");
        sub.log.wait_for("close").await;
        // The others are still open: each gets an echo back.
        let mut clients = clients;
        for ws in clients.iter_mut().take(2) {
            send_text(ws, "still open?").await;
            assert_eq!(next_message(ws).await, Frame::text("still open?"));
        }
        assert_eq!(sub.log.snapshot(), ["error Backpressure", "close 1006"], "only the stalled one closed");
        drop(clients);
    }
}
