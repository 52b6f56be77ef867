//! Topics that keep history, so that a client that reconnects resumes where
//! it was: every publish to such a topic gets a [`Position`] (an offset
//! within an epoch), the last messages are kept (bounded by
//! [`Retention`]), and a subscriber that says where it was gets what it
//! missed, in order, before anything new. When the gap is no longer in
//! history (trimmed, or another epoch), it is told so instead.
//!
//! In process, each topic's [`Ring`] is its history. A backplane with a
//! store ([`Backplane::stores_history`](crate::Backplane::stores_history))
//! numbers publishes there, and the rings are this node's windows onto it.

mod position;
mod ring;
mod store;

use std::collections::HashMap;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use crate::message::Message;

pub use position::{DEFAULT_HISTORY_AGE, Position, Retention};
pub(crate) use ring::{Admit, LeftOut, Replay, Ring};
pub use store::{HistoryError, HistoryFuture, StoredHistory, StoredMessage};

/// Whether `topic` matches `pattern` as [`App::history`](crate::App::history)
/// matches it: an exact name, or a prefix ending in `*`. A process that
/// publishes into the app's topics without serving them (an emitter) picks
/// a topic's retention with it.
///
/// ```
/// assert!(wsway::topic_matches("room:*", "room:lobby"));
/// assert!(!wsway::topic_matches("room", "room:lobby"));
/// ```
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => topic == pattern,
    }
}

/// Which topics keep history (exact names, or prefixes ending in `*`),
/// and this node's ring for each.
#[derive(Default)]
pub(crate) struct History {
    rules: RwLock<Vec<(String, Retention)>>,
    rings: RwLock<HashMap<Arc<str>, Arc<Mutex<Ring>>>>,
    /// The backplane keeps history in a store: rings are windows onto it.
    stored: AtomicBool,
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
        (rules.iter()).find_map(|(pattern, r)| topic_matches(pattern, topic).then_some(*r))
    }

    /// Whether history lives in the backplane's store (see
    /// [`Backplane::stores_history`](crate::Backplane::stores_history)).
    pub(crate) fn is_stored(&self) -> bool {
        self.stored.load(Ordering::Acquire)
    }

    pub(crate) fn set_stored(&self, stored: bool) {
        self.stored.store(stored, Ordering::Release);
        self.rings
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The ring of `topic`, made on first use (in process, with a fresh
    /// epoch; rings whose every message has expired are forgotten on the
    /// way).
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
        let ring = if self.is_stored() {
            // A window lives while the node has subscribers (see `forget`).
            Ring::window(retention)
        } else {
            let now = Instant::now();
            rings.retain(|_, r| !lock(r).expired(now));
            Ring::numbering(retention, new_epoch())
        };
        let ring = Arc::new(Mutex::new(ring));
        rings.insert(topic.into(), ring.clone());
        ring
    }

    /// Drops `topic`'s window: this node stopped listening to it, so it
    /// would go stale.
    pub(crate) fn forget(&self, topic: &str) {
        self.rings
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(topic);
    }
}

pub(crate) fn lock(ring: &Mutex<Ring>) -> MutexGuard<'_, Ring> {
    // Only plain collection updates run under the lock.
    ring.lock().unwrap_or_else(|e| e.into_inner())
}

/// An event push on a topic that keeps history, with its place in it:
/// `{"event": .., "data": .., "topic": "room:1", "pos": "<epoch>:<offset>"}`.
/// Anything that is not an event push (a raw message) is left as it is.
pub(crate) fn positioned(msg: Message, topic: &str, pos: Position) -> Message {
    let Some(text) = msg.as_text() else {
        return msg;
    };
    // `Message::event` writes exactly this shape: an object starting with
    // the event's name.
    if !text.starts_with("{\"event\":") {
        return msg;
    }
    let Some(body) = text.strip_suffix('}') else {
        return msg;
    };
    let topic = serde_json::to_string(topic).unwrap_or_else(|_| "\"\"".to_owned());
    Message::text(format!("{body},\"topic\":{topic},\"pos\":\"{pos}\"}}"))
}

/// What a connection left out of its own publish gets instead, on a topic
/// that keeps history: `{"event":"wsway:pos","topic":..,"pos":..}`, the
/// position alone, in the order the message took. A client that resumes
/// from it is not replayed what it sent itself.
pub(crate) fn position_note(topic: &str, pos: Position) -> Message {
    let topic = serde_json::to_string(topic).unwrap_or_else(|_| "\"\"".to_owned());
    Message::text(format!(
        "{{\"event\":\"{POSITION_EVENT}\",\"topic\":{topic},\"pos\":\"{pos}\"}}"
    ))
}

/// The event of [`position_note`].
pub(crate) const POSITION_EVENT: &str = "wsway:pos";

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

    #[test]
    fn rules_match_names_and_prefixes_and_the_first_wins() {
        let h = History::default();
        h.keep("room:*", Retention::messages(3));
        h.keep("news", Retention::messages(10));
        h.keep("room:9", Retention::messages(99));
        assert_eq!(h.retention("room:9").map(|r| r.message_limit()), Some(3));
        assert!(h.retention("news").is_some());
        assert!(h.retention("newsy").is_none() && h.retention("chat").is_none());
        let p = Position {
            epoch: 0x1f,
            offset: 12,
        };
        assert_eq!(p.to_string(), "1f:12");
        assert_eq!(Position::parse("1f:12"), Some(p));
        assert_eq!(Position::parse("zz:1"), None);
        assert_eq!(Position::parse("12"), None);
    }

    #[test]
    fn only_event_pushes_carry_their_position() {
        let at = Position {
            epoch: 2,
            offset: 7,
        };
        let push = positioned(Message::text(r#"{"event":"e","data":1}"#), "r", at);
        assert_eq!(
            push.as_text(),
            Some(r#"{"event":"e","data":1,"topic":"r","pos":"2:7"}"#)
        );
        let raw = positioned(Message::text("plain"), "r", at);
        assert_eq!(raw.as_text(), Some("plain"));
    }
}
