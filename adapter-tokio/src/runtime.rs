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
        Box::pin(tokio::time::sleep(duration))
    }
}
