//! Resuming on topics that keep history: numbering publishes in process,
//! taking the store's numbered messages in order, replaying what a
//! subscriber missed, and filling this node's window from the store when
//! it cannot tell.
//!
//! Everything that touches a topic's ring runs under its lock, and a
//! subscriber that is behind on a topic is skipped by live delivery there
//! until it has caught up: replayed and live messages never interleave,
//! none is delivered twice, and a loss is always told as a gap.

use std::sync::Arc;

use crate::delivery::history::{
    self, Admit, LeftOut, Position, Replay, Retention, Ring, StoredHistory, StoredMessage,
    positioned,
};
use crate::delivery::outbox::{Behind, CatchUp, Shared};
use crate::message::Message;
use crate::runtime::Rt;
use crate::topics::pubsub::{LocalTopics, Published, Topics, TopicsInner};

/// Whom a message at `at` leaves out (`except`), and what it gets in its
/// place: the sender of an event-layer push gets its position.
fn left_out(topic: &str, at: Position, msg: &Message, except: Option<u64>) -> Option<LeftOut> {
    let evented = msg.as_text().is_some_and(|t| t.starts_with("{\"event\":"));
    except.map(|conn| LeftOut {
        conn,
        note: evented.then(|| history::position_note(topic, at).into_codec()),
    })
}

impl LocalTopics {
    /// Publishes on a topic that keeps history in process: gives the
    /// message the next position (an event-layer push carries it as
    /// `"pos"`), keeps it, and delivers it, all under the topic's lock, so
    /// positions and delivery order agree and a resuming subscriber misses
    /// nothing.
    pub(crate) fn record(
        &self,
        topic: &str,
        retention: Retention,
        msg: Message,
        except: Option<u64>,
    ) -> Published {
        let ring = self.history.ring(topic, retention);
        let mut ring = history::lock(&ring);
        let position = ring.next_position();
        let mut report = self.append(&mut ring, topic, position, msg, except);
        report.position = Some(position);
        report
    }

    /// Keeps `msg` at the ring's next position `at` and delivers it.
    fn append(
        &self,
        ring: &mut Ring,
        topic: &str,
        at: Position,
        msg: Message,
        except: Option<u64>,
    ) -> Published {
        let left_out = left_out(topic, at, &msg, except);
        let note = left_out.as_ref().and_then(|l| l.note.clone());
        let frame = positioned(msg, topic, at).into_codec();
        ring.record(frame.clone(), left_out);
        self.deliver_frame(topic, frame, except, Some(at), note)
    }

    /// This node missed what the store numbered before `at`: every
    /// subscriber that was in step stops at the window's last position
    /// (to catch up from the store), and the window starts again at `at`.
    fn skipped(&self, ring: &mut Ring, topic: &str, at: Position) {
        if let Some(last) = ring.last() {
            self.each(topic, |name, sub| {
                if sub.behind_on(name).is_none() {
                    sub.set_behind(name, Some(last));
                }
            });
        }
        ring.restart(at.epoch, at.offset);
    }

    /// The history the window held is gone (another epoch, or the store
    /// could not be asked): every subscriber of `topic` is told of a gap
    /// (once), and none waits to catch up there.
    fn lost(&self, ring: &mut Ring, topic: &str) {
        let tell = !std::mem::replace(&mut ring.told, true);
        self.each(topic, |name, sub| {
            sub.set_behind(name, None);
            if tell {
                sub.push_gap(name);
            }
        });
    }

