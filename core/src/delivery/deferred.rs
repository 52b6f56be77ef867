//! Work that runs on a connection's own task, between its callbacks: timer
//! ticks and reply callbacks. Running there, it gets `&mut Ws<D>` (the
//! connection's data included) with no lock, and never overlaps a
//! callback.
//!
//! Jobs are typed by what they run on (the connection's `Ws<D>`); the
//! outbox, which is not, keeps them type-erased, and the driver (which
//! knows the type) restores it.

use std::any::Any;
use std::collections::VecDeque;

/// A piece of work for the connection's task, run on its `T` (a `Ws<D>`).
pub(crate) type Job<T> = Box<dyn FnOnce(&mut T) + Send>;

/// What a connection has deferred. Boxed in the outbox: most connections
/// never defer anything.
#[derive(Default)]
pub(crate) struct Deferred {
    /// Jobs in the order they were queued; each a `Job<T>`.
    pub(crate) jobs: VecDeque<Box<dyn Any + Send>>,
    /// Callbacks parked until the peer answers, by request id.
    pub(crate) parked: Vec<(u64, Box<dyn Any + Send>)>,
    /// The last request id handed out.
    pub(crate) last_id: u64,
    /// The body of a loop-style handler, polled by the driver (see
    /// `resident`).
    pub(crate) resident: Option<crate::boxed::BoxFuture<'static, ()>>,
}

impl Deferred {
    /// The next job, for the driver to run.
    pub(crate) fn take_job(&mut self) -> Option<Box<dyn Any + Send>> {
        self.jobs.pop_front()
    }
}

/// Runs a job the driver took from the outbox on `target`. Every job a
/// `Ws<D>` queued is a `Job<Ws<D>>`, so the type is always the one
/// expected.
pub(crate) fn run<T: 'static>(target: &mut T, job: Box<dyn Any + Send>) {
    if let Ok(job) = job.downcast::<Job<T>>() {
        job(target);
    }
}
