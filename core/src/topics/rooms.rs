//! User rooms: every authenticated connection joined to its user's topic
//! (`user:{id}`), so that [`Topics::emit_to_user`] reaches all of that
//! user's tabs and devices, on every node the backplane links. A client can
//! never join another user's room (see [`Events::on_join`](crate::Events::on_join)).

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::connection::socket::Ws;
use crate::events::EventError;
use crate::message::Message;
use crate::topics::pubsub::{Published, Topics};

/// The room pattern when none is set: `user:{id}`.
pub const DEFAULT_USER_ROOM: &str = "user:{id}";

type IdOf = dyn Fn(&http::Extensions) -> Option<String> + Send + Sync;

/// Joins every connection whose request carries an identity to that
/// user's room. Set it with [`App::user_rooms`](crate::App::user_rooms).
///
/// The identity is the value authentication middleware attached
/// ([`Bearer`](crate::Bearer) attaches what its verifier returns); the
/// closure says which user it is. Connections without one join no room.
///
/// ```
/// use wsway::{App, Bearer, UserRooms};
///
/// #[derive(Clone)]
/// struct User { id: u64 }
///
/// let mut app = App::new();
/// app.middleware(Bearer::header(|token: String| async move {
///     (token == "secret").then_some(User { id: 7 })
/// }));
/// app.user_rooms(UserRooms::new(|user: &User| user.id.to_string()));
/// // Anywhere, on any node: every connection of user 7.
/// let _ = app.topics().emit_to_user("7", "notice", &"hello");
/// ```
pub struct UserRooms {
    pattern: RoomPattern,
    id_of: Box<IdOf>,
    /// The identity type its closure takes, for the warning when an
    /// authenticated connection carries another.
    identity: &'static str,
}

impl fmt::Debug for UserRooms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRooms")
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

impl UserRooms {
    /// Rooms for identities of type `I`, named by `id_of`, with the
    /// pattern `user:{id}`.
    pub fn new<I, S>(id_of: impl Fn(&I) -> S + Send + Sync + 'static) -> Self
    where
        I: Send + Sync + 'static,
        S: Into<String>,
    {
        UserRooms {
            pattern: RoomPattern::default(),
            id_of: Box::new(move |values| values.get::<I>().map(|i| id_of(i).into())),
            identity: std::any::type_name::<I>(),
        }
    }

    /// The room's name, with `{id}` where the user's id goes (default
    /// [`DEFAULT_USER_ROOM`]). Every topic this pattern can make is a user
    /// room that only its user may join.
    ///
    /// # Panics
    ///
    /// When `pattern` does not hold `{id}` exactly once (a setup mistake).
    pub fn pattern(mut self, pattern: &str) -> Self {
        self.pattern = RoomPattern::parse(pattern)
            .unwrap_or_else(|| panic!("a user room pattern holds `{{id}}` once: {pattern:?}"));
        self
    }

    /// The user a connection's request values stand for.
    pub(crate) fn user_of(&self, values: &http::Extensions) -> Option<String> {
        (self.id_of)(values)
    }
}

/// A room name with a hole for the user's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoomPattern {
    prefix: String,
    suffix: String,
}

impl Default for RoomPattern {
    fn default() -> Self {
        RoomPattern::parse(DEFAULT_USER_ROOM).expect("the default pattern is valid")
    }
}

impl RoomPattern {
    fn parse(pattern: &str) -> Option<Self> {
        let (prefix, suffix) = pattern.split_once("{id}")?;
        if suffix.contains("{id}") {
            return None;
        }
        Some(RoomPattern {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        })
    }

    pub(crate) fn topic(&self, id: &str) -> String {
        format!("{}{id}{}", self.prefix, self.suffix)
    }

    /// Whose room `topic` is, if it is a user room at all.
    pub(crate) fn owner<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)
    }
}

impl Topics {
    /// The user rooms set with [`App::user_rooms`](crate::App::user_rooms).
    pub(crate) fn user_rooms(&self) -> Option<Arc<UserRooms>> {
        self.inner
            .user_rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_user_rooms(&self, rooms: UserRooms) {
        *self
            .inner
            .user_rooms
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(rooms));
    }

