//! `POST /disconnect`: closes every socket of a user, every subscriber of
//! a topic, or one connection (by its member id), on every node, with a
//! code and a reason, after what was published to them before.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Api, ApiError, bad, error, forwarded, respond};
use crate::web::body::{IntoResponse, Json, Response, StatusCode};
use crate::web::request::Request;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    user: Option<String>,
    topic: Option<String>,
    /// A connection's id in presence lists.
    member: Option<String>,
    /// 1000 or 3000-4999 (the codes a server sends for its own reasons).
    code: u16,
    #[serde(default)]
    reason: String,
}

#[derive(Serialize)]
struct Reply {
    closed: usize,
    forwarded: &'static str,
}

pub(super) async fn sockets(api: Arc<Api>, mut req: Request) -> Response {
    respond(
        async {
            let body: Body = req.json().await?;
            if !(body.code == 1000 || (3000..=4999).contains(&body.code)) {
                return Err(bad("`code` must be 1000 or in 3000-4999"));
            }
            if body.reason.len() > crate::MAX_CLOSE_REASON {
                let most = crate::MAX_CLOSE_REASON;
                return Err(bad(&format!("`reason` must be at most {most} bytes")));
            }
            let done = match (body.user, body.topic, body.member) {
                (Some(user), None, None) if !user.is_empty() => {
                    let topic = (api.topics)
                        .configured_user_topic(&user, "disconnect")
                        .map_err(|e| ApiError(error(StatusCode::CONFLICT, &e.to_string())))?;
                    api.topics.disconnect(&topic, body.code, &body.reason)
                }
                (None, Some(topic), None) if !topic.is_empty() => {
                    api.topics.disconnect(&topic, body.code, &body.reason)
                }
                (None, None, Some(member)) => {
                    (api.topics).disconnect_member(&member, body.code, &body.reason)
                }
                (Some(_), None, None) | (None, Some(_), None) => {
                    return Err(bad("`user` or `topic` must not be empty"));
                }
                _ => return Err(bad("give exactly one of `user`, `topic` or `member`")),
            };
            let done = done.map_err(|e| bad(&e.to_string()))?;
            Ok(Json(Reply {
                closed: done.closed,
                forwarded: forwarded(done.forwarded),
            })
            .into_response())
        }
        .await,
    )
}
