//! Headless Chromium through the chat example and `wsway.js`, driven by
//! `examples/browser/chat.mjs` with Playwright's `playwright-core`; and the
//! chat over https with HTTP/2 (`chat-h2.mjs`), its WebSockets on the
//! pages' HTTP/2 connection (RFC 8441).
//!
//! Needs Debian's `chromium` and `npm ci` in `examples/browser`, which
//! `.ci/run` installs before running these with `--ignored`. Run by hand
//! without them, the test fails and says what is missing.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use serde_json::Value;
use wsway::{App, Bearer, EventError, Events, Fragment, escape_html};

#[derive(Clone)]
struct Tester(String);

/// The chat app, plus `/t/events` for the checks on wsway.js itself, and
/// `/t/restart`, which asks the test to restart the server.
fn app(restart: Arc<AtomicBool>) -> App {
    let mut app = examples::chat::app_with_secret(b"the browser test");
    app.get("/t/restart", move |_req| {
        restart.store(true, Ordering::Release);
        async { "restarting" }
    });
    let mut events = Events::<()>::new();
    events.on("echo", |_ws, data: Value| Ok::<_, EventError>(data));
    events.on("whoami", |ws, (): ()| {
        Ok::<_, EventError>(ws.value::<Tester>().map(|t| t.0.clone()))
    });
    events.on("fail", |_ws, (): ()| {
        Err::<(), _>(EventError::new("nope", "said no").with_data(&[2, 3]))
    });
    // Asks the page (a server request) and pushes what it answered.
    events.on("ask", |ws, n: i64| {
        ws.emit_with_ack(
            "question",
            &n,
            Duration::from_secs(5),
            |ws, got: Result<i64, EventError>| {
                let said = match got {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("{}:{}", e.code(), e.data().unwrap_or("-")),
                };
                let _ = ws.emit("answered", &said);
            },
        )?;
        Ok(())
    });
    events.on_async("slow", |_ws, ms: u64| {
        Box::pin(async move {
            async_io::Timer::after(Duration::from_millis(ms)).await;
        })
    });
    events.on("push", |ws, data: Value| -> Result<(), EventError> {
        ws.emit("pushed", &data)?;
        Ok(())
    });
    events.on("drop", |ws, (): ()| ws.terminate());
    // A panel rendered as a fragment: a count that changes, an input and a
    // scrolled box that must survive the morph. `#absent` is allowed but
    // not on the page.
    let renders = Arc::new(std::sync::atomic::AtomicU64::new(0));
    events
        .on("panel", move |_ws, (): ()| {
            let n = renders.fetch_add(1, Ordering::AcqRel) + 1;
            let lines: String = (1..=20).map(|i| format!("<p>line {i}</p>")).collect();
            Ok::<_, EventError>(Fragment::new(format!(
                r#"<p id="count">render {n}</p><input id="note" value="server {n}"><div id="scroller" style="height:40px;overflow:auto">{lines}</div>"#
            )))
        })
        .targets(["#panel", "#absent"]);
    events.on("banner", |ws, text: String| -> Result<(), EventError> {
        ws.render("#count", &Fragment::new(escape_html(&text)))?;
        Ok(())
    });
    // Pages may join `room:*` only; `/t/room?topic=..` publishes `roomed` there.
    events.on_join(|_ws, topic| match topic.starts_with("room:") {
        true => Ok(()),
        false => Err(EventError::new("forbidden", "rooms only")),
    });
    // Closes with the code the page asks for (4000-4999 and 1008 must be final).
    events.on("close", |ws, code: u16| -> Result<(), EventError> {
        ws.close(code, "asked to")?;
        Ok(())
    });
    // What a draining server sends: a restart with the reconnect hint.
    events.on("drain", |ws, (): ()| -> Result<(), EventError> {
        ws.close(1012, "server shutting down; retry-in=3000")?;
        Ok(())
    });
    // "good" is the tester; "good-N" (what a token function returns) is N.
    let verify = |token: String| async move {
        match token.strip_prefix("good") {
            Some("") => Some(Tester("tester".into())),
            Some(n) => n.strip_prefix('-').map(|n| Tester(n.into())),
            None => None,
        }
    };
    // Every /t/events connection is in `t:hist`, which keeps history;
    // `/t/publish?n=3` publishes the next three numbers to it as `tick`.
    events.on_open(|ws| {
        ws.subscribe("t:hist");
    });
    app.ws("/t/events", events)
        .middleware(Bearer::protocol(verify));
    app.history("t:hist", wsway::Retention::messages(100));
    let topics = app.topics();
    let rooms = topics.clone();
    app.get("/t/room", move |req: wsway::Request| {
        let topic = req
            .query::<std::collections::HashMap<String, String>>()
            .ok()
            .and_then(|q| q.get("topic").cloned())
            .unwrap_or_default();
        let sent = rooms
            .publish_event(&topic, "roomed", &topic)
            .map_or(0, |p| p.delivered);
        async move { sent.to_string() }
    });
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    app.get("/t/publish", move |req: wsway::Request| {
        let n: u64 = req
            .query::<std::collections::HashMap<String, u64>>()
            .ok()
            .and_then(|q| q.get("n").copied())
            .unwrap_or(1);
        for _ in 0..n {
            let next = counter.fetch_add(1, Ordering::AcqRel) + 1;
            let _ = topics.publish_event("t:hist", "tick", &next);
        }
        async { "published" }
    });
    app
}

