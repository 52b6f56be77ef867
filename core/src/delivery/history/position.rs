//! Positions in a topic's history, and how much of it is kept.

use std::fmt;
use std::time::Duration;

/// Where a message stands in a recoverable topic: its offset (1, 2, 3 …)
/// within an epoch. A new epoch means the history before it is gone (the
/// process that kept it restarted, or it expired).
///
/// On the wire (the event layer's `"pos"`) it is `"<epoch>:<offset>"`,
/// the epoch in hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// Which history this offset counts in.
    pub epoch: u64,
    /// The message's number in its topic, from 1.
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}:{}", self.epoch, self.offset)
    }
}

impl Position {
    /// Reads the wire form, `"<epoch hex>:<offset>"`.
    pub fn parse(s: &str) -> Option<Position> {
        let (epoch, offset) = s.split_once(':')?;
        Some(Position {
            epoch: u64::from_str_radix(epoch, 16).ok()?,
            offset: offset.parse().ok()?,
        })
    }
}

/// How much history a topic keeps: at most `messages`, none older than
/// the maximum age.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    messages: usize,
    max_age: Duration,
}

/// How old a kept message may grow unless [`Retention::max_age`] says:
/// 10 minutes. Long enough for a dropped train connection or a short
/// sleep; a client away longer is told of a gap (`wsway:gap`) and
/// reloads. The message count bounds memory either way.
pub const DEFAULT_HISTORY_AGE: Duration = Duration::from_secs(600);

impl Retention {
    /// Keeps the last `messages` (at least 1), for at most
    /// [`DEFAULT_HISTORY_AGE`] (10 minutes).
    pub fn messages(messages: usize) -> Self {
        Retention {
            messages: messages.max(1),
            max_age: DEFAULT_HISTORY_AGE,
        }
    }

    /// Forgets messages older than `age`. Default: [`DEFAULT_HISTORY_AGE`],
    /// 10 minutes.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// How many messages are kept, at most.
    pub fn message_limit(&self) -> usize {
        self.messages
    }

    /// How old a kept message may grow.
    pub fn age_limit(&self) -> Duration {
        self.max_age
    }
}
