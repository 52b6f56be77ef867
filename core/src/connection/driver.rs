//! The per-connection driver: one task that reads frames, runs the handler's
//! callbacks one at a time, writes what they queue, keeps the timers, and
//! performs the closing handshake.
//!
//! Reads come first: while a message is already buffered it is handled before
//! anything is flushed, so replies to a burst of messages leave in one write.
//! A read budget keeps a peer that never pauses from starving its own writes.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::FutureExt as _;
use futures_lite::future::CatchUnwind;

use crate::boxed::BoxFuture;
use crate::connection::codec::from_codec;
use crate::connection::codec::{Codec, CodecError};
use crate::connection::handler::Handler;
use crate::connection::registry::{Registration, TaskGuard};
use crate::connection::resident::Polled;
use crate::connection::socket::Ws;
use crate::delivery::outbox::{CloseRequest, Shared};
use crate::error::{Error, ErrorKind, panic_message};
use crate::message::{CloseCode, Message, Text, close_frame};
use crate::observe::Initiator;
use crate::policy::limits::{Limits, RateCount, RateVerdict};
use crate::protocol::{CloseFrame, Incoming};
use crate::runtime::BoxSleep;

/// Messages handled back to back before the driver flushes what they produced.
const READ_BUDGET: u32 = 64;

/// Polls of a resident body (see `resident`) that made work for the
/// driver, before the driver yields to the runtime.
const RESIDENT_BUDGET: u32 = 64;

/// At shutdown, how long a connection keeps handling input before its 1001,
/// so that messages a client sent just before the signal (still in flight
/// through the network stack) are answered rather than cut off.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// Everything a connection needs to run, gathered at the upgrade.
pub(crate) struct Start {
    pub(crate) codec: Codec,
    pub(crate) shared: Arc<Shared>,
    pub(crate) limits: Arc<Limits>,
    pub(crate) registration: Registration,
    /// Counts this connection as running until the driver ends.
    pub(crate) task: TaskGuard,
}

/// The writing half of the driver, kept apart from the handler and `Ws` so a
/// callback's future can borrow those while this keeps the socket moving.
struct Link {
    codec: Codec,
    shared: Arc<Shared>,
    batch: VecDeque<crate::protocol::Outgoing>,
    /// The codec holds bytes not yet flushed.
    flushing: bool,
    /// The outbox knows the driver holds the wire (see `Shared::push`):
    /// nobody else writes to the socket until the next `flushed`.
    claimed: bool,
    drain_owed: bool,
    /// A write failed while a callback ran; the driver ends with it next.
    /// Boxed: rare, and every connection holds the field.
    failed: Option<Box<CodecError>>,
}

impl Link {
    /// Moves queued messages into the codec and flushes, until the socket
    /// blocks or there is nothing left. `Ok(())` does not mean all is written.
    fn pump(&mut self, cx: &mut Context<'_>) -> Result<(), CodecError> {
        loop {
            if self.flushing {
                if !self.claimed {
                    let front = self.shared.claim_wire();
                    self.take_wire(front);
                }
                match self.codec.poll_flush(cx) {
                    Poll::Pending => return Ok(()),
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Ready(Ok(())) => {
                        self.flushing = false;
                        self.claimed = false;
                        if self.shared.flushed() {
                            self.drain_owed = true;
                        }
                    }
                }
            }
            if !self.stage()? {
                return Ok(());
            }
        }
    }

    /// Moves what the application queued into the codec's write buffer
    /// without flushing it; true when anything was moved. Done before every
    /// read too: a close frame from the peer ends the codec's writing, and
    /// replies to the messages it sent before that close were accepted and
    /// must still go out ahead of ours.
    fn stage(&mut self) -> Result<bool, CodecError> {
        let front = self.shared.take_queue(&mut self.batch);
        let had_front = front.is_some();
        if had_front || !self.batch.is_empty() {
            self.take_wire(front);
        }
        if self.batch.is_empty() {
            return Ok(had_front);
        }
        if !self.codec.can_write() {
            // The peer's close was read before these were queued: they can
            // never be delivered.
            self.discard_batch();
            return Ok(false);
        }
        crate::observe::sending(&self.batch);
        for msg in self.batch.drain(..) {
            self.codec.write(msg)?;
        }
        self.flushing = true;
        Ok(true)
    }

