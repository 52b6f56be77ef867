//! One accepted TCP connection: TLS if on, then HTTP/2 when the client
//! speaks it (and the server does), else HTTP/1.1 through hyper until (and
//! unless) it upgrades, then the WebSocket driver on a task of its own.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::body::Incoming;

use crate::boxed::BoxFuture;
use crate::io::{BoxIo, HyperIo, TryWrite};
use crate::server::answer::{Slot, dispatch, upgraded};
use crate::server::shared::ServerInner;
use crate::web::body::Response;

/// Serves one accepted connection, inside its span.
/// `writer` is the socket's [`TryWrite`] when the adapter offers one; it
/// is kept for a WebSocket over plain HTTP/1.1 only.
pub(crate) fn serve_connection(
    server: Arc<ServerInner>,
    io: BoxIo,
    remote: SocketAddr,
    writer: Option<Arc<dyn TryWrite>>,
) -> impl Future<Output = ()> + Send {
    let span = crate::observe::connection_span(remote);
    crate::observe::instrument(
        serve_in_span(server, io, remote, writer, span.clone()),
        span,
    )
}

async fn serve_in_span(
    server: Arc<ServerInner>,
    io: BoxIo,
    remote: SocketAddr,
    mut writer: Option<Arc<dyn TryWrite>>,
    span: crate::observe::Span,
) {
    let task = server.registry.task();
    #[cfg(feature = "http2")]
    let started = std::time::Instant::now();
    if server.is_tls() {
        // Bytes on the socket are TLS records: only the session writes.
        writer = None;
    }
    let Some(Secured { io, http, h2 }) = secure(&server, io).await else {
        return;
    };
    #[cfg(feature = "http2")]
    let Some((io, http)) = http2_or_not(&server, io, http, h2, started, remote).await else {
        return;
    };
    #[cfg(not(feature = "http2"))]
    let _ = h2;
    let slot: Slot = Arc::default();
    let asked = Arc::new(AtomicBool::new(false));
    let svc = Service {
        server: server.clone(),
        remote,
        slot: slot.clone(),
        asked: asked.clone(),
    };
    let conn = http
        .as_ref()
        .unwrap_or(&server.http)
        .serve_connection(HyperIo(io), svc);
    if server.has_ws {
        let conn = conn.with_upgrades();
        let _ = until_shutdown(&server, conn, &asked, |c| c.graceful_shutdown()).await;
    } else {
        // No WebSocket route: hyper treats an upgrade request as plain HTTP.
        let _ = until_shutdown(&server, conn, &asked, |c| c.graceful_shutdown()).await;
        return;
    }
    let pending = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(p) = pending {
        if let Some(driver) = upgraded(p, task, writer, span).await {
            // A task's memory is sized for its largest state, and hyper's
            // connection is large: the WebSocket gets a task of its own,
            // holding the driver alone (in its span), for the rest of its
            // life.
            server.rt.spawn(driver);
        }
    }
}

/// A connection ready for HTTP: under TLS, once the handshake is done.
struct Secured {
    io: BoxIo,
    /// HTTP/1.1's settings for it, when they differ from the server's (TLS
    /// took part of the handshake timeout).
    http: Option<hyper::server::conn::http1::Builder>,
    /// Whether ALPN chose `h2`.
    h2: bool,
}

/// The stream HTTP is served on: under TLS, once the handshake is done;
/// `None` when it failed.
async fn secure(server: &ServerInner, io: BoxIo) -> Option<Secured> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &server.tls {
        return tls_handshake(server, tls, io).await;
    }
    #[cfg(not(feature = "tls"))]
    let _ = server;
    Some(Secured {
        io,
        http: None,
        h2: false,
    })
}

/// The TLS handshake, within the handshake timeout; what it leaves of that
/// timeout bounds the request head that follows (hyper's header timeout),
/// so TLS and the request together take no longer than one timeout.
#[cfg(feature = "tls")]
async fn tls_handshake(
    server: &ServerInner,
    tls: &crate::server::tls::Acceptor,
    io: BoxIo,
) -> Option<Secured> {
    let limit = server.app.http.handshake_timeout;
    let started = std::time::Instant::now();
    // Left `None` when the timeout passed first.
    let mut result = None;
    crate::runtime::within(&server.rt, limit, async {
        result = Some(tls.acceptor().accept(io).await);
    })
    .await;
    match result {
        Some(Ok(stream)) => {
            let http = header_timeout_left(server, started.elapsed());
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Some(Secured {
                io: Box::new(stream),
                http: Some(http),
                h2,
            })
        }
        Some(Err(e)) => {
            crate::observe::tls_handshake_failed(&e);
            None
        }
        None => {
            crate::observe::tls_handshake_failed(&"not finished within the handshake timeout");
            None
        }
    }
}

