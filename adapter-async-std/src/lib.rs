//! Run a [`wsway`] application on async-std.
//!
//! **async-std is discontinued upstream** ([RUSTSEC-2025-0052]): it receives
//! no further fixes. New projects should use `wsway-smol`, which runs on the
//! same async-io reactor; this adapter stays for applications that still run
//! on async-std. Moving is one dependency and one line.
//!
//! [RUSTSEC-2025-0052]: https://rustsec.org/advisories/RUSTSEC-2025-0052.html
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
//!     async_std::task::block_on(wsway_async_std::serve(app, "127.0.0.1:3000"))
//! }
//! ```
//!
//! [`start`] returns a [`ServerHandle`] for the bound address, the
//! connection count and a programmatic shutdown.
//!
//! This crate only binds, accepts and supplies async-std's spawn and timers;
//! everything else is in `wsway`.

mod net;
mod runtime;

use async_std::net::ToSocketAddrs;
use std::future::Future;
use std::io;

use wsway::{Server, ServerHandle};

/// The runtime this adapter runs on, for what the app itself needs from it
/// (`async_std::task::spawn`, its timers) without a second dependency to
/// keep in step.
pub use async_std;

/// Serves `app` on `addr` from a plain `fn main`: starts async-std, prints
/// `listening on ADDR` to stderr once bound, serves until SIGTERM or
/// SIGINT, then shuts down gracefully and returns `Ok(())`. This is the
/// one line that names the runtime: swap the crate and this call to move
/// an app to another runtime.
///
/// ```no_run
/// fn main() -> std::io::Result<()> {
///     let mut app = wsway::App::new();
///     app.ws("/echo", wsway::on_message(|ws, msg| { ws.send(msg); }));
///     wsway_async_std::run(app, "127.0.0.1:3000")
/// }
/// ```
pub fn run(app: impl Into<Server>, addr: impl ToSocketAddrs) -> io::Result<()> {
    async_std::task::block_on(wsway::rt::run_announced(start(app, addr)))
}

/// As [`run`], with an async set-up first: `setup` runs on async-std
/// (connecting to Redis or a database, reading secrets) and returns the
/// app; an error there ends `run_with` with it, before anything is bound
/// or announced. Swapping runtimes stays this one line (and
/// `wsway-redis`'s feature, `smol` here).
///
/// ```no_run
/// fn main() -> std::io::Result<()> {
///     wsway_async_std::run_with(async {
///         let mut app = wsway::App::new();
///         app.ws("/echo", wsway::on_message(|ws, msg| { ws.send(msg); }));
///         // app.backplane(wsway_redis::Redis::connect(url).await?);
///         Ok::<_, std::io::Error>(app)
///     }, "127.0.0.1:3000")
/// }
/// ```
pub fn run_with<S, E>(
    setup: impl Future<Output = Result<S, E>>,
    addr: impl ToSocketAddrs,
) -> io::Result<()>
where
    S: Into<Server>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async_std::task::block_on(wsway::rt::run_set_up(setup, |server| start(server, addr)))
}

/// Serves `app` on `addr` until SIGTERM or SIGINT, then shuts down gracefully
/// and returns `Ok(())`.
pub async fn serve(app: impl Into<Server>, addr: impl ToSocketAddrs) -> io::Result<()> {
    start(app, addr).await?.stopped().await;
    Ok(())
}

/// Binds `addr` and starts serving in the background; the returned handle
/// gives the bound address, the connection count and the shutdown.
pub async fn start(app: impl Into<Server>, addr: impl ToSocketAddrs) -> io::Result<ServerHandle> {
    app.into()
        .start(net::Listener::bind(addr).await?, runtime::AsyncStd)
}

/// Serves `app` on a listening socket bound elsewhere until SIGTERM or
/// SIGINT, then shuts down gracefully. See [`start_on`].
pub async fn serve_on(app: impl Into<Server>, listener: std::net::TcpListener) -> io::Result<()> {
    start_on(app, listener)?.stopped().await;
    Ok(())
}

/// Starts serving on a listening socket bound elsewhere: one a process
/// manager passed down ([`wsway::inherited_listener`], systemd socket
/// activation), or one a test or a restart harness holds. On shutdown the
/// server stops accepting at once and closes only its own descriptor: a
/// socket another process also holds stays open, and the connections
/// queued on it wait for that process.
///
/// ```no_run
/// # async fn run(app: wsway::App) -> std::io::Result<()> {
/// let listener = match wsway::inherited_listener()? {
///     Some(listener) => listener,
///     None => std::net::TcpListener::bind("127.0.0.1:3000")?,
/// };
/// let handle = wsway_async_std::start_on(app, listener)?;
/// # Ok(()) }
/// ```
pub fn start_on(
    app: impl Into<Server>,
    listener: std::net::TcpListener,
) -> io::Result<ServerHandle> {
    app.into()
        .start(net::Listener::adopt(listener)?, runtime::AsyncStd)
}

/// async-std as wsway's runtime seam: what [`start`] serves on, for
/// [`TestServer::with_runtime`](wsway::testing::TestServer::with_runtime)
/// when handlers need async-std's executor or timers.
pub fn runtime() -> impl wsway::rt::Runtime {
    runtime::AsyncStd
}