    /// The user room pattern in force: the app's, or `user:{id}`.
    fn room_pattern(&self) -> RoomPattern {
        self.user_rooms()
            .map_or_else(RoomPattern::default, |rooms| rooms.pattern.clone())
    }

    /// The room of user `id` (`user:{id}` unless the pattern was changed).
    pub fn user_topic(&self, id: &str) -> String {
        self.room_pattern().topic(id)
    }

    /// Publishes `msg` to every connection of user `id`, on every node.
    /// Fails when the app has no [`UserRooms`]: no connection joins a user
    /// room then, so the message could reach nobody.
    pub fn publish_to_user(
        &self,
        id: &str,
        msg: impl Into<Message>,
    ) -> Result<Published, EventError> {
        let topic = self.configured_user_topic(id, "publish_to_user")?;
        Ok(self.publish(&topic, msg))
    }

    /// Sends the event `{"event": .., "data": ..}` to every connection of
    /// user `id`, on every node. Fails when `data` cannot be serialized,
    /// and when the app has no [`UserRooms`] (nobody could get it).
    pub fn emit_to_user(
        &self,
        id: &str,
        event: &str,
        data: &impl Serialize,
    ) -> Result<Published, EventError> {
        let topic = self.configured_user_topic(id, "emit_to_user")?;
        self.publish_event(&topic, event, data)
    }

    /// User `id`'s room, when the app has user rooms.
    fn configured_user_topic(&self, id: &str, call: &str) -> Result<String, EventError> {
        match self.user_rooms() {
            Some(rooms) => Ok(rooms.pattern.topic(id)),
            None => Err(EventError::internal(format!(
                "{call}({id:?}): the app has no user rooms, so no connection is in one; \
                 set them with `app.user_rooms(UserRooms::new(|user: &User| ..))`"
            ))),
        }
    }
}

impl<D> Ws<D> {
    /// The user this connection belongs to, by the app's
    /// [`UserRooms`]; `None` without user rooms or without an identity.
    pub fn user_id(&self) -> Option<String> {
        self.topics().user_rooms()?.user_of(self.values())
    }

    /// Joins the connection's own user room, if it has one; at the start of
    /// every connection, before `open`. A connection that authentication
    /// let in but that carries no identity of the type the user rooms
    /// take (the verifier returned another type) joins none: that is a
    /// setup mistake, and it is reported, not silent.
    pub(crate) fn join_own_room(&mut self) {
        let Some(rooms) = self.topics().user_rooms() else {
            return;
        };
        match rooms.user_of(self.values()) {
            Some(id) => {
                self.subscribe(&rooms.pattern.topic(&id));
            }
            None if self.value::<crate::policy::auth::Credential>().is_some() => {
                crate::observe::user_room_missed(rooms.identity);
            }
            None => {}
        }
    }

    /// Whether a client may ask to join `topic`, as far as user rooms go:
    /// `Ok(true)` for its own room, `Ok(false)` for a topic that is no user
    /// room (the app's hook decides), an error for anyone else's.
    pub(crate) fn is_own_room(&self, topic: &str) -> Result<bool, EventError> {
        match self.topics().room_pattern().owner(topic) {
            None => Ok(false),
            Some(owner) if self.user_id().as_deref() == Some(owner) => Ok(true),
            Some(_) => Err(EventError::new(
                "forbidden",
                "a user's room can only be joined by that user",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_make_and_recognise_rooms() {
        let default = RoomPattern::default();
        assert_eq!(default.topic("7"), "user:7");
        assert_eq!(default.owner("user:7"), Some("7"));
        assert_eq!(default.owner("room:7"), None);
        let framed = RoomPattern::parse("u/{id}/inbox").unwrap();
        assert_eq!(framed.topic("ann"), "u/ann/inbox");
        assert_eq!(framed.owner("u/ann/inbox"), Some("ann"));
        assert_eq!(framed.owner("u/ann/outbox"), None);
        assert!(RoomPattern::parse("user").is_none());
        assert!(RoomPattern::parse("{id}:{id}").is_none());
    }
}
