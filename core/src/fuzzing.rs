//! What the fuzz targets (`fuzz/`) drive: the request checks, and a whole
//! connection fed arbitrary bytes. Kept here so they reach private code.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;

use crate::codec::Codec;
use crate::connection::{self, Start};
use crate::limits::Limits;
use crate::registry::Registry;
use crate::runtime::{BoxSleep, BoxTask, Runtime};
use crate::socket::{Info, Shared, Ws};
use crate::{EventError, Events, Handler, Message, Origins, on_message};

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
    let _ = crate::handshake::check(&method, version, &map);
    let _ = crate::handshake::offered_protocols(&map);
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
        let mut request =
            crate::request::Request::new(head, ([127, 0, 0, 1], 9).into(), Vec::new());
        let _ = crate::auth::fuzz_token(&mut request);
    }
    // Typed extraction of whatever the path and query hold.
    let query = path.split_once('?').map_or("", |(_, q)| q);
    let pairs = crate::extract::parse_query(query);
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        id: Option<u32>,
        name: Option<String>,
        flag: Option<bool>,
    }
    let _ = crate::extract::from_pairs::<Typed>(&pairs, crate::extract::Source::Query);
    let _ = crate::extract::from_pairs::<(String, u64)>(&pairs, crate::extract::Source::Path);
}

/// Runs a connection whose peer sends `data` and then hangs up, with an echo
/// handler and small limits. Must never panic nor grow without bound.
pub fn connection(data: &[u8]) {
    let chunk = 1 + data.first().map_or(0, |b| *b as usize % 64);
    let handler = on_message(|ws: &mut Ws<()>, msg: Message| {
        ws.send(msg);
    });
    run(data.to_vec(), chunk, handler);
}

/// Runs an [`Events`] connection whose peer sends the messages in `data`
/// (split at `0xFF` bytes; each one a text frame when it is UTF-8, binary
/// otherwise). Must never panic: every call gets an envelope back. (No
/// handler panics on purpose: libFuzzer aborts on any panic, even a caught
/// one; the tests cover handler panics.)
pub fn events(data: &[u8]) {
    let mut frames = Vec::new();
    for msg in data.split(|b| *b == 0xFF) {
        let opcode = if std::str::from_utf8(msg).is_ok() {
            0x1
        } else {
            0x2
        };
        masked_frame(&mut frames, opcode, msg);
    }
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        n: u32,
        tags: Vec<String>,
        nested: Option<Box<Typed>>,
    }
    let mut events = Events::<u32>::new();
    events.on("count", |ws, by: u32| {
        ws.data = ws.data.saturating_add(by);
        Ok::<_, EventError>(ws.data)
    });
    events.on("typed", |_ws, t: Typed| Ok::<_, EventError>(t.tags.len()));
    events.on("fail", |_ws, code: String| {
        Err::<(), _>(EventError::new(code, "failed"))
    });
    events.group("a", |a| {
        a.middleware(|ws, _| match ws.data % 2 {
            0 => Ok(()),
            _ => Err(EventError::new("odd", "odd count").close(4001, "odd")),
        });
        a.on("echo", |ws, v: serde_json::Value| {
            ws.emit("echoed", &v)?;
            Ok::<_, EventError>(v)
        });
    });
    run(frames, 4096, events);
}

/// Appends a client frame (masked, as RFC 6455 requires) with `payload`.
fn masked_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

/// Drives one connection over a scripted peer to its end.
fn run<H: Handler<Data = D>, D: Default + Send + 'static>(
    input: Vec<u8>,
    chunk: usize,
    handler: H,
) {
    let io = Scripted {
        input: input.into(),
        chunk,
    };
    let limits = Limits::default()
        .max_message_size(64 << 10)
        .read_buffer_size(64);
    let registry = Arc::new(Registry::default());
    let slot = registry
        .reserve(None, &Arc::default(), None)
        .expect("no limit set");
    let (shared, registration) =
        registry.register(slot, |id| Shared::new(id, limits.backpressure_limit, false));
    let start = Start {
        codec: Codec::new(Box::new(io), Bytes::new(), limits.codec_config()),
        shared: shared.clone(),
        limits: Arc::new(limits),
        rt: Arc::new(Frozen),
        registration,
        topics: Default::default(),
        task: registry.task(),
    };
    let info = Arc::new(Info {
        remote_addr: ([127, 0, 0, 1], 9).into(),
        path: "/fuzz".into(),
        params: Vec::new(),
        query: None,
        protocol: None,
        publish_to_self: false,
        rt: Arc::new(Frozen),
        values: http::Extensions::new(),
    });
    let ws = Ws::new(D::default(), shared, info, Default::default());
    futures_lite::future::block_on(connection::run(Arc::new(handler), ws, start));
}

/// A runtime whose timers never fire: the script's end is what ends a run.
struct Frozen;

impl Runtime for Frozen {
    fn spawn(&self, task: BoxTask) {
        drop(task);
    }

    fn sleep(&self, _: Duration) -> BoxSleep {
        Box::pin(std::future::pending())
    }
}

/// A peer that sends the script in chunks, swallows whatever it is sent,
/// and hangs up at the end.
struct Scripted {
    input: VecDeque<u8>,
    chunk: usize,
}

impl futures_io::AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.chunk).min(self.input.len());
        for (slot, byte) in buf.iter_mut().zip(self.input.drain(..n)) {
            *slot = byte;
        }
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    /// The targets run clean on a few hand-written inputs; the committed
    /// corpus under `fuzz/corpus` is replayed by `.ci/run`.
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
    }
}
