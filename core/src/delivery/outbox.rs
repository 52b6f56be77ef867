//! A connection's outgoing side, shared by its driver, its [`Ws`], its
//! [`Handle`]s, the topics it subscribes to and its timers: the queue of
//! messages not yet written, the backpressure count, a requested close,
//! and where it stands on topics it fell behind on.
//!
//! Sends are queued here under a short lock and the driver writes them in
//! batches; that is what makes a [`Handle`] usable from any task on any
//! runtime.
//!
//! On a socket others may write to (plain TCP on tokio and smol, see
//! [`TryWrite`]), a send from another task to a connection whose driver
//! is not writing and has nothing queued is written by the sender, and a
//! publish from a connection's task at the end of that task's poll (see
//! `cork`): no wake, no poll of the subscriber's task. "The driver holds
//! the wire" (`wire`) is the one rule that keeps the two from
//! interleaving: others write only while it does not, and what the socket
//! did not take of their frame (`front`) is the driver's to finish first.
//!
//! [`Ws`]: crate::Ws
//! [`Handle`]: crate::Handle

use std::any::Any;
use std::cell::OnceCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use atomic_waker::AtomicWaker;
use bytes::Bytes;

use crate::delivery::deferred::Deferred;
use crate::delivery::history::Position;
use crate::error::{Error, ErrorKind, check_close, check_control};
use crate::io::TryWrite;
use crate::message::CloseCode;

/// What happened to a message given to [`Ws::send`](crate::Ws::send) or [`Handle::send`](crate::Handle::send).
///
/// Modelled on Bun's `ServerWebSocket.send`: the caller learns at once whether
/// the peer is keeping up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendStatus {
    /// Accepted and queued; `buffered` bytes (this message included) now wait
    /// to be written.
    Queued {
        /// Bytes waiting to be written, this message included.
        buffered: usize,
    },
    /// Accepted and queued, but the buffered amount is now over the
    /// backpressure limit. Stop sending until [`Handler::drain`](crate::Handler::drain)
    /// fires; further sends are dropped until then.
    Backpressure {
        /// Bytes waiting to be written, this message included.
        buffered: usize,
    },
    /// Not accepted: the connection was already over its backpressure limit.
    Dropped {
        /// Bytes waiting to be written.
        buffered: usize,
    },
    /// Not accepted: the connection is closing or closed.
    Closed,
}

impl SendStatus {
    /// True when the message was accepted (it will be written unless the
    /// connection dies).
    pub fn is_accepted(self) -> bool {
        matches!(
            self,
            SendStatus::Queued { .. } | SendStatus::Backpressure { .. }
        )
    }
}

/// The connection's state, as in the browser's `WebSocket.readyState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadyState {
    /// Open: messages flow both ways.
    Open = 1,
    /// A close was started (by either side); nothing more can be sent.
    Closing = 2,
    /// The connection has ended.
    Closed = 3,
}

thread_local! {
    /// Where a corked write encodes a subscriber's frames (see `uncork`).
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A close the driver has been asked to perform.
#[derive(Debug)]
pub(crate) enum CloseRequest {
    /// Flush what is queued, then send this close frame.
    Graceful(CloseCode, String),
    /// Drop the socket now, without a close frame.
    Terminate,
}

/// The state shared by a connection's driver, its [`Ws`](crate::Ws) and its [`Handle`](crate::Handle)s.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) waker: AtomicWaker,
    outbox: Mutex<Outbox>,
    limit: usize,
    close_on_backpressure: bool,
    /// Idle-sweeper ticks since the last frame from the peer; the driver
    /// resets it, the server's sweeper advances it (see `registry::sweep`).
    pub(crate) quiet: AtomicU32,
    /// Ticks of silence before the idle timeout; 0 when there is none.
    pub(crate) idle_ticks: u32,
    /// Notified when the connection has ended (timers stop on it).
    pub(crate) closed: event_listener::Event,
}

