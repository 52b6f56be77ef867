//! One test body served on every runtime: a
//! [`TestServer`] on its own threads, and on
//! tokio's, smol's and async-std's through each adapter's `runtime()`.
//! [`served_tests!`](crate::served_tests) defines a `#[test]` per runtime
//! for each body, so timers, timeouts and handlers that await are checked
//! where an app really runs them.

use wsway::Server;
use wsway::testing::TestServer;

/// Where a [`TestServer`]'s tasks run.
pub enum Served {
    /// [`TestServer::new`]: threads of its own, no runtime.
    Threads,
    /// A multi-threaded tokio runtime of the test's own.
    Tokio(tokio::runtime::Runtime),
    /// smol's global executor.
    Smol,
    /// async-std's global executor.
    AsyncStd,
}

impl Served {
    /// A tokio runtime with two workers, as a small deployment has.
    ///
    /// # Panics
    ///
    /// When the runtime cannot start.
    pub fn tokio() -> Served {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Served::Tokio(rt)
    }

    /// Serves `app` here.
    pub fn serve(&self, app: impl Into<Server>) -> TestServer {
        match self {
            Served::Threads => TestServer::new(app),
            Served::Tokio(rt) => {
                let _inside = rt.enter();
                TestServer::with_runtime(app, wsway_tokio::runtime())
            }
            Served::Smol => TestServer::with_runtime(app, wsway_smol::runtime()),
            Served::AsyncStd => TestServer::with_runtime(app, wsway_async_std::runtime()),
        }
    }

    /// The runtime's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Served::Threads => "threads",
            Served::Tokio(_) => "tokio",
            Served::Smol => "smol",
            Served::AsyncStd => "async-std",
        }
    }
}

/// Defines each body once (`fn name(served) { .. }`, `served` a
/// `&Served`) and a `#[test]` per runtime that runs it, in modules named
/// `threads`, `tokio`, `smol` and `async_std`.
#[macro_export]
macro_rules! served_tests {
    ($($(#[$meta:meta])* fn $name:ident($served:ident) $body:block)*) => {
        $( fn $name($served: &$crate::served::Served) $body )*

        mod threads {
            $( $(#[$meta])* #[test] fn $name() { super::$name(&$crate::served::Served::Threads) } )*
        }
        mod tokio {
            $( $(#[$meta])* #[test] fn $name() { super::$name(&$crate::served::Served::tokio()) } )*
        }
        mod smol {
            $( $(#[$meta])* #[test] fn $name() { super::$name(&$crate::served::Served::Smol) } )*
        }
        mod async_std {
            $( $(#[$meta])* #[test] fn $name() { super::$name(&$crate::served::Served::AsyncStd) } )*
        }
    };
}
