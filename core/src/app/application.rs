//! [`App`]: routes and settings, independent of any runtime.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use crate::boxed::BoxFuture;
use crate::connection::driver::{self, Start};
use crate::connection::handler::Handler;
use crate::connection::socket::{Info, Ws};
use crate::delivery::outbox::Shared;
use crate::policy::limits::{HttpLimits, Limits};
use crate::topics::pubsub::{Backplane, Topics};
use crate::web::body::{IntoResponse, Response, StatusCode};
use crate::web::middleware::{Middleware, Stack};
use crate::web::request::Request;
use crate::web::router::{RouteError, Router};

/// The source of `wsway.js`, the browser client [`App::serve_client`] serves.
pub const CLIENT_JS: &str = include_str!("../../js/wsway.js");

/// An application: WebSocket routes, plain HTTP routes and their settings.
/// Build it once, then hand it to an adapter's `serve`.
///
/// ```
/// use wsway::{App, Html, on_message};
///
/// let mut app = App::new();
/// app.get("/", |_req| async { Html("<h1>hello</h1>") });
/// app.ws("/echo", on_message(|ws, msg| {
///     ws.send(msg);
/// }));
/// ```
pub struct App {
    pub(crate) router: Router<Entry>,
    pub(crate) fallback: Option<Arc<dyn HttpHandler>>,
    pub(crate) limits: Limits,
    pub(crate) http: HttpLimits,
    pub(crate) topics: Topics,
    /// Middleware every route runs first.
    pub(crate) middleware: Stack,
    /// False once shutdown starts: what [`App::readyz`] reports.
    pub(crate) readiness: Arc<crate::app::readiness::Readiness>,
    /// Values every request and connection reads by type.
    pub(crate) state: crate::state::AppState,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything registered under one path pattern.
#[derive(Default)]
pub(crate) struct Entry {
    pub(crate) ws: Option<WsEntry>,
    pub(crate) get: Option<Arc<dyn HttpHandler>>,
    pub(crate) post: Option<Arc<dyn HttpHandler>>,
    /// The enclosing groups' middleware, outermost first.
    pub(crate) middleware: Stack,
    /// Answered without running any middleware: a health probe, or a
    /// server API endpoint (its key is its check).
    pub(crate) probe: bool,
}

pub(crate) struct WsEntry {
    pub(crate) route: Arc<dyn ErasedWs>,
    pub(crate) tune: Vec<Arc<dyn Fn(Limits) -> Limits + Send + Sync>>,
    pub(crate) protocols: Vec<String>,
    pub(crate) publish_to_self: bool,
    /// The route's own middleware, run after its groups'.
    pub(crate) middleware: Stack,
    /// Resolved when the app starts serving.
    pub(crate) limits: Arc<Limits>,
    pub(crate) count: Arc<AtomicUsize>,
}

impl App {
    /// An app with no routes and the default [`Limits`].
    pub fn new() -> Self {
        App {
            router: Router::default(),
            fallback: None,
            limits: Limits::default(),
            http: HttpLimits::default(),
            topics: Topics::default(),
            middleware: Stack::new(),
            readiness: Arc::default(),
            state: Default::default(),
        }
    }

    /// Shares `value` with every request and connection: read it with
    /// [`Ws::state`](crate::Ws::state) or
    /// [`Request::state`](crate::Request::state), by type, with no clone
    /// in each closure. One value per type; wrap what is not cheap to
    /// clone in an `Arc` (it is cloned once, here).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use wsway::{App, EventError, Events};
    ///
    /// #[derive(Clone, Default)]
    /// struct Stats { calls: Arc<AtomicU64> }
    ///
    /// let mut events = Events::<()>::new();
    /// events.on("count", |ws, (): ()| {
    ///     let n = ws.state::<Stats>().calls.fetch_add(1, Ordering::Relaxed);
    ///     Ok(n + 1)
    /// });
    /// let mut app = App::new();
    /// app.state(Stats::default());
    /// app.ws("/events", events);
    /// ```
    pub fn state<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> &mut Self {
        self.state.insert(value);
        self
    }

