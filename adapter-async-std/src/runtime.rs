//! wsway's runtime seam on async-std.

use std::time::Duration;

use wsway::rt::{BoxSleep, BoxTask, Runtime};

/// async-std as a [`Runtime`]: its global executor and timers.
pub(crate) struct AsyncStd;

impl Runtime for AsyncStd {
    fn spawn(&self, task: BoxTask) {
        // Dropping the JoinHandle detaches the task.
        drop(async_std::task::spawn(task));
    }

    fn sleep(&self, duration: Duration) -> BoxSleep {
        Box::pin(async_std::task::sleep(duration))
    }
}
