//! Topics that keep history, so that a client that reconnects resumes where
//! it was: every publish to such a topic gets a [`Position`] (an offset
//! within an epoch), the last messages are kept (bounded by
//! [`Retention`]), and a subscriber that says where it was gets what it
//! missed, in order, before anything new. When the gap is no longer in
//! history (trimmed, or another epoch), it is told so instead.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

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

impl Retention {
    /// Keeps the last `messages` (at least 1), for at most 2 minutes.
    pub fn messages(messages: usize) -> Self {
        Retention {
            messages: messages.max(1),
            max_age: Duration::from_secs(120),
        }
    }

    /// Forgets messages older than `age`. Default: 2 minutes.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }
}

/// Which topics keep history: exact names, or prefixes ending in `*`.
#[derive(Default)]
pub(crate) struct History {
    rules: RwLock<Vec<(String, Retention)>>,
    rings: RwLock<HashMap<Arc<str>, Arc<Mutex<Ring>>>>,
}

/// One topic's kept messages.
pub(crate) struct Ring {
    epoch: u64,
    next: u64,
    retention: Retention,
    entries: VecDeque<Entry>,
}

struct Entry {
    offset: u64,
    at: Instant,
    frame: tungstenite::Message,
}

/// What a resuming subscriber gets.
pub(crate) enum Replay {
    /// The messages after its position with their offsets, oldest first
    /// (maybe none).
    Missed(Vec<(u64, tungstenite::Message)>),
    /// Its position is no longer in history.
    Lost,
}

impl History {
    pub(crate) fn keep(&self, pattern: &str, retention: Retention) {
        self.rules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((pattern.to_owned(), retention));
    }

    /// The retention for `topic`, if it keeps history.
    pub(crate) fn retention(&self, topic: &str) -> Option<Retention> {
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
        rules.iter().find_map(|(pattern, r)| {
            let hit = match pattern.strip_suffix('*') {
                Some(prefix) => topic.starts_with(prefix),
                None => topic == pattern,
            };
            hit.then_some(*r)
        })
    }

    /// The ring of `topic`, made on first use with a fresh epoch. Rings
    /// whose every message has expired are forgotten on the way.
    pub(crate) fn ring(&self, topic: &str, retention: Retention) -> Arc<Mutex<Ring>> {
        // Every publish to a topic that keeps history comes here: the
        // common case (the ring exists) takes only the shared lock.
        let existing = self
            .rings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .cloned();
        if let Some(ring) = existing {
            return ring;
        }
        let mut rings = self.rings.write().unwrap_or_else(|e| e.into_inner());
        if let Some(ring) = rings.get(topic) {
            return ring.clone();
        }
        let now = Instant::now();
        rings.retain(|_, r| !lock(r).expired(now));
        let ring = Arc::new(Mutex::new(Ring {
            epoch: new_epoch(),
            next: 1,
            retention,
            entries: VecDeque::new(),
        }));
        rings.insert(topic.into(), ring.clone());
        ring
    }
}

pub(crate) fn lock(ring: &Mutex<Ring>) -> MutexGuard<'_, Ring> {
    // Only plain collection updates run under the lock.
    ring.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ring {
    /// The position the next publish gets.
    pub(crate) fn next_position(&self) -> Position {
        Position {
            epoch: self.epoch,
            offset: self.next,
        }
    }

    /// Keeps `frame` as the message at the next position.
    pub(crate) fn record(&mut self, frame: tungstenite::Message) {
        let now = Instant::now();
        self.entries.push_back(Entry {
            offset: self.next,
            at: now,
            frame,
        });
        self.next += 1;
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while self.entries.len() > self.retention.messages
            || self
                .entries
                .front()
                .is_some_and(|e| now.duration_since(e.at) > self.retention.max_age)
        {
            self.entries.pop_front();
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.entries
            .back()
            .is_none_or(|e| now.duration_since(e.at) > self.retention.max_age)
    }

    /// What a subscriber that was at `since` missed.
    pub(crate) fn replay(&mut self, since: Position) -> Replay {
        self.trim(Instant::now());
        let last = self.next - 1;
        let oldest = self.entries.front().map_or(self.next, |e| e.offset);
        // In this epoch, not ahead of it, and nothing missing between.
        if since.epoch != self.epoch
            || since.offset > last
            || since.offset.saturating_add(1) < oldest
        {
            return Replay::Lost;
        }
        Replay::Missed(
            self.entries
                .iter()
                .filter(|e| e.offset > since.offset)
                .map(|e| (e.offset, e.frame.clone()))
                .collect(),
        )
    }
}

/// A random epoch, so a restarted process never reuses one.
fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one(t) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> tungstenite::Message {
        tungstenite::Message::text(s)
    }

    fn texts(r: Replay) -> Option<Vec<String>> {
        match r {
            Replay::Missed(v) => Some(
                v.iter()
                    .map(|(_, m)| m.to_text().unwrap().to_owned())
                    .collect(),
            ),
            Replay::Lost => None,
        }
    }

    #[test]
    fn patterns_positions_replay_and_loss() {
        let h = History::default();
        h.keep("room:*", Retention::messages(3));
        h.keep("news", Retention::messages(10));
        assert!(h.retention("room:1").is_some() && h.retention("news").is_some());
        assert!(h.retention("newsy").is_none() && h.retention("chat").is_none());

        let ring = h.ring("room:1", h.retention("room:1").unwrap());
        let mut r = lock(&ring);
        let start = r.next_position();
        assert_eq!(start.offset, 1);
        assert_eq!(Position::parse(&start.to_string()), Some(start));
        for m in ["a", "b", "c", "d"] {
            r.record(text(m));
        }
        let at = |offset| Position {
            epoch: start.epoch,
            offset,
        };
        assert_eq!(texts(r.replay(at(2))), Some(vec!["c".into(), "d".into()]));
        assert_eq!(texts(r.replay(at(4))), Some(vec![]), "up to date");
        assert_eq!(
            texts(r.replay(at(1))),
            Some(vec!["b".into(), "c".into(), "d".into()])
        );
        assert_eq!(texts(r.replay(at(0))), None, "a was trimmed");
        assert_eq!(texts(r.replay(at(5))), None, "ahead of the topic");
        let other = Position {
            epoch: start.epoch ^ 2,
            offset: 3,
        };
        assert_eq!(texts(r.replay(other)), None, "another epoch");
        assert_eq!(Position::parse("zz:1"), None);
        assert_eq!(Position::parse("12"), None);
    }
}
