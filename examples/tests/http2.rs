//! WebSockets over HTTP/2 on the own server (RFC 8441), on every runtime,
//! with a real HTTP/2 client (the `h2` crate): the extended CONNECT is
//! announced and answered with 200, many sockets share one connection, a
//! reset stream ends its socket alone, a drain closes every stream with
//! 1001 (after its queued messages) and only then sends GOAWAY, and the
//! stream limit refuses what is past it.
//!
//! The client runs on a tokio runtime of its own, on its own thread, so the
//! server's runtime is the only thing the three runs change. Mounted in
//! axum (which speaks HTTP/2 and announces extended CONNECT), the same
//! bodies pass, but for the drain's order and the stream limit: there the
//! host owns the connection, its GOAWAY and its SETTINGS.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use common::*;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use wsway::{App, CloseCode, Handler, Message, Server, Ws};

/// Echoes; `flood N` sends N 1 KiB messages; every close is logged.
#[derive(Clone)]
struct Echo {
    log: Log,
}

impl Handler for Echo {
    type Data = ();

    async fn message(&self, ws: &mut Ws<()>, msg: Message) {
        if let Some(n) = msg.as_text().and_then(|t| t.strip_prefix("flood ")) {
            for i in 0..n.parse::<usize>().unwrap() {
                ws.send(format!("{i:04} {}", "x".repeat(1019)));
            }
            return;
        }
        ws.send(msg);
    }

    async fn close(&self, _ws: &mut Ws<()>, code: CloseCode, _reason: &str) {
        self.log.push(format!("close {}", code.0));
    }
}

fn app(log: &Log) -> App {
    let mut app = App::new();
    app.ws("/echo", Echo { log: log.clone() });
    app.ws("/small", Echo { log: log.clone() })
        .limits(|l| l.max_message_size(64));
    app
}

/// Runs `client` on a tokio runtime on a thread of its own, within a
/// bounded time, and gives its result to the (any-runtime) test body.
fn client<T, F>(client: impl FnOnce() -> F + Send + 'static) -> impl Future<Output = T>
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    let (tx, rx) = async_channel::bounded(1);
    std::thread::spawn(move || {
        let rt = ::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        let out = rt.block_on(async { ::tokio::time::timeout(WAIT * 3, client()).await });
        let _ = tx.send_blocking(out.expect("the HTTP/2 client did not finish in time"));
    });
    async move {
        rx.recv()
            .await
            .expect("the HTTP/2 client failed (its panic is above)")
    }
}

/// An HTTP/2 connection (h2c, prior knowledge), once the server's SETTINGS
/// are in: a first request's answer comes after them.
async fn connect_h2(
    addr: SocketAddr,
) -> (
    SendRequest<Bytes>,
    ::tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = ::tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect");
    // Each stream keeps h2's 64 KiB window; the connection's is large, so
    // one stream's unread messages do not hold up its neighbours.
    let (client, conn) = h2::client::Builder::new()
        .initial_connection_window_size(16 << 20)
        .handshake(tcp)
        .await
        .expect("HTTP/2 handshake");
    let conn = ::tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let get = http::Request::get(format!("http://{addr}/nothing-here"))
        .body(())
        .unwrap();
    let (answer, _) = client.send_request(get, true).expect("GET");
    assert_eq!(answer.await.expect("GET answer").status(), 404);
    (client, conn)
}

/// A WebSocket as one stream: client frames go out masked, the server's
/// come in as DATA, and reading releases flow-control capacity.
struct H2Ws {
    send: SendStream<Bytes>,
    recv: RecvStream,
    buf: BytesMut,
}

impl H2Ws {
    async fn open(client: &mut SendRequest<Bytes>, addr: SocketAddr, path: &str) -> H2Ws {
        match Self::try_open(client, addr, path).await {
            Ok(ws) => ws,
            Err(status) => panic!("CONNECT {path} answered {status}"),
        }
    }

