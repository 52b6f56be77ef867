//! User rooms: every authenticated connection joined to its user's topic
//! (`user:{id}`), so that [`Topics::emit_to_user`] reaches all of that
//! user's tabs and devices, on every node the backplane links. A client can
//! never join another user's room (see [`Events::on_join`](crate::Events::on_join)).

use std::fmt;

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
    pub(crate) pattern: RoomPattern,
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

    /// User `id`'s room.
    pub(crate) fn topic(&self, id: &str) -> String {
        self.pattern.topic(id)
    }

    /// The identity type its closure takes (for the report when an
    /// authenticated connection carries another).
    pub(crate) fn identity(&self) -> &'static str {
        self.identity
    }
}

/// A call that reaches a user ([`Topics::publish_to_user`](crate::Topics::publish_to_user))
/// on an app without [`UserRooms`]: no connection is in a user room
/// then, so nothing could arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoUserRooms {
    call: &'static str,
    id: String,
}

impl NoUserRooms {
    pub(crate) fn new(call: &'static str, id: &str) -> Self {
        NoUserRooms {
            call,
            id: id.to_owned(),
        }
    }
}

impl fmt::Display for NoUserRooms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({:?}): the app has no user rooms, so no connection is in one; \
             set them with `app.user_rooms(UserRooms::new(|user: &User| ..))`",
            self.call, self.id
        )
    }
}

impl std::error::Error for NoUserRooms {}

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
