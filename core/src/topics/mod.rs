//! Topics: publish/subscribe through the `Backplane` seam, presence,
//! resuming from history, and user rooms.
//!
//! Imports: the layers below (`delivery` for the subscribers' queues and
//! history). Never the connection's `Ws`, nor the event layer.

pub(crate) mod census;
pub(crate) mod connections;
pub(crate) mod presence;
pub(crate) mod pubsub;
pub(crate) mod read;
pub(crate) mod resume;
pub(crate) mod rooms;
pub(crate) mod users;