    /// The outbox now knows the driver holds the wire; the rest of a frame
    /// another task began goes ahead of the codec's own bytes.
    fn take_wire(&mut self, front: Option<bytes::Bytes>) {
        self.claimed = true;
        if let Some(rest) = front {
            self.codec.put_front(&rest);
            self.flushing = true;
        }
    }

    /// Drops what `take_queue` moved into the batch and settles the byte
    /// count it moved with them, so the queue reads as idle again (a close
    /// frame waits for an idle queue).
    fn discard_batch(&mut self) {
        self.batch.clear();
        self.shared.flushed();
        self.claimed = false;
    }

    fn pump_or_remember(&mut self, cx: &mut Context<'_>) {
        if self.failed.is_none() {
            if let Err(e) = self.pump(cx) {
                self.failed = Some(Box::new(e));
            }
        }
    }
}

impl Drop for Link {
    /// Other tasks stop writing to the socket with the driver, so it
    /// closes with the driver's end even while handles on the connection
    /// live on.
    fn drop(&mut self) {
        self.shared.stop_direct();
    }
}

/// How a callback ended.
pub(crate) enum Outcome {
    Done,
    Panicked(String),
    /// `terminate()` was called while it ran; it was dropped.
    Aborted,
}

/// Polls a callback once: its outcome when it ended (a panic caught), or
/// [`Outcome::Aborted`] when `terminate()` was called while it waits. A
/// waiting callback is woken by the connection's outbox too, so a
/// `terminate()` is seen at once.
fn poll_callback<F: Future<Output = ()>>(
    fut: Pin<&mut CatchUnwind<AssertUnwindSafe<F>>>,
    shared: &Shared,
    cx: &mut Context<'_>,
) -> Poll<Outcome> {
    match fut.poll(cx) {
        Poll::Ready(Ok(())) => Poll::Ready(Outcome::Done),
        Poll::Ready(Err(panic)) => Poll::Ready(Outcome::Panicked(panic_message(&panic))),
        Poll::Pending => {
            shared.waker.register(cx.waker());
            if matches!(
                shared.lock().request.as_deref(),
                Some(CloseRequest::Terminate)
            ) {
                Poll::Ready(Outcome::Aborted)
            } else {
                Poll::Pending
            }
        }
    }
}

/// Runs one callback to completion while writing whatever it queues.
fn drive<F: Future<Output = ()>>(link: &mut Link, fut: F) -> Drive<'_, F> {
    Drive {
        link,
        fut: AssertUnwindSafe(fut).catch_unwind(),
    }
}

pin_project_lite::pin_project! {
    /// [`drive`]'s future. Not an `async fn`: one would hold the callback's
    /// future twice (its argument, and the pinned copy it polls), and the
    /// callback's state is the largest part of a connection's memory.
    struct Drive<'a, F> {
        link: &'a mut Link,
        #[pin]
        fut: CatchUnwind<AssertUnwindSafe<F>>,
    }
}

impl<F: Future<Output = ()>> Future for Drive<'_, F> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.project();
        let polled = poll_callback(this.fut, &this.link.shared, cx);
        if polled.is_pending() {
            // The callback is waiting on something else: keep the socket moving.
            this.link.pump_or_remember(cx);
        }
        polled
    }
}

/// A connection whose `open` has run, waiting for its socket.
///
/// `open` runs before the `101` is sent (see `answer::upgrade`), so what it
/// subscribes to is in place, and what it sends is queued, by the time the
/// client can act on the upgrade: its messages are the first frames after
/// the `101`.
pub(crate) struct Opened<H: Handler> {
    handler: Arc<H>,
    ws: Ws<H::Data>,
    outcome: Outcome,
}

