//! The axum example as a process: axum's REST routes and wsway's WebSocket
//! routes on one port, a REST call that publishes into a chat room, and a
//! SIGTERM that drains every socket (replies first, then 1001) before the
//! process exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message as Frame;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use futures_lite::FutureExt;
use futures_lite::future::block_on;
use futures_util::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

type Client = WebSocketStream<Async<TcpStream>>;

/// The example, started on a free port; killed when dropped.
struct Example {
    child: Child,
    addr: SocketAddr,
}

impl Example {
    fn start(extra: &[&str]) -> Example {
        let mut child = Command::new(env!("CARGO_BIN_EXE_axum-chat"))
            .args(["--port", "0"])
            .args(extra)
            .env("CHAT_SECRET", "axum test")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the axum example");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(WAIT).expect("its `listening on` line");
        let addr = line
            .strip_prefix("listening on ")
            .expect("an address")
            .parse()
            .unwrap();
        Example { child, addr }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "the process did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    async { Some(fut.await) }
        .or(async {
            Timer::after(WAIT).await;
            None
        })
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// A plain HTTP request over its own connection; the whole response.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn status(response: &str) -> u16 {
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn connect(addr: SocketAddr, req: impl IntoClientRequest + Unpin) -> Client {
    let tcp = within("tcp connect", Async::<TcpStream>::connect(addr))
        .await
        .unwrap();
    within("the upgrade", async_tungstenite::client_async(req, tcp))
        .await
        .expect("upgrade")
        .0
}

async fn next(ws: &mut Client) -> Frame {
    loop {
        match within("a frame", ws.next()).await {
            Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
            Some(Ok(frame)) => return frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

async fn next_json(ws: &mut Client) -> serde_json::Value {
    match next(ws).await {
        Frame::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected JSON, got {other:?}"),
    }
}

#[test]
fn rest_and_websockets_share_the_port_and_rest_publishes_into_a_room() {
    let example = Example::start(&[]);
    let addr = example.addr;
    let health = http(addr, "GET", "/api/health", "");
    assert_eq!(status(&health), 200, "{health}");
    assert!(health.ends_with("ok"), "{health}");
    let page = http(addr, "GET", "/", "");
    assert!(
        page.contains("<html") || page.contains("<!doctype"),
        "the chat page: {page}"
    );
    let nowhere = http(addr, "GET", "/nowhere", "");
    assert_eq!(status(&nowhere), 404, "{nowhere}");

    block_on(async {
        // Sign in and join a room through wsway's routes.
        let login = http(addr, "GET", "/login?name=ann", "");
        let token: serde_json::Value =
            serde_json::from_str(login.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        let mut req = format!("ws://{addr}/chat/den")
            .into_client_request()
            .unwrap();
        let offer = format!("wsway.v1, bearer.{}", token["token"].as_str().unwrap());
        req.headers_mut()
            .insert("sec-websocket-protocol", offer.parse().unwrap());
        let mut ann = connect(addr, req).await;
        // Her own join, then whatever the room says.
        loop {
            let v = next_json(&mut ann).await;
            if v["event"] == "chat:join" {
                break;
            }
        }
        // axum's route publishes into the room; the member hears it.
        let announced = http(addr, "POST", "/api/rooms/den/announce", "the server speaks");
        assert_eq!(status(&announced), 200, "{announced}");
        assert!(announced.contains("\"delivered\":1"), "{announced}");
        loop {
            let v = next_json(&mut ann).await;
            if v["event"] == "chat:message" {
                assert_eq!(
                    v["data"],
                    serde_json::json!({"name": "announcer", "text": "the server speaks"})
                );
                break;
            }
        }
        let members = http(addr, "GET", "/api/rooms/den/members", "");
        assert_eq!(status(&members), 200, "{members}");
        assert!(members.contains("\"name\":\"ann\""), "{members}");
    });
}

#[test]
fn sigterm_mid_echo_delivers_every_reply_then_1001_and_exits_0() {
    const CLIENTS: usize = 200;
    const MESSAGES: usize = 10;
    let mut example = Example::start(&["--pre-drain-delay", "1"]);
    let addr = example.addr;
    let signalled = block_on(async {
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            clients.push(connect(addr, format!("ws://{addr}/echo")).await);
        }
        for (c, ws) in clients.iter_mut().enumerate() {
            for m in 0..MESSAGES {
                within("send", ws.send(Frame::text(format!("{c}:{m}"))))
                    .await
                    .unwrap();
            }
        }
        let signalled = Instant::now();
        example.signal("-TERM");
        // Through the delay: not ready, still serving.
        loop {
            let ready = http(addr, "GET", "/readyz", "");
            if status(&ready) == 503 {
                break;
            }
            assert!(signalled.elapsed() < Duration::from_millis(500), "{ready}");
        }
        assert_eq!(
            status(&http(addr, "GET", "/api/health", "")),
            200,
            "axum serves through the delay"
        );
        let closes = futures_util::future::join_all(clients.iter_mut().enumerate().map(
            |(c, ws)| async move {
                for m in 0..MESSAGES {
                    assert_eq!(next(ws).await, Frame::text(format!("{c}:{m}")));
                }
                match next(ws).await {
                    Frame::Close(Some(f)) => (u16::from(f.code), f.reason.to_string()),
                    other => panic!("expected the drain's close, got {other:?}"),
                }
            },
        ))
        .await;
        for (code, reason) in closes {
            assert_eq!(
                (code, reason.as_str()),
                (1001, "server shutting down; retry-in=5000")
            );
        }
        assert!(
            signalled.elapsed() >= Duration::from_secs(1),
            "closed before the pre-drain delay was over"
        );
        for ws in &mut clients {
            while let Some(Ok(_)) = within("the hang-up", ws.next()).await {}
        }
        signalled
    });
    let status = example.wait_exit(Duration::from_secs(12));
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(11),
        "exited {:?} after SIGTERM",
        signalled.elapsed()
    );
}