    async fn try_open(
        client: &mut SendRequest<Bytes>,
        addr: SocketAddr,
        path: &str,
    ) -> Result<H2Ws, http::StatusCode> {
        let mut req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("http://{addr}{path}"))
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        let mut client = client.clone().ready().await.expect("ready");
        let (answer, send) = client.send_request(req, false).expect("CONNECT");
        let answer = answer.await.expect("CONNECT answer");
        if answer.status() != http::StatusCode::OK {
            return Err(answer.status());
        }
        // RFC 8441: no key, so no accept; the rest is RFC 6455's.
        assert!(answer.headers().get("sec-websocket-accept").is_none());
        Ok(H2Ws {
            send,
            recv: answer.into_body(),
            buf: BytesMut::new(),
        })
    }

    fn send(&mut self, first: u8, payload: &[u8]) {
        let frame = Bytes::from(masked_frame(first, payload));
        self.send.send_data(frame, false).expect("send a frame");
    }

    fn text(&mut self, text: &str) {
        self.send(0x81, text.as_bytes());
    }

    /// The next frame's first byte and payload; `None` when the stream ended.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some(frame) = parse_frame(&mut self.buf) {
                return Some(frame);
            }
            let data = self.recv.data().await?.ok()?;
            let _ = self.recv.flow_control().release_capacity(data.len());
            self.buf.extend_from_slice(&data);
        }
    }

    async fn text_frame(&mut self) -> String {
        let (first, payload) = self.frame().await.expect("a frame, not the stream's end");
        assert_eq!(
            first,
            0x81,
            "a text frame: {:?}",
            String::from_utf8_lossy(&payload)
        );
        String::from_utf8(payload).unwrap()
    }

    /// The server's close frame: its code and reason.
    async fn close_frame(&mut self) -> (u16, String) {
        let (first, payload) = self.frame().await.expect("a close frame");
        assert_eq!(first, 0x88, "a close frame");
        let code = u16::from_be_bytes([payload[0], payload[1]]);
        (code, String::from_utf8_lossy(&payload[2..]).into_owned())
    }
}

/// One unmasked server frame off the front of `buf`, once it is all there.
fn parse_frame(buf: &mut BytesMut) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 2 {
        return None;
    }
    let (len, at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return None;
    }
    let first = buf[0];
    buf.advance(at);
    Some((first, buf.split_to(len).to_vec()))
}

