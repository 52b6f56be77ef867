//! The handler trait: one connection's life as optional async callbacks.

use std::future::Future;

use crate::connection::socket::Ws;
use crate::error::Error;
use crate::message::{CloseCode, Message};
use crate::web::body::Response;
use crate::web::request::Request;

/// What [`Handler::before_upgrade`] returns to accept a connection: its
/// per-connection data and, optionally, the subprotocol chosen.
#[derive(Debug, Default)]
pub struct Accept<D> {
    pub(crate) data: D,
    pub(crate) protocol: Option<String>,
}

impl<D> Accept<D> {
    /// Accepts with this per-connection data.
    pub fn new(data: D) -> Self {
        Accept {
            data,
            protocol: None,
        }
    }

    /// Chooses a subprotocol. It must be one the client offered
    /// ([`Request::protocols`]); anything else fails the upgrade with 500,
    /// since answering with a protocol the client did not ask for would make
    /// a conforming client drop the connection.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }
}

/// A WebSocket route's behaviour. Every callback is optional; the defaults do
/// nothing (and `before_upgrade` accepts with `Data::default()`).
///
/// Callbacks of one connection run one at a time, in order, and no further
/// frame is read while `message` runs: a slow handler slows its own peer
/// down (inbound backpressure) and no one else.
///
/// A panic in any callback closes that one connection with 1011 and calls
/// [`error`](Handler::error); every other connection carries on.
///
/// ```
/// use wsway::{Handler, Message, Ws};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     type Data = ();
///
///     async fn message(&self, ws: &mut Ws<()>, msg: Message) {
///         ws.send(msg);
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Per-connection state, available as `ws.data` in every callback.
    type Data: Default + Send + 'static;

    /// Runs before the `101`: check headers, cookies, params and query;
    /// accept with the connection's data, or reject with any HTTP response
    /// (401, 403, 429 ...). A [`Rejection`](crate::Rejection) from
    /// `req.params()` or `req.query()` converts with `?` into a 400.
    fn before_upgrade(
        &self,
        req: &Request,
    ) -> impl Future<Output = Result<Accept<Self::Data>, Response>> + Send {
        let _ = req;
        async { Ok(Accept::default()) }
    }

    /// The connection is open. Runs before the `101` is sent: when the
    /// client sees the upgrade succeed, the topics subscribed here are in
    /// place, and the messages sent here are the first it receives. (A slow
    /// `open` delays the `101`; if the client leaves meanwhile, `close`
    /// still runs, with 1006.)
    fn open(&self, ws: &mut Ws<Self::Data>) -> impl Future<Output = ()> + Send {
        let _ = ws;
        async {}
    }

    /// A complete text or binary message arrived.
    fn message(&self, ws: &mut Ws<Self::Data>, msg: Message) -> impl Future<Output = ()> + Send {
        let _ = (ws, msg);
        async {}
    }

    /// A connection that went over its backpressure limit has written
    /// everything it had queued.
    fn drain(&self, ws: &mut Ws<Self::Data>) -> impl Future<Output = ()> + Send {
        let _ = ws;
        async {}
    }

    /// Messages published on `topic` by other nodes may have been missed
    /// while this connection was subscribed: the backplane lost its store
    /// for a while (Redis restarted, say), or another node had to drop
    /// what it could not forward. Nothing is ever delivered twice; this is
    /// the signal to refetch what matters. Runs at most once per topic for
    /// each loss the backplane notices, never while closing. What it sends
    /// goes out ahead of every message that followed the hole: messages
    /// queued from elsewhere wait until it returns. Default: nothing
    /// ([`Events`](crate::Events) pushes the event `wsway:gap`).
    fn gap(&self, ws: &mut Ws<Self::Data>, topic: &str) -> impl Future<Output = ()> + Send {
        let _ = (ws, topic);
        async {}
    }

    /// Something went wrong: a limit tripped, the peer broke the protocol or
    /// vanished, a callback panicked. For what ends the connection it runs
    /// at most once, before `close`. A rate limit set to
    /// [`drop_excess`](crate::RateLimit::drop_excess) reports here once per
    /// window in which messages were dropped, and the connection stays open.
    fn error(&self, ws: &mut Ws<Self::Data>, err: &Error) -> impl Future<Output = ()> + Send {
        let _ = (ws, err);
        async {}
    }

    /// The connection has ended. Runs exactly once per opened connection.
    /// `code` is the one in the peer's close frame, the one the server failed
    /// the connection with, or 1006 when it dropped without either.
    fn close(
        &self,
        ws: &mut Ws<Self::Data>,
        code: CloseCode,
        reason: &str,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ws, code, reason);
        async {}
    }
}

/// A handler made of one synchronous closure, called for every message.
/// See [`on_message`].
pub struct OnMessage<F>(F);

/// The one-line form for simple routes:
///
/// ```
/// use wsway::{App, on_message};
///
/// let mut app = App::new();
/// app.ws("/echo", on_message(|ws, msg| {
///     ws.send(msg);
/// }));
/// ```
pub fn on_message<F>(f: F) -> OnMessage<F>
where
    F: Fn(&mut Ws<()>, Message) + Send + Sync + 'static,
{
    OnMessage(f)
}

impl<F> Handler for OnMessage<F>
where
    F: Fn(&mut Ws<()>, Message) + Send + Sync + 'static,
{
    type Data = ();

    fn message(&self, ws: &mut Ws<()>, msg: Message) -> impl Future<Output = ()> + Send {
        (self.0)(ws, msg);
        std::future::ready(())
    }
}
