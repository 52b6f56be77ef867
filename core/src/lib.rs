//! WebSocket servers written once, run on tokio, async-std or smol.
//!
//! An application is an [`App`]: WebSocket routes with a [`Handler`], plain
//! HTTP routes, [`Middleware`] and route [`Group`]s, and [`Limits`]. For
//! named JSON events with acknowledgements, register [`Events`] (itself a
//! `Handler`) and serve the browser client with [`App::serve_client`]. For
//! one async function that owns each connection (`while let Some(msg) =
//! socket.recv().await`), use [`App::ws_fn`] and its [`Socket`]. An
//! adapter crate (`wsway-tokio`, `wsway-smol` or `wsway-async-std`) binds
//! the app to a port on its runtime.
//! Swapping runtimes is swapping that one crate: the application does not
//! change.
//!
//! # Example
//!
//! ```no_run
//! use wsway::{Accept, App, Handler, Message, Request, Response, Ws};
//!
//! /// A chat room per path: `/chat/:room`.
//! struct Chat;
//!
//! #[derive(Default)]
//! struct Member {
//!     room: String,
//! }
//!
//! impl Handler for Chat {
//!     type Data = Member;
//!
//!     async fn before_upgrade(&self, req: &Request) -> Result<Accept<Member>, Response> {
//!         // A room that is not a valid string is a 400 naming `room`.
//!         let room: String = req.params()?;
//!         Ok(Accept::new(Member { room }))
//!     }
//!
//!     async fn message(&self, ws: &mut Ws<Member>, msg: Message) {
//!         if let Some(text) = msg.as_text() {
//!             ws.send(format!("[{}] {text}", ws.data.room));
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let mut app = App::new();
//!     app.ws("/chat/:room", Chat);
//!     wsway_tokio::serve(app, "127.0.0.1:3000").await
//! }
//! ```
//!
//! # How it works
//!
//! Each accepted TCP connection is one task. hyper parses HTTP/1.1 until a
//! request upgrades; core checks the handshake (RFC 6455 §4.2), runs
//! `before_upgrade`, answers 101, takes the raw stream back from hyper and
//! runs the connection's driver on the same task. The driver reads frames
//! with wsway's own codec, runs the handler's callbacks one at a time,
//! writes what they queue in batches, keeps the idle and close timers, and
//! performs the closing handshake. Sends from other tasks go through a
//! [`Handle`] into the same queue.
//!
//! # Layout
//!
//! The folders are the layers, lowest first; a module imports only from
//! its own layer and the ones below, and no two modules import each other
//! (`tests/layers.rs` reads the imports and checks both).
//!
//! | layer | what it owns |
//! |---|---|
//! | [`protocol`] | the `wsway-protocol` crate: RFC 6455 and 7692 sans I/O |
//! | base (`runtime`, `io`, `boxed`, `message`, `error`, `state`, `trigger`, `observe`) | the [`rt::Runtime`] seam, the stream type, [`Message`], [`CloseCode`], [`Error`], app state, a one-shot trigger, tracing and metrics hooks |
//! | `web` | the handshake checks and the 101, [`Request`], [`Response`], `:name` / `*rest` routes, typed extraction ([`Rejection`]), [`Middleware`] |
//! | `policy` | [`Limits`], [`Origins`], [`Bearer`], [`HandshakeLimit`], [`Compression`] |
//! | `delivery` | a connection's outbox ([`SendStatus`], backpressure, deferred work) and topics' history ([`Position`], [`Retention`]) |
//! | `topics` | [`Topics`] and the [`Backplane`] seam, presence, resume, [`UserRooms`] |
//! | `connection` | the driver (reads, writes, timers, close), the codec, [`Ws`], [`Handle`], [`Timer`], the [`Handler`] trait, the registry of live connections |
//! | `events`, `loop_fn`, `api` | the faces: on top of `Handler`, [`Events`] and [`Socket`] for [`ws_fn`]; on top of [`Topics`], the server API ([`App::server_api`]) |
//! | `app` | [`App`] and route [`Group`]s |
//! | `server` | [`Server`], the accept loop, one TCP connection's HTTP and upgrade, shutdown and drain, [`ServerHandle`], [`inherited_listener`], TLS |
//!
//! # Defaults
//!
//! | limit | default | on breach |
//! |---|---|---|
//! | [`Limits::max_message_size`] | 16 MiB | close 1009, `error` |
//! | [`Limits::max_frame_size`] | 16 MiB | close 1009, `error` |
//! | [`Limits::idle_timeout`] | 120 s (ping at half) | close 1001, `error` |
//! | [`Limits::close_timeout`] | 5 s | terminate, `error` |
//! | [`Limits::backpressure_limit`] | 1 MiB | `SendStatus::Backpressure`, then `Dropped` (or close 1008) |
//! | [`Limits::max_connections`] | none | 503 before the upgrade |
//! | [`Limits::origins`] | the request's own host, and clients without `Origin` | 403 before the upgrade |
//! | [`Limits::rate_limit`] | off | close 1008, or drop the excess and call `error` |
//! | [`App::max_headers`], [`App::max_header_bytes`] | 100 headers, 16 KiB | 431 |
//! | [`App::max_body_bytes`] | 1 MiB | 413 from [`Request::bytes`] / [`Request::json`] |
//! | [`Server::connection_limit`] | none | canned 503 at accept, nothing allocated |
//! | [`App::handshake_timeout`] | 10 s | connection dropped |
//! | [`HandshakeLimit`] | off (opt in as middleware) | 429 with `Retry-After` |
//! | [`Server::shutdown_timeout`] | 10 s | remaining sockets terminated |
//!
//! # Optional features
//!
//! All off by default; each adapter crate passes them through under the
//! same names.
//!
//! * **`tls`**: serve `wss://` with rustls (on `ring`, through
//!   futures-rustls, so every runtime shares it): `Server::tls` with a
//!   `Tls` from PEM files or a rustls `ServerConfig`. The certificate
//!   reloads on SIGHUP and with `ServerHandle::reload_tls`; a bad file
//!   leaves the old one in use and is reported.
//! * **`tracing`**: one span per connection, `wsway.connection`, with the
//!   fields `id`, `remote`, `route` (the route's pattern, never the query)
//!   and `protocol`. Recorded in it: `upgrade accepted` / `upgrade refused`
//!   (`status`), `connection error` (`error`, `kind`), `draining` (`code`)
//!   and `closed` (`code`, `by`: `client`, `server` or `none`). TLS
//!   handshake failures and certificate reloads are events too.
//! * **`metrics`**: counters and gauges through the `metrics` facade.
//!   Install the recorder (Prometheus' or another) before the server
//!   starts: the per-message counters are registered with it once.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `wsway_connections_open` | gauge | |
//! | `wsway_connections_total` | counter | |
//! | `wsway_upgrades_total` | counter: WebSockets opened | `http` (`1.1`, or `2` for RFC 8441's CONNECT) |
//! | `wsway_handshakes_refused_total` | counter | `status` |
//! | `wsway_messages_received_total`, `wsway_messages_sent_total` | counter | |
//! | `wsway_received_bytes_total`, `wsway_sent_bytes_total` | counter: payload bytes, before compression | |
//! | `wsway_closes_total` | counter | `code`, `by` |
//! | `wsway_sends_backpressured_total`, `wsway_sends_dropped_total` | counter | |
//! | `wsway_send_queue_bytes`, `wsway_send_queue_max_bytes` | gauge, sampled each second: all queues, the fullest | |
//! | `wsway_ping_rtt_seconds` | histogram of keep-alive pings' round trips | |
//! | `wsway_topics`, `wsway_subscribers` | gauge: this node's | |
//! | `wsway_drain_connections` | gauge: closing for a shutdown now | |
//! | `wsway_drain_terminated_total` | counter: cut at the shutdown deadline | |
//! | `wsway_tls_handshake_failures_total` | counter | |
//! | `wsway_tls_reloads_total` | counter | `result`: `ok`, `error` |
//!
//! * **`tower`**: an app as a `tower::Service` (`Server::into_service`),
//!   mounted in axum or any hyper host ([guide](crate::guide::axum)).
//! * **`http2`**: WebSockets over HTTP/2 (RFC 8441): `Server::http2` on
//!   the own server, and extended CONNECT streams from a host that speaks
//!   HTTP/2 ([guide](crate::guide::http2)).

