//! What a handler holds: [`Ws`] inside callbacks, [`Handle`] from anywhere.
//!
//! Both talk to the connection's driver through one shared outbox: sends are
//! queued there (under a short lock) and the driver writes them out in
//! batches. That is what makes [`Handle`] usable from any task on any runtime.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind, check_close, check_control};
use crate::extract::{Rejection, Source, from_pairs, parse_query};
use crate::history::Position;
use crate::message::{CloseCode, Message};
use crate::pubsub::{Published, Topics};
use crate::router::RawParams;
use crate::timer::Timer;
use std::time::Duration;

/// What happened to a message given to [`Ws::send`] or [`Handle::send`].
///
/// Modelled on Bun's `ServerWebSocket.send`: the caller learns at once whether
/// the peer is keeping up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendStatus {
    /// Accepted and queued; `buffered` bytes (this message included) now wait
    /// to be written.
    Queued {
        /// Bytes waiting to be written, this message included.
        buffered: usize,
    },
    /// Accepted and queued, but the buffered amount is now over the
    /// backpressure limit. Stop sending until [`Handler::drain`](crate::Handler::drain)
    /// fires; further sends are dropped until then.
    Backpressure {
        /// Bytes waiting to be written, this message included.
        buffered: usize,
    },
    /// Not accepted: the connection was already over its backpressure limit.
    Dropped {
        /// Bytes waiting to be written.
        buffered: usize,
    },
    /// Not accepted: the connection is closing or closed.
    Closed,
}

impl SendStatus {
    /// True when the message was accepted (it will be written unless the
    /// connection dies).
    pub fn is_accepted(self) -> bool {
        matches!(
            self,
            SendStatus::Queued { .. } | SendStatus::Backpressure { .. }
        )
    }
}

/// The connection's state, as in the browser's `WebSocket.readyState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadyState {
    /// Open: messages flow both ways.
    Open = 1,
    /// A close was started (by either side); nothing more can be sent.
    Closing = 2,
    /// The connection has ended.
    Closed = 3,
}

/// A close the driver has been asked to perform.
#[derive(Debug)]
pub(crate) enum CloseRequest {
    /// Flush what is queued, then send this close frame.
    Graceful(CloseCode, String),
    /// Drop the socket now, without a close frame.
    Terminate,
}

/// The state shared by a connection's driver, its [`Ws`] and its [`Handle`]s.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) waker: AtomicWaker,
    outbox: Mutex<Outbox>,
    limit: usize,
    close_on_backpressure: bool,
    /// Idle-sweeper ticks since the last frame from the peer; the driver
    /// resets it, the server's sweeper advances it (see `registry::sweep`).
    pub(crate) quiet: AtomicU32,
    /// Ticks of silence before the idle timeout; 0 when there is none.
    pub(crate) idle_ticks: u32,
    /// Notified when the connection has ended (timers stop on it).
    pub(crate) closed: event_listener::Event,
}

#[derive(Default)]
pub(crate) struct Outbox {
    queue: VecDeque<crate::protocol::Outgoing>,
    /// Payload bytes in `queue`.
    queued: usize,
    /// Payload bytes handed to the codec and not yet flushed.
    writing: usize,
    /// A send went over the limit: `drain` is owed once everything is written.
    over_limit: bool,
    closing: bool,
    closed: bool,
    pub(crate) request: Option<CloseRequest>,
    pub(crate) shutdown: bool,
    /// Set when backpressure closed the connection, so the driver reports it.
    pub(crate) backpressure_tripped: bool,
    /// Topics on which the backplane may have lost messages, for
    /// `Handler::gap`. Boxed: rare, and one pointer on every connection.
    #[allow(clippy::box_collection)] // one word per connection, not three
    pub(crate) gaps: Option<Box<Vec<Arc<str>>>>,
    /// Topics that keep history on which this subscriber fell behind (a
    /// publish was refused over the backpressure limit), with the last
    /// position it was given: live publishes skip it there until it has
    /// caught up from history. Boxed: rare.
    #[allow(clippy::box_collection)]
    pub(crate) behind: Option<Box<Vec<Behind>>>,
}