/// Runs the handler's `open`. Nothing can be written yet: what it sends
/// waits in the outbox for the driver. `terminate()` during it drops it.
pub(crate) async fn open<H: Handler>(handler: Arc<H>, mut ws: Ws<H::Data>) -> Opened<H> {
    // Whatever the handler, an authenticated connection is in its user's
    // room before `open` (and the client) can act.
    ws.join_own_room();
    crate::connection::refresh::start(&mut ws);
    let shared = ws.shared().clone();
    let outcome = {
        let mut fut = pin!(AssertUnwindSafe(handler.open(&mut ws)).catch_unwind());
        poll_fn(|cx| poll_callback(fut.as_mut(), &shared, cx)).await
    };
    Opened {
        handler,
        ws,
        outcome,
    }
}

/// The socket never came back from the HTTP layer after `open` ran (the
/// client left during the upgrade): the connection ends as lost, and
/// `close` still runs, with 1006.
pub(crate) async fn abandon<H: Handler>(opened: Opened<H>) {
    let Opened {
        handler, mut ws, ..
    } = opened;
    crate::observe::closed(CloseCode::ABNORMAL, Initiator::Nobody);
    farewell(&*handler, &mut ws, CloseCode::ABNORMAL, String::new()).await;
}

/// The end of every connection: refuse further sends, leave presence, run
/// `close` (once; a panic in it has nowhere to go), leave topics.
async fn farewell<H: Handler>(handler: &H, ws: &mut Ws<H::Data>, code: CloseCode, reason: String) {
    ws.shared().set_closed();
    // Before `close`, so a farewell it publishes reaches others after the
    // member is gone from the room's presence.
    ws.untrack_all();
    let _ = AssertUnwindSafe(handler.close(ws, code, &reason))
        .catch_unwind()
        .await;
    // After `close`, so it can still publish a farewell to its rooms.
    ws.unsubscribe_all();
}

/// What the driver waits for between callbacks.
enum Event {
    Message(Message),
    Drain,
    /// The backplane may have lost messages on this topic.
    Gap(Arc<str>),
    /// The queue drained: catch up from history where it fell behind.
    CatchUp,
    /// A timer tick or reply callback to run on this task (a `Job<D>`).
    Job(Box<dyn std::any::Any + Send>),
    /// Report this error, then close with its code.
    Error(Error),
    End(End),
}

/// How the connection ends.
enum End {
    /// The closing handshake completed.
    Clean,
    /// The peer broke a rule: send its close code, linger, drop.
    Fail(Error),
    /// Gone without a handshake (reset, EOF, close timeout).
    Lost(Option<Error>),
    /// `terminate()`: drop now.
    Terminated,
}

/// A close in progress.
struct Closing {
    /// Sent once everything queued before it is written.
    frame: Option<CloseFrame>,
    timer: BoxSleep,
}

struct Driver<H: Handler> {
    handler: Arc<H>,
    ws: Ws<H::Data>,
    /// How `open` went, when it did not simply return (boxed: rare, and
    /// this struct is what every open connection costs).
    opened: Option<Box<Outcome>>,
    link: Link,
    limits: Arc<Limits>,
    // The closing state is boxed: it exists for a moment at the end of a
    // connection, and every byte inline here is paid by every open one.
    closing: Option<Box<Closing>>,
    /// The close frame the peer sent, if it did.
    peer_close: Option<Box<(CloseCode, String)>>,
    error_reported: bool,
    shutdown_seen: bool,
    /// Boxed: it exists only while the server stops.
    shutdown_grace: Option<Box<BoxSleep>>,
    reads_since_flush: u32,
    /// A ping was sent for the current quiet spell.
    pinged: bool,
    /// When the keep-alive ping left, for its round-trip time: 4 bytes,
    /// not an `Instant`'s 16 (see `observe::Stamp`).
    #[cfg(feature = "metrics")]
    ping_sent: Option<crate::observe::Stamp>,
    /// The count against the route's rate limit, when it has one.
    rate: Option<Box<RateCount>>,
    // Held for their `Drop` (leaving the registry, then the task count);
    // the registration also knows the drain's close.
    registration: Registration,
    _task: TaskGuard,
}