#![warn(missing_docs)]

// The layers, lowest first (see "Layout" above; `tests/layers.rs` keeps
// them): the base modules, then each folder.
mod boxed;
mod error;
mod io;
mod message;
mod observe;
mod runtime;
mod state;
mod trigger;
mod watch;

mod policy;
mod web;

mod delivery;
mod topics;

mod connection;

mod admin;
mod api;
mod events;
mod loop_fn;

mod app;
mod server;

#[cfg(test)]
mod defaults_table;
mod fuzzing;
pub mod guide;
pub mod testing;

#[cfg(feature = "tls")]
pub use server::tls;
pub use web::middleware;

pub use api::{ApiKey, ApiKeyError};
pub use app::application::{App, CLIENT_JS, WsRoute};
pub use app::group::Group;
pub use connection::handle::Handle;
pub use connection::handler::{Accept, Handler, OnMessage, on_message};
pub use connection::socket::Ws;
pub use connection::timer::Timer;
pub use delivery::history::{
    DEFAULT_HISTORY_AGE, HistoryError, HistoryFuture, Position, Retention, StoredHistory,
    StoredMessage, topic_matches,
};
pub use delivery::outbox::{ReadyState, SendStatus};
pub use error::{Error, ErrorKind};
pub use events::{
    EVENTS_PROTOCOL, EventError, EventGroup, EventRoute, Events, Fragment, GAP_EVENT, JOIN_EVENT,
    LEAVE_EVENT, RENDER_EVENT, Reply, escape_html,
};
pub use loop_fn::{
    CLEANUP_TIMEOUT, Cancellation, Interval, JsonError, Loop, LoopData, Socket, ws_fn,
};
pub use message::{CloseCode, MAX_CLOSE_REASON, MAX_CONTROL_PAYLOAD, Message, Text};
pub use policy::auth::{Bearer, REDACTED, TOKEN_PROTOCOL_PREFIX, Verdict, Verify};
pub use policy::compression::Compression;
pub use policy::expiry::{Expiring, RefreshMargin};
pub use policy::limits::{Limits, RateLimit};
pub use policy::origin::Origins;
pub use policy::throttle::HandshakeLimit;
pub use server::activation::inherited_listener;
pub use server::control::{Server, ServerHandle};
pub use server::drain::RETRY_IN;
#[cfg(feature = "tower")]
pub use server::hosted::AppService;
#[cfg(feature = "tls")]
pub use server::tls::{Tls, TlsError};
pub use topics::census::{
    BackplaneHealth, NodeReport, NodeStats, REPORTED_TOPICS, TopicCount, TopicCounts,
};
pub use topics::presence::{Member, PresenceError, PresenceFuture};
pub use topics::pubsub::{
    Backplane, Disconnected, Forwarded, InProcess, LocalTopics, Node, Published, Topics,
};
pub use topics::rooms::{DEFAULT_USER_ROOM, NoUserRooms, UserRooms};
pub use web::body::{Body, Html, IntoResponse, Json, Response, StatusCode, text};
pub use web::extract::Rejection;
pub use web::middleware::Middleware;
pub use web::request::Request;
pub use web::router::RouteError;

