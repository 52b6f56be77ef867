//! The listener, and tokio's streams seen through futures-io (the one IO trait
//! family core speaks).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead as _, AsyncWrite as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

pub(crate) struct Listener(pub(crate) TcpListener);

impl Listener {
    pub(crate) async fn bind(addr: impl tokio::net::ToSocketAddrs) -> io::Result<Self> {
        TcpListener::bind(addr).await.map(Listener)
    }

    /// Adopts a listening socket bound elsewhere (inherited, or passed in).
    pub(crate) fn adopt(listener: std::net::TcpListener) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        TcpListener::from_std(listener).map(Listener)
    }
}

impl wsway::rt::Listener for Listener {
    type Io = Stream;

    async fn accept(&mut self) -> io::Result<(Stream, SocketAddr)> {
        let (stream, addr) = self.0.accept().await?;
        // Small frames should leave at once, not wait for Nagle's timer.
        stream.set_nodelay(true)?;
        Ok((Stream(stream), addr))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A tokio `TcpStream` implementing futures-io's traits.
pub(crate) struct Stream(TcpStream);

impl futures_io::AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        ready!(Pin::new(&mut self.0).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(buf.filled().len()))
    }
}

impl futures_io::AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
