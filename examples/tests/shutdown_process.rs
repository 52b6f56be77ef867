//! A deploy, done as a deploy does it: the example binaries run as their
//! own processes, on a port they bind and on a socket they inherit
//! (`LISTEN_FDS`, as systemd or a restart harness passes it), and get the
//! signals a deploy sends: SIGTERM with and without a pre-drain delay,
//! SIGINT, and SIGHUP (a certificate reload under TLS) before the SIGTERM.
//! Every path must end the same way: the replies owed are delivered, every
//! client gets 1001 with the reconnect hint, and the process exits 0 within
//! the delay plus the shutdown deadline. The signal arrives on a thread of
//! its own (not the runtime's), which in-process tests cannot reproduce.

mod common;

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message as Frame;
use common::tls::{Cert, PemFiles, https_get, tls_connect};
use common::*;
use futures_lite::{AsyncRead, AsyncWrite};
use futures_util::future::join_all;

const CLIENTS: usize = 200;
const MESSAGES: usize = 20;

/// The examples' shutdown deadline (wsway's default).
const DEADLINE: Duration = Duration::from_secs(10);

/// The drain's close, as the examples configure it.
const DRAIN_CLOSE: (u16, &str) = (1001, "server shutting down; retry-in=5000");

/// Where the process gets its listening socket.
#[derive(Clone, Copy, Debug)]
enum Bind {
    /// `--port 0`: it binds one itself.
    Port,
    /// Descriptor 3 with `LISTEN_FDS=1`, held by the test.
    Inherited,
}

/// A transport of either kind, so one check serves ws:// and wss://.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}
type AnyClient = WebSocketStream<Box<dyn Stream>>;

/// How clients reach the process: plain, or TLS trusting one certificate.
#[derive(Clone)]
enum Scheme {
    Ws,
    Wss(Arc<futures_rustls::rustls::ClientConfig>),
}

impl Scheme {
    async fn connect(&self, addr: std::net::SocketAddr) -> AnyClient {
        let (stream, url): (Box<dyn Stream>, _) = match self {
            Scheme::Ws => (
                Box::new(
                    within(WAIT, "tcp connect", Async::<TcpStream>::connect(addr))
                        .await
                        .expect("connect"),
                ),
                format!("ws://{addr}/echo"),
            ),
            Scheme::Wss(client) => (
                Box::new(
                    within(WAIT, "tls connect", tls_connect(addr, client))
                        .await
                        .expect("TLS"),
                ),
                format!("wss://localhost:{}/echo", addr.port()),
            ),
        };
        within(
            WAIT,
            "the upgrade",
            async_tungstenite::client_async(url, stream),
        )
        .await
        .expect("upgrade")
        .0
    }

