//! Reads under the codec: the socket is read in large chunks into a buffer
//! borrowed from a small per-thread pool, and only what arrived is copied
//! into the connection's own buffer.
//!
//! This is what lets a connection hold no read buffer while it is quiet
//! (an idle connection's memory) without paying a syscall per small read
//! (a busy connection's CPU): the chunk goes straight back to its thread's
//! pool, serving whichever connection that thread polls next.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;

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

/// Reads what the socket has into `out`, through a pooled chunk: one
/// syscall reads up to 64 KiB, and only the bytes read are copied into
/// `out` (which grows by what arrived, never by what a peer announced).
/// `Ok(0)` is end of stream. `Pending` leaves no chunk held.
pub(crate) fn poll_read_into(
    io: &mut BoxIo,
    cx: &mut Context<'_>,
    out: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let mut chunk = take_chunk();
    let read = Pin::new(&mut **io).poll_read(cx, &mut chunk);
    if let Poll::Ready(Ok(n)) = read {
        out.extend_from_slice(&chunk[..n]);
    }
    give_back(chunk);
    read
}
