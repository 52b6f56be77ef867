//! Presence: who is in a topic. A connection [tracks](crate::Ws::track)
//! itself in a topic with metadata (a name, a device); anyone can ask for
//! the topic's [members](crate::Topics::presence) or just their
//! [count](crate::Topics::presence_count). A connection's entries end with
//! it. The in-process backplane answers from this node's table; a
//! multi-node backplane answers for every node.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::ser::SerializeStruct;
use serde_json::value::RawValue;

/// One member of a topic: a tracked connection, on any node.
///
/// Serializes as `{"id": .., "meta": ..}`, with the metadata as the JSON
/// it was tracked with, so a presence list can go to a client as it is.
#[derive(Clone, Debug)]
pub struct Member {
    id: String,
    meta: Box<RawValue>,
}

impl Member {
    /// A member, for a [`Backplane`](crate::Backplane) answering a
    /// presence query: `id` must be unique across nodes, `meta` is the JSON
    /// the member was tracked with.
    pub fn new(id: impl Into<String>, meta: Box<RawValue>) -> Self {
        Member {
            id: id.into(),
            meta,
        }
    }

    /// Which connection this is, unique across nodes while it lives (the
    /// in-process backplane uses the connection's [`id`](crate::Ws::id)).
    /// Opaque: compare it, do not parse it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The metadata, deserialized.
    pub fn meta<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.meta.get())
    }

    /// The metadata as JSON text.
    pub fn meta_json(&self) -> &str {
        self.meta.get()
    }
}

impl serde::Serialize for Member {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Member", 2)?;
        m.serialize_field("id", &self.id)?;
        m.serialize_field("meta", &*self.meta)?;
        m.end()
    }
}

/// A presence query that could not be answered: the store holding other
/// nodes' members did not answer. This node's own members are not a
/// substitute for the whole list, so no partial answer is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceError {
    reason: String,
}

impl PresenceError {
    /// An error with the reason, for a [`Backplane`](crate::Backplane).
    pub fn new(reason: impl Into<String>) -> Self {
        PresenceError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PresenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "presence is unavailable: {}", self.reason)
    }
}

impl std::error::Error for PresenceError {}

/// What a backplane's presence query returns.
pub type PresenceFuture<T> = Pin<Box<dyn Future<Output = Result<T, PresenceError>> + Send>>;

/// This node's tracked connections: topic → connection id → metadata.
#[derive(Default)]
pub(crate) struct LocalPresence {
    topics: RwLock<Table>,
}

type Table = HashMap<Arc<str>, HashMap<u64, Arc<RawValue>>>;

impl LocalPresence {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        // Only plain collection updates run under the lock: poisoning is harmless.
        self.topics.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.topics.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Tracks (or updates) connection `id` in `topic`; true when new.
    pub(crate) fn track(&self, topic: &Arc<str>, id: u64, meta: Arc<RawValue>) -> bool {
        let mut topics = self.write();
        let members = topics.entry(topic.clone()).or_default();
        members.insert(id, meta).is_none()
    }

    /// Untracks connection `id` from `topic`; true if it was tracked.
    pub(crate) fn untrack(&self, topic: &str, id: u64) -> bool {
        let mut topics = self.write();
        let Some(members) = topics.get_mut(topic) else {
            return false;
        };
        let was = members.remove(&id).is_some();
        if members.is_empty() {
            topics.remove(topic);
        }
        was
    }

    /// The members of `topic` on this node.
    pub(crate) fn members(&self, topic: &str) -> Vec<Member> {
        let topics = self.read();
        let Some(members) = topics.get(topic) else {
            return Vec::new();
        };
        let mut list: Vec<Member> = members
            .iter()
            .map(|(id, meta)| Member::new(id.to_string(), (**meta).to_owned()))
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    pub(crate) fn count(&self, topic: &str) -> usize {
        self.read().get(topic).map_or(0, HashMap::len)
    }

    pub(crate) fn meta(&self, topic: &str, id: u64) -> Option<Arc<RawValue>> {
        self.read().get(topic)?.get(&id).cloned()
    }

    /// Every (topic, connection) tracked on this node.
    pub(crate) fn all(&self) -> Vec<(Arc<str>, u64)> {
        let topics = self.read();
        topics
            .iter()
            .flat_map(|(t, members)| members.keys().map(move |id| (t.clone(), *id)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Arc<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap().into()
    }

    #[test]
    fn tracks_updates_and_untracks() {
        let p = LocalPresence::default();
        let room: Arc<str> = "room".into();
        assert!(p.track(&room, 2, json(r#"{"name":"b"}"#)));
        assert!(p.track(&room, 1, json(r#"{"name":"a"}"#)));
        assert!(!p.track(&room, 1, json(r#"{"name":"a2"}"#)), "an update");
        assert_eq!(p.count("room"), 2);
        let members = p.members("room");
        assert_eq!(members[0].id(), "1");
        assert_eq!(members[0].meta_json(), r#"{"name":"a2"}"#);
        assert_eq!(
            serde_json::to_string(&members[1]).unwrap(),
            r#"{"id":"2","meta":{"name":"b"}}"#
        );
        assert!(p.untrack("room", 1));
        assert!(!p.untrack("room", 1));
        assert!(p.untrack("room", 2));
        assert_eq!(p.count("room"), 0);
        assert!(p.all().is_empty(), "an empty topic is removed");
    }
}
