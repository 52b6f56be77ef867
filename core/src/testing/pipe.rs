//! An in-memory, bounded, two-way byte stream: what a test client and the
//! server talk over instead of a TCP socket.
//!
//! Each direction holds at most [`CAPACITY`] bytes, so a reader that stops
//! reading pushes back on its writer the way a socket's buffers do (the
//! backpressure limits work as on a real socket).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_io::{AsyncRead, AsyncWrite};

/// Bytes one direction holds before its writer waits.
pub(crate) const CAPACITY: usize = 256 << 10;

/// One direction of the stream.
#[derive(Default)]
struct Direction {
    bytes: VecDeque<u8>,
    /// The writing end closed (or dropped): the reader sees end of stream
    /// once it has read what is left.
    shut: bool,
    /// The reading end dropped: writes fail.
    reader_gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

type Shared = Arc<Mutex<Direction>>;

fn lock(d: &Shared) -> MutexGuard<'_, Direction> {
    // Only plain field updates happen under the lock: no panic can poison it.
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// One end of the stream.
pub(crate) struct End {
    incoming: Shared,
    outgoing: Shared,
}

/// Two connected ends: what one writes, the other reads.
pub(crate) fn pair() -> (End, End) {
    let a: Shared = Arc::default();
    let b: Shared = Arc::default();
    (
        End {
            incoming: a.clone(),
            outgoing: b.clone(),
        },
        End {
            incoming: b,
            outgoing: a,
        },
    )
}

impl AsyncRead for End {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut d = lock(&self.incoming);
        if d.bytes.is_empty() {
            if d.shut || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            d.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(d.bytes.len());
        for (slot, byte) in buf.iter_mut().zip(d.bytes.drain(..n)) {
            *slot = byte;
        }
        if let Some(w) = d.writer.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for End {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut d = lock(&self.outgoing);
        if d.reader_gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if d.shut {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after close",
            )));
        }
        let room = CAPACITY - d.bytes.len();
        if room == 0 {
            d.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        d.bytes.extend(&buf[..n]);
        if let Some(w) = d.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Half-closes: the other end reads what is left, then end of stream.
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shut_write();
        Poll::Ready(Ok(()))
    }
}

impl End {
    fn shut_write(&self) {
        let mut d = lock(&self.outgoing);
        d.shut = true;
        if let Some(w) = d.reader.take() {
            w.wake();
        }
    }
}

impl Drop for End {
    fn drop(&mut self) {
        self.shut_write();
        let mut d = lock(&self.incoming);
        d.reader_gone = true;
        d.bytes.clear();
        if let Some(w) = d.writer.take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn bytes_cross_and_close_ends_the_stream() {
        let (mut a, mut b) = pair();
        block_on(async {
            a.write_all(b"hello").await.unwrap();
            a.close().await.unwrap();
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"hello");
            // The other direction is still open.
            b.write_all(b"back").await.unwrap();
            let mut four = [0; 4];
            a.read_exact(&mut four).await.unwrap();
            assert_eq!(&four, b"back");
        });
    }

    #[test]
    fn a_full_direction_waits_and_a_dropped_reader_fails_writes() {
        let (mut a, b) = pair();
        let big = vec![7u8; CAPACITY + 1];
        let mut cx = Context::from_waker(Waker::noop());
        let wrote = Pin::new(&mut a).poll_write(&mut cx, &big);
        assert!(matches!(wrote, Poll::Ready(Ok(n)) if n == CAPACITY));
        assert!(Pin::new(&mut a).poll_write(&mut cx, &big).is_pending());
        drop(b);
        assert!(matches!(
            Pin::new(&mut a).poll_write(&mut cx, &big),
            Poll::Ready(Err(_))
        ));
    }
}
