//! One WebSocket connection: the driver (read loop, writes, timers, the
//! close handshake), the codec over its stream, the `Ws` its callbacks
//! get, its `Handle`, per-connection timers, the `Handler` trait, and the
//! resident body of a loop-style handler.
//!
//! Imports: the layers below. The server hands the driver what it needs
//! (its registration) rather than the driver reaching for the registry.

pub(crate) mod codec;
pub(crate) mod compressor;
pub(crate) mod driver;
pub(crate) mod handle;
pub(crate) mod handler;
pub(crate) mod readahead;
pub(crate) mod resident;
pub(crate) mod socket;
pub(crate) mod timer;
