//! What the fuzz targets (`fuzz/`) drive: the request checks, and a whole
//! connection fed arbitrary bytes (the codec's own targets are
//! `wsway-protocol`'s). Kept here so they reach private code.

mod sim;
mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::connection::codec::Codec;
use crate::connection::driver::{self, Start};
use crate::connection::registry::Registry;
use crate::connection::socket::{Info, Ws};
use crate::delivery::outbox::Shared;
use crate::policy::limits::Limits;
use crate::runtime::Rt;
use crate::{EventError, Events, Handler, Message, Origins, on_message};
use sim::{Scripted, Sim, Then};

/// Parses `data` as a request head the way hyper does (httparse), then runs
/// every check an upgrade request goes through. Must never panic.
pub fn handshake(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(data) else {
        return;
    };
    let mut map = http::HeaderMap::new();
    for h in req.headers.iter() {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            http::HeaderValue::from_bytes(h.value),
        ) else {
            return;
        };
        map.append(name, value);
    }
    let method = req
        .method
        .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok())
        .unwrap_or(http::Method::GET);
    let version = if req.version == Some(0) {
        http::Version::HTTP_10
    } else {
        http::Version::HTTP_11
    };
    let _ = crate::web::handshake::check(&method, version, &map);
    let _ = crate::web::handshake::offered_protocols(&map);
    let _ = Origins::same_host().permits(&map);
    let _ = Origins::same_host()
        .allow(["https://*.example.com"])
        .permits(&map);
    let path = req.path.unwrap_or("/");
    // Bearer tokens from every source, on a request built from this head.
    if let Ok(uri) = path.parse::<http::Uri>() {
        let mut head = http::Request::new(()).into_parts().0;
        head.uri = uri;
        head.headers = map.clone();
        let mut request = crate::web::request::Request::new(
            head,
            ([127, 0, 0, 1], 9).into(),
            Vec::new(),
            Default::default(),
        );
        let _ = crate::policy::auth::fuzz_token(&mut request);
    }
    // Typed extraction of whatever the path and query hold.
    let query = path.split_once('?').map_or("", |(_, q)| q);
    let pairs = crate::web::extract::parse_query(query);
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        id: Option<u32>,
        name: Option<String>,
        flag: Option<bool>,
    }
    let _ = crate::web::extract::from_pairs::<Typed>(&pairs, crate::web::extract::Source::Query);
    let _ =
        crate::web::extract::from_pairs::<(String, u64)>(&pairs, crate::web::extract::Source::Path);
}

/// Runs a connection whose peer sends `data` with an echo handler and small
/// limits. The first byte picks how the bytes are cut into reads (1 to 64
/// at a time, so frames split at every boundary) and, with its top bit,
/// whether the peer then hangs up or goes silent (so that the idle ping,
/// the idle timeout and the close timeout run). Must never panic, grow
/// without bound or outlive its timeouts; every frame the server writes
/// must be one a server may send, and a silent peer must get a close frame.
pub fn connection(data: &[u8]) {
    let first = data.first().copied().unwrap_or(0);
    let chunk = 1 + first as usize % 64;
    let then = if first & 0x80 != 0 {
        Then::Stall
    } else {
        Then::HangUp
    };
    let handler = on_message(|ws: &mut Ws<()>, msg: Message| {
        ws.send(msg);
    });
    let out = run(data.to_vec(), chunk, then, handler);
    let frames = wire::server_frames(&out);
    if then == Then::Stall {
        assert!(
            frames.iter().any(|f| f.opcode == wire::CLOSE),
            "a silent peer was never sent a close frame"
        );
    }
}

