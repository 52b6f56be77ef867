//! The admin page (`App::admin`): refused without the key, a page that
//! fetches nothing from elsewhere, a stream that opens only with the
//! page's session and shows the node live (connections, rates, topics,
//! closes by code, presence), and the server API's disconnect through it;
//! across two nodes on Redis and a cluster, every node's figures.
//!
//! Headless Chromium opens it against two chat processes under load in
//! `tests/browser.rs`.

mod common;

use async_tungstenite::tungstenite::Message as Frame;
use base64::Engine as _;
use common::shared_redis::SharedRedis;
use common::*;
use serde_json::{Value, json};
use wsway::{ApiKey, App, Events, ServerHandle};

const KEY: &str = "admin-key-0123456789";

/// `/room/:topic` (events): subscribed to the topic and tracked there
/// with `{"name": ?name}`; `say` publishes to the room. The admin page at
/// `/admin`.
fn app() -> App {
    let mut app = App::new();
    let mut rooms = Events::<()>::new();
    rooms.on_open(|ws| {
        let topic = ws.param("topic").unwrap_or_default().to_owned();
        let query: std::collections::HashMap<String, String> = ws.query().unwrap_or_default();
        let name = query.get("name").cloned().unwrap_or_default();
        ws.subscribe(&topic);
        ws.track(&topic, &json!({ "name": name }))
            .expect("JSON metadata");
    });
    rooms.on("say", |ws, text: String| -> Result<(), wsway::EventError> {
        let topic = ws.param("topic").unwrap_or_default().to_owned();
        ws.publish(&topic, text);
        Ok(())
    });
    app.ws("/room/:topic", rooms);
    app.admin("/admin", ApiKey::new(KEY).expect("a valid key"));
    app
}

fn basic(password: &str) -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("ops:{password}"));
    format!("Authorization: Basic {pair}")
}

/// `GET /admin` with `headers`: the status, the headers and the body.
async fn page(addr: std::net::SocketAddr, headers: &[&str]) -> (u16, String, String) {
    let mut request = "GET /admin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_owned();
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let response = raw(addr, &request).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status_of(&response), head.to_owned(), body.to_owned())
}

/// The session token the page carries.
async fn session(addr: std::net::SocketAddr) -> String {
    session_of(addr, KEY).await
}

