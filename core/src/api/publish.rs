//! `POST /publish` and `POST /publish_user`: a text, binary (base64) or
//! event message to a topic, or to every socket of a user, on every node.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Api, ApiError, bad, error, forwarded, respond};
use crate::message::Message;
use crate::topics::pubsub::Published;
use crate::web::body::{IntoResponse, Json, Response, StatusCode};
use crate::web::request::Request;

/// A publish: where to (`topic`, or `user` for `/publish_user`) and what,
/// exactly one of `text`, `binary` or `event` (with its `data`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    topic: Option<String>,
    user: Option<String>,
    text: Option<String>,
    /// Standard base64, padded.
    binary: Option<String>,
    event: Option<String>,
    data: Option<Box<RawValue>>,
}

/// What a publish did, on this node and for the others.
#[derive(Serialize)]
struct Reply {
    /// Subscribers on this node whose queue took it.
    delivered: usize,
    /// Its place in the topic's history, when this node numbers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<String>,
    /// `local` (one node), `queued`, `backpressured`, or `dropped`: not
    /// forwarded, and the other nodes' subscribers are told of a gap.
    forwarded: &'static str,
}

pub(super) async fn to_topic(api: Arc<Api>, mut req: Request) -> Response {
    respond(
        async {
            let body: Body = req.json().await?;
            let topic = body.target(false)?;
            let msg = body.message()?;
            Ok(reply(api.topics.publish(&topic, msg)))
        }
        .await,
    )
}

pub(super) async fn to_user(api: Arc<Api>, mut req: Request) -> Response {
    respond(
        async {
            let body: Body = req.json().await?;
            let user = body.target(true)?;
            let msg = body.message()?;
            match api.topics.publish_to_user(&user, msg) {
                Ok(published) => Ok(reply(published)),
                Err(e) => Err(ApiError(error(StatusCode::CONFLICT, &e.to_string()))),
            }
        }
        .await,
    )
}

impl Body {
    /// Where this endpoint publishes to (`user` for `/publish_user`,
    /// `topic` for `/publish`): present, not empty, and not beside the
    /// other endpoint's field.
    fn target(&self, to_user: bool) -> Result<String, ApiError> {
        let ((name, value), (other, other_value, other_endpoint)) = if to_user {
            (("user", &self.user), ("topic", &self.topic, "/publish"))
        } else {
            (
                ("topic", &self.topic),
                ("user", &self.user, "/publish_user"),
            )
        };
        if other_value.is_some() {
            return Err(bad(&format!(
                "`{other}` is for {other_endpoint}; this endpoint takes `{name}`"
            )));
        }
        match value {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            Some(_) => Err(bad(&format!("`{name}` must not be empty"))),
            None => Err(bad(&format!("missing field `{name}`"))),
        }
    }

    fn message(self) -> Result<Message, ApiError> {
        match (self.text, self.binary, self.event) {
            (Some(text), None, None) if self.data.is_none() => Ok(Message::text(text)),
            (None, Some(b64), None) if self.data.is_none() => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|e| bad(&format!("`binary` is not standard base64: {e}")))?;
                Ok(Message::binary(bytes))
            }
            (None, None, Some(event)) => {
                if event.is_empty() {
                    return Err(bad("`event` must not be empty"));
                }
                // No `data` is `null`.
                Message::event(&event, &self.data).map_err(|e| bad(&e.to_string()))
            }
            (_, _, None) if self.data.is_some() => {
                Err(bad("`data` goes with `event`, not with `text` or `binary`"))
            }
            _ => Err(bad("give exactly one of `text`, `binary` or `event`")),
        }
    }
}

fn reply(published: Published) -> Response {
    Json(Reply {
        delivered: published.delivered,
        position: published.position.map(|p| p.to_string()),
        forwarded: forwarded(published.forwarded),
    })
    .into_response()
}