    /// Adds middleware that runs before every route (WebSocket and `GET`;
    /// not the fallback), ahead of any group's. See [`Middleware`].
    pub fn middleware(&mut self, middleware: impl Middleware) -> &mut Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// The app's topics: publish to them or count their subscribers from any
    /// task, before or while the app is served.
    pub fn topics(&self) -> Topics {
        self.topics.clone()
    }

    /// Routes publishes through `backplane` (default: [`InProcess`](crate::InProcess)), e.g. to
    /// reach subscribers on other nodes.
    pub fn backplane(&mut self, backplane: impl Backplane) -> &mut Self {
        self.topics.set_backplane(Arc::new(backplane));
        self
    }

    /// Joins every connection whose request carries an identity to its
    /// user's room, for [`Topics::emit_to_user`]. See [`UserRooms`](crate::UserRooms).
    pub fn user_rooms(&mut self, rooms: crate::UserRooms) -> &mut Self {
        self.topics.set_user_rooms(rooms);
        self
    }

    /// Adds a WebSocket route. Patterns take `:name` segments and a final
    /// `*rest`; read them with [`Request::params`] or [`Ws::params`].
    ///
    /// # Panics
    ///
    /// On a malformed pattern or one that conflicts with a registered route,
    /// with a message naming it: route tables are fixed at start-up, so this
    /// fails the program at once. [`App::try_ws`] returns the error instead.
    pub fn ws<H: Handler>(&mut self, path: &str, handler: H) -> WsRoute<'_> {
        match self.try_ws(path, handler) {
            Ok(route) => route,
            Err(e) => panic!("{e}"),
        }
    }

