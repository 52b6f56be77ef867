//! Loop-style handlers: one async function owns the connection,
//! `while let Some(msg) = socket.recv().await { .. }`.
//!
//! This is a face of the same driver as [`Handler`] callbacks, not a second
//! driver: [`Loop`] is a `Handler` whose `open` installs the function's
//! future as the connection's resident body (see `resident`), whose
//! `message` hands each message to the body's [`Socket::recv`], and whose
//! `close` ends `recv`, fires the cancellation and lets the body clean up.
//! Limits, the rate limit, idle pings, backpressure, the drain and the
//! shutdown are the driver's, as for every route.

mod socket;
mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::handler::{Accept, Handler};
use crate::connection::socket::Ws;
use crate::error::Error;
use crate::message::{CloseCode, Message};
use crate::web::body::Response;
use crate::web::request::Request;

pub use socket::{Interval, JsonError, Socket};
pub use state::Cancellation;
use state::{LoopState, Running};

/// How long the function is given to finish after its connection ended
/// (`recv` returned `None`, the cancellation fired), unless set with
/// [`Loop::cleanup_timeout`].
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(1);

type Guard = dyn Fn(&Request) -> Result<(), Response> + Send + Sync;

/// A route whose handler is one async function that owns the connection.
/// Made by [`ws_fn`] (or [`App::ws_fn`](crate::App::ws_fn)); add a check
/// before the upgrade with [`before_upgrade`](Loop::before_upgrade).
///
/// The function gets the upgrade request (after middleware: what it
/// attached with [`Request::insert`] is there) and the [`Socket`]. The
/// connection closes with 1000 when the function returns, unless it called
/// [`Socket::keep_open`].
///
/// ```
/// use wsway::{App, Message};
///
/// let mut app = App::new();
/// app.ws_fn("/term/:id", |req, mut socket| async move {
///     let id = req.param("id").unwrap_or("?").to_owned();
///     while let Some(msg) = socket.recv().await {
///         if let Message::Text(line) = msg {
///             socket.send(format!("{id}> {}", line.as_str()));
///         }
///     }
/// });
/// ```
pub struct Loop<F> {
    body: F,
    guard: Option<Box<Guard>>,
    cleanup: Duration,
}

/// A loop-style route's handler: see [`Loop`].
pub fn ws_fn<F, Fut>(body: F) -> Loop<F>
where
    F: Fn(Request, Socket) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Loop {
        body,
        guard: None,
        cleanup: CLEANUP_TIMEOUT,
    }
}

impl<F> Loop<F> {
    /// Checks the upgrade request before the `101`: `Err` answers with that
    /// response instead (a 401, a 403 ...) and the function never runs.
    /// Asynchronous checks belong in [`middleware`](crate::Middleware),
    /// which runs before this.
    ///
    /// ```
    /// use wsway::{App, StatusCode, text, ws_fn};
    ///
    /// let mut app = App::new();
    /// app.ws("/term/:id", ws_fn(|_req, _socket| async {}).before_upgrade(|req| {
    ///     match req.param("id") {
    ///         Some(id) if id.len() <= 16 => Ok(()),
    ///         _ => Err(text(StatusCode::BAD_REQUEST, "bad terminal id")),
    ///     }
    /// }));
    /// ```
    pub fn before_upgrade(
        mut self,
        guard: impl Fn(&Request) -> Result<(), Response> + Send + Sync + 'static,
    ) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// How long the function may take to finish once its connection has
    /// ended (default [`CLEANUP_TIMEOUT`], 1 s); after that its future is
    /// dropped, which drops what it owns.
    pub fn cleanup_timeout(mut self, timeout: Duration) -> Self {
        self.cleanup = timeout;
        self
    }
}

/// One loop-style connection's part of the driver's state.
#[derive(Default)]
pub struct LoopData {
    /// The upgrade request, until `open` hands it to the function.
    req: Option<Box<Request>>,
    state: Option<Arc<LoopState>>,
}

impl<F, Fut> Handler for Loop<F>
where
    F: Fn(Request, Socket) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    type Data = LoopData;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<LoopData>, Response> {
        if let Some(guard) = &self.guard {
            guard(req)?;
        }
        Ok(Accept::new(LoopData {
            req: Some(Box::new(req.snapshot())),
            state: None,
        }))
    }

    async fn open(&self, ws: &mut Ws<LoopData>) {
        // Always there: `before_upgrade` put it in.
        let Some(req) = ws.data.req.take() else {
            return;
        };
        let state = Arc::new(LoopState::new(ws));
        let socket = Socket::new(state.clone(), ws);
        let body = (self.body)(*req, socket);
        ws.shared()
            .set_resident(Box::pin(Running::new(Box::pin(body), state.clone())));
        ws.data.state = Some(state);
    }

    async fn message(&self, ws: &mut Ws<LoopData>, msg: Message) {
        if let Some(state) = &ws.data.state {
            state.deliver(msg);
        }
    }

    async fn drain(&self, ws: &mut Ws<LoopData>) {
        if let Some(state) = &ws.data.state {
            state.drained();
        }
    }

    async fn gap(&self, ws: &mut Ws<LoopData>, topic: &str) {
        if let Some(state) = &ws.data.state {
            state.gap(topic);
        }
    }

    async fn error(&self, ws: &mut Ws<LoopData>, err: &Error) {
        if let Some(state) = &ws.data.state {
            state.failed(err);
        }
    }

    async fn close(&self, ws: &mut Ws<LoopData>, code: CloseCode, reason: &str) {
        let Some(state) = ws.data.state.take() else {
            return;
        };
        state.end(code, reason);
        let deadline = ws.runtime().sleep(self.cleanup);
        state.finish(ws.shared().take_resident(), deadline).await;
    }
}
