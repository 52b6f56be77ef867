//! Run a [`wsway`] application on smol.
//!
//! ```no_run
//! use wsway::{App, on_message};
//!
//! fn main() -> std::io::Result<()> {
//!     let mut app = App::new();
//!     app.ws("/echo", on_message(|ws, msg| {
//!         ws.send(msg);
//!     }));
//!     // Serves until SIGTERM or SIGINT, then shuts down gracefully.
//!     smol::block_on(wsway_smol::serve(app, "127.0.0.1:3000"))
//! }
//! ```
//!
//! Connections run on smol's global executor; set `SMOL_THREADS` for more
//! than one thread. [`start`] returns a [`ServerHandle`] for the bound
//! address, the connection count and a programmatic shutdown.
//!
//! This crate only binds, accepts and supplies smol's spawn and timers;
//! everything else is in `wsway`. Swap it for `wsway-tokio` or
//! `wsway-async-std` to change runtimes: the application stays the same.

mod net;
mod runtime;

use std::net::ToSocketAddrs;

use std::io;

use wsway::{Server, ServerHandle};

/// Serves `app` on `addr` until SIGTERM or SIGINT, then shuts down gracefully
/// and returns `Ok(())`.
pub async fn serve(app: impl Into<Server>, addr: impl ToSocketAddrs) -> io::Result<()> {
    start(app, addr).await?.stopped().await;
    Ok(())
}

/// Binds `addr` and starts serving in the background; the returned handle
/// gives the bound address, the connection count and the shutdown.
pub async fn start(app: impl Into<Server>, addr: impl ToSocketAddrs) -> io::Result<ServerHandle> {
    app.into().start(net::Listener::bind(addr)?, runtime::Smol)
}
