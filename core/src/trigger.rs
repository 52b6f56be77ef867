//! A one-shot flag that any task can wait on: a server's shutdown and
//! stop, a loop handler's cancellation.

use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

/// A one-shot flag that tasks can await.
#[derive(Default)]
pub(crate) struct Trigger {
    fired: AtomicBool,
    event: Event,
}

impl Trigger {
    pub(crate) fn fire(&self) {
        if !self.fired.swap(true, Ordering::AcqRel) {
            self.event.notify(usize::MAX);
        }
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    pub(crate) async fn wait(&self) {
        loop {
            if self.is_fired() {
                return;
            }
            let listener = self.event.listen();
            if self.is_fired() {
                return;
            }
            listener.await;
        }
    }
}