    /// Takes what the store returned into the window: in front of it what
    /// it lacked, after it (delivered as live) what it had not received
    /// yet. Another epoch replaces it, and every subscriber is told of the
    /// loss.
    fn merge(&self, ring: &mut Ring, topic: &str, stored: StoredHistory) {
        let epoch = stored.epoch;
        // Kept frames carry their position, as live ones do.
        let entries = |messages: Vec<StoredMessage>| {
            let frame = |offset, msg| positioned(msg, topic, Position { epoch, offset });
            messages
                .into_iter()
                .map(|m| {
                    let at = Position {
                        epoch,
                        offset: m.offset,
                    };
                    let left_out = left_out(topic, at, &m.message, m.except);
                    (
                        m.offset,
                        m.age,
                        frame(m.offset, m.message).into_codec(),
                        left_out,
                    )
                })
                .collect()
        };
        if ring.epoch() != Some(epoch) {
            if ring.epoch().is_some() {
                self.lost(ring, topic);
            }
            ring.restart(epoch, stored.last + 1);
            ring.prepend(entries(stored.messages));
            return;
        }
        let next = ring.last().map_or(1, |l| l.offset + 1);
        let (older, newer): (Vec<_>, Vec<_>) =
            stored.messages.into_iter().partition(|m| m.offset < next);
        ring.prepend(entries(older));
        for m in newer {
            let at = Position {
                epoch,
                offset: m.offset,
            };
            match ring.admit(at) {
                Admit::Next => {}
                Admit::Skipped => self.skipped(ring, topic, at),
                Admit::Duplicate | Admit::NewEpoch | Admit::First => continue,
            }
            self.append(ring, topic, at, m.message, m.except);
        }
        if ring.last().is_some_and(|l| l.offset < stored.last) {
            // The newest are gone from the store already (expired): the
            // subscribers in step learn it as they catch up.
            let at = Position {
                epoch,
                offset: stored.last + 1,
            };
            self.skipped(ring, topic, at);
        }
    }
}

impl TopicsInner {
    /// A message the store numbered `at`, from the backplane.
    pub(crate) fn deliver_at(
        self: &Arc<Self>,
        rt: &Rt,
        topic: &str,
        at: Position,
        msg: Message,
        except: Option<u64>,
    ) -> Published {
        let local = &self.local;
        let Some(retention) = local.history.retention(topic) else {
            return local.deliver(topic, positioned(msg, topic, at), except);
        };
        let ring = local.history.ring(topic, retention);
        let mut ring = history::lock(&ring);
        match ring.admit(at) {
            Admit::Next => {}
            Admit::Duplicate => return Published::default(),
            Admit::First => ring.restart(at.epoch, at.offset),
            Admit::NewEpoch => {
                local.lost(&mut ring, topic);
                ring.restart(at.epoch, at.offset);
            }
            Admit::Skipped => {
                let from = ring.last().map_or(0, |l| l.offset);
                local.skipped(&mut ring, topic, at);
                ring.recovering = true;
                self.fetch(&mut ring, rt, topic, from);
            }
        }
        let mut report = local.append(&mut ring, topic, at, msg, except);
        report.position = Some(at);
        report
    }

    /// Where `topic` stood in the store when this node's first subscriber
    /// joined (see [`Node::listening_from`](crate::Node::listening_from)).
    pub(crate) fn listening_from(self: &Arc<Self>, rt: &Rt, topic: &str, last: Option<Position>) {
        let local = &self.local;
        let Some(retention) = local.history.retention(topic) else {
            return;
        };
        let ring = local.history.ring(topic, retention);
        let mut ring = history::lock(&ring);
        if let Some(last) = last
            && ring.epoch().is_none()
        {
            ring.restart(last.epoch, last.offset + 1);
            // What was published before the node listened (its own first
            // publishes, say) never comes live: it is fetched, and
            // delivered in order.
            ring.recovering = true;
            self.fetch(&mut ring, rt, topic, last.offset);
        }
        local.each(topic, |name, sub| {
            if sub.started(name, last) && last.is_none() {
                sub.push_gap(name);
            }
        });
    }

    /// This node may have missed messages on `topic` (see
    /// [`Node::recover`](crate::Node::recover)).
    pub(crate) fn recover(self: &Arc<Self>, rt: &Rt, topic: &str) -> usize {
        let local = &self.local;
        let retention = local.history.retention(topic);
        let Some(retention) = retention.filter(|_| local.history.is_stored()) else {
            return local.gap(topic);
        };
        let ring = local.history.ring(topic, retention);
        let mut ring = history::lock(&ring);
        // A window that saw nothing yet owes nobody anything.
        if let Some(last) = ring.last() {
            ring.recovering = true;
            self.fetch(&mut ring, rt, topic, last.offset);
        }
        0
    }

