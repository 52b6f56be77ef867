//! Serving an app: the accept loop, each connection's HTTP and upgrade,
//! shutdown and drain, listeners passed by a process manager, and TLS.
//!
//! Imports: every layer below.

pub(crate) mod activation;
pub(crate) mod control;
pub(crate) mod drain;
pub(crate) mod serve;
pub(crate) mod shutdown;
#[cfg(feature = "tls")]
pub mod tls;
