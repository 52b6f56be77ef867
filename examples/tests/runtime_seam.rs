//! The runtime seam's contract, on each adapter: `spawn` and `sleep` work
//! when called from a thread that is not the runtime's, as core calls them
//! from the signal thread (a SIGTERM's pre-drain delay), from `Drop`, and
//! from handles used on other threads. A test body runs inside its
//! runtime, so the calls here are made from a plain thread on purpose.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

const NAP: Duration = Duration::from_millis(150);

runtime_tests! {
    async fn spawn_and_sleep_work_from_a_thread_outside_the_runtime(rt) {
        let seam = rt.seam();
        let woke = Arc::new(AtomicBool::new(false));
        let outside = {
            let woke = woke.clone();
            std::thread::spawn(move || {
                // A timer made here and awaited by a task spawned from here.
                let started = Instant::now();
                let nap = seam.sleep(NAP);
                seam.spawn(Box::pin(async move {
                    nap.await;
                    assert!(started.elapsed() >= NAP, "woke after {:?}", started.elapsed());
                    woke.store(true, Ordering::Release);
                }));
                // A timer made and awaited on this thread, off the runtime.
                let started = Instant::now();
                futures_lite::future::block_on(seam.sleep(NAP));
                started.elapsed()
            })
        };
        let slept = within(WAIT, "the outside thread", blocking(move || outside.join())).await;
        let slept = slept.expect("the seam panicked on a thread outside the runtime");
        assert!(slept >= NAP, "a {NAP:?} sleep ended after {slept:?}");
        eventually("the task spawned from outside to wake", || woke.load(Ordering::Acquire)).await;
    }
}
