//! What a loop-style connection's function and its driver share: the
//! message waiting for `recv`, how the connection ended, the cancellation,
//! and the topics the function joined.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_lite::FutureExt as _;

use crate::boxed::BoxFuture;
use crate::connection::socket::Ws;
use crate::delivery::outbox::Shared;
use crate::error::Error;
use crate::message::{CloseCode, Message};
use crate::runtime::BoxSleep;
use crate::trigger::Trigger;

/// Shared by the [`Socket`](super::Socket) and the route's handler.
pub(crate) struct LoopState {
    pub(crate) shared: Arc<Shared>,
    /// The topics and presence the function joined (the driver's own `Ws`
    /// has its callbacks' data, which a loop does not use).
    pub(crate) ws: Mutex<Ws<()>>,
    inner: Mutex<Inner>,
    /// Fired when the connection starts closing or the server shuts down.
    pub(crate) cancel: Arc<Trigger>,
    /// Drains, gaps and the end, for whoever waits on them.
    pub(crate) changed: event_listener::Event,
    /// The driver is polling the function right now: its sends need no
    /// wake-up, the driver writes them next.
    pub(crate) on_task: AtomicBool,
}

#[derive(Default)]
struct Inner {
    /// Read from the peer, not yet taken by `recv` (one at most: the driver
    /// stops reading until it is taken).
    inbox: VecDeque<Message>,
    /// `recv` waits (on another task, when the socket was moved there).
    waker: Option<Waker>,
    gaps: VecDeque<Arc<str>>,
    /// The close code and reason, once the connection has ended.
    ended: Option<(CloseCode, String)>,
    error: Option<Error>,
    /// The socket was dropped (kept open or not): nothing takes messages
    /// any more.
    socket_gone: bool,
}

