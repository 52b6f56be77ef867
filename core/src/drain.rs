//! Taking a server out of service without a stampede: readiness that
//! fails the moment shutdown starts, an optional delay before the drain
//! (for a load balancer to notice), and closes spread over a window that
//! tell each client how long to spread its reconnect over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::message::CloseCode;
use crate::outbox::Shared;
use crate::runtime::Rt;

/// The close reason's reconnect hint: `retry-in=<ms>`. Documented in the
/// README's wire format; `wsway.js` reads it.
pub const RETRY_IN: &str = "retry-in=";

/// Whether the app is still taking new work: what `/readyz` reports.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    pub(crate) fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire)
    }

    /// Marks the app as draining; true the first time.
    pub(crate) fn drain(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }
}

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
/// once when it is zero).
pub(crate) fn spread(rt: &Rt, conns: Vec<Arc<Shared>>, window: Duration) {
    let batches = (window.as_nanos() / BATCH_GAP.as_nanos()).max(1) as usize;
    if batches == 1 || conns.len() <= 1 {
        conns.iter().for_each(|c| c.shutdown());
        return;
    }
    let per = conns.len().div_ceil(batches);
    let gap = window / batches as u32;
    let runtime = rt.clone();
    rt.spawn(Box::pin(async move {
        for (i, batch) in conns.chunks(per).enumerate() {
            if i > 0 {
                runtime.sleep(gap).await;
            }
            batch.iter().for_each(|c| c.shutdown());
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = Readiness::default();
        assert!(r.is_ready());
        assert!(r.drain());
        assert!(!r.drain());
        assert!(!r.is_ready());
    }
}
