//! [`Socket`]: the connection as a loop-style function holds it.

use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::state::{Cancellation, LoopState};
use crate::connection::handle::Handle;
use crate::connection::socket::Ws;
use crate::delivery::outbox::{ReadyState, SendStatus};
use crate::error::Error;
use crate::message::{CloseCode, Message};
use crate::runtime::{BoxSleep, Rt};
use crate::topics::pubsub::{Published, Topics};

/// One WebSocket connection, owned by a loop-style function
/// ([`ws_fn`](crate::ws_fn)).
///
/// Nothing is read from the peer until [`recv`](Socket::recv) asks: while
/// the function is busy, the peer's frames wait in the socket and TCP
/// slows the peer down. Its pings and close frame wait too, so a peer that
/// vanished meanwhile is noticed when a write fails or `recv` is called
/// again; the idle timeout does not run while the function is not
/// reading. Sends are queued as with [`Ws::send`] and return
/// the same [`SendStatus`]. Dropping the socket (the function returning,
/// usually) closes the connection with 1000, unless
/// [`keep_open`](Socket::keep_open) was called.
pub struct Socket {
    state: Arc<LoopState>,
    topics: Topics,
    rt: Rt,
    remote_addr: SocketAddr,
    protocol: Option<Arc<str>>,
    keep_open: bool,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id())
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

impl Socket {
    pub(crate) fn new<D>(state: Arc<LoopState>, ws: &Ws<D>) -> Self {
        Socket {
            state,
            topics: ws.topics().clone(),
            rt: ws.runtime().clone(),
            remote_addr: ws.remote_addr(),
            protocol: ws.protocol().map(Arc::from),
            keep_open: false,
        }
    }

    /// The next text or binary message; `None` once the connection is
    /// closing (either side, or the server shutting down) and every message
    /// read before has been taken. Cancel-safe: a `recv` dropped before it
    /// returns loses nothing.
    pub async fn recv(&mut self) -> Option<Message> {
        poll_fn(|cx| self.state.poll_recv(cx)).await
    }

    /// The next message as JSON of type `T`. A binary message or one that
    /// does not parse as `T` is an `Err` carrying the message (the
    /// connection stays open; answering, skipping or closing with 1003 or
    /// 1007 is the function's choice). `None` as for [`recv`](Socket::recv).
    pub async fn recv_json<T: DeserializeOwned>(&mut self) -> Option<Result<T, JsonError>> {
        let msg = self.recv().await?;
        Some(match &msg {
            Message::Text(text) => serde_json::from_str(text.as_str()).map_err(|e| JsonError {
                message: msg.clone(),
                cause: Some(e),
            }),
            Message::Binary(_) => Err(JsonError {
                message: msg,
                cause: None,
            }),
        })
    }

    /// Queues a message. See [`SendStatus`] for what the answer means.
    pub fn send(&self, msg: impl Into<Message>) -> SendStatus {
        self.state.shared.push(msg.into().into_codec(), self.wake())
    }

    /// Queues a text message.
    pub fn send_text(&self, text: impl Into<crate::Text>) -> SendStatus {
        self.send(Message::Text(text.into()))
    }

    /// Queues a binary message (no copy for `Bytes`).
    pub fn send_binary(&self, data: impl Into<Bytes>) -> SendStatus {
        self.send(Message::Binary(data.into()))
    }

    /// Queues `value` as a JSON text message. Fails only if `value` cannot
    /// be serialized.
    pub fn send_json(&self, value: &impl Serialize) -> Result<SendStatus, serde_json::Error> {
        Ok(self.send(Message::text(serde_json::to_string(value)?)))
    }

