//! The RFC 6455 codec (tungstenite's `WebSocketContext`) driven by polls.
//!
//! tungstenite speaks `std::io`; [`Blocking`] turns a poll into that for the
//! length of a call, so a `WouldBlock` here always means the task's waker is
//! registered with the socket. Reads come through the connection's
//! [`ReadAhead`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tungstenite::Error as WsError;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};

use crate::io::{Blocking, BoxIo};
use crate::readahead::ReadAhead;

pub(crate) struct Codec {
    /// Made on the first byte in either direction: until then a connection
    /// holds no codec state or buffer at all.
    ctx: Option<Box<WebSocketContext>>,
    config: WebSocketConfig,
    io: BoxIo,
    ahead: ReadAhead,
    /// The codec's last read ran out of input: it holds no unparsed bytes.
    drained: bool,
}

fn is_would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// A would-block from the socket is "not yet" (`Pending`).
fn pending_if_blocked<T>(r: Result<T, WsError>) -> Poll<Result<T, WsError>> {
    match r {
        Err(e) if is_would_block(&e) => Poll::Pending,
        r => Poll::Ready(r),
    }
}

/// A would-block after a frame was buffered is success: it is written later.
fn ok_if_blocked(r: Result<(), WsError>) -> Result<(), WsError> {
    match r {
        Err(e) if is_would_block(&e) => Ok(()),
        r => r,
    }
}

impl Codec {
    /// A server-side codec over `io`; `prefix` is what hyper read past the
    /// request head (the client may have sent frames right behind it).
    pub(crate) fn new(io: BoxIo, prefix: Bytes, config: WebSocketConfig) -> Self {
        // Frames the client sent right behind its request head need a codec now.
        let ctx = (!prefix.is_empty()).then(|| {
            let part = prefix.to_vec();
            Box::new(WebSocketContext::from_partially_read(
                part,
                Role::Server,
                Some(config),
            ))
        });
        Codec {
            drained: prefix.is_empty(),
            ctx,
            config,
            io,
            ahead: ReadAhead::default(),
        }
    }

    /// The codec (made now if this is the first traffic) and a std-IO view
    /// of the socket, borrowed side by side.
    fn parts<'a, 'b>(
        &'a mut self,
        cx: &'a mut Context<'b>,
    ) -> (&'a mut WebSocketContext, Blocking<'a, 'b>) {
        let Codec {
            ctx,
            config,
            io,
            ahead,
            ..
        } = self;
        let ctx =
            ctx.get_or_insert_with(|| Box::new(WebSocketContext::new(Role::Server, Some(*config))));
        (ctx, Blocking { io, ahead, cx })
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<tungstenite::Message, WsError>> {
        // The codec has parsed all it had, nothing new arrived and no closing
        // handshake is under way: leave the codec alone, so its buffer stays
        // untouched while the peer is quiet.
        if self.drained
            && self.ahead.is_empty()
            && self.can_write()
            && self.ahead.poll_fill(&mut self.io, cx).is_pending()
        {
            return Poll::Pending;
        }
        let (ctx, mut io) = self.parts(cx);
        let read = pending_if_blocked(ctx.read(&mut io));
        self.drained = read.is_pending();
        read
    }

    /// Queues a message in the codec's buffer; it is written by `poll_flush`
    /// (or sooner, once the buffer is large).
    pub(crate) fn write(
        &mut self,
        cx: &mut Context<'_>,
        msg: tungstenite::Message,
    ) -> Result<(), WsError> {
        let (ctx, mut io) = self.parts(cx);
        ok_if_blocked(ctx.write(&mut io, msg))
    }

    pub(crate) fn close(&mut self, cx: &mut Context<'_>, frame: CloseFrame) -> Result<(), WsError> {
        let (ctx, mut io) = self.parts(cx);
        ok_if_blocked(ctx.close(&mut io, Some(frame)))
    }

    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        if self.ctx.is_none() {
            return Poll::Ready(Ok(()));
        }
        let (ctx, mut io) = self.parts(cx);
        pending_if_blocked(ctx.flush(&mut io))
    }

    pub(crate) fn can_write(&self) -> bool {
        self.ctx.as_ref().is_none_or(|ctx| ctx.can_write())
    }

    /// Half-closes the socket (FIN): nothing more will be written.
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_close(cx)
    }

    /// Reads and discards raw bytes; `Ok(0)` is end of stream. Used to linger
    /// after failing a connection, so that the close frame reaches the peer
    /// instead of being destroyed by a reset for unread data.
    pub(crate) fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut scratch = [0u8; 2048];
        let (_, mut io) = self.parts(cx);
        match std::io::Read::read(&mut io, &mut scratch) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            r => Poll::Ready(r),
        }
    }
}