/// What the browser test needs, or a message saying how to get it.
fn prerequisites() -> Result<(), String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!(
            "no Chromium at {chromium}: `apt-get install chromium` (as .ci/run does)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("no `node` on PATH".into());
    }
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/playwright-core");
    if !module.exists() {
        return Err("playwright-core is not installed: `npm ci --prefix examples/browser` (as .ci/run does)".into());
    }
    Ok(())
}

runtime_tests! {
    #[ignore = "needs Chromium and playwright-core; .ci/run installs them and runs this"]
    async fn two_pages_chat_and_wsway_js_behaves(rt) {
        if let Err(missing) = prerequisites() {
            panic!("the browser test cannot run: {missing}");
        }
        // The socket outlives the server: a restart refuses no connect.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let restart = Arc::new(AtomicBool::new(false));
        let serve = |listener: &std::net::TcpListener| {
            let server = wsway::Server::new(app(restart.clone()))
                .drain_close_code(1012)
                .reconnect_window(Duration::from_secs(1));
            rt.start_on(server, listener.try_clone().expect("clone the socket"))
        };
        let first = serve(&listener);
        let url = format!("http://{}", first.local_addr());
        let script_done = Arc::new(AtomicBool::new(false));
        let done = script_done.clone();
        let browser = async move {
            let out = node("chat.mjs", &url).await;
            done.store(true, Ordering::Release);
            out
        };
        // When the page asks, the server is shut down (its clients closed
        // with 1012 and a 1 s reconnect hint) and a new one serves the
        // same socket.
        let restarter = async {
            while !restart.load(Ordering::Acquire) && !script_done.load(Ordering::Acquire) {
                rt.sleep(Duration::from_millis(20)).await;
            }
            if restart.load(Ordering::Acquire) {
                first.shutdown();
                within(WAIT, "the first server to stop", first.stopped()).await;
                Some(serve(&listener))
            } else {
                None
            }
        };
        let (out, second) = within(
            Duration::from_secs(120),
            "the browser script",
            futures_lite::future::zip(browser, restarter),
        )
        .await;
        assert!(second.is_some(), "the page never asked for the restart");
        every_check_passed(&out, 13);
    }

    #[ignore = "needs Chromium and playwright-core; .ci/run installs them and runs this"]
    async fn a_page_whose_token_lasts_6_s_keeps_one_socket_for_20_s(rt) {
        if let Err(missing) = prerequisites() {
            panic!("the browser test cannot run: {missing}");
        }
        // Every upgrade the server sees: one, for the whole 20 s.
        let log = Log::default();
        let mut app = examples::chat::app_with(b"the browser test", Duration::from_secs(6));
        let seen = log.clone();
        app.middleware(wsway::middleware::from_fn(move |req| {
            if req.path().starts_with("/chat/") {
                seen.push("upgrade");
            }
            Ok(())
        }));
        let server = rt.start(app).await;
        let url = format!("http://{}", server.local_addr());
        let out = within(Duration::from_secs(120), "the browser script", node("refresh.mjs", &url)).await;
        every_check_passed(&out, 2);
        assert_eq!(log.count("upgrade"), 1, "the page upgraded once: {:?}", log.snapshot());
    }

    #[ignore = "needs Chromium and playwright-core; .ci/run installs them and runs this"]
    async fn the_chat_over_https_and_http2(rt) {
        if let Err(missing) = prerequisites() {
            panic!("the browser test cannot run: {missing}");
        }
        let cert = common::tls::Cert::self_signed();
        let files = common::tls::PemFiles::new(&cert);
        // Which HTTP each WebSocket arrived on, as the server saw it.
        let log = Log::default();
        let mut app = examples::chat::app_with_secret(b"the browser test");
        let seen = log.clone();
        app.middleware(wsway::middleware::from_fn(move |req| {
            let websocket = req.method() == http::Method::CONNECT || req.header("upgrade").is_some();
            if websocket {
                seen.push(format!("websocket {:?}", req.version()));
            }
            Ok(())
        }));
        let server = rt.start(wsway::Server::new(app).tls(files.tls()).http2()).await;
        let url = format!("https://localhost:{}", server.local_addr().port());
        let out = within(Duration::from_secs(120), "the browser script", node("chat-h2.mjs", &url)).await;
        every_check_passed(&out, 2);
        let websockets = log.snapshot();
        assert!(websockets.len() >= 2, "both pages connected: {websockets:?}");
        assert!(websockets.iter().all(|w| w == "websocket HTTP/2.0"), "every WebSocket came over HTTP/2: {websockets:?}");
    }
}

/// Runs a script of `examples/browser` on `url`, off the runtime.
/// Prints what a browser script said, and checks it passed all `checks`.
fn every_check_passed(out: &std::process::Output, checks: usize) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "the browser script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(
        stdout.matches("ok: ").count(),
        checks,
        "every check ran:\n{stdout}"
    );
}

async fn node(script: &str, url: &str) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("browser")
        .join(script);
    let child = Command::new("node")
        .arg(&script)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start node");
    blocking(move || child.wait_with_output())
        .await
        .expect("the script's output")
}
