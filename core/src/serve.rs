//! One accepted TCP connection: HTTP/1.1 through hyper until (and unless) it
//! upgrades, then the WebSocket driver on the same task.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode, header};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::app::{Accepted, App, BoxFuture, WsEntry};
use crate::body::{IntoResponse, Response, text};
use crate::codec::Codec;
use crate::connection::Start;
use crate::handshake;
use crate::io::{BoxIo, HyperIo};
use crate::limits::Limits;
use crate::registry::{Registry, Reservation};
use crate::request::Request;
use crate::router::RawParams;
use crate::runtime::Rt;
use crate::socket::{Info, Shared};

/// What every connection task shares.
pub(crate) struct ServerInner {
    pub(crate) app: App,
    pub(crate) rt: Rt,
    pub(crate) registry: Arc<Registry>,
    pub(crate) http: hyper::server::conn::http1::Builder,
    pub(crate) has_ws: bool,
}

/// An upgrade answered with 101, waiting for hyper to hand the socket back.
struct Pending {
    on_upgrade: OnUpgrade,
    accepted: Box<dyn Accepted>,
    info: Info,
    reservation: Reservation,
    limits: Arc<Limits>,
}

type Slot = Arc<Mutex<Option<Pending>>>;

pub(crate) async fn serve_connection(server: Arc<ServerInner>, io: BoxIo, remote: SocketAddr) {
    let task = server.registry.task();
    let slot: Slot = Arc::default();
    let svc = Service {
        server: server.clone(),
        remote,
        slot: slot.clone(),
    };
    let conn = server.http.serve_connection(HyperIo(io), svc);
    if server.has_ws {
        let conn = conn.with_upgrades();
        let _ = until_shutdown(&server, conn, |c| c.graceful_shutdown()).await;
    } else {
        // No WebSocket route: hyper treats an upgrade request as plain HTTP.
        let _ = until_shutdown(&server, conn, |c| c.graceful_shutdown()).await;
        return;
    }
    let pending = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(p) = pending {
        // A task's memory is sized for its largest state, and hyper's
        // connection is large: the WebSocket gets a task of its own, sized
        // for the driver alone, for the rest of its life.
        let rt = server.rt.clone();
        rt.spawn(Box::pin(async move {
            let _task = task;
            run_websocket(&server, p).await;
        }));
    }
}

/// Drives an HTTP connection; once shutdown starts, asks it to finish the
/// request in flight and close.
async fn until_shutdown<C: Future>(
    server: &ServerInner,
    conn: C,
    graceful: impl Fn(Pin<&mut C>),
) -> C::Output {
    let mut conn = pin!(conn);
    let mut stop = pin!(server.registry.shutting_down.wait());
    let mut stopping = false;
    poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
            graceful(conn.as_mut());
        }
        conn.as_mut().poll(cx)
    })
    .await
}

async fn run_websocket(server: &ServerInner, p: Pending) {
    let Ok(upgraded) = p.on_upgrade.await else {
        return;
    };
    // Our own stream comes back: frames never pass through hyper's IO layer.
    let Ok(parts) = upgraded.downcast::<HyperIo>() else {
        return;
    };
    let limits = p.limits;
    let codec = Codec::new(parts.io.0, parts.read_buf, limits.codec_config());
    let (shared, registration) = server.registry.register(p.reservation, |id| {
        Shared::new(id, limits.backpressure_limit, limits.close_on_backpressure)
    });
    let start = Start {
        codec,
        shared,
        limits,
        rt: server.rt.clone(),
        registration,
        topics: server.app.topics.clone(),
    };
    p.accepted.run(Arc::new(p.info), start).await;
}

struct Service {
    server: Arc<ServerInner>,
    remote: SocketAddr,
    slot: Slot,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let server = self.server.clone();
        let remote = self.remote;
        let slot = self.slot.clone();
        Box::pin(async move { Ok(dispatch(&server, req, remote, &slot).await) })
    }
}

async fn dispatch(
    server: &ServerInner,
    req: hyper::Request<Incoming>,
    remote: SocketAddr,
    slot: &Slot,
) -> Response {
    // Request bodies are not read: routes see the head only.
    let (head, _body) = req.into_parts();
    let app = &server.app;
    let Some((entry, params)) = app.router.at(head.uri.path()) else {
        return fallback(
            app,
            Request {
                head,
                remote_addr: remote,
                params: Vec::new(),
            },
        )
        .await;
    };
    if let Some(ws) = &entry.ws {
        if server.has_ws && (handshake::wants_websocket(&head.headers) || entry.get.is_none()) {
            return upgrade(server, ws, head, remote, params, slot).await;
        }
    }
    let req = Request {
        head,
        remote_addr: remote,
        params,
    };
    match &entry.get {
        Some(get) if matches!(*req.method(), Method::GET | Method::HEAD) => get.call(req).await,
        Some(_) => {
            let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            res.headers_mut()
                .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
            res
        }
        None => fallback(app, req).await,
    }
}

async fn fallback(app: &App, req: Request) -> Response {
    match &app.fallback {
        Some(f) => f.call(req).await,
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn upgrade(
    server: &ServerInner,
    ws: &WsEntry,
    mut head: http::request::Parts,
    remote: SocketAddr,
    params: RawParams,
    slot: &Slot,
) -> Response {
    let hs = match handshake::check(&head.method, head.version, &head.headers) {
        Ok(hs) => hs,
        Err(res) => return res,
    };
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
    let on_upgrade = head.extensions.remove::<OnUpgrade>();
    let req = Request {
        head,
        remote_addr: remote,
        params,
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
    let Some(on_upgrade) = on_upgrade else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "upgrade unavailable");
    };
    let info = Info {
        remote_addr: remote,
        path: req.path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        protocol: accepted.protocol().map(str::to_owned),
        publish_to_self: ws.publish_to_self,
        params: req.params,
    };
    let res = handshake::switching_protocols(&hs.accept, info.protocol.as_deref());
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pending {
        on_upgrade,
        accepted,
        info,
        reservation,
        limits: ws.limits.clone(),
    });
    res
}
