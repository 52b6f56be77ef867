//! The runtime a [`TestServer`](super::TestServer) runs on when it is not
//! given one: a thread per task and one timer thread. Slow for a server,
//! but it needs no async runtime at all, so a plain `#[test]` can use it,
//! and a test that blocks its own thread never stalls the server.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::runtime::{BoxSleep, BoxTask, Runtime};

/// A thread per spawned task; timers on one shared thread.
pub(crate) struct Threads;

impl Runtime for Threads {
    fn spawn(&self, task: BoxTask) {
        // A task that cannot get a thread cannot run at all; in a test,
        // saying so loudly is the useful answer.
        thread::Builder::new()
            .name("wsway-test".into())
            .spawn(move || block_on(task))
            .expect("a thread for a test server's task");
    }

    fn sleep(&self, duration: Duration) -> BoxSleep {
        Box::pin(Sleep {
            deadline: Instant::now() + duration,
            entry: None,
        })
    }
}

/// Wakes a thread parked in [`block_on`] or [`block_on_until`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

/// Runs `fut` on this thread until it completes or `deadline` passes.
pub(crate) fn block_on_until<F: Future>(fut: F, deadline: Instant) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::park_timeout(deadline - now);
    }
}

/// A timer waiting on the timer thread; its waker is cleared when the
/// [`Sleep`] is dropped, and the entry leaves the heap at its deadline.
struct Entry {
    waker: Mutex<Option<Waker>>,
}

struct Sleep {
    deadline: Instant,
    entry: Option<Arc<Entry>>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        match &self.entry {
            Some(entry) => {
                *entry.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone())
            }
            None => {
                let entry = Arc::new(Entry {
                    waker: Mutex::new(Some(cx.waker().clone())),
                });
                timers().add(self.deadline, entry.clone());
                self.entry = Some(entry);
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(entry) = &self.entry {
            *entry.waker.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// Deadlines in order, served by one thread.
struct Timers {
    heap: Mutex<BinaryHeap<Reverse<Due>>>,
    changed: Condvar,
}

struct Due(Instant, Arc<Entry>);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl Timers {
    fn add(&self, deadline: Instant, entry: Arc<Entry>) {
        self.heap
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Reverse(Due(deadline, entry)));
        self.changed.notify_one();
    }

    fn run(&self) {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            while heap.peek().is_some_and(|Reverse(due)| due.0 <= now) {
                if let Some(Reverse(Due(_, entry))) = heap.pop() {
                    let waker = entry.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
            }
            heap = match heap.peek() {
                Some(Reverse(due)) => {
                    let wait = due.0.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(heap, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.changed.wait(heap).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

fn timers() -> &'static Timers {
    static TIMERS: OnceLock<&'static Timers> = OnceLock::new();
    TIMERS.get_or_init(|| {
        let timers: &'static Timers = Box::leak(Box::new(Timers {
            heap: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
        }));
        thread::Builder::new()
            .name("wsway-test-timers".into())
            .spawn(move || timers.run())
            .expect("a thread for test timers");
        timers
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_end_in_order_and_deadlines_bound_waits() {
        let rt = Threads;
        let start = Instant::now();
        block_on(rt.sleep(Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        let never = std::future::pending::<()>();
        let until = Instant::now() + Duration::from_millis(20);
        assert_eq!(block_on_until(never, until), None);
        assert_eq!(block_on_until(async { 5 }, until), Some(5));
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(Box::pin(async move {
            Threads.sleep(Duration::from_millis(5)).await;
            tx.send(()).unwrap();
        }));
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}
