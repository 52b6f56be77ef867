//! The request a route sees: the upgrade request in
//! [`Handler::before_upgrade`](crate::Handler::before_upgrade), or a plain
//! HTTP request.

use std::fmt;
use std::net::SocketAddr;

use http::{HeaderMap, Method, Uri, Version, header};
use serde::de::DeserializeOwned;

use crate::web::extract::{Rejection, Source, from_pairs, parse_query};
use crate::web::handshake::offered_protocols;
use crate::web::request_body::{BoxBody, RequestBody};
use crate::web::router::RawParams;

/// An HTTP request's head, with the matched path parameters and the peer's
/// address. A plain request's body is read only when the route asks
/// ([`Request::bytes`], [`Request::json`]); an upgrade request has none.
///
/// Its `Debug` output leaves out the query string and the values of headers
/// that carry credentials, so logging a request does not log its secrets.
pub struct Request {
    pub(crate) head: http::request::Parts,
    pub(crate) remote_addr: SocketAddr,
    pub(crate) params: RawParams,
    /// Typed values middleware attached (see [`Request::insert`]).
    pub(crate) values: http::Extensions,
    /// The app's shared state ([`App::state`](crate::App::state)).
    pub(crate) state: crate::state::AppState,
    pub(crate) body: RequestBody,
}

/// Headers whose values are credentials (or may carry them, as the
/// browser-friendly token-in-subprotocol pattern does).
const SECRET_HEADERS: [header::HeaderName; 5] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::SEC_WEBSOCKET_KEY,
];

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Headers<'a>(&'a HeaderMap);
        impl fmt::Debug for Headers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut map = f.debug_map();
                for (name, value) in self.0 {
                    if SECRET_HEADERS.contains(name) {
                        map.entry(name, &"<redacted>");
                    } else {
                        map.entry(name, value);
                    }
                }
                map.finish()
            }
        }
        let query = self.head.uri.query().map(|_| "<redacted>");
        f.debug_struct("Request")
            .field("method", &self.head.method)
            .field("path", &self.head.uri.path())
            .field("query", &query)
            .field("version", &self.head.version)
            .field("headers", &Headers(&self.head.headers))
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request with no values attached yet.
    pub(crate) fn new(
        head: http::request::Parts,
        remote_addr: SocketAddr,
        params: RawParams,
        state: crate::state::AppState,
    ) -> Self {
        Request {
            head,
            remote_addr,
            params,
            values: http::Extensions::new(),
            state,
            body: RequestBody::default(),
        }
    }

    /// This request with its body, to be read within `limit` bytes.
    pub(crate) fn with_body(mut self, body: BoxBody, limit: usize) -> Self {
        self.body = RequestBody::new(body, limit);
        self
    }

    /// A copy of this request's head, parameters, values and state, for a
    /// function that runs after the upgrade. (The original's extensions,
    /// hyper's upgrade among them, stay behind.)
    pub(crate) fn snapshot(&self) -> Self {
        let (mut head, ()) = http::Request::new(()).into_parts();
        head.method = self.head.method.clone();
        head.uri = self.head.uri.clone();
        head.version = self.head.version;
        head.headers = self.head.headers.clone();
        Request {
            head,
            remote_addr: self.remote_addr,
            params: self.params.clone(),
            values: self.values.clone(),
            state: self.state.clone(),
            body: RequestBody::default(),
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.head.method
    }

    /// The full request target.
    pub fn uri(&self) -> &Uri {
        &self.head.uri
    }

    /// The path of the request target.
    pub fn path(&self) -> &str {
        self.head.uri.path()
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// All headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// All headers, to change: middleware may rewrite what later stages see.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.head.headers
    }

    /// One header as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A cookie's value by name, from the `Cookie` headers.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.head
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"'))
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// Path parameters, deserialized: a struct by name, a tuple in order, or
    /// a single value when the route has one parameter. The error turns into
    /// a `400` naming the parameter, so `?` works in `before_upgrade`.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, Rejection> {
        from_pairs(&self.params, Source::Path)
    }

    /// One raw (percent-decoded) path parameter by name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query string, deserialized (a missing query is an empty one).
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, Rejection> {
        from_pairs(
            &parse_query(self.head.uri.query().unwrap_or("")),
            Source::Query,
        )
    }

    /// Attaches a typed value (an identity, a tenant, a decoded session) for
    /// later middleware, `before_upgrade` and every callback of the
    /// connection ([`Ws::value`](crate::Ws::value)). One value per type; a
    /// second insert replaces the first and returns it.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.values.insert(value)
    }

    /// A value that middleware attached with [`Request::insert`].
    pub fn value<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get::<T>()
    }

    /// The app's state of type `T`, set with
    /// [`App::state`](crate::App::state).
    ///
    /// # Panics
    ///
    /// When the app has no state of that type (a setup mistake; the
    /// message names the type).
    pub fn state<T: Send + Sync + 'static>(&self) -> &T {
        self.state.get::<T>()
    }

    /// The body, read whole. A `413` [`Rejection`] when it is larger than
    /// [`App::max_body_bytes`](crate::App::max_body_bytes) (checked against
    /// `Content-Length` before anything is read), a `400` when the client
    /// breaks off; empty when there is none or it was read already.
    ///
    /// ```
    /// # let mut app = wsway::App::new();
    /// app.post("/echo", |mut req| async move {
    ///     match req.bytes().await {
    ///         Ok(body) => wsway::text(wsway::StatusCode::OK, body),
    ///         Err(rejection) => rejection.into(),
    ///     }
    /// });
    /// ```
    pub async fn bytes(&mut self) -> Result<bytes::Bytes, Rejection> {
        let announced = self
            .header(header::CONTENT_LENGTH.as_str())
            .and_then(|n| n.parse::<u64>().ok());
        self.body.read(announced).await
    }

    /// The body as JSON, deserialized into `T`. Besides [`Request::bytes`]'
    /// refusals: a `415` without `Content-Type: application/json`, and a
    /// `400` naming the field that is missing or does not fit (`data.text:
    /// invalid type: integer `5`, expected a string`).
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, Rejection> {
        let is_json = self.header(header::CONTENT_TYPE.as_str()).is_some_and(|t| {
            let essence = t.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json")
        });
        if !is_json {
            return Err(Rejection::with_status(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a body with `Content-Type: application/json`",
            ));
        }
        let body = self.bytes().await?;
        let de = &mut serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = if path.is_empty() || path == "." {
                format!("the JSON body is not what this route takes: {inner}")
            } else {
                format!("the JSON body's `{path}` is not what this route takes: {inner}")
            };
            Rejection::with_status(http::StatusCode::BAD_REQUEST, message)
        })
    }

    /// Subprotocols the client offered in `Sec-WebSocket-Protocol`, in its
    /// order of preference.
    pub fn protocols(&self) -> Vec<String> {
        offered_protocols(&self.head.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_keeps_secrets_out() {
        let req = http::Request::builder()
            .uri("/chat/lobby?token=SECRET-Q")
            .header("authorization", "Bearer SECRET-A")
            .header("cookie", "session=SECRET-C")
            .header("sec-websocket-protocol", "chat, SECRET-P")
            .header("user-agent", "test")
            .body(())
            .unwrap();
        let req = Request::new(
            req.into_parts().0,
            "127.0.0.1:9".parse().unwrap(),
            vec![("room".into(), "lobby".into())],
            Default::default(),
        );
        let shown = format!("{req:?} {req:#?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            shown.contains("/chat/lobby") && shown.contains("user-agent"),
            "{shown}"
        );
    }
}
