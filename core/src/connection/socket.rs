//! What a handler holds inside its callbacks: [`Ws`], the connection with
//! its request's facts, subscriptions and timers. Sends go to the
//! connection's outbox, which its driver writes out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::connection::handle::Handle;
use crate::connection::timer::Timer;
use crate::delivery::history::Position;
use crate::delivery::outbox::{ReadyState, SendStatus, Shared};
use crate::error::Error;
use crate::message::{CloseCode, Message};
use crate::topics::pubsub::{Published, Topics};
use crate::web::extract::{Rejection, Source, from_pairs, parse_query};

/// Facts about a connection fixed at the upgrade. Every open connection
/// holds one, so its strings are boxed (no spare capacity, 8 B less each).
#[derive(Clone)]
pub(crate) struct Info {
    pub(crate) remote_addr: SocketAddr,
    pub(crate) path: Box<str>,
    pub(crate) params: Box<[(String, String)]>,
    pub(crate) query: Option<Box<str>>,
    pub(crate) protocol: Option<Box<str>>,
    /// The route's `publish_to_self` option.
    pub(crate) publish_to_self: bool,
    /// The runtime, for timers.
    pub(crate) rt: crate::runtime::Rt,
    /// Values middleware attached to the upgrade request.
    pub(crate) values: http::Extensions,
    /// The app's shared state.
    pub(crate) state: crate::state::AppState,
    /// The `Sec-WebSocket-Extensions` the 101 answered, if any.
    pub(crate) extensions: Option<Box<str>>,
}

/// One WebSocket connection, as its handler's callbacks see it.
///
/// Callbacks of one connection run one at a time and in order, so `data` is
/// plain `&mut` state: no lock needed. To reach the connection from another
/// task, take a [`handle`](Ws::handle).
pub struct Ws<D> {
    /// The per-connection state returned by
    /// [`Handler::before_upgrade`](crate::Handler::before_upgrade).
    pub data: D,
    shared: Arc<Shared>,
    info: Arc<Info>,
    topics: Topics,
    subscriptions: Vec<Arc<str>>,
    tracked: Vec<Arc<str>>,
}

impl<D> Ws<D> {
    pub(crate) fn new(data: D, shared: Arc<Shared>, info: Arc<Info>, topics: Topics) -> Self {
        Ws {
            data,
            shared,
            info,
            topics,
            subscriptions: Vec::new(),
            tracked: Vec::new(),
        }
    }

