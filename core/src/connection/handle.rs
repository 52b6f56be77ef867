//! [`Handle`]: a connection reached from anywhere, through its outbox.

use std::sync::Arc;

use bytes::Bytes;

use crate::delivery::outbox::{ReadyState, SendStatus, Shared};
use crate::error::Error;
use crate::message::{CloseCode, Message};

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

    /// Queues a message, as [`Ws::send`](crate::Ws::send).
    pub fn send(&self, msg: impl Into<Message>) -> SendStatus {
        self.shared.push(msg.into().into_codec(), true)
    }

    /// Sends a ping, as [`Ws::ping`](crate::Ws::ping).
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.shared
            .push_control(crate::protocol::Outgoing::ping(payload.into()), true)
    }

    /// Starts a graceful close, as [`Ws::close`](crate::Ws::close).
    pub fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<(), Error> {
        self.shared.request_close(code.into(), reason, true)
    }

    /// Drops the connection without a close frame, as [`Ws::terminate`](crate::Ws::terminate).
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
