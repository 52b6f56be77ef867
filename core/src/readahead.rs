//! Read-ahead under the codec: the socket is read in large chunks into a
//! buffer borrowed from a small per-thread pool, and the codec copies from
//! it in the small pieces it asks for.
//!
//! This is what lets the codec's own buffer stay tiny (an idle connection's
//! memory) without paying a syscall per tiny read (a busy connection's CPU).
//! A connection holds a chunk only while it has unread bytes in it; the rest
//! of the time the chunk is back in its thread's pool, serving whichever
//! connection that thread polls next.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::io::BoxIo;

/// Bytes read from the socket per syscall.
const CHUNK: usize = 64 << 10;
/// Spare chunks a thread keeps for reuse.
const SPARES: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

fn take_chunk() -> Box<[u8]> {
    POOL.with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; CHUNK].into_boxed_slice())
}

fn give_back(chunk: Box<[u8]>) {
    POOL.with(|p| {
        let mut pool = p.borrow_mut();
        if pool.len() < SPARES {
            pool.push(chunk);
        }
    });
}

/// A connection's unread input.
#[derive(Default)]
pub(crate) struct ReadAhead {
    chunk: Option<Box<[u8]>>,
    start: usize,
    end: usize,
    /// The socket reported end of stream or an error, to be handed to the
    /// codec once the buffered bytes are consumed.
    done: Option<io::Result<()>>,
}

impl ReadAhead {
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end && self.done.is_none()
    }

    fn release(&mut self) {
        if let Some(chunk) = self.chunk.take() {
            give_back(chunk);
        }
        self.start = 0;
        self.end = 0;
    }

    /// Reads what the socket has into a chunk. `Pending` leaves no chunk held.
    pub(crate) fn poll_fill(&mut self, io: &mut BoxIo, cx: &mut Context<'_>) -> Poll<()> {
        debug_assert!(self.start == self.end);
        let chunk = self.chunk.get_or_insert_with(take_chunk);
        match Pin::new(&mut **io).poll_read(cx, chunk) {
            Poll::Ready(Ok(0)) => {
                self.release();
                self.done = Some(Ok(()));
                Poll::Ready(())
            }
            Poll::Ready(Ok(n)) => {
                self.start = 0;
                self.end = n;
                Poll::Ready(())
            }
            Poll::Ready(Err(e)) => {
                self.release();
                self.done = Some(Err(e));
                Poll::Ready(())
            }
            Poll::Pending => {
                self.release();
                Poll::Pending
            }
        }
    }

    /// Serves a read from the buffered bytes, filling from the socket when
    /// empty; `WouldBlock` when the socket has nothing (waker registered).
    pub(crate) fn read(
        &mut self,
        io: &mut BoxIo,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> io::Result<usize> {
        if self.start == self.end {
            if let Some(done) = self.done.take() {
                // End of stream stays visible to every later read.
                let eof = done.is_ok();
                if eof {
                    self.done = Some(Ok(()));
                }
                return done.map(|()| 0);
            }
            if self.poll_fill(io, cx).is_pending() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            return self.read(io, cx, out);
        }
        let chunk = self.chunk.as_ref().expect("bytes buffered without a chunk");
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&chunk[self.start..self.start + n]);
        self.start += n;
        if self.start == self.end {
            self.release();
        }
        Ok(n)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.release();
    }
}