    async fn get(&self, addr: std::net::SocketAddr, path: &str) -> String {
        match self {
            Scheme::Ws => raw(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await,
            Scheme::Wss(client) => https_get(addr, path, client).await,
        }
    }
}

/// The example `bin` started on `bind`, and the socket the test holds for it.
struct Deployed {
    example: Example,
    _held: Option<socket2::Socket>,
}

fn deploy(bin: &str, rt: Runtime, bind: Bind, extra: &[&str]) -> Deployed {
    match bind {
        Bind::Port => Deployed {
            example: Example::spawn_with(bin, rt, extra),
            _held: None,
        },
        Bind::Inherited => {
            let (socket, addr) = held_socket();
            let example = Example::spawn_on_socket(bin, rt, socket.as_raw_fd(), extra, &[]);
            assert_eq!(example.addr, addr, "serves the socket it was given");
            Deployed {
                example,
                _held: Some(socket),
            }
        }
    }
}

/// Sends `text` and expects it back.
async fn echoes(ws: &mut AnyClient, text: &str) {
    send_text(ws, text).await;
    assert_eq!(next_message(ws).await, Frame::text(text));
}

/// The shutdown a deploy asks for with `signal`, checked from the outside.
/// Ten clients, each owed a reply when the signal arrives, beside the
/// `earlier` ones the caller opened. Through the pre-drain delay,
/// `/readyz` answers 503 while old and new connections are still served;
/// then every client gets its reply, then the drain's close (none before
/// the delay is over); and the process exits 0 within `delay` plus the
/// deadline, having printed no panic.
async fn shuts_down(
    deployed: Deployed,
    scheme: Scheme,
    signal: &'static str,
    delay: Duration,
    earlier: Vec<AnyClient>,
) {
    let addr = deployed.example.addr;
    let mut owed = Vec::new();
    for i in 0..10 {
        let mut ws = scheme.connect(addr).await;
        echoes(&mut ws, &format!("hello {i}")).await;
        send_text(&mut ws, &format!("owed {i}")).await;
        owed.push((Some(format!("owed {i}")), ws));
    }
    let signalled = Instant::now();
    deployed.example.signal(signal);

    if !delay.is_zero() {
        // The signal is handled on the process' own thread, a moment
        // after `kill` returns: well within the delay, /readyz turns 503.
        loop {
            let ready = scheme.get(addr, "/readyz").await;
            if status_of(&ready) == 503 {
                break;
            }
            assert!(
                signalled.elapsed() < delay / 2,
                "/readyz still answered {ready} {:?} into the pre-drain delay",
                signalled.elapsed()
            );
            async_io::Timer::after(Duration::from_millis(10)).await;
        }
        let mut late = scheme.connect(addr).await;
        echoes(&mut late, "during the delay").await;
        let (reply, first) = &mut owed[0];
        assert_eq!(
            next_message(first).await,
            Frame::text(reply.take().unwrap())
        );
        echoes(first, "still served").await;
        assert!(
            signalled.elapsed() < delay,
            "the checks ran past the delay: {:?}",
            signalled.elapsed()
        );
        owed.push((None, late));
    }
    owed.extend(earlier.into_iter().map(|ws| (None, ws)));
    let closes = join_all(owed.iter_mut().map(|(reply, ws)| async move {
        if let Some(reply) = reply.take() {
            assert_eq!(next_message(ws).await, Frame::text(reply));
        }
        let close = within(delay + DEADLINE, "the drain's close", expect_close(ws)).await;
        let at = signalled.elapsed();
        finish_close(ws).await;
        (close, at)
    }))
    .await;
    for ((code, reason), at) in closes {
        assert_eq!((code, reason.as_str()), DRAIN_CLOSE);
        assert!(
            at >= delay,
            "closed {at:?} after {signal}, before the {delay:?} delay was over"
        );
    }
    let mut example = deployed.example;
    let (status, example) = within(
        delay + DEADLINE + WAIT,
        "the process to exit",
        blocking(move || {
            let status = example.wait_exit(delay + DEADLINE);
            (status, example)
        }),
    )
    .await;
    let output = example.output();
    assert!(
        status.success(),
        "{signal}: exit status {status}; it printed:\n{output}"
    );
    assert!(
        !output.contains("panicked"),
        "{signal}: it printed:\n{output}"
    );
}

/// [`shuts_down`] on a bound port and on an inherited socket at once.
async fn on_both_binds(
    rt: Runtime,
    signal: &'static str,
    delay: Duration,
    extra: &[&str],
    scheme: Scheme,
) {
    let bin = env!("CARGO_BIN_EXE_echo");
    let port = shuts_down(
        deploy(bin, rt, Bind::Port, extra),
        scheme.clone(),
        signal,
        delay,
        vec![],
    );
    let inherited = shuts_down(
        deploy(bin, rt, Bind::Inherited, extra),
        scheme,
        signal,
        delay,
        vec![],
    );
    // Boxed: async-std polls the body on the test thread's small stack.
    futures_lite::future::zip(Box::pin(port), Box::pin(inherited)).await;
}

runtime_tests! {
    async fn sigterm_closes_every_socket_and_exits_0(rt) {
        on_both_binds(rt, "-TERM", Duration::ZERO, &[], Scheme::Ws).await;
    }

    async fn sigterm_with_a_pre_drain_delay_serves_through_it_then_exits_0(rt) {
        on_both_binds(rt, "-TERM", Duration::from_secs(2), &["--pre-drain-delay", "2"], Scheme::Ws).await;
    }

    async fn sigint_shuts_down_as_sigterm_does(rt) {
        on_both_binds(rt, "-INT", Duration::ZERO, &[], Scheme::Ws).await;
    }

    async fn sighup_reloads_the_certificate_and_a_sigterm_after_it_drains(rt) {
        let bin = env!("CARGO_BIN_EXE_echo");
        let binds = [Bind::Port, Bind::Inherited].map(|bind| async move {
            let (old, new) = (Cert::self_signed(), Cert::self_signed());
            let files = PemFiles::new(&old);
            let (cert, key) = (files.cert(), files.key());
            let args = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap(), "--pre-drain-delay", "1"];
            let deployed = deploy(bin, rt, bind, &args);
            let addr = deployed.example.addr;
            let mut before = Scheme::Wss(old.client()).connect(addr).await;
            echoes(&mut before, "before the reload").await;
            files.write(&new);
            deployed.example.signal("-HUP");
            // New handshakes get the new certificate; the open socket and
            // the process go on (a reload is not a shutdown).
            let signalled = Instant::now();
            while tls_connect(addr, &new.client()).await.is_err() {
                assert!(signalled.elapsed() < WAIT, "no new certificate after SIGHUP ({bind:?})");
                async_io::Timer::after(Duration::from_millis(20)).await;
            }
            echoes(&mut before, "after the reload").await;
            let ready = https_get(addr, "/readyz", &new.client()).await;
            assert_eq!(status_of(&ready), 200, "SIGHUP made the process unready: {ready}");
            // The socket opened before the reload is drained with the rest.
            shuts_down(deployed, Scheme::Wss(new.client()), "-TERM", Duration::from_secs(1), vec![before]).await;
        });
        let [port, inherited] = binds;
        futures_lite::future::zip(Box::pin(port), Box::pin(inherited)).await;
    }

