//! The seam to a backplane that keeps history in a store: what a fetch
//! returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::message::Message;

/// What a store holds of a topic after a position: its epoch, the last
/// offset it gave, and the kept messages after the position asked for,
/// oldest first.
#[derive(Clone, Debug)]
pub struct StoredHistory {
    /// The topic's current epoch in the store (made when it had none).
    pub epoch: u64,
    /// The last offset given in that epoch (0 when none yet).
    pub last: u64,
    /// The kept messages after the asked position, oldest first; a store
    /// leaves out what it trimmed or what outlived the retention's age.
    pub messages: Vec<StoredMessage>,
}

/// One message of a [`StoredHistory`].
#[derive(Clone, Debug)]
pub struct StoredMessage {
    /// Its offset in the epoch.
    pub offset: u64,
    /// How long ago it was published, by the store's clock.
    pub age: Duration,
    /// The message as published (without the event layer's `"pos"`).
    pub message: Message,
    /// A connection of this node its publisher left out
    /// ([`Ws::publish`](crate::Ws::publish) leaves out the sender):
    /// delivered from the store, the message leaves it out again. `None`
    /// for messages another node published.
    pub except: Option<u64>,
}

/// A fetch from a history store that failed; the subscribers waiting for
/// it are told of a gap.
#[derive(Debug)]
pub struct HistoryError {
    reason: String,
}

impl HistoryError {
    /// An error with the reason, for a [`Backplane`](crate::Backplane).
    pub fn new(reason: impl Into<String>) -> Self {
        HistoryError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topic history is unavailable: {}", self.reason)
    }
}

impl std::error::Error for HistoryError {}

/// What a backplane's history fetch returns.
pub type HistoryFuture = Pin<Box<dyn Future<Output = Result<StoredHistory, HistoryError>> + Send>>;
