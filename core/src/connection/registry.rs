//! The live-connection registry: counts, capacity, and reaching every
//! connection at shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::delivery::outbox::Shared;
use crate::trigger::Trigger;

#[derive(Default)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<u64, Arc<Shared>>>,
    next_id: AtomicU64,
    /// WebSocket connections, counted from the accepted upgrade (before the 101).
    websockets: AtomicUsize,
    /// Connection tasks of any kind (HTTP or WebSocket).
    tasks: AtomicUsize,
    pub(crate) shutting_down: Trigger,
    /// Fired whenever `tasks` drops to zero.
    pub(crate) idle: event_listener::Event,
    /// The close a drain sends: set once, when the server starts.
    pub(crate) drain_close: std::sync::OnceLock<(crate::message::CloseCode, String)>,
}

/// A reserved WebSocket slot; frees it (and the route's) when dropped.
pub(crate) struct Reservation {
    registry: Arc<Registry>,
    route: Arc<AtomicUsize>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.registry.websockets.fetch_sub(1, Ordering::AcqRel);
        self.route.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection in the registry; removes it when dropped.
pub(crate) struct Registration {
    /// Its registry is the connection's.
    slot: Reservation,
    id: u64,
}

impl Registration {
    /// The code and reason this connection closes with when the server
    /// drains.
    pub(crate) fn drain_close(&self) -> (crate::message::CloseCode, &str) {
        match self.slot.registry.drain_close.get() {
            Some((code, reason)) => (*code, reason),
            None => (
                crate::message::CloseCode::GOING_AWAY,
                "server shutting down",
            ),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.slot.registry.lock().remove(&self.id);
        crate::observe::connection_gone();
    }
}

/// A running connection task; counted so shutdown can wait for all of them.
pub(crate) struct TaskGuard(Arc<Registry>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify(usize::MAX);
        }
    }
}

fn try_take(counter: &AtomicUsize, max: Option<usize>) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| match max {
            Some(max) if n >= max => None,
            _ => Some(n + 1),
        })
        .is_ok()
}

impl crate::topics::connections::Connections for Registry {
    fn get(&self, id: u64) -> Option<Arc<Shared>> {
        self.lock().get(&id).cloned()
    }

    fn open(&self) -> usize {
        self.websockets()
    }

    fn draining(&self) -> bool {
        self.shutting_down.is_fired()
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Shared>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves a WebSocket slot under both the app's and the route's limit.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        app_max: Option<usize>,
        route: &Arc<AtomicUsize>,
        route_max: Option<usize>,
    ) -> Option<Reservation> {
        if !try_take(&self.websockets, app_max) {
            return None;
        }
        if !try_take(route, route_max) {
            self.websockets.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Reservation {
            registry: self.clone(),
            route: route.clone(),
        })
    }

    /// Adds a connection, telling it at once if shutdown has begun.
    pub(crate) fn register(
        self: &Arc<Self>,
        slot: Reservation,
        make: impl FnOnce(u64) -> Shared,
    ) -> (Arc<Shared>, Registration) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let shared = Arc::new(make(id));
        self.lock().insert(id, shared.clone());
        crate::observe::connection_opened();
        // Checked after inserting, so a shutdown that starts meanwhile either
        // sees this connection or is seen here.
        if self.shutting_down.is_fired() {
            shared.shutdown();
        }
        let reg = Registration { slot, id };
        (shared, reg)
    }

    pub(crate) fn task(self: &Arc<Self>) -> TaskGuard {
        self.tasks.fetch_add(1, Ordering::AcqRel);
        TaskGuard(self.clone())
    }

    pub(crate) fn websockets(&self) -> usize {
        self.websockets.load(Ordering::Acquire)
    }

    pub(crate) fn tasks(&self) -> usize {
        self.tasks.load(Ordering::Acquire)
    }

    /// Bytes waiting in every send queue, and in the fullest one.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn queued_bytes(&self) -> (usize, usize) {
        self.connections()
            .iter()
            .map(|c| c.buffered())
            .fold((0, 0), |(sum, max), b| (sum + b, max.max(b)))
    }

    /// Runs `f` on every connection; how many there were.
    fn each(&self, f: impl Fn(&Shared)) -> usize {
        let conns = self.connections();
        for c in &conns {
            f(c);
        }
        conns.len()
    }

    /// One idle-sweeper tick: advances every connection's quiet counter and
    /// wakes those due a ping or past their idle timeout. One pass over the
    /// table replaces a timer per connection, so an idle connection costs no
    /// memory for timers and no wake-ups until it is due.
    pub(crate) fn sweep(&self) {
        for shared in self.lock().values() {
            if shared.tick() {
                shared.waker.wake();
            }
        }
    }

    /// Asks every connection to flush and close with 1001.
    /// Every open WebSocket, for a drain to close.
    pub(crate) fn connections(&self) -> Vec<Arc<Shared>> {
        self.lock().values().cloned().collect()
    }

    /// Drops every connection still open; how many there were.
    pub(crate) fn terminate_all(&self) -> usize {
        self.each(Shared::terminate)
    }
}
