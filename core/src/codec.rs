//! The RFC 6455 codec (tungstenite's `WebSocketContext`) driven by polls.
//!
//! tungstenite speaks `std::io`; [`Blocking`] turns a poll into that for the
//! length of a call, so a `WouldBlock` here always means the task's waker is
//! registered with the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tungstenite::Error as WsError;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};

use crate::io::{Blocking, BoxIo};

pub(crate) struct Codec {
    ctx: WebSocketContext,
    io: BoxIo,
}

fn is_would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl Codec {
    /// A server-side codec over `io`; `prefix` is what hyper read past the
    /// request head (the client may have sent frames right behind it).
    pub(crate) fn new(io: BoxIo, prefix: Bytes, config: WebSocketConfig) -> Self {
        let ctx = if prefix.is_empty() {
            WebSocketContext::new(Role::Server, Some(config))
        } else {
            WebSocketContext::from_partially_read(prefix.to_vec(), Role::Server, Some(config))
        };
        Codec { ctx, io }
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<tungstenite::Message, WsError>> {
        match self.ctx.read(&mut Blocking {
            io: &mut self.io,
            cx,
        }) {
            Err(e) if is_would_block(&e) => Poll::Pending,
            r => Poll::Ready(r),
        }
    }

    /// Queues a message in the codec's buffer; it is written by `poll_flush`
    /// (or sooner, once the buffer is large).
    pub(crate) fn write(
        &mut self,
        cx: &mut Context<'_>,
        msg: tungstenite::Message,
    ) -> Result<(), WsError> {
        match self.ctx.write(
            &mut Blocking {
                io: &mut self.io,
                cx,
            },
            msg,
        ) {
            // The frame is in the buffer; the socket is just full.
            Err(e) if is_would_block(&e) => Ok(()),
            r => r,
        }
    }

    pub(crate) fn close(&mut self, cx: &mut Context<'_>, frame: CloseFrame) -> Result<(), WsError> {
        match self.ctx.close(
            &mut Blocking {
                io: &mut self.io,
                cx,
            },
            Some(frame),
        ) {
            Err(e) if is_would_block(&e) => Ok(()),
            r => r,
        }
    }

    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.ctx.flush(&mut Blocking {
            io: &mut self.io,
            cx,
        }) {
            Err(e) if is_would_block(&e) => Poll::Pending,
            r => Poll::Ready(r),
        }
    }

    pub(crate) fn can_write(&self) -> bool {
        self.ctx.can_write()
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
        Pin::new(&mut *self.io).poll_read(cx, &mut scratch)
    }
}
