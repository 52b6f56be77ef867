//! The server: the accept loop, the graceful shutdown sequence and the
//! [`ServerHandle`], written once for every runtime.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use crate::app::application::App;
use crate::app::readiness::Readiness;
use crate::connection::registry::Registry;
use crate::io::Io;
use crate::message::{CloseCode, Message};
use crate::runtime::within;
use crate::runtime::{HyperTimer, Rt, Runtime};
use crate::server::drain::{self, DrainPlan};
use crate::server::serve::serve_connection;
use crate::server::shared::ServerInner;
use crate::topics::pubsub::{Published, Topics};
use crate::trigger::Trigger;

/// A bound listening socket, as an adapter provides it.
pub trait Listener: Send + 'static {
    /// The accepted stream type.
    type Io: Io;

    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;

    /// The address it listens on.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// A second handle on `io`'s socket that other tasks may write to
    /// without waiting (see [`TryWrite`](crate::rt::TryWrite)), or `None`
    /// (the default) when the stream cannot be shared: then every write
    /// goes through the connection's own task. Core uses it only for a
    /// plain WebSocket over HTTP/1.1 without compression, once the
    /// upgrade's response is written.
    fn try_writer(io: &Self::Io) -> Option<std::sync::Arc<dyn crate::rt::TryWrite>> {
        let _ = io;
        None
    }
}

/// Server settings around an [`App`]. Adapters start it on their runtime:
/// `wsway_tokio::start(Server::new(app).shutdown_timeout(..), addr)`.
pub struct Server {
    app: App,
    /// The host's address, when mounted (`into_service`).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    mounted_at: Option<SocketAddr>,
    pub(crate) shutdown_timeout: Duration,
    signals: bool,
    pub(crate) connection_limit: Option<usize>,
    pub(crate) drain: DrainPlan,
    #[cfg(feature = "tls")]
    tls: Option<crate::server::tls::Tls>,
    /// HTTP/2 beside HTTP/1.1: the most streams one connection may open.
    #[cfg(feature = "http2")]
    pub(crate) http2: Option<u32>,
}

impl From<App> for Server {
    fn from(app: App) -> Self {
        Server::new(app)
    }
}