impl LoopState {
    pub(crate) fn new<D>(ws: &Ws<D>) -> Self {
        LoopState {
            shared: ws.shared().clone(),
            ws: Mutex::new(ws.sibling(())),
            inner: Mutex::default(),
            cancel: Arc::default(),
            changed: event_listener::Event::new(),
            on_task: AtomicBool::new(false),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Only plain field updates run under this lock: poisoning is
        // impossible, and ignoring it is sound.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn ws(&self) -> MutexGuard<'_, Ws<()>> {
        // As above: the `Ws` calls made under it do not panic.
        self.ws.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The driver read a message: it waits for `recv`, and nothing more is
    /// read until it is taken. Once the socket is gone (kept open, or moved
    /// off and dropped), messages are read and dropped, so the peer's
    /// pings and close are still seen.
    pub(crate) fn deliver(&self, msg: Message) {
        let waker = {
            let mut inner = self.inner();
            if inner.socket_gone {
                return;
            }
            // Paused before the message can be taken: a `recv` on another
            // thread may take it at once, and its resume must come after
            // this pause, or reading would stay paused with nothing unread.
            self.shared.pause_reading();
            inner.inbox.push_back(msg);
            inner.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// `recv`: the next message, `None` once the connection is closing and
    /// nothing is left.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let mut inner = self.inner();
        if let Some(msg) = inner.inbox.pop_front() {
            drop(inner);
            self.shared
                .resume_reading(!self.on_task.load(Ordering::Relaxed));
            return Poll::Ready(Some(msg));
        }
        if inner.ended.is_some() || self.shared.ready_state() != crate::ReadyState::Open {
            return Poll::Ready(None);
        }
        inner.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The queue drained: whoever waits in `Socket::drained` looks again.
    pub(crate) fn drained(&self) {
        self.changed.notify(usize::MAX);
    }

    pub(crate) fn gap(&self, topic: &str) {
        self.inner().gaps.push_back(topic.into());
        self.changed.notify(usize::MAX);
    }

    pub(crate) fn take_gap(&self) -> Option<Arc<str>> {
        self.inner().gaps.pop_front()
    }

    pub(crate) fn failed(&self, err: &Error) {
        self.inner().error = Some(err.clone());
    }

    pub(crate) fn error(&self) -> Option<Error> {
        self.inner().error.clone()
    }

    pub(crate) fn ended(&self) -> Option<(CloseCode, String)> {
        self.inner().ended.clone()
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.inner().ended.is_some()
    }

    /// Fires the cancellation once the connection winds down.
    pub(crate) fn watch(&self) {
        if !self.cancel.is_fired() && self.shared.is_winding_down() {
            self.cancel.fire();
            self.changed.notify(usize::MAX);
        }
    }

    /// The socket was dropped. Unless kept open, the connection closes
    /// normally (a close already under way, a 1011 after a panic say,
    /// stands).
    pub(crate) fn socket_dropped(&self, keep_open: bool) {
        {
            let mut inner = self.inner();
            inner.socket_gone = true;
            inner.inbox.clear();
        }
        self.shared
            .resume_reading(!self.on_task.load(Ordering::Relaxed));
        if !keep_open {
            let wake = !self.on_task.load(Ordering::Relaxed);
            let _ = self.shared.request_close(CloseCode::NORMAL, "", wake);
        }
    }

    pub(crate) fn socket_gone(&self) -> bool {
        self.inner().socket_gone
    }

    /// The connection has ended: `recv` returns what is left, then `None`;
    /// the cancellation fires.
    pub(crate) fn end(&self, code: CloseCode, reason: &str) {
        let waker = {
            let mut inner = self.inner();
            inner.ended = Some((code, reason.to_owned()));
            inner.waker.take()
        };
        self.cancel.fire();
        self.changed.notify(usize::MAX);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// After the end: gives the function until `deadline` to finish (a
    /// panic in its cleanup has nowhere to go), then leaves its topics.
    pub(crate) async fn finish(&self, body: Option<BoxFuture<'static, ()>>, deadline: BoxSleep) {
        // Gone from presence first, as for callbacks, so a farewell it
        // publishes reaches others after the member has left.
        self.ws().untrack_all();
        if let Some(body) = body {
            let cleanup = async {
                let _ = AssertUnwindSafe(body).catch_unwind().await;
            };
            cleanup.or(deadline).await;
        }
        self.ws().unsubscribe_all();
    }
}

/// The function's future as the driver's resident body: it fires the
/// cancellation when the connection winds down, and outlives the function
/// while the socket lives elsewhere (so the cancellation still fires).
pub(crate) struct Running {
    body: Option<BoxFuture<'static, ()>>,
    state: Arc<LoopState>,
}

impl Running {
    pub(crate) fn new(body: BoxFuture<'static, ()>, state: Arc<LoopState>) -> Self {
        Running {
            body: Some(body),
            state,
        }
    }
}

impl Future for Running {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.state.watch();
        if let Some(body) = &mut this.body {
            let polled = {
                let _on = OnTask::enter(&this.state.on_task);
                body.as_mut().poll(cx)
            };
            if polled.is_ready() {
                this.body = None;
            }
        }
        // Once the connection has ended nothing is left to watch for.
        if this.body.is_none() && (this.state.socket_gone() || this.state.is_ended()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Marks the function as being polled by the driver, until dropped (a
/// panic included).
struct OnTask<'a>(&'a AtomicBool);

impl<'a> OnTask<'a> {
    fn enter(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Relaxed);
        OnTask(flag)
    }
}

impl Drop for OnTask<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Fires when the connection starts closing (either side), when it ends,
/// or when the server starts shutting down: the signal to stop work started
/// for the connection. Cloneable, for tasks the function spawns.
#[derive(Clone)]
pub struct Cancellation {
    pub(crate) trigger: Arc<Trigger>,
}

impl std::fmt::Debug for Cancellation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancellation")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancellation {
    /// Whether it has fired.
    pub fn is_cancelled(&self) -> bool {
        self.trigger.is_fired()
    }

    /// Waits until it fires.
    pub async fn cancelled(&self) {
        self.trigger.wait().await
    }
}
