//! IO plumbing: the boxed byte stream core works on, and the bridge that
//! lets hyper drive it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// A connected byte stream, as an adapter hands it to core: any futures-io
/// `AsyncRead + AsyncWrite` (tokio streams are converted by their adapter)
/// whose `poll_close` half-closes the connection (see [`HalfClose`]).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

pub(crate) type BoxIo = Box<dyn Io>;

/// The write side of a connected socket, usable from any task without
/// waiting: what lets a publish write to an idle subscriber at once, as
/// Bun and uWebSockets do inside `publish`, instead of waking the
/// subscriber's task to do it.
///
/// An adapter offers one through [`Listener::try_writer`](crate::rt::Listener::try_writer)
/// when its stream is a plain TCP socket that can be shared (tokio's and
/// async-io's can). Core calls it only while the connection's own task is
/// not writing, under the connection's outbox lock, so writes never
/// interleave; what the socket does not take is handed to that task.
pub trait TryWrite: Send + Sync + 'static {
    /// Writes as much of `buf` as the socket takes now, without waiting:
    /// the count written, or `WouldBlock` when it takes nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

/// Wraps a stream whose `poll_close` only flushes (async-io's and
/// async-std's TCP streams) so that closing half-closes it (a TCP FIN).
///
/// Core relies on `poll_close` sending FIN: after failing a connection it
/// half-closes and keeps reading, so the close frame reaches the peer rather
/// than being destroyed by a reset. Adapters whose streams already shut down
/// on close (tokio's, through its conversion) do not need this.
pub struct HalfClose<S> {
    inner: S,
    shutdown: fn(&S) -> io::Result<()>,
}

impl<S> HalfClose<S> {
    /// Wraps `inner`; `shutdown` shuts down its write side, e.g.
    /// `|s| s.get_ref().shutdown(std::net::Shutdown::Write)`.
    pub fn new(inner: S, shutdown: fn(&S) -> io::Result<()>) -> Self {
        HalfClose { inner, shutdown }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HalfClose<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HalfClose<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        Poll::Ready((self.shutdown)(&self.inner))
    }
}

/// hyper's IO traits over a futures-io stream. Written once here so every
/// adapter shares it; after an upgrade, `hyper::upgrade::Upgraded::downcast`
/// hands the same stream back and WebSocket frames never pass through hyper.
pub(crate) struct HyperIo(pub(crate) BoxIo);

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // Reading through an initialized stack buffer keeps this free of
        // `unsafe`; it only carries request heads, so the copy is small.
        let mut tmp = [0u8; 4096];
        let want = buf.remaining().min(tmp.len());
        match Pin::new(&mut *self.0).poll_read(cx, &mut tmp[..want]) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(&tmp[..n]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_close(cx)
    }
}

/// A stream another server upgraded (an axum or hyper host, through
/// [`AppService`](crate::AppService)), as futures-io: the one way WebSocket
/// bytes pass through hyper's IO traits, since the host's stream type is
/// not ours to take back.
pub(crate) struct Hosted(pub(crate) hyper::upgrade::Upgraded);

impl AsyncRead for Hosted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read = hyper::rt::ReadBuf::new(buf);
        std::task::ready!(hyper::rt::Read::poll_read(
            Pin::new(&mut self.0),
            cx,
            read.unfilled()
        ))?;
        Poll::Ready(Ok(read.filled().len()))
    }
}

impl AsyncWrite for Hosted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write_vectored(Pin::new(&mut self.0), cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.0), cx)
    }

    /// Half-closes: the host's stream shuts down its write side.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}

/// A stream whose first bytes were read to see what it speaks (HTTP/2's
/// preface or an HTTP/1.1 request), put back in front of the rest.
#[cfg(feature = "http2")]
pub(crate) struct Rewind {
    pub(crate) head: bytes::Bytes,
    pub(crate) io: BoxIo,
}

#[cfg(feature = "http2")]
impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.head.is_empty() {
            return Pin::new(&mut *self.io).poll_read(cx, buf);
        }
        let n = self.head.len().min(buf.len());
        buf[..n].copy_from_slice(&self.head.split_to(n));
        Poll::Ready(Ok(n))
    }
}

#[cfg(feature = "http2")]
impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_close(cx)
    }
}