impl Server {
    /// Wraps an app with the default settings.
    pub fn new(app: App) -> Self {
        Server {
            app,
            mounted_at: None,
            shutdown_timeout: Duration::from_secs(10),
            signals: true,
            connection_limit: None,
            drain: DrainPlan::default(),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "http2")]
            http2: None,
        }
    }

    /// Speaks HTTP/2 beside HTTP/1.1 (feature `http2`): h2c with prior
    /// knowledge on plain TCP and ALPN `h2` under [TLS](Self::tls) (ALPN
    /// then offers `h2` and `http/1.1`), announcing
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL` so that clients open WebSockets
    /// as extended CONNECT streams (RFC 8441), many on one connection.
    /// Each stream is a WebSocket like any other (its limits, backpressure
    /// through HTTP/2 flow control, its own close); a reset stream ends
    /// that socket alone (`close` sees 1006). A drain closes every stream
    /// with its close code, then sends GOAWAY. Default: HTTP/1.1 only.
    ///
    /// ```
    /// # fn f(app: wsway::App) -> wsway::Server {
    /// wsway::Server::new(app).http2().max_streams_per_connection(256)
    /// # }
    /// ```
    #[cfg(feature = "http2")]
    pub fn http2(mut self) -> Self {
        self.http2 = Some(
            self.http2
                .unwrap_or(crate::server::http2::DEFAULT_MAX_STREAMS),
        );
        self
    }

    /// With [HTTP/2](Self::http2): the most streams (WebSockets and plain
    /// requests) open at once on one connection, announced as
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`; a stream past it is refused with
    /// `REFUSED_STREAM`, which tells the client to retry it. Turns HTTP/2
    /// on. Default: 100.
    #[cfg(feature = "http2")]
    pub fn max_streams_per_connection(mut self, max: u32) -> Self {
        self.http2 = Some(max);
        self
    }

    /// Serves `wss://` (and `https://` for the app's plain routes) with
    /// this certificate: a [`Tls`](crate::Tls) from PEM files, or a rustls
    /// `ServerConfig` as it is. The TLS handshake counts against
    /// [`App::handshake_timeout`]: a client that does not finish it in time
    /// is dropped. When the certificate came from files, SIGHUP (with
    /// [signal handling](Self::handle_signals) on) and
    /// [`ServerHandle::reload_tls`] re-read them. Default: no TLS.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: impl Into<crate::server::tls::Tls>) -> Self {
        self.tls = Some(tls.into());
        self
    }

    /// After SIGTERM (or [`ServerHandle::shutdown`]), how long to keep
    /// accepting and serving as usual before the drain starts, with
    /// [`App::readyz`] already answering 503: the time a load balancer
    /// needs to take the process out of rotation. Default: 0.
    pub fn pre_drain_delay(mut self, delay: Duration) -> Self {
        self.drain.pre_delay = delay;
        self
    }

    /// The close code a drain sends. Default: 1001 (Going Away); 1012
    /// (Service Restart) is the usual choice for a restart. `wsway.js`
    /// reconnects after either.
    pub fn drain_close_code(mut self, code: impl Into<CloseCode>) -> Self {
        self.drain.code = code.into();
        self
    }

    /// Connections are closed in batches spread evenly over this window
    /// (at most half the [shutdown timeout](Self::shutdown_timeout)), so
    /// their reconnects do not all land on the next process at once.
    /// Zero closes them all at once. Default: 2 s.
    pub fn drain_window(mut self, window: Duration) -> Self {
        self.drain.window = window;
        self
    }

    /// The reconnect hint a drain's close carries (`retry-in=<ms>` in its
    /// reason): `wsway.js` waits a random time within it before
    /// reconnecting, so clients closed in the same batch spread out.
    /// Default: 5 s.
    pub fn reconnect_window(mut self, window: Duration) -> Self {
        self.drain.reconnect_window = window;
        self
    }

    /// How long a graceful shutdown waits for connections to flush and finish
    /// their closing handshakes before terminating the rest. Default: 10 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether SIGTERM and SIGINT start a graceful shutdown (a second signal
    /// terminates at once). Turn it off when the process manages signals
    /// itself, or runs several servers. Default: on (Unix only).
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.signals = on;
        self
    }

    /// Most TCP connections (HTTP or WebSocket) open at once. A socket
    /// accepted beyond it gets a canned `503` in one non-blocking write and
    /// is closed, before anything is allocated for it: an overload costs
    /// almost nothing. (The per-route WebSocket cap,
    /// [`Limits::max_connections`](crate::Limits::max_connections), answers
    /// 503 to the upgrade itself.) Default: no limit.
    pub fn connection_limit(mut self, max: Option<usize>) -> Self {
        self.connection_limit = max;
        self
    }

    /// Starts serving connections from `listener` on `runtime`. This is the
    /// entry point for adapter crates; applications call their adapter's
    /// `serve` or `start`.
    pub fn start<L: Listener>(
        self,
        listener: L,
        runtime: impl Runtime,
    ) -> io::Result<ServerHandle> {
        let timeout = self.shutdown_timeout;
        let (inner, handle) = self.launch(listener.local_addr()?, runtime)?;
        let rt = inner.rt.clone();
        rt.spawn(Box::pin(run(inner, listener, handle.clone(), timeout)));
        Ok(handle)
    }

    /// When mounted ([`into_service`](Self::into_service)): the address
    /// the host listens on, which [`ServerHandle::local_addr`] then reports.
    /// Default: `0.0.0.0:0` (a mounted app does not know its address).
    #[cfg(feature = "tower")]
    pub fn mounted_at(mut self, addr: SocketAddr) -> Self {
        self.mounted_at = Some(addr);
        self
    }

    /// The app as a `tower::Service` for another server to mount (an axum
    /// router, a hyper server), on `runtime` (the host's: for axum,
    /// [`wsway_tokio::runtime()`](https://docs.rs/wsway-tokio)), and the
    /// handle that drains it. See [`AppService`](crate::AppService).
    #[cfg(feature = "tower")]
    pub fn into_service(
        self,
        runtime: impl Runtime,
    ) -> io::Result<(crate::AppService, ServerHandle)> {
        let timeout = self.shutdown_timeout;
        let at = self
            .mounted_at
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (inner, handle) = self.launch(at, runtime)?;
        let rt = inner.rt.clone();
        let (server, stopping) = (inner.clone(), handle.clone());
        rt.spawn(Box::pin(async move {
            server.registry.shutting_down.wait().await;
            finish(&server, &stopping, timeout).await;
        }));
        Ok((crate::server::hosted::AppService::new(inner), handle))
    }

    /// Everything a server runs on but its listener: the shared state, the
    /// handle, signal handling, the idle sweeper, the backplane, metrics.
    fn launch(
        self,
        local_addr: SocketAddr,
        runtime: impl Runtime,
    ) -> io::Result<(Arc<ServerInner>, ServerHandle)> {
        let Server {
            mut app,
            mounted_at: _,
            shutdown_timeout,
            signals,
            connection_limit,
            drain,
            #[cfg(feature = "tls")]
            tls,
            #[cfg(feature = "http2")]
            http2,
        } = self;
        #[cfg(all(feature = "tls", feature = "http2"))]
        let tls = tls.map(|tls| tls.offering_h2(http2.is_some()));
        #[cfg(feature = "tls")]
        let tls = tls.map(|tls| Arc::new(crate::server::tls::Acceptor::new(tls)));
        app.freeze();
        let rt: Rt = Arc::new(runtime);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(HyperTimer(rt.clone()))
            .header_read_timeout(app.http.handshake_timeout)
            .max_header_size(app.http.max_header_bytes);
        // Only when changed: a custom count moves hyper's header parsing to the heap.
        if app.http.max_headers != crate::policy::limits::DEFAULT_MAX_HEADERS {
            http.max_headers(app.http.max_headers);
        }
        #[cfg(feature = "http2")]
        let http2 = http2.map(|max| crate::server::http2::builder(&rt, &app, max));
        let registry = Arc::new(Registry::default());
        let _ = registry.drain_close.set((drain.code, drain.reason()));
        let topics = app.topics.clone();
        let readiness = app.readiness.clone();
        let tick = crate::server::answer::sweep_tick(&app);
        let inner = Arc::new(ServerInner {
            connection_limit,
            tick,
            has_ws: app.has_websockets(),
            app,
            rt: rt.clone(),
            registry: registry.clone(),
            http,
            #[cfg(feature = "http2")]
            http2,
            #[cfg(feature = "tls")]
            tls: tls.clone(),
        });
        let handle = ServerHandle {
            state: Arc::new(HandleState {
                local_addr,
                registry,
                topics,
                done: Trigger::default(),
                signals: Mutex::new(None),
                rt: rt.clone(),
                readiness,
                drain,
                deadline: shutdown_timeout,
                drain_begun: AtomicBool::new(false),
                #[cfg(feature = "tls")]
                tls,
            }),
        };
        #[cfg(unix)]
        if signals {
            let control = crate::server::shutdown::watch_signals(handle.clone())?;
            *handle
                .state
                .signals
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(control);
        }
        #[cfg(not(unix))]
        let _ = signals;
        if let Some(tick) = tick {
            rt.spawn(Box::pin(sweep(inner.clone(), handle.clone(), tick)));
        }
        handle
            .state
            .topics
            .start(rt.clone(), handle.state.registry.clone());
        #[cfg(feature = "metrics")]
        rt.spawn(Box::pin(sample_queues(inner.clone(), handle.clone())));
        Ok((inner, handle))
    }
}