/// Runs an [`Events`] connection whose peer sends the messages in `data`
/// (split at `0xFF` bytes; each one a text frame when it is UTF-8, binary
/// otherwise), with a per-connection interval and one-shot timer. Then the
/// peer closes, or, when the input ends in `0xFE`, goes silent until the
/// idle timeout. Must never panic; every call with an `id` gets exactly one
/// reply carrying it, in order, unless the server closed first; every
/// message the server sends is an envelope. (No handler panics on purpose:
/// libFuzzer aborts on any panic, even a caught one; the tests cover
/// handler panics.)
pub fn events(data: &[u8]) {
    let (data, then) = match data.split_last() {
        Some((0xFE, rest)) => (rest, Then::Stall),
        _ => (data, Then::HangUp),
    };
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    for msg in data.split(|b| *b == 0xFF) {
        let text = std::str::from_utf8(msg).ok();
        let opcode = if text.is_some() {
            wire::TEXT
        } else {
            wire::BINARY
        };
        wire::masked_frame(&mut frames, opcode, msg);
        expected.extend(text.and_then(call_id));
    }
    if then == Then::HangUp {
        // A clean close: the server answers every call before its reply.
        wire::masked_frame(&mut frames, wire::CLOSE, &1000u16.to_be_bytes());
    }
    let app_closed = Arc::new(AtomicBool::new(false));
    let out = run(frames, 4096, then, events_app(app_closed.clone()));
    let app_closed = app_closed.load(Ordering::Relaxed);
    check_replies(&wire::server_frames(&out), &expected, app_closed);
}

/// The event layer the `events` target drives; `closed` is set when its
/// group check asks to close (calls after that go unanswered by design).
fn events_app(closed: Arc<AtomicBool>) -> Events<u32> {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        n: u32,
        tags: Vec<String>,
        nested: Option<Box<Typed>>,
    }
    let mut events = Events::<u32>::new();
    events.on_open(|ws| {
        ws.every(Duration::from_millis(300), |conn| {
            let _ = conn.emit("tick", &());
        });
        ws.after(Duration::from_millis(500), |conn| {
            let _ = conn.emit("once", &());
        });
    });
    events.on("count", |ws, by: u32| {
        ws.data = ws.data.saturating_add(by);
        Ok::<_, EventError>(ws.data)
    });
    events.on("typed", |_ws, t: Typed| Ok::<_, EventError>(t.tags.len()));
    events.on("fail", |_ws, code: String| {
        Err::<(), _>(EventError::new(code, "failed"))
    });
    events.group("a", |a| {
        a.middleware(move |ws, _| match ws.data % 2 {
            0 => Ok(()),
            _ => {
                closed.store(true, Ordering::Relaxed);
                Err(EventError::new("odd", "odd count").close(4001, "odd"))
            }
        });
        a.on("echo", |ws, v: serde_json::Value| {
            ws.emit("echoed", &v)?;
            Ok::<_, EventError>(v)
        });
    });
    events
}

/// The `id` a reply to this message must carry, read independently of the
/// event layer: a JSON object whose only `id` is an integer or a string.
fn call_id(text: &str) -> Option<serde_json::Value> {
    // `data` stays raw: its depth is the handler's business, not the
    // envelope's.
    #[derive(serde::Deserialize)]
    struct Call<'a> {
        #[serde(default)]
        id: Option<serde_json::Value>,
        #[serde(default)]
        #[allow(dead_code)]
        event: Option<serde_json::Value>,
        #[serde(borrow, default)]
        #[allow(dead_code)]
        data: Option<&'a serde_json::value::RawValue>,
    }
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return None;
    }
    let id = serde_json::from_str::<Call>(text).ok()?.id?;
    match &id {
        serde_json::Value::String(_) => Some(id),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(id),
        _ => None,
    }
}

