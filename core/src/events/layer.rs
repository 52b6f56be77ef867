//! The event layer itself: [`Events`], its builder, and the [`Handler`]
//! it is: each message read as a call, dispatched through its checks to
//! its handler, and answered.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_lite::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::call::{AsyncCall, Call, SyncCall, marker};
use super::error::{EventError, Reply, truncate};
use super::group::{EventGroup, EventRoute};
use super::hooks::{CloseHook, DataHook, ErrorHook, FailureHook, Hook, JoinHook, OpenHook};
use super::routes::{Check, Routes};
use super::{ack, envelope, fragment, join};
use crate::boxed::BoxFuture;
use crate::connection::handler::{Accept, Handler};
use crate::connection::socket::Ws;
use crate::error::Error;
use crate::message::{CloseCode, Message};
use crate::web::body::Response;
use crate::web::request::Request;

/// The subprotocol of the event layer. [`Events`] chooses it when the
/// client offers it (`wsway.js` does).
pub const EVENTS_PROTOCOL: &str = "wsway.v1";

/// The event [`Events`] pushes when the backplane may have lost messages on
/// a topic the connection subscribes to (see
/// [`Handler::gap`](crate::Handler::gap)); its data is `{"topic": ..}`.
pub const GAP_EVENT: &str = "wsway:gap";

/// Named events with typed data, replies and groups: a [`Handler`] that
/// speaks the JSON envelope `{"event", "data", "id"}`.
///
/// - A handler's return value is the acknowledgement
///   `{"id", "ok": true, "data"}`, sent when the call had an `id`.
/// - A typed [`EventError`] becomes `{"id", "ok": false, "error", "message"}`.
/// - Any other failure, panics included, becomes the generic
///   `{"error": "internal"}`; the connection stays open.
/// - A malformed call (`malformed`), an unknown event (`unknown_event`),
///   data of the wrong shape (`bad_data`) or a binary frame
///   (`unsupported`) get an error envelope too, not a close.
///
/// Calls on one connection run in order, one at a time, so their replies
/// arrive in the order the calls were sent.
///
/// ```
/// use serde::Deserialize;
/// use wsway::{App, EventError, Events};
///
/// #[derive(Deserialize)]
/// struct Say { room: String, text: String }
///
/// let mut events = Events::<()>::new();
/// events.on("chat:say", |ws, say: Say| {
///     if say.text.is_empty() {
///         return Err(EventError::new("empty", "say something"));
///     }
///     ws.publish_event(&say.room, "chat:said", &say.text)?;
///     Ok(say.text.len())
/// });
/// events.group("orders", |orders| {
///     orders.group("admin", |admin| {
///         // "orders:admin:retry"
///         admin.on("retry", |_ws, id: u64| Ok::<_, EventError>(id));
///     });
/// });
/// let mut app = App::new();
/// app.ws("/events", events);
/// ```
pub struct Events<D = ()> {
    routes: Routes<D>,
    checks: Vec<Check<D>>,
    data: Option<DataHook<D>>,
    open: Option<OpenHook<D>>,
    close: Option<CloseHook<D>>,
    join: Option<JoinHook<D>>,
    failure: Option<FailureHook>,
    error: Option<ErrorHook<D>>,
    /// The pushes declared for the contract, with their data types.
    #[cfg(feature = "typescript")]
    pushes: std::collections::BTreeMap<String, super::contract::Describe>,
}

impl<D: Send + 'static> Default for Events<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Send + 'static> Events<D> {
    /// No events yet.
    pub fn new() -> Self {
        Events {
            routes: Routes::new(),
            checks: Vec::new(),
            data: None,
            open: None,
            close: None,
            join: None,
            failure: None,
            error: None,
            #[cfg(feature = "typescript")]
            pushes: std::collections::BTreeMap::new(),
        }
    }

