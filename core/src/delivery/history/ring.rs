//! One topic's kept messages on this node.
//!
//! In process the ring *is* the history: it numbers publishes itself, and
//! what it no longer holds is lost. With a store behind the backplane
//! (Redis), the store numbers publishes and the ring is this node's window
//! onto it: filled in offset order from what the node receives, and from
//! the store when a subscriber needs more than the window holds.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::position::{Position, Retention};

pub(crate) struct Ring {
    /// None for a window that has not seen a position yet.
    epoch: Option<u64>,
    /// The offset the next message gets (in process) or is expected at.
    next: u64,
    retention: Retention,
    /// Contiguous offsets, oldest first, ending at `next - 1`.
    entries: VecDeque<Entry>,
    /// A fetch from the store is under way, for what follows this offset.
    pub(crate) fetching: Option<u64>,
    /// This node may have missed messages: if the store cannot be asked,
    /// every subscriber is told of a gap.
    pub(crate) recovering: bool,
    /// Every subscriber was told of a gap since the last message: a new
    /// epoch found next needs no second telling.
    pub(crate) told: bool,
}

struct Entry {
    offset: u64,
    at: Instant,
    frame: crate::protocol::Outgoing,
    left_out: Option<LeftOut>,
}

/// The connection a message was published leaving out, and what it gets
/// in its place (an event-layer push's position), so that a replay from
/// the window leaves it out too.
#[derive(Clone)]
pub(crate) struct LeftOut {
    pub(crate) conn: u64,
    pub(crate) note: Option<crate::protocol::Outgoing>,
}

/// One message of a [`Replay::Missed`].
pub(crate) struct Replayed {
    pub(crate) offset: u64,
    pub(crate) frame: crate::protocol::Outgoing,
    pub(crate) left_out: Option<LeftOut>,
}

impl Replayed {
    /// What `conn` gets of it: the message, the note in its place, or
    /// nothing.
    pub(crate) fn for_conn(self, conn: u64) -> Option<crate::protocol::Outgoing> {
        match self.left_out {
            Some(l) if l.conn == conn => l.note,
            _ => Some(self.frame),
        }
    }
}

/// A message from the store for [`Ring::prepend`]: its offset, its age,
/// its frame, and whom it leaves out.
pub(crate) type Older = (u64, Duration, crate::protocol::Outgoing, Option<LeftOut>);

/// What a resuming subscriber gets.
pub(crate) enum Replay {
    /// The messages after its position with their offsets, oldest first
    /// (maybe none).
    Missed(Vec<Replayed>),
    /// Its position is no longer in history.
    Lost,
    /// A window cannot tell: the store must be asked.
    Unknown,
}

/// How a message positioned by the store fits the window.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// The offset expected next.
    Next,
    /// Already held (or older): a duplicate.
    Duplicate,
    /// Offsets before it never reached this node.
    Skipped,
    /// Another epoch: the history before it is gone.
    NewEpoch,
    /// The window's first position.
    First,
}

impl Ring {
    /// A ring that numbers its own messages, from 1 in a fresh epoch.
    pub(crate) fn numbering(retention: Retention, epoch: u64) -> Ring {
        Ring {
            epoch: Some(epoch),
            ..Ring::window(retention)
        }
    }

    /// A window onto a store's history, empty until it sees a position.
    pub(crate) fn window(retention: Retention) -> Ring {
        Ring {
            epoch: None,
            next: 1,
            retention,
            entries: VecDeque::new(),
            fetching: None,
            recovering: false,
            told: false,
        }
    }

    /// The position the next message gets (a numbering ring's epoch is
    /// always set).
    pub(crate) fn next_position(&self) -> Position {
        Position {
            epoch: self.epoch.unwrap_or_default(),
            offset: self.next,
        }
    }

    /// The last position this ring has seen, if any epoch.
    pub(crate) fn last(&self) -> Option<Position> {
        Some(Position {
            epoch: self.epoch?,
            offset: self.next - 1,
        })
    }

    pub(crate) fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    pub(crate) fn retention(&self) -> Retention {
        self.retention
    }