    /// Queues what `sub` missed on `topic` since `since`, under the
    /// topic's lock. When its queue fills first, it stays behind at the
    /// last message it took (and goes on once drained); when history no
    /// longer holds the gap, it is told of one; when a window cannot tell,
    /// it waits for the store.
    fn replay(
        self: &Arc<Self>,
        ring: &mut Ring,
        topic: &Arc<str>,
        sub: &Arc<Shared>,
        since: Position,
        authoritative: bool,
        rt: &Rt,
    ) {
        match ring.replay(since, authoritative) {
            Replay::Missed(frames) => {
                for replayed in frames {
                    let offset = replayed.offset;
                    // A replay leaves out whom the live delivery left out.
                    let Some(frame) = replayed.for_conn(sub.id) else {
                        continue;
                    };
                    if !sub.push(frame, true).is_accepted() {
                        let last = Position {
                            offset: offset - 1,
                            ..since
                        };
                        sub.set_behind(topic, Some(last));
                        return;
                    }
                }
            }
            Replay::Lost => {
                sub.push_gap(topic);
            }
            Replay::Unknown => {
                sub.await_store(topic, since);
                self.fetch(ring, rt, topic, since.offset);
            }
        }
    }

    /// Asks the store for what follows `after` on `topic`, unless a fetch
    /// is already under way (its waiters are settled when it ends, and one
    /// that needed older asks again).
    fn fetch(self: &Arc<Self>, ring: &mut Ring, rt: &Rt, topic: &str, after: u64) {
        if ring.fetching.is_some() {
            return;
        }
        ring.fetching = Some(after);
        let fetched = self
            .backplane()
            .fetch_history(topic, after, ring.retention());
        let inner = Arc::downgrade(self);
        let topic: Arc<str> = topic.into();
        let runtime = rt.clone();
        rt.spawn(Box::pin(async move {
            let stored = fetched.await;
            if let Some(inner) = inner.upgrade() {
                inner.fetched(&runtime, &topic, after, stored);
            }
        }));
    }

    fn fetched(
        self: &Arc<Self>,
        rt: &Rt,
        topic: &str,
        after: u64,
        stored: Result<StoredHistory, crate::delivery::history::HistoryError>,
    ) {
        let local = &self.local;
        let Some(retention) = local.history.retention(topic) else {
            return;
        };
        if local.subscriber_count(topic) == 0 {
            local.history.forget(topic);
            return;
        }
        let ring = local.history.ring(topic, retention);
        let mut ring = history::lock(&ring);
        ring.fetching = None;
        let recovering = std::mem::take(&mut ring.recovering);
        if let Ok(stored) = &stored
            && after > 0
            && stored.last > 0
            && ring.epoch().is_some_and(|e| e != stored.epoch)
        {
            // The store started another epoch (it came back empty) and
            // has numbered publishes in it since: asked for what followed
            // an offset of the old epoch, it returned none of them. The
            // loss is told, and the new epoch is fetched from its start,
            // so what was published in it is delivered, in order.
            local.lost(&mut ring, topic);
            ring.restart(stored.epoch, 1);
            ring.recovering = true;
            self.fetch(&mut ring, rt, topic, 0);
            return;
        }
        match stored {
            Ok(stored) => local.merge(&mut ring, topic, stored),
            // The store did not answer: whoever waited for it (everyone,
            // when this node may have missed messages) has lost what it
            // missed, and is told so, and goes on from here.
            Err(_) if recovering => local.lost(&mut ring, topic),
            Err(_) => local.each(topic, |name, sub| {
                if sub.behind_on(name).is_some() {
                    sub.set_behind(name, None);
                    sub.push_gap(name);
                }
            }),
        }
        local.each(topic, |name, sub| {
            sub.store_answered(name, after);
        });
    }
}

