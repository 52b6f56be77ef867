//! The capped queue between `publish` (which never waits) and the
//! publisher task (which forwards to Redis), and the record of what could
//! not be forwarded, so the other nodes hear of every loss.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use event_listener::{Event, EventListener};
use wsway::{Forwarded, Retention};

/// One publish bound for Redis: its topic, its encoded frame, and what
/// to do with it.
pub(crate) struct Outgoing {
    pub(crate) topic: Arc<str>,
    pub(crate) frame: Vec<u8>,
    pub(crate) kind: Kind,
}

/// What an [`Outgoing`] asks of Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `PUBLISH` the frame.
    Plain,
    /// Number, keep and publish it, on a topic that keeps history.
    Numbered(Retention),
    /// No message: ask where the topic's history stands, in order with
    /// this node's publishes (its first subscriber just joined).
    Mark,
}

impl Outgoing {
    /// Where a topic's history stands, asked ahead of later publishes.
    pub(crate) fn mark(topic: &str) -> Outgoing {
        Outgoing {
            topic: topic.into(),
            frame: Vec::new(),
            kind: Kind::Mark,
        }
    }
}

/// At most this many distinct topics are remembered as having lost
/// messages; past it, the oldest are forgotten (their subscribers on other
/// nodes are not told). A bound on memory while Redis is away.
const MAX_GAP_TOPICS: usize = 65_536;

pub(crate) struct Outbound {
    state: Mutex<State>,
    /// Something was queued, or the queue was emptied: publisher and
    /// `stop` wait on it.
    pub(crate) changed: Event,
    capacity: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Outgoing>,
    bytes: usize,
    /// Topics on which a publish was dropped or may have been lost.
    gaps: HashSet<Arc<str>>,
    /// Publishes taken by the publisher and not yet acknowledged by Redis.
    in_flight: usize,
    /// Counters, for the application's metrics.
    dropped: u64,
}

impl Outbound {
    pub(crate) fn new(capacity: usize) -> Self {
        Outbound {
            state: Mutex::default(),
            changed: Event::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Only plain collection updates run under the lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a publish; over capacity it is dropped and its topic noted
    /// (a mark, which carries nothing, is never dropped).
    pub(crate) fn push(&self, out: Outgoing) -> Forwarded {
        let mut state = self.lock();
        let len = out.frame.len();
        let mark = out.kind == Kind::Mark;
        if state.bytes + len > self.capacity && !state.queue.is_empty() && !mark {
            state.dropped += 1;
            remember_gap(&mut state.gaps, out.topic);
            return Forwarded::Dropped;
        }
        state.bytes += len;
        state.queue.push_back(out);
        let over = state.bytes > self.capacity / 2;
        drop(state);
        self.changed.notify(1);
        if over {
            Forwarded::Backpressured
        } else {
            Forwarded::Queued
        }
    }

    /// Takes up to `max_bytes` of publishes (at least one) and the topics
    /// whose gap notes should go out first. The publisher reports back
    /// with [`sent`](Self::sent) or [`failed`](Self::failed).
    pub(crate) fn take(&self, max_bytes: usize) -> (Vec<Arc<str>>, Vec<Outgoing>) {
        let mut state = self.lock();
        let gaps: Vec<Arc<str>> = state.gaps.drain().collect();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(front) = state.queue.front() {
            if !batch.is_empty() && bytes + front.frame.len() > max_bytes {
                break;
            }
            let out = state.queue.pop_front().expect("front exists");
            bytes += out.frame.len();
            batch.push(out);
        }
        state.bytes -= bytes;
        state.in_flight = batch.len() + gaps.len();
        (gaps, batch)
    }

    /// The batch reached Redis.
    pub(crate) fn sent(&self) {
        self.lock().in_flight = 0;
        self.changed.notify(usize::MAX);
    }

    /// The batch may not have reached Redis: its topics (and the gap notes
    /// that were part of it) are remembered, so the other nodes hear of it
    /// once Redis is back. Nothing is resent: a retry could deliver twice.
    /// (Marks carry no message: the publisher answers them locally.)
    pub(crate) fn failed(&self, gaps: Vec<Arc<str>>, batch: Vec<Outgoing>) {
        let mut state = self.lock();
        state.in_flight = 0;
        let lost = batch.into_iter().filter(|o| o.kind != Kind::Mark);
        let lost: Vec<Arc<str>> = lost.map(|o| o.topic).collect();
        state.dropped += lost.len() as u64;
        for topic in gaps.into_iter().chain(lost) {
            remember_gap(&mut state.gaps, topic);
        }
    }

    /// Nothing queued, no gap note owed, nothing in flight.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        let state = self.lock();
        state.queue.is_empty() && state.gaps.is_empty() && state.in_flight == 0
    }

    /// True when there is something to send.
    pub(crate) fn has_work(&self) -> bool {
        let state = self.lock();
        !state.queue.is_empty() || !state.gaps.is_empty()
    }

    /// Bytes queued, not yet taken.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Publishes that never reached Redis since the start.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    pub(crate) fn listen(&self) -> EventListener {
        self.changed.listen()
    }
}