    /// Adds a WebSocket route whose handler is one async function that owns
    /// the connection: `ws_fn(path, f)` is `ws(path, `[`ws_fn`](crate::ws_fn)`(f))`.
    /// See [`Loop`](crate::Loop) and [`Socket`](crate::Socket).
    ///
    /// ```
    /// use wsway::App;
    ///
    /// let mut app = App::new();
    /// app.ws_fn("/echo", |_req, mut socket| async move {
    ///     while let Some(msg) = socket.recv().await {
    ///         socket.send(msg);
    ///     }
    /// });
    /// ```
    ///
    /// # Panics
    ///
    /// As [`App::ws`], on a malformed or conflicting pattern.
    pub fn ws_fn<F, Fut>(&mut self, path: &str, f: F) -> WsRoute<'_>
    where
        F: Fn(crate::Request, crate::Socket) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.ws(path, crate::ws_fn(f))
    }

    /// Adds a WebSocket route, or says why the pattern cannot be added.
    pub fn try_ws<H: Handler>(
        &mut self,
        path: &str,
        handler: H,
    ) -> Result<WsRoute<'_>, RouteError> {
        let entry = self.router.entry(path, Entry::default)?;
        entry.ws = Some(WsEntry {
            route: Arc::new(HandlerRoute(Arc::new(handler))),
            tune: Vec::new(),
            protocols: Vec::new(),
            publish_to_self: false,
            middleware: Stack::new(),
            limits: Arc::new(Limits::default()),
            count: Arc::new(AtomicUsize::new(0)),
        });
        Ok(WsRoute {
            entry: entry.ws.as_mut().expect("just set"),
        })
    }

    /// Adds a plain `GET` (and `HEAD`) route. The handler is an async closure
    /// returning anything that is [`IntoResponse`].
    ///
    /// # Panics
    ///
    /// As [`App::ws`], on a malformed or conflicting pattern.
    pub fn get<F, Fut, R>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.route(path, Arc::new(FnHandler(handler)), |entry| &mut entry.get)
    }

    /// Adds a `POST` route. The handler reads the body when it wants it
    /// ([`Request::bytes`], [`Request::json`]), within
    /// [`App::max_body_bytes`].
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Note {
    ///     text: String,
    /// }
    ///
    /// let mut app = wsway::App::new();
    /// let topics = app.topics();
    /// app.post("/notes", move |mut req| {
    ///     let topics = topics.clone();
    ///     async move {
    ///         let note: Note = match req.json().await {
    ///             Ok(note) => note,
    ///             Err(rejection) => return rejection.into(),
    ///         };
    ///         topics.publish("notes", note.text);
    ///         wsway::text(wsway::StatusCode::ACCEPTED, "published")
    ///     }
    /// });
    /// ```
    ///
    /// # Panics
    ///
    /// As [`App::ws`], on a malformed or conflicting pattern.
    pub fn post<F, Fut, R>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.route(path, Arc::new(FnHandler(handler)), |entry| &mut entry.post)
    }

    /// Puts `handler` in the `method` slot of `path`'s entry.
    fn route(
        &mut self,
        path: &str,
        handler: Arc<dyn HttpHandler>,
        method: fn(&mut Entry) -> &mut Option<Arc<dyn HttpHandler>>,
    ) -> &mut Self {
        match self.router.entry(path, Entry::default) {
            Ok(entry) => *method(entry) = Some(handler),
            Err(e) => panic!("{e}"),
        }
        self
    }

    /// Makes the topics matching `pattern` (an exact name, or a prefix
    /// ending in `*`) keep history: each publish gets a
    /// [`Position`](crate::Position) (reported in
    /// [`Published::position`](crate::Published::position), and carried as
    /// `"topic"` and `"pos"` by event-layer pushes), and a client that
    /// reconnects with its last positions resumes: what it missed is
    /// replayed, in order and once, before anything new, or it is told of
    /// a gap when that is no longer kept. The first matching rule wins.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wsway::{App, Retention};
    ///
    /// let mut app = App::new();
    /// app.history("room:*", Retention::messages(500).max_age(Duration::from_secs(60)));
    /// ```
    ///
    /// In process, each topic's history is a ring in this process; a
    /// multi-node backplane that [stores history](crate::Backplane::stores_history)
    /// (`wsway-redis`) keeps it in its store instead, and a resume works
    /// the same on any node.
    pub fn history(&mut self, pattern: &str, retention: crate::Retention) -> &mut Self {
        self.topics.keep_history(pattern, retention);
        self
    }

    /// A liveness probe at `path`: `200 ok` for as long as the process
    /// serves HTTP, draining included (a restart is not a failure). It runs
    /// no middleware, so a probe needs no credentials.
    ///
    /// ```
    /// let mut app = wsway::App::new();
    /// app.livez("/livez").readyz("/readyz");
    /// ```
    ///
    /// # Panics
    ///
    /// As [`App::get`].
    pub fn livez(&mut self, path: &str) -> &mut Self {
        self.probe(path, |_| (StatusCode::OK, "ok"))
    }

    /// A readiness probe at `path`: `200 ready` until shutdown starts, then
    /// `503 draining` at once, through the
    /// [pre-drain delay](crate::Server::pre_drain_delay) and the drain, so
    /// a load balancer stops sending new clients. No middleware runs.
    ///
    /// # Panics
    ///
    /// As [`App::get`].
    pub fn readyz(&mut self, path: &str) -> &mut Self {
        self.probe(path, |ready| {
            if ready {
                (StatusCode::OK, "ready")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "draining")
            }
        })
    }

    fn probe(&mut self, path: &str, answer: fn(bool) -> (StatusCode, &'static str)) -> &mut Self {
        let readiness = self.readiness.clone();
        self.get(path, move |_req| {
            let (status, body) = answer(readiness.is_ready());
            async move { crate::web::body::text(status, body) }
        });
        if let Ok(entry) = self.router.entry(path, Entry::default) {
            entry.probe = true;
        }
        self
    }

    /// Adds the server API under `base`: JSON endpoints through which a
    /// backend publishes to a topic or a user's room, asks who is present,
    /// reads a topic's history, lists the busiest topics and closes a
    /// user's sockets, without holding a socket. Every request carries the
    /// key as
    /// `Authorization: Bearer <key>`; anything else is a bare `401`. No
    /// middleware runs on these routes. `docs/server-api.openapi.json` (OpenAPI 3.1)
    /// describes every endpoint.
    ///
    /// | endpoint | does |
    /// |---|---|
    /// | `POST {base}/publish` | `{"topic", "text" \| "binary" (base64) \| "event" + "data"}` to every subscriber, on every node |
    /// | `POST {base}/publish_user` | the same with `"user"`: every socket of that user ([`App::user_rooms`]) |
    /// | `GET {base}/presence?topic=` | who is tracked in the topic, on every node |
    /// | `GET {base}/presence_count?topic=` | how many |
    /// | `GET {base}/history?topic=&since=` | what a topic that keeps history holds after a position, and whether that is all that followed it |
    /// | `GET {base}/topics?limit=` | the busiest topics over every node, with their subscribers |
    /// | `POST {base}/disconnect` | `{"user" \| "topic" \| "member", "code", "reason"}`: closes those sockets (or that one connection) on every node, after what was sent to them |
    ///
    /// A malformed body is a `400` naming the field, one over
    /// [`App::max_body_bytes`] a `413`, a presence query the store cannot
    /// answer a `503`.
    ///
    /// ```
    /// # fn main() -> Result<(), wsway::ApiKeyError> {
    /// let mut app = wsway::App::new();
    /// # let from_env = "a-long-random-secret-from-the-env";
    /// app.server_api("/api", wsway::ApiKey::new(from_env)?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`App::get`], when a path under `base` is taken.
    pub fn server_api(&mut self, base: &str, key: crate::ApiKey) -> &mut Self {
        let api = crate::api::Api::new(key, self.topics.clone());
        let base = base.trim_end_matches('/');
        for endpoint in crate::api::ENDPOINTS {
            let path = format!("{base}{}", endpoint.path);
            let api = api.clone();
            let answer = move |req: Request| api.answer(endpoint, req);
            if endpoint.post {
                self.post(&path, answer);
            } else {
                self.get(&path, answer);
            }
            if let Ok(entry) = self.router.entry(&path, Entry::default) {
                entry.probe = true;
            }
        }
        self
    }

    /// Serves the admin page at `base`: one page (no build step, nothing
    /// from a CDN: it works offline) that shows every node live, refreshed
    /// each second through a WebSocket of its own at `{base}/stream`:
    /// connections over time, messages in and out per second, the topics
    /// with most subscribers and their publish rates, the presence of a
    /// topic you pick, closes by code, each node's health (its store link,
    /// the queue to it, draining), and the server API's disconnect as
    /// buttons. Off unless called.
    ///
    /// The browser asks for the key (HTTP Basic: any user name, the key
    /// as the password); the page's stream then carries a session token
    /// valid on any node with the same key. No middleware runs on the
    /// page. Nothing is counted while no page is open: the figures are
    /// counted, and reported every second, only while one is.
    ///
    /// ```
    /// # fn main() -> Result<(), wsway::ApiKeyError> {
    /// let mut app = wsway::App::new();
    /// # let from_env = "a-long-random-secret-from-the-env";
    /// app.admin("/admin", wsway::ApiKey::new(from_env)?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`App::get`], when `base` or `{base}/stream` is taken.
    pub fn admin(&mut self, base: &str, key: crate::ApiKey) -> &mut Self {
        let admin = crate::admin::Admin::new(base, key);
        let page = admin.page_path();
        let serving = admin.clone();
        self.get(&page, move |req: Request| {
            let res = serving.page(&req);
            async move { res }
        });
        if let Ok(entry) = self.router.entry(&page, Entry::default) {
            entry.probe = true;
        }
        let stream_path = admin.stream_path();
        let checking = admin.clone();
        let topics = self.topics.clone();
        let stream = crate::loop_fn::ws_fn(move |req, socket| {
            crate::admin::stream::stream(topics.clone(), req, socket)
        });
        // The page offers `wsway.admin` beside its token: a browser fails an
        // upgrade that chooses no subprotocol it offered.
        self.ws(&stream_path, stream)
            .protocols([crate::admin::PROTOCOL])
            .middleware(crate::Bearer::protocol(move |token: String| {
                let ok = checking.session_valid(&token);
                async move { ok.then_some(()) }
            }));
        self
    }

    /// Answers requests no route matches (default: 404).
    pub fn fallback<F, Fut, R>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.fallback = Some(Arc::new(FnHandler(handler)));
        self
    }

    /// Serves `wsway.js`, the browser client for [`Events`](crate::Events),
    /// at `path` (conventionally `/wsway.js`): a plain ES module, no build
    /// step. Import it with `import { connect } from "/wsway.js"`.
    pub fn serve_client(&mut self, path: &str) -> &mut Self {
        self.get(path, |_req| async {
            let mut res = Response::new(crate::web::body::Body::from(CLIENT_JS));
            let headers = res.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/javascript; charset=utf-8"),
            );
            headers.insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-cache"),
            );
            res
        })
    }

    /// Replaces the app-wide [`Limits`] (routes can adjust them further).
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.limits = limits;
        self
    }

    /// How long a client has to send a complete request head. A client that
    /// sends half a request is dropped when it passes. Default: 10 s.
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.http.handshake_timeout = timeout;
        self
    }

    /// Most request headers accepted; more gets `431`. Default: 100.
    pub fn max_headers(&mut self, max: usize) -> &mut Self {
        self.http.max_headers = max.max(1);
        self
    }

    /// The largest request body a plain route reads (default 1 MiB);
    /// beyond it, [`Request::bytes`] and [`Request::json`] refuse with
    /// `413 Payload Too Large`, before reading when `Content-Length` says so.
    pub fn max_body_bytes(&mut self, max: usize) -> &mut Self {
        self.http.max_body_bytes = max;
        self
    }

    /// Largest request head (request line and headers) in bytes; larger gets
    /// `431`. Default: 16 KiB.
    pub fn max_header_bytes(&mut self, max: usize) -> &mut Self {
        self.http.max_header_bytes = max.max(1024);
        self
    }

    /// True when the app has at least one WebSocket route. Without one, no
    /// upgrade handling is installed at all.
    pub fn has_websockets(&self) -> bool {
        self.router.values().any(|e| e.ws.is_some())
    }

    /// Resolves each route's limits against the app's.
    pub(crate) fn freeze(&mut self) {
        let base = self.limits.clone();
        for entry in self.router.values_mut() {
            if let Some(ws) = &mut entry.ws {
                let limits = ws.tune.iter().fold(base.clone(), |l, f| f(l));
                ws.limits = Arc::new(limits);
            }
        }
    }
}