#[derive(Default)]
pub(crate) struct Outbox {
    queue: VecDeque<crate::protocol::Outgoing>,
    /// Payload bytes in `queue`.
    queued: usize,
    /// Payload bytes handed to the codec and not yet flushed.
    writing: usize,
    /// A send went over the limit: `drain` is owed once everything is written.
    over_limit: bool,
    closing: bool,
    closed: bool,
    /// Boxed: rare, and one pointer on every connection.
    pub(crate) request: Option<Box<CloseRequest>>,
    pub(crate) shutdown: bool,
    /// A message waits for the connection's resident body to take it: the
    /// driver reads nothing more until then (see `resident`).
    pub(crate) reading_paused: bool,
    /// Set when backpressure closed the connection, so the driver reports it.
    pub(crate) backpressure_tripped: bool,
    /// Gaps noted and not yet reported, and what waits behind them.
    /// Boxed: rare, and one pointer on every connection.
    gaps: Option<Box<Gaps>>,
    /// Topics that keep history on which this subscriber fell behind (a
    /// publish was refused over the backpressure limit), with the last
    /// position it was given: live publishes skip it there until it has
    /// caught up from history. Boxed: rare.
    #[allow(clippy::box_collection)]
    pub(crate) behind: Option<Box<Vec<Behind>>>,
    /// Timer ticks and reply callbacks for the connection's task. Boxed:
    /// rare.
    pub(crate) deferred: Option<Box<Deferred>>,
    /// The socket, for writing from other tasks while the driver is not
    /// (see `push`): set once the upgrade is written, for streams that
    /// allow it.
    direct: Option<Arc<dyn TryWrite>>,
    /// The driver holds the wire: it has bytes to write, or is writing.
    /// Only while it does not may another task write to `direct`.
    wire: bool,
    /// The rest of a frame another task began writing: it goes out before
    /// anything else (the driver puts it ahead of its own bytes).
    /// Boxed: rare (the socket took part of a frame).
    front: Option<Box<Bytes>>,
    /// A corked poll will write the queue when it ends (see `cork`).
    corked: bool,
}

/// Topics on which the backplane may have lost messages, for
/// `Handler::gap`, and what was queued from elsewhere since the first was
/// noted: it waits until every report is out (their callbacks returned),
/// so a report goes ahead of every message that followed its hole.
#[derive(Default)]
struct Gaps {
    topics: Vec<Arc<str>>,
    held: VecDeque<crate::protocol::Outgoing>,
    /// Payload bytes in `held`.
    bytes: usize,
    /// A held message went over the backpressure limit: `drain` is owed
    /// again once these have been written too.
    over: bool,
}

/// A topic a subscriber fell behind on: the last position it was given,
/// and where it catches up from.
#[derive(Clone, Debug)]
pub(crate) struct Behind {
    pub(crate) topic: Arc<str>,
    pub(crate) last: Position,
    pub(crate) from: CatchUp,
}

impl CatchUp {
    /// Whether it can catch up now (it does not wait for the store).
    fn is_ready(self) -> bool {
        matches!(self, CatchUp::Ring | CatchUp::Fetched)
    }
}

/// Where a subscriber that fell behind catches up from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CatchUp {
    /// This node's ring (a window that cannot tell asks the store).
    Ring,
    /// A fetch from the store is under way: wait for it.
    Fetching,
    /// The store was asked: the ring now tells, and what it lacks is lost.
    Fetched,
    /// It joined before this node knew where the topic stands in the
    /// store: it goes on from there once the node learns it.
    Starting,
}

impl Outbox {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    fn buffered(&self) -> usize {
        self.queued + self.writing + self.gaps.as_ref().map_or(0, |g| g.bytes)
    }

    /// True when the queue has drained and topics are to be caught up.
    pub(crate) fn wants_catch_up(&self) -> bool {
        !self.over_limit
            && self
                .behind
                .as_ref()
                .is_some_and(|b| b.iter().any(|b| b.from.is_ready()))
    }

    /// The next topic to report a gap on; the list is freed once empty.
    /// None while the queue is over its backpressure limit: the report
    /// waits for the drain, or it would be dropped like what it reports.
    pub(crate) fn take_gap(&mut self) -> Option<Arc<str>> {
        if self.over_limit {
            return None;
        }
        let topic = self.gaps.as_mut()?.topics.pop();
        if topic.is_none() {
            // Every gap was reported (the last callback has returned):
            // what waited behind them goes out now.
            self.release_held();
        }
        topic
    }

    /// Writes `msg` to the socket from the caller's task, when nothing
    /// could be ahead of it: the driver does not hold the wire, nothing is
    /// queued or held behind a gap. `None` when it must be queued instead
    /// (the socket took nothing, or failed: the driver will see that);
    /// `Some(true)` when the driver must write the rest.
    fn write_now(
        &mut self,
        msg: &crate::protocol::Outgoing,
        framed: &OnceCell<Bytes>,
    ) -> Option<bool> {
        if self.queued != 0 || !self.may_write_now() {
            return None;
        }
        let frame = framed.get_or_init(|| {
            let mut buf = Vec::with_capacity(msg.len() + crate::protocol::frame::MAX_HEADER);
            msg.encode(&mut buf);
            Bytes::from(buf)
        });
        self.write_frames(frame, msg.len())
    }