    /// Declares a push the server sends (with [`Ws::emit`](crate::Ws::emit),
    /// `publish_event` ...) and its data type, for the TypeScript contract.
    /// Feature `typescript`.
    #[cfg(feature = "typescript")]
    pub fn emits<T: ts_rs::TS + 'static>(&mut self, event: &str) -> &mut Self {
        (self.pushes).insert(event.to_owned(), super::contract::Collector::type_of::<T>);
        self
    }

    /// The TypeScript declaration file of this layer's contract: every
    /// event marked [`typed`](crate::EventRoute::typed) with its data,
    /// reply and error codes, every push declared with
    /// [`emits`](Events::emits), and the types they use (derived with
    /// `ts_rs::TS`). `wsway.js`'s typings take it:
    /// `connect<Contract>(url)` checks every `emit` and `on`. Write it in
    /// a build step, and check in CI that it is current. Feature
    /// `typescript`.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use ts_rs::TS;
    /// use wsway::{EventError, Events};
    ///
    /// #[derive(Deserialize, TS)]
    /// struct Say { text: String }
    /// #[derive(Serialize, TS)]
    /// struct Said { id: u64 }
    ///
    /// let mut events = Events::<()>::new();
    /// events
    ///     .on("chat:say", |_ws, say: Say| Ok::<_, EventError>(Said { id: say.text.len() as u64 }))
    ///     .errors(["empty"]);
    /// events.emits::<Said>("chat:said");
    /// let ts = events.typescript("the chat");
    /// assert!(ts.contains(r#""chat:say": { data: Say; reply: Said; errors: "empty" };"#));
    /// assert!(ts.contains("export type Say = { text: string, };"));
    /// ```
    #[cfg(feature = "typescript")]
    pub fn typescript(&self, title: &str) -> String {
        let routes = self.routes.sorted();
        let calls = routes
            .iter()
            .filter_map(|(event, route)| Some((*event, route.shape.as_ref()?)));
        let pushes = self.pushes.iter().map(|(e, d)| (e.as_str(), *d));
        super::contract::write(title, calls, pushes)
    }

    /// Handles `event` with a synchronous closure; `data` is deserialized
    /// into `T` (a mismatch is a `bad_data` error envelope). Sending,
    /// publishing and timers never block, so most handlers need no `await`;
    /// for those that do, see [`Events::on_async`].
    ///
    /// # Panics
    ///
    /// When `event` is already registered.
    pub fn on<T, R, F>(&mut self, event: &str, handler: F) -> EventRoute<'_, D, T, R>
    where
        F: Fn(&mut Ws<D>, T) -> R + Send + Sync + 'static,
        T: DeserializeOwned + Send + 'static,
        R: Reply,
    {
        self.insert(event.to_owned(), Box::new(SyncCall(handler, marker())))
    }

    /// Handles `event` with an async closure. It borrows the connection,
    /// so it returns a boxed future:
    ///
    /// ```
    /// # use wsway::{Events, EventError};
    /// # async fn lookup(_: u64) -> Result<String, std::io::Error> { Ok("x".into()) }
    /// let mut events = Events::<()>::new();
    /// events.on_async("user:get", |_ws, id: u64| Box::pin(async move {
    ///     let name = lookup(id).await?;
    ///     Ok::<_, EventError>(name)
    /// }));
    /// ```
    ///
    /// # Panics
    ///
    /// When `event` is already registered.
    pub fn on_async<T, R, F>(&mut self, event: &str, handler: F) -> EventRoute<'_, D, T, R>
    where
        F: for<'a> Fn(&'a mut Ws<D>, T) -> BoxFuture<'a, R> + Send + Sync + 'static,
        T: DeserializeOwned + Send + 'static,
        R: Reply,
    {
        self.insert(event.to_owned(), Box::new(AsyncCall(handler, marker())))
    }

    /// Adds a check every call runs first, ahead of groups' and events'
    /// own, and even when the event is unknown. Re-check authorization
    /// here, and fail with `EventError::new(..).close(4001, ..)` to end a
    /// revoked session.
    pub fn middleware<F>(&mut self, check: F) -> &mut Self
    where
        F: Fn(&mut Ws<D>, &str) -> Result<(), EventError> + Send + Sync + 'static,
    {
        self.checks.push(Arc::new(check));
        self
    }

    /// Adds a group of events whose names start with `prefix:` and which
    /// share checks; groups nest (`orders` + `admin` + `retry` is
    /// `orders:admin:retry`).
    pub fn group(&mut self, prefix: &str, build: impl FnOnce(&mut EventGroup<'_, D>)) -> &mut Self {
        EventGroup::build(&mut self.routes, prefix.to_owned(), build);
        self
    }

    /// Builds each connection's data from its upgrade request: typed path
    /// parameters and query ([`Request::params`], [`Request::query`]),
    /// values middleware attached ([`Request::value`]), the app's state.
    /// An `Err` is the HTTP response the upgrade gets instead of the `101`;
    /// a [`Rejection`](crate::Rejection) converts into a 400 with `?`.
    /// Without this hook the data is `D::default()` (so `D` implements
    /// `Default` either way: derive it). For lookups that need `await`,
    /// such as a session store, use middleware and read its value here.
    ///
    /// ```
    /// use wsway::{Events, Request};
    ///
    /// #[derive(Default)]
    /// struct Bidder { auction: u32, name: String }
    ///
    /// let mut events = Events::<Bidder>::new();
    /// events.before_upgrade(|req: &Request| {
    ///     Ok(Bidder {
    ///         auction: req.params()?, // `/auction/:id`; not a u32: 400
    ///         name: req.query::<Option<String>>()?.unwrap_or_default(),
    ///     })
    /// });
    /// ```
    pub fn before_upgrade(
        &mut self,
        build: impl Fn(&Request) -> Result<D, Response> + Send + Sync + 'static,
    ) -> &mut Self {
        self.data = Some(Box::new(build));
        self
    }

    /// Runs when a connection opens, before the client sees the `101`
    /// (subscribe it to topics here). For a hook that awaits, see
    /// [`Events::on_open_async`].
    pub fn on_open(&mut self, hook: impl Fn(&mut Ws<D>) + Send + Sync + 'static) -> &mut Self {
        self.open = Some(Hook::Sync(Box::new(hook)));
        self
    }

    /// As [`Events::on_open`], with a hook that awaits (it borrows the
    /// connection, so it returns a boxed future, as
    /// [`Events::on_async`]'s handlers do).
    pub fn on_open_async(
        &mut self,
        hook: impl for<'a> Fn(&'a mut Ws<D>) -> BoxFuture<'a, ()> + Send + Sync + 'static,
    ) -> &mut Self {
        self.open = Some(Hook::Async(Box::new(hook)));
        self
    }

    /// Runs when a connection has ended. For a hook that awaits, see
    /// [`Events::on_close_async`].
    pub fn on_close(
        &mut self,
        hook: impl Fn(&mut Ws<D>, CloseCode, &str) + Send + Sync + 'static,
    ) -> &mut Self {
        self.close = Some(Hook::Sync(Box::new(hook)));
        self
    }

    /// As [`Events::on_close`], with a hook that awaits (to persist what
    /// the connection leaves behind, say).
    pub fn on_close_async(
        &mut self,
        hook: impl for<'a> Fn(&'a mut Ws<D>, CloseCode, &'a str) -> BoxFuture<'a, ()>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        self.close = Some(Hook::Async(Box::new(hook)));
        self
    }

    /// Decides which topics a client may join with the built-in event
    /// [`JOIN_EVENT`](crate::JOIN_EVENT) (`wsway.js`: `socket.join(topic)`): `Ok` subscribes
    /// the connection, an `Err` is the client's error (use the code
    /// `forbidden`). Without this hook every such join is refused.
    ///
    /// A user room ([`UserRooms`](crate::UserRooms)) never reaches the hook:
    /// its own user is already in it, and anyone else is refused with
    /// `forbidden`, whatever the hook would say.
    ///
    /// ```
    /// use wsway::{EventError, Events};
    ///
    /// let mut events = Events::<()>::new();
    /// events.on_join(|_ws, topic| match topic.strip_prefix("room:") {
    ///     Some(_) => Ok(()),
    ///     None => Err(EventError::new("forbidden", "only rooms can be joined")),
    /// });
    /// ```
    pub fn on_join(
        &mut self,
        hook: impl Fn(&mut Ws<D>, &str) -> Result<(), EventError> + Send + Sync + 'static,
    ) -> &mut Self {
        self.join = Some(Hook::Sync(Box::new(hook)));
        self
    }

    /// As [`Events::on_join`], with a hook that awaits (a permission
    /// lookup, say); it borrows the connection, so it returns a boxed
    /// future.
    pub fn on_join_async(
        &mut self,
        hook: impl for<'a> Fn(&'a mut Ws<D>, &'a str) -> BoxFuture<'a, Result<(), EventError>>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        self.join = Some(Hook::Async(Box::new(hook)));
        self
    }

    /// Sees every internal failure (with its detail) and every panic, with
    /// the event's name: log them here. The client only ever sees a
    /// generic error.
    pub fn on_failure(
        &mut self,
        hook: impl Fn(&str, &EventError) + Send + Sync + 'static,
    ) -> &mut Self {
        self.failure = Some(Box::new(hook));
        self
    }

    /// Runs for connection-level errors, as [`Handler::error`] does: a
    /// limit tripped, the peer broke the protocol or vanished.
    pub fn on_error(
        &mut self,
        hook: impl Fn(&mut Ws<D>, &Error) + Send + Sync + 'static,
    ) -> &mut Self {
        self.error = Some(Box::new(hook));
        self
    }

    fn insert<T, R>(&mut self, event: String, call: Box<dyn Call<D>>) -> EventRoute<'_, D, T, R> {
        EventRoute::new(self.routes.insert(event, call))
    }

    /// Runs one call: its checks, then its handler. `Ok` is the ack's data
    /// as JSON (empty unless `ack`); `Err` is what the client is told.
    async fn dispatch(
        &self,
        ws: &mut Ws<D>,
        event: &str,
        data: Option<&RawValue>,
        ack: bool,
        target: Option<&str>,
    ) -> Result<String, EventError> {
        // The layer's checks run for every call, known or not: a revoked
        // session is closed even when it probes for event names.
        for check in &self.checks {
            check(ws, event)?;
        }
        if let Some(join) = join::builtin(event) {
            // Built-ins render nothing: refused before they run.
            if let Some(target) = target {
                return Err(fragment::refused_target(event, target));
            }
            return join::join_or_leave(self.join.as_ref(), ws, join, data).await;
        }
        let Some(route) = self.routes.get(event) else {
            return Err(EventError::new(
                "unknown_event",
                format!("no handler for event `{}`", truncate(event)),
            ));
        };
        // Before the handler runs: a refused target has no side effects.
        if let Some(target) = target {
            fragment::check_target(event, &route.targets, target)?;
        }
        for check in &route.checks {
            check(ws, event)?;
        }
        route.call.call(ws, data, ack).await
    }

    fn report(&self, event: &str, err: &EventError) {
        if let Some(hook) = &self.failure {
            hook(event, err);
        }
    }
}