/// A WebSocket route being configured; returned by [`App::ws`].
pub struct WsRoute<'a> {
    entry: &'a mut WsEntry,
}

impl WsRoute<'_> {
    /// Adjusts this route's limits, starting from the app's:
    ///
    /// ```
    /// # use wsway::{App, on_message};
    /// let mut app = App::new();
    /// app.ws("/upload", on_message(|_, _| {}))
    ///     .limits(|l| l.max_message_size(64 << 20).max_connections(Some(100)));
    /// ```
    pub fn limits(self, f: impl Fn(Limits) -> Limits + Send + Sync + 'static) -> Self {
        self.entry.tune.push(Arc::new(f));
        self
    }

    /// Adds middleware for this route alone, run after the app's and its
    /// groups'. See [`Middleware`].
    pub fn middleware(self, middleware: impl Middleware) -> Self {
        self.entry.middleware.push(Arc::new(middleware));
        self
    }

    /// Compresses this route's messages with permessage-deflate when the
    /// client offers it: see [`Compression`](crate::Compression). Off by
    /// default (or as the app's [`Limits`] say).
    pub fn compression(self, compression: crate::Compression) -> Self {
        self.limits(move |l| l.compression(compression))
    }

    /// Whether [`Ws::publish`] also delivers to the publishing connection
    /// (Bun's `publishToSelf`). Default: `false`.
    pub fn publish_to_self(self, on: bool) -> Self {
        self.entry.publish_to_self = on;
        self
    }

    /// Subprotocols this route speaks, most preferred first. When the handler
    /// does not choose one itself, the first of these the client offered is
    /// chosen; when none matches, no subprotocol is agreed.
    pub fn protocols<I, S>(self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entry.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }
}