/// What an adapter crate implements or uses: the runtime seam, the listener,
/// and the stream contract. Applications never need this module.
pub mod rt {
    pub use crate::io::{HalfClose, Io, TryWrite};
    pub use crate::runtime::{BoxSleep, BoxTask, Runtime};
    pub use crate::server::control::Listener;

    /// Runs `fut` corked: what it publishes during one poll is written to
    /// each subscriber when that poll ends, in one write per subscriber,
    /// instead of one per message. Connections' tasks are corked already;
    /// a backplane's task that delivers what it received in batches
    /// wants this too.
    pub fn corked<F: std::future::Future>(fut: F) -> impl std::future::Future<Output = F::Output> {
        crate::delivery::cork::Corked::new(fut)
    }

    /// What every adapter's `run` does inside its runtime: waits for the
    /// server to start, prints `listening on ADDR` to stderr, and waits
    /// for it to stop.
    pub async fn run_announced(
        start: impl std::future::Future<Output = std::io::Result<crate::ServerHandle>>,
    ) -> std::io::Result<()> {
        let handle = start.await?;
        eprintln!("listening on {}", handle.local_addr());
        handle.stopped().await;
        Ok(())
    }

    /// What every adapter's `run_with` does inside its runtime: awaits the
    /// app's set-up (an error ends it there, before anything is bound or
    /// announced), then serves as [`run_announced`].
    pub async fn run_set_up<S, E, F, Fut>(
        setup: impl std::future::Future<Output = Result<S, E>>,
        start: F,
    ) -> std::io::Result<()>
    where
        S: Into<crate::Server>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
        F: FnOnce(crate::Server) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<crate::ServerHandle>>,
    {
        let server = setup
            .await
            .map_err(|e| std::io::Error::other(crate::SetupError(e.into())))?
            .into();
        run_announced(start(server)).await
    }
}

