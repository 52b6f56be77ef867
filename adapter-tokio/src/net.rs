//! The listener, and tokio's streams seen through futures-io (the one IO trait
//! family core speaks).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use wsway::rt::TryWrite;

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
        Ok((Stream(Arc::new(Socket(stream))), addr))
    }

    fn try_writer(io: &Stream) -> Option<Arc<dyn TryWrite>> {
        Some(io.0.clone())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A tokio `TcpStream` implementing futures-io's traits, shared with the
/// [`TryWrite`] handle core writes through from other tasks.
pub(crate) struct Stream(Arc<Socket>);

/// The socket both handles share.
pub(crate) struct Socket(TcpStream);

/// Whether a read that fills less than its buffer shows the socket
/// drained: with epoll and kqueue (edge-triggered), as tokio's own
/// `poll_read` assumes on the same targets.
const SHORT_READ_DRAINS: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
));

impl TryWrite for Socket {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
}

impl futures_io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        // What tokio's own `poll_read` does, through `&TcpStream`: a read
        // that fills less than `buf` drains the socket, so its readiness is
        // cleared then (as of before the read), saving the next read's
        // `WouldBlock`.
        let socket = &self.0.0;
        loop {
            ready!(socket.poll_read_ready(cx))?;
            let mut short = None;
            let read = socket.try_io(tokio::io::Interest::READABLE, || {
                use std::io::Read as _;
                let n = (&*socket2::SockRef::from(socket)).read(buf)?;
                if SHORT_READ_DRAINS && n > 0 && n < buf.len() {
                    short = Some(n);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            if let Some(n) = short {
                return Poll::Ready(Ok(n));
            }
            match read {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                read => return Poll::Ready(read),
            }
        }
    }
}

impl futures_io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write_with(&self.0.0, cx, |socket| socket.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_write_with(&self.0.0, cx, |socket| socket.try_write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Half-closes (FIN), as tokio's `poll_shutdown` does.
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&self.0.0).shutdown(std::net::Shutdown::Write))
    }
}

/// What tokio's own `poll_write` does, through `&TcpStream`: waits until
/// the socket is writable, then writes with `write`, again while it would
/// block.
fn poll_write_with(
    socket: &TcpStream,
    cx: &mut Context<'_>,
    write: impl Fn(&TcpStream) -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(socket.poll_write_ready(cx))?;
        match write(socket) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            written => return Poll::Ready(written),
        }
    }
}