    /// Writes everything queued to the socket in one write, from the
    /// caller's task, when the driver is not writing; true when the driver
    /// must be woken (to write it, or the rest of it).
    fn write_queue_now(&mut self) -> bool {
        if self.queue.is_empty() {
            // Its driver took it first, or nothing was accepted.
            return false;
        }
        if self.over_limit || self.closing || !self.may_write_now() {
            return true;
        }
        let payload = self.queued;
        // Encoded into this thread's scratch buffer: no allocation per
        // subscriber, and only a rest the socket did not take is copied.
        let written = SCRATCH.with(|scratch| {
            let mut frames = scratch.take();
            frames.clear();
            for msg in &self.queue {
                msg.encode(&mut frames);
            }
            let written = self.write_frames(&frames, payload);
            // A burst's worth is kept for the next; a rare huge one is not.
            if frames.capacity() <= 64 << 10 {
                scratch.set(frames);
            }
            written
        });
        let Some(rest_owed) = written else {
            return true;
        };
        crate::observe::sending(&self.queue);
        self.queue.clear();
        self.queued = 0;
        rest_owed
    }

    /// Whether another task may write to the socket now: there is one to
    /// write to, the driver does not hold the wire, and no gap's report
    /// must go out first.
    fn may_write_now(&self) -> bool {
        self.direct.is_some() && !self.wire && self.gaps.is_none()
    }

    /// Writes `frames`, which carry `payload` bytes of messages, to the
    /// socket. `None` when it took nothing; `Some(true)` when it took
    /// part, and the driver, which holds the wire from here, must write
    /// the rest.
    fn write_frames(&mut self, frames: &[u8], payload: usize) -> Option<bool> {
        let socket = self.direct.as_ref()?;
        let n = socket.try_write(frames).ok().filter(|&n| n > 0)?;
        if n == frames.len() {
            return Some(false);
        }
        // Part of a frame is on the wire: the rest must follow before
        // anything else, and only the driver writes now.
        self.front = Some(Box::new(Bytes::copy_from_slice(&frames[n..])));
        self.wire = true;
        self.writing += payload;
        Some(true)
    }

    /// Moves what waited behind the gaps to the end of the queue; the
    /// gaps not yet reported are dropped with them.
    pub(crate) fn release_held(&mut self) {
        if let Some(gaps) = self.gaps.take() {
            self.queue.extend(gaps.held);
            self.queued += gaps.bytes;
            self.over_limit |= gaps.over;
        }
    }
}

impl Shared {
    pub(crate) fn new(id: u64, limit: usize, close_on_backpressure: bool) -> Self {
        Shared {
            id,
            waker: AtomicWaker::new(),
            outbox: Mutex::new(Outbox::default()),
            limit,
            close_on_backpressure,
            quiet: AtomicU32::new(0),
            idle_ticks: 0,
            closed: event_listener::Event::new(),
        }
    }

    pub(crate) fn with_idle_ticks(mut self, ticks: u32) -> Self {
        self.idle_ticks = ticks;
        self
    }

    /// Ticks after which a quiet peer is pinged: half the idle timeout.
    pub(crate) fn ping_ticks(&self) -> u32 {
        self.idle_ticks.div_ceil(2)
    }

    /// One sweeper tick: true when the driver must look (ping or expire).
    pub(crate) fn tick(&self) -> bool {
        if self.idle_ticks == 0 {
            return false;
        }
        let quiet = self.quiet.fetch_add(1, Ordering::Relaxed) + 1;
        quiet == self.ping_ticks() || quiet >= self.idle_ticks
    }

