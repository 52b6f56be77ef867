//! wsway inside another server: an [`App`](crate::App) as a
//! `tower::Service`, so an axum (or any hyper-based) app serves its REST
//! routes and wsway's on one port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::boxed::BoxFuture;
use crate::server::answer::answer_detached;
use crate::server::shared::ServerInner;
use crate::web::body::Response;

/// Where the client's address comes from in a host's request.
type RemoteOf = fn(&http::Extensions) -> Option<SocketAddr>;

/// An app mounted in another server: a `tower::Service` (feature `tower`)
/// that answers wsway's routes, WebSocket upgrades included, from requests
/// another server parsed. Made by
/// [`Server::into_service`](crate::Server::into_service), with the
/// [`ServerHandle`](crate::ServerHandle) that drains it.
///
/// An upgrade comes from the host (hyper's HTTP/1.1 upgrade, or an
/// HTTP/2 extended CONNECT stream when the host speaks HTTP/2 with
/// feature `http2` on); the
/// connection then runs on wsway's own driver on the runtime the service
/// was given, with everything the own server gives it: typed params,
/// middleware, origins, `Bearer`, events, history, the backplane, limits,
/// backpressure, metrics and tracing. A request for no wsway route gets
/// the app's fallback (404 unless it set one), so mount it where the host
/// wants wsway to answer: as axum's `fallback_service`, or with
/// `route_service` per path.
///
/// ```no_run
/// # async fn f(app: wsway::App) -> std::io::Result<()> {
/// use wsway::Server;
///
/// let (ws, handle) = Server::new(app).into_service(wsway_tokio::runtime())?;
/// // axum::Router::new().route("/api/health", get(..)).fallback_service(ws)
/// # let _ = (ws, handle);
/// # Ok(()) }
/// ```
///
/// SIGTERM (wsway's signal handling, on by default) drains as on the own
/// server: `/readyz` turns 503, the pre-drain delay passes, the sockets
/// close in batches with 1001. Hand the host
/// [`handle.draining()`](crate::ServerHandle::draining) as its graceful
/// shutdown signal so it stops accepting then, and await
/// [`handle.stopped()`](crate::ServerHandle::stopped) before exiting.
#[derive(Clone)]
pub struct AppService {
    inner: Arc<ServerInner>,
    remote_of: RemoteOf,
}

impl std::fmt::Debug for AppService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppService").finish_non_exhaustive()
    }
}

impl AppService {
    pub(crate) fn new(inner: Arc<ServerInner>) -> Self {
        AppService {
            inner,
            remote_of: |values| values.get::<SocketAddr>().copied(),
        }
    }

    /// Where the client's address comes from: a request extension the host
    /// sets. Default: a `SocketAddr` extension. With axum served through
    /// `into_make_service_with_connect_info::<SocketAddr>()`:
    /// `.remote_addr(|v| v.get::<ConnectInfo<SocketAddr>>().map(|c| c.0))`.
    /// Without one, the address is `0.0.0.0:0` (per-IP limits then see one
    /// client).
    pub fn remote_addr(mut self, from: RemoteOf) -> Self {
        self.remote_of = from;
        self
    }
}

impl<B> tower_service::Service<http::Request<B>> for AppService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (head, body) = req.into_parts();
        let body = crate::web::request_body::boxed(body);
        let remote = (self.remote_of)(&head.extensions)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let inner = self.inner.clone();
        Box::pin(async move { Ok(answer_detached(inner, head, body, remote, ()).await) })
    }
}