/// An app's async set-up (what an adapter's `run_with` awaits before
/// serving) failed, so nothing was served. It reaches `main` inside the
/// `io::Error` that `run_with` returns; its `Debug` is its message, so
/// what `main` prints on the way out reads as the reason.
pub struct SetupError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the app's set-up failed: {}", self.0)
    }
}

impl std::fmt::Debug for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Entry points for the micro-benchmarks in `core/benches`; not part of the
/// API and free to change.
#[doc(hidden)]
pub mod __bench {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use crate::delivery::outbox::Shared;
    use crate::{Message, Published, Topics};

    /// The opening-handshake check and `Sec-WebSocket-Accept` for a request head.
    pub fn handshake(headers: &http::HeaderMap) -> bool {
        crate::web::handshake::check(&http::Method::GET, http::Version::HTTP_11, headers).is_ok()
    }

    /// The event layer's own work on one call: read the envelope,
    /// deserialize `{"room", "text"}`, and write the ack.
    pub fn event_call(text: &str) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Say {
            #[allow(dead_code)]
            room: String,
            text: String,
        }
        let crate::events::envelope::Frame::Call(call) =
            crate::events::envelope::parse(text).ok()?
        else {
            return None;
        };
        let say: Say = serde_json::from_str(call.data?.get()).ok()?;
        let data = serde_json::to_string(&say.text.len()).ok()?;
        Some(crate::events::envelope::ack(call.id.as_ref()?, &data))
    }

    /// A topic with `n` subscribers whose queues can be emptied between runs.
    pub struct Room {
        topics: Topics,
        subs: Vec<Arc<Shared>>,
        batch: VecDeque<crate::protocol::Outgoing>,
    }

    impl Room {
        /// `n` subscribers on topic `room`.
        pub fn new(n: u64) -> Self {
            let topics = Topics::default();
            let topic: Arc<str> = "room".into();
            let subs: Vec<Arc<Shared>> = (1..=n)
                .map(|id| Arc::new(Shared::new(id, usize::MAX, false)))
                .collect();
            for s in &subs {
                topics.subscribe(&topic, s);
            }
            Room {
                topics,
                subs,
                batch: VecDeque::new(),
            }
        }

        /// Publishes to every subscriber.
        pub fn publish(&self, msg: Message) -> Published {
            self.topics.publish("room", msg)
        }

        /// Empties every subscriber's queue, as their drivers would.
        pub fn drain(&mut self) {
            for s in &self.subs {
                s.take_queue(&mut self.batch);
                self.batch.clear();
                s.flushed();
            }
        }
    }
}

/// Entry points for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::fuzzing::{connection, events, handshake};
}

// The README's examples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

/// The `http` crate's types wsway's API uses (headers, methods, statuses).
pub use http;

/// The WebSocket protocol wsway speaks, sans I/O (RFC 6455 and RFC 7692's
/// permessage-deflate): the `wsway-protocol` crate, for a codec of one's
/// own or a client. Applications do not need it to serve.
pub use wsway_protocol as protocol;
