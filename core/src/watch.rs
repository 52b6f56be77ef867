//! What this process counts while an admin page watches it
//! ([`App::admin`](crate::App::admin)): messages in and out, closes by
//! code, publishes by topic. Nothing is counted while nobody watches: the
//! hot paths test one flag.
//!
//! A process is watched while one of its own admin streams is open, or
//! while its backplane says a page watches another node
//! ([`Node::set_watched_elsewhere`](crate::Node::set_watched_elsewhere)).
//! The counters are the process's: two servers in one process share them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Counting on: the OR of the two below, kept in one flag for the hot path.
static WATCHED: AtomicBool = AtomicBool::new(false);
/// Admin streams open in this process.
static HERE: AtomicUsize = AtomicUsize::new(0);
/// A page watches another node of the same backplane.
static ELSEWHERE: AtomicBool = AtomicBool::new(false);

static RECEIVED: AtomicU64 = AtomicU64::new(0);
static SENT: AtomicU64 = AtomicU64::new(0);
static CLOSES: Mutex<BTreeMap<u16, u64>> = Mutex::new(BTreeMap::new());

/// Whether the counters count.
#[inline]
pub(crate) fn counting() -> bool {
    WATCHED.load(Ordering::Relaxed)
}

fn update() {
    let on = HERE.load(Ordering::Acquire) > 0 || ELSEWHERE.load(Ordering::Acquire);
    WATCHED.store(on, Ordering::Release);
}

/// An open admin stream: the process is watched until it is dropped.
pub(crate) struct Watcher(());

impl Watcher {
    pub(crate) fn start() -> Watcher {
        HERE.fetch_add(1, Ordering::AcqRel);
        update();
        Watcher(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        HERE.fetch_sub(1, Ordering::AcqRel);
        update();
    }
}

/// True while an admin stream of this process is open.
pub(crate) fn watched_here() -> bool {
    HERE.load(Ordering::Acquire) > 0
}

/// Whether a page watches another node (the backplane tells).
pub(crate) fn set_elsewhere(on: bool) {
    ELSEWHERE.store(on, Ordering::Release);
    update();
}

/// `n` data messages arrived.
#[inline]
pub(crate) fn received(n: u64) {
    if counting() {
        RECEIVED.fetch_add(n, Ordering::Relaxed);
    }
}

/// `n` data messages were handed to the socket.
#[inline]
pub(crate) fn sent(n: u64) {
    if counting() {
        SENT.fetch_add(n, Ordering::Relaxed);
    }
}

/// A connection closed with `code`.
pub(crate) fn closed(code: u16) {
    if counting() {
        *CLOSES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code)
            .or_default() += 1;
    }
}

/// Messages received and sent, and closes by code, since the process
/// started (counted only while watched).
pub(crate) fn totals() -> (u64, u64, BTreeMap<u16, u64>) {
    let closes = CLOSES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (
        RECEIVED.load(Ordering::Relaxed),
        SENT.load(Ordering::Relaxed),
        closes,
    )
}

/// Publishes by topic on this node while watched.
#[derive(Default)]
pub(crate) struct Published(Mutex<HashMap<Arc<str>, u64>>);

impl Published {
    /// One publish on `topic`, when counting.
    #[inline]
    pub(crate) fn count(&self, topic: &str) {
        if !counting() {
            return;
        }
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match counts.get_mut(topic) {
            Some(n) => *n += 1,
            None => {
                counts.insert(topic.into(), 1);
            }
        }
    }

    /// The count of each topic, busiest first, at most `most`.
    pub(crate) fn busiest(&self, most: usize) -> Vec<(String, u64)> {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<(String, u64)> =
            (counts.iter()).map(|(t, n)| (t.to_string(), *n)).collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(most);
        all
    }
}