async fn run<L: Listener>(
    inner: Arc<ServerInner>,
    mut listener: L,
    handle: ServerHandle,
    timeout: Duration,
) {
    {
        let mut stop = pin!(inner.registry.shutting_down.wait());
        loop {
            let accepted = {
                let mut accept = pin!(listener.accept());
                poll_fn(|cx| {
                    if stop.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    accept.as_mut().poll(cx).map(Some)
                })
                .await
            };
            match accepted {
                None => break,
                Some(Ok((io, remote)))
                    if inner
                        .connection_limit
                        .is_some_and(|max| inner.registry.tasks() >= max) =>
                {
                    crate::observe::refused_at_accept(remote);
                    refuse(io, inner.is_tls());
                }
                Some(Ok((io, remote))) => {
                    let writer = L::try_writer(&io);
                    let task = serve_connection(inner.clone(), Box::new(io), remote, writer);
                    inner.rt.spawn(Box::pin(task));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Some(Err(_)) => inner.rt.sleep(Duration::from_millis(20)).await,
            }
        }
    }
    drop(listener);
    finish(&inner, &handle, timeout).await;
}

/// The end of a shutdown, listener or not: the connections (told at
/// `shutdown()`) get the deadline to flush and finish their closing
/// handshakes, the rest are dropped, the backplane forwards what is left,
/// and the server is stopped.
async fn finish(inner: &ServerInner, handle: &ServerHandle, timeout: Duration) {
    let registry = &inner.registry;
    if !within(&inner.rt, timeout, wait_idle(registry)).await {
        crate::observe::terminated_at_deadline(registry.terminate_all());
        within(&inner.rt, Duration::from_secs(2), wait_idle(registry)).await;
    }
    // What the connections published before they closed still reaches
    // the other nodes; the backplane gets a bounded time to forward it.
    within(&inner.rt, BACKPLANE_STOP, handle.state.topics.stop()).await;
    if let Some(signals) = handle
        .state
        .signals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        signals.close();
    }
    handle.state.done.fire();
}

