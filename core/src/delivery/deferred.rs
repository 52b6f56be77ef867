//! Work that runs on a connection's own task, between its callbacks: timer
//! ticks and reply callbacks. Running there, it gets `&mut Ws<D>` (the
//! connection's data included) with no lock, and never overlaps a
//! callback.
//!
//! Jobs are typed by the connection's data; the outbox, which is not, keeps
//! them type-erased, and the driver (which knows the type) restores it.

use std::any::Any;
use std::collections::VecDeque;

use crate::connection::socket::Ws;
use crate::delivery::outbox::Shared;

/// A piece of work for the connection's task.
pub(crate) type Job<D> = Box<dyn FnOnce(&mut Ws<D>) + Send>;

/// What a connection has deferred. Boxed in the outbox: most connections
/// never defer anything.
#[derive(Default)]
pub(crate) struct Deferred {
    /// Jobs in the order they were queued; each a `Job<D>`.
    jobs: VecDeque<Box<dyn Any + Send>>,
    /// Callbacks parked until the peer answers, by request id.
    parked: Vec<(u64, Box<dyn Any + Send>)>,
    /// The last request id handed out.
    last_id: u64,
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

impl Shared {
    /// Queues `job` for the connection's task and wakes it; false (and the
    /// job dropped) when the connection has ended.
    pub(crate) fn defer<D: 'static>(&self, job: Job<D>) -> bool {
        {
            let mut out = self.lock();
            if out.is_closed() {
                return false;
            }
            let deferred = out.deferred.get_or_insert_with(Box::default);
            deferred.jobs.push_back(Box::new(job));
        }
        self.waker.wake();
        true
    }

    /// A fresh id for a request to the peer.
    pub(crate) fn next_request_id(&self) -> u64 {
        let mut out = self.lock();
        let deferred = out.deferred.get_or_insert_with(Box::default);
        deferred.last_id += 1;
        deferred.last_id
    }

    /// Keeps `callback` until [`unpark`](Shared::unpark) takes it.
    pub(crate) fn park(&self, id: u64, callback: Box<dyn Any + Send>) {
        let mut out = self.lock();
        if out.is_closed() {
            return;
        }
        let deferred = out.deferred.get_or_insert_with(Box::default);
        deferred.parked.push((id, callback));
    }

    /// Takes the callback parked under `id`, if it is still there.
    pub(crate) fn unpark(&self, id: u64) -> Option<Box<dyn Any + Send>> {
        let mut out = self.lock();
        let parked = &mut out.deferred.as_mut()?.parked;
        let at = parked.iter().position(|(i, _)| *i == id)?;
        Some(parked.swap_remove(at).1)
    }
}

/// Runs a job the driver took from the outbox. Every job a `Ws<D>` queued
/// is a `Job<D>`, so the type is always the one expected.
pub(crate) fn run<D: 'static>(ws: &mut Ws<D>, job: Box<dyn Any + Send>) {
    if let Ok(job) = job.downcast::<Job<D>>() {
        job(ws);
    }
}
