//! Answering one request: a plain route, or a WebSocket's opening (the
//! checks, `before_upgrade`, `open`) and, once the server hands the stream
//! over, the connection's driver. Whichever HTTP carried it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, StatusCode, header};
use hyper::upgrade::OnUpgrade;

use crate::app::application::{App, Entry, Opened, WsEntry};
use crate::boxed::BoxFuture;
use crate::connection::codec::Codec;
use crate::connection::driver::Start;
use crate::connection::registry::{Registration, Reservation, TaskGuard};
use crate::connection::socket::Info;
use crate::delivery::outbox::Shared;
use crate::io::{BoxIo, HyperIo, TryWrite};
use crate::policy::limits::Limits;
use crate::policy::origin;
use crate::server::shared::ServerInner;
use crate::web::body::{IntoResponse, Response, text};
use crate::web::handshake;
use crate::web::middleware;
use crate::web::request::Request;
use crate::web::request_body::BoxBody;
use crate::web::router::RawParams;

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

/// Answers one request of a connection that carries many (an HTTP/2
/// connection's stream, or a request a host parsed), in a span of its own:
/// an accepted WebSocket runs on a task of its own once hyper hands its
/// stream over, holding `keep` for its life.
#[cfg(any(feature = "tower", feature = "http2"))]
pub(crate) async fn answer_detached(
    server: Arc<ServerInner>,
    head: http::request::Parts,
    body: BoxBody,
    remote: SocketAddr,
    keep: impl Send + 'static,
) -> Response {
    let span = crate::observe::connection_span(remote);
    let slot: Slot = Arc::default();
    let answer = dispatch(&server, head, Some(body), remote, &slot);
    let res = crate::observe::instrument(answer, span.clone()).await;
    let pending = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(p) = pending {
        let task = server.registry.task();
        let rt = server.rt.clone();
        // The wait for the stream is in the span; the driver enters it on
        // its own, so it is not entered twice per poll.
        let run = async move {
            let upgraded = upgraded(p, task, None, span.clone());
            if let Some(driver) = crate::observe::instrument(upgraded, span).await {
                driver.await;
            }
            drop(keep);
        };
        rt.spawn(Box::pin(run));
    }
    res
}

/// Takes the socket back from hyper and builds the connection's driver, to
/// run in `span`. `writer` is the socket's own [`TryWrite`], when it has
/// one.
pub(crate) async fn upgraded(
    p: Pending,
    task: TaskGuard,
    writer: Option<Arc<dyn TryWrite>>,
    span: crate::observe::Span,
) -> Option<BoxFuture<'static, ()>> {
    // Our own stream comes back: frames never pass through hyper's IO
    // layer. A host's (`AppService`) is read through it.
    let (io, read_buf): (BoxIo, _) = match p.on_upgrade.await.map(|u| u.downcast::<HyperIo>()) {
        Ok(Ok(parts)) => {
            // hyper has written the 101 by now: others may write frames.
            // Not with compression, whose frames depend on the session.
            if let Some(writer) = writer.filter(|_| p.deflate.is_none()) {
                p.shared.write_directly(writer);
            }
            (parts.io.0, parts.read_buf)
        }
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
        registration: p.registration,
        task,
    };
    Some(p.opened.run(start, span))
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

/// Answers one request: a plain route, or a WebSocket upgrade (whose
/// `Pending` lands in `slot`). A plain route reads `body` if it asks for
/// it ([`Request::bytes`]); an upgrade never does.
pub(crate) async fn dispatch(
    server: &ServerInner,
    mut head: http::request::Parts,
    body: Option<BoxBody>,
    remote: SocketAddr,
    slot: &Slot,
) -> Response {
    // HTTP/2 says where a request goes in `:authority`, not `Host` (RFC 9113
    // §8.3.1): put it where the origin check and the app look for it.
    if !head.headers.contains_key(header::HOST) {
        if let Some(Ok(host)) = head.uri.authority().map(|a| a.as_str().parse()) {
            head.headers.insert(header::HOST, host);
        }
    }
    let app = &server.app;
    let Some((entry, pattern, params)) = app.router.at(head.uri.path()) else {
        return fallback(
            app,
            Request::new(head, remote, Vec::new(), app.state.clone()),
        )
        .await;
    };
    if let Some(ws) = &entry.ws {
        let asks =
            handshake::wants_websocket(&head.headers) || handshake::is_extended_connect(&head);
        if server.has_ws && (asks || entry.get.is_none()) {
            crate::observe::route(pattern);
            let res = upgrade(server, entry, ws, head, remote, params, slot).await;
            if slot.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
                crate::observe::upgrade_refused(res.status());
            }
            return res;
        }
    }
    let mut req = Request::new(head, remote, params, app.state.clone());
    let handler = match *req.method() {
        Method::GET | Method::HEAD => entry.get.as_ref(),
        Method::POST => entry.post.as_ref(),
        _ => None,
    };
    match handler {
        Some(handler) => {
            if let Some(body) = body {
                req = req.with_body(body, app.http.max_body_bytes);
            }
            if entry.probe {
                return handler.call(req).await;
            }
            let stacks = [&app.middleware, &entry.middleware];
            match middleware::run(&stacks, &mut req).await {
                Ok(()) => handler.call(req).await,
                Err(res) => res,
            }
        }
        None if entry.get.is_some() || entry.post.is_some() => {
            let allow = match (&entry.get, &entry.post) {
                (Some(_), Some(_)) => "GET, HEAD, POST",
                (Some(_), None) => "GET, HEAD",
                _ => "POST",
            };
            let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            res.headers_mut()
                .insert(header::ALLOW, http::HeaderValue::from_static(allow));
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
    let hs = match handshake::check_request(&head) {
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
    let version = head.version;
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
        path: req.path().into(),
        query: req.uri().query().map(Box::from),
        protocol: accepted.protocol().map(Box::from),
        publish_to_self: ws.publish_to_self,
        rt: server.rt.clone(),
        params: req.params.into_boxed_slice(),
        values: req.values,
        state: req.state,
        extensions: extensions.map(String::into_boxed_str),
    };
    let res = hs.response(info.protocol.as_deref(), info.extensions.as_deref());
    // `open` runs before the 101 leaves: once the client has the 101, what
    // `open` subscribed to is in place and what it sent is queued first.
    let (shared, registration) = register(server, reservation, &ws.limits);
    crate::observe::upgrade_accepted(shared.id, info.protocol.as_deref(), version);
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
