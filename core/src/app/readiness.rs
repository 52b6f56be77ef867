//! Whether the app is still taking new work: what `/readyz` reports, and
//! what a server's shutdown turns off first.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the app is still taking new work: what `/readyz` reports.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    pub(crate) fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire)
    }

    /// Marks the app as draining; true the first time.
    pub(crate) fn drain(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }
}
