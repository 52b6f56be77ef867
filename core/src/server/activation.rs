//! A listening socket handed to the process instead of bound by it:
//! systemd socket activation (`LISTEN_PID` and `LISTEN_FDS`, the protocol of
//! `sd_listen_fds(3)`), which any process manager or restart harness can
//! speak. The socket outlives each process that serves it, so a restart
//! refuses no connection.

use std::io;
use std::net::TcpListener;

/// The listening socket passed to this process by systemd socket
/// activation (or anything speaking its protocol), if any: `Ok(None)` when
/// `LISTEN_PID` is not this process or `LISTEN_FDS` is unset or 0.
///
/// With several sockets passed, this is the first (descriptor 3). It is
/// taken once: later calls return `Ok(None)`. The returned socket is not
/// inherited by child processes. Start a server on it with the adapter's
/// `start_on` (`wsway_tokio::start_on(app, listener)`).
///
/// Linux only; elsewhere it always returns `Ok(None)`.
///
/// # Errors
///
/// When the variables say a socket was passed but descriptor 3 is not an
/// open TCP socket, or `LISTEN_FDS` is not a number.
pub fn inherited_listener() -> io::Result<Option<TcpListener>> {
    imp::take()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::net::TcpListener;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::Mutex;

    /// `SD_LISTEN_FDS_START`: passed descriptors begin here.
    const FIRST_FD: i32 = 3;

    /// Whether descriptor 3 has been claimed: at most one owner, ever.
    static TAKEN: Mutex<bool> = Mutex::new(false);

    pub(super) fn take() -> io::Result<Option<TcpListener>> {
        if std::env::var("LISTEN_PID").ok() != Some(std::process::id().to_string()) {
            return Ok(None);
        }
        let count = match std::env::var("LISTEN_FDS") {
            Ok(n) => n.parse::<u32>().map_err(|_| {
                invalid(format!("LISTEN_FDS is `{n}`, not a number of descriptors"))
            })?,
            Err(_) => return Ok(None),
        };
        if count == 0 {
            return Ok(None);
        }
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        if *taken {
            return Ok(None);
        }
        // Checked before it is owned: an fd that is not an open socket is
        // refused, never wrapped.
        let link = std::fs::read_link(format!("/proc/self/fd/{FIRST_FD}")).map_err(|e| {
            invalid(format!(
                "LISTEN_FDS is {count} but descriptor 3 is not open ({e})"
            ))
        })?;
        if !link.to_string_lossy().starts_with("socket:[") {
            return Err(invalid(format!(
                "LISTEN_FDS is {count} but descriptor 3 is {}, not a socket",
                link.display()
            )));
        }
        *taken = true;
        // SAFETY: `from_raw_fd` needs an open descriptor that nothing else
        // owns. It is open: /proc just showed it as a socket. Nothing in
        // this process owns it: LISTEN_PID names this process, so per
        // sd_listen_fds(3) descriptors 3.. were passed for it to take, and
        // `TAKEN` (checked and set under its lock) lets this happen once.
        #[allow(unsafe_code)]
        let passed = unsafe { OwnedFd::from_raw_fd(FIRST_FD) };
        // A close-on-exec duplicate, so children do not inherit the socket;
        // the original descriptor 3 is closed with `passed`.
        let own = passed.try_clone()?;
        drop(passed);
        let listener = TcpListener::from(own);
        listener.local_addr().map_err(|e| {
            invalid(format!(
                "descriptor 3 from LISTEN_FDS is not a TCP socket: {e}"
            ))
        })?;
        Ok(Some(listener))
    }

    fn invalid(message: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, message)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn take() -> std::io::Result<Option<std::net::TcpListener>> {
        Ok(None)
    }
}
