//! The listener. async-std's streams already speak futures-io; they only need
//! closing to half-close.

use std::io;
use std::net::{Shutdown, SocketAddr};

use async_std::net::{TcpListener, TcpStream};
use wsway::rt::HalfClose;

pub(crate) struct Listener(pub(crate) TcpListener);

impl Listener {
    pub(crate) async fn bind(addr: impl async_std::net::ToSocketAddrs) -> io::Result<Self> {
        Ok(Listener(TcpListener::bind(addr).await?))
    }

    /// Adopts a listening socket bound elsewhere (inherited, or passed in).
    pub(crate) fn adopt(listener: std::net::TcpListener) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Listener(TcpListener::from(listener)))
    }
}

impl wsway::rt::Listener for Listener {
    type Io = HalfClose<TcpStream>;

    async fn accept(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        let (stream, remote) = self.0.accept().await?;
        stream.set_nodelay(true)?;
        Ok((
            HalfClose::new(stream, |s| s.shutdown(Shutdown::Write)),
            remote,
        ))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}