    fn oldest(&self) -> u64 {
        self.entries.front().map_or(self.next, |e| e.offset)
    }

    /// Keeps `frame` as the message at the next position.
    pub(crate) fn record(&mut self, frame: crate::protocol::Outgoing, left_out: Option<LeftOut>) {
        self.told = false;
        let now = Instant::now();
        self.entries.push_back(Entry {
            offset: self.next,
            at: now,
            frame,
            left_out,
        });
        self.next += 1;
        self.trim(now);
    }

    /// How a message at `at` fits this window.
    pub(crate) fn admit(&self, at: Position) -> Admit {
        match self.epoch {
            None => Admit::First,
            Some(e) if e != at.epoch => Admit::NewEpoch,
            Some(_) if at.offset < self.next => Admit::Duplicate,
            Some(_) if at.offset == self.next => Admit::Next,
            Some(_) => Admit::Skipped,
        }
    }

    /// Starts over in `epoch`, expecting `next`: what was held is dropped.
    pub(crate) fn restart(&mut self, epoch: u64, next: u64) {
        self.epoch = Some(epoch);
        self.next = next;
        self.entries.clear();
    }

    /// Puts older messages from the store in front of the window, when they
    /// join it without a hole (`older` is oldest first, each with its age;
    /// what the window holds already is skipped).
    pub(crate) fn prepend(&mut self, mut older: Vec<Older>) {
        let oldest = self.oldest();
        older.retain(|(o, ..)| *o < oldest);
        let joins = older.last().is_some_and(|(o, ..)| o + 1 == self.oldest());
        if !joins {
            return;
        }
        let now = Instant::now();
        for (offset, age, frame, left_out) in older.into_iter().rev() {
            let at = now.checked_sub(age).unwrap_or(now);
            self.entries.push_front(Entry {
                offset,
                at,
                frame,
                left_out,
            });
        }
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while self.entries.len() > self.retention.message_limit()
            || self
                .entries
                .front()
                .is_some_and(|e| now.duration_since(e.at) > self.retention.age_limit())
        {
            self.entries.pop_front();
        }
    }

