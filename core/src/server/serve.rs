//! One accepted TCP connection: HTTP/1.1 through hyper until (and unless) it
//! upgrades, then the WebSocket driver on the same task.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, StatusCode, header};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::app::application::{App, Entry, Opened, WsEntry};
use crate::boxed::BoxFuture;
use crate::connection::codec::Codec;
use crate::connection::driver::Start;
use crate::connection::registry::{Registration, Registry, Reservation, TaskGuard};
use crate::connection::socket::Info;
use crate::delivery::outbox::Shared;
use crate::io::{BoxIo, HyperIo};
use crate::policy::limits::Limits;
use crate::policy::origin;
use crate::runtime::Rt;
use crate::web::body::{IntoResponse, Response, text};
use crate::web::handshake;
use crate::web::middleware;
use crate::web::request::Request;
use crate::web::router::RawParams;

/// What every connection task shares.
pub(crate) struct ServerInner {
    pub(crate) app: App,
    pub(crate) rt: Rt,
    pub(crate) registry: Arc<Registry>,
    pub(crate) http: hyper::server::conn::http1::Builder,
    pub(crate) has_ws: bool,
    /// The server-wide cap on open TCP connections.
    pub(crate) connection_limit: Option<usize>,
    /// The idle sweeper's period, when any route has an idle timeout.
    pub(crate) tick: Option<Duration>,
    /// wss://: the certificate new handshakes get.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<crate::server::tls::Acceptor>>,
}

impl ServerInner {
    /// Whether connections start with a TLS handshake.
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}

/// An upgrade answered with 101 (its `open` has run), waiting for hyper to
/// hand the socket back.
pub(crate) struct Pending {
    on_upgrade: OnUpgrade,
    opened: Box<dyn Opened>,
    shared: Arc<Shared>,
    registration: Registration,
    limits: Arc<Limits>,
    /// permessage-deflate, if the client offered it and the route has it.
    deflate: Option<crate::connection::compressor::Session>,
}

pub(crate) type Slot = Arc<Mutex<Option<Pending>>>;

/// Serves one accepted connection, inside its span.
pub(crate) fn serve_connection(
    server: Arc<ServerInner>,
    io: BoxIo,
    remote: SocketAddr,
) -> impl Future<Output = ()> + Send {
    let span = crate::observe::connection_span(remote);
    crate::observe::instrument(serve_in_span(server, io, remote, span.clone()), span)
}

async fn serve_in_span(
    server: Arc<ServerInner>,
    io: BoxIo,
    remote: SocketAddr,
    span: crate::observe::Span,
) {
    let task = server.registry.task();
    let Some((io, http)) = secure(&server, io).await else {
        return;
    };
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
        if let Some(driver) = upgraded(&server, p, task).await {
            // A task's memory is sized for its largest state, and hyper's
            // connection is large: the WebSocket gets a task of its own,
            // holding the driver alone, for the rest of its life.
            server
                .rt
                .spawn(Box::pin(crate::observe::instrument(driver, span)));
        }
    }
}

/// The stream HTTP is served on: under TLS, once the handshake is done
/// (with the HTTP settings that leaves); `None` when it failed.
async fn secure(
    server: &ServerInner,
    io: BoxIo,
) -> Option<(BoxIo, Option<hyper::server::conn::http1::Builder>)> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &server.tls {
        return tls_handshake(server, tls, io).await;
    }
    #[cfg(not(feature = "tls"))]
    let _ = server;
    Some((io, None))
}

/// The TLS handshake, within the handshake timeout; what it leaves of that
/// timeout bounds the request head that follows (hyper's header timeout),
/// so TLS and the request together take no longer than one timeout.
#[cfg(feature = "tls")]
async fn tls_handshake(
    server: &ServerInner,
    tls: &crate::server::tls::Acceptor,
    io: BoxIo,
) -> Option<(BoxIo, Option<hyper::server::conn::http1::Builder>)> {
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
            let left = limit.saturating_sub(started.elapsed());
            let mut http = server.http.clone();
            http.header_read_timeout(left.max(Duration::from_millis(1)));
            Some((Box::new(stream), Some(http)))
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

/// Takes the socket back from hyper and builds the connection's driver.
pub(crate) async fn upgraded(
    server: &ServerInner,
    p: Pending,
    task: TaskGuard,
) -> Option<BoxFuture<'static, ()>> {
    // Our own stream comes back: frames never pass through hyper's IO
    // layer. A host's (`AppService`) is read through it.
    let (io, read_buf): (BoxIo, _) = match p.on_upgrade.await.map(|u| u.downcast::<HyperIo>()) {
        Ok(Ok(parts)) => (parts.io.0, parts.read_buf),
        Ok(Err(hosted)) => (Box::new(crate::io::Hosted(hosted)), bytes::Bytes::new()),
        Err(_) => {
            // `open` ran, so `close` is owed even though no frame will flow.
            p.opened.abandon().await;
            return None;
        }
    };
    let limits = p.limits;
    let codec = Codec::new(io, read_buf, limits.codec_config(), p.deflate);
    let start = Start {
        codec,
        shared: p.shared,
        limits,
        rt: server.rt.clone(),
        registration: p.registration,
        task,
    };
    Some(p.opened.run(start))
}

