//! Micro-benchmarks for the hot paths the load kit cannot isolate: the
//! opening-handshake check, the publish fan-out, and the event layer's
//! per-call work.
//!
//! ```sh
//! cargo bench -p wsway --bench core
//! ```

use divan::Bencher;
use wsway::__bench::{Room, event_call, handshake};
use wsway::Message;
use wsway::http::{HeaderMap, HeaderValue};

fn main() {
    divan::main();
}

fn upgrade_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "127.0.0.1:3000"),
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-protocol", "chat.v2, chat.v1"),
        ("origin", "http://127.0.0.1:3000"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

/// Method, headers, key checks and the SHA-1 accept key.
#[divan::bench]
fn handshake_check(bencher: Bencher) {
    let headers = upgrade_headers();
    bencher.bench(|| handshake(divan::black_box(&headers)));
}

/// One 64-byte message to N subscribers: queue pushes and wake-ups, no copy.
#[divan::bench(args = [1, 100, 1000])]
fn publish(bencher: Bencher, subscribers: u64) {
    let mut room = Room::new(subscribers);
    let msg = Message::text("x".repeat(64));
    bencher.bench_local(|| {
        let report = room.publish(divan::black_box(msg.clone()));
        room.drain();
        report
    });
}

/// One event-layer call: envelope, typed data, ack (what `Events` adds to a
/// raw text message, before the handler runs).
#[divan::bench]
fn event_envelope(bencher: Bencher) {
    let call =
        r#"{"event":"chat:send","data":{"room":"lobby","text":"hello there, everyone"},"id":42}"#;
    bencher.bench(|| event_call(divan::black_box(call)));
}
