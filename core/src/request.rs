//! The request a route sees: the upgrade request in
//! [`Handler::before_upgrade`](crate::Handler::before_upgrade), or a plain
//! HTTP request.

use std::net::SocketAddr;

use http::{HeaderMap, Method, Uri, Version, header};
use serde::de::DeserializeOwned;

use crate::extract::{Rejection, Source, from_pairs, parse_query};
use crate::handshake::offered_protocols;
use crate::router::RawParams;

/// An HTTP request's head, with the matched path parameters and the peer's
/// address. The body of plain requests is not read.
#[derive(Debug)]
pub struct Request {
    pub(crate) head: http::request::Parts,
    pub(crate) remote_addr: SocketAddr,
    pub(crate) params: RawParams,
}

impl Request {
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

    /// Subprotocols the client offered in `Sec-WebSocket-Protocol`, in its
    /// order of preference.
    pub fn protocols(&self) -> Vec<String> {
        offered_protocols(&self.head.headers)
    }
}
