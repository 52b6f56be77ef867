//! Serving an app: the accept loop, each connection's HTTP and upgrade,
//! shutdown and drain, listeners passed by a process manager, TLS, and the
//! app mounted in another server (`tower`).
//!
//! Imports: every layer below.

pub(crate) mod activation;
pub(crate) mod control;
pub(crate) mod drain;
#[cfg(feature = "tower")]
pub(crate) mod hosted;
pub(crate) mod serve;
pub(crate) mod shutdown;
#[cfg(feature = "tls")]
pub mod tls;
