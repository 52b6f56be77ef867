//! The connection's side of the protocol: the sans-IO [`protocol`]
//! driven by polls over the socket, with the replies RFC 6455 makes
//! automatic (a pong for a ping, a close for a close) and the closing
//! handshake's state.
//!
//! [`protocol`]: crate::protocol

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};

use crate::connection::compressor::Session;
use crate::error::{Error, ErrorKind};
use crate::io::BoxIo;
use crate::protocol::{
    CloseFrame, Decoder, DecoderConfig, Incoming, Opcode, Outgoing, ProtocolError, encoder,
};

/// Why the codec cannot go on.
#[derive(Debug)]
pub(crate) enum CodecError {
    /// The peer broke the protocol (or a limit): fail the connection.
    Protocol(ProtocolError),
    /// The socket failed, or ended without a closing handshake.
    Io(io::Error),
    /// The closing handshake is complete (or this side already closed).
    Closed,
}

pub(crate) struct Codec {
    io: BoxIo,
    decoder: Decoder,
    /// permessage-deflate, when agreed in the handshake.
    deflate: Option<Box<Session>>,
    /// Bytes read and not yet decoded; released whenever it runs empty, so
    /// a quiet connection holds no read buffer.
    read: BytesMut,
    /// Frames encoded and not yet written, and how much of them was.
    write: Vec<u8>,
    written: usize,
    sent_close: bool,
    received_close: bool,
    /// The socket reported end of stream.
    eof: bool,
}

impl Codec {
    /// A server-side codec over `io`; `prefix` is what hyper read past the
    /// request head (the client may have sent frames right behind it).
    pub(crate) fn new(
        io: BoxIo,
        prefix: Bytes,
        mut config: DecoderConfig,
        deflate: Option<Session>,
    ) -> Self {
        config.compression = deflate.is_some();
        Codec {
            io,
            decoder: Decoder::new(config),
            deflate: deflate.map(Box::new),
            read: BytesMut::from(&prefix[..]),
            write: Vec::new(),
            written: 0,
            sent_close: false,
            received_close: false,
            eof: false,
        }
    }

