//! A plain request's body: read when the route asks for it
//! ([`Request::bytes`](crate::Request::bytes), [`Request::json`](crate::Request::json)),
//! never beyond the app's limit ([`App::max_body_bytes`](crate::App::max_body_bytes)).

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt as _;

use crate::web::extract::Rejection;

/// What a failed body read reports.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Any HTTP body: hyper's, or a host's (axum's `Body`).
pub(crate) type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Erases a body's type.
pub(crate) fn boxed<B>(body: B) -> BoxBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// The body a request came with, not read yet. Behind a lock only so that
/// a `Request` is `Sync`, as `&Request` crosses awaits; reading takes
/// `&mut`, which needs no locking.
#[derive(Default)]
pub(crate) struct RequestBody {
    body: Mutex<Option<BoxBody>>,
    limit: usize,
}

impl RequestBody {
    pub(crate) fn new(body: BoxBody, limit: usize) -> Self {
        RequestBody {
            body: Mutex::new(Some(body)),
            limit,
        }
    }

    /// Reads the whole body: `413` once it is larger than the limit (as
    /// `Content-Length` announces, or as it arrives), `400` if the client
    /// broke off. Empty when there is none, or it was read already.
    pub(crate) async fn read(&mut self, announced: Option<u64>) -> Result<Bytes, Rejection> {
        let limit = self.limit;
        let Some(mut body) = self
            .body
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Ok(Bytes::new());
        };
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let mut out = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                Rejection::with_status(
                    StatusCode::BAD_REQUEST,
                    format!("the request body could not be read: {e}"),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > limit {
                    return Err(too_large(limit));
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out.freeze())
    }
}

fn too_large(limit: usize) -> Rejection {
    Rejection::with_status(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than this server takes ({limit} bytes)"),
    )
}