    async fn with_no_connection_sigterm_exits_at_once(rt) {
        // No drain window, no deadline: nobody to wait for.
        for bin in [env!("CARGO_BIN_EXE_echo"), env!("CARGO_BIN_EXE_chat")] {
            let mut example = Example::spawn(bin, rt);
            let signalled = Instant::now();
            example.signal("-TERM");
            let (status, took) = within(WAIT, "the process to exit", blocking(move || {
                (example.wait_exit(Duration::from_secs(9)), signalled.elapsed())
            }))
            .await;
            assert!(status.success(), "{bin}: {status}");
            assert!(took < Duration::from_millis(500), "{bin} took {took:?} to exit with no connection");
        }
    }

    async fn sigterm_flushes_every_reply_then_closes_1001(rt) {
        let mut example = Example::spawn(env!("CARGO_BIN_EXE_echo"), rt);
        let addr = example.addr;
        let mut clients = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            clients.push(connect(addr, "/echo").await);
        }
        // Every client sends its messages; SIGTERM follows at once, before
        // any reply has been read.
        for (c, ws) in clients.iter_mut().enumerate() {
            for m in 0..MESSAGES {
                send_text(ws, &format!("client {c} message {m}")).await;
            }
        }
        let signalled = Instant::now();
        example.signal("-TERM");

        let outcomes = join_all(clients.iter_mut().enumerate().map(|(c, ws)| async move {
            for m in 0..MESSAGES {
                assert_eq!(next_message(ws).await, Frame::text(format!("client {c} message {m}")));
            }
            let close = expect_close(ws).await;
            finish_close(ws).await;
            close
        }))
        .await;
        for (code, reason) in outcomes {
            assert_eq!((code, reason.as_str()), DRAIN_CLOSE);
        }
        eprintln!("{CLIENTS} clients closed with 1001 {:?} after SIGTERM", signalled.elapsed());
        let status = example.wait_exit(Duration::from_secs(9));
        assert!(status.success(), "exit status {status}");
        let took = signalled.elapsed();
        assert!(took < Duration::from_secs(5), "shutdown took {took:?}, deadline is 10 s");
    }

    async fn sigint_shuts_the_chat_example_down_too(rt) {
        let mut example = Example::spawn(env!("CARGO_BIN_EXE_chat"), rt);
        let addr = example.addr;
        let mut members = Vec::new();
        for i in 0..5 {
            members.push(chat_join(addr, "lobby", &format!("m{i}")).await);
        }
        example.signal("-INT");
        for ws in &mut members {
            assert_eq!(expect_close(ws).await.0, 1001);
            finish_close(ws).await;
        }
        let status = example.wait_exit(Duration::from_secs(9));
        assert!(status.success(), "exit status {status}");
    }
}
