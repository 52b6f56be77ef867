//! wss:// against ws:// on the same server, in one run: echo of 32-byte
//! messages and connections opened and closed, each as work per server
//! CPU-second (the load kit's figures; its `wsload` speaks no TLS).
//!
//! ```sh
//! cargo bench -p examples --bench wss -- [--seconds 5] [--conns 50]
//!     [--window 16] [--size 32] [--total 2000] [--concurrency 50]
//!     [--bun PATH/TO/bun]
//! ```
//!
//! Each server runs pinned to CPU 0 (`taskset`, one tokio worker), this
//! client to CPU 1, as `run.sh` does. With `--bun`, Bun serves the same
//! two routes with and without its own TLS (`benches/bun-tls.js`), for a
//! peer measured beside us in the same run.

#[path = "../tests/common/mod.rs"]
mod common;

use std::cell::Cell;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message as Frame;
use common::Example;
use common::tls::{Cert, PemFiles, tls_connect};
use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::rustls::ClientConfig;
use futures_util::{SinkExt, StreamExt};

struct Options {
    seconds: u64,
    conns: usize,
    window: usize,
    size: usize,
    total: usize,
    concurrency: usize,
    bun: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 5,
        conns: 50,
        window: 16,
        size: 32,
        total: 2000,
        concurrency: 50,
        bun: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> usize {
            let v = args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
            v.parse()
                .unwrap_or_else(|_| panic!("{arg}: not a number: {v}"))
        };
        match arg.as_str() {
            "--bench" => {}
            "--seconds" => o.seconds = value() as u64,
            "--conns" => o.conns = value(),
            "--window" => o.window = value(),
            "--size" => o.size = value(),
            "--total" => o.total = value(),
            "--concurrency" => o.concurrency = value(),
            "--bun" => o.bun = Some(args.next().expect("--bun needs a path")),
            other => panic!("unknown argument {other}"),
        }
    }
    o
}

/// CPU seconds (user + system, all threads) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // Linux reports in USER_HZ, 100 on every platform it runs on.
    ticks / 100.0
}

/// How a client reaches a server.
#[derive(Clone)]
enum Dial {
    Plain,
    Tls(Arc<ClientConfig>),
}

trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

async fn open(addr: SocketAddr, dial: &Dial) -> WebSocketStream<Box<dyn Stream>> {
    let stream: Box<dyn Stream> = match dial {
        Dial::Plain => Box::new(Async::<TcpStream>::connect(addr).await.expect("connect")),
        Dial::Tls(client) => Box::new(tls_connect(addr, client).await.expect("TLS")),
    };
    let scheme = if matches!(dial, Dial::Plain) {
        "ws"
    } else {
        "wss"
    };
    let url = format!("{scheme}://localhost:{}/echo", addr.port());
    async_tungstenite::client_async(url, stream)
        .await
        .expect("upgrade")
        .0
}

/// Echo: every connection keeps `window` messages in flight; the replies
/// counted between the warm-up and the end, with the server's CPU over
/// the same window.
fn echo(o: &Options, addr: SocketAddr, dial: &Dial, pid: u32) -> (f64, f64) {
    let payload = "x".repeat(o.size);
    let counted = Rc::new(Cell::new(0u64));
    let measuring = Rc::new(Cell::new(false));
    let started = Instant::now();
    let warmup = Duration::from_secs(1);
    let end = warmup + Duration::from_secs(o.seconds);
    let mut window = (0.0, 0.0);
    futures_lite::future::block_on(async {
        let conns = futures_util::future::join_all((0..o.conns).map(|_| open(addr, dial))).await;
        let work = conns.into_iter().map(|mut ws| {
            let (payload, counted, measuring) =
                (payload.clone(), counted.clone(), measuring.clone());
            async move {
                for _ in 0..o.window {
                    ws.feed(Frame::text(payload.as_str())).await.expect("send");
                }
                ws.flush().await.expect("flush");
                while started.elapsed() < end {
                    match ws.next().await {
                        Some(Ok(Frame::Text(_))) => {
                            if measuring.get() {
                                counted.set(counted.get() + 1);
                            }
                            ws.send(Frame::text(payload.as_str())).await.expect("send");
                        }
                        Some(Ok(_)) => {}
                        other => panic!("echo ended: {other:?}"),
                    }
                }
                let _ = ws.close(None).await;
            }
        });
        let clock = async {
            async_io::Timer::after(warmup.saturating_sub(started.elapsed())).await;
            let cpu = cpu_seconds(pid);
            let at = Instant::now();
            measuring.set(true);
            async_io::Timer::after(end.saturating_sub(started.elapsed())).await;
            measuring.set(false);
            window = (cpu_seconds(pid) - cpu, at.elapsed().as_secs_f64());
        };
        futures_lite::future::zip(futures_util::future::join_all(work), clock).await;
    });
    let (cpu, secs) = window;
    let msgs = counted.get() as f64;
    (msgs / cpu.max(0.01), msgs / secs)
}

