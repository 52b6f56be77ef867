//! A future that lives on a connection's own task beside its callbacks:
//! the body of a loop-style handler ([`ws_fn`](crate::ws_fn)). The driver
//! polls it whenever it has nothing else to do, so the body runs on the
//! connection's task, with no second task and no cross-task wake per
//! message.
//!
//! The inbound gate belongs here too: a resident body takes messages one at
//! a time, and while one waits for it the driver reads nothing more (the
//! peer's later frames stay in the socket, and TCP pushes back).

use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use crate::boxed::BoxFuture;
use crate::delivery::outbox::Shared;
use crate::message::CloseCode;

/// How a poll of the resident went.
pub(crate) enum Polled {
    /// It is still running, or it finished (the slot is empty then), or
    /// there is none.
    Fine,
    /// It panicked: it was dropped and the connection asked to close
    /// with 1011. The panic's message.
    Panicked(String),
}

impl Shared {
    /// Installs the connection's resident future; the driver starts polling
    /// it once the connection is up.
    pub(crate) fn set_resident(&self, body: BoxFuture<'static, ()>) {
        let mut out = self.lock();
        out.deferred.get_or_insert_with(Box::default).resident = Some(body);
    }

    /// Takes the resident out (to run its cleanup after the close).
    pub(crate) fn take_resident(&self) -> Option<BoxFuture<'static, ()>> {
        self.lock().deferred.as_mut()?.resident.take()
    }

    /// Polls the resident once, outside the lock (it sends, which locks).
    pub(crate) fn poll_resident(&self, cx: &mut Context<'_>) -> Polled {
        let Some(mut body) = self.take_resident() else {
            return Polled::Fine;
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(cx))) {
            Ok(Poll::Pending) => {
                self.lock()
                    .deferred
                    .get_or_insert_with(Box::default)
                    .resident = Some(body);
                Polled::Fine
            }
            Ok(Poll::Ready(())) => Polled::Fine,
            Err(panic) => {
                // Asked before the body is dropped, so the normal close its
                // socket's drop would ask for does not win over the 1011.
                let _ = self.request_close(CloseCode::INTERNAL_ERROR, "internal error", true);
                drop(body);
                Polled::Panicked(crate::error::panic_message(&*panic))
            }
        }
    }

    /// A message waits for the resident: read nothing more until it is
    /// taken.
    pub(crate) fn pause_reading(&self) {
        self.lock().reading_paused = true;
    }

    /// The resident took its message: read again. The peer could not be
    /// heard while reading was paused, so its silence counts from now.
    /// `wake`: the driver must be woken (it was taken from another task;
    /// on the driver's own, it reads again as soon as the resident yields).
    pub(crate) fn resume_reading(&self, wake: bool) {
        let was = std::mem::replace(&mut self.lock().reading_paused, false);
        if was {
            self.heard();
            if wake {
                self.waker.wake();
            }
        }
    }
}
