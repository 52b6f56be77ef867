//! HTTP responses: the [`Body`] type, [`Response`], and [`IntoResponse`] for
//! plain routes and for rejecting upgrades.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
pub use http::StatusCode;
use http_body::{Frame, SizeHint};

/// An HTTP response as wsway sends it.
pub type Response = http::Response<Body>;

/// A complete, in-memory response body.
#[derive(Clone, Debug, Default)]
pub struct Body(Option<Bytes>);

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Body(None)
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body(Some(b))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body(Some(Bytes::from_static(s.as_bytes())))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Body(Some(s.into()))
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body(Some(v.into()))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// Anything a plain HTTP route can return.
pub trait IntoResponse {
    /// Builds the response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        text(StatusCode::OK, self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        text(StatusCode::OK, self)
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let reason = self.canonical_reason().unwrap_or("");
        text(self, reason)
    }
}

impl<B: Into<Body>> IntoResponse for (StatusCode, B) {
    fn into_response(self) -> Response {
        let mut res = http::Response::new(self.1.into());
        *res.status_mut() = self.0;
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    }
}

/// An HTML page: sets `Content-Type: text/html; charset=utf-8`.
#[derive(Clone, Debug)]
pub struct Html<T>(pub T);

impl<T: Into<Body>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        let mut res = http::Response::new(self.0.into());
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        res
    }
}

/// A JSON body: serializes its value and sets `Content-Type:
/// application/json`. A value that cannot be serialized (a map with
/// non-string keys) is a `500`.
///
/// ```
/// # let mut app = wsway::App::new();
/// app.get("/status", |_req| async { wsway::Json(serde_json::json!({ "ok": true })) });
/// ```
#[derive(Clone, Debug)]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let Ok(body) = serde_json::to_vec(&self.0) else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the response did not serialize",
            );
        };
        let mut res = http::Response::new(Body::from(body));
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        res
    }
}

impl<T: serde::Serialize> IntoResponse for (StatusCode, Json<T>) {
    fn into_response(self) -> Response {
        let mut res = self.1.into_response();
        if res.status() == StatusCode::OK {
            *res.status_mut() = self.0;
        }
        res
    }
}

/// A plain-text response with the given status.
pub fn text(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, body).into_response()
}