/// Connect: `total` connections opened (TCP, TLS, upgrade) and closed,
/// `concurrency` at a time.
fn connect(o: &Options, addr: SocketAddr, dial: &Dial, pid: u32) -> (f64, f64) {
    let cpu = cpu_seconds(pid);
    let at = Instant::now();
    let next = Rc::new(Cell::new(0usize));
    futures_lite::future::block_on(futures_util::future::join_all((0..o.concurrency).map(
        |_| {
            let next = next.clone();
            async move {
                while next.get() < o.total {
                    next.set(next.get() + 1);
                    let mut ws = open(addr, dial).await;
                    ws.close(None).await.expect("close");
                    while let Some(Ok(_)) = ws.next().await {}
                }
            }
        },
    )));
    let (cpu, secs) = (cpu_seconds(pid) - cpu, at.elapsed().as_secs_f64());
    (o.total as f64 / cpu.max(0.01), o.total as f64 / secs)
}

fn pin_self_to_cpu_1() {
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("taskset failed: client and server share the CPUs");
    }
}

fn start(program: &str, args: &[&str]) -> Example {
    let mut cmd = std::process::Command::new("taskset");
    cmd.args(["-c", "0", program])
        .args(args)
        .env("TOKIO_WORKER_THREADS", "1");
    Example::spawn_command(cmd)
}

fn main() {
    let o = options();
    pin_self_to_cpu_1();
    let cert = Cert::self_signed();
    let files = PemFiles::new(&cert);
    let (cert_path, key_path) = (files.cert(), files.key());
    let (cert_path, key_path) = (cert_path.to_str().unwrap(), key_path.to_str().unwrap());
    let tls = Dial::Tls(cert.client());
    let ours = env!("CARGO_BIN_EXE_bench-server");
    let bun_script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/bun-tls.js");
    let mut servers: Vec<(&str, String, Vec<&str>, Dial)> = vec![
        ("wsway ws", ours.into(), vec!["--port", "0"], Dial::Plain),
        (
            "wsway wss",
            ours.into(),
            vec![
                "--port",
                "0",
                "--tls-cert",
                cert_path,
                "--tls-key",
                key_path,
            ],
            tls.clone(),
        ),
    ];
    if let Some(bun) = &o.bun {
        servers.push(("bun ws", bun.clone(), vec![bun_script], Dial::Plain));
        servers.push((
            "bun wss",
            bun.clone(),
            vec![bun_script, cert_path, key_path],
            tls.clone(),
        ));
    }
    println!(
        "echo: {} conns x window {}, {} B text, {} s; connect: {} connections, {} at a time\n",
        o.conns, o.window, o.size, o.seconds, o.total, o.concurrency
    );
    println!(
        "| server | echo msgs / server CPU-s | ratio | echo msgs/s | connects / server CPU-s | ratio | connects/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut baseline = None;
    for (name, program, args, dial) in &servers {
        let server = start(program, args);
        let (echo_eff, echo_rate) = echo(&o, server.addr, dial, server.pid());
        let (conn_eff, conn_rate) = connect(&o, server.addr, dial, server.pid());
        let (base_echo, base_conn) = *baseline.get_or_insert((echo_eff, conn_eff));
        println!(
            "| {name} | {echo_eff:.0} | {:.2} | {echo_rate:.0} | {conn_eff:.0} | {:.2} | {conn_rate:.0} |",
            echo_eff / base_echo,
            conn_eff / base_conn
        );
        drop(server);
    }
}
