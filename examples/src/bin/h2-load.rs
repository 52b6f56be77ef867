//! Echo load over WebSockets on HTTP/2 (RFC 8441) or HTTP/1.1, from one
//! client, so the two are measured alike (the load kit's `wsload` speaks
//! HTTP/1.1 only). BENCHMARKS.md, "HTTP/2 against HTTP/1.1".
//!
//! `h2-load PORT PID [--h1] [--conns C] [--streams S] [--window W] [--seconds T]`
//!
//! Opens C connections with S WebSockets each over HTTP/2 (or C x S
//! HTTP/1.1 connections with `--h1`) to `/echo`; each socket keeps W
//! 32-byte text messages in flight (a reply sends the next). After a 1 s
//! warm-up it counts replies for T seconds and reads the server's CPU time
//! from `/proc/PID/stat`, and prints one JSON line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PAYLOAD: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

struct Options {
    addr: SocketAddr,
    pid: u32,
    h1: bool,
    conns: usize,
    streams: usize,
    window: usize,
    seconds: u64,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).ok_or(
        "usage: h2-load PORT PID [--h1] [--conns C] [--streams S] [--window W] [--seconds T]",
    )?;
    let pid: u32 = args
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("the server's PID")?;
    let mut o = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        pid,
        h1: false,
        conns: 5,
        streams: 10,
        window: 16,
        seconds: 5,
    };
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--h1" => o.h1 = true,
            "--conns" => o.conns = number("--conns")?,
            "--streams" => o.streams = number("--streams")?,
            "--window" => o.window = number("--window")?,
            "--seconds" => o.seconds = number("--seconds")? as u64,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(o)
}

/// A masked text frame (key 0: the payload reads as is).
fn frame() -> Bytes {
    let mut f = vec![0x81, 0x80 | PAYLOAD.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(PAYLOAD);
    Bytes::from(f)
}

/// Takes whole server frames off `buf`; returns how many.
fn replies(buf: &mut BytesMut) -> u64 {
    let mut n = 0;
    while buf.len() >= 2 {
        let len = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => 4 + u16::from_be_bytes([buf[2], buf[3]]) as usize,
            126 | 127 => break,
            len => 2 + len as usize,
        };
        if buf.len() < len {
            break;
        }
        buf.advance(len);
        n += 1;
    }
    n
}

/// Utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat(5), counted here from field 3 on.
    (ticks(11) + ticks(12)) / 100.0
}

async fn h2_socket(
    mut client: h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    window: usize,
    count: Arc<AtomicU64>,
) {
    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{addr}/echo"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    client = client.ready().await.expect("ready");
    let (answer, mut send) = client.send_request(req, false).expect("CONNECT");
    let answer = answer.await.expect("CONNECT answer");
    assert_eq!(answer.status(), 200, "CONNECT /echo");
    let mut recv = answer.into_body();
    for _ in 0..window {
        send.send_data(frame(), false).expect("send");
    }
    let mut buf = BytesMut::new();
    while let Some(Ok(data)) = recv.data().await {
        let _ = recv.flow_control().release_capacity(data.len());
        buf.extend_from_slice(&data);
        let n = replies(&mut buf);
        count.fetch_add(n, Ordering::Relaxed);
        for _ in 0..n {
            if send.send_data(frame(), false).is_err() {
                return;
            }
        }
    }
}

async fn h2_connection(o: Arc<Options>, count: Arc<AtomicU64>) {
    let tcp = tokio::net::TcpStream::connect(o.addr)
        .await
        .expect("connect");
    tcp.set_nodelay(true).ok();
    let (client, conn) = h2::client::Builder::new()
        .initial_connection_window_size(16 << 20)
        .handshake(tcp)
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    // Extended CONNECT may be sent once the server's SETTINGS are in.
    let mut ready = client.clone().ready().await.expect("ready");
    let get = http::Request::get(format!("http://{}/settings", o.addr))
        .body(())
        .unwrap();
    let (answer, _) = ready.send_request(get, true).expect("GET");
    let _ = answer.await;
    for _ in 0..o.streams {
        tokio::spawn(h2_socket(client.clone(), o.addr, o.window, count.clone()));
    }
}

async fn h1_socket(o: Arc<Options>, count: Arc<AtomicU64>) {
    let mut tcp = tokio::net::TcpStream::connect(o.addr)
        .await
        .expect("connect");
    tcp.set_nodelay(true).ok();
    let request = "GET /echo HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.expect("upgrade");
    let mut buf = BytesMut::with_capacity(16 << 10);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(
            tcp.read_buf(&mut buf).await.expect("101") > 0,
            "closed before the 101"
        );
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(buf.starts_with(b"HTTP/1.1 101"), "upgrade refused");
    buf.advance(end);
    let (mut read, mut write) = tcp.into_split();
    let burst: Vec<u8> = (0..o.window).flat_map(|_| frame()).collect();
    write.write_all(&burst).await.expect("send");
    loop {
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let n = replies(&mut buf);
        count.fetch_add(n, Ordering::Relaxed);
        let more: Vec<u8> = (0..n).flat_map(|_| frame()).collect();
        if write.write_all(&more).await.is_err() {
            return;
        }
    }
}

fn main() {
    let o = match options() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let count = Arc::new(AtomicU64::new(0));
        for _ in 0..o.conns {
            if o.h1 {
                for _ in 0..o.streams {
                    tokio::spawn(h1_socket(o.clone(), count.clone()));
                }
            } else {
                tokio::spawn(h2_connection(o.clone(), count.clone()));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (start, cpu0, n0) = (Instant::now(), cpu_seconds(o.pid), count.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_secs(o.seconds)).await;
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds(o.pid) - cpu0;
        let msgs = count.load(Ordering::Relaxed) - n0;
        println!(
            "{{\"http\":\"{}\",\"sockets\":{},\"tcp_connections\":{},\"msgs_per_s\":{:.0},\"server_cpu_s\":{:.2},\"msgs_per_server_cpu_s\":{:.0}}}",
            if o.h1 { "1.1" } else { "2" },
            o.conns * o.streams,
            if o.h1 { o.conns * o.streams } else { o.conns },
            msgs as f64 / elapsed,
            cpu,
            msgs as f64 / cpu.max(0.01),
        );
    });
}
