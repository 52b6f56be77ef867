//! The listener. async-io's streams already speak futures-io; they only need
//! closing to half-close.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

use smol::Async;
use wsway::rt::HalfClose;

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
    type Io = HalfClose<Async<TcpStream>>;

    async fn accept(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        let (stream, remote) = self.0.accept().await?;
        // Small frames should leave at once, not wait for Nagle's timer.
        stream.get_ref().set_nodelay(true)?;
        let stream = HalfClose::new(stream, |s| s.get_ref().shutdown(Shutdown::Write));
        Ok((stream, remote))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}
