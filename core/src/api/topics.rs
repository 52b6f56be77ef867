//! `GET /topics?limit=`: the busiest topics over every node, with their
//! subscribers.

use std::sync::Arc;

use serde::Deserialize;

use super::{Api, bad, respond};
use crate::web::body::{IntoResponse, Json, Response};
use crate::web::request::Request;

/// How many topics an answer lists unless asked, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = crate::REPORTED_TOPICS;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    limit: Option<usize>,
}

pub(super) async fn busiest(api: Arc<Api>, req: Request) -> Response {
    respond(
        async {
            let query: Query = req.query()?;
            let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
            if !(1..=MAX_LIMIT).contains(&limit) {
                return Err(bad(&format!("`limit` must be in 1-{MAX_LIMIT}")));
            }
            let counts = (api.topics.topic_counts(limit).await).map_err(super::away)?;
            Ok(Json(counts).into_response())
        }
        .await,
    )
}
