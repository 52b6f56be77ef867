//! Per-connection timers: work that repeats (or waits) for as long as one
//! connection lives, and stops by itself when it closes.
//!
//! A timer is its own task on the app's runtime (through the runtime seam),
//! racing its sleep against the connection's "closed" event: when the socket
//! closes, the timer ends at once, with no cleanup in `close`. Its ticks
//! run on the connection's task (see `deferred`), so they get the
//! connection's data.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use event_listener::Event;

use crate::delivery::deferred::Job;
use crate::delivery::outbox::Shared;
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

/// Starts a timer task: sleeps `period`, has the connection's task run
/// `tick`, waits for it to have run, and repeats while `tick` returns true
/// and the connection and the timer are alive. Waiting for the tick means
/// ticks never pile up behind a busy connection: the next period starts
/// once the last tick has run.
pub(crate) fn start<T: 'static>(
    rt: &Rt,
    shared: Arc<Shared>,
    period: Duration,
    tick: impl FnMut(&mut T) -> bool + Send + 'static,
) -> Timer {
    let stop = Arc::new(Stop::default());
    let timer = Timer { stop: stop.clone() };
    let runtime = rt.clone();
    let tick = Arc::new(Mutex::new(tick));
    rt.spawn(Box::pin(async move {
        loop {
            let mut sleep = runtime.sleep(period);
            if !wait(&shared, &stop, None, |cx| {
                sleep.as_mut().poll(cx).is_ready()
            })
            .await
            {
                return;
            }
            let ran = Arc::new(Ran::default());
            let job: Job<T> = {
                let (tick, ran, stop) = (tick.clone(), ran.clone(), stop.clone());
                Box::new(move |ws| {
                    // A tick that panicked closed its connection: the
                    // poisoned closure is never called again anyway.
                    let mut tick = tick.lock().unwrap_or_else(|e| e.into_inner());
                    let again = !stop.cancelled.load(Ordering::Acquire) && tick(ws);
                    ran.again.store(again, Ordering::Release);
                    ran.done.store(true, Ordering::Release);
                    ran.event.notify(usize::MAX);
                })
            };
            if !shared.defer(job) {
                return;
            }
            let ran_now = || ran.done.load(Ordering::Acquire);
            if !wait(&shared, &stop, Some(&ran.event), |_| ran_now()).await
                || !ran.again.load(Ordering::Acquire)
            {
                return;
            }
        }
    }));
    timer
}

/// One tick's outcome, set by the connection's task.
#[derive(Default)]
struct Ran {
    done: AtomicBool,
    again: AtomicBool,
    event: Event,
}

/// Waits until `ready` holds (polled whenever `also` or the runtime wakes
/// this task); false when the connection closed or the timer was
/// cancelled first.
async fn wait(
    shared: &Shared,
    stop: &Stop,
    also: Option<&Event>,
    mut ready: impl FnMut(&mut Context<'_>) -> bool,
) -> bool {
    loop {
        let mut closed = pin!(shared.closed.listen());
        let mut cancelled = pin!(stop.event.listen());
        let mut woken = also.map(|e| Box::pin(e.listen()));
        if shared.is_closed() || stop.cancelled.load(Ordering::Acquire) {
            return false;
        }
        let outcome = poll_fn(|cx| {
            if closed.as_mut().poll(cx).is_ready() || cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(false));
            }
            if ready(cx) {
                return Poll::Ready(Some(true));
            }
            match &mut woken {
                Some(w) => w.as_mut().poll(cx).map(|()| None),
                None => Poll::Pending,
            }
        })
        .await;
        match outcome {
            Some(false) => return false,
            Some(true) => {
                return !shared.is_closed() && !stop.cancelled.load(Ordering::Acquire);
            }
            // `also` fired: listen again and look.
            None => {}
        }
    }
}
