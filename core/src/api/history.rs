//! `GET /history?topic=&since=`: what a topic keeps after a position (all
//! of it without one), on every node: from the store when the backplane
//! keeps history there.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{Api, ApiError, bad, error, respond};
use crate::delivery::history::Position;
use crate::message::Message;
use crate::topics::read::ReadError;
use crate::web::body::{IntoResponse, Json, Response, StatusCode};
use crate::web::request::Request;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    topic: String,
    since: Option<String>,
}

#[derive(Serialize)]
struct Page {
    topic: String,
    /// The topic's last position (`null` before its first message).
    last: Option<String>,
    /// False when messages after `since` are no longer kept: `messages`
    /// is then all that is kept, and the caller missed some.
    complete: bool,
    messages: Vec<Kept>,
}

#[derive(Serialize)]
struct Kept {
    position: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// Standard base64, padded.
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<String>,
}

pub(super) async fn since(api: Arc<Api>, req: Request) -> Response {
    respond(
        async {
            let query: Query = req.query()?;
            if query.topic.is_empty() {
                return Err(bad("`topic` must not be empty"));
            }
            let since = match query.since.as_deref() {
                None | Some("") => None,
                Some(s) => Some(Position::parse(s).ok_or_else(|| {
                    bad("`since` is not a position (`epoch:offset`, as a publish or a push reports it)")
                })?),
            };
            let page = api.topics.read_history(&query.topic, since).await.map_err(|e| match e {
                ReadError::NotKept => ApiError(error(
                    StatusCode::NOT_FOUND,
                    &format!("topic `{}` keeps no history (App::history)", query.topic),
                )),
                ReadError::Store(e) => ApiError(error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())),
            })?;
            let messages = (page.messages.into_iter())
                .map(|(pos, msg)| {
                    let (text, binary) = match msg {
                        Message::Text(t) => (Some(t.as_str().to_owned()), None),
                        Message::Binary(b) => (None, Some(base64::engine::general_purpose::STANDARD.encode(b))),
                    };
                    Kept {
                        position: pos.to_string(),
                        text,
                        binary,
                    }
                })
                .collect();
            Ok(Json(Page {
                topic: query.topic,
                last: page.last.map(|p| p.to_string()),
                complete: page.complete,
                messages,
            })
            .into_response())
        }
        .await,
    )
}
