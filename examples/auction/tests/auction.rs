//! The auction, tested the way its users would: through the whole upgrade
//! path with `wsway::testing`, no port, on the test server's threads and
//! on tokio, smol and async-std (its clocks and confirmation timeouts run
//! on each).

use std::time::Duration;

use auction::{Clock, Config, Placed};
use examples::served_tests;
use serde_json::{Value, json};
use wsway::StatusCode;
use wsway::testing::{ClientError, TestClient, TestServer};

/// No clock unless a test asks for one.
fn quiet() -> Config {
    Config {
        tick: Duration::from_secs(3600),
        ..Config::default()
    }
}

fn join(server: &TestServer, path: &str) -> TestClient {
    server
        .request(path)
        .protocols(&["wsway.v1"])
        .connect()
        .unwrap_or_else(|e| panic!("joining {path}: {e}"))
}

fn ending(confirm_within: Duration) -> Config {
    Config {
        length: Duration::from_secs(1),
        tick: Duration::from_millis(10),
        confirm_within,
    }
}

served_tests! {
    fn a_bad_id_or_a_missing_name_is_refused_before_the_upgrade(served) {
        let server = served.serve(auction::app(quiet()));
        let err = server.connect("/auction/abc?name=ann").unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST), "{err}");
        let ClientError::Refused { body, .. } = &err else {
            panic!("{err}")
        };
        assert!(body.contains("`id`"), "{body}");
        let err = server.connect("/auction/4294967296?name=ann").unwrap_err();
        assert_eq!(
            err.status(),
            Some(StatusCode::BAD_REQUEST),
            "u32 overflow: {err}"
        );
        let err = server.connect("/auction/7").unwrap_err();
        let ClientError::Refused { status, body, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*status, StatusCode::BAD_REQUEST);
        assert!(body.contains("`name`"), "{body}");
    }

    fn bids_are_acked_pushed_to_the_room_and_refused_with_the_high(served) {
        let server = served.serve(auction::app(quiet()));
        let mut ann = join(&server, "/auction/1?name=ann");
        let mut bob = join(&server, "/auction/1?name=bob");
        let mut eve = join(&server, "/auction/2?name=eve");

        let ack: Value = ann.emit("bid", &json!({ "amount": 100 })).unwrap();
        assert_eq!(ack, json!({ "high": 100 }));
        let seen: Placed = bob.next_push("bid").unwrap();
        assert_eq!(
            seen,
            Placed {
                bidder: "ann".into(),
                amount: 100
            }
        );

        let err = bob
            .emit::<Value>("bid", &json!({ "amount": 90 }))
            .unwrap_err();
        let rejected = err.rejection().unwrap_or_else(|| panic!("{err}"));
        assert_eq!(rejected.code(), "too_low");
        assert_eq!(rejected.data(), Some(r#"{"high":100}"#));

        // An array is not a call: it is refused and places nothing.
        bob.send(r#"["bid", 13, {"amount": 500}]"#).unwrap();
        let reply: Value = bob.recv_json().unwrap();
        assert_eq!(
            (reply["ok"].clone(), reply["error"].clone()),
            (json!(false), json!("malformed"))
        );
        let ack: Value = bob.emit("bid", &json!({ "amount": 101 })).unwrap();
        assert_eq!(ack, json!({ "high": 101 }));

        // Another auction's room hears none of it.
        let ack: Value = eve.emit("bid", &json!({ "amount": 1 })).unwrap();
        assert_eq!(ack, json!({ "high": 1 }));
        let seen: Placed = eve.next_push("bid").unwrap();
        assert_eq!(
            seen,
            Placed {
                bidder: "eve".into(),
                amount: 1
            }
        );
    }

    fn each_bidder_has_a_clock_that_reads_its_own_auction(served) {
        let config = Config {
            length: Duration::from_secs(30),
            tick: Duration::from_millis(20),
            ..Config::default()
        };
        let server = served.serve(auction::app(config));
        let mut ann = join(&server, "/auction/5?name=ann");
        let first: Clock = ann.next_push("clock").unwrap();
        let second: Clock = ann.next_push("clock").unwrap();
        assert!(
            first.remaining_ms <= 30_000 && first.remaining_ms > 0,
            "{first:?}"
        );
        assert!(
            second.remaining_ms < first.remaining_ms,
            "{first:?} then {second:?}"
        );
    }


    fn the_winner_confirms_and_the_room_hears_sold(served) {
        let server = served.serve(auction::app(ending(Duration::from_secs(10))));
        let mut ann = join(&server, "/auction/3?name=ann");
        let mut bob = join(&server, "/auction/3?name=bob");
        let _: Value = ann.emit("bid", &json!({ "amount": 100 })).unwrap();

        let ended: Placed = bob.next_push("ended").unwrap();
        assert_eq!(
            ended,
            Placed {
                bidder: "ann".into(),
                amount: 100
            }
        );
        ann.answer("confirm", |high: u64| Ok(high == 100)).unwrap();
        assert_eq!(bob.next_push::<u64>("sold").unwrap(), 100);

        let err = bob
            .emit::<Value>("bid", &json!({ "amount": 200 }))
            .unwrap_err();
        assert_eq!(err.rejection().map(|e| e.code()), Some("ended"), "{err}");
    }

    fn a_winner_who_does_not_answer_in_time_leaves_it_unsold(served) {
        let server = served.serve(auction::app(ending(Duration::from_millis(50))));
        let mut ann = join(&server, "/auction/4?name=ann");
        let mut bob = join(&server, "/auction/4?name=bob");
        let _: Value = ann.emit("bid", &json!({ "amount": 7 })).unwrap();
        // Ann sees the request and never answers it.
        let _: Placed = ann.next_push("ended").unwrap();
        assert_eq!(bob.next_push::<u64>("unsold").unwrap(), 7);
    }
}

/// The runtime is one dependency and one line: the three `main`s are the
/// same but for the line that names the adapter.
#[test]
fn the_mains_differ_only_in_the_runtime_line() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin");
    let read = |rt: &str| std::fs::read_to_string(format!("{dir}/auction-{rt}.rs")).unwrap();
    let tokio = read("tokio");
    for other in ["smol", "async-std"] {
        let other = read(other);
        let differ: Vec<_> = tokio
            .lines()
            .zip(other.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(tokio.lines().count(), other.lines().count());
        assert_eq!(differ.len(), 1, "{differ:?}");
        assert!(
            differ[0]
                .0
                .contains("wsway_tokio::run_with(auction::set_up(), "),
            "{differ:?}"
        );
    }
}

/// The async set-up runs before anything is served: each `main` with an
/// unreachable `$REDIS_URL` ends with the reason, having announced nothing
/// (a `listening on` printed before a failed set-up would lie).
#[test]
fn a_failed_set_up_ends_each_main_with_the_reason_before_serving() {
    use std::process::Command;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    for exe in [
        env!("CARGO_BIN_EXE_auction-tokio"),
        env!("CARGO_BIN_EXE_auction-smol"),
        env!("CARGO_BIN_EXE_auction-async-std"),
    ] {
        let out = Command::new("timeout")
            .args(["20", exe])
            .env("PORT", "0")
            .env("REDIS_URL", format!("redis://127.0.0.1:{closed}/"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{exe}: {stderr}");
        assert!(
            stderr.contains("cannot reach Redis at `redis://127.0.0.1:"),
            "{exe}: {stderr}"
        );
        assert!(!stderr.contains("listening on"), "{exe}: {stderr}");
    }
}

/// Each `main` serves, says where, serves its metrics (counting the
/// bidder it just had), and ends cleanly on SIGTERM.
#[test]
fn each_main_serves_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};

    for exe in [
        env!("CARGO_BIN_EXE_auction-tokio"),
        env!("CARGO_BIN_EXE_auction-smol"),
        env!("CARGO_BIN_EXE_auction-async-std"),
    ] {
        let mut child = Command::new(exe)
            .env("PORT", "0")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // Bounded: the child is killed if it has not ended within a minute.
        let (done, ended) = std::sync::mpsc::channel::<()>();
        let id = child.id();
        std::thread::spawn(move || {
            if ended.recv_timeout(Duration::from_secs(60)).is_err() {
                let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            }
        });
        let line = lines.next().expect("a line on stderr").unwrap();
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{line}"));

        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            tcp,
            "GET /auction/1?name=ann HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 101", "{exe}");
        drop(tcp);

        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            tcp,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut page = String::new();
        tcp.read_to_string(&mut page).unwrap();
        assert!(page.starts_with("HTTP/1.1 200"), "{exe}: {page}");
        assert!(page.contains("wsway_connections_total 1"), "{exe}: {page}");

        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        assert!(killed.unwrap().success());
        let status = child.wait().unwrap();
        let _ = done.send(());
        assert!(status.success(), "{exe} ended with {status}");
    }
}