/// How long a stopping server waits for its backplane to finish forwarding.
const BACKPLANE_STOP: Duration = Duration::from_secs(5);

/// The idle sweeper: one pass over the connections per tick, until the
/// server has stopped.
async fn sweep(inner: Arc<ServerInner>, handle: ServerHandle, tick: Duration) {
    while !handle.is_stopped() {
        inner.rt.sleep(tick).await;
        inner.registry.sweep();
    }
}

/// Answers a socket over the connection limit with a canned 503, if the
/// socket takes it in one non-blocking write, and closes it. Nothing is
/// spawned or allocated for it. Under TLS the socket is only closed: a
/// plaintext answer would mean nothing to a client expecting a handshake.
fn refuse<S: Io>(mut io: S, tls: bool) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 42\r\nconnection: close\r\n\r\nserver at its connection limit; try later\n";
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if !tls {
        let _ = std::pin::Pin::new(&mut io).poll_write(&mut cx, BUSY);
    }
    let _ = std::pin::Pin::new(&mut io).poll_close(&mut cx);
}

/// Samples the send queues into their gauges once a second while the
/// server runs (a gauge updated on every send would put one contended
/// atomic on every message).
#[cfg(feature = "metrics")]
async fn sample_queues(inner: Arc<ServerInner>, handle: ServerHandle) {
    while !handle.is_stopped() {
        let (total, max) = inner.registry.queued_bytes();
        crate::observe::queues(total, max);
        inner.rt.sleep(Duration::from_secs(1)).await;
    }
    crate::observe::queues(0, 0);
}

async fn wait_idle(registry: &Registry) {
    loop {
        if registry.tasks() == 0 {
            return;
        }
        let listener = registry.idle.listen();
        if registry.tasks() == 0 {
            return;
        }
        listener.await;
    }
}

/// A running server: its address, its load, and its shutdown.
/// Cloneable, `Send + Sync`; usable from any task or thread.
#[derive(Clone)]
pub struct ServerHandle {
    state: Arc<HandleState>,
}

struct HandleState {
    local_addr: SocketAddr,
    registry: Arc<Registry>,
    topics: Topics,
    done: Trigger,
    #[cfg_attr(not(unix), allow(dead_code))]
    signals: Mutex<Option<signal_hook::iterator::Handle>>,
    rt: Rt,
    readiness: Arc<Readiness>,
    drain: DrainPlan,
    deadline: Duration,
    drain_begun: AtomicBool,
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::server::tls::Acceptor>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.state.local_addr)
            .field("connections", &self.connections())
            .finish()
    }
}