runtime_and_mounted_tests! {
    async fn an_extended_connect_opens_a_websocket(rt) {
        let log = Log::default();
        let server = rt.start(Server::new(app(&log)).http2()).await;
        let addr = server.local_addr();
        let closed = client(move || async move {
            let (mut h2, _conn) = connect_h2(addr).await;
            assert!(h2.is_extended_connect_protocol_enabled(), "SETTINGS_ENABLE_CONNECT_PROTOCOL");
            let mut ws = H2Ws::open(&mut h2, addr, "/echo").await;
            ws.text("hello over h2");
            assert_eq!(ws.text_frame().await, "hello over h2");
            ws.send(0x88, &1000u16.to_be_bytes());
            ws.close_frame().await
        })
        .await;
        assert_eq!(closed.0, 1000);
        assert_eq!(log.wait_for("close").await, "close 1000");
        // HTTP/1.1 still works beside it.
        let mut ws = connect(addr, "/echo").await;
        send_text(&mut ws, "and over 1.1").await;
        assert_eq!(next_message(&mut ws).await.into_text().unwrap().as_str(), "and over 1.1");
    }

    async fn a_hundred_websockets_share_one_connection(rt) {
        let log = Log::default();
        let server = rt.start(Server::new(app(&log)).http2()).await;
        let addr = server.local_addr();
        let handle = server.clone();
        let echoed = client(move || async move {
            let (mut h2, _conn) = connect_h2(addr).await;
            let mut sockets = Vec::new();
            for _ in 0..100 {
                sockets.push(H2Ws::open(&mut h2, addr, "/echo").await);
            }
            for (i, ws) in sockets.iter_mut().enumerate() {
                ws.text(&format!("socket {i}"));
            }
            let mut echoed = 0;
            for (i, ws) in sockets.iter_mut().enumerate() {
                assert_eq!(ws.text_frame().await, format!("socket {i}"));
                echoed += 1;
            }
            // All on this one TCP connection, all open.
            assert_eq!(handle.connections(), 100);
            echoed
        });
        assert_eq!(echoed.await, 100);
    }

    async fn a_streams_limits_are_its_own(rt) {
        let log = Log::default();
        let server = rt.start(Server::new(app(&log)).http2()).await;
        let addr = server.local_addr();
        let seen = log.clone();
        client(move || async move {
            let (mut h2, _conn) = connect_h2(addr).await;
            let mut small = H2Ws::open(&mut h2, addr, "/small").await;
            let mut echo = H2Ws::open(&mut h2, addr, "/echo").await;
            // Past the route's 64-byte limit: that stream closes with 1009.
            small.text(&"x".repeat(100));
            assert_eq!(small.close_frame().await.0, 1009);
            // The same message on its neighbour, whose limit is 16 MiB.
            echo.text(&"x".repeat(100));
            assert_eq!(echo.text_frame().await, "x".repeat(100));
            assert_eq!(seen.wait_for("close").await, "close 1009");
        })
        .await;
    }

    async fn a_reset_stream_ends_its_socket_alone(rt) {
        let log = Log::default();
        let server = rt.start(Server::new(app(&log)).http2()).await;
        let addr = server.local_addr();
        let (tx, rx) = async_channel::bounded::<()>(1);
        let (reset_tx, reset_rx) = async_channel::bounded::<()>(1);
        let seen = log.clone();
        let done = client(move || async move {
            let (mut h2, _conn) = connect_h2(addr).await;
            let mut a = H2Ws::open(&mut h2, addr, "/echo").await;
            let mut b = H2Ws::open(&mut h2, addr, "/echo").await;
            let mut c = H2Ws::open(&mut h2, addr, "/echo").await;
            b.send.send_reset(h2::Reason::CANCEL);
            reset_tx.send(()).await.unwrap();
            // The test body saw `close 1006`: the neighbours still echo.
            rx.recv().await.unwrap();
            for (ws, text) in [(&mut a, "a"), (&mut c, "c")] {
                ws.text(text);
                assert_eq!(ws.text_frame().await, text);
            }
            // (Checked while the connection is up: it ends with this thread.)
            assert_eq!(seen.snapshot(), ["close 1006"], "only the reset socket closed");
        });
        reset_rx.recv().await.unwrap();
        assert_eq!(log.wait_for("close").await, "close 1006");
        eventually("the reset socket to leave", || server.connections() == 2).await;
        tx.send(()).await.unwrap();
        done.await;
    }

    own_server_only: {
    async fn under_tls_alpn_offers_h2_then_http_1_1(rt) {
        let log = Log::default();
        let cert = common::tls::Cert::self_signed();
        let files = common::tls::PemFiles::new(&cert);
        let server = rt.start(Server::new(app(&log)).tls(files.tls()).http2()).await;
        let addr = server.local_addr();
        let alpn = |offer: &[&[u8]]| {
            let mut client = (*cert.client()).clone();
            client.alpn_protocols = offer.iter().map(|p| p.to_vec()).collect();
            std::sync::Arc::new(client)
        };
        // A client that offers both gets h2; one that offers only
        // HTTP/1.1 (or nothing) gets HTTP/1.1, and its WebSocket works.
        let both = common::tls::tls_connect(addr, &alpn(&[b"h2", b"http/1.1"])).await.expect("TLS");
        assert_eq!(both.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        for offer in [&[&b"http/1.1"[..]][..], &[]] {
            let client = alpn(offer);
            let tls = common::tls::tls_connect(addr, &client).await.expect("TLS");
            let agreed = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            assert_eq!(agreed, (!offer.is_empty()).then(|| b"http/1.1".to_vec()), "offered {offer:?}");
            let mut ws = common::tls::wss(addr, "/echo", &client).await;
            send_text(&mut ws, "over TLS and HTTP/1.1").await;
            assert_eq!(next_message(&mut ws).await.into_text().unwrap().as_str(), "over TLS and HTTP/1.1");
        }
    }

    async fn a_drain_closes_every_stream_then_sends_goaway(rt) {
        let log = Log::default();
        let server = rt.start(Server::new(app(&log)).http2().drain_window(Duration::ZERO)).await;
        let addr = server.local_addr();
        let (opened_tx, opened_rx) = async_channel::bounded::<()>(1);
        let (drain_tx, drain_rx) = async_channel::bounded::<()>(1);
        let seen = client(move || async move {
            let (mut h2, conn) = connect_h2(addr).await;
            let mut sockets = Vec::new();
            for _ in 0..5 {
                let mut ws = H2Ws::open(&mut h2, addr, "/echo").await;
                // 200 KiB each, more than the stream's window: most of it
                // waits in the server's queue when the drain starts.
                ws.text("flood 200");
                assert!(ws.text_frame().await.starts_with("0000 "));
                sockets.push(ws);
            }
            opened_tx.send(()).await.unwrap();
            drain_rx.recv().await.unwrap();
            let mut seen = Vec::new();
            for ws in &mut sockets {
                for i in 1..200 {
                    assert!(ws.text_frame().await.starts_with(&format!("{i:04} ")), "message {i} in order");
                }
                seen.push(ws.close_frame().await);
            }
            // Every stream has its close and the connection is still up:
            // no GOAWAY yet. A new CONNECT is refused with 503 meanwhile.
            assert!(!conn.is_finished(), "the connection ended before the closes were answered");
            let refused = H2Ws::try_open(&mut h2, addr, "/echo").await.err();
            assert_eq!(refused, Some(http::StatusCode::SERVICE_UNAVAILABLE));
            for ws in &mut sockets {
                ws.send(0x88, &1001u16.to_be_bytes());
            }
            // Then GOAWAY (no error), and the connection ends.
            let ended = conn.await.expect("connection task");
            (seen, ended.map_err(|e| format!("{e:?}")))
        });
        opened_rx.recv().await.unwrap();
        server.shutdown();
        drain_tx.send(()).await.unwrap();
        let (seen, ended) = seen.await;
        assert_eq!(seen.len(), 5);
        for (code, reason) in seen {
            assert_eq!((code, reason.as_str()), (1001, "server shutting down; retry-in=5000"));
        }
        assert_eq!(ended, Ok(()), "the connection ends with a clean GOAWAY");
        within(WAIT, "the server to stop", server.stopped()).await;
        assert_eq!(log.count("close 1001"), 5);
    }

    async fn streams_past_the_limit_are_refused(rt) {
        let log = Log::default();
        let server = rt.start(Server::new(app(&log)).max_streams_per_connection(2)).await;
        let (refused, _held) = raw_streams(server.local_addr(), 3).await;
        // Two WebSockets open; the third stream is refused, and says so.
        assert_eq!(refused, [(1, "200".to_owned()), (3, "200".to_owned()), (5, "RST_STREAM 7 (REFUSED_STREAM)".to_owned())]);
        assert_eq!(server.connections(), 2);
    }
    }
}

/// Opens `n` CONNECT streams at once on a raw HTTP/2 connection, ignoring
/// the server's stream limit (as `h2` will not), and gives how each was
/// answered: a status, or the RST_STREAM that refused it.
async fn raw_streams(
    addr: SocketAddr,
    n: u32,
) -> (Vec<(u32, String)>, async_io::Async<std::net::TcpStream>) {
    use futures_lite::AsyncWriteExt;
    let mut s = async_io::Async::<std::net::TcpStream>::connect(addr)
        .await
        .expect("connect");
    let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    s.write_all(&out).await.expect("preface");
    // The server's SETTINGS, acknowledged: its limit applies from here.
    loop {
        let (kind, flags, _, _) = within(WAIT, "SETTINGS", read_frame(&mut s)).await;
        if kind == 0x4 && flags & 1 == 0 {
            break;
        }
    }
    let mut out = frame(0x4, 1, 0, &[]);
    for i in 0..n {
        // HPACK literals without indexing (RFC 7541 §6.2.2), new names.
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", "/echo"),
            (":authority", "localhost"),
            ("sec-websocket-version", "13"),
        ] {
            block.push(0);
            block.push(name.len() as u8);
            block.extend_from_slice(name.as_bytes());
            block.push(value.len() as u8);
            block.extend_from_slice(value.as_bytes());
        }
        out.extend(frame(0x1, 0x4, 1 + 2 * i, &block));
    }
    s.write_all(&out).await.expect("the CONNECTs");
    let mut answers = Vec::new();
    while answers.len() < n as usize {
        let (kind, _, stream, payload) = within(WAIT, "the answers", read_frame(&mut s)).await;
        match kind {
            // HEADERS: the status is the first field; 200 is HPACK's
            // static entry 8 (0x88).
            0x1 if payload.first() == Some(&0x88) => answers.push((stream, "200".to_owned())),
            0x1 => answers.push((stream, format!("HEADERS {payload:02x?}"))),
            0x3 => {
                let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                let name = if code == 7 { " (REFUSED_STREAM)" } else { "" };
                answers.push((stream, format!("RST_STREAM {code}{name}")));
            }
            0x7 => panic!("GOAWAY: {payload:02x?}"),
            _ => {}
        }
    }
    answers.sort();
    (answers, s)
}

/// One HTTP/2 frame: its type, flags, stream and payload.
async fn read_frame(s: &mut async_io::Async<std::net::TcpStream>) -> (u8, u8, u32, Vec<u8>) {
    use futures_lite::AsyncReadExt;
    let mut head = [0u8; 9];
    s.read_exact(&mut head).await.expect("a frame");
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.expect("its payload");
    let stream = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
    (head[3], head[4], stream, payload)
}
