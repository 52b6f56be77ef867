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
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut watched = vec![SIGTERM, SIGINT];
    #[cfg(feature = "tls")]
    if handle.reloads_on_hangup() {
        watched.push(SIGHUP);
    }
    let mut signals = signal_hook::iterator::Signals::new(&watched)?;
    let control = signals.handle();
    std::thread::Builder::new()
        .name("wsway-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                if signal == SIGHUP {
                    #[cfg(feature = "tls")]
                    if let Err(e) = handle.reload_tls() {
                        // The old certificate stays; the operator must hear why.
                        eprintln!("wsway: certificate reload failed, keeping the old one: {e}");
                    }
                    continue;
                }
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