impl ServerHandle {
    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.state.local_addr
    }

    /// The app's topics (the same as [`App::topics`]).
    pub fn topics(&self) -> Topics {
        self.state.topics.clone()
    }

    /// Publishes `msg` to every subscriber of `topic`, from any task.
    pub fn publish(&self, topic: &str, msg: impl Into<Message>) -> Published {
        self.state.topics.publish(topic, msg)
    }

    /// Subscribers of `topic` on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.state.topics.subscriber_count(topic)
    }

    /// Connection tasks running now: one per open TCP connection, HTTP or
    /// WebSocket. Back to 0 once every client has gone.
    pub fn tasks(&self) -> usize {
        self.state.registry.tasks()
    }

    /// WebSocket connections open now (counted from the accepted upgrade).
    pub fn connections(&self) -> usize {
        self.state.registry.websockets()
    }

    /// Starts a graceful shutdown and returns at once. [`App::readyz`]
    /// answers 503 from now on. After the
    /// [pre-drain delay](Server::pre_drain_delay) (none by default) the
    /// drain starts: stop accepting (an upgrade already on its way gets 503
    /// with `Retry-After`), and close the connections in batches over the
    /// [drain window](Server::drain_window). Each keeps handling what it
    /// receives for a 50 ms grace (messages in flight get answered),
    /// flushes its queue, and sends the
    /// [drain close](Server::drain_close_code) with the reconnect hint.
    /// The closing handshakes get the shutdown timeout; the rest are
    /// terminated. Await [`stopped`](Self::stopped) for the end.
    pub fn shutdown(&self) {
        let state = &self.state;
        if !state.readiness.drain() {
            return;
        }
        if state.drain.pre_delay.is_zero() {
            self.begin_drain();
            return;
        }
        // Called from any thread (the signal thread, usually): the timer is
        // made on the runtime, inside the task.
        let handle = self.clone();
        state.rt.spawn(Box::pin(async move {
            let state = &handle.state;
            state.rt.sleep(state.drain.pre_delay).await;
            handle.begin_drain();
        }));
    }

    fn begin_drain(&self) {
        let state = &self.state;
        if state.drain_begun.swap(true, Ordering::AcqRel) {
            return;
        }
        let registry = &state.registry;
        registry.shutting_down.fire();
        let window = state.drain.window_within(state.deadline);
        drain::spread(&state.rt, registry.connections(), window);
    }

    /// Drops every connection at once, without close frames (their `close`
    /// callbacks still run), and stops the server.
    pub fn terminate(&self) {
        self.state.readiness.drain();
        self.begin_drain();
        self.state.registry.terminate_all();
    }

    /// Resolves once the drain has begun: after [`shutdown`](Self::shutdown)
    /// and its [pre-drain delay](Server::pre_drain_delay). A host that
    /// mounts the app ([`AppService`](crate::AppService)) stops accepting
    /// here: `axum::serve(..).with_graceful_shutdown(handle.draining())`.
    pub async fn draining(self) {
        self.state.registry.shutting_down.wait().await
    }

    /// Resolves once the server has shut down and every connection has ended
    /// (or the deadline passed).
    pub async fn stopped(&self) {
        self.state.done.wait().await
    }

    /// True once the server has shut down.
    pub fn is_stopped(&self) -> bool {
        self.state.done.is_fired()
    }

    /// Re-reads the certificate and key files given to
    /// [`Tls::from_pem_files`](crate::Tls::from_pem_files) (SIGHUP does the
    /// same). Handshakes that start after it returns get the new
    /// certificate; open sockets keep going. On error nothing changes: the
    /// old certificate stays in use.
    #[cfg(feature = "tls")]
    pub fn reload_tls(&self) -> Result<(), crate::server::tls::TlsError> {
        let tls = self
            .state
            .tls
            .as_ref()
            .ok_or(crate::server::tls::TlsError::NotEnabled)?;
        let result = tls.reload();
        crate::observe::tls_reloaded(result.as_ref().err().map(|e| e as &dyn std::fmt::Display));
        result
    }

    /// Replaces the TLS configuration new handshakes get; open sockets keep
    /// theirs. For a server given a rustls `ServerConfig`.
    #[cfg(feature = "tls")]
    pub fn set_tls_config(
        &self,
        config: impl Into<Arc<crate::server::tls::rustls::ServerConfig>>,
    ) -> Result<(), crate::server::tls::TlsError> {
        let tls = self
            .state
            .tls
            .as_ref()
            .ok_or(crate::server::tls::TlsError::NotEnabled)?;
        tls.set(config.into());
        Ok(())
    }

    /// Whether SIGHUP has certificate files to re-read.
    #[cfg(all(unix, feature = "tls"))]
    pub(crate) fn reloads_on_hangup(&self) -> bool {
        self.state.tls.as_ref().is_some_and(|t| t.has_files())
    }
}
