//! Reaching a user: the room each user's connections share, and
//! publishing to it from anywhere, on every node.

use std::sync::Arc;

use crate::message::Message;
use crate::topics::pubsub::{Published, Topics};
use crate::topics::rooms::{NoUserRooms, RoomPattern, UserRooms};

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
    ) -> Result<Published, NoUserRooms> {
        let topic = self.configured_user_topic(id, "publish_to_user")?;
        Ok(self.publish(&topic, msg))
    }

    /// User `id`'s room, when the app has user rooms.
    pub(crate) fn configured_user_topic(
        &self,
        id: &str,
        call: &'static str,
    ) -> Result<String, NoUserRooms> {
        match self.user_rooms() {
            Some(rooms) => Ok(rooms.topic(id)),
            None => Err(NoUserRooms::new(call, id)),
        }
    }

    /// Whose user room `topic` is, if it is one.
    pub(crate) fn user_room_owner<'t>(&self, topic: &'t str) -> Option<&'t str> {
        self.room_pattern().owner(topic)
    }
}
