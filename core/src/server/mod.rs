//! Serving an app: the accept loop, each connection's HTTP and upgrade,
//! shutdown and drain, listeners passed by a process manager, TLS, HTTP/2, and the
//! app mounted in another server (`tower`).
//!
//! Imports: every layer below.

pub(crate) mod activation;
pub(crate) mod answer;
pub(crate) mod control;
pub(crate) mod drain;
#[cfg(feature = "tower")]
pub(crate) mod hosted;
#[cfg(feature = "http2")]
pub(crate) mod http2;
pub(crate) mod serve;
pub(crate) mod shared;
pub(crate) mod shutdown;
#[cfg(feature = "tls")]
pub mod tls;
