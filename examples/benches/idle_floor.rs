//! The memory floor of a task per connection: what tokio and smol alone
//! cost for each accepted socket whose task waits for input and does
//! nothing else, no WebSocket at all. Set beside `run.sh idle`'s
//! KiB per connection, it shows how much of that is wsway's own.
//!
//! `cargo bench -p examples --bench idle_floor [-- CONNECTIONS]`
//!
//! Each runtime is measured in a fresh process (memory freed by one
//! measurement would be reused by the next), with its clients in another.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1], args[2].parse().expect("a count")),
        Some("connect") => connect(
            args[1].parse().expect("an address"),
            args[2].parse().expect("a count"),
        ),
        _ => {
            // `cargo bench` passes `--bench`; a number is a connection count.
            let n = args
                .iter()
                .find_map(|a| a.parse().ok())
                .unwrap_or(9_000usize);
            for runtime in ["tokio", "smol"] {
                let status = Command::new(std::env::current_exe().expect("own path"))
                    .args(["serve", runtime, &n.to_string()])
                    .status()
                    .expect("start a measurement");
                assert!(status.success(), "the {runtime} measurement failed");
            }
        }
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// The client process; killed and reaped when dropped.
struct Clients(std::process::Child);

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the clients in their own process, so their memory is not counted.
fn clients(addr: SocketAddr, n: usize) -> Clients {
    Clients(
        Command::new(std::env::current_exe().expect("own path"))
            .args(["connect", &addr.to_string(), &n.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the clients"),
    )
}

fn report(runtime: &str, n: usize, before: u64, after: u64) {
    println!(
        "{runtime}: {:.2} KiB per connection over {n} (RSS {before} -> {after} KiB)",
        (after.saturating_sub(before)) as f64 / n as f64
    );
}

fn serve(runtime: &str, n: usize) {
    match runtime {
        "tokio" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let _clients = clients(listener.local_addr().unwrap(), n);
                let before = rss_kib();
                for _ in 0..n {
                    let (s, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1];
                        loop {
                            if s.readable().await.is_err() {
                                return;
                            }
                            if let Ok(0) = s.try_read(&mut buf) {
                                return;
                            }
                        }
                    });
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                report(runtime, n, before, rss_kib());
            }),
        "smol" => {
            let ex = smol::LocalExecutor::new();
            smol::block_on(ex.run(async {
                use smol::io::AsyncReadExt;
                let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let _clients = clients(listener.local_addr().unwrap(), n);
                let before = rss_kib();
                for _ in 0..n {
                    let (mut s, _) = listener.accept().await.unwrap();
                    ex.spawn(async move {
                        let mut buf = [0u8; 1];
                        while s.read(&mut buf).await.unwrap_or(0) > 0 {}
                    })
                    .detach();
                }
                smol::Timer::after(Duration::from_secs(1)).await;
                report(runtime, n, before, rss_kib());
            }));
        }
        other => panic!("no runtime named {other}"),
    }
}

/// Opens `n` connections and holds them until killed.
fn connect(addr: SocketAddr, n: usize) {
    let held: Vec<_> = (0..n)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_secs(60));
    drop(held);
}