impl Topics {
    /// Subscribes; on a topic that keeps history, first replays what the
    /// subscriber missed since `since()` (asked only there), or tells it of
    /// a gap when that is no longer in history, under the topic's lock:
    /// nothing published meanwhile is missed or delivered twice.
    pub(crate) fn subscribe_from(
        &self,
        topic: &Arc<str>,
        sub: &Arc<Shared>,
        since: impl FnOnce() -> Option<Position>,
        rt: &Rt,
    ) {
        let local = &self.inner.local;
        let Some(retention) = local.history.retention(topic) else {
            return self.subscribe(topic, sub);
        };
        let ring = local.history.ring(topic, retention);
        let mut ring = history::lock(&ring);
        let stored = local.history.is_stored();
        match since() {
            Some(since) => self.inner.replay(&mut ring, topic, sub, since, !stored, rt),
            // Where the topic stands is not known yet (the node just
            // started listening): what is published from now on is held
            // back until it is (see `Node::listening_from`).
            None if stored && ring.epoch().is_none() => sub.await_start(topic),
            None => {}
        }
        if stored && local.subscriber_count(topic) == 0 {
            // The backplane asks where the topic stands before this
            // subscriber is visible: a publish racing the subscribe (made
            // once the count shows it) is ordered after that question.
            self.backplane().subscribing(topic);
        }
        let first = local.add(topic, sub);
        drop(ring);
        if first {
            self.backplane().subscribed(topic);
        }
    }

    /// Catches a subscriber that fell behind up from history, as far as
    /// its queue takes; under the topic's lock, so once it has caught up
    /// the next live message reaches it in order.
    pub(crate) fn catch_up(&self, sub: &Arc<Shared>, behind: Behind, rt: &Rt) {
        let Behind { topic, last, from } = behind;
        let local = &self.inner.local;
        let Some(retention) = local.history.retention(&topic) else {
            sub.set_behind(&topic, None);
            return;
        };
        let ring = local.history.ring(&topic, retention);
        let mut ring = history::lock(&ring);
        sub.set_behind(&topic, None);
        let authoritative = !local.history.is_stored() || from == CatchUp::Fetched;
        self.inner
            .replay(&mut ring, &topic, sub, last, authoritative, rt);
    }
}

#[cfg(test)]
mod tests {
    //! The window logic against a store in memory: no Redis, no sockets.
    //! The test plays the backplane's part, choosing which numbered
    //! messages reach the node live.

    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use super::*;
    use crate::delivery::history::StoredMessage;
    use crate::runtime::{BoxSleep, BoxTask, Runtime};
    use crate::topics::pubsub::{Backplane, Node};

    /// Spawned tasks wait until [`Tasks::run`].
    #[derive(Clone, Default)]
    struct Tasks(Arc<Mutex<Vec<BoxTask>>>);

    impl Runtime for Tasks {
        fn spawn(&self, task: BoxTask) {
            self.0.lock().unwrap().push(task);
        }
        fn sleep(&self, _: Duration) -> BoxSleep {
            Box::pin(std::future::pending())
        }
    }

    impl Tasks {
        /// Polls every task until none is left (the store answers at once).
        fn run(&self) {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            loop {
                let tasks = std::mem::take(&mut *self.0.lock().unwrap());
                if tasks.is_empty() {
                    return;
                }
                for mut task in tasks {
                    assert!(task.as_mut().poll(&mut cx) == Poll::Ready(()));
                }
            }
        }
    }

    /// A store that numbers publishes in one epoch and answers fetches.
    #[derive(Default)]
    struct Store {
        epoch: Mutex<u64>,
        log: Mutex<Vec<Message>>,
        node: Mutex<Option<Node>>,
    }

    impl Backplane for Arc<Store> {
        fn publish(&self, _: &LocalTopics, _: &str, msg: Message, _: Option<u64>) -> Published {
            self.log.lock().unwrap().push(msg);
            Published::default()
        }
        fn stores_history(&self) -> bool {
            true
        }
        fn fetch_history(
            &self,
            _: &str,
            after: u64,
            _: Retention,
        ) -> crate::delivery::history::HistoryFuture {
            let log = self.log.lock().unwrap();
            let messages = (after as usize..log.len())
                .map(|i| StoredMessage {
                    offset: i as u64 + 1,
                    age: Duration::ZERO,
                    message: log[i].clone(),
                    except: None,
                })
                .collect();
            let stored = StoredHistory {
                epoch: *self.epoch.lock().unwrap(),
                last: log.len() as u64,
                messages,
            };
            Box::pin(async move { Ok(stored) })
        }
        fn start(&self, node: Node) {
            *self.node.lock().unwrap() = Some(node);
        }
    }

    impl Store {
        fn at(&self, offset: u64) -> Position {
            Position {
                epoch: *self.epoch.lock().unwrap(),
                offset,
            }
        }

