//! Per-connection timers: work that repeats (or waits) for as long as one
//! connection lives, and stops by itself when it closes.
//!
//! A timer is its own task on the app's runtime (through the runtime seam),
//! racing its sleep against the connection's "closed" event: when the socket
//! closes, the timer ends at once, with no cleanup in `close`.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use event_listener::Event;

use crate::handle::Handle;
use crate::outbox::Shared;
use crate::runtime::Rt;

/// A running per-connection timer, from [`Ws::every`](crate::Ws::every) or
/// [`Ws::after`](crate::Ws::after). It stops when the connection closes;
/// [`cancel`](Timer::cancel) stops it sooner. Dropping it does not stop it.
#[derive(Clone, Debug)]
pub struct Timer {
    stop: Arc<Stop>,
}

#[derive(Debug, Default)]
struct Stop {
    cancelled: AtomicBool,
    event: Event,
}

impl Timer {
    /// Stops the timer; a tick already running finishes.
    pub fn cancel(&self) {
        self.stop.cancelled.store(true, Ordering::Release);
        self.stop.event.notify(usize::MAX);
    }

    /// True once cancelled (not when the connection closed).
    pub fn is_cancelled(&self) -> bool {
        self.stop.cancelled.load(Ordering::Acquire)
    }
}

/// Starts a timer task: sleeps `period`, runs `tick`, and repeats while
/// `tick` returns true and the connection and the timer are alive.
pub(crate) fn start(
    rt: &Rt,
    shared: Arc<Shared>,
    period: Duration,
    mut tick: impl FnMut(&Handle) -> bool + Send + 'static,
) -> Timer {
    let stop = Arc::new(Stop::default());
    let timer = Timer { stop: stop.clone() };
    let runtime = rt.clone();
    rt.spawn(Box::pin(async move {
        let handle = Handle::from_shared(shared.clone());
        loop {
            let mut closed = pin!(shared.closed.listen());
            let mut cancelled = pin!(stop.event.listen());
            if shared.is_closed() || stop.cancelled.load(Ordering::Acquire) {
                return;
            }
            let mut sleep = runtime.sleep(period);
            let woke = poll_fn(|cx| {
                if closed.as_mut().poll(cx).is_ready() || cancelled.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                sleep.as_mut().poll(cx).map(|()| true)
            })
            .await;
            if !woke
                || shared.is_closed()
                || stop.cancelled.load(Ordering::Acquire)
                || !tick(&handle)
            {
                return;
            }
        }
    }));
    timer
}