/// A connection's whole life, from `open` to `close`, as one future.
///
/// The driver is built before the future, so the future holds it once
/// (not beside the arguments it was built from): its size is what every
/// open connection costs.
pub(crate) fn run<H: Handler>(
    opened: Opened<H>,
    start: Start,
    span: crate::observe::Span,
) -> BoxFuture<'static, ()> {
    let Opened {
        handler,
        ws,
        outcome,
    } = opened;
    let Start {
        codec,
        shared,
        limits,
        registration,
        task,
    } = start;
    let driver = Driver {
        handler,
        ws,
        opened: match outcome {
            Outcome::Done => None,
            other => Some(Box::new(other)),
        },
        link: Link {
            codec,
            shared,
            batch: VecDeque::new(),
            flushing: false,
            claimed: false,
            drain_owed: false,
            failed: None,
        },
        limits,
        closing: None,
        peer_close: None,
        error_reported: false,
        shutdown_seen: false,
        shutdown_grace: None,
        reads_since_flush: 0,
        pinged: false,
        #[cfg(feature = "metrics")]
        ping_sent: None,
        rate: None,
        registration,
        _task: task,
    };
    // Corked: what its callbacks publish goes out when each poll ends. In
    // its span inside the one box: a second box around it would cost every
    // connection another allocation.
    let corked = crate::delivery::cork::Corked::new(driver.run());
    Box::pin(crate::observe::instrument(corked, span))
}