    /// A frame arrived from the peer.
    pub(crate) fn heard(&self) {
        // Only write when needed, so a busy connection does not keep pulling
        // the cache line away from the sweeper.
        if self.quiet.load(Ordering::Relaxed) != 0 {
            self.quiet.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Outbox> {
        // A panic never happens while the lock is held (only plain field
        // updates run under it), so poisoning can be ignored safely.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a possible gap on `topic` for the driver to report; false when
    /// the connection is closing (it will hear nothing more anyway).
    pub(crate) fn push_gap(&self, topic: &Arc<str>) -> bool {
        {
            let mut out = self.lock();
            if out.closing || out.closed {
                return false;
            }
            let gaps = &mut out.gaps.get_or_insert_with(Box::default).topics;
            if !gaps.contains(topic) {
                gaps.push(topic.clone());
            }
        }
        self.waker.wake();
        true
    }

    /// Where this subscriber stopped on `topic`, if it fell behind there.
    pub(crate) fn behind_on(&self, topic: &str) -> Option<Position> {
        let out = self.lock();
        let behind = out.behind.as_ref()?;
        behind.iter().find(|b| &*b.topic == topic).map(|b| b.last)
    }

    /// Notes that this subscriber stopped at `last` on `topic`, to catch
    /// up from the ring (or, with `None`, that it has caught up there).
    pub(crate) fn set_behind(&self, topic: &Arc<str>, last: Option<Position>) {
        self.note_behind(topic, last.map(|last| (last, CatchUp::Ring)));
    }

    /// Notes that this subscriber, at `last` on `topic`, waits for a fetch
    /// from the store.
    pub(crate) fn await_store(&self, topic: &Arc<str>, last: Position) {
        self.note_behind(topic, Some((last, CatchUp::Fetching)));
    }

    /// A fetch of what follows offset `after` on `topic` is done: a
    /// subscriber waiting for it catches up from the ring now (the store
    /// was asked, unless it waits for something older). True when it was
    /// waiting.
    pub(crate) fn store_answered(&self, topic: &str, after: u64) -> bool {
        {
            let mut out = self.lock();
            let Some(b) = out
                .behind
                .as_mut()
                .and_then(|b| b.iter_mut().find(|b| &*b.topic == topic))
            else {
                return false;
            };
            if b.from != CatchUp::Fetching {
                return false;
            }
            b.from = if b.last.offset >= after {
                CatchUp::Fetched
            } else {
                CatchUp::Ring
            };
        }
        self.waker.wake();
        true
    }

    /// Notes that this subscriber joined `topic` before this node knew
    /// where the topic stands in the store.
    pub(crate) fn await_start(&self, topic: &Arc<str>) {
        let unknown = Position {
            epoch: 0,
            offset: 0,
        };
        self.note_behind(topic, Some((unknown, CatchUp::Starting)));
    }

    /// The node learnt where `topic` stood when this subscriber joined
    /// (`None`: it could not): it goes on from `at`. True when it was
    /// waiting for that.
    pub(crate) fn started(&self, topic: &str, at: Option<Position>) -> bool {
        {
            let mut out = self.lock();
            let Some(behind) = out.behind.as_mut() else {
                return false;
            };
            let Some(i) = behind
                .iter()
                .position(|b| &*b.topic == topic && b.from == CatchUp::Starting)
            else {
                return false;
            };
            match at {
                Some(at) => {
                    behind[i].last = at;
                    behind[i].from = CatchUp::Ring;
                }
                None => {
                    behind.swap_remove(i);
                    if behind.is_empty() {
                        out.behind = None;
                    }
                }
            }
        }
        self.waker.wake();
        true
    }

    fn note_behind(&self, topic: &Arc<str>, state: Option<(Position, CatchUp)>) {
        {
            let mut out = self.lock();
            let behind = out.behind.get_or_insert_with(Box::default);
            behind.retain(|b| &b.topic != topic);
            if let Some((last, from)) = state {
                behind.push(Behind {
                    topic: topic.clone(),
                    last,
                    from,
                });
            }
            if behind.is_empty() {
                out.behind = None;
            }
        }
        // A driver with nothing queued would not look again until some
        // other event: it catches up now (or once drained, if over its
        // limit).
        if state.is_some_and(|(_, from)| from.is_ready()) {
            self.waker.wake();
        }
    }

    /// The topics to catch up on now (not those waiting for the store).
    pub(crate) fn behind(&self) -> Vec<Behind> {
        let out = self.lock();
        let Some(behind) = out.behind.as_deref() else {
            return Vec::new();
        };
        behind
            .iter()
            .filter(|b| b.from.is_ready())
            .cloned()
            .collect()
    }

    /// Queues `msg`. `wake` is false only on the connection's own task
    /// (its callbacks), where the driver writes right after; a message from
    /// anywhere else waits behind a gap noted and not yet reported, so the
    /// report arrives before whatever followed the hole.
    pub(crate) fn push(&self, msg: crate::protocol::Outgoing, wake: bool) -> SendStatus {
        self.push_framed(msg, wake, &OnceCell::new())
    }

    /// As [`push`](Self::push); `framed` holds the message as a frame once
    /// one subscriber needed it, so a publish is framed once for all.
    ///
    /// From another task, to a connection whose driver is not writing and
    /// has nothing queued, the frame is written to the socket here and
    /// now; only what the socket does not take is left to the driver.
    /// What the caller sees (the status, the order, the drain) is the
    /// same as through the queue.
    pub(crate) fn push_framed(
        &self,
        msg: crate::protocol::Outgoing,
        wake: bool,
        framed: &OnceCell<Bytes>,
    ) -> SendStatus {
        let len = msg.len();
        let status = {
            let mut out = self.lock();
            if out.closing || out.closed {
                return SendStatus::Closed;
            }
            if wake && len <= self.limit {
                if let Some(written) = out.write_now(&msg, framed) {
                    drop(out);
                    crate::observe::sent(&msg);
                    if written {
                        self.waker.wake();
                    }
                    return SendStatus::Queued { buffered: len };
                }
            }
            self.enqueue(&mut out, msg, wake)
        };
        if wake || status == SendStatus::Closed {
            self.waker.wake();
        }
        status
    }

    /// As [`push`](Self::push) from another task, during a corked poll of
    /// the publishing connection's task (see `cork`): queued, to be
    /// written with whatever else this subscriber is given when that poll
    /// ends. The flag is true the first time in the poll: the caller then
    /// notes the subscriber for `uncork`.
    pub(crate) fn push_corked(&self, msg: crate::protocol::Outgoing) -> (SendStatus, bool) {
        let (status, first) = {
            let mut out = self.lock();
            if out.closing || out.closed {
                return (SendStatus::Closed, false);
            }
            let status = self.enqueue(&mut out, msg, true);
            let first = status.is_accepted() && !std::mem::replace(&mut out.corked, true);
            (status, first)
        };
        if status == SendStatus::Closed {
            self.waker.wake();
        }
        (status, first)
    }

    /// The corked poll that reached this subscriber has ended: what it was
    /// given is written now if its driver is not writing, else the driver
    /// is woken to.
    pub(crate) fn uncork(&self) {
        let wake = {
            let mut out = self.lock();
            out.corked = false;
            out.write_queue_now()
        };
        if wake {
            self.waker.wake();
        }
    }

    /// Queues `msg` (behind a gap not yet reported, when `elsewhere`: from
    /// another task), within the backpressure limit. `Closed` when that
    /// limit closes the connection: the caller wakes the driver.
    fn enqueue(
        &self,
        out: &mut Outbox,
        msg: crate::protocol::Outgoing,
        elsewhere: bool,
    ) -> SendStatus {
        let len = msg.len();
        // The connection's own sends go ahead of what waits behind a
        // gap, so they are measured without it: the gap's report must
        // get through once the queue ahead of it has drained.
        let held = elsewhere && out.gaps.is_some();
        let buffered = if elsewhere {
            out.buffered()
        } else {
            out.queued + out.writing
        };
        if buffered > self.limit {
            crate::observe::dropped();
            if self.close_on_backpressure && out.request.is_none() {
                out.closing = true;
                out.backpressure_tripped = true;
                out.request = Some(Box::new(CloseRequest::Graceful(
                    CloseCode::POLICY,
                    "backpressure limit".to_owned(),
                )));
                return SendStatus::Closed;
            }
            return SendStatus::Dropped { buffered };
        }
        let buffered = buffered + len;
        let over = buffered > self.limit;
        match out.gaps.as_mut().filter(|_| held) {
            Some(gaps) => {
                gaps.held.push_back(msg);
                gaps.bytes += len;
                gaps.over |= over;
            }
            None => {
                out.queue.push_back(msg);
                out.queued += len;
            }
        }
        if over {
            out.over_limit = true;
            crate::observe::backpressured();
            SendStatus::Backpressure { buffered }
        } else {
            SendStatus::Queued { buffered }
        }
    }

    /// Control frames bypass the backpressure limit: they are tiny and keep
    /// the connection alive. A payload over 125 bytes is an error.
    pub(crate) fn push_control(
        &self,
        msg: crate::protocol::Outgoing,
        wake: bool,
    ) -> Result<(), Error> {
        check_control(&msg.payload)?;
        {
            let mut out = self.lock();
            if out.closing || out.closed {
                return Err(Error::new(ErrorKind::Closed));
            }
            out.queued += msg.len();
            out.queue.push_back(msg);
        }
        if wake {
            self.waker.wake();
        }
        Ok(())
    }

    pub(crate) fn request_close(
        &self,
        code: CloseCode,
        reason: &str,
        wake: bool,
    ) -> Result<(), Error> {
        check_close(code, reason)?;
        {
            let mut out = self.lock();
            if out.closing || out.closed {
                return Err(Error::new(ErrorKind::Closed));
            }
            out.closing = true;
            out.request = Some(Box::new(CloseRequest::Graceful(code, reason.to_owned())));
        }
        if wake {
            self.waker.wake();
        }
        Ok(())
    }

    pub(crate) fn terminate(&self) {
        {
            let mut out = self.lock();
            if out.closed {
                return;
            }
            out.closing = true;
            out.request = Some(Box::new(CloseRequest::Terminate));
        }
        self.waker.wake();
    }

    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.waker.wake();
    }

    /// Moves everything queued into `batch` for the driver to write.
    /// Moves everything queued into `batch` for the driver to write. When
    /// anything moved (or another task left the rest of a frame, which is
    /// returned), the driver holds the wire from here until `flushed`.
    pub(crate) fn take_queue(
        &self,
        batch: &mut VecDeque<crate::protocol::Outgoing>,
    ) -> Option<Bytes> {
        let mut out = self.lock();
        std::mem::swap(batch, &mut out.queue);
        out.writing += out.queued;
        out.queued = 0;
        out.wire |= !batch.is_empty();
        out.front.take().map(|b| *b)
    }

    /// The driver is about to write bytes of its own (a pong, a close):
    /// it holds the wire from here until `flushed`. Returns the rest of a
    /// frame another task began, to go out first.
    pub(crate) fn claim_wire(&self) -> Option<Bytes> {
        let mut out = self.lock();
        out.wire = true;
        out.front.take().map(|b| *b)
    }

    /// Lets other tasks write to the socket while the driver does not.
    pub(crate) fn write_directly(&self, socket: Arc<dyn TryWrite>) {
        self.lock().direct = Some(socket);
    }

    /// The driver no longer writes: other tasks must not either, and the
    /// socket closes once the driver drops its own handle on it.
    pub(crate) fn stop_direct(&self) {
        self.lock().direct = None;
    }

    /// Everything handed to the codec is on the wire, and the driver lets
    /// go of it. Returns true when a `drain` is owed.
    pub(crate) fn flushed(&self) -> bool {
        let mut out = self.lock();
        out.writing = 0;
        out.wire = false;
        if out.over_limit && out.queued == 0 {
            out.over_limit = false;
            return true;
        }
        false
    }

    /// The connection has started closing: refuse new sends.
    pub(crate) fn set_closing(&self) {
        self.lock().closing = true;
    }

    /// The connection has ended: drop what was never written, stop timers.
    pub(crate) fn set_closed(&self) {
        let deferred = {
            let mut out = self.lock();
            out.closing = true;
            out.closed = true;
            out.queue = VecDeque::new();
            out.queued = 0;
            out.writing = 0;
            out.gaps = None;
            out.front = None;
            out.direct = None;
            let mut deferred = out.deferred.take();
            // The resident body outlives the close, to clean up (see
            // `resident`); the rest of what was deferred ends here.
            if let Some(body) = deferred.as_mut().and_then(|d| d.resident.take()) {
                out.deferred.get_or_insert_with(Box::default).resident = Some(body);
            }
            deferred
        };
        // Dropped unlocked: a job may own a handle whose drop locks.
        drop(deferred);
        self.closed.notify(usize::MAX);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The connection is closing or closed, or the server is shutting down.
    pub(crate) fn is_winding_down(&self) -> bool {
        let out = self.lock();
        out.closing || out.shutdown
    }

    /// Whether the driver has something new to look at after a resident
    /// body ran: messages to write, a close asked for, or reading resumed
    /// (`paused` is whether it was paused before).
    pub(crate) fn has_work(&self, paused: bool) -> bool {
        let out = self.lock();
        out.queued > 0 || out.request.is_some() || (paused && !out.reading_paused)
    }

    /// The queue went over the backpressure limit and has not drained yet.
    pub(crate) fn is_over_limit(&self) -> bool {
        self.lock().over_limit
    }

    pub(crate) fn is_idle_queue(&self) -> bool {
        let out = self.lock();
        out.queued == 0 && out.writing == 0 && out.gaps.is_none() && out.front.is_none()
    }

    pub(crate) fn buffered(&self) -> usize {
        self.lock().buffered()
    }

    pub(crate) fn ready_state(&self) -> ReadyState {
        let out = self.lock();
        if out.closed {
            ReadyState::Closed
        } else if out.closing {
            ReadyState::Closing
        } else {
            ReadyState::Open
        }
    }
}

// ---- work deferred to the connection's task ----

impl Shared {
    /// Queues `job` for the connection's task and wakes it; false (and the
    /// job dropped) when the connection has ended.
    pub(crate) fn defer<T: 'static>(&self, job: crate::delivery::deferred::Job<T>) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn text(n: usize) -> crate::protocol::Outgoing {
        crate::protocol::Outgoing::binary(vec![0; n].into())
    }

    #[test]
    fn backpressure_then_drop_then_drain() {
        let s = Shared::new(1, 100, false);
        assert_eq!(s.push(text(60), false), SendStatus::Queued { buffered: 60 });
        assert_eq!(
            s.push(text(60), false),
            SendStatus::Backpressure { buffered: 120 }
        );
        assert_eq!(
            s.push(text(1), false),
            SendStatus::Dropped { buffered: 120 }
        );
        let mut batch = VecDeque::new();
        s.take_queue(&mut batch);
        assert_eq!(batch.len(), 2);
        assert_eq!(
            s.buffered(),
            120,
            "handed to the codec still counts until flushed"
        );
        assert!(s.flushed(), "drain owed after going over");
        assert!(!s.flushed(), "drain owed once");
        assert_eq!(s.push(text(1), false), SendStatus::Queued { buffered: 1 });
    }

    #[test]
    fn close_on_backpressure_closes() {
        let s = Shared::new(1, 10, true);
        assert!(matches!(
            s.push(text(20), false),
            SendStatus::Backpressure { .. }
        ));
        assert_eq!(s.push(text(1), false), SendStatus::Closed);
        assert!(matches!(
            s.lock().request.as_deref(),
            Some(CloseRequest::Graceful(CloseCode::POLICY, _))
        ));
    }

    #[test]
    fn closing_refuses_sends_and_bad_closes_change_nothing() {
        let s = Shared::new(1, 10, false);
        assert!(s.request_close(CloseCode(1005), "", false).is_err());
        assert_eq!(s.ready_state(), ReadyState::Open);
        s.request_close(CloseCode(4000), "bye", false).unwrap();
        assert_eq!(s.ready_state(), ReadyState::Closing);
        assert_eq!(s.push(text(1), false), SendStatus::Closed);
        assert!(
            s.request_close(CloseCode(1000), "", false)
                .unwrap_err()
                .is_closed()
        );
    }

    fn sizes(s: &Shared) -> Vec<usize> {
        let mut batch = VecDeque::new();
        s.take_queue(&mut batch);
        batch.iter().map(|m| m.len()).collect()
    }

    #[test]
    fn a_gap_report_goes_ahead_of_what_followed_the_hole() {
        let s = Shared::new(1, 100, false);
        let topic: Arc<str> = "room".into();
        s.push(text(1), true);
        assert!(s.push_gap(&topic));
        // Published after the hole, before the driver reported it.
        s.push(text(2), true);
        assert_eq!(sizes(&s), [1], "what followed the hole waits");
        assert_eq!(s.lock().take_gap(), Some(topic));
        // The report, sent from the gap callback on the connection's task.
        s.push(text(3), false);
        assert_eq!(sizes(&s), [3]);
        assert_eq!(s.lock().take_gap(), None);
        assert_eq!(sizes(&s), [2], "released once every gap was reported");
        assert!(s.lock().gaps.is_none());
    }

    #[test]
    fn a_gap_report_gets_through_a_full_queue_and_drain_is_owed_again() {
        let s = Shared::new(1, 100, false);
        assert!(s.push_gap(&"room".into()));
        assert!(matches!(
            s.push(text(120), true),
            SendStatus::Backpressure { .. }
        ));
        assert!(matches!(s.push(text(1), true), SendStatus::Dropped { .. }));
        assert!(s.lock().take_gap().is_none(), "waits for the drain");
        assert!(s.flushed(), "nothing ahead of the gap: drain owed");
        assert!(s.lock().take_gap().is_some());
        assert_eq!(
            s.push(text(3), false),
            SendStatus::Queued { buffered: 3 },
            "measured without what waits behind it"
        );
        assert_eq!(sizes(&s), [3]);
        assert_eq!(s.lock().take_gap(), None);
        assert_eq!(sizes(&s), [120]);
        assert!(s.flushed(), "drain owed again for what waited");
    }

    #[test]
    fn a_close_releases_what_waited_behind_a_gap() {
        let s = Shared::new(1, 100, false);
        assert!(s.push_gap(&"room".into()));
        s.push(text(2), true);
        assert!(!s.is_idle_queue());
        s.lock().release_held();
        assert_eq!(sizes(&s), [2]);
    }

    /// A socket that takes `room` more bytes, then would block.
    struct Socket {
        room: Mutex<usize>,
        wire: Mutex<Vec<u8>>,
        writes: AtomicU32,
    }

    impl TryWrite for Socket {
        fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            let mut room = self.room.lock().unwrap();
            let n = buf.len().min(*room);
            if n == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            *room -= n;
            self.wire.lock().unwrap().extend_from_slice(&buf[..n]);
            Ok(n)
        }
    }

    fn direct(room: usize) -> (Shared, Arc<Socket>) {
        let socket = Arc::new(Socket {
            room: Mutex::new(room),
            wire: Mutex::default(),
            writes: AtomicU32::new(0),
        });
        let s = Shared::new(1, 100, false);
        s.write_directly(socket.clone());
        (s, socket)
    }

    fn frame(msg: &crate::protocol::Outgoing) -> Vec<u8> {
        let mut out = Vec::new();
        msg.encode(&mut out);
        out
    }

    #[test]
    fn an_idle_connection_is_written_to_at_once() {
        let (s, socket) = direct(1000);
        assert_eq!(s.push(text(10), true), SendStatus::Queued { buffered: 10 });
        assert_eq!(*socket.wire.lock().unwrap(), frame(&text(10)));
        assert!(s.is_idle_queue(), "nothing left for the driver");
        // Its own task's sends are the driver's to write, right after.
        assert_eq!(s.push(text(5), false), SendStatus::Queued { buffered: 5 });
        assert_eq!(socket.wire.lock().unwrap().len(), 12);
    }

    #[test]
    fn the_rest_of_a_frame_goes_first_and_what_follows_waits() {
        let (s, socket) = direct(4);
        let (a, b) = (text(10), text(20));
        assert_eq!(s.push(a.clone(), true), SendStatus::Queued { buffered: 10 });
        assert_eq!(socket.wire.lock().unwrap().len(), 4);
        assert!(!s.is_idle_queue(), "the rest is owed");
        *socket.room.lock().unwrap() = 1000;
        // The driver holds the wire now: queued, counted as before.
        assert_eq!(s.push(b.clone(), true), SendStatus::Queued { buffered: 30 });
        assert_eq!(socket.wire.lock().unwrap().len(), 4);
        let mut batch = VecDeque::new();
        let rest = s.take_queue(&mut batch).expect("the rest of the frame");
        assert_eq!(&rest[..], &frame(&a)[4..]);
        assert_eq!(batch, [b]);
        assert!(!s.flushed(), "no drain owed");
        // Written and let go of: the next goes straight out again.
        assert_eq!(s.push(text(1), true), SendStatus::Queued { buffered: 1 });
        assert_eq!(socket.wire.lock().unwrap().len(), 4 + 3);
    }

    #[test]
    fn nothing_is_written_past_the_driver_or_a_queue() {
        let (s, socket) = direct(1000);
        // The driver is writing bytes of its own.
        assert!(s.claim_wire().is_none());
        assert_eq!(s.push(text(10), true), SendStatus::Queued { buffered: 10 });
        assert!(socket.wire.lock().unwrap().is_empty());
        s.flushed();
        // Something queued is ahead of it.
        assert_eq!(s.push(text(10), true), SendStatus::Queued { buffered: 20 });
        assert!(socket.wire.lock().unwrap().is_empty());
        let mut batch = VecDeque::new();
        assert!(s.take_queue(&mut batch).is_none());
        s.flushed();
        // A gap not yet reported: what follows waits behind its report.
        s.push_gap(&Arc::from("t"));
        s.push(text(10), true);
        assert!(socket.wire.lock().unwrap().is_empty());
        s.lock().release_held();
        s.take_queue(&mut batch);
        s.flushed();
        // Over the limit, a message takes the queue (and its drain).
        assert_eq!(
            s.push(text(101), true),
            SendStatus::Backpressure { buffered: 101 }
        );
        assert!(socket.wire.lock().unwrap().is_empty());
        s.take_queue(&mut batch);
        assert!(s.flushed(), "drain owed as through the queue");
        // The socket full: queued as before.
        *socket.room.lock().unwrap() = 0;
        assert_eq!(s.push(text(10), true), SendStatus::Queued { buffered: 10 });
        s.take_queue(&mut batch);
        s.flushed();
        // Closing: refused, and the socket is let go of once closed.
        *socket.room.lock().unwrap() = 1000;
        s.set_closing();
        assert_eq!(s.push(text(1), true), SendStatus::Closed);
        s.set_closed();
        assert!(socket.wire.lock().unwrap().is_empty());
        assert_eq!(
            Arc::strong_count(&socket),
            1,
            "no handle on the socket left"
        );
    }

    #[test]
    fn what_a_corked_poll_publishes_leaves_in_one_write_per_subscriber() {
        let (s, socket) = direct(1000);
        let s = Arc::new(s);
        let (a, b) = (text(10), text(20));
        let push = |msg: &crate::protocol::Outgoing| {
            let (status, first) = s.push_corked(msg.clone());
            if first {
                assert!(crate::delivery::cork::reached(s.clone()));
            }
            status
        };
        let mut poll = std::pin::pin!(crate::delivery::cork::Corked::new(async {
            assert_eq!(push(&a), SendStatus::Queued { buffered: 10 });
            assert_eq!(push(&b), SendStatus::Queued { buffered: 30 });
            assert!(socket.wire.lock().unwrap().is_empty(), "corked");
        }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(poll.as_mut().poll(&mut cx).is_ready());
        let mut both = frame(&a);
        both.extend(frame(&b));
        assert_eq!(*socket.wire.lock().unwrap(), both);
        assert_eq!(socket.writes.load(Ordering::Relaxed), 1);
        assert!(s.is_idle_queue());
    }
}
