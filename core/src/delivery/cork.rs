//! Corking: while a connection's task is being polled, what it publishes
//! to others is queued and not yet written; when the poll ends, each
//! subscriber it reached gets everything it was given in one write, from
//! this task, without waking the subscriber's own (uWebSockets drains its
//! topics once per loop iteration for the same reason).
//!
//! A client that sends a burst of messages is read in one poll: corked,
//! a room's members get one write for the burst, not one per message
//! (each a system call, and on loopback the receiver's work too).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::delivery::outbox::Shared;

thread_local! {
    /// The subscribers reached during the current corked poll on this
    /// thread; `None` when no poll is corked.
    static REACHED: RefCell<Option<Vec<Arc<Shared>>>> = const { RefCell::new(None) };
}

/// Whether a corked poll is running on this thread.
pub(crate) fn is_on() -> bool {
    REACHED.with(|r| r.borrow().is_some())
}

/// Notes `sub` for a write when the corked poll ends; false when no poll
/// is corked (then the caller must wake its driver).
pub(crate) fn reached(sub: Arc<Shared>) -> bool {
    REACHED.with(|r| match r.borrow_mut().as_mut() {
        Some(reached) => {
            reached.push(sub);
            true
        }
        None => false,
    })
}

pin_project_lite::pin_project! {
    /// A future whose every poll is corked.
    pub(crate) struct Corked<F> {
        #[pin]
        inner: F,
    }
}

impl<F> Corked<F> {
    pub(crate) fn new(inner: F) -> Self {
        Corked { inner }
    }
}

impl<F: Future> Future for Corked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _cork = Cork::on();
        self.project().inner.poll(cx)
    }
}

/// One corked poll: uncorks when dropped (a panic included).
struct Cork {
    /// The cork of an enclosing poll, put back after this one.
    outer: Option<Vec<Arc<Shared>>>,
}

impl Cork {
    fn on() -> Self {
        let outer = REACHED.with(|r| r.borrow_mut().replace(Vec::new()));
        Cork { outer }
    }
}

impl Drop for Cork {
    fn drop(&mut self) {
        let outer = self.outer.take();
        let reached = REACHED.with(|r| std::mem::replace(&mut *r.borrow_mut(), outer));
        // Uncorked with the cork off: a write here reaches no one else.
        for sub in reached.into_iter().flatten() {
            sub.uncork();
        }
    }
}