/// Every server message is an envelope (a push `{event, data}` or a reply
/// `{id, ok, ..}`); replies that carry an id match the calls that had one,
/// one for one and in order, all of them unless the server closed the
/// connection for a reason of its own: the app asked to (`app_closed`; the
/// peer's own close may still cross it, so the reply is then 1000) or the
/// close frame says so.
fn check_replies(frames: &[wire::ServerFrame], expected: &[serde_json::Value], app_closed: bool) {
    let mut answered = Vec::new();
    let mut closed_by_server = app_closed;
    for f in frames {
        match f.opcode {
            wire::TEXT => {
                assert!(f.fin, "envelopes are never fragmented");
                let v: serde_json::Value =
                    serde_json::from_slice(&f.payload).expect("every server message is JSON");
                let obj = v.as_object().expect("every server message is an object");
                if obj.contains_key("event") {
                    continue;
                }
                assert!(obj["ok"].is_boolean(), "a reply without ok: {v}");
                if !obj["id"].is_null() {
                    answered.push(obj["id"].clone());
                }
            }
            wire::CLOSE => closed_by_server |= wire::close_code(f) != 1000,
            wire::BINARY => panic!("the event layer never sends binary"),
            _ => {}
        }
    }
    assert!(
        answered.len() <= expected.len() && answered[..] == expected[..answered.len()],
        "replies {answered:?} do not match the calls {expected:?}"
    );
    if !closed_by_server {
        assert_eq!(answered.len(), expected.len(), "a call went unanswered");
    }
}