impl<D: Default + Send + 'static> Handler for Events<D> {
    type Data = D;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<D>, Response> {
        let data = match &self.data {
            Some(build) => build(req)?,
            None => D::default(),
        };
        let accept = Accept::new(data);
        if req.protocols().iter().any(|p| p == EVENTS_PROTOCOL) {
            return Ok(accept.protocol(EVENTS_PROTOCOL));
        }
        Ok(accept)
    }

    async fn open(&self, ws: &mut Ws<D>) {
        match &self.open {
            Some(Hook::Sync(hook)) => hook(ws),
            Some(Hook::Async(hook)) => hook(ws).await,
            None => {}
        }
    }

    // Not an `async fn`, and the call taken apart as it is parsed: every
    // connection's task holds this future's largest state, and rustc would
    // keep the message twice (an `async fn`'s argument is kept beside what
    // it is moved into) and the parsed call beside its parts.
    #[allow(clippy::manual_async_fn)]
    fn message(&self, ws: &mut Ws<D>, msg: Message) -> impl Future<Output = ()> + Send {
        async move {
            let Some(text) = msg.as_text() else {
                let err = EventError::new(
                    "unsupported",
                    "binary frames are not events; send JSON text",
                );
                ws.send(Message::text(envelope::nack(None, &err)));
                return;
            };
            let (event, data, id, target) = match envelope::parse(text) {
                Ok(envelope::Frame::Call(envelope::Incoming {
                    event,
                    data,
                    id,
                    target,
                })) => (event, data, id, target),
                Ok(envelope::Frame::Reply(reply)) => return ack::deliver(ws, reply),
                Err((id, err)) => {
                    ws.send(Message::text(envelope::nack(id.as_ref(), &err)));
                    return;
                }
            };
            let dispatched = self.dispatch(ws, &event, data, id.is_some(), target.as_deref());
            let outcome = AssertUnwindSafe(dispatched)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(EventError::internal(panic_message(&panic))));
            match outcome {
                Ok(reply) => {
                    if let Some(id) = &id {
                        ws.send(Message::text(envelope::ack(id, &reply)));
                    }
                }
                Err(mut err) => {
                    // A handler's error may quote the connection's token (a
                    // session store's message): neither the client nor the
                    // failure hook sees it.
                    if let Some(credential) = ws.value::<crate::policy::auth::Credential>() {
                        err.scrub(&credential.0);
                    }
                    if err.is_internal() {
                        self.report(&event, &err);
                    }
                    ws.send(Message::text(envelope::nack(id.as_ref(), &err)));
                    if let Some((code, reason)) = err.close_request() {
                        let _ = ws.close(*code, reason);
                    }
                }
            }
        }
    }

    /// Pushes `{"event": "wsway:gap", "data": {"topic": ..}}`, which
    /// wsway.js fires as the event `wsway:gap`.
    async fn gap(&self, ws: &mut Ws<D>, topic: &str) {
        #[derive(serde::Serialize)]
        struct Gap<'a> {
            topic: &'a str,
        }
        let _ = ws.emit(GAP_EVENT, &Gap { topic });
    }

    async fn error(&self, ws: &mut Ws<D>, err: &Error) {
        if let Some(hook) = &self.error {
            hook(ws, err);
        }
    }

    async fn close(&self, ws: &mut Ws<D>, code: CloseCode, reason: &str) {
        match &self.close {
            Some(Hook::Sync(hook)) => hook(ws, code, reason),
            Some(Hook::Async(hook)) => hook(ws, code, reason).await,
            None => {}
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string payload");
    format!("the handler panicked: {what}")
}