/// A plain HTTP handler, type-erased.
pub(crate) trait HttpHandler: Send + Sync + 'static {
    fn call(&self, req: Request) -> BoxFuture<'static, Response>;
}

struct FnHandler<F>(F);

impl<F, Fut, R> HttpHandler for FnHandler<F>
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    fn call(&self, req: Request) -> BoxFuture<'static, Response> {
        let fut = (self.0)(req);
        Box::pin(async move { fut.await.into_response() })
    }
}

/// A WebSocket route with its handler type erased, so routes of different
/// handlers share one table.
pub(crate) trait ErasedWs: Send + Sync + 'static {
    fn before_upgrade<'a>(
        &'a self,
        req: &'a Request,
    ) -> BoxFuture<'a, Result<Box<dyn Accepted>, Response>>;
}

/// An accepted upgrade, before its `101`.
pub(crate) trait Accepted: Send {
    fn protocol(&self) -> Option<&str>;
    fn set_protocol(&mut self, protocol: Option<String>);
    /// Builds the connection's [`Ws`] and runs `open`, before the `101`.
    fn open(
        self: Box<Self>,
        info: Arc<Info>,
        shared: Arc<Shared>,
        topics: Topics,
    ) -> BoxFuture<'static, Box<dyn Opened>>;
}