/// The page's stream, opened with `token`.
async fn stream(addr: std::net::SocketAddr, token: &str) -> Result<Client, u16> {
    let protocol = format!("wsway.admin, bearer.{token}");
    let req = request_with(
        addr,
        "/admin/stream",
        &[("sec-websocket-protocol", &protocol)],
    );
    match try_connect(addr, req).await {
        Ok((ws, _)) => Ok(ws),
        Err(async_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// The next snapshot on the stream (skipping command replies).
async fn snapshot(ws: &mut Client) -> Value {
    loop {
        let v = next_json_with_position(ws).await;
        if v.get("reply").is_none() {
            return v;
        }
    }
}

/// Snapshots until one satisfies `done`: the first that does.
async fn until(ws: &mut Client, what: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
    within(WAIT, what, async {
        loop {
            let v = snapshot(ws).await;
            if done(&v) {
                return v;
            }
        }
    })
    .await
}

/// The next reply to a command.
async fn reply(ws: &mut Client) -> Value {
    loop {
        let v = next_json_with_position(ws).await;
        if let Some(reply) = v.get("reply") {
            return reply.clone();
        }
    }
}

runtime_tests! {
    async fn the_page_asks_for_the_key_and_fetches_nothing_from_elsewhere(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        for headers in [vec![], vec![basic("admin-key-012345678X")], vec![format!("Authorization: Bearer {KEY}")]] {
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            let (status, head, body) = page(addr, &headers).await;
            assert_eq!(status, 401, "{headers:?}");
            assert!(head.contains(r#"www-authenticate: Basic realm="wsway admin""#), "{head}");
            assert!(!body.contains("wsway-token"), "nothing of the page: {body}");
        }
        let (status, head, body) = page(addr, &[&basic(KEY)]).await;
        assert_eq!(status, 200);
        assert!(head.contains("cache-control: no-store"), "{head}");
        assert!(head.contains("content-security-policy: default-src 'none'"), "{head}");
        // One document: no script, style, image or font from anywhere.
        for fetch in ["src=", "href=", "http://", "https://", "@import", "url("] {
            assert!(!body.contains(fetch), "the page fetches nothing (`{fetch}`)");
        }
    }

    async fn the_stream_opens_only_with_the_pages_session(rt) {
        let traced = common::trace::capture();
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let token = session(addr).await;
        let other = {
            let mut other = App::new();
            other.admin("/admin", ApiKey::new("another-key-0123456789").unwrap());
            rt.start(other).await
        };
        let foreign = session_of(other.local_addr(), "another-key-0123456789").await;
        let (expiry, mac) = token.split_once('.').unwrap();
        let forged = format!("{:x}.{mac}", u64::from_str_radix(expiry, 16).unwrap() + 1);
        for bad in [String::new(), "nonsense".into(), forged, foreign, KEY.into()] {
            assert_eq!(stream(addr, &bad).await.err(), Some(401), "{bad:?}");
        }
        let mut ws = stream(addr, &token).await.expect("the page's session opens it");
        let first = snapshot(&mut ws).await;
        // Neither the key (plain or as Basic sends it) nor a session is traced.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("ops:{KEY}"));
        let (_, mac) = token.split_once('.').unwrap();
        let fields = traced.all_text();
        assert!(fields.iter().any(|f| f.contains("/admin/stream")), "the stream's span was traced");
        for field in fields {
            for secret in [KEY, &basic, mac] {
                assert!(!field.contains(secret), "a secret in a trace: {field}");
            }
        }
        assert_eq!(first["nodes"].as_array().map(Vec::len), Some(1), "{first}");
        assert_eq!(first["nodes"][0]["backplane"], Value::Null, "in process: {first}");
        assert_eq!(first["total"]["connections"], json!(1), "the page's own stream: {first}");
    }

    async fn the_stream_shows_connections_topics_rates_closes_and_presence(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let mut ws = stream(addr, &session(addr).await).await.expect("open");
        let mut lobby = Vec::new();
        for name in ["ann", "bob", "cy"] {
            lobby.push(connect(addr, &format!("/room/lobby?name={name}")).await);
        }
        let _news = connect(addr, "/room/news?name=dee").await;
        let v = until(&mut ws, "four rooms' members and the page", |v| v["total"]["connections"] == json!(5)).await;
        assert_eq!(
            v["topics"],
            json!([
                { "topic": "lobby", "subscribers": 3, "per_s": 0.0 },
                { "topic": "news", "subscribers": 1, "per_s": 0.0 },
            ]),
            "{v}"
        );
        // Traffic while watched: publishes in, pushes out, rates above 0.
        for i in 0..20 {
            send_text(&mut lobby[0], &json!({ "event": "say", "data": format!("m{i}") }).to_string()).await;
        }
        let v = until(&mut ws, "rates", |v| {
            v["total"]["in_per_s"].as_f64() > Some(0.0) && v["topics"][0]["per_s"].as_f64() > Some(0.0)
        }).await;
        assert!(v["total"]["out_per_s"].as_f64() > Some(0.0), "{v}");

        // Presence of a topic, asked by the page.
        send_text(&mut ws, r#"{"presence": "lobby"}"#).await;
        let v = until(&mut ws, "lobby's presence", |v| v["presence"]["topic"] == "lobby").await;
        let mut names: Vec<&str> = v["presence"]["members"].as_array().unwrap().iter()
            .map(|m| m["meta"]["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        assert_eq!(names, ["ann", "bob", "cy"]);

        // The disconnect buttons: one member, with the code.
        let cy = v["presence"]["members"].as_array().unwrap().iter()
            .find(|m| m["meta"]["name"] == "cy").unwrap()["id"].clone();
        let cut = json!({ "disconnect": { "member": cy, "code": 4004, "reason": "by an operator" } });
        send_text(&mut ws, &cut.to_string()).await;
        assert_eq!(reply(&mut ws).await, json!({ "closed": 1 }));
        let mut cy = lobby.pop().unwrap();
        assert_eq!(expect_close_skipping(&mut cy).await, (4004, "by an operator".to_owned()));
        finish_close(&mut cy).await;
        let v = until(&mut ws, "the close by code", |v| v["closes"]["4004"].as_u64() >= Some(1)).await;
        assert!(v["total"]["connections"] == json!(4), "{v}");
        // Refused: a code a server may not send, and a topic with no name.
        for bad in [
            json!({ "disconnect": { "topic": "lobby", "code": 1006 } }),
            json!({ "disconnect": { "topic": "", "code": 4000 } }),
            json!({ "presence": 7 }),
        ] {
            send_text(&mut ws, &bad.to_string()).await;
            assert!(reply(&mut ws).await["error"].is_string(), "{bad}");
        }
    }
}

/// The session of the page at `addr` under `key`.
async fn session_of(addr: std::net::SocketAddr, key: &str) -> String {
    let (status, _, body) = page(addr, &[&basic(key)]).await;
    assert_eq!(status, 200);
    let start = body
        .find(r#"name="wsway-token" content=""#)
        .expect("a token")
        + 28;
    body[start..].split('"').next().expect("a token").to_owned()
}

/// The close, after whatever pushes were on their way.
async fn expect_close_skipping(ws: &mut Client) -> (u16, String) {
    within(WAIT, "the close", async {
        loop {
            match next_frame(ws).await {
                Some(Ok(Frame::Close(Some(c)))) => return (c.code.into(), c.reason.to_string()),
                Some(Ok(Frame::Close(None))) | Some(Err(_)) | None => {
                    panic!("closed without a code")
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await
}

/// A node on `redis` with the test app, reporting every 100 ms.
async fn node(rt: Runtime, redis: &SharedRedis) -> ServerHandle {
    redis.reporting_node(rt, app()).await
}

redis_tests! {
    async fn the_page_of_one_node_shows_every_node(rt, kind) {
        let redis = SharedRedis::start(kind);
        let (a, b) = (node(rt, &redis).await, node(rt, &redis).await);
        let mut on_b = Vec::new();
        for name in ["ann", "bob"] {
            on_b.push(connect(b.local_addr(), &format!("/room/lobby?name={name}")).await);
        }
        let _on_a = connect(a.local_addr(), "/room/lobby?name=al").await;
        let mut ws = stream(a.local_addr(), &session(a.local_addr()).await).await.expect("open");
        // B counts and reports each second once it hears a page watches.
        let v = until(&mut ws, "both nodes, B watched", |v| {
            v["nodes"].as_array().is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["watched"] == true))
                && v["total"]["connections"] == json!(4)
        }).await;
        for n in v["nodes"].as_array().unwrap() {
            assert_eq!(n["backplane"]["connected"], json!(true), "{v}");
        }
        assert_eq!(v["topics"][0], json!({ "topic": "lobby", "subscribers": 3, "per_s": 0.0 }), "{v}");
        // B's traffic shows through A's page.
        for i in 0..50 {
            send_text(&mut on_b[0], &json!({ "event": "say", "data": format!("m{i}") }).to_string()).await;
        }
        until(&mut ws, "B's rates", |v| {
            v["nodes"].as_array().unwrap().iter().any(|n| n["connections"] == json!(2) && n["in_per_s"].as_f64() > Some(0.0))
        }).await;
        // A member of B, closed from A's page.
        send_text(&mut ws, r#"{"presence": "lobby"}"#).await;
        let v = until(&mut ws, "presence across nodes", |v| v["presence"]["members"].as_array().map(Vec::len) == Some(3)).await;
        let bob = v["presence"]["members"].as_array().unwrap().iter()
            .find(|m| m["meta"]["name"] == "bob").unwrap()["id"].clone();
        send_text(&mut ws, &json!({ "disconnect": { "member": bob, "code": 4005, "reason": "" } }).to_string()).await;
        assert_eq!(reply(&mut ws).await, json!({ "closed": 0 }), "closed on its node");
        let mut bob = on_b.pop().unwrap();
        assert_eq!(expect_close_skipping(&mut bob).await.0, 4005);
    }
}