        /// Hands the message at `offset` to the node, as if it came live.
        fn deliver(&self, offset: u64) {
            let msg = self.log.lock().unwrap()[offset as usize - 1].clone();
            let node = self.node.lock().unwrap().clone().unwrap();
            node.deliver_at("room", self.at(offset), msg, None);
        }

        fn send(&self, topics: &Topics, n: u64) {
            topics.publish("room", Message::event("m", &n).unwrap());
        }
    }

    /// Drives `sub` as its connection would (catching up whenever it
    /// wants to), and returns what it received: the data of each push, or
    /// -1 for a gap.
    fn received(topics: &Topics, rt: &Rt, sub: &Arc<Shared>) -> Vec<i64> {
        let mut got = Vec::new();
        loop {
            let mut batch = VecDeque::new();
            sub.take_queue(&mut batch);
            sub.flushed();
            let idle = batch.is_empty();
            for frame in batch {
                let v: serde_json::Value = serde_json::from_slice(&frame.payload).unwrap();
                got.push(v["data"].as_i64().unwrap());
            }
            let (gap, catch_up) = {
                let mut out = sub.lock();
                (out.take_gap(), out.wants_catch_up())
            };
            if gap.is_some() {
                got.push(-1);
            } else if catch_up {
                for behind in sub.behind() {
                    topics.catch_up(sub, behind, rt);
                }
            } else if idle && sub.is_idle_queue() {
                // (What waited behind a reported gap was just released.)
                return got;
            }
        }
    }

    #[test]
    fn a_window_takes_the_store_in_order_and_asks_it_for_what_it_lacks() {
        let store = Arc::new(Store::default());
        *store.epoch.lock().unwrap() = 0xe1;
        let topics = Topics::default();
        topics.keep_history("room", Retention::messages(100));
        topics.set_backplane(Arc::new(store.clone()));
        let tasks = Tasks::default();
        let rt: Rt = Arc::new(tasks.clone());
        topics.start(
            rt.clone(),
            Arc::new(crate::connection::registry::Registry::default()),
        );
        let topic: Arc<str> = "room".into();
        let sub = |id| Arc::new(Shared::new(id, 1 << 20, false));

        // Five published before this node listened.
        for n in 1..=5 {
            store.send(&topics, n);
        }
        // A joins without a position: held back until the node learns
        // where the topic stands (5), then nothing is owed.
        let a = sub(1);
        topics.subscribe_from(&topic, &a, || None, &rt);
        store.deliver(5);
        assert_eq!(received(&topics, &rt, &a), Vec::<i64>::new(), "waits");
        let node = store.node.lock().unwrap().clone().unwrap();
        node.listening_from("room", Some(store.at(4)));
        tasks.run();
        assert_eq!(received(&topics, &rt, &a), [5], "from where it joined");

        // 6 comes live, 7 never does, 8 does: A is held at 6 and catches
        // up from the store, in order.
        for n in 6..=8 {
            store.send(&topics, n);
        }
        store.deliver(6);
        store.deliver(8);
        store.deliver(8);
        tasks.run();
        assert_eq!(received(&topics, &rt, &a), [6, 7, 8], "in order, once");

        // B resumes from 2, before the window: fetched, then live.
        let b = sub(2);
        topics.subscribe_from(&topic, &b, || Some(store.at(2)), &rt);
        tasks.run();
        store.send(&topics, 9);
        store.deliver(9);
        assert_eq!(received(&topics, &rt, &b), [3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(received(&topics, &rt, &a), [9]);

        // C comes from another epoch: told of a gap, then live.
        let c = sub(3);
        let stale = Position {
            epoch: 0xe0,
            offset: 3,
        };
        topics.subscribe_from(&topic, &c, || Some(stale), &rt);
        tasks.run();
        assert_eq!(received(&topics, &rt, &c), [-1]);

        // The store restarts empty: a new epoch, and everyone is told once.
        *store.epoch.lock().unwrap() = 0xe2;
        store.log.lock().unwrap().clear();
        store.send(&topics, 10);
        store.deliver(1);
        for s in [&a, &b, &c] {
            // The notice first: what followed the hole waits behind it.
            assert_eq!(received(&topics, &rt, s), [-1, 10]);
        }
    }
}