    /// Sends a ping. Payloads over 125 bytes are an error.
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.state
            .shared
            .push_control(crate::protocol::Outgoing::ping(payload.into()), self.wake())
    }

    /// Starts a graceful close: what is queued is written, then the close
    /// frame; `recv` returns `None` from now on. Invalid codes and reasons
    /// over 123 bytes are an error and change nothing.
    pub fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<(), Error> {
        self.state
            .shared
            .request_close(code.into(), reason, self.wake())
    }

    /// Drops the connection at once, without a close frame.
    pub fn terminate(&self) {
        self.state.shared.terminate()
    }

    /// Bytes queued and not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.state.shared.buffered()
    }

    /// Open, closing or closed.
    pub fn ready_state(&self) -> ReadyState {
        self.state.shared.ready_state()
    }

    /// Waits until the send queue is back under the backpressure limit
    /// after a send returned [`SendStatus::Backpressure`] (at once when it
    /// is not over it, or when the connection is closing).
    pub async fn drained(&self) {
        let over = || self.state.shared.is_over_limit() && self.ready_state() == ReadyState::Open;
        while over() {
            let listener = self.state.changed.listen();
            if !over() {
                return;
            }
            listener.await;
        }
    }

    /// A cloneable, `Send + Sync` handle for sending to or closing this
    /// connection from other tasks.
    pub fn handle(&self) -> Handle {
        Handle::from_shared(self.state.shared.clone())
    }

    /// The connection's cancellation, to hand to work started for it.
    pub fn cancellation(&self) -> Cancellation {
        Cancellation {
            trigger: self.state.cancel.clone(),
        }
    }

    /// Waits until the connection starts closing (either side), ends, or
    /// the server starts shutting down.
    pub async fn cancelled(&self) {
        self.state.cancel.wait().await
    }

    /// The next topic on which messages from other nodes may have been
    /// missed (see [`Handler::gap`](crate::Handler::gap)); `None` once the
    /// connection has ended.
    pub async fn gap(&self) -> Option<String> {
        loop {
            if let Some(topic) = self.state.take_gap() {
                return Some(topic.to_string());
            }
            if self.state.is_ended() {
                return None;
            }
            let listener = self.state.changed.listen();
            if self.state.take_gap().is_none() && !self.state.is_ended() {
                listener.await;
            }
        }
    }

    /// Once the connection has ended: the close code and reason (the peer's,
    /// the one it was failed with, or 1006). `None` before, while it is
    /// still closing; [`closed`](Socket::closed) waits for it.
    pub fn closed_with(&self) -> Option<(CloseCode, String)> {
        self.state.ended()
    }

    /// Waits until the connection has ended (after `recv` returned `None`,
    /// the closing handshake takes a round trip, or the close timeout) and
    /// returns its close code and reason, as [`closed_with`](Socket::closed_with).
    pub async fn closed(&self) -> (CloseCode, String) {
        loop {
            if let Some(ended) = self.state.ended() {
                return ended;
            }
            let listener = self.state.changed.listen();
            if let Some(ended) = self.state.ended() {
                return ended;
            }
            listener.await;
        }
    }

    /// What went wrong, if something did: a limit tripped, the peer broke
    /// the protocol or vanished.
    pub fn error(&self) -> Option<Error> {
        self.state.error()
    }

    /// Subscribes to `topic`, as [`Ws::subscribe`]; false if it already was.
    pub fn subscribe(&self, topic: &str) -> bool {
        self.state.ws().subscribe(topic)
    }

    /// Unsubscribes from `topic`; false if it was not subscribed.
    pub fn unsubscribe(&self, topic: &str) -> bool {
        self.state.ws().unsubscribe(topic)
    }

    /// Whether this connection is subscribed to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.state.ws().is_subscribed(topic)
    }

    /// The topics this connection is subscribed to.
    pub fn subscriptions(&self) -> Vec<String> {
        self.state.ws().subscriptions().map(str::to_owned).collect()
    }

    /// Publishes to `topic`, as [`Ws::publish`] (not to this connection
    /// unless the route publishes to self).
    pub fn publish(&self, topic: &str, msg: impl Into<Message>) -> Published {
        self.state.ws().publish(topic, msg)
    }

    /// Tracks this connection in `topic`'s presence, as [`Ws::track`].
    pub fn track(&self, topic: &str, meta: &impl Serialize) -> Result<bool, serde_json::Error> {
        self.state.ws().track(topic, meta)
    }

    /// Leaves `topic`'s presence; false if it was not tracked there.
    pub fn untrack(&self, topic: &str) -> bool {
        self.state.ws().untrack(topic)
    }

    /// This connection's id in presence lists, as [`Ws::member_id`].
    pub fn member_id(&self) -> String {
        self.topics.member_id(self.id())
    }

    /// The app's topics.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// This connection's id, unique within the server's lifetime.
    pub fn id(&self) -> u64 {
        self.state.shared.id
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The subprotocol agreed at the upgrade, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Sleeps on the server's runtime (whichever adapter runs it).
    pub async fn sleep(&self, duration: Duration) {
        self.rt.sleep(duration).await
    }

    /// Ticks every `period` on the server's runtime, the first after one
    /// period. Race [`Interval::tick`] against [`recv`](Socket::recv) (both
    /// are cancel-safe) to do timed work between messages.
    pub fn interval(&self, period: Duration) -> Interval {
        Interval {
            next: self.rt.sleep(period),
            rt: self.rt.clone(),
            period,
        }
    }

    /// Keeps the connection open after the socket is dropped: topics it
    /// subscribed to keep delivering until the peer or the server closes
    /// it. The peer's messages are read and dropped from then on.
    pub fn keep_open(mut self) {
        self.keep_open = true;
    }

    fn wake(&self) -> bool {
        // On the connection's own task the driver writes right after the
        // function yields; from elsewhere it has to be woken.
        !self.state.on_task.load(Ordering::Relaxed)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.state.socket_dropped(self.keep_open);
    }
}

/// A periodic timer from [`Socket::interval`].
pub struct Interval {
    next: BoxSleep,
    rt: Rt,
    period: Duration,
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Interval {
    /// Waits for the next tick. Cancel-safe: dropped before it fires, the
    /// tick stays due.
    pub async fn tick(&mut self) {
        self.next.as_mut().await;
        self.next = self.rt.sleep(self.period);
    }
}

/// A message [`Socket::recv_json`] could not read as the type asked for.
#[derive(Debug)]
pub struct JsonError {
    message: Message,
    /// `None`: the message was binary.
    cause: Option<serde_json::Error>,
}

impl JsonError {
    /// The message as received.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The parse error; `None` when the message was binary.
    pub fn cause(&self) -> Option<&serde_json::Error> {
        self.cause.as_ref()
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(e) => write!(f, "the message is not the JSON expected: {e}"),
            None => write!(
                f,
                "expected a JSON text message, got a binary one of {} bytes",
                self.message.len()
            ),
        }
    }
}

impl std::error::Error for JsonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|e| e as _)
    }
}
