//! The harness every behaviour test shares: which runtimes a test body runs
//! on, a client over real sockets, and timeouts on every wait.
//!
//! The client side always runs on async-io (its own reactor thread), so one
//! test body works whichever runtime the server under test uses.
#![allow(dead_code)]

pub mod redis_cluster;
pub mod redis_server;
pub mod shared_redis;
pub mod tls;
pub mod trace;

use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_io::{Async, Timer};
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::{self, Message as Frame, client::IntoClientRequest};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use futures_util::StreamExt;
use wsway::{Server, ServerHandle};

/// Every wait in a test is bounded by this, so a hung server fails the test
/// instead of hanging CI.
pub const WAIT: Duration = Duration::from_secs(10);

/// A runtime the server under test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Tokio,
    Smol,
    AsyncStd,
    /// Mounted in an axum app (`Server::into_service`), on tokio.
    Mounted,
}

impl Runtime {
    /// Runs a test body to completion on this runtime, failing it after 5 minutes.
    pub fn run<F, Fut>(self, body: F)
    where
        F: FnOnce(Runtime) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = within(Duration::from_secs(300), "the whole test", body(self));
        match self {
            Runtime::Tokio | Runtime::Mounted => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(fut),
            Runtime::Smol => smol::block_on(fut),
            Runtime::AsyncStd => async_std::task::block_on(fut),
        }
    }

    /// Starts `server` on 127.0.0.1 port 0, without signal handling (tests
    /// share one process).
    pub async fn start(self, server: impl Into<Server>) -> ServerHandle {
        let server = server.into().handle_signals(false);
        match self {
            Runtime::Tokio => wsway_tokio::start(server, "127.0.0.1:0").await,
            Runtime::Smol => wsway_smol::start(server, "127.0.0.1:0").await,
            Runtime::AsyncStd => wsway_async_std::start(server, "127.0.0.1:0").await,
            Runtime::Mounted => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                Ok(mount(server, listener))
            }
        }
        .expect("start")
    }

    /// Whether the server is mounted in a host, which then owns the
    /// listener and HTTP itself (header limits, timeouts, connection caps).
    pub fn is_mounted(self) -> bool {
        self == Runtime::Mounted
    }

    /// Starts `server` on a listening socket bound elsewhere (a restart
    /// test holds it across servers), without signal handling.
    pub fn start_on(
        self,
        server: impl Into<Server>,
        listener: std::net::TcpListener,
    ) -> ServerHandle {
        let server = server.into().handle_signals(false);
        match self {
            Runtime::Tokio => wsway_tokio::start_on(server, listener),
            Runtime::Smol => wsway_smol::start_on(server, listener),
            Runtime::AsyncStd => wsway_async_std::start_on(server, listener),
            Runtime::Mounted => Ok(mount(server, listener)),
        }
        .expect("start on the socket")
    }

    /// The adapter's runtime seam, as its server uses it (call it inside
    /// the runtime: tokio's takes the current handle).
    pub fn seam(self) -> Arc<dyn wsway::rt::Runtime> {
        match self {
            Runtime::Tokio => Arc::new(wsway_tokio::runtime()),
            Runtime::Smol => Arc::new(wsway_smol::runtime()),
            Runtime::AsyncStd => Arc::new(wsway_async_std::runtime()),
            Runtime::Mounted => Arc::new(wsway_tokio::runtime()),
        }
    }

    /// The name `--runtime` takes.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Tokio => "tokio",
            Runtime::Smol => "smol",
            Runtime::AsyncStd => "async-std",
            Runtime::Mounted => "tokio",
        }
    }

    /// Sleeps on the client's timer.
    pub async fn sleep(self, d: Duration) {
        Timer::after(d).await;
    }
}