/// A topic a subscriber fell behind on: the last position it was given,
/// and where it catches up from.
#[derive(Clone, Debug)]
pub(crate) struct Behind {
    pub(crate) topic: Arc<str>,
    pub(crate) last: Position,
    pub(crate) from: CatchUp,
}

impl CatchUp {
    /// Whether it can catch up now (it does not wait for the store).
    fn is_ready(self) -> bool {
        matches!(self, CatchUp::Ring | CatchUp::Fetched)
    }
}

/// Where a subscriber that fell behind catches up from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CatchUp {
    /// This node's ring (a window that cannot tell asks the store).
    Ring,
    /// A fetch from the store is under way: wait for it.
    Fetching,
    /// The store was asked: the ring now tells, and what it lacks is lost.
    Fetched,
    /// It joined before this node knew where the topic stands in the
    /// store: it goes on from there once the node learns it.
    Starting,
}

impl Outbox {
    fn buffered(&self) -> usize {
        self.queued + self.writing
    }

    /// True when the queue has drained and topics are to be caught up.
    pub(crate) fn wants_catch_up(&self) -> bool {
        !self.over_limit
            && self
                .behind
                .as_ref()
                .is_some_and(|b| b.iter().any(|b| b.from.is_ready()))
    }

    /// The next topic to report a gap on; the list is freed once empty.
    /// None while the queue is over its backpressure limit: the report
    /// waits for the drain, or it would be dropped like what it reports.
    pub(crate) fn take_gap(&mut self) -> Option<Arc<str>> {
        if self.over_limit {
            return None;
        }
        let gaps = self.gaps.as_mut()?;
        let topic = gaps.pop();
        if gaps.is_empty() {
            self.gaps = None;
        }
        topic
    }
}

impl Shared {
    pub(crate) fn new(id: u64, limit: usize, close_on_backpressure: bool) -> Self {
        Shared {
            id,
            waker: AtomicWaker::new(),
            outbox: Mutex::new(Outbox::default()),
            limit,
            close_on_backpressure,
            quiet: AtomicU32::new(0),
            idle_ticks: 0,
            closed: event_listener::Event::new(),
        }
    }

    pub(crate) fn with_idle_ticks(mut self, ticks: u32) -> Self {
        self.idle_ticks = ticks;
        self
    }

    /// Ticks after which a quiet peer is pinged: half the idle timeout.
    pub(crate) fn ping_ticks(&self) -> u32 {
        self.idle_ticks.div_ceil(2)
    }

    /// One sweeper tick: true when the driver must look (ping or expire).
    pub(crate) fn tick(&self) -> bool {
        if self.idle_ticks == 0 {
            return false;
        }
        let quiet = self.quiet.fetch_add(1, Ordering::Relaxed) + 1;
        quiet == self.ping_ticks() || quiet >= self.idle_ticks
    }

