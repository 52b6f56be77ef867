//! Server-to-client requests: an event the server sends with an `id`, and
//! the client's reply, delivered to a callback on the connection's task.
//!
//! The callback runs on the connection rather than being awaited inside a
//! handler because a connection reads nothing while one of its callbacks
//! runs: a handler awaiting its own client's reply would wait for a frame
//! it has stopped reading.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::envelope::{self, ClientReply};
use super::error::EventError;
use crate::connection::socket::Ws;
use crate::delivery::outbox::SendStatus;

/// A parked callback: the reply's data (raw) or its error.
type Waiting<D> = Box<dyn FnOnce(&mut Ws<D>, Result<Option<&RawValue>, EventError>) + Send>;

impl<D: 'static> Ws<D> {
    /// Sends the event with an `id` and runs `then` with the client's
    /// reply, as socket.io's `emit` with a callback does. `then` runs on
    /// this connection's task (with `ws.data`, like a timer tick) and gets:
    ///
    /// - `Ok(T)`: the client acknowledged with data that reads as `T`;
    /// - `Err(e)` with `e.code()` the client's code (and `e.data()` its
    ///   payload) when it replied with an error, `"bad_data"` when its
    ///   data is not a `T`, or `"timeout"` when no reply came within
    ///   `timeout`.
    ///
    /// A reply that comes after the timeout is ignored; if the connection
    /// ends first, `then` never runs. `wsway.js` replies with what the
    /// listener returns (or the promise resolves to), and with an error
    /// when it throws.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wsway::{Events, EventError};
    /// let mut events = Events::<u32>::new();
    /// events.on("ready", |ws, (): ()| {
    ///     ws.emit_with_ack("confirm", &"sell?", Duration::from_secs(5), |ws, yes: Result<bool, EventError>| {
    ///         if let Ok(true) = yes {
    ///             ws.data += 1;
    ///         }
    ///     })?;
    ///     Ok(())
    /// });
    /// ```
    pub fn emit_with_ack<T, F>(
        &self,
        event: &str,
        data: &impl Serialize,
        timeout: Duration,
        then: F,
    ) -> Result<SendStatus, EventError>
    where
        T: DeserializeOwned,
        F: FnOnce(&mut Ws<D>, Result<T, EventError>) + Send + 'static,
    {
        let shared = self.shared();
        let id = shared.next_request_id();
        let msg = envelope::push(event, data, Some(id))?;
        let timer = self.after(timeout, move |ws| {
            let err = EventError::new("timeout", "the client did not reply in time");
            resolve(ws, id, Err(err));
        });
        let waiting: Waiting<D> = Box::new(move |ws, outcome| {
            timer.cancel();
            let outcome = outcome.and_then(|data| {
                serde_json::from_str(data.map_or("null", RawValue::get))
                    .map_err(|e| EventError::new("bad_data", e.to_string()))
            });
            then(ws, outcome);
        });
        shared.park(id, Box::new(waiting));
        Ok(self.send(msg))
    }
}

/// Delivers a client's reply to the callback waiting for it, if any (a
/// late or unknown one is ignored).
pub(super) fn deliver<D: 'static>(ws: &mut Ws<D>, reply: ClientReply<'_>) {
    resolve(ws, reply.id, reply.outcome);
}

fn resolve<D: 'static>(ws: &mut Ws<D>, id: u64, outcome: Result<Option<&RawValue>, EventError>) {
    let Some(waiting) = ws.shared().unpark(id) else {
        return;
    };
    if let Ok(callback) = waiting.downcast::<Waiting<D>>() {
        callback(ws, outcome);
    }
}
