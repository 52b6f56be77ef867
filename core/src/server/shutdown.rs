//! SIGTERM/SIGINT (and SIGHUP) wiring through signal-hook.

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
