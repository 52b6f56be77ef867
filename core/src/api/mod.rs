//! The server API ([`App::server_api`](crate::App::server_api)): JSON
//! endpoints through which a backend (a Django or Rails app, a job, another
//! service) reaches sockets without holding one: publish to a topic or to
//! a user's room, ask who is present, read a topic's history, and close a
//! user's (or a topic's) sockets. A publish goes through the
//! backplane, so it reaches every node; a presence query asks every node
//! (through the store) or fails with a `503`.
//!
//! Every request carries the key as `Authorization: Bearer <key>`; without
//! it, or with another, the answer is a bare `401`. No middleware runs:
//! the key is the check.
//!
//! Imports: `web`, `topics` and `message` below; `events` beside it (an
//! event's envelope).

pub(crate) mod disconnect;
mod history;
mod key;
mod presence;
mod publish;
mod topics;

use std::sync::Arc;

use http::header;

use crate::boxed::BoxFuture;
use crate::topics::pubsub::Topics;
use crate::web::body::{IntoResponse, Json, Response, StatusCode};
use crate::web::extract::Rejection;
use crate::web::request::Request;

pub(crate) use key::same;
pub use key::{ApiKey, ApiKeyError};

/// What every endpoint shares: the key and the app's topics.
pub(crate) struct Api {
    key: ApiKey,
    topics: Topics,
}

/// An endpoint's answer to one request.
type Call = fn(Arc<Api>, Request) -> BoxFuture<'static, Response>;

/// One endpoint: its method, its path under the API's base, its function.
pub(crate) struct Endpoint {
    pub(crate) post: bool,
    pub(crate) path: &'static str,
    call: Call,
}

/// The endpoints, as `docs/server-api.openapi.json` describes them.
pub(crate) static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        post: true,
        path: "/publish",
        call: |api, req| Box::pin(publish::to_topic(api, req)),
    },
    Endpoint {
        post: true,
        path: "/publish_user",
        call: |api, req| Box::pin(publish::to_user(api, req)),
    },
    Endpoint {
        post: false,
        path: "/presence",
        call: |api, req| Box::pin(presence::members(api, req)),
    },
    Endpoint {
        post: false,
        path: "/presence_count",
        call: |api, req| Box::pin(presence::count(api, req)),
    },
    Endpoint {
        post: false,
        path: "/history",
        call: |api, req| Box::pin(history::since(api, req)),
    },
    Endpoint {
        post: false,
        path: "/topics",
        call: |api, req| Box::pin(topics::busiest(api, req)),
    },
    Endpoint {
        post: true,
        path: "/disconnect",
        call: |api, req| Box::pin(disconnect::sockets(api, req)),
    },
];

impl Api {
    pub(crate) fn new(key: ApiKey, topics: Topics) -> Arc<Api> {
        Arc::new(Api { key, topics })
    }

    /// `req`, answered by `endpoint` once its key is checked.
    pub(crate) fn answer(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        req: Request,
    ) -> BoxFuture<'static, Response> {
        if !self.authorized(&req) {
            return Box::pin(async { unauthorized() });
        }
        (endpoint.call)(self.clone(), req)
    }

    fn authorized(&self, req: &Request) -> bool {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let scheme = b"bearer ";
        value.len() > scheme.len()
            && value[..scheme.len()].eq_ignore_ascii_case(scheme)
            && self.key.matches(&value[scheme.len()..])
    }
}

/// A `401` that says what is needed and nothing about what was sent.
fn unauthorized() -> Response {
    let mut res = error(StatusCode::UNAUTHORIZED, "a valid API key is required");
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    res
}

/// An error as the API answers it: `{"error": "..."}` with `status`.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ApiError(error(r.status(), r.message()))
    }
}

/// An endpoint's refusal, already a response.
struct ApiError(Response);

/// A `400` saying what is wrong with the request.
fn bad(message: &str) -> ApiError {
    ApiError(error(StatusCode::BAD_REQUEST, message))
}

/// What happened to the copy for the other nodes, as the API names it.
fn forwarded(f: crate::topics::pubsub::Forwarded) -> &'static str {
    use crate::topics::pubsub::Forwarded;
    match f {
        Forwarded::Local => "local",
        Forwarded::Queued => "queued",
        Forwarded::Backpressured => "backpressured",
        Forwarded::Dropped => "dropped",
    }
}

/// The store did not answer: a `503`, not a partial answer.
fn away(e: crate::PresenceError) -> ApiError {
    ApiError(error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))
}

/// Runs an endpoint body that may refuse.
fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::ENDPOINTS;

    /// The OpenAPI file lists exactly the endpoints served, with their
    /// methods (the examples' `server_api` tests check every answer).
    #[test]
    fn the_openapi_file_lists_every_endpoint() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/server-api.openapi.json"))
                .expect("the OpenAPI file is JSON");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for method in ops.as_object().expect("operations").keys() {
                documented.push((path.clone(), method.clone()));
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = (ENDPOINTS.iter())
            .map(|e| {
                (
                    e.path.to_owned(),
                    if e.post { "post" } else { "get" }.to_owned(),
                )
            })
            .collect();
        served.sort();
        assert_eq!(served, documented);
    }
}