/// Defines each test body once and a `#[test]` per runtime that runs it.
#[macro_export]
macro_rules! runtime_tests {
    ($($(#[$meta:meta])* async fn $name:ident($rt:ident) $body:block)*) => {
        $( async fn $name($rt: common::Runtime) $body )*

        // Attributes (`#[ignore = ".."]`, say) go on each runtime's test.
        mod tokio {
            $( $(#[$meta])* #[test] fn $name() { super::common::Runtime::Tokio.run(super::$name) } )*
        }
        mod smol {
            $( $(#[$meta])* #[test] fn $name() { super::common::Runtime::Smol.run(super::$name) } )*
        }
        mod async_std {
            $( $(#[$meta])* #[test] fn $name() { super::common::Runtime::AsyncStd.run(super::$name) } )*
        }
    };
}

/// Serves `server` mounted in an axum app on `listener` (inside tokio): its
/// service as axum's fallback, axum stopping when the drain begins.
pub fn mount(server: Server, listener: std::net::TcpListener) -> ServerHandle {
    use axum::extract::ConnectInfo;
    listener.set_nonblocking(true).expect("non-blocking");
    let addr = listener.local_addr().expect("an address");
    let (service, handle) = server
        .mounted_at(addr)
        .into_service(wsway_tokio::runtime())
        .expect("into a service");
    let service = service.remote_addr(|v| v.get::<ConnectInfo<SocketAddr>>().map(|c| c.0));
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    let app = axum::Router::new()
        .fallback_service(service)
        .into_make_service_with_connect_info::<SocketAddr>();
    let draining = handle.clone().draining();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(draining)
            .await;
    });
    handle
}

/// [`runtime_tests!`], and each body once more with the server mounted in
/// an axum app (`mounted::`): the same behaviour, whoever owns the port.
/// The bodies after `own_server_only:` check what the host owns when
/// mounted (its HTTP limits and timeouts, its connection cap), so they run
/// on wsway's own server only.
#[macro_export]
macro_rules! runtime_and_mounted_tests {
    (
        $($(#[$meta:meta])* async fn $name:ident($rt:ident) $body:block)*
        own_server_only: {
            $($(#[$ometa:meta])* async fn $oname:ident($ort:ident) $obody:block)*
        }
    ) => {
        runtime_tests! {
            $( $(#[$meta])* async fn $name($rt) $body )*
            $( $(#[$ometa])* async fn $oname($ort) $obody )*
        }

        mod mounted {
            $( $(#[$meta])* #[test] fn $name() { super::common::Runtime::Mounted.run(super::$name) } )*
        }
    };
}

/// Like [`runtime_tests!`] for one body that must have the machine to
/// itself (it counts a process's resources, or holds a timing bound): a
/// `#[test]` per runtime, each taking its turn.
#[macro_export]
macro_rules! runtime_tests_in_turn {
    ($(#[$meta:meta])* $body:ident, $why:literal) => {
        #[doc = $why]
        static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

        fn alone(rt: common::Runtime) {
            let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
            rt.run($body);
        }

        $(#[$meta])*
        #[test]
        fn tokio() {
            alone(common::Runtime::Tokio)
        }

        $(#[$meta])*
        #[test]
        fn smol() {
            alone(common::Runtime::Smol)
        }

        $(#[$meta])*
        #[test]
        fn async_std() {
            alone(common::Runtime::AsyncStd)
        }
    };
}

/// How long a client that `wsway.js` stands for waits before reconnecting
/// after a drain's close: a moment within the reason's `retry-in=<ms>`
/// window (1 s without one), spread over clients by `i` as
/// `Math.random()` would.
pub fn reconnect_delay(reason: &str, i: usize) -> Duration {
    let window: u64 = reason
        .split(wsway::RETRY_IN)
        .nth(1)
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(1000);
    Duration::from_millis((i as u64 * 7919) % window.max(1))
}

/// The query a reconnecting `wsway.js` sends: `wsway-resume=` and the
/// URL-encoded JSON of each topic's last position.
pub fn resume_query(positions: &[(&str, &str)]) -> String {
    let json: serde_json::Map<String, serde_json::Value> = positions
        .iter()
        .map(|(topic, pos)| (topic.to_string(), serde_json::Value::from(*pos)))
        .collect();
    let encoded: String = serde_json::Value::Object(json)
        .to_string()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("wsway-resume={encoded}")
}

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    async { Some(fut.await) }
        .or(async {
            Timer::after(limit).await;
            None
        })
        .await
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"))
}

pub type Client = WebSocketStream<Async<TcpStream>>;

/// Opens a WebSocket to `path` on the server.
pub async fn connect(addr: SocketAddr, path: &str) -> Client {
    let req = format!("ws://{addr}{path}");
    try_connect(addr, req).await.expect("connect").0
}

/// Opens a WebSocket with a custom request; the error says what the server answered.
pub async fn try_connect(
    addr: SocketAddr,
    req: impl IntoClientRequest + Unpin,
) -> Result<(Client, tungstenite::handshake::client::Response), tungstenite::Error> {
    let stream = within(WAIT, "tcp connect", Async::<TcpStream>::connect(addr))
        .await
        .expect("tcp connect");
    within(
        WAIT,
        "handshake",
        async_tungstenite::client_async(req, stream),
    )
    .await
}

/// Opens a WebSocket with a prepared request.
pub async fn connect_request(
    addr: SocketAddr,
    req: tungstenite::handshake::client::Request,
) -> Client {
    try_connect(addr, req).await.expect("connect").0
}

/// Sends a raw request and returns the server's whole response: the head,
/// then the body its `Content-Length` or chunked encoding delimits, or
/// everything until the server closes; a `101` ends at its head. No guess
/// from silence: a server slower than usual only makes this wait longer
/// (up to [`WAIT`]).
pub async fn raw(addr: SocketAddr, request: &str) -> String {
    raw_from(addr, request).await.0
}

/// As [`raw`], with the client's own address: what the server records as
/// the connection's `remote`.
pub async fn raw_from(addr: SocketAddr, request: &str) -> (String, SocketAddr) {
    let mut stream = within(WAIT, "tcp connect", Async::<TcpStream>::connect(addr))
        .await
        .expect("tcp connect");
    let local = stream.get_ref().local_addr().expect("the client's address");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    // On the heap, and boxed: test bodies nest many futures, and async-std
    // polls them on the test thread's stack.
    let mut buf = vec![0u8; 4096];
    within(
        WAIT,
        "a whole response",
        Box::pin(async {
            while !response_complete(&out) {
                match stream.read(&mut buf).await {
                    Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
                    // Closed (or reset): the response is what arrived.
                    _ => break,
                }
            }
        }),
    )
    .await;
    (String::from_utf8_lossy(&out).into_owned(), local)
}

/// Whether `out` holds a whole HTTP/1.1 response (head and delimited body).
fn response_complete(out: &[u8]) -> bool {
    let Some(head_end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&out[..head_end]).to_ascii_lowercase();
    let body = &out[head_end + 4..];
    if head.starts_with("http/1.1 101") {
        return true;
    }
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    if let Some(len) = header("content-length:") {
        return body.len() >= len.parse::<usize>().expect("a numeric content-length");
    }
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        return body.ends_with(b"0\r\n\r\n");
    }
    false
}

/// A GET upgrade request for `path`, with `extra` header lines (each ending in CRLF).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// The status code of a raw HTTP response.
pub fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

/// A client's transport: plain TCP ([`Client`]) or TLS ([`tls::Wss`]); the
/// frame helpers below take either.
pub trait Transport: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin {}
impl<S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin> Transport for S {}

/// The next frame, whatever it is; `None` when the stream ended.
pub async fn next_frame<S: Transport>(
    ws: &mut WebSocketStream<S>,
) -> Option<Result<Frame, tungstenite::Error>> {
    within(WAIT, "the next frame", ws.next()).await
}

/// The next text or binary message (skipping pings and pongs).
pub async fn next_message<S: Transport>(ws: &mut WebSocketStream<S>) -> Frame {
    loop {
        match next_frame(ws).await {
            Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
            Some(Ok(m)) => return m,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Reads until the close frame and returns its code and reason.
pub async fn expect_close<S: Transport>(ws: &mut WebSocketStream<S>) -> (u16, String) {
    loop {
        match next_frame(ws).await {
            Some(Ok(Frame::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
            Some(Ok(Frame::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// After the close frame: lets the client send its reply and waits for the
/// server to hang up.
pub async fn finish_close<S: Transport>(ws: &mut WebSocketStream<S>) {
    while let Some(Ok(_)) = next_frame(ws).await {}
}

pub async fn send_text<S: Transport>(ws: &mut WebSocketStream<S>, text: &str) {
    within(WAIT, "send", ws.send(Frame::text(text)))
        .await
        .expect("send");
}

/// A shared, ordered record of what callbacks saw.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.snapshot()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }

    /// Waits until an event starting with `prefix` has been logged.
    pub async fn wait_for(&self, prefix: &str) -> String {
        within(WAIT, prefix, async {
            loop {
                if let Some(e) = self.snapshot().into_iter().find(|e| e.starts_with(prefix)) {
                    return e;
                }
                Timer::after(Duration::from_millis(10)).await;
            }
        })
        .await
    }
}

/// Waits until `cond` holds, polling every 10 ms.
pub async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    eventually_for(WAIT, what, cond).await
}

/// Like [`eventually`], with a longer (or shorter) bound than [`WAIT`].
pub async fn eventually_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    within(limit, what, async {
        while !cond() {
            Timer::after(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// A listening socket on 127.0.0.1 that child processes inherit (not
/// close-on-exec), for [`Example::spawn_on_socket`]; kept open by the test
/// across the processes that serve it.
pub fn held_socket() -> (socket2::Socket, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).expect("bind");
    socket.listen(4096).expect("listen");
    socket.set_cloexec(false).expect("inheritable");
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

/// An example binary running as its own process, its output captured.
pub struct Example {
    child: std::process::Child,
    pub addr: SocketAddr,
    output: Arc<Mutex<String>>,
}

impl Example {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `bin --port 0 --runtime RT` and waits for its `listening on` line.
    pub fn spawn(bin: &str, rt: Runtime) -> Example {
        Self::spawn_with(bin, rt, &[])
    }

    /// As [`spawn`](Self::spawn), with more arguments (`--redis URL`).
    pub fn spawn_with(bin: &str, rt: Runtime, extra: &[&str]) -> Example {
        Self::spawn_command(Self::command(bin, rt, extra))
    }

    /// The command [`spawn_with`](Self::spawn_with) runs, to add to (an
    /// environment variable) before [`spawn_command`](Self::spawn_command).
    pub fn command(bin: &str, rt: Runtime, extra: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["--port", "0", "--runtime", rt.name()])
            .args(extra);
        cmd
    }

    /// As [`spawn_with`](Self::spawn_with), serving the listening socket
    /// `fd` (which must not be close-on-exec) passed the way systemd
    /// socket activation passes it: as descriptor 3, with `LISTEN_FDS=1`
    /// and `LISTEN_PID` set to the example's own pid (bash `exec`s it, so
    /// `$$` is that pid).
    pub fn spawn_on_socket(
        bin: &str,
        rt: Runtime,
        fd: i32,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Example {
        let dup = if fd == 3 {
            String::new()
        } else {
            format!("exec 3<&{fd} {fd}<&-; ")
        };
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c")
            .arg(format!(
                "{dup}export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$@\""
            ))
            .arg("bash")
            .arg(bin)
            .args(["--port", "0", "--runtime", rt.name()])
            .args(extra)
            .envs(env.iter().copied());
        Self::spawn_command(cmd)
    }

    /// Runs `cmd` and waits for its `listening on` line.
    pub fn spawn_command(mut cmd: std::process::Command) -> Example {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the example");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (stream, first) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, Some(tx)),
            (Box::new(stderr), None),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(tx) = &first {
                        let _ = tx.send(line.clone());
                    }
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        // Lines before it (`sharing topics through Redis`) are kept in the output.
        let deadline = std::time::Instant::now() + WAIT;
        let addr = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "the example to print its address; it printed {:?}",
                    output.lock().unwrap()
                )
            });
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.parse().expect("an address");
            }
        };
        Example {
            child,
            addr,
            output,
        }
    }

    /// Sends a signal (`-TERM`, `-INT`) to the process.
    pub fn signal(&self, which: &str) {
        let ok = std::process::Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success());
    }

    /// Waits for the process to exit, up to `limit`; kills it and fails otherwise.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the readers drain what the process printed last.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("the process did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process printed so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next message, parsed as JSON (the event layer's envelopes), with
/// the history position a push on a topic that keeps history carries
/// (`"topic"` and `"pos"`) taken off: `history.rs` checks those, with
/// [`next_json_with_position`].
pub async fn next_json(ws: &mut Client) -> serde_json::Value {
    let mut v = next_json_with_position(ws).await;
    if let Some(o) = v.as_object_mut()
        && o.contains_key("pos")
    {
        o.remove("pos");
        o.remove("topic");
    }
    v
}

/// The next message, parsed as JSON, as it came.
pub async fn next_json_with_position(ws: &mut Client) -> serde_json::Value {
    match next_message(ws).await {
        Frame::Text(t) => serde_json::from_str(t.as_str()).expect("a JSON envelope"),
        other => panic!("expected a JSON text message, got {other:?}"),
    }
}

/// Sends one event-layer call and returns the next envelope.
pub async fn call(ws: &mut Client, call: serde_json::Value) -> serde_json::Value {
    send_text(ws, &call.to_string()).await;
    next_json(ws).await
}

/// An upgrade request for `path` with extra headers, for `try_connect`.
pub fn request_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    req
}

/// Signs in to the chat example and returns the token.
pub async fn chat_login(addr: SocketAddr, name: &str) -> String {
    let r = raw(
        addr,
        &format!("GET /login?name={name} HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
    let body = r.split("\r\n\r\n").nth(1).expect("a body");
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    v["token"].as_str().expect("a token").to_owned()
}

/// Signs in and joins a chat room, reading the welcome and the member's
/// own join announcement.
pub async fn chat_join(addr: SocketAddr, room: &str, name: &str) -> Client {
    let token = chat_login(addr, name).await;
    chat_enter(addr, room, name, &token).await
}

/// Joins a chat room with a token from [`chat_login`].
pub async fn chat_enter(addr: SocketAddr, room: &str, name: &str, token: &str) -> Client {
    let offer = format!("wsway.v1, bearer.{token}");
    let req = request_with(
        addr,
        &format!("/chat/{room}"),
        &[("sec-websocket-protocol", &offer)],
    );
    let mut ws = try_connect(addr, req).await.expect("join").0;
    let welcome = next_json(&mut ws).await;
    let expected =
        serde_json::json!({"event": "chat:welcome", "data": {"name": name, "room": room}});
    assert_eq!(welcome, expected);
    // The room's name, rendered into the page's `#where`.
    let title = next_json(&mut ws).await;
    assert_eq!(title["event"], "wsway:render", "{title}");
    assert_eq!(title["data"]["target"], "#where", "{title}");
    let own = next_json(&mut ws).await;
    assert_eq!(
        own,
        serde_json::json!({"event": "chat:join", "data": {"name": name}})
    );
    ws
}

/// Runs blocking work on its own thread and awaits it without blocking the
/// runtime (bound it with [`within`]).
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let slot = Arc::new(Mutex::new(None));
    let done = slot.clone();
    std::thread::spawn(move || {
        let value = work();
        *done.lock().unwrap() = Some(value);
    });
    loop {
        if let Some(value) = slot.lock().unwrap().take() {
            return value;
        }
        Timer::after(Duration::from_millis(20)).await;
    }
}

/// Writes `frame` over and over into `stream` without blocking, until the
/// server stops taking bytes: `Ok(written)` once the socket has stayed full
/// for a second, `Err(written)` once 256 MiB went in (a server that reads
/// ahead). Only a pass depends on the pause: a loaded machine can make a
/// server that reads look stalled, never one that does not read look busy.
pub async fn fill_until_stalled(stream: &Async<TcpStream>, frame: &[u8]) -> Result<usize, usize> {
    let mut written = 0usize;
    loop {
        use std::io::Write;
        match stream.get_ref().write(&frame[written % frame.len()..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let writable = async { Some(stream.writable().await) }
                    .or(async {
                        Timer::after(Duration::from_secs(1)).await;
                        None
                    })
                    .await;
                if writable.is_none() {
                    return Ok(written);
                }
            }
            Err(e) => panic!("write: {e}"),
        }
        if written > 256 << 20 {
            return Err(written);
        }
    }
}

/// A raw client past the upgrade to `path`: frames are the test's to write.
pub async fn upgraded_raw(addr: SocketAddr, path: &str) -> Async<TcpStream> {
    upgraded_raw_with(addr, path, "").await.0
}

/// Like [`upgraded_raw`], with `extra` request header lines (each ending in
/// CRLF); also returns the 101's head.
pub async fn upgraded_raw_with(
    addr: SocketAddr,
    path: &str,
    extra: &str,
) -> (Async<TcpStream>, String) {
    let mut s = within(WAIT, "tcp connect", Async::<TcpStream>::connect(addr))
        .await
        .expect("tcp connect");
    s.write_all(upgrade_request(path, extra).as_bytes())
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        within(WAIT, "the 101", s.read_exact(&mut byte))
            .await
            .expect("read");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (s, head)
}

/// The next frame the server sent on a raw client: its first byte (FIN,
/// RSV, opcode) and its payload (server frames are not masked).
pub async fn read_raw_frame(s: &mut Async<TcpStream>) -> (u8, Vec<u8>) {
    within(WAIT, "a frame", async {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).await.expect("frame head");
        let len = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                s.read_exact(&mut ext).await.expect("length");
                u16::from_be_bytes(ext) as usize
            }
            127 => {
                let mut ext = [0u8; 8];
                s.read_exact(&mut ext).await.expect("length");
                u64::from_be_bytes(ext) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.expect("payload");
        (head[0], payload)
    })
    .await
}

/// A masked client frame (key 0, so the payload reads as is) with the given
/// first byte (FIN, RSV, opcode).
pub fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![first];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}
