//! The event table: each event's handler, the checks it runs first, and
//! the page targets it may render into.

use std::collections::HashMap;
use std::sync::Arc;

use super::call::Call;
use super::error::EventError;
use crate::connection::socket::Ws;

/// A per-event check: passes, or fails the call with an error envelope.
pub(super) type Check<D> = Arc<dyn Fn(&mut Ws<D>, &str) -> Result<(), EventError> + Send + Sync>;

/// One event: its handler, its checks, its render targets.
pub(super) struct Route<D> {
    pub(super) call: Box<dyn Call<D>>,
    pub(super) checks: Vec<Check<D>>,
    /// The page targets a call may render into.
    pub(super) targets: Vec<String>,
    /// Its types for the browser's contract, once declared.
    #[cfg(feature = "typescript")]
    pub(super) shape: Option<super::contract::CallShape>,
}

/// Every event of an [`Events`](crate::Events), by name.
pub(super) struct Routes<D>(HashMap<String, Route<D>>);

impl<D> Routes<D> {
    pub(super) fn new() -> Self {
        Routes(HashMap::new())
    }

    /// Registers `event`.
    ///
    /// # Panics
    ///
    /// When the name is empty, taken, or one of wsway's own (`wsway:`).
    pub(super) fn insert(&mut self, event: String, call: Box<dyn Call<D>>) -> &mut Route<D> {
        assert!(!event.is_empty(), "an event name must not be empty");
        assert!(
            !event.starts_with("wsway:"),
            "event names starting with `wsway:` are wsway's own: `{event}`"
        );
        if self.0.contains_key(&event) {
            panic!("event `{event}` is registered twice");
        }
        self.0.entry(event).or_insert(Route {
            call,
            checks: Vec::new(),
            targets: Vec::new(),
            #[cfg(feature = "typescript")]
            shape: None,
        })
    }

    pub(super) fn get(&self, event: &str) -> Option<&Route<D>> {
        self.0.get(event)
    }

    pub(super) fn get_mut(&mut self, event: &str) -> Option<&mut Route<D>> {
        self.0.get_mut(event)
    }

    /// Every event, by name in order.
    #[cfg(feature = "typescript")]
    pub(super) fn sorted(&self) -> Vec<(&str, &Route<D>)> {
        let mut all: Vec<_> = self.0.iter().map(|(k, v)| (k.as_str(), v)).collect();
        all.sort_by_key(|(k, _)| *k);
        all
    }
}