    /// A frame arrived from the peer.
    pub(crate) fn heard(&self) {
        // Only write when needed, so a busy connection does not keep pulling
        // the cache line away from the sweeper.
        if self.quiet.load(Ordering::Relaxed) != 0 {
            self.quiet.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Outbox> {
        // A panic never happens while the lock is held (only plain field
        // updates run under it), so poisoning can be ignored safely.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a possible gap on `topic` for the driver to report; false when
    /// the connection is closing (it will hear nothing more anyway).
    pub(crate) fn push_gap(&self, topic: &Arc<str>) -> bool {
        {
            let mut out = self.lock();
            if out.closing || out.closed {
                return false;
            }
            let gaps = out.gaps.get_or_insert_with(Box::default);
            if !gaps.contains(topic) {
                gaps.push(topic.clone());
            }
        }
        self.waker.wake();
        true
    }

    /// Where this subscriber stopped on `topic`, if it fell behind there.
    pub(crate) fn behind_on(&self, topic: &str) -> Option<Position> {
        let out = self.lock();
        let behind = out.behind.as_ref()?;
        behind.iter().find(|b| &*b.topic == topic).map(|b| b.last)
    }

    /// Notes that this subscriber stopped at `last` on `topic`, to catch
    /// up from the ring (or, with `None`, that it has caught up there).
    pub(crate) fn set_behind(&self, topic: &Arc<str>, last: Option<Position>) {
        self.note_behind(topic, last.map(|last| (last, CatchUp::Ring)));
    }

    /// Notes that this subscriber, at `last` on `topic`, waits for a fetch
    /// from the store.
    pub(crate) fn await_store(&self, topic: &Arc<str>, last: Position) {
        self.note_behind(topic, Some((last, CatchUp::Fetching)));
    }

    /// A fetch of what follows offset `after` on `topic` is done: a
    /// subscriber waiting for it catches up from the ring now (the store
    /// was asked, unless it waits for something older). True when it was
    /// waiting.
    pub(crate) fn store_answered(&self, topic: &str, after: u64) -> bool {
        {
            let mut out = self.lock();
            let Some(b) = out
                .behind
                .as_mut()
                .and_then(|b| b.iter_mut().find(|b| &*b.topic == topic))
            else {
                return false;
            };
            if b.from != CatchUp::Fetching {
                return false;
            }
            b.from = if b.last.offset >= after {
                CatchUp::Fetched
            } else {
                CatchUp::Ring
            };
        }
        self.waker.wake();
        true
    }

    /// Notes that this subscriber joined `topic` before this node knew
    /// where the topic stands in the store.
    pub(crate) fn await_start(&self, topic: &Arc<str>) {
        let unknown = Position {
            epoch: 0,
            offset: 0,
        };
        self.note_behind(topic, Some((unknown, CatchUp::Starting)));
    }

    /// The node learnt where `topic` stood when this subscriber joined
    /// (`None`: it could not): it goes on from `at`. True when it was
    /// waiting for that.
    pub(crate) fn started(&self, topic: &str, at: Option<Position>) -> bool {
        {
            let mut out = self.lock();
            let Some(behind) = out.behind.as_mut() else {
                return false;
            };
            let Some(i) = behind
                .iter()
                .position(|b| &*b.topic == topic && b.from == CatchUp::Starting)
            else {
                return false;
            };
            match at {
                Some(at) => {
                    behind[i].last = at;
                    behind[i].from = CatchUp::Ring;
                }
                None => {
                    behind.swap_remove(i);
                    if behind.is_empty() {
                        out.behind = None;
                    }
                }
            }
        }
        self.waker.wake();
        true
    }

    fn note_behind(&self, topic: &Arc<str>, state: Option<(Position, CatchUp)>) {
        {
            let mut out = self.lock();
            let behind = out.behind.get_or_insert_with(Box::default);
            behind.retain(|b| &b.topic != topic);
            if let Some((last, from)) = state {
                behind.push(Behind {
                    topic: topic.clone(),
                    last,
                    from,
                });
            }
            if behind.is_empty() {
                out.behind = None;
            }
        }
        // A driver with nothing queued would not look again until some
        // other event: it catches up now (or once drained, if over its
        // limit).
        if state.is_some_and(|(_, from)| from.is_ready()) {
            self.waker.wake();
        }
    }

    /// The topics to catch up on now (not those waiting for the store).
    pub(crate) fn behind(&self) -> Vec<Behind> {
        let out = self.lock();
        let Some(behind) = out.behind.as_deref() else {
            return Vec::new();
        };
        behind
            .iter()
            .filter(|b| b.from.is_ready())
            .cloned()
            .collect()
    }

    pub(crate) fn push(&self, msg: crate::protocol::Outgoing, wake: bool) -> SendStatus {
        let len = msg.len();
        let status = {
            let mut out = self.lock();
            if out.closing || out.closed {
                return SendStatus::Closed;
            }
            let buffered = out.buffered();
            if buffered > self.limit {
                if self.close_on_backpressure && out.request.is_none() {
                    out.closing = true;
                    out.backpressure_tripped = true;
                    out.request = Some(CloseRequest::Graceful(
                        CloseCode::POLICY,
                        "backpressure limit".to_owned(),
                    ));
                    drop(out);
                    self.waker.wake();
                    return SendStatus::Closed;
                }
                return SendStatus::Dropped { buffered };
            }
            out.queue.push_back(msg);
            out.queued += len;
            let buffered = buffered + len;
            if buffered > self.limit {
                out.over_limit = true;
                SendStatus::Backpressure { buffered }
            } else {
                SendStatus::Queued { buffered }
            }
        };
        if wake {
            self.waker.wake();
        }
        status
    }

    /// Control frames bypass the backpressure limit: they are tiny and keep
    /// the connection alive.
    fn push_control(&self, msg: crate::protocol::Outgoing, wake: bool) -> Result<(), Error> {
        {
            let mut out = self.lock();
            if out.closing || out.closed {
                return Err(Error::new(ErrorKind::Closed));
            }
            out.queued += msg.len();
            out.queue.push_back(msg);
        }
        if wake {
            self.waker.wake();
        }
        Ok(())
    }

    pub(crate) fn request_close(
        &self,
        code: CloseCode,
        reason: &str,
        wake: bool,
    ) -> Result<(), Error> {
        check_close(code, reason)?;
        {
            let mut out = self.lock();
            if out.closing || out.closed {
                return Err(Error::new(ErrorKind::Closed));
            }
            out.closing = true;
            out.request = Some(CloseRequest::Graceful(code, reason.to_owned()));
        }
        if wake {
            self.waker.wake();
        }
        Ok(())
    }

    pub(crate) fn terminate(&self) {
        {
            let mut out = self.lock();
            if out.closed {
                return;
            }
            out.closing = true;
            out.request = Some(CloseRequest::Terminate);
        }
        self.waker.wake();
    }

    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.waker.wake();
    }

    /// Moves everything queued into `batch` for the driver to write.
    pub(crate) fn take_queue(&self, batch: &mut VecDeque<crate::protocol::Outgoing>) {
        let mut out = self.lock();
        std::mem::swap(batch, &mut out.queue);
        out.writing += out.queued;
        out.queued = 0;
    }

    /// Everything handed to the codec is on the wire. Returns true when a
    /// `drain` is owed.
    pub(crate) fn flushed(&self) -> bool {
        let mut out = self.lock();
        out.writing = 0;
        if out.over_limit && out.queued == 0 {
            out.over_limit = false;
            return true;
        }
        false
    }

    /// The connection has started closing: refuse new sends.
    pub(crate) fn set_closing(&self) {
        self.lock().closing = true;
    }

    /// The connection has ended: drop what was never written, stop timers.
    pub(crate) fn set_closed(&self) {
        {
            let mut out = self.lock();
            out.closing = true;
            out.closed = true;
            out.queue = VecDeque::new();
            out.queued = 0;
            out.writing = 0;
        }
        self.closed.notify(usize::MAX);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn is_idle_queue(&self) -> bool {
        let out = self.lock();
        out.queued == 0 && out.writing == 0
    }

    fn buffered(&self) -> usize {
        self.lock().buffered()
    }

    fn ready_state(&self) -> ReadyState {
        let out = self.lock();
        if out.closed {
            ReadyState::Closed
        } else if out.closing {
            ReadyState::Closing
        } else {
            ReadyState::Open
        }
    }
}

/// Facts about a connection fixed at the upgrade.
pub(crate) struct Info {
    pub(crate) remote_addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) params: RawParams,
    pub(crate) query: Option<String>,
    pub(crate) protocol: Option<String>,
    /// The route's `publish_to_self` option.
    pub(crate) publish_to_self: bool,
    /// The runtime, for timers.
    pub(crate) rt: crate::runtime::Rt,
    /// Values middleware attached to the upgrade request.
    pub(crate) values: http::Extensions,
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
    /// [`Timer::cancel`] is called), with no cleanup in `close`. `tick` runs
    /// on its own task with the connection's [`Handle`], so it can send,
    /// publish from the handle's app topics, or close; it cannot touch
    /// `ws.data` (use a channel or shared state for that).
    ///
    /// ```no_run
    /// # use wsway::{Handler, Ws};
    /// # use std::time::Duration;
    /// # struct Clock;
    /// # impl Handler for Clock {
    /// #     type Data = ();
    /// async fn open(&self, ws: &mut Ws<()>) {
    ///     ws.every(Duration::from_secs(1), |conn| {
    ///         conn.send("tick");
    ///     });
    /// }
    /// # }
    /// ```
    pub fn every(&self, period: Duration, mut tick: impl FnMut(&Handle) + Send + 'static) -> Timer {
        crate::timer::start(&self.info.rt, self.shared.clone(), period, move |h| {
            tick(h);
            true
        })
    }

    /// Runs `f` once after `delay`, unless the connection has closed (or
    /// the timer was cancelled) by then.
    pub fn after(&self, delay: Duration, f: impl FnOnce(&Handle) + Send + 'static) -> Timer {
        let mut f = Some(f);
        crate::timer::start(&self.info.rt, self.shared.clone(), delay, move |h| {
            if let Some(f) = f.take() {
                f(h);
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

    /// The extensions agreed at the upgrade: always empty, as wsway does not
    /// negotiate permessage-deflate yet.
    pub fn extensions(&self) -> &str {
        ""
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
        let payload = payload.into();
        check_control(&payload)?;
        self.shared
            .push_control(crate::protocol::Outgoing::ping(payload), false)
    }

    /// Sends an unsolicited pong. Payloads over 125 bytes are an error.
    pub fn pong(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        check_control(&payload)?;
        self.shared
            .push_control(crate::protocol::Outgoing::pong(payload), false)
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
        Handle {
            shared: self.shared.clone(),
        }
    }
}

/// A handle to a connection, usable from any task or thread.
///
/// It does not keep the connection open: once the connection ends, sends
/// report [`SendStatus::Closed`].
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl Handle {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Handle { shared }
    }

    /// The connection's id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Queues a message, as [`Ws::send`].
    pub fn send(&self, msg: impl Into<Message>) -> SendStatus {
        self.shared.push(msg.into().into_codec(), true)
    }

    /// Sends a ping, as [`Ws::ping`].
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        check_control(&payload)?;
        self.shared
            .push_control(crate::protocol::Outgoing::ping(payload), true)
    }

    /// Starts a graceful close, as [`Ws::close`].
    pub fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<(), Error> {
        self.shared.request_close(code.into(), reason, true)
    }

    /// Drops the connection without a close frame, as [`Ws::terminate`].
    pub fn terminate(&self) {
        self.shared.terminate()
    }

    /// Bytes queued and not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.shared.buffered()
    }

    /// Open, closing or closed.
    pub fn ready_state(&self) -> ReadyState {
        self.shared.ready_state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> crate::protocol::Outgoing {
        crate::protocol::Outgoing::binary(vec![0; n].into())
    }

    #[test]
    fn backpressure_then_drop_then_drain() {
        let s = Shared::new(1, 100, false);
        assert_eq!(s.push(text(60), false), SendStatus::Queued { buffered: 60 });
        assert_eq!(
            s.push(text(60), false),
            SendStatus::Backpressure { buffered: 120 }
        );
        assert_eq!(
            s.push(text(1), false),
            SendStatus::Dropped { buffered: 120 }
        );
        let mut batch = VecDeque::new();
        s.take_queue(&mut batch);
        assert_eq!(batch.len(), 2);
        assert_eq!(
            s.buffered(),
            120,
            "handed to the codec still counts until flushed"
        );
        assert!(s.flushed(), "drain owed after going over");
        assert!(!s.flushed(), "drain owed once");
        assert_eq!(s.push(text(1), false), SendStatus::Queued { buffered: 1 });
    }

    #[test]
    fn close_on_backpressure_closes() {
        let s = Shared::new(1, 10, true);
        assert!(matches!(
            s.push(text(20), false),
            SendStatus::Backpressure { .. }
        ));
        assert_eq!(s.push(text(1), false), SendStatus::Closed);
        assert!(matches!(
            s.lock().request,
            Some(CloseRequest::Graceful(CloseCode::POLICY, _))
        ));
    }

    #[test]
    fn closing_refuses_sends_and_bad_closes_change_nothing() {
        let s = Shared::new(1, 10, false);
        assert!(s.request_close(CloseCode(1005), "", false).is_err());
        assert_eq!(s.ready_state(), ReadyState::Open);
        s.request_close(CloseCode(4000), "bye", false).unwrap();
        assert_eq!(s.ready_state(), ReadyState::Closing);
        assert_eq!(s.push(text(1), false), SendStatus::Closed);
        assert!(
            s.request_close(CloseCode(1000), "", false)
                .unwrap_err()
                .is_closed()
        );
    }
}
