//! `POST /disconnect`: closes every socket of a user, every subscriber of
//! a topic, or one connection (by its member id), on every node, with a
//! code and a reason, after what was published to them before.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Api, ApiError, bad, error, forwarded, respond};
use crate::topics::pubsub::{Disconnected, Topics};
use crate::web::body::{IntoResponse, Json, Response, StatusCode};
use crate::web::request::Request;

/// Which sockets to close and how: the body of `POST /disconnect`, and a
/// disconnect from the admin page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cut {
    user: Option<String>,
    topic: Option<String>,
    /// A connection's id in presence lists.
    member: Option<String>,
    /// 1000 or 3000-4999 (the codes a server sends for its own reasons).
    code: u16,
    #[serde(default)]
    reason: String,
}

/// Why a cut was not made.
pub(crate) enum Refused {
    /// The request is wrong: the message says how.
    Bad(String),
    /// A user was named, and the app has no user rooms.
    NoUserRooms(String),
}

impl Refused {
    pub(crate) fn message(&self) -> &str {
        match self {
            Refused::Bad(m) | Refused::NoUserRooms(m) => m,
        }
    }
}

impl Cut {
    /// Closes the sockets, on every node.
    pub(crate) fn apply(self, topics: &Topics) -> Result<Disconnected, Refused> {
        let bad = |m: &str| Refused::Bad(m.to_owned());
        if !(self.code == 1000 || (3000..=4999).contains(&self.code)) {
            return Err(bad("`code` must be 1000 or in 3000-4999"));
        }
        if self.reason.len() > crate::MAX_CLOSE_REASON {
            let most = crate::MAX_CLOSE_REASON;
            return Err(bad(&format!("`reason` must be at most {most} bytes")));
        }
        let (code, reason) = (self.code, &self.reason);
        let done = match (self.user, self.topic, self.member) {
            (Some(user), None, None) if !user.is_empty() => {
                let topic = topics
                    .configured_user_topic(&user, "disconnect")
                    .map_err(|e| Refused::NoUserRooms(e.to_string()))?;
                topics.disconnect(&topic, code, reason)
            }
            (None, Some(topic), None) if !topic.is_empty() => {
                topics.disconnect(&topic, code, reason)
            }
            (None, None, Some(member)) => topics.disconnect_member(&member, code, reason),
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err(bad("`user` or `topic` must not be empty"));
            }
            _ => return Err(bad("give exactly one of `user`, `topic` or `member`")),
        };
        done.map_err(|e| Refused::Bad(e.to_string()))
    }
}

#[derive(Serialize)]
struct Reply {
    closed: usize,
    forwarded: &'static str,
}

pub(super) async fn sockets(api: Arc<Api>, mut req: Request) -> Response {
    respond(
        async {
            let cut: Cut = req.json().await?;
            let done = cut.apply(&api.topics).map_err(|refused| match refused {
                Refused::NoUserRooms(m) => ApiError(error(StatusCode::CONFLICT, &m)),
                Refused::Bad(m) => bad(&m),
            })?;
            Ok(Json(Reply {
                closed: done.closed,
                forwarded: forwarded(done.forwarded),
            })
            .into_response())
        }
        .await,
    )
}
