//! wsway's runtime seam on tokio.

use std::time::Duration;

use wsway::rt::{BoxSleep, BoxTask, Runtime};

/// tokio as a [`Runtime`]: tasks go to the runtime the server was started
/// on, timers to its timer wheel.
pub(crate) struct Tokio(tokio::runtime::Handle);

impl Tokio {
    /// The runtime the caller runs on.
    pub(crate) fn current() -> Self {
        Tokio(tokio::runtime::Handle::current())
    }
}

impl Runtime for Tokio {
    fn spawn(&self, task: BoxTask) {
        // Dropping the JoinHandle detaches the task; a panic stays inside it.
        drop(self.0.spawn(task));
    }

    fn sleep(&self, duration: Duration) -> BoxSleep {
        // tokio's timer is found through the calling thread's context, which
        // the signal thread, a `Drop` or a blocking pool does not have: the
        // seam is callable from any thread, so enter the runtime first.
        let _context = self.0.enter();
        Box::pin(tokio::time::sleep(duration))
    }
}