/// Drives one connection over a scripted peer to its end, with the idle
/// sweeper and every spawned timer running on simulated time; returns what
/// the server wrote.
fn run<H: Handler<Data = D>, D: Default + Send + 'static>(
    input: Vec<u8>,
    chunk: usize,
    then: Then,
    handler: H,
) -> Vec<u8> {
    let output = Arc::new(Mutex::new(Vec::new()));
    let io = Scripted {
        input: input.into(),
        chunk,
        then,
        output: output.clone(),
    };
    let tick = Duration::from_millis(125);
    let limits = Limits::default()
        .max_message_size(64 << 10)
        .max_fragments(64)
        .idle_timeout(Some(Duration::from_secs(1)))
        .close_timeout(Duration::from_secs(1));
    let sim = Sim::default();
    let rt: Rt = Arc::new(sim.clone());
    let registry = Arc::new(Registry::default());
    let slot = registry
        .reserve(None, &Arc::default(), None)
        .expect("no limit set");
    let (shared, registration) = registry.register(slot, |id| {
        Shared::new(id, limits.backpressure_limit, false).with_idle_ticks(8)
    });
    // The server's idle sweeper, as `Server` runs it.
    let sweeper = registry.clone();
    let clock = rt.clone();
    rt.spawn(Box::pin(async move {
        loop {
            clock.sleep(tick).await;
            sweeper.sweep();
        }
    }));
    let start = Start {
        codec: Codec::new(Box::new(io), Bytes::new(), limits.codec_config(), None),
        shared: shared.clone(),
        limits: Arc::new(limits),
        registration,
        task: registry.task(),
    };
    let info = Arc::new(Info {
        remote_addr: ([127, 0, 0, 1], 9).into(),
        path: "/fuzz".into(),
        params: Box::default(),
        query: None,
        protocol: None,
        publish_to_self: false,
        rt,
        values: http::Extensions::new(),
        state: Default::default(),
        extensions: None,
    });
    let ws = Ws::new(D::default(), shared, info, Default::default());
    // Every timeout is a few seconds of simulated time at most: a thousand
    // moves of the clock is far past any of them.
    sim.run(
        async move {
            let opened = driver::open(Arc::new(handler), ws).await;
            driver::run(opened, start, crate::observe::current_span()).await
        },
        1000,
    );
    std::mem::take(&mut *output.lock().unwrap_or_else(|e| e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The targets run clean on a few hand-written inputs; the committed
    /// corpus under `fuzz/corpus` is replayed by `tests/fuzz_corpus.rs`.
    #[test]
    fn targets_survive_simple_inputs() {
        super::handshake(b"GET /chat?id=7&name=x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
        super::handshake(b"\xff\xfe garbage");
        // A masked "hi", a ping, a close with code 1000.
        super::connection(&[
            0x81, 0x82, 0, 0, 0, 0, b'h', b'i', 0x89, 0x80, 0, 0, 0, 0, 0x88, 0x82, 0, 0, 0, 0,
            0x03, 0xe8,
        ]);
        super::connection(&[0x82, 0xff, 0xff, 0xff]);
        super::connection(&[]);
        super::connection(&[0xC0]);
    }

    fn echo() -> impl Handler<Data = ()> {
        on_message(|ws: &mut Ws<()>, msg: Message| {
            ws.send(msg);
        })
    }

    /// A peer that goes silent after one message is pinged at half the
    /// idle timeout, closed at the end of it, and terminated after the close
    /// timeout: all on simulated time.
    #[test]
    fn a_silent_peer_meets_every_timeout() {
        let mut hi = Vec::new();
        wire::masked_frame(&mut hi, wire::TEXT, b"hi");
        let frames = wire::server_frames(&run(hi, 64, Then::Stall, echo()));
        let kinds: Vec<u8> = frames.iter().map(|f| f.opcode).collect();
        assert_eq!(kinds, [wire::TEXT, 0x9, wire::CLOSE], "echo, ping, close");
        assert_eq!(wire::close_code(&frames[2]), 1001);
    }

    /// Per-connection timers fire on simulated time, and every call with an
    /// id is answered in order; arrays and fractional ids are not calls.
    #[test]
    fn events_answer_every_call_and_timers_fire() {
        let calls = [
            r#"{"event":"count","data":2,"id":1}"#,
            r#"["count",13,{"amount":100}]"#,
            r#"{"event":"count","data":1,"id":1.5}"#,
            r#"{"event":"nope","id":"k"}"#,
            r#"{"event":"count","data":2}"#,
        ];
        let mut frames = Vec::new();
        for c in calls {
            wire::masked_frame(&mut frames, wire::TEXT, c.as_bytes());
        }
        let out = wire::server_frames(&run(frames, 4096, Then::Stall, events_app(Arc::default())));
        let texts: Vec<serde_json::Value> = out
            .iter()
            .filter(|f| f.opcode == wire::TEXT)
            .map(|f| serde_json::from_slice(&f.payload).unwrap())
            .collect();
        let replies: Vec<_> = texts.iter().filter(|v| v.get("ok").is_some()).collect();
        assert_eq!(replies.len(), 4, "{texts:?}");
        assert_eq!(replies[0]["data"], 2);
        assert_eq!(replies[1]["error"], "malformed");
        assert_eq!(replies[2]["error"], "malformed");
        assert_eq!(replies[3]["id"], "k");
        let pushes: Vec<_> = texts.iter().filter_map(|v| v.get("event")).collect();
        assert!(
            pushes.iter().filter(|e| **e == "tick").count() >= 2,
            "{texts:?}"
        );
        assert_eq!(
            pushes.iter().filter(|e| **e == "once").count(),
            1,
            "{texts:?}"
        );
        check_replies(&out, &[1.into(), "k".into()], false);
    }

    /// The reply check fails on a missing, an extra or a reordered reply.
    #[test]
    fn the_reply_check_can_fail() {
        let reply = |id: serde_json::Value| wire::ServerFrame {
            fin: true,
            opcode: wire::TEXT,
            payload: serde_json::json!({"id": id, "ok": true, "data": null})
                .to_string()
                .into_bytes(),
        };
        let ids = [serde_json::Value::from(1), 2.into()];
        let fails = |frames: Vec<wire::ServerFrame>| {
            std::panic::catch_unwind(|| check_replies(&frames, &ids, false)).is_err()
        };
        assert!(!fails(vec![reply(1.into()), reply(2.into())]));
        assert!(fails(vec![reply(1.into())]), "a missing reply");
        assert!(
            fails(vec![reply(2.into()), reply(1.into())]),
            "out of order"
        );
        assert!(
            fails(vec![reply(1.into()), reply(2.into()), reply(2.into())]),
            "a duplicate"
        );
    }
}
