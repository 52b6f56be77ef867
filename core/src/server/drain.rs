//! Taking a server out of service without a stampede: readiness that
//! fails the moment shutdown starts, an optional delay before the drain
//! (for a load balancer to notice), and closes spread over a window that
//! tell each client how long to spread its reconnect over.

use std::sync::Arc;
use std::time::Duration;

use crate::delivery::outbox::Shared;
use crate::message::CloseCode;
use crate::runtime::Rt;

/// The close reason's reconnect hint: `retry-in=<ms>`. Documented in the
/// README's wire format; `wsway.js` reads it.
pub const RETRY_IN: &str = "retry-in=";

/// How a server drains. See the [`Server`](crate::Server) builder.
#[derive(Clone, Debug)]
pub(crate) struct DrainPlan {
    pub(crate) pre_delay: Duration,
    pub(crate) code: CloseCode,
    pub(crate) window: Duration,
    pub(crate) reconnect_window: Duration,
}

impl Default for DrainPlan {
    fn default() -> Self {
        DrainPlan {
            pre_delay: Duration::ZERO,
            code: CloseCode::GOING_AWAY,
            window: DEFAULT_WINDOW,
            reconnect_window: DEFAULT_RECONNECT_WINDOW,
        }
    }
}

/// Closes are spread over 2 s by default (see the README's "Deploying").
pub(crate) const DEFAULT_WINDOW: Duration = Duration::from_secs(2);
/// Clients are told to spread their reconnects over 5 s by default.
pub(crate) const DEFAULT_RECONNECT_WINDOW: Duration = Duration::from_secs(5);

/// Batches are at least this far apart, so a window is a few dozen of them.
const BATCH_GAP: Duration = Duration::from_millis(50);

impl DrainPlan {
    /// The close reason: what happened, and the reconnect hint.
    pub(crate) fn reason(&self) -> String {
        format!(
            "server shutting down; {RETRY_IN}{}",
            self.reconnect_window.as_millis()
        )
    }

    /// The window actually used: at most half the shutdown deadline, so
    /// the last batch still has time for its closing handshakes.
    pub(crate) fn window_within(&self, deadline: Duration) -> Duration {
        self.window.min(deadline / 2)
    }
}

/// Asks `conns` to close, in batches spread evenly over `window` (all at
/// once when it is zero): as many batches as fit [`BATCH_GAP`] apart, or
/// one per connection when there are fewer, their sizes differing by one
/// at most, so the last goes out one gap before the window's end.
pub(crate) fn spread(rt: &Rt, conns: Vec<Arc<Shared>>, window: Duration) {
    let batches = batch_count(window, conns.len());
    if batches <= 1 {
        conns.iter().for_each(|c| c.shutdown());
        return;
    }
    let gap = window / batches as u32;
    let runtime = rt.clone();
    rt.spawn(Box::pin(async move {
        for b in 0..batches {
            if b > 0 {
                runtime.sleep(gap).await;
            }
            batch(&conns, b, batches).iter().for_each(|c| c.shutdown());
        }
    }));
}

/// How many batches a drain of `n` connections over `window` makes.
fn batch_count(window: Duration, n: usize) -> usize {
    ((window.as_nanos() / BATCH_GAP.as_nanos()) as usize).clamp(1, n.max(1))
}

/// Batch `b` of `batches`: a slice of `all` as even as can be.
fn batch<T>(all: &[T], b: usize, batches: usize) -> &[T] {
    &all[b * all.len() / batches..(b + 1) * all.len() / batches]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_even_and_fill_the_window() {
        let window = Duration::from_secs(2);
        for n in [1, 2, 10, 40, 41, 81, 1000] {
            let all: Vec<usize> = (0..n).collect();
            let batches = batch_count(window, n);
            assert_eq!(batches, n.min(40), "{n} connections");
            let sizes: Vec<usize> = (0..batches)
                .map(|b| batch(&all, b, batches).len())
                .collect();
            assert_eq!(sizes.iter().sum::<usize>(), n);
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{n}: {sizes:?}");
        }
        assert_eq!(batch_count(Duration::ZERO, 100), 1);
        assert_eq!(batch_count(window, 0), 1);
    }

    #[test]
    fn the_reason_carries_the_hint() {
        let plan = DrainPlan {
            reconnect_window: Duration::from_millis(2500),
            ..DrainPlan::default()
        };
        assert_eq!(plan.reason(), "server shutting down; retry-in=2500");
        assert!(plan.reason().len() <= crate::message::MAX_CLOSE_REASON);
        assert_eq!(
            plan.window_within(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        let r = crate::app::readiness::Readiness::default();
        assert!(r.is_ready());
        assert!(r.drain());
        assert!(!r.drain());
        assert!(!r.is_ready());
    }
}
