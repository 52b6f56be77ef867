//! The service takes the host's runtime: a plain hyper server on smol (no
//! axum, no tokio anywhere) mounts an app with `wsway_smol::runtime()`,
//! and its sockets echo, see their params, and drain with 1001 when the
//! handle shuts down, as on wsway's own server.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_io::Async;
use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use futures_lite::{AsyncRead, AsyncWrite};
use wsway::{App, Server, on_message};

/// hyper's IO traits over an async-io stream: what a smol host writes.
struct SmolIo(Async<TcpStream>);

impl hyper::rt::Read for SmolIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut tmp = [0u8; 8192];
        let want = buf.remaining().min(tmp.len());
        let n = std::task::ready!(Pin::new(&mut self.0).poll_read(cx, &mut tmp[..want]))?;
        buf.put_slice(&tmp[..n]);
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for SmolIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.0.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

fn app() -> App {
    let mut app = App::new();
    app.ws(
        "/echo/:name",
        on_message(|ws, msg| {
            let name = ws.param("name").unwrap_or("?").to_owned();
            ws.send(format!("{name}: {}", msg.as_text().unwrap_or("")));
        }),
    );
    app
}

#[test]
fn a_hyper_server_on_smol_mounts_the_app() {
    smol::block_on(within(WAIT * 3, "the whole test", async {
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
        let addr = listener.get_ref().local_addr().expect("an address");
        let (service, handle) = Server::new(app())
            .handle_signals(false)
            .mounted_at(addr)
            .into_service(wsway_smol::runtime())
            .expect("into a service");
        // The host: hyper's HTTP/1.1 on smol's executor, the client's
        // address as a request extension (AppService's default).
        let host = smol::spawn(async move {
            loop {
                let Ok((stream, remote)) = listener.accept().await else {
                    return;
                };
                let service = service.clone();
                smol::spawn(async move {
                    let call = hyper::service::service_fn(
                        move |mut req: hyper::Request<hyper::body::Incoming>| {
                            req.extensions_mut().insert::<SocketAddr>(remote);
                            tower_service::Service::call(&mut service.clone(), req)
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(SmolIo(stream), call)
                        .with_upgrades()
                        .await;
                })
                .detach();
            }
        });

        let mut ann = connect(addr, "/echo/ann").await;
        let mut bob = connect(addr, "/echo/bob").await;
        send_text(&mut ann, "hi").await;
        send_text(&mut bob, "hey").await;
        assert_eq!(next_message(&mut ann).await, Frame::text("ann: hi"));
        assert_eq!(next_message(&mut bob).await, Frame::text("bob: hey"));
        assert_eq!(handle.connections(), 2);

        handle.shutdown();
        for ws in [&mut ann, &mut bob] {
            let (code, reason) = expect_close(ws).await;
            assert_eq!(
                (code, reason.as_str()),
                (1001, "server shutting down; retry-in=5000")
            );
            finish_close(ws).await;
        }
        within(WAIT, "the drain to finish", handle.stopped()).await;
        drop(host);
    }));
}