    /// Subscribes this connection to `topic`; false if it already was.
    /// Subscriptions end with the connection. On a topic that keeps
    /// history ([`App::history`](crate::App::history)), a client that
    /// reconnected with its last position first gets what it missed.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if self.is_subscribed(topic) {
            return false;
        }
        let topic: Arc<str> = topic.into();
        let since = || self.resume_position(&topic);
        self.topics
            .subscribe_from(&topic, &self.shared, since, &self.info.rt);
        self.subscriptions.push(topic);
        true
    }

    /// Where the client says it was in `topic`, from the upgrade's
    /// `wsway-resume` query parameter: a JSON object of topic to position
    /// (`{"room:1": "<epoch>:<offset>"}`), which `wsway.js` sends when it
    /// reconnects. Anything unreadable counts as no position.
    fn resume_position(&self, topic: &str) -> Option<Position> {
        let query = self.info.query.as_deref()?;
        let (_, json) =
            form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "wsway-resume")?;
        let positions: std::collections::HashMap<String, String> =
            serde_json::from_str(&json).ok()?;
        Position::parse(positions.get(topic)?)
    }

    /// Unsubscribes from `topic`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let Some(i) = self.subscriptions.iter().position(|t| &**t == topic) else {
            return false;
        };
        let topic = self.subscriptions.swap_remove(i);
        // Not catching up on a topic it left (nor skipped there if it
        // comes back).
        self.shared.set_behind(&topic, None);
        self.topics.unsubscribe(&topic, self.shared.id);
        true
    }

    /// Whether this connection is subscribed to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.subscriptions.iter().any(|t| &**t == topic)
    }

    /// The topics this connection is subscribed to.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.subscriptions.iter().map(|t| &**t)
    }

    /// Tracks this connection in `topic`'s presence with `meta` (a name, a
    /// device: whatever others should see), or updates its metadata; true
    /// when it was not tracked there yet. Every node sees it through
    /// [`Topics::presence`] until [`untrack`](Self::untrack) or the end of
    /// the connection, whichever comes first. Tracking does not subscribe.
    ///
    /// ```no_run
    /// # use wsway::{Events, Ws};
    /// let mut events = Events::<()>::new();
    /// events.on_open(|ws: &mut Ws<()>| {
    ///     let _ = ws.track("room:lobby", &serde_json::json!({ "name": "ann" }));
    /// });
    /// events.on_async("who", |ws, _: ()| Box::pin(async move {
    ///     let members = ws.topics().presence("room:lobby").await?;
    ///     Ok::<_, wsway::EventError>(members)
    /// }));
    /// ```
    ///
    /// Fails only if `meta` cannot be serialized as JSON.
    pub fn track(&mut self, topic: &str, meta: &impl Serialize) -> Result<bool, serde_json::Error> {
        let meta: Arc<RawValue> = serde_json::value::to_raw_value(meta)?.into();
        let existing = self.tracked.iter().find(|t| &***t == topic).cloned();
        let topic = existing.unwrap_or_else(|| topic.into());
        let new = self.topics.track(&topic, self.shared.id, meta);
        if new {
            self.tracked.push(topic);
        }
        Ok(new)
    }

    /// Removes this connection from `topic`'s presence; false if it was
    /// not tracked there. Other nodes see it gone at once, not after a
    /// timeout.
    pub fn untrack(&mut self, topic: &str) -> bool {
        let Some(i) = self.tracked.iter().position(|t| &**t == topic) else {
            return false;
        };
        self.tracked.swap_remove(i);
        self.topics.untrack(topic, self.shared.id);
        true
    }

    /// This connection's id in presence lists ([`Member::id`](crate::Member::id)),
    /// the same on every node: to find itself in a list, or leave itself out.
    pub fn member_id(&self) -> String {
        self.topics.member_id(self.shared.id)
    }

    /// The topics this connection is tracked in.
    pub fn tracked(&self) -> impl Iterator<Item = &str> {
        self.tracked.iter().map(|t| &**t)
    }

    /// Publishes `msg` to the subscribers of `topic`: everyone but this
    /// connection, unless the route set
    /// [`publish_to_self`](crate::WsRoute::publish_to_self). The message is
    /// shared by all of them, not copied. `ws.publish(room, msg)` is the
    /// "broadcast to the room except the sender" one-liner.
    pub fn publish(&self, topic: &str, msg: impl Into<Message>) -> Published {
        let except = (!self.info.publish_to_self).then_some(self.shared.id);
        self.topics.publish_except(topic, msg.into(), except)
    }

    /// Runs `tick` every `period` for as long as this connection lives: it
    /// stops by itself when the connection closes (or when
    /// [`Timer::cancel`] is called), with no cleanup in `close`.
    ///
    /// `tick` runs on the connection's own task, between its callbacks,
    /// with the connection itself: it reads and changes `ws.data`, sends,
    /// publishes and closes, with no lock, and never overlaps a callback.
    /// While a callback runs, a due tick waits for it; ticks never pile up
    /// (the next period starts once a tick has run).
    ///
    /// ```no_run
    /// # use wsway::{Handler, Ws};
    /// # use std::time::Duration;
    /// # struct Clock;
    /// # impl Handler for Clock {
    /// #     type Data = u64;
    /// async fn open(&self, ws: &mut Ws<u64>) {
    ///     ws.every(Duration::from_secs(1), |ws| {
    ///         ws.data += 1;
    ///         ws.send(format!("tick {}", ws.data));
    ///     });
    /// }
    /// # }
    /// ```
    pub fn every(
        &self,
        period: Duration,
        mut tick: impl FnMut(&mut Ws<D>) + Send + 'static,
    ) -> Timer
    where
        D: 'static,
    {
        crate::connection::timer::start(&self.info.rt, self.shared.clone(), period, move |ws| {
            tick(ws);
            true
        })
    }

    /// Runs `f` once after `delay`, on the connection's task as
    /// [`every`](Ws::every)'s ticks do, unless the connection has closed
    /// (or the timer was cancelled) by then.
    pub fn after(&self, delay: Duration, f: impl FnOnce(&mut Ws<D>) + Send + 'static) -> Timer
    where
        D: 'static,
    {
        let mut f = Some(f);
        crate::connection::timer::start(&self.info.rt, self.shared.clone(), delay, move |ws| {
            if let Some(f) = f.take() {
                f(ws);
            }
            false
        })
    }

    /// The app's topics, for publishing to everyone (this connection
    /// included) or counting subscribers.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Catches this connection up on the topics where it fell behind (its
    /// queue has drained).
    pub(crate) fn catch_up(&mut self) {
        for behind in self.shared.behind() {
            self.topics.catch_up(&self.shared, behind, &self.info.rt);
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Another view of this connection, with its own data and no topics:
    /// what a loop-style function joins is kept apart from the driver's.
    pub(crate) fn sibling<E>(&self, data: E) -> Ws<E> {
        Ws::new(
            data,
            self.shared.clone(),
            self.info.clone(),
            self.topics.clone(),
        )
    }

    /// What middleware attached to the upgrade request.
    pub(crate) fn values(&self) -> &http::Extensions {
        &self.info.values
    }

    /// The values to change (a renewed token's identity): copied first if
    /// a loop's view of the connection shares them, which keeps the old.
    pub(crate) fn values_mut(&mut self) -> &mut http::Extensions {
        &mut Arc::make_mut(&mut self.info).values
    }

    /// The runtime the server runs on.
    pub(crate) fn runtime(&self) -> &crate::runtime::Rt {
        &self.info.rt
    }

    pub(crate) fn untrack_all(&mut self) {
        for topic in std::mem::take(&mut self.tracked) {
            self.topics.untrack(&topic, self.shared.id);
        }
    }

    pub(crate) fn unsubscribe_all(&mut self) {
        for topic in std::mem::take(&mut self.subscriptions) {
            self.topics.unsubscribe(&topic, self.shared.id);
        }
    }

    /// This connection's id, unique within the server's lifetime.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.info.remote_addr
    }

    /// The request path the connection was opened on.
    pub fn path(&self) -> &str {
        &self.info.path
    }

    /// Path parameters, deserialized: a struct by name, a tuple in order, or a
    /// single value when the route has one parameter.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, Rejection> {
        from_pairs(&self.info.params, Source::Path)
    }

    /// One raw path parameter by name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.info
            .params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query string, deserialized.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, Rejection> {
        from_pairs(
            &parse_query(self.info.query.as_deref().unwrap_or("")),
            Source::Query,
        )
    }

    /// The subprotocol agreed at the upgrade, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.info.protocol.as_deref()
    }

    /// A value middleware attached to the upgrade request with
    /// [`Request::insert`](crate::Request::insert): the verified identity,
    /// for one. It lives as long as the connection.
    pub fn value<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.info.values.get::<T>()
    }

    /// The app's state of type `T`, set with
    /// [`App::state`](crate::App::state).
    ///
    /// # Panics
    ///
    /// When the app has no state of that type (a setup mistake; the
    /// message names the type and the fix).
    pub fn state<T: Send + Sync + 'static>(&self) -> &T {
        self.info.state.get::<T>()
    }

    /// The extensions agreed at the upgrade, as the 101 answered them
    /// (`permessage-deflate; server_no_context_takeover` ...); empty when
    /// none were (the route does not compress, or the client offered
    /// nothing acceptable).
    pub fn extensions(&self) -> &str {
        self.info.extensions.as_deref().unwrap_or("")
    }

    /// Queues a message. See [`SendStatus`] for what the answer means.
    pub fn send(&self, msg: impl Into<Message>) -> SendStatus {
        // The driver writes after every callback poll, so no wake-up is needed
        // from inside a callback.
        self.shared.push(msg.into().into_codec(), false)
    }

    /// Queues a text message.
    pub fn send_text(&self, text: impl Into<crate::Text>) -> SendStatus {
        self.send(Message::Text(text.into()))
    }

    /// Queues a binary message (no copy for `Bytes`).
    pub fn send_binary(&self, data: impl Into<Bytes>) -> SendStatus {
        self.send(Message::Binary(data.into()))
    }

    /// Sends a ping. Payloads over 125 bytes are an error.
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.shared
            .push_control(crate::protocol::Outgoing::ping(payload.into()), false)
    }

    /// Sends an unsolicited pong. Payloads over 125 bytes are an error.
    pub fn pong(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.shared
            .push_control(crate::protocol::Outgoing::pong(payload.into()), false)
    }

    /// Starts a graceful close: what is queued is written, then a close frame
    /// with `code` and `reason`; `close` runs once the peer answers (or the
    /// close timeout passes). Invalid codes and reasons over 123 bytes are an
    /// error and change nothing.
    pub fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<(), Error> {
        self.shared.request_close(code.into(), reason, false)
    }

    /// Drops the connection at once, without a close frame; queued messages
    /// are discarded. `close` still runs, with 1006.
    pub fn terminate(&self) {
        self.shared.terminate()
    }

    /// Bytes queued and not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.shared.buffered()
    }

    /// Open, closing or closed.
    pub fn ready_state(&self) -> ReadyState {
        self.shared.ready_state()
    }

    /// A cloneable, `Send + Sync` handle for sending to or closing this
    /// connection from other tasks.
    pub fn handle(&self) -> Handle {
        Handle::from_shared(self.shared.clone())
    }
}

// ---- user rooms ----

impl<D> Ws<D> {
    /// The user this connection belongs to, by the app's
    /// [`UserRooms`](crate::UserRooms); `None` without user rooms or without an identity.
    pub fn user_id(&self) -> Option<String> {
        self.topics().user_rooms()?.user_of(self.values())
    }

    /// Joins the connection's own user room, if it has one; at the start of
    /// every connection, before `open`. A connection that authentication
    /// let in but that carries no identity of the type the user rooms
    /// take (the verifier returned another type) joins none: that is a
    /// setup mistake, and it is reported, not silent.
    pub(crate) fn join_own_room(&mut self) {
        let Some(rooms) = self.topics().user_rooms() else {
            return;
        };
        match rooms.user_of(self.values()) {
            Some(id) => {
                self.subscribe(&rooms.topic(&id));
            }
            None if self.value::<crate::policy::auth::Credential>().is_some() => {
                crate::observe::user_room_missed(rooms.identity());
            }
            None => {}
        }
    }
}