    /// Nothing held is young enough to keep, and nothing is being fetched.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.fetching.is_none()
            && self
                .entries
                .back()
                .is_none_or(|e| now.duration_since(e.at) > self.retention.age_limit())
    }

    /// What a reader outside any connection asked for: the kept messages
    /// after `since` (all of them without), and whether that is all that
    /// followed `since` (false when some were trimmed, or `since` is of
    /// another epoch or ahead of this one: then it is all that is kept).
    pub(crate) fn read(
        &mut self,
        since: Option<Position>,
    ) -> (Vec<(u64, crate::protocol::Outgoing)>, bool) {
        let all = |ring: &mut Ring| {
            ring.trim(Instant::now());
            (ring.entries.iter())
                .map(|e| (e.offset, e.frame.clone()))
                .collect()
        };
        let Some(since) = since else {
            return (all(self), true);
        };
        match self.replay(since, true) {
            Replay::Missed(v) => (v.into_iter().map(|r| (r.offset, r.frame)).collect(), true),
            Replay::Lost | Replay::Unknown => (all(self), false),
        }
    }

    /// What a subscriber that was at `since` missed. When the ring is not
    /// `authoritative` (a window whose store was not asked yet) and cannot
    /// answer, the answer is [`Replay::Unknown`].
    pub(crate) fn replay(&mut self, since: Position, authoritative: bool) -> Replay {
        self.trim(Instant::now());
        // In this epoch, not ahead of it, and nothing missing between.
        let held = self.epoch == Some(since.epoch)
            && since.offset < self.next
            && since.offset.saturating_add(1) >= self.oldest();
        if held {
            Replay::Missed(
                self.entries
                    .iter()
                    .filter(|e| e.offset > since.offset)
                    .map(|e| Replayed {
                        offset: e.offset,
                        frame: e.frame.clone(),
                        left_out: e.left_out.clone(),
                    })
                    .collect(),
            )
        } else if authoritative {
            Replay::Lost
        } else {
            Replay::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> crate::protocol::Outgoing {
        crate::protocol::Outgoing::text(bytes::Bytes::copy_from_slice(s.as_bytes()))
    }

    fn texts(r: Replay) -> Option<Vec<String>> {
        match r {
            Replay::Missed(v) => Some(
                v.iter()
                    .map(|m| std::str::from_utf8(&m.frame.payload).unwrap().to_owned())
                    .collect(),
            ),
            Replay::Lost | Replay::Unknown => None,
        }
    }

    #[test]
    fn a_replay_leaves_out_whom_the_publish_left_out() {
        let mut r = Ring::numbering(Retention::messages(3), 0xab);
        let from = r.next_position();
        let note = text("your position");
        let left_out = LeftOut {
            conn: 7,
            note: Some(note.clone()),
        };
        r.record(text("mine"), Some(left_out));
        r.record(text("theirs"), None);
        let since = Position {
            offset: from.offset - 1,
            ..from
        };
        let for_conn = |r: &mut Ring, conn| -> Vec<String> {
            let Replay::Missed(v) = r.replay(since, true) else {
                panic!("held")
            };
            v.into_iter()
                .filter_map(|m| m.for_conn(conn))
                .map(|m| std::str::from_utf8(&m.payload).unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            for_conn(&mut r, 7),
            ["your position", "theirs"],
            "the sender"
        );
        assert_eq!(for_conn(&mut r, 8), ["mine", "theirs"], "another");
    }

    #[test]
    fn a_numbering_ring_replays_what_it_holds_and_loses_the_rest() {
        let mut r = Ring::numbering(Retention::messages(3), 0xab);
        let start = r.next_position();
        assert_eq!(start.offset, 1);
        for m in ["a", "b", "c", "d"] {
            r.record(text(m), None);
        }
        let at = |offset| Position {
            epoch: start.epoch,
            offset,
        };
        assert_eq!(
            texts(r.replay(at(2), true)),
            Some(vec!["c".into(), "d".into()])
        );
        assert_eq!(texts(r.replay(at(4), true)), Some(vec![]), "up to date");
        assert_eq!(
            texts(r.replay(at(1), true)),
            Some(vec!["b".into(), "c".into(), "d".into()])
        );
        assert!(matches!(r.replay(at(0), true), Replay::Lost), "a trimmed");
        assert!(matches!(r.replay(at(5), true), Replay::Lost), "ahead");
        let other = Position {
            epoch: 0xcd,
            offset: 3,
        };
        assert!(matches!(r.replay(other, true), Replay::Lost), "epoch");
    }

    #[test]
    fn a_window_admits_in_order_and_asks_the_store_when_it_cannot_tell() {
        let mut w = Ring::window(Retention::messages(10));
        let at = |epoch, offset| Position { epoch, offset };
        assert!(matches!(w.replay(at(7, 3), false), Replay::Unknown));
        assert_eq!(w.admit(at(7, 5)), Admit::First);
        w.restart(7, 5);
        w.record(text("e"), None);
        assert_eq!(w.admit(at(7, 6)), Admit::Next);
        assert_eq!(w.admit(at(7, 5)), Admit::Duplicate);
        assert_eq!(w.admit(at(7, 8)), Admit::Skipped);
        assert_eq!(w.admit(at(9, 1)), Admit::NewEpoch);

        // Older than the window: the store is asked, and what it returns
        // goes in front when it joins without a hole.
        assert!(matches!(w.replay(at(7, 2), false), Replay::Unknown));
        let z = Duration::ZERO;
        w.prepend(vec![(2, z, text("b"), None), (3, z, text("c"), None)]);
        assert_eq!(w.last(), Some(at(7, 5)), "a hole (4 is missing): kept out");
        w.prepend(vec![(3, z, text("c"), None), (4, z, text("d"), None)]);
        assert_eq!(
            texts(w.replay(at(7, 2), true)),
            Some(vec!["c".into(), "d".into(), "e".into()])
        );
        assert!(matches!(w.replay(at(7, 1), true), Replay::Lost));
    }
}
