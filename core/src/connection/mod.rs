//! One WebSocket connection: the driver (read loop, writes, timers, the
//! close handshake), the codec over its stream, the `Ws` its callbacks
//! get, its `Handle`, per-connection timers, the renewal of its token,
//! the `Handler` trait, the
//! resident body of a loop-style handler, and the registry of live
//! connections each one enrolls in (the server owns one, and reaches
//! every connection through it at shutdown).
//!
//! Imports: the layers below.

pub(crate) mod codec;
pub(crate) mod compressor;
pub(crate) mod driver;
pub(crate) mod handle;
pub(crate) mod handler;
pub(crate) mod readahead;
pub(crate) mod refresh;
pub(crate) mod registry;
pub(crate) mod resident;
pub(crate) mod socket;
pub(crate) mod timer;
