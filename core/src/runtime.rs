//! The runtime seam: the two things core needs from an async runtime.
//!
//! Everything in wsway that is not binding a socket runs on top of this trait,
//! which is what lets one application run on tokio, async-std or smol. An
//! adapter crate implements it once; core never names a runtime.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A boxed, sendable future with no output, as handed to [`Runtime::spawn`].
pub type BoxTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A boxed timer future, as returned by [`Runtime::sleep`].
///
/// `Sync` is required because hyper keeps its header-read timer in shared state.
pub type BoxSleep = Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>>;

/// What core needs from an async runtime: spawning and timers.
///
/// # Contract
///
/// An adapter's implementation must meet these rules; core relies on them.
///
/// * Both methods are callable from any thread, not only the runtime's:
///   core calls them from the signal thread (a SIGTERM's pre-drain delay),
///   from `Drop` and from other runtimes' tasks (a [`Handle`](crate::Handle)
///   or [`ServerHandle`](crate::ServerHandle) used elsewhere). A runtime
///   that finds its timer or executor through a thread-local context must
///   enter it first (tokio: `Handle::enter`).
/// * `spawn` runs the future to completion on the runtime, detached: core
///   never joins or cancels a spawned task, and dropping nothing stops it.
/// * A task that panics must not take the runtime or any other task down.
///   (Core already catches panics from handler callbacks; this is the last
///   line of defence.)
/// * `sleep(d)` resolves once, no earlier than `d` after the call, and must be
///   cheap to create and drop: core creates one per idle period per
///   connection and drops unfired ones on every close.
///
/// The trait is object safe; core holds it as `Arc<dyn Runtime>` so that an
/// [`App`](crate::App) never carries a runtime type parameter.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `task` in the background.
    fn spawn(&self, task: BoxTask);

    /// A future that resolves after `duration`.
    fn sleep(&self, duration: Duration) -> BoxSleep;
}

/// Shared runtime handle used throughout core.
pub(crate) type Rt = Arc<dyn Runtime>;

/// hyper's timer trait on top of our seam, so hyper's header-read timeout works
/// on every runtime without hyper knowing which one it is.
#[derive(Clone)]
pub(crate) struct HyperTimer(pub(crate) Rt);

struct HyperSleep(BoxSleep);

impl Future for HyperSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HyperSleep {}

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(self.0.sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let duration = deadline.saturating_duration_since(Instant::now());
        self.sleep(duration)
    }
}

/// hyper's executor on top of our seam: HTTP/2 runs each stream (and each
/// stream an extended CONNECT opened) as a task of its own.
#[cfg(feature = "http2")]
#[derive(Clone)]
pub(crate) struct HyperExec(pub(crate) Rt);

#[cfg(feature = "http2")]
impl<F> hyper::rt::Executor<F> for HyperExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(Box::pin(fut));
    }
}

/// Runs `fut` for at most `limit`; true when it finished.
pub(crate) async fn within(rt: &Rt, limit: Duration, fut: impl Future<Output = ()>) -> bool {
    let mut fut = pin!(fut);
    let mut timer = rt.sleep(limit);
    poll_fn(|cx| {
        if fut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        timer.as_mut().poll(cx).map(|()| false)
    })
    .await
}
