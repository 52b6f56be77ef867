//! The listener. async-io's streams already speak futures-io; they only need
//! closing to half-close.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smol::Async;
use smol::io::{AsyncRead, AsyncWrite};
use wsway::rt::{HalfClose, TryWrite};

pub(crate) struct Listener(pub(crate) Async<TcpListener>);

impl Listener {
    /// Binds the first address `addr` resolves to.
    pub(crate) fn bind(addr: impl std::net::ToSocketAddrs) -> io::Result<Self> {
        let addr = addr.to_socket_addrs()?.next();
        let addr =
            addr.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))?;
        Async::<TcpListener>::bind(addr).map(Listener)
    }

    /// Adopts a listening socket bound elsewhere (inherited, or passed in).
    pub(crate) fn adopt(listener: TcpListener) -> io::Result<Self> {
        Async::new(listener).map(Listener)
    }
}

impl wsway::rt::Listener for Listener {
    type Io = HalfClose<Stream>;

    async fn accept(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        let (stream, remote) = self.0.accept().await?;
        // Small frames should leave at once, not wait for Nagle's timer.
        stream.get_ref().set_nodelay(true)?;
        let stream = HalfClose::new(Stream(Arc::new(Socket(stream))), |s| {
            s.0.0.get_ref().shutdown(Shutdown::Write)
        });
        Ok((stream, remote))
    }

    fn try_writer(io: &Self::Io) -> Option<Arc<dyn TryWrite>> {
        Some(io.get_ref().0.clone())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

/// An accepted socket, shared with the handle core writes through from
/// other tasks; async-io reads and writes through `&Async`.
pub(crate) struct Stream(Arc<Socket>);

/// The socket both handles share.
pub(crate) struct Socket(Async<TcpStream>);

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &self.0.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &self.0.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &self.0.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &self.0.0).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &self.0.0).poll_close(cx)
    }
}

/// async-io keeps the socket non-blocking, so a plain write returns what
/// the socket took at once.
impl TryWrite for Socket {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        (&mut self.0.get_ref()).write(buf)
    }
}