/// Enters the connection in the registry (counted, reachable by the drain
/// and the idle sweeper) with its outbox.
fn register(
    server: &ServerInner,
    reservation: Reservation,
    limits: &Limits,
) -> (Arc<Shared>, Registration) {
    server.registry.register(reservation, |id| {
        let idle_ticks = match (limits.idle_timeout, server.tick) {
            (Some(idle), Some(tick)) => idle_ticks(idle, tick),
            _ => 0,
        };
        Shared::new(id, limits.backpressure_limit, limits.close_on_backpressure)
            .with_idle_ticks(idle_ticks)
    })
}

/// The sweeper's period: an eighth of the shortest idle timeout, so a
/// timeout fires at most 12.5 % late, between 10 ms and 1 s.
pub(crate) fn sweep_tick(app: &App) -> Option<Duration> {
    app.router
        .values()
        .filter_map(|e| e.ws.as_ref()?.limits.idle_timeout)
        .min()
        .map(|idle| (idle / 8).clamp(Duration::from_millis(10), Duration::from_secs(1)))
}

/// An idle timeout in sweeper ticks (at least 2, so the ping comes first).
fn idle_ticks(idle: Duration, tick: Duration) -> u32 {
    let ticks = idle.as_nanos().div_ceil(tick.as_nanos().max(1));
    u32::try_from(ticks).unwrap_or(u32::MAX).max(2)
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
        Box::pin(async move { Ok(dispatch(&server, req.into_parts().0, remote, &slot).await) })
    }
}

/// Answers one request: a plain route, or a WebSocket upgrade (whose
/// `Pending` lands in `slot`). Request bodies are not read: routes see the
/// head only.
pub(crate) async fn dispatch(
    server: &ServerInner,
    head: http::request::Parts,
    remote: SocketAddr,
    slot: &Slot,
) -> Response {
    let app = &server.app;
    let Some((entry, pattern, params)) = app.router.at(head.uri.path()) else {
        return fallback(
            app,
            Request::new(head, remote, Vec::new(), app.state.clone()),
        )
        .await;
    };
    if let Some(ws) = &entry.ws {
        if server.has_ws && (handshake::wants_websocket(&head.headers) || entry.get.is_none()) {
            crate::observe::route(pattern);
            let res = upgrade(server, entry, ws, head, remote, params, slot).await;
            if res.status() != StatusCode::SWITCHING_PROTOCOLS {
                crate::observe::upgrade_refused(res.status());
            }
            return res;
        }
    }
    let mut req = Request::new(head, remote, params, app.state.clone());
    match &entry.get {
        Some(get) if matches!(*req.method(), Method::GET | Method::HEAD) => {
            if entry.probe {
                return get.call(req).await;
            }
            let stacks = [&app.middleware, &entry.middleware];
            match middleware::run(&stacks, &mut req).await {
                Ok(()) => get.call(req).await,
                Err(res) => res,
            }
        }
        Some(_) => {
            let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            res.headers_mut()
                .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
            res
        }
        None => fallback(app, req).await,
    }
}

/// An upgrade that arrives once the drain has started: this process will
/// not take it, another one (after the restart) will.
fn draining() -> Response {
    let mut res = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is restarting; retry shortly",
    );
    let headers = res.headers_mut();
    headers.insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    res
}