/// A connection whose `open` has run, waiting for its socket.
pub(crate) trait Opened: Send {
    /// The socket is here: the connection's whole life as one future, in
    /// `span`.
    fn run(self: Box<Self>, start: Start, span: crate::observe::Span) -> BoxFuture<'static, ()>;
    /// The socket never came: `close` runs with 1006.
    fn abandon(self: Box<Self>) -> BoxFuture<'static, ()>;
}

struct HandlerRoute<H>(Arc<H>);

struct AcceptedWith<H: Handler> {
    handler: Arc<H>,
    accept: crate::connection::handler::Accept<H::Data>,
}

impl<H: Handler> ErasedWs for HandlerRoute<H> {
    fn before_upgrade<'a>(
        &'a self,
        req: &'a Request,
    ) -> BoxFuture<'a, Result<Box<dyn Accepted>, Response>> {
        Box::pin(async move {
            let accept = self.0.before_upgrade(req).await?;
            Ok(Box::new(AcceptedWith {
                handler: self.0.clone(),
                accept,
            }) as Box<dyn Accepted>)
        })
    }
}

impl<H: Handler> Accepted for AcceptedWith<H> {
    fn protocol(&self) -> Option<&str> {
        self.accept.protocol.as_deref()
    }

    fn set_protocol(&mut self, protocol: Option<String>) {
        self.accept.protocol = protocol;
    }

    fn open(
        self: Box<Self>,
        info: Arc<Info>,
        shared: Arc<Shared>,
        topics: Topics,
    ) -> BoxFuture<'static, Box<dyn Opened>> {
        let AcceptedWith { handler, accept } = *self;
        let ws = Ws::new(accept.data, shared, info, topics);
        Box::pin(async move { Box::new(driver::open(handler, ws).await) as Box<dyn Opened> })
    }
}

impl<H: Handler> Opened for driver::Opened<H> {
    fn run(self: Box<Self>, start: Start, span: crate::observe::Span) -> BoxFuture<'static, ()> {
        driver::run(*self, start, span)
    }

    fn abandon(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(driver::abandon(*self))
    }
}
