//! What a server allows, decided on a request or set for a connection:
//! limits, allowed origins, bearer authentication (and the renewal of
//! tokens that expire inside open sockets), the per-IP handshake
//! throttle, and the compression settings.
//!
//! Imports: the base modules and `web`.

pub(crate) mod auth;
pub(crate) mod compression;
pub(crate) mod expiry;
pub(crate) mod limits;
pub(crate) mod origin;
pub(crate) mod throttle;
