//! Topics a client asks to join: the built-in events `wsway:join` and
//! `wsway:leave` (`{"topic": ..}`), and the app's authorization hook
//! (Phoenix's `join`, Centrifugo's subscribe proxy). Without a hook every
//! join is refused; a user room is never joined but by its own user,
//! whatever the hook says.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::EventError;
use super::hooks::{Hook, JoinHook};
use crate::connection::socket::Ws;

/// The event a client sends to join a topic: `{"topic": ..}`. Acknowledged
/// with `{"topic": .., "joined": true}` (`false`: it already was), or an
/// error: `forbidden` for another user's room or a topic the app refused,
/// `bad_data` for a malformed request.
pub const JOIN_EVENT: &str = "wsway:join";

/// The event a client sends to leave a topic it joined: `{"topic": ..}`.
/// Acknowledged with `{"topic": .., "left": bool}`.
pub const LEAVE_EVENT: &str = "wsway:leave";

/// Topic names a client may ask for are at most this long.
const MAX_TOPIC: usize = 256;

#[derive(Deserialize)]
struct Ask {
    topic: String,
}

#[derive(Serialize)]
struct Joined<'a> {
    topic: &'a str,
    joined: bool,
}

#[derive(Serialize)]
struct Left<'a> {
    topic: &'a str,
    left: bool,
}

/// Whether `event` is a built-in one: `Some(true)` to join, `Some(false)`
/// to leave.
pub(super) fn builtin(event: &str) -> Option<bool> {
    match event {
        JOIN_EVENT => Some(true),
        LEAVE_EVENT => Some(false),
        _ => None,
    }
}

/// Runs the built-in event `wsway:join` (`join`) or `wsway:leave`,
/// through the app's join hook.
pub(super) async fn join_or_leave<D: Send + 'static>(
    hook: Option<&JoinHook<D>>,
    ws: &mut Ws<D>,
    join: bool,
    data: Option<&RawValue>,
) -> Result<String, EventError> {
    let Ask { topic } = data
        .and_then(|d| serde_json::from_str(d.get()).ok())
        .ok_or_else(|| EventError::new("bad_data", "expected {\"topic\": string}"))?;
    if topic.is_empty() || topic.len() > MAX_TOPIC {
        return Err(EventError::new(
            "bad_data",
            format!("a topic is 1 to {MAX_TOPIC} bytes"),
        ));
    }
    if !join {
        let left = ws.unsubscribe(&topic);
        return reply(&Left {
            topic: &topic,
            left,
        });
    }
    // Before the app's hook, which cannot overrule it; its own room
    // needs no hook.
    if !is_own_room(ws, &topic)? {
        match hook {
            Some(Hook::Sync(hook)) => hook(ws, &topic)?,
            Some(Hook::Async(hook)) => hook(ws, &topic).await?,
            None => {
                return Err(EventError::new(
                    "forbidden",
                    "this server lets clients join no topics",
                ));
            }
        }
    }
    let joined = ws.subscribe(&topic);
    reply(&Joined {
        topic: &topic,
        joined,
    })
}

/// Whether a client may ask to join `topic`, as far as user rooms go:
/// `Ok(true)` for its own room, `Ok(false)` for a topic that is no user
/// room (the app's hook decides), an error for anyone else's.
fn is_own_room<D>(ws: &Ws<D>, topic: &str) -> Result<bool, EventError> {
    match ws.topics().user_room_owner(topic) {
        None => Ok(false),
        Some(owner) if ws.user_id().as_deref() == Some(owner) => Ok(true),
        Some(_) => Err(EventError::new(
            "forbidden",
            "a user's room can only be joined by that user",
        )),
    }
}

fn reply(value: &impl Serialize) -> Result<String, EventError> {
    serde_json::to_string(value).map_err(|e| EventError::internal(e.to_string()))
}
