//! Shutdown: a one-shot trigger any task can wait on, and SIGTERM/SIGINT
//! wiring through signal-hook.

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

/// Watches SIGTERM and SIGINT on a small thread: the first starts a graceful
/// shutdown, a second one terminates what is left at once. A thread (rather
/// than each runtime's signal stream) keeps this identical on every runtime.
#[cfg(unix)]
pub(crate) fn watch_signals(
    handle: crate::ServerHandle,
) -> std::io::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let control = signals.handle();
    std::thread::Builder::new()
        .name("wsway-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for _ in signals.forever() {
                seen += 1;
                if seen == 1 {
                    handle.shutdown();
                } else {
                    handle.terminate();
                }
            }
        })?;
    Ok(control)
}
