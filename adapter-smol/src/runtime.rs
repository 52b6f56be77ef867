//! wsway's runtime seam on smol.

use std::time::Duration;

use wsway::rt::{BoxSleep, BoxTask, Runtime};

/// smol as a [`Runtime`]: tasks go to smol's global executor (its thread
/// count comes from `SMOL_THREADS`, default 1), timers to async-io.
pub(crate) struct Smol;

impl Runtime for Smol {
    fn spawn(&self, task: BoxTask) {
        // Detached: the executor runs it to completion; a panic ends only it.
        smol::spawn(task).detach();
    }

    fn sleep(&self, duration: Duration) -> BoxSleep {
        let timer = smol::Timer::after(duration);
        Box::pin(async move {
            timer.await;
        })
    }
}
