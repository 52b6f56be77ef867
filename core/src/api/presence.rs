//! `GET /presence?topic=` and `GET /presence_count?topic=`: who is in a
//! topic, on every node.

use std::sync::Arc;

use serde::Deserialize;

use super::{Api, ApiError, away, bad, respond};
use crate::web::body::{IntoResponse, Json, Response};
use crate::web::request::Request;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    topic: String,
}

/// The `topic` of the query string: present and not empty.
fn topic_of(req: &Request) -> Result<String, ApiError> {
    let query: Query = req.query()?;
    if query.topic.is_empty() {
        return Err(bad("`topic` must not be empty"));
    }
    Ok(query.topic)
}

pub(super) async fn members(api: Arc<Api>, req: Request) -> Response {
    respond(
        async {
            let topic = topic_of(&req)?;
            let members = api.topics.presence(&topic).await.map_err(away)?;
            let body = serde_json::json!({ "topic": topic, "members": members });
            Ok(Json(body).into_response())
        }
        .await,
    )
}

pub(super) async fn count(api: Arc<Api>, req: Request) -> Response {
    respond(
        async {
            let topic = topic_of(&req)?;
            let count = api.topics.presence_count(&topic).await.map_err(away)?;
            let body = serde_json::json!({ "topic": topic, "count": count });
            Ok(Json(body).into_response())
        }
        .await,
    )
}
