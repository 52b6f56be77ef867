//! What waits to be sent: a connection's outbox (its send queue, with the
//! backpressure accounting and the work deferred to its task), and each
//! topic's history (positions, rings, retention).
//!
//! Imports: the base modules, `web` and `policy`. Nothing here names a
//! connection's `Ws` or a topic's subscribers.

pub(crate) mod cork;
pub(crate) mod deferred;
pub(crate) mod history;
pub(crate) mod outbox;
