//! Timeouts and backoff on the server's runtime seam, so the tasks run on
//! tokio, async-std or smol alike.

use std::future::Future;
use std::time::Duration;

use futures_lite::future;
use wsway::Node;

/// `fut`'s output, or `None` once `limit` has passed.
pub(crate) async fn within<T>(
    node: &Node,
    limit: Duration,
    fut: impl Future<Output = T>,
) -> Option<T> {
    let timer = node.runtime().sleep(limit);
    future::or(async { Some(fut.await) }, async {
        timer.await;
        None
    })
    .await
}

/// Doubling delays between reconnects, reset by a success.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new((min, max): (Duration, Duration)) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// Waits the current delay (with jitter, so nodes spread out), or less
    /// if `cut_short` fires first.
    pub(crate) async fn wait(&mut self, node: &Node, cut_short: impl Future<Output = ()>) {
        let delay = self.next.mul_f64(0.5 + fastrand::f64() / 2.0);
        self.next = (self.next * 2).min(self.max);
        let timer = node.runtime().sleep(delay);
        future::or(timer, cut_short).await;
    }
}
