//! Faults on every runtime: peers that vanish mid-frame, reset mid-message,
//! go silent, or never answer the closing handshake. Each time the server
//! reclaims the connection, and `error` and `close` each run exactly once.

mod common;

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_io::Async;
use common::*;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use wsway::{App, CloseCode, Error, Handler, Limits, Message, ServerHandle, Ws};

/// Logs `error` and `close`; `bye` makes the server start a close.
#[derive(Clone, Default)]
struct Witness(Log, Arc<Mutex<u32>>);

impl Handler for Witness {
    type Data = ();

    async fn open(&self, _ws: &mut Ws<()>) {
        *self.1.lock().unwrap() += 1;
    }

    async fn message(&self, ws: &mut Ws<()>, msg: Message) {
        if msg.as_text() == Some("bye") {
            ws.close(4000u16, "bye").unwrap();
        }
    }

    async fn error(&self, _ws: &mut Ws<()>, err: &Error) {
        self.0.push(format!("error {:?}", err.kind()));
    }

    async fn close(&self, _ws: &mut Ws<()>, code: CloseCode, _reason: &str) {
        self.0.push(format!("close {code}"));
    }
}

async fn start(rt: Runtime) -> (Witness, ServerHandle) {
    let witness = Witness::default();
    let mut app = App::new();
    app.limits(
        Limits::default()
            .idle_timeout(Some(Duration::from_millis(400)))
            .close_timeout(Duration::from_millis(300)),
    );
    app.ws("/w", witness.clone());
    let server = rt.start(app).await;
    (witness, server)
}

/// An echo route at the same path.
async fn start_echo(rt: Runtime) -> ServerHandle {
    let mut app = App::new();
    app.ws(
        "/w",
        wsway::on_message(|ws: &mut Ws<()>, msg: Message| {
            ws.send(msg);
        }),
    );
    rt.start(app).await
}

/// A raw client past the upgrade.
async fn upgraded(server: &ServerHandle) -> Async<TcpStream> {
    upgraded_raw(server.local_addr(), "/w").await
}

/// Exactly one `error` (of this kind) and one `close`, then the slot is free.
async fn reclaimed(witness: &Witness, server: &ServerHandle, error: &str, close: &str) {
    witness.0.wait_for("close").await;
    // Callbacks run inside the connection's task: once it has ended, no
    // duplicate can come.
    eventually("the connection to be reclaimed", || {
        server.connections() == 0 && server.tasks() == 0
    })
    .await;
    assert_eq!(
        witness.0.snapshot(),
        [format!("error {error}"), format!("close {close}")]
    );
}

runtime_tests! {
    async fn disconnect_mid_frame(rt) {
        let (witness, server) = start(rt).await;
        let mut s = upgraded(&server).await;
        // A binary frame announcing 100 bytes, then 10 of them, then FIN.
        let mut partial = vec![0x82, 0x80 | 100, 0, 0, 0, 0];
        partial.extend_from_slice(&[7; 10]);
        s.write_all(&partial).await.unwrap();
        drop(s);
        reclaimed(&witness, &server, "ConnectionLost", "1006").await;
    }

    async fn reset_mid_message(rt) {
        let (witness, server) = start(rt).await;
        let s = upgraded(&server).await;
        let mut s = s;
        // The first fragment of a message, then a TCP reset (linger 0).
        s.write_all(&masked_frame(0x01, b"first half")).await.unwrap();
        // The server has read the fragment once it has heard from the peer:
        // a ping it answers with a pong comes after it in the stream.
        s.write_all(&masked_frame(0x89, b"p")).await.unwrap();
        let mut pong = [0u8; 3];
        within(WAIT, "the pong", s.read_exact(&mut pong)).await.unwrap();
        assert_eq!(pong, [0x8A, 1, b'p']);
        socket2::SockRef::from(s.get_ref()).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
        reclaimed(&witness, &server, "ConnectionLost", "1006").await;
    }

    async fn a_silent_half_open_peer_is_reclaimed_by_the_idle_timeout(rt) {
        let (witness, server) = start(rt).await;
        // Upgraded, then silent: no frames, no pongs, no close reply, no FIN,
        // just as a peer whose network vanished.
        let s = upgraded(&server).await;
        reclaimed(&witness, &server, "IdleTimeout", "1006").await;
        drop(s);
    }

    async fn a_peer_that_never_answers_the_close_is_terminated(rt) {
        let (witness, server) = start(rt).await;
        let mut s = upgraded(&server).await;
        // Ask the server to close, then never answer its close frame.
        s.write_all(&masked_frame(0x81, b"bye")).await.unwrap();
        reclaimed(&witness, &server, "CloseTimeout", "1006").await;
        drop(s);
    }

    async fn replies_queued_before_the_peers_close_still_go_out(rt) {
        // Two calls and a close in one write, so the server reads the close
        // before it has written either reply: both were accepted and must
        // reach the peer ahead of the server's close frame.
        let server = start_echo(rt).await;
        let mut s = upgraded(&server).await;
        let mut burst = masked_frame(0x81, b"one");
        burst.extend(masked_frame(0x81, b"two"));
        burst.extend(masked_frame(0x88, &1000u16.to_be_bytes()));
        s.write_all(&burst).await.unwrap();
        let mut got = Vec::new();
        within(WAIT, "the replies and the close", s.read_to_end(&mut got)).await.unwrap();
        let mut expected = vec![0x81, 3];
        expected.extend_from_slice(b"one");
        expected.extend([0x81, 3]);
        expected.extend_from_slice(b"two");
        expected.extend([0x88, 2, 0x03, 0xe8]);
        assert_eq!(got, expected);
    }

    async fn a_clean_close_reports_no_error(rt) {
        let (witness, server) = start(rt).await;
        let mut ws = connect(server.local_addr(), "/w").await;
        ws.close(None).await.unwrap();
        witness.0.wait_for("close").await;
        eventually("the connection to be reclaimed", || server.connections() == 0).await;
        assert_eq!(witness.0.snapshot(), ["close 1005"]);
        assert_eq!(*witness.1.lock().unwrap(), 1);
    }
}
