//! HTTP/2 on the own server: h2c with prior knowledge or ALPN `h2`, each
//! WebSocket an extended CONNECT stream (RFC 8441), many on one connection.
//!
//! hyper runs the connection and each stream; a WebSocket's stream is
//! handed over as hyper's upgrade and runs on wsway's driver, reading and
//! writing through HTTP/2 flow control (its backpressure). The connection
//! lives as long as any of its streams does.

use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Context;

use atomic_waker::AtomicWaker;
use futures_lite::AsyncReadExt;
use hyper::body::Incoming;

use crate::app::application::App;
use crate::boxed::BoxFuture;
use crate::io::{BoxIo, HyperIo, Rewind};
use crate::runtime::{HyperExec, HyperTimer, Rt};
use crate::server::answer::answer_detached;
use crate::server::shared::ServerInner;
use crate::web::body::Response;

/// Streams one connection may open at once, by default: RFC 9113 §6.5.2
/// asks for no fewer than 100.
pub(crate) const DEFAULT_MAX_STREAMS: u32 = 100;

/// hyper's HTTP/2 settings, shared by every connection.
type Builder = hyper::server::conn::http2::Builder<HyperExec>;

/// The settings every HTTP/2 connection gets: extended CONNECT announced,
/// at most `max_streams` streams, the app's header limit.
pub(crate) fn builder(rt: &Rt, app: &App, max_streams: u32) -> Builder {
    let mut http = Builder::new(HyperExec(rt.clone()));
    http.timer(HyperTimer(rt.clone()))
        .enable_connect_protocol()
        .max_concurrent_streams(max_streams)
        .max_header_list_size(u32::try_from(app.http.max_header_bytes).unwrap_or(u32::MAX));
    http
}

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the first bytes of a plain-TCP connection, as far as they tell
/// HTTP/2's preface from an HTTP/1.1 request; gives whether it is HTTP/2,
/// and the stream with those bytes put back. `None` when the client sent
/// nothing in time or hung up.
pub(crate) async fn sniff(server: &ServerInner, mut io: BoxIo) -> Option<(bool, BoxIo)> {
    let mut head = [0u8; PREFACE.len()];
    let mut got = 0;
    let mut failed = false;
    let read = async {
        while got < PREFACE.len() && head[..got] == PREFACE[..got] {
            match io.read(&mut head[got..]).await {
                Ok(0) | Err(_) => {
                    failed = true;
                    return;
                }
                Ok(n) => got += n,
            }
        }
    };
    let done = crate::runtime::within(&server.rt, server.app.http.handshake_timeout, read).await;
    if !done || failed {
        return None;
    }
    let h2 = head[..got] == *PREFACE;
    let head = bytes::Bytes::copy_from_slice(&head[..got]);
    Some((h2, Box::new(Rewind { head, io })))
}

/// The WebSockets open on one connection, so that a drain sends GOAWAY
/// once their closes are out.
#[derive(Default)]
struct Streams {
    open: AtomicUsize,
    waker: AtomicWaker,
}

impl Streams {
    /// Whether none is open; if one is, the task is woken when the last ends.
    fn none_open(&self, cx: &mut Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.open.load(Ordering::Acquire) == 0
    }
}

/// Held by a request, and by its WebSocket for the socket's life.
struct StreamGuard(Arc<Streams>);

impl StreamGuard {
    fn new(streams: &Arc<Streams>) -> Self {
        streams.open.fetch_add(1, Ordering::AcqRel);
        StreamGuard(streams.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.waker.wake();
        }
    }
}

/// Serves one HTTP/2 connection. Once shutdown starts (new CONNECTs then
/// get 503), it waits for the drain to close the WebSockets its streams
/// carry, then sends GOAWAY and ends when the last stream has.
pub(crate) async fn serve(
    server: &Arc<ServerInner>,
    http: &Builder,
    io: BoxIo,
    remote: SocketAddr,
) {
    let streams = Arc::new(Streams::default());
    let service = StreamService {
        server: server.clone(),
        remote,
        streams: streams.clone(),
    };
    let mut conn = pin!(http.serve_connection(HyperIo(io), service));
    let mut stop = pin!(server.registry.shutting_down.wait());
    let (mut stopping, mut closing) = (false, false);
    let _ = poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
        }
        if stopping && !closing && streams.none_open(cx) {
            closing = true;
            conn.as_mut().graceful_shutdown();
        }
        conn.as_mut().poll(cx)
    })
    .await;
}

/// Each stream's request, answered as on HTTP/1.1.
struct StreamService {
    server: Arc<ServerInner>,
    remote: SocketAddr,
    streams: Arc<Streams>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for StreamService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let server = self.server.clone();
        let remote = self.remote;
        let guard = StreamGuard::new(&self.streams);
        let (head, body) = req.into_parts();
        let body = crate::web::request_body::boxed(body);
        Box::pin(async move { Ok(answer_detached(server, head, body, remote, guard).await) })
    }
}
