//! The web side of a request, before any WebSocket exists: the opening
//! handshake's checks, the [`Request`](crate::Request) routes see, the
//! responses, route patterns, typed extraction, and the middleware stack.
//!
//! Imports: the base modules only.

pub(crate) mod body;
pub(crate) mod extract;
pub(crate) mod handshake;
pub mod middleware;
pub(crate) mod request;
pub(crate) mod request_body;
pub(crate) mod router;