    /// The next message or control frame from the peer. Pings are answered
    /// and a close is echoed (both written by the next flush); once both
    /// closes have been exchanged and ours is written, the answer is
    /// [`CodecError::Closed`].
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, CodecError>> {
        loop {
            if self.received_close && self.sent_close {
                return match self.poll_flush(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => Poll::Ready(Err(CodecError::Closed)),
                };
            }
            match self.decoder.decode(&mut self.read) {
                Err(e) => return Poll::Ready(Err(CodecError::Protocol(e))),
                Ok(Some(item)) => {
                    self.answer(&item);
                    return Poll::Ready(self.inflated(item));
                }
                Ok(None) => {}
            }
            if self.eof {
                return Poll::Ready(Err(CodecError::Io(io::ErrorKind::UnexpectedEof.into())));
            }
            match crate::connection::readahead::poll_read_into(&mut self.io, cx, &mut self.read) {
                Poll::Pending => {
                    if self.read.is_empty() {
                        self.read = BytesMut::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(CodecError::Io(e))),
            }
        }
    }

    /// A compressed message inflated (within the message limit, text
    /// checked as it inflates); anything else as it came.
    fn inflated(&mut self, item: Incoming) -> Result<Incoming, CodecError> {
        let (payload, text) = match item {
            Incoming::Text {
                payload,
                compressed: true,
            } => (payload, true),
            Incoming::Binary {
                payload,
                compressed: true,
            } => (payload, false),
            other => return Ok(other),
        };
        let Some(session) = self.deflate.as_mut() else {
            return Err(CodecError::Protocol(ProtocolError::ReservedBits));
        };
        let inflated = session
            .inflate(&payload, self.decoder.config().max_message, text)
            .map_err(CodecError::Protocol)?;
        let payload = Bytes::from(inflated);
        Ok(if text {
            Incoming::Text {
                payload,
                compressed: false,
            }
        } else {
            Incoming::Binary {
                payload,
                compressed: false,
            }
        })
    }

    /// The replies the RFC makes automatic: a pong with the ping's payload
    /// (§5.5.2), and a close echoing the peer's code (§5.5.1).
    fn answer(&mut self, item: &Incoming) {
        match item {
            Incoming::Ping(payload) if !self.sent_close => {
                Outgoing::pong(payload.clone()).encode(&mut self.write);
            }
            Incoming::Close(frame) => {
                self.received_close = true;
                if !self.sent_close {
                    self.sent_close = true;
                    let reply = match frame {
                        Some(f) => Outgoing::close(f.code, ""),
                        None => Outgoing {
                            opcode: Opcode::Close,
                            payload: Bytes::new(),
                        },
                    };
                    reply.encode(&mut self.write);
                }
            }
            _ => {}
        }
    }

    /// Encodes a message (or ping, pong) into the write buffer; it is
    /// written by [`poll_flush`](Self::poll_flush).
    pub(crate) fn write(&mut self, msg: Outgoing) -> Result<(), CodecError> {
        if !self.can_write() {
            return Err(CodecError::Closed);
        }
        let data = matches!(msg.opcode, Opcode::Text | Opcode::Binary);
        match self.deflate.as_mut().filter(|_| data) {
            Some(session) => match session.compress(&msg.payload) {
                Some(packed) => encoder::encode(msg.opcode, true, &packed, &mut self.write),
                None => msg.encode(&mut self.write),
            },
            None => msg.encode(&mut self.write),
        }
        Ok(())
    }

    /// Puts `rest` (the end of a frame another task began writing to the
    /// socket) ahead of everything not yet written: it must be next on the
    /// wire.
    pub(crate) fn put_front(&mut self, rest: &[u8]) {
        self.write
            .splice(self.written..self.written, rest.iter().copied());
    }

    /// Starts the closing handshake (or fails the connection) with `frame`;
    /// nothing but the reply is read after it.
    pub(crate) fn close(&mut self, frame: CloseFrame) -> Result<(), CodecError> {
        if self.sent_close {
            return Ok(());
        }
        self.sent_close = true;
        Outgoing::close(frame.code, &frame.reason).encode(&mut self.write);
        Ok(())
    }

    /// Writes what is buffered. The buffer is released once written, so a
    /// quiet connection holds none.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        while self.written < self.write.len() {
            match Pin::new(&mut *self.io).poll_write(cx, &self.write[self.written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(CodecError::Io(io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(CodecError::Io(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        if !self.write.is_empty() {
            self.write = Vec::new();
            self.written = 0;
        }
        Pin::new(&mut *self.io)
            .poll_flush(cx)
            .map_err(CodecError::Io)
    }

    /// False once either side has sent its close: data can no longer go out.
    pub(crate) fn can_write(&self) -> bool {
        !self.sent_close && !self.received_close
    }

    /// Half-closes the socket (FIN): nothing more will be written.
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_close(cx)
    }

    /// Reads and discards raw bytes; `Ok(0)` is end of stream. Used to linger
    /// after failing a connection, so that the close frame reaches the peer
    /// instead of being destroyed by a reset for unread data.
    pub(crate) fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.read.clear();
        let read = crate::connection::readahead::poll_read_into(&mut self.io, cx, &mut self.read);
        self.read = BytesMut::new();
        read
    }
}

/// Maps a codec error to ours.
pub(crate) fn from_codec(err: CodecError) -> Error {
    match err {
        CodecError::Protocol(e) => {
            let kind = match e.close_code() {
                1009 => ErrorKind::MessageTooLarge,
                1007 => ErrorKind::InvalidUtf8,
                _ => ErrorKind::Protocol,
            };
            Error::with_detail(kind, e.to_string())
        }
        CodecError::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Error::with_detail(ErrorKind::ConnectionLost, e.to_string())
        }
        CodecError::Io(e) => Error::with_detail(ErrorKind::Io, e.to_string()),
        CodecError::Closed => Error::new(ErrorKind::Closed),
    }
}