async fn fallback(app: &App, req: Request) -> Response {
    match &app.fallback {
        Some(f) => f.call(req).await,
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn upgrade(
    server: &ServerInner,
    entry: &Entry,
    ws: &WsEntry,
    mut head: http::request::Parts,
    remote: SocketAddr,
    params: RawParams,
    slot: &Slot,
) -> Response {
    if server.registry.shutting_down.is_fired() {
        return draining();
    }
    let hs = match handshake::check(&head.method, head.version, &head.headers) {
        Ok(hs) => hs,
        Err(res) => return res,
    };
    if !ws.limits.origins.permits(&head.headers) {
        return origin::refused();
    }
    let deflate = ws.limits.compression.and_then(|settings| {
        let offers = head
            .headers
            .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let n = crate::protocol::negotiate::negotiate(offers, &settings.negotiation())?;
        Some((
            crate::connection::compressor::Session::new(&settings, n.agreed),
            n.response,
        ))
    });
    let on_upgrade = head.extensions.remove::<OnUpgrade>();
    // As the client offered them: `Bearer` takes its token out.
    let only_tokens = only_token_protocols(&head.headers);
    let mut req = Request::new(head, remote, params, server.app.state.clone());
    let stacks = [&server.app.middleware, &entry.middleware, &ws.middleware];
    if let Err(res) = middleware::run(&stacks, &mut req).await {
        return res;
    }
    // Reserved after middleware, so a slow or failing check holds no slot.
    let app_max = server.app.limits.max_connections;
    let Some(reservation) = server
        .registry
        .reserve(app_max, &ws.count, ws.limits.max_connections)
    else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket connections; try again later",
        );
    };
    let mut accepted = match ws.route.before_upgrade(&req).await {
        Ok(accepted) => accepted,
        Err(res) => return res,
    };
    let offered = req.protocols();
    match accepted.protocol() {
        Some(chosen) if !offered.iter().any(|o| o == chosen) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the handler chose a subprotocol the client did not offer",
            );
        }
        Some(_) => {}
        None => accepted.set_protocol(ws.protocols.iter().find(|p| offered.contains(p)).cloned()),
    }
    // A browser that offered subprotocols fails a 101 that chose none, and
    // a token must not be echoed back as the choice: say so, before the 101.
    if accepted.protocol().is_none() && only_tokens {
        return text(
            StatusCode::BAD_REQUEST,
            "the only subprotocol offered is a bearer token, and a browser fails an upgrade \
             that chooses none: offer one the route speaks beside it (wsway.js offers wsway.v1)",
        );
    }
    let Some(on_upgrade) = on_upgrade else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "upgrade unavailable");
    };
    let (deflate, extensions) = deflate.unzip();
    let info = Info {
        remote_addr: remote,
        path: req.path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        protocol: accepted.protocol().map(str::to_owned),
        publish_to_self: ws.publish_to_self,
        rt: server.rt.clone(),
        params: req.params,
        values: req.values,
        state: req.state,
        extensions: extensions.map(String::into_boxed_str),
    };
    let res = handshake::switching_protocols(
        &hs.accept,
        info.protocol.as_deref(),
        info.extensions.as_deref(),
    );
    // `open` runs before the 101 leaves: once the client has the 101, what
    // `open` subscribed to is in place and what it sent is queued first.
    let (shared, registration) = register(server, reservation, &ws.limits);
    crate::observe::upgrade_accepted(shared.id, info.protocol.as_deref());
    let (opened, registration) = Opening {
        open: Some(accepted.open(Arc::new(info), shared.clone(), server.app.topics.clone())),
        registration: Some(registration),
        server,
    }
    .await;
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pending {
        on_upgrade,
        opened,
        shared,
        registration,
        limits: ws.limits.clone(),
        deflate,
    });
    res
}

/// Whether the client offered subprotocols and every one was a
/// `bearer.<token>`.
fn only_token_protocols(headers: &http::HeaderMap) -> bool {
    let offered = handshake::offered_protocols(headers);
    !offered.is_empty()
        && offered
            .iter()
            .all(|p| p.starts_with(crate::policy::auth::TOKEN_PROTOCOL_PREFIX))
}

/// `open`, run inside hyper's request. hyper drops the request's future
/// when the client hangs up meanwhile; `open` then finishes on a task of its
/// own, still counted as a connection, and the connection ends as lost
/// (`close` with 1006): every `open` is followed by a `close`.
struct Opening<'a> {
    open: Option<BoxFuture<'static, Box<dyn Opened>>>,
    registration: Option<Registration>,
    server: &'a ServerInner,
}

impl Future for Opening<'_> {
    type Output = (Box<dyn Opened>, Registration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(open) = self.open.as_mut() else {
            return Poll::Pending;
        };
        let opened = std::task::ready!(open.as_mut().poll(cx));
        self.open = None;
        match self.registration.take() {
            Some(registration) => Poll::Ready((opened, registration)),
            None => Poll::Pending,
        }
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if let (Some(open), Some(registration)) = (self.open.take(), self.registration.take()) {
            let task = self.server.registry.task();
            let finish = async move {
                open.await.abandon().await;
                drop((registration, task));
            };
            // Dropped inside the connection's task: its span is current.
            let span = crate::observe::current_span();
            self.server
                .rt
                .spawn(Box::pin(crate::observe::instrument(finish, span)));
        }
    }
}
