//! A simulated world for one connection: a peer that follows a script, a
//! clock that moves only when nothing else can, and an executor that runs
//! the tasks core spawns (timers, the idle sweeper) beside the connection.
//!
//! Time is virtual so that idle pings, idle timeouts, close timeouts and
//! per-connection timers fire in every run, in microseconds of real time,
//! and a run is a pure function of its input.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::runtime::{BoxSleep, BoxTask, Runtime};

/// Virtual milliseconds, and the sleepers waiting on them.
#[derive(Default)]
struct ClockState {
    now: u64,
    sleepers: Vec<(u64, Waker)>,
}

/// The runtime seam over the simulated clock; spawned tasks wait in a list
/// until [`Sim::run`] polls them.
#[derive(Clone, Default)]
pub(super) struct Sim {
    clock: Arc<Mutex<ClockState>>,
    spawned: Arc<Mutex<Vec<BoxTask>>>,
}

struct Sleep {
    clock: Arc<Mutex<ClockState>>,
    deadline: u64,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        if clock.now >= self.deadline {
            return Poll::Ready(());
        }
        clock.sleepers.push((self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Runtime for Sim {
    fn spawn(&self, task: BoxTask) {
        self.spawned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    fn sleep(&self, duration: Duration) -> BoxSleep {
        let now = self.clock.lock().unwrap_or_else(|e| e.into_inner()).now;
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Box::pin(Sleep {
            clock: self.clock.clone(),
            deadline: now.saturating_add(ms),
        })
    }
}

/// Set by any wake-up: something can make progress without time passing.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

impl Sim {
    /// Moves the clock to the earliest deadline anyone waits for and wakes
    /// whoever waits for it; false when nobody waits for time.
    fn advance(&self) -> bool {
        let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(next) = clock.sleepers.iter().map(|(at, _)| *at).min() else {
            return false;
        };
        clock.now = clock.now.max(next);
        let now = clock.now;
        let (due, later) = std::mem::take(&mut clock.sleepers)
            .into_iter()
            .partition::<Vec<_>, _>(|(at, _)| *at <= now);
        clock.sleepers = later;
        drop(clock);
        for (_, waker) in due {
            waker.wake();
        }
        true
    }

    /// Runs `main` with every spawned task beside it, moving the clock
    /// whenever nothing else can move. Panics when the run is stuck (no
    /// input, no timer) or outlives `max_steps` clock moves: a connection
    /// whose peer stops must end by a timeout.
    pub(super) fn run(&self, main: impl Future<Output = ()>, max_steps: u32) {
        let mut main = std::pin::pin!(main);
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut tasks: Vec<BoxTask> = Vec::new();
        let mut steps = 0;
        loop {
            flag.0.store(false, Ordering::Release);
            if main.as_mut().poll(&mut cx).is_ready() {
                // Tasks not yet polled hold the runtime (the sweeper does):
                // dropping them here breaks that cycle.
                self.spawned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                return;
            }
            tasks.append(&mut self.spawned.lock().unwrap_or_else(|e| e.into_inner()));
            tasks.retain_mut(|t| t.as_mut().poll(&mut cx).is_pending());
            let spawned_more = !self
                .spawned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
            if flag.0.load(Ordering::Acquire) || spawned_more {
                continue;
            }
            assert!(self.advance(), "stuck: no input, no wake-up, no timer");
            steps += 1;
            assert!(
                steps <= max_steps,
                "the connection outlived {max_steps} clock moves"
            );
        }
    }
}

/// What the peer does once its script has run out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Then {
    /// Hangs up (end of stream).
    HangUp,
    /// Goes silent, as a peer whose network vanished: reads never end.
    Stall,
}

/// A peer that sends the script in chunks, records what it is sent, and
/// then hangs up or goes silent.
pub(super) struct Scripted {
    pub(super) input: VecDeque<u8>,
    pub(super) chunk: usize,
    pub(super) then: Then,
    pub(super) output: Arc<Mutex<Vec<u8>>>,
}

impl futures_io::AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.input.is_empty() && self.then == Then::Stall {
            // Never woken: only the clock moves the run on from here.
            return Poll::Pending;
        }
        let n = buf.len().min(self.chunk).min(self.input.len());
        for (slot, byte) in buf.iter_mut().zip(self.input.drain(..n)) {
            *slot = byte;
        }
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
