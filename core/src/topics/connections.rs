//! This node's connections as topics reach them: one by its id (to close
//! it, `Topics::disconnect_member`), and how many there are (the admin
//! page). The server's registry, a layer up, is what implements it.

use std::sync::Arc;

use crate::delivery::outbox::Shared;

/// The serving server's connections.
pub(crate) trait Connections: Send + Sync {
    /// The open connection `id`, if it is one.
    fn get(&self, id: u64) -> Option<Arc<Shared>>;
    /// Open WebSockets.
    fn open(&self) -> usize;
    /// True once the server began draining.
    fn draining(&self) -> bool;
}