/// Serves the connection over HTTP/2 when it speaks it (ALPN said so, or
/// its first bytes are the preface) and the server does; else gives it
/// back for HTTP/1.1, with the settings to serve it with. `None` when it
/// was served, or sent nothing in time.
#[cfg(feature = "http2")]
async fn http2_or_not(
    server: &Arc<ServerInner>,
    io: BoxIo,
    http: Option<hyper::server::conn::http1::Builder>,
    alpn_h2: bool,
    started: std::time::Instant,
    remote: SocketAddr,
) -> Option<(BoxIo, Option<hyper::server::conn::http1::Builder>)> {
    let Some(http2) = &server.http2 else {
        return Some((io, http));
    };
    let (h2, io, http) = if alpn_h2 || server.is_tls() {
        (alpn_h2, io, http)
    } else {
        let (h2, io) = crate::server::http2::sniff(server, io).await?;
        // HTTP/1.1's head gets what the sniff left of the timeout.
        (h2, io, Some(header_timeout_left(server, started.elapsed())))
    };
    if !h2 {
        return Some((io, http));
    }
    crate::server::http2::serve(server, http2, io, remote).await;
    None
}

/// HTTP/1.1's settings with what is left of the handshake timeout once
/// `spent` went on TLS or on telling HTTP/2 from HTTP/1.1: the request head
/// must arrive within the one timeout all the same.
#[cfg(any(feature = "tls", feature = "http2"))]
fn header_timeout_left(
    server: &ServerInner,
    spent: Duration,
) -> hyper::server::conn::http1::Builder {
    let left = server.app.http.handshake_timeout.saturating_sub(spent);
    let mut http = server.http.clone();
    http.header_read_timeout(left.max(Duration::from_millis(1)));
    http
}

/// How long a connection accepted but not yet asked anything may wait for
/// its request once shutdown starts: its client is usually mid-send, and is
/// owed an answer (a 503 for an upgrade) rather than a dropped socket.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// Drives an HTTP connection; once shutdown starts, asks it to finish the
/// request in flight and close. A connection that has not received its
/// first request yet (`asked` is false) gets [`FIRST_REQUEST_GRACE`] to
/// receive it first: hyper would close it unanswered.
async fn until_shutdown<C: Future>(
    server: &ServerInner,
    conn: C,
    asked: &AtomicBool,
    graceful: impl Fn(Pin<&mut C>),
) -> C::Output {
    let mut conn = pin!(conn);
    let mut stop = pin!(server.registry.shutting_down.wait());
    let mut grace: Option<crate::runtime::BoxSleep> = None;
    let mut closing = false;
    poll_fn(|cx| {
        if grace.is_none() && stop.as_mut().poll(cx).is_ready() {
            grace = Some(server.rt.sleep(FIRST_REQUEST_GRACE));
        }
        loop {
            if let Some(timer) = grace.as_mut().filter(|_| !closing) {
                if asked.load(Ordering::Acquire) || timer.as_mut().poll(cx).is_ready() {
                    closing = true;
                    graceful(conn.as_mut());
                }
            }
            let polled = conn.as_mut().poll(cx);
            // The request may have arrived during that poll: close after it.
            if polled.is_pending() && grace.is_some() && !closing && asked.load(Ordering::Acquire) {
                continue;
            }
            return polled;
        }
    })
    .await
}

struct Service {
    server: Arc<ServerInner>,
    remote: SocketAddr,
    slot: Slot,
    /// Set once a request has arrived on the connection.
    asked: Arc<AtomicBool>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let server = self.server.clone();
        let remote = self.remote;
        let slot = self.slot.clone();
        self.asked.store(true, Ordering::Release);
        let (head, body) = req.into_parts();
        let body = crate::web::request_body::boxed(body);
        Box::pin(async move { Ok(dispatch(&server, head, Some(body), remote, &slot).await) })
    }
}