impl<H: Handler> Driver<H> {
    // Not an `async fn`: rustc stores an async fn's by-value argument twice
    // (rust-lang/rust#62958); a block that uses the captured driver in place
    // stores it once, and this future is what every connection costs.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            let end = self.run_open().await;
            // The closing path is boxed so its state costs memory only while
            // it runs, not for the whole life of every connection.
            Box::pin(self.finish(end)).await;
        }
    }

    async fn run_open(&mut self) -> End {
        // Boxed like every cold path: a connection's future stays the size
        // of its hot path (reading and `message`).
        let outcome = self.opened.take().map_or(Outcome::Done, |o| *o);
        if let Some(end) = Box::pin(self.after_callback(outcome)).await {
            return end;
        }
        loop {
            // rustc keeps a local in this future across every await in its
            // scope once it was borrowed or matched apart, beside the
            // callback's state, in every connection's memory. So the event
            // and the message are looked at in a scope that ends first, and
            // what is awaited after takes them whole.
            let (msg, over_rate) = {
                let event = poll_fn(|cx| self.poll_event(cx)).await;
                let msg = match event {
                    Event::Message(msg) => msg,
                    Event::End(end) => return end,
                    other => {
                        if let Some(end) = Box::pin(self.handle(other)).await {
                            return end;
                        }
                        continue;
                    }
                };
                let over_rate = self.over_rate(msg.len());
                if over_rate.is_none() && crate::connection::refresh::take(&self.ws, &msg) {
                    continue;
                }
                (msg, over_rate)
            };
            if let Some(first) = over_rate {
                drop(msg);
                Box::pin(self.rate_limited(first)).await;
                continue;
            }
            let outcome = drive(&mut self.link, self.handler.message(&mut self.ws, msg)).await;
            // Not through a method taking `&outcome`: a borrowed local is
            // kept in this future (see above).
            if !matches!(outcome, Outcome::Done) || self.link.failed.is_some() {
                if let Some(end) = Box::pin(self.after_callback(outcome)).await {
                    return end;
                }
            }
        }
    }

    /// Handles one event (the loop above handles messages itself, inline):
    /// `Some` when the connection ends.
    async fn handle(&mut self, event: Event) -> Option<End> {
        let outcome = match event {
            Event::Message(msg) => {
                drive(&mut self.link, self.handler.message(&mut self.ws, msg)).await
            }
            Event::Drain => drive(&mut self.link, self.handler.drain(&mut self.ws)).await,
            Event::CatchUp => {
                self.ws.catch_up();
                Outcome::Done
            }
            Event::Job(job) => {
                let ws = &mut self.ws;
                drive(&mut self.link, async move {
                    crate::delivery::deferred::run(ws, job)
                })
                .await
            }
            Event::Gap(topic) => {
                drive(&mut self.link, self.handler.gap(&mut self.ws, &topic)).await
            }
            Event::Error(err) => {
                let code = err.close_code().unwrap_or(CloseCode::GOING_AWAY);
                let reason = reason_for(&err);
                self.report(err).await;
                self.begin_close(code, reason);
                return None;
            }
            Event::End(end) => return Some(end),
        };
        if !matches!(outcome, Outcome::Done) || self.link.failed.is_some() {
            return self.after_callback(outcome).await;
        }
        None
    }

    /// Counts a message of `len` bytes against the route's rate limit:
    /// `Some(first)` when it is over (`first`: the first time in this
    /// window).
    fn over_rate(&mut self, len: usize) -> Option<bool> {
        let limit = self.limits.rate_limit.as_ref()?;
        let rate = self.rate.get_or_insert_with(|| Box::new(RateCount::new()));
        match rate.count(limit, len) {
            RateVerdict::Over(first) => Some(first),
            RateVerdict::Within => None,
        }
    }

    /// A message over the rate limit: close with 1008, or, with
    /// `drop_excess`, drop it and report once per window.
    async fn rate_limited(&mut self, first: bool) {
        let err = Error::new(ErrorKind::RateLimited);
        let drop_excess = (self.limits.rate_limit.as_ref()).is_some_and(|limit| limit.drop_excess);
        if !drop_excess {
            self.report(err).await;
            self.begin_close(CloseCode::POLICY, "rate limit");
        } else if first {
            // Not fatal: reported once per window, and a later fatal error
            // is still reported.
            let _ = drive(&mut self.link, self.handler.error(&mut self.ws, &err)).await;
        }
    }

    async fn after_callback(&mut self, outcome: Outcome) -> Option<End> {
        match outcome {
            Outcome::Done => {}
            Outcome::Aborted => return Some(End::Terminated),
            Outcome::Panicked(msg) => {
                self.report(Error::with_detail(ErrorKind::HandlerPanic, msg))
                    .await;
                self.begin_close(CloseCode::INTERNAL_ERROR, "internal error");
            }
        }
        if let Some(e) = self.link.failed.take().map(|e| *e) {
            return Some(self.end_for(e));
        }
        None
    }

    /// Calls `error` at most once per connection.
    async fn report(&mut self, err: Error) {
        if self.error_reported {
            return;
        }
        self.error_reported = true;
        crate::observe::error(&err);
        // A panic here has nowhere left to be reported; the close proceeds.
        let _ = drive(&mut self.link, self.handler.error(&mut self.ws, &err)).await;
    }

    fn begin_close(&mut self, code: CloseCode, reason: &str) {
        if self.closing.is_some() {
            return;
        }
        self.link.shared.set_closing();
        self.closing = Some(Box::new(Closing {
            frame: Some(close_frame(code, reason)),
            timer: self.ws.runtime().sleep(self.limits.close_timeout),
        }));
    }

    fn end_for(&self, e: CodecError) -> End {
        match e {
            CodecError::Closed => End::Clean,
            e => {
                let err = from_codec(e);
                if err.close_code().is_some() && self.closing.is_none() {
                    End::Fail(err)
                } else {
                    End::Lost(Some(err))
                }
            }
        }
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        self.link.shared.waker.register(cx.waker());
        let mut resident_polls = 0;
        loop {
            if let Some(e) = self.link.failed.take().map(|e| *e) {
                return Poll::Ready(Event::End(self.end_for(e)));
            }

            // Requests from the application or the server.
            let (request, shutdown, tripped, paused, resident) = {
                let mut out = self.link.shared.lock();
                // A close (requested or under way) goes first; after it a
                // gap no longer matters.
                if self.closing.is_none() && out.request.is_none() {
                    if let Some(topic) = out.take_gap() {
                        return Poll::Ready(Event::Gap(topic));
                    }
                    if out.wants_catch_up() {
                        return Poll::Ready(Event::CatchUp);
                    }
                    if let Some(job) = out.deferred.as_mut().and_then(|d| d.take_job()) {
                        return Poll::Ready(Event::Job(job));
                    }
                } else {
                    // Accepted behind a gap that will not be reported now:
                    // out ahead of the close.
                    out.release_held();
                }
                let tripped = std::mem::take(&mut out.backpressure_tripped);
                let resident = out.deferred.as_ref().is_some_and(|d| d.resident.is_some());
                (
                    out.request.take().map(|r| *r),
                    out.shutdown,
                    tripped,
                    out.reading_paused,
                    resident,
                )
            };
            match request {
                Some(CloseRequest::Terminate) => return Poll::Ready(Event::End(End::Terminated)),
                Some(CloseRequest::Graceful(code, reason)) => {
                    if tripped {
                        // Nothing queued will get through to a peer that
                        // does not read: close at once instead of behind it.
                        let front = self.link.shared.take_queue(&mut self.link.batch);
                        self.link.discard_batch();
                        // Begun by another task: it must still end.
                        self.link.take_wire(front);
                        self.begin_close(code, &reason);
                        return Poll::Ready(Event::Error(Error::new(ErrorKind::Backpressure)));
                    }
                    self.begin_close(code, &reason);
                }
                None => {}
            }

            // Reads first, within the budget, so replies to a burst coalesce.
            // Not while a message waits for a resident body to take it.
            let budget_left = self.reads_since_flush < READ_BUDGET;
            if budget_left && !paused {
                if let Err(e) = self.link.stage() {
                    return Poll::Ready(Event::End(self.end_for(e)));
                }
                match self.poll_read(cx) {
                    Poll::Ready(ev) => {
                        if matches!(ev, Event::Message(_)) {
                            self.reads_since_flush += 1;
                        }
                        return Poll::Ready(ev);
                    }
                    Poll::Pending => {}
                }
            }
            self.reads_since_flush = 0;

            if let Err(e) = self.link.pump(cx) {
                return Poll::Ready(Event::End(self.end_for(e)));
            }
            // A shutdown closes with 1001 after a short grace in which input
            // keeps being handled, so messages still in flight when the
            // signal came are answered. The grace, not a pause in the input,
            // ends it: a client that never stops sending is closed too.
            if shutdown && !self.shutdown_seen {
                let rt = self.ws.runtime();
                let grace = self
                    .shutdown_grace
                    .get_or_insert_with(|| Box::new(rt.sleep(SHUTDOWN_GRACE)));
                if grace.as_mut().poll(cx).is_ready() {
                    self.shutdown_seen = true;
                    self.shutdown_grace = None;
                    let (code, reason) = self.registration.drain_close();
                    crate::observe::drain_started(code);
                    let reason = reason.to_owned();
                    self.begin_close(code, &reason);
                }
            }

            if let Some(closing) = &mut self.closing {
                if closing.frame.is_some()
                    && !self.link.flushing
                    && self.link.shared.is_idle_queue()
                {
                    let frame = closing.frame.take().expect("checked above");
                    if let Err(e) = self.link.codec.close(frame) {
                        return Poll::Ready(Event::End(self.end_for(e)));
                    }
                    self.link.flushing = true;
                    continue;
                }
                if closing.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::End(End::Lost(Some(Error::new(
                        ErrorKind::CloseTimeout,
                    )))));
                }
            } else if std::mem::take(&mut self.link.drain_owed) {
                // After the shutdown check: a peer that keeps its queue over
                // the limit must not keep the driver from closing it.
                return Poll::Ready(Event::Drain);
            } else if paused {
                // The peer cannot be heard while its frames wait unread:
                // its silence does not count (it restarts when reading does).
            } else if let Poll::Ready(err) = self.poll_idle(cx) {
                return Poll::Ready(Event::Error(err));
            }
            if !budget_left {
                // Reading was skipped to let writes through; read again (and
                // register for input) with a fresh budget.
                continue;
            }
            // Last, once everything above is settled, so the body sees the
            // connection as it now stands (a close just begun, say).
            if resident && resident_polls < RESIDENT_BUDGET {
                resident_polls += 1;
                match self.link.shared.poll_resident(cx) {
                    Polled::Panicked(msg) => {
                        return Poll::Ready(Event::Error(Error::with_detail(
                            ErrorKind::HandlerPanic,
                            msg,
                        )));
                    }
                    // What it did (took a message, sent, asked to close)
                    // is looked at by another round.
                    Polled::Fine if self.link.shared.has_work(paused) => continue,
                    Polled::Fine => {}
                }
            } else if resident {
                // A body that keeps making work must not starve the runtime.
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        loop {
            let msg = match self.link.codec.poll_read(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(msg)) => msg,
                Poll::Ready(Err(e)) => return Poll::Ready(Event::End(self.end_for(e))),
            };
            self.link.shared.heard();
            self.pinged = false;
            match msg {
                Incoming::Text { payload, .. } if self.closing.is_none() => {
                    crate::observe::received(payload.len());
                    return Poll::Ready(Event::Message(Message::Text(Text::from_codec(payload))));
                }
                Incoming::Binary { payload, .. } if self.closing.is_none() => {
                    crate::observe::received(payload.len());
                    return Poll::Ready(Event::Message(Message::Binary(payload)));
                }
                // The codec queued a pong; make sure it is flushed.
                Incoming::Ping(_) => self.link.flushing = true,
                Incoming::Close(frame) => {
                    self.peer_close = Some(Box::new(match frame {
                        Some(f) => (CloseCode(f.code), f.reason),
                        None => (CloseCode::NO_STATUS, String::new()),
                    }));
                    self.link.shared.set_closing();
                    // The codec queued the reply; the next read flushes it.
                    self.link.flushing = true;
                }
                #[cfg(feature = "metrics")]
                Incoming::Pong(_) => {
                    if let Some(sent) = self.ping_sent.take() {
                        crate::observe::ping_answered(sent.elapsed());
                    }
                }
                // Data after our close frame, pongs, raw frames: nothing to do.
                _ => {}
            }
        }
    }

    /// Pings a quiet peer half-way through the idle timeout and fails it at
    /// the end, going by the ticks the server's sweeper counted.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Error> {
        let shared = &self.link.shared;
        if shared.idle_ticks == 0 {
            return Poll::Pending;
        }
        let quiet = shared.quiet.load(std::sync::atomic::Ordering::Relaxed);
        if quiet >= shared.idle_ticks {
            return Poll::Ready(Error::new(ErrorKind::IdleTimeout));
        }
        if quiet >= shared.ping_ticks() && !self.pinged {
            self.pinged = true;
            #[cfg(feature = "metrics")]
            {
                self.ping_sent = Some(crate::observe::Stamp::now());
            }
            let _ = self.ws.ping(bytes::Bytes::new());
            if let Err(e) = self.link.pump(cx) {
                self.link.failed = Some(Box::new(e));
            }
        }
        Poll::Pending
    }

    /// Ends the connection and runs `close` exactly once.
    async fn finish(&mut self, end: End) {
        let by = match &end {
            End::Clean if self.closing.is_some() => Initiator::Server,
            End::Clean => Initiator::Client,
            End::Fail(_) | End::Terminated => Initiator::Server,
            End::Lost(_) if self.peer_close.is_some() => Initiator::Client,
            End::Lost(_) => Initiator::Nobody,
        };
        let mut lost_code = CloseCode::ABNORMAL;
        let mut failed_with = None;
        match end {
            End::Clean => {
                let _ = poll_fn(|cx| self.link.codec.poll_shutdown(cx)).await;
            }
            End::Fail(err) => {
                let code = err.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                let reason = reason_for(&err);
                failed_with = Some((code, reason.to_owned()));
                lost_code = code;
                self.report(err).await;
                self.link.shared.set_closing();
                self.linger(close_frame(code, reason)).await;
            }
            End::Lost(err) => {
                if let Some(err) = err {
                    self.report(err).await;
                }
            }
            End::Terminated => {}
        }
        let (code, reason) = self
            .peer_close
            .take()
            .map(|b| *b)
            .or(failed_with)
            .unwrap_or((lost_code, String::new()));
        crate::observe::closed(code, by);
        if self.shutdown_seen {
            crate::observe::drain_ended();
        }
        farewell(&*self.handler, &mut self.ws, code, reason).await;
    }

    /// After a failure: writes what was already queued (those messages were
    /// accepted), sends the close frame, half-closes, and reads until the peer
    /// hangs up, so the frame is not destroyed by a reset for unread data.
    async fn linger(&mut self, frame: CloseFrame) {
        let link = &mut self.link;
        let mut timer = self.ws.runtime().sleep(self.limits.close_timeout);
        let mut frame = Some(frame);
        poll_fn(|cx| {
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            if let Some(f) = frame.take() {
                // Queue first, then the close frame behind it, then flush both.
                if link.pump(cx).is_err() || link.codec.close(f).is_err() {
                    return Poll::Ready(());
                }
            }
            match link.codec.poll_flush(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(CodecError::Io(_))) => return Poll::Ready(()),
                Poll::Ready(_) => {}
            }
            if link.codec.poll_shutdown(cx).is_pending() {
                return Poll::Pending;
            }
            loop {
                match link.codec.poll_discard(cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    }
}

fn reason_for(err: &Error) -> &'static str {
    match err.kind() {
        ErrorKind::MessageTooLarge => "message too big",
        ErrorKind::InvalidUtf8 => "invalid UTF-8",
        ErrorKind::IdleTimeout => "idle timeout",
        ErrorKind::Backpressure => "backpressure limit",
        ErrorKind::HandlerPanic => "internal error",
        ErrorKind::RateLimited => "rate limit",
        _ => "protocol error",
    }
}

#[cfg(test)]
mod tests {

    /// What an idle connection holds in wsway's own structures, the figures
    /// the benchmarks log quotes (docs/benchmarks-log.md, "Idle memory"): `cargo test -p wsway --lib
    /// idle_sizes -- --nocapture` prints them; the bounds keep them.
    #[test]
    fn idle_sizes() {
        fn output_size<A, R>(_: fn(A) -> R) -> usize {
            std::mem::size_of::<R>()
        }
        struct Idle;
        impl Handler for Idle {
            type Data = ();
        }
        let sizes = [
            ("driver", std::mem::size_of::<Driver<Idle>>()),
            (
                "codec",
                std::mem::size_of::<crate::connection::codec::Codec>(),
            ),
            (
                "decoder",
                std::mem::size_of::<crate::protocol::decoder::Decoder>(),
            ),
            (
                "outbox",
                std::mem::size_of::<crate::delivery::outbox::Shared>(),
            ),
            ("ws", std::mem::size_of::<crate::Ws<()>>()),
            (
                "info",
                std::mem::size_of::<crate::connection::socket::Info>(),
            ),
            // The connection's task: the driver and the futures it awaits.
            ("task", output_size(Driver::<Idle>::run)),
            // The same with the event layer's callbacks, which most apps use.
            (
                "task, event layer",
                output_size(Driver::<crate::Events<()>>::run),
            ),
        ];
        println!("{sizes:?}");
        // The log's figures: a change that grows one must say so there.
        let quoted = [
            ("driver", 376),
            ("codec", 144),
            ("decoder", 48),
            ("outbox", 184),
            ("ws", 72),
            ("info", 152),
            ("task", 424),
            ("task, event layer", 720),
        ];
        assert_eq!(sizes.len(), quoted.len(), "a bound for every structure");
        for ((name, size), (_, bound)) in sizes.iter().zip(quoted) {
            assert!(
                *size <= bound,
                "{name}: {size} B, docs/benchmarks-log.md says {bound}"
            );
        }
    }

    use super::*;
    use std::io;
    use std::pin::Pin;
    use std::sync::Mutex;

    /// A socket that never has input and records the size of every write.
    struct Recorder(Arc<Mutex<Vec<usize>>>);

    impl futures_io::AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }

    impl futures_io::AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.lock().unwrap().push(buf.len());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn queued_messages_leave_in_one_write() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let codec = Codec::new(
            Box::new(Recorder(writes.clone())),
            bytes::Bytes::new(),
            Limits::default().codec_config(),
            None,
        );
        let shared = Arc::new(Shared::new(1, 1 << 20, false));
        for i in 0..100 {
            shared.push(
                crate::protocol::Outgoing::text(format!("message {i:03}").into()),
                false,
            );
        }
        let mut link = Link {
            codec,
            shared: shared.clone(),
            batch: VecDeque::new(),
            flushing: false,
            claimed: false,
            drain_owed: false,
            failed: None,
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        link.pump(&mut cx).unwrap();
        // 100 frames of 2 + 11 bytes, in a single write.
        assert_eq!(*writes.lock().unwrap(), [1300]);
        assert!(shared.is_idle_queue());
    }
}