fn remember_gap(gaps: &mut HashSet<Arc<str>>, topic: Arc<str>) {
    if gaps.len() < MAX_GAP_TOPICS || gaps.contains(&topic) {
        gaps.insert(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(topic: &str, len: usize) -> Outgoing {
        Outgoing {
            topic: topic.into(),
            frame: vec![0; len],
            kind: Kind::Plain,
        }
    }

    #[test]
    fn the_queue_is_capped_and_drops_are_remembered_as_gaps() {
        let q = Outbound::new(100);
        assert_eq!(q.push(out("a", 40)), Forwarded::Queued);
        assert_eq!(q.push(out("a", 40)), Forwarded::Backpressured);
        assert_eq!(q.push(out("b", 40)), Forwarded::Dropped);
        assert_eq!(q.queued_bytes(), 80);
        assert_eq!(q.dropped(), 1);
        let (gaps, batch) = q.take(1000);
        assert_eq!(gaps, vec![Arc::<str>::from("b")]);
        assert_eq!(batch.len(), 2);
        assert!(!q.is_idle(), "in flight until reported");
        q.sent();
        assert!(q.is_idle());
    }

    #[test]
    fn a_failed_batch_becomes_gap_notes_not_a_resend() {
        let q = Outbound::new(1000);
        q.push(out("a", 10));
        q.push(out("b", 10));
        let (gaps, batch) = q.take(15);
        assert_eq!(
            (gaps.len(), batch.len()),
            (0, 1),
            "a batch stops at max_bytes"
        );
        q.failed(gaps, batch);
        assert_eq!(q.dropped(), 1);
        let (gaps, batch) = q.take(1000);
        assert_eq!(gaps, vec![Arc::<str>::from("a")]);
        assert_eq!(batch.len(), 1);
        assert_eq!(&*batch[0].topic, "b");
    }

    #[test]
    fn a_mark_is_never_dropped_nor_counted_as_lost() {
        let q = Outbound::new(10);
        assert_ne!(q.push(out("a", 10)), Forwarded::Dropped);
        assert_eq!(q.push(out("a", 1)), Forwarded::Dropped, "full");
        assert_ne!(q.push(Outgoing::mark("a")), Forwarded::Dropped);
        let (gaps, batch) = q.take(1000);
        assert_eq!(batch.len(), 2);
        q.failed(gaps, batch);
        assert_eq!(q.dropped(), 2, "the publishes were lost, not the mark");
    }

    #[test]
    fn one_message_larger_than_the_queue_still_goes_when_it_is_empty() {
        let q = Outbound::new(10);
        assert_eq!(q.push(out("a", 50)), Forwarded::Backpressured);
        assert_eq!(q.push(out("a", 1)), Forwarded::Dropped);
    }
}
