//! The server API on every runtime, mounted in axum too, and across two
//! nodes on Redis: a backend publishes text, binary and events to a
//! topic's subscribers and to a user's sockets, asks who is present,
//! reads history, closes a user's sockets, and is refused clearly (401 that reveals nothing, 400 naming the field, 413,
//! 415, 405, 409), with the key absent from every trace.

mod common;

use async_tungstenite::tungstenite::Message as Frame;
use common::shared_redis::SharedRedis;
use common::*;
use serde_json::{Value, json};
use wsway::{Accept, ApiKey, App, Bearer, Handler, Request, Response, Retention, UserRooms, Ws};

const KEY: &str = "test-key-0123456789abcdef";

/// `/room/:topic`: subscribed to its topic and tracked in it from `open`,
/// with `{"name": ?name}` as its presence.
struct Member;

impl Handler for Member {
    type Data = (String, String);

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<Self::Data>, Response> {
        let topic: String = req.params()?;
        let name = req.query::<std::collections::HashMap<String, String>>()?;
        let name = name.get("name").cloned().unwrap_or_default();
        Ok(Accept::new((topic, name)))
    }

    async fn open(&self, ws: &mut Ws<Self::Data>) {
        let (topic, name) = ws.data.clone();
        ws.subscribe(&topic);
        ws.track(&topic, &json!({ "name": name }))
            .expect("JSON metadata");
    }
}

#[derive(Clone)]
struct User(String);

/// An app with the API under `/api`, rooms at `/room/:topic`, and signed-in
/// sockets (`Bearer t-<user>`) in their user rooms at `/me`.
fn app() -> App {
    let mut app = App::new();
    app.ws("/room/:topic", Member);
    app.user_rooms(UserRooms::new(|u: &User| u.0.clone()));
    app.ws("/me", wsway::on_message(|_ws, _msg| {}))
        .middleware(Bearer::header(|token: String| async move {
            token.strip_prefix("t-").map(|u| User(u.to_owned()))
        }));
    app.history("kept:*", Retention::messages(3));
    app.server_api("/api", ApiKey::new(KEY).expect("a valid key"));
    app
}

/// One request to the API: its status and its body as JSON (`Null` when
/// the body is not JSON).
async fn api(addr: std::net::SocketAddr, line: &str, headers: &[&str], body: &str) -> (u16, Value) {
    let (status, body) = api_raw(addr, line, headers, body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn api_raw(
    addr: std::net::SocketAddr,
    line: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let mut request = format!("{line} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let response = raw(addr, &request).await;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status_of(&response), body)
}

const AUTH: &str = "Authorization: Bearer test-key-0123456789abcdef";
const JSON: &str = "Content-Type: application/json";

async fn publish(addr: std::net::SocketAddr, body: Value) -> (u16, Value) {
    api(addr, "POST /api/publish", &[AUTH, JSON], &body.to_string()).await
}

async fn as_user(addr: std::net::SocketAddr, user: &str) -> Client {
    let auth = format!("Bearer t-{user}");
    Box::pin(connect_request(
        addr,
        request_with(addr, "/me", &[("authorization", &auth)]),
    ))
    .await
}

runtime_and_mounted_tests! {
    async fn a_backend_publishes_text_binary_and_events_to_subscribers(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let mut ws = connect(addr, "/room/news").await;

        let (status, reply) = publish(addr, json!({ "topic": "news", "text": "hello" })).await;
        assert_eq!((status, &reply["delivered"], &reply["forwarded"]), (200, &json!(1), &json!("local")), "{reply}");
        assert_eq!(next_message(&mut ws).await, Frame::text("hello"));

        let (status, _) = publish(addr, json!({ "topic": "news", "binary": "AAEC/w==" })).await;
        assert_eq!(status, 200);
        assert_eq!(next_message(&mut ws).await, Frame::binary(vec![0u8, 1, 2, 255]));

        let (status, _) = publish(addr, json!({ "topic": "news", "event": "chat:message", "data": { "text": "hi" } })).await;
        assert_eq!(status, 200);
        let pushed = next_json(&mut ws).await;
        assert_eq!(pushed, json!({ "event": "chat:message", "data": { "text": "hi" } }));

        // Nobody subscribed: accepted, delivered to none.
        let (status, reply) = publish(addr, json!({ "topic": "empty", "text": "x" })).await;
        assert_eq!((status, &reply["delivered"]), (200, &json!(0)));
    }

    async fn a_backend_reaches_every_socket_of_one_user(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let (mut ann1, mut ann2, mut bob) = (as_user(addr, "ann").await, as_user(addr, "ann").await, as_user(addr, "bob").await);
        let body = json!({ "user": "ann", "event": "notice", "data": 7 });
        let (status, reply) = api(addr, "POST /api/publish_user", &[AUTH, JSON], &body.to_string()).await;
        assert_eq!((status, &reply["delivered"]), (200, &json!(2)), "{reply}");
        for ws in [&mut ann1, &mut ann2] {
            assert_eq!(next_json(ws).await, json!({ "event": "notice", "data": 7 }));
        }
        // Bob got nothing of it: his next message is his own.
        let body = json!({ "user": "bob", "text": "yours" });
        api(addr, "POST /api/publish_user", &[AUTH, JSON], &body.to_string()).await;
        assert_eq!(next_message(&mut bob).await, Frame::text("yours"));
    }

    async fn a_backend_asks_who_is_present(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let _a = connect(addr, "/room/lobby?name=ann").await;
        let _b = connect(addr, "/room/lobby?name=bob").await;
        let (status, reply) = api(addr, "GET /api/presence?topic=lobby", &[AUTH], "").await;
        assert_eq!(status, 200, "{reply}");
        let mut names: Vec<&str> = reply["members"].as_array().expect("a list").iter()
            .map(|m| m["meta"]["name"].as_str().expect("a name")).collect();
        names.sort_unstable();
        assert_eq!((names, &reply["topic"]), (vec!["ann", "bob"], &json!("lobby")));
        let (status, reply) = api(addr, "GET /api/presence_count?topic=lobby", &[AUTH], "").await;
        assert_eq!((status, &reply["count"]), (200, &json!(2)));
        let (status, reply) = api(addr, "GET /api/presence_count?topic=nobody", &[AUTH], "").await;
        assert_eq!((status, &reply["count"]), (200, &json!(0)));
    }

    async fn a_backend_closes_one_connection_by_its_member_id(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let mut ann = connect(addr, "/room/lobby?name=ann").await;
        let mut bob = connect(addr, "/room/lobby?name=bob").await;
        eventually("both tracked", || server.topics().subscriber_count("lobby") == 2).await;
        let (_, reply) = api(addr, "GET /api/presence?topic=lobby", &[AUTH], "").await;
        let anns = reply["members"].as_array().expect("members").iter()
            .find(|m| m["meta"]["name"] == "ann").expect("ann is present")["id"].clone();
        publish(addr, json!({ "topic": "lobby", "text": "before" })).await;
        let cut = json!({ "member": anns, "code": 4001, "reason": "just you" }).to_string();
        let (status, reply) = api(addr, "POST /api/disconnect", &[AUTH, JSON], &cut).await;
        assert_eq!((status, &reply["closed"], &reply["forwarded"]), (200, &json!(1), &json!("local")), "{reply}");
        assert_eq!(next_message(&mut ann).await, Frame::text("before"));
        assert_eq!(expect_close(&mut ann).await, (4001, "just you".to_owned()));
        // Bob stays.
        publish(addr, json!({ "topic": "lobby", "text": "after" })).await;
        assert_eq!(next_message(&mut bob).await, Frame::text("before"));
        assert_eq!(next_message(&mut bob).await, Frame::text("after"));
        // Closed already, or never there: nothing to close.
        let (status, reply) = api(addr, "POST /api/disconnect", &[AUTH, JSON], &cut).await;
        assert_eq!((status, &reply["closed"]), (200, &json!(0)), "{reply}");
        for (body, says) in [
            (json!({ "member": "ann", "code": 4001 }), "not a member id"),
            (json!({ "member": anns, "user": "ann", "code": 4001 }), "exactly one of"),
        ] {
            let (status, reply) = api(addr, "POST /api/disconnect", &[AUTH, JSON], &body.to_string()).await;
            assert_eq!(status, 400, "{body}");
            assert!(reply["error"].as_str().unwrap().contains(says), "{reply}");
        }
    }

    async fn a_backend_lists_the_busiest_topics(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let mut clients = Vec::new();
        for (topic, n) in [("lobby", 3), ("news", 1), ("kept:a", 2)] {
            for _ in 0..n {
                clients.push(connect(addr, &format!("/room/{topic}")).await);
            }
        }
        eventually("six subscribers", || {
            ["lobby", "news", "kept:a"].iter().map(|t| server.topics().subscriber_count(t)).sum::<usize>() == 6
        }).await;
        let (status, reply) = api(addr, "GET /api/topics", &[AUTH], "").await;
        assert_eq!(status, 200, "{reply}");
        let want = json!({
            "topics": [
                { "topic": "lobby", "subscribers": 3 },
                { "topic": "kept:a", "subscribers": 2 },
                { "topic": "news", "subscribers": 1 },
            ],
            "nodes": 1,
            "complete": true,
        });
        assert_eq!(reply, want);
        let (_, reply) = api(addr, "GET /api/topics?limit=1", &[AUTH], "").await;
        assert_eq!(reply["topics"], json!([{ "topic": "lobby", "subscribers": 3 }]));
        for bad in ["limit=0", "limit=1001", "limit=many", "top=3"] {
            let (status, reply) = api(addr, &format!("GET /api/topics?{bad}"), &[AUTH], "").await;
            assert_eq!(status, 400, "{bad}: {reply}");
        }
    }

    async fn a_request_without_the_key_learns_nothing(rt) {
        let traced = common::trace::capture();
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let mut ws = connect(addr, "/room/news").await;
        let body = json!({ "topic": "news", "text": "leak?" }).to_string();
        let wrong = "Authorization: Bearer test-key-0123456789abcdeX";
        for headers in [vec![JSON], vec![wrong, JSON], vec!["Authorization: Basic dGVzdA==", JSON], vec!["Authorization: Bearer ", JSON]] {
            let (status, text) = api_raw(addr, "POST /api/publish", &headers, &body).await;
            assert_eq!(status, 401, "{headers:?}");
            assert_eq!(text, r#"{"error":"a valid API key is required"}"#, "{headers:?}");
        }
        let (status, _) = api(addr, "GET /api/presence?topic=news", &[wrong], "").await;
        assert_eq!(status, 401);
        // None of it was published: the next message is the one with the key.
        publish(addr, json!({ "topic": "news", "text": "with the key" })).await;
        assert_eq!(next_message(&mut ws).await, Frame::text("with the key"));
        // Neither key appears in anything traced.
        for field in traced.all_text() {
            assert!(!field.contains("0123456789abcde"), "a key in a trace: {field}");
        }
    }

    async fn a_malformed_request_is_refused_naming_what_is_wrong(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let cases = [
            (json!({ "topic": 5, "text": "x" }), "`topic`"),
            (json!({ "topic": "t", "txt": "x" }), "unknown field `txt`"),
            (json!({ "text": "x" }), "missing field `topic`"),
            (json!({ "topic": "t", "text": "x", "binary": "AA==" }), "exactly one of"),
            (json!({ "topic": "t" }), "exactly one of"),
            (json!({ "topic": "t", "binary": "not base64!" }), "`binary` is not standard base64"),
            (json!({ "topic": "t", "text": "x", "data": 1 }), "`data` goes with `event`"),
            (json!({ "topic": "", "text": "x" }), "`topic` must not be empty"),
            (json!({ "user": "ann", "text": "x" }), "`user` is for /publish_user"),
        ];
        for (body, says) in cases {
            let (status, reply) = publish(addr, body.clone()).await;
            assert_eq!(status, 400, "{body}: {reply}");
            let error = reply["error"].as_str().unwrap_or_else(|| panic!("{body}: {reply}"));
            assert!(error.contains(says), "{body}: {error}");
        }
        let (status, reply) = api(addr, "POST /api/publish", &[AUTH, JSON], "{\"topic\":").await;
        assert_eq!(status, 400, "{reply}");
        let (status, _) = api(addr, "POST /api/publish", &[AUTH], r#"{"topic":"t","text":"x"}"#).await;
        assert_eq!(status, 415, "JSON without its content type");
        let (status, reply) = api(addr, "GET /api/presence", &[AUTH], "").await;
        assert_eq!(status, 400, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains("topic"), "{reply}");
        let (status, _) = api(addr, "GET /api/publish", &[AUTH], "").await;
        assert_eq!(status, 405);
    }

    async fn a_body_over_the_limit_is_a_413_announced_or_not(rt) {
        let mut app = app();
        app.max_body_bytes(1024);
        let server = rt.start(app).await;
        let addr = server.local_addr();
        let big = json!({ "topic": "t", "text": "x".repeat(2000) }).to_string();
        let (status, reply) = publish(addr, serde_json::from_str(&big).unwrap()).await;
        assert_eq!(status, 413, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains("1024 bytes"), "{reply}");
        // Chunked, so no length is announced: refused as it arrives.
        let chunks: String = big.as_bytes().chunks(500)
            .map(|c| format!("{:x}\r\n{}\r\n", c.len(), std::str::from_utf8(c).unwrap()))
            .collect::<String>() + "0\r\n\r\n";
        let (status, _) = api(addr, "POST /api/publish", &[AUTH, JSON, "Transfer-Encoding: chunked"], &chunks).await;
        assert_eq!(status, 413);
        // Just under the limit is fine.
        let (status, _) = publish(addr, json!({ "topic": "t", "text": "x".repeat(900) })).await;
        assert_eq!(status, 200);
    }

    async fn every_answer_is_the_one_the_openapi_file_documents(rt) {
        let doc: Value = serde_json::from_str(include_str!("../../docs/server-api.openapi.json")).expect("the OpenAPI file is JSON");
        let mut main = app();
        main.max_body_bytes(4096);
        let main = rt.start(main).await.local_addr();
        let mut bare = App::new();
        bare.server_api("/api", ApiKey::new(KEY).unwrap());
        let bare = rt.start(bare).await.local_addr();
        let mut away = app();
        away.backplane(StoreAway);
        let away = rt.start(away).await.local_addr();
        let _member = connect(main, "/room/lobby?name=ann").await;

        let publish_ok = json!({ "topic": "lobby", "text": "x" }).to_string();
        let user_ok = json!({ "user": "ann", "text": "x" }).to_string();
        let big = json!({ "topic": "lobby", "text": "x".repeat(5000) }).to_string();
        let big_user = json!({ "user": "ann", "text": "x".repeat(5000) }).to_string();
        // (path, method, status): a request that gets that answer.
        let cases: Vec<Case> = vec![
            (("/publish", "post", 200), main, "POST /api/publish".into(), vec![AUTH, JSON], publish_ok.clone()),
            (("/publish", "post", 400), main, "POST /api/publish".into(), vec![AUTH, JSON], "{}".into()),
            (("/publish", "post", 401), main, "POST /api/publish".into(), vec![JSON], publish_ok.clone()),
            (("/publish", "post", 413), main, "POST /api/publish".into(), vec![AUTH, JSON], big),
            (("/publish", "post", 415), main, "POST /api/publish".into(), vec![AUTH], publish_ok.clone()),
            (("/publish_user", "post", 200), main, "POST /api/publish_user".into(), vec![AUTH, JSON], user_ok.clone()),
            (("/publish_user", "post", 400), main, "POST /api/publish_user".into(), vec![AUTH, JSON], publish_ok.clone()),
            (("/publish_user", "post", 401), main, "POST /api/publish_user".into(), vec![JSON], user_ok.clone()),
            (("/publish_user", "post", 409), bare, "POST /api/publish_user".into(), vec![AUTH, JSON], user_ok.clone()),
            (("/publish_user", "post", 413), main, "POST /api/publish_user".into(), vec![AUTH, JSON], big_user),
            (("/publish_user", "post", 415), main, "POST /api/publish_user".into(), vec![AUTH], user_ok),
            (("/presence", "get", 200), main, "GET /api/presence?topic=lobby".into(), vec![AUTH], String::new()),
            (("/presence", "get", 400), main, "GET /api/presence".into(), vec![AUTH], String::new()),
            (("/presence", "get", 401), main, "GET /api/presence?topic=lobby".into(), vec![], String::new()),
            (("/presence", "get", 503), away, "GET /api/presence?topic=lobby".into(), vec![AUTH], String::new()),
            (("/presence_count", "get", 200), main, "GET /api/presence_count?topic=lobby".into(), vec![AUTH], String::new()),
            (("/presence_count", "get", 400), main, "GET /api/presence_count?topic=".into(), vec![AUTH], String::new()),
            (("/presence_count", "get", 401), main, "GET /api/presence_count?topic=lobby".into(), vec![], String::new()),
            (("/presence_count", "get", 503), away, "GET /api/presence_count?topic=lobby".into(), vec![AUTH], String::new()),
            (("/history", "get", 200), main, "GET /api/history?topic=kept:a".into(), vec![AUTH], String::new()),
            (("/history", "get", 400), main, "GET /api/history?topic=kept:a&since=yesterday".into(), vec![AUTH], String::new()),
            (("/history", "get", 401), main, "GET /api/history?topic=kept:a".into(), vec![], String::new()),
            (("/history", "get", 404), main, "GET /api/history?topic=lobby".into(), vec![AUTH], String::new()),
            (("/history", "get", 503), away, "GET /api/history?topic=kept:a".into(), vec![AUTH], String::new()),
            (("/topics", "get", 200), main, "GET /api/topics?limit=5".into(), vec![AUTH], String::new()),
            (("/topics", "get", 400), main, "GET /api/topics?limit=0".into(), vec![AUTH], String::new()),
            (("/topics", "get", 401), main, "GET /api/topics".into(), vec![], String::new()),
            (("/topics", "get", 503), away, "GET /api/topics".into(), vec![AUTH], String::new()),
            (("/disconnect", "post", 200), main, "POST /api/disconnect".into(), vec![AUTH, JSON], r#"{"topic":"nobody","code":4000}"#.into()),
            (("/disconnect", "post", 400), main, "POST /api/disconnect".into(), vec![AUTH, JSON], r#"{"topic":"nobody","code":1005}"#.into()),
            (("/disconnect", "post", 401), main, "POST /api/disconnect".into(), vec![JSON], r#"{"topic":"nobody","code":4000}"#.into()),
            (("/disconnect", "post", 409), bare, "POST /api/disconnect".into(), vec![AUTH, JSON], r#"{"user":"ann","code":4000}"#.into()),
            (("/disconnect", "post", 413), main, "POST /api/disconnect".into(), vec![AUTH, JSON], format!(r#"{{"topic":"{}","code":4000}}"#, "t".repeat(5000))),
            (("/disconnect", "post", 415), main, "POST /api/disconnect".into(), vec![AUTH], r#"{"topic":"nobody","code":4000}"#.into()),
        ];
        // Something kept, text and binary, for the 200 to show both.
        publish(main, json!({ "topic": "kept:a", "text": "one" })).await;
        publish(main, json!({ "topic": "kept:a", "binary": "AAE=" })).await;
        let mut documented = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("operations") {
                for status in op["responses"].as_object().expect("responses").keys() {
                    documented.push((path.as_str(), method.as_str(), status.parse::<u16>().expect("a status")));
                }
            }
        }
        documented.sort_unstable();
        let mut exercised: Vec<_> = cases.iter().map(|c| c.0).collect();
        exercised.sort_unstable();
        assert_eq!(exercised, documented, "every documented answer is exercised here, and only those");

        for ((path, method, status), addr, line, headers, body) in &cases {
            let (got, reply) = api(*addr, line, headers, body).await;
            assert_eq!(got, *status, "{line}: {reply}");
            let response = resolve(&doc, &doc["paths"][path][method]["responses"][status.to_string()]);
            let schema = &response["content"]["application/json"]["schema"];
            if let Err(e) = conforms(&doc, schema, &reply, "body") {
                panic!("{line} -> {status}: {e}: {reply}");
            }
        }
    }

    async fn a_backend_closes_a_users_sockets_after_what_it_sent_them(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let (mut ann1, mut ann2, mut bob) = (as_user(addr, "ann").await, as_user(addr, "ann").await, as_user(addr, "bob").await);
        let last = json!({ "user": "ann", "text": "goodbye" }).to_string();
        api(addr, "POST /api/publish_user", &[AUTH, JSON], &last).await;
        let cut = json!({ "user": "ann", "code": 4003, "reason": "banned" }).to_string();
        let (status, reply) = api(addr, "POST /api/disconnect", &[AUTH, JSON], &cut).await;
        assert_eq!((status, &reply["closed"], &reply["forwarded"]), (200, &json!(2), &json!("local")), "{reply}");
        for ws in [&mut ann1, &mut ann2] {
            assert_eq!(next_message(ws).await, Frame::text("goodbye"), "what was sent before arrives first");
            assert_eq!(expect_close(ws).await, (4003, "banned".to_owned()));
        }
        // Bob is still connected.
        let to_bob = json!({ "user": "bob", "text": "still here" }).to_string();
        api(addr, "POST /api/publish_user", &[AUTH, JSON], &to_bob).await;
        assert_eq!(next_message(&mut bob).await, Frame::text("still here"));

        // A topic's subscribers, on a topic that keeps history too.
        let mut member = connect(addr, "/room/kept:x").await;
        publish(addr, json!({ "topic": "kept:x", "text": "closing" })).await;
        let cut = json!({ "topic": "kept:x", "code": 1000 }).to_string();
        let (status, reply) = api(addr, "POST /api/disconnect", &[AUTH, JSON], &cut).await;
        assert_eq!((status, &reply["closed"]), (200, &json!(1)), "{reply}");
        assert_eq!(next_message(&mut member).await, Frame::text("closing"));
        assert_eq!(expect_close(&mut member).await, (1000, String::new()));

        for (body, says) in [
            (json!({ "user": "bob", "code": 1006 }), "`code` must be"),
            (json!({ "user": "bob" }), "missing field `code`"),
            (json!({ "user": "bob", "topic": "t", "code": 4000 }), "exactly one of"),
            (json!({ "code": 4000 }), "exactly one of"),
            (json!({ "user": "bob", "code": 4000, "reason": "x".repeat(124) }), "`reason`"),
        ] {
            let (status, reply) = api(addr, "POST /api/disconnect", &[AUTH, JSON], &body.to_string()).await;
            assert_eq!(status, 400, "{body}: {reply}");
            assert!(reply["error"].as_str().unwrap().contains(says), "{body}: {reply}");
        }
    }

    async fn a_backend_reads_what_a_topic_keeps_since_a_position(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let history = |query: String| async move { api(addr, &format!("GET /api/history?{query}"), &[AUTH], "").await };
        let (status, page) = history("topic=kept:a".into()).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!((&page["last"], &page["messages"], &page["complete"]), (&Value::Null, &json!([]), &json!(true)));

        let mut positions = Vec::new();
        for i in 1..=5 {
            let body = if i == 5 { json!({ "topic": "kept:a", "binary": "/wA=" }) } else { json!({ "topic": "kept:a", "text": format!("m{i}") }) };
            let (_, reply) = publish(addr, body).await;
            positions.push(reply["position"].as_str().expect("a position in process").to_owned());
        }
        // Three are kept: m3, m4 and the binary one.
        let (_, page) = history("topic=kept:a".into()).await;
        assert_eq!(page["last"], json!(positions[4]));
        assert_eq!(page["messages"], json!([
            { "position": positions[2], "text": "m3" },
            { "position": positions[3], "text": "m4" },
            { "position": positions[4], "binary": "/wA=" },
        ]));
        assert_eq!(page["complete"], json!(true), "nothing was asked from before");
        // Since m1: m2 is gone, so the page is not all that followed.
        let (_, page) = history(format!("topic=kept:a&since={}", positions[0])).await;
        assert_eq!((page["messages"].as_array().unwrap().len(), &page["complete"]), (3, &json!(false)), "{page}");
        // Since m3: m4 and m5, all of what followed.
        let (_, page) = history(format!("topic=kept:a&since={}", positions[2])).await;
        assert_eq!(page["messages"][0]["text"], json!("m4"));
        assert_eq!((page["messages"].as_array().unwrap().len(), &page["complete"]), (2, &json!(true)), "{page}");
        // Since the last: nothing, and complete.
        let (_, page) = history(format!("topic=kept:a&since={}", positions[4])).await;
        assert_eq!((&page["messages"], &page["complete"]), (&json!([]), &json!(true)), "{page}");
        // Another epoch: what is kept, and not complete.
        let (_, page) = history("topic=kept:a&since=1:1".into()).await;
        assert_eq!((page["messages"].as_array().unwrap().len(), &page["complete"]), (3, &json!(false)), "{page}");

        let (status, reply) = history("topic=lobby".into()).await;
        assert_eq!(status, 404, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains("keeps no history"), "{reply}");
        let (status, reply) = history("topic=kept:a&since=7".into()).await;
        assert_eq!(status, 400, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains("`since`"), "{reply}");
    }

    own_server_only: {
        async fn publishing_to_a_user_without_user_rooms_is_a_conflict(rt) {
            let mut app = App::new();
            app.server_api("/api/", ApiKey::new(KEY).unwrap());
            let server = rt.start(app).await;
            let body = json!({ "user": "ann", "text": "x" }).to_string();
            let (status, reply) = api(server.local_addr(), "POST /api/publish_user", &[AUTH, JSON], &body).await;
            assert_eq!(status, 409, "{reply}");
            assert!(reply["error"].as_str().unwrap().contains("user_rooms"), "{reply}");
        }
    }
}

/// A node on `redis` with the test app, reporting every 100 ms: another
/// node's counts are a heartbeat old.
async fn node(rt: Runtime, redis: &SharedRedis) -> wsway::ServerHandle {
    redis.reporting_node(rt, app()).await
}

redis_tests! {
    async fn the_api_of_one_node_reaches_and_counts_the_others(rt, kind) {
        let redis = SharedRedis::start(kind);
        let (a, b) = (node(rt, &redis).await, node(rt, &redis).await);
        let mut on_b = connect(b.local_addr(), "/room/lobby?name=bea").await;
        let _on_a = connect(a.local_addr(), "/room/lobby?name=al").await;
        eventually("both nodes to listen to the room", || redis.listeners("lobby") == 2).await;
        for i in 0..20 {
            let (status, reply) = publish(a.local_addr(), json!({ "topic": "lobby", "text": format!("m{i}") })).await;
            assert_eq!((status, &reply["forwarded"]), (200, &json!("queued")), "{reply}");
        }
        for i in 0..20 {
            assert_eq!(next_message(&mut on_b).await, Frame::text(format!("m{i}")), "in order, once");
        }
        // Presence through node A counts node B's member too.
        let (status, reply) = api(a.local_addr(), "GET /api/presence_count?topic=lobby", &[AUTH], "").await;
        assert_eq!((status, &reply["count"]), (200, &json!(2)), "{reply}");
        let (status, reply) = api(b.local_addr(), "GET /api/presence?topic=lobby", &[AUTH], "").await;
        assert_eq!(status, 200);
        assert_eq!(reply["members"].as_array().map(Vec::len), Some(2), "{reply}");
        // Topics through node A count node B's subscribers too, as B
        // last reported them (a heartbeat old at most).
        let reply = within(WAIT, "node B's report of its subscriber", async {
            loop {
                let (status, reply) = api(a.local_addr(), "GET /api/topics", &[AUTH], "").await;
                assert_eq!(status, 200, "{reply}");
                if reply["topics"][0]["subscribers"] == json!(2) {
                    return reply;
                }
                rt.sleep(std::time::Duration::from_millis(20)).await;
            }
        }).await;
        let want = json!({ "topics": [{ "topic": "lobby", "subscribers": 2 }], "nodes": 2, "complete": true });
        assert_eq!(reply, want);
        let _also_b = connect(b.local_addr(), "/room/lobby?name=bo").await;
        let reply = within(WAIT, "node B's next report", async {
            loop {
                let (_, reply) = api(a.local_addr(), "GET /api/topics", &[AUTH], "").await;
                if reply["topics"][0]["subscribers"] == json!(3) {
                    return reply;
                }
                rt.sleep(std::time::Duration::from_millis(20)).await;
            }
        }).await;
        assert_eq!((&reply["nodes"], &reply["complete"]), (&json!(2), &json!(true)), "{reply}");
        // A user's sockets on the other node.
        // History numbered by the store, read through the other node.
        for i in 0..5 {
            let (_, reply) = publish(a.local_addr(), json!({ "topic": "kept:r", "text": format!("k{i}") })).await;
            assert_eq!(reply["position"], Value::Null, "the store numbers it: {reply}");
        }
        let (status, page) = within(WAIT, "history in the store", async {
            loop {
                let (status, page) = api(b.local_addr(), "GET /api/history?topic=kept:r", &[AUTH], "").await;
                if status != 200 || page["last"].as_str().is_some_and(|l| l.ends_with(":5")) {
                    return (status, page);
                }
                rt.sleep(std::time::Duration::from_millis(20)).await;
            }
        }).await;
        assert_eq!(status, 200, "{page}");
        let texts: Vec<&str> = page["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["k2", "k3", "k4"], "the three kept, in order: {page}");
        let since = page["messages"][0]["position"].as_str().unwrap().to_owned();
        let (_, page) = api(a.local_addr(), &format!("GET /api/history?topic=kept:r&since={since}"), &[AUTH], "").await;
        assert_eq!((page["messages"].as_array().unwrap().len(), &page["complete"]), (2, &json!(true)), "{page}");
        let first = since.replace(":3", ":1");
        let (_, page) = api(a.local_addr(), &format!("GET /api/history?topic=kept:r&since={first}"), &[AUTH], "").await;
        assert_eq!((page["messages"].as_array().unwrap().len(), &page["complete"]), (3, &json!(false)), "k1 was trimmed: {page}");

        // One connection on node B, closed through node A by its member id.
        let mut cy = connect(b.local_addr(), "/room/solo?name=cy").await;
        let member = within(WAIT, "cy in presence", async {
            loop {
                let (_, reply) = api(a.local_addr(), "GET /api/presence?topic=solo", &[AUTH], "").await;
                if let Some(id) = reply["members"][0]["id"].as_str() {
                    return id.to_owned();
                }
                rt.sleep(std::time::Duration::from_millis(20)).await;
            }
        }).await;
        let cut = json!({ "member": member, "code": 4002, "reason": "only cy" }).to_string();
        let (status, reply) = api(a.local_addr(), "POST /api/disconnect", &[AUTH, JSON], &cut).await;
        assert_eq!((status, &reply["closed"], &reply["forwarded"]), (200, &json!(0), &json!("queued")), "{reply}");
        assert_eq!(expect_close(&mut cy).await, (4002, "only cy".to_owned()));
        // Another node's member that is gone: sent, nothing closes.
        let (status, _) = api(a.local_addr(), "POST /api/disconnect", &[AUTH, JSON], &cut).await;
        assert_eq!(status, 200);
        let (_, reply) = api(b.local_addr(), "GET /api/presence?topic=lobby", &[AUTH], "").await;
        assert_eq!(reply["members"].as_array().map(Vec::len), Some(3), "al, bea and bo stay: {reply}");

        let mut ann = as_user(b.local_addr(), "ann").await;
        eventually("node B to listen to ann's room", || redis.listeners("user:ann") == 1).await;
        let body = json!({ "user": "ann", "text": "to ann" }).to_string();
        let (status, _) = api(a.local_addr(), "POST /api/publish_user", &[AUTH, JSON], &body).await;
        assert_eq!(status, 200);
        assert_eq!(next_message(&mut ann).await, Frame::text("to ann"));

        // Closed from node A, after what A sent first.
        let last = json!({ "user": "ann", "text": "goodbye" }).to_string();
        api(a.local_addr(), "POST /api/publish_user", &[AUTH, JSON], &last).await;
        let cut = json!({ "user": "ann", "code": 4003, "reason": "banned" }).to_string();
        let (status, reply) = api(a.local_addr(), "POST /api/disconnect", &[AUTH, JSON], &cut).await;
        assert_eq!((status, &reply["closed"], &reply["forwarded"]), (200, &json!(0), &json!("queued")), "{reply}");
        assert_eq!(next_message(&mut ann).await, Frame::text("goodbye"));
        assert_eq!(expect_close(&mut ann).await, (4003, "banned".to_owned()));

        // A topic that keeps history: its messages reach node A from the
        // store too, and so does the close, in order, on both nodes.
        let mut kept = [connect(a.local_addr(), "/room/kept:z").await, connect(b.local_addr(), "/room/kept:z").await];
        eventually("both nodes to listen to kept:z", || redis.listeners("kept:z") == 2).await;
        publish(a.local_addr(), json!({ "topic": "kept:z", "text": "final" })).await;
        let cut = json!({ "topic": "kept:z", "code": 4000, "reason": "room closed" }).to_string();
        let (status, reply) = api(a.local_addr(), "POST /api/disconnect", &[AUTH, JSON], &cut).await;
        assert_eq!((status, &reply["closed"]), (200, &json!(0)), "closed when it comes back: {reply}");
        for ws in &mut kept {
            assert_eq!(next_message(ws).await, Frame::text("final"));
            assert_eq!(expect_close(ws).await, (4000, "room closed".to_owned()));
        }
    }
}

/// A documented answer (path, method, status), and the request that gets
/// it: where, its request line, its headers, its body.
type Case<'a> = (
    (&'a str, &'a str, u16),
    std::net::SocketAddr,
    String,
    Vec<&'a str>,
    String,
);

/// A backplane whose store never answers a presence query.
struct StoreAway;

impl wsway::Backplane for StoreAway {
    fn publish(
        &self,
        local: &wsway::LocalTopics,
        topic: &str,
        msg: wsway::Message,
        except: Option<u64>,
    ) -> wsway::Published {
        local.deliver(topic, msg, except)
    }

    fn presence(
        &self,
        _: &wsway::LocalTopics,
        _: &str,
    ) -> wsway::PresenceFuture<Vec<wsway::Member>> {
        Box::pin(async { Err(wsway::PresenceError::new("the store is away")) })
    }

    fn presence_count(&self, _: &wsway::LocalTopics, _: &str) -> wsway::PresenceFuture<usize> {
        Box::pin(async { Err(wsway::PresenceError::new("the store is away")) })
    }

    fn nodes(&self, _: &wsway::LocalTopics) -> wsway::PresenceFuture<Vec<wsway::NodeReport>> {
        Box::pin(async { Err(wsway::PresenceError::new("the store is away")) })
    }

    fn stores_history(&self) -> bool {
        true
    }

    fn fetch_history(&self, _: &str, _: u64, _: Retention) -> wsway::HistoryFuture {
        Box::pin(async { Err(wsway::HistoryError::new("the store is away")) })
    }
}

/// `v`, or what its `$ref` points to in `doc`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(
            doc,
            r.trim_start_matches("#/")
                .split('/')
                .fold(doc, |at, part| &at[part]),
        ),
        None => v,
    }
}

/// Whether `value` is what `schema` describes: the part of JSON Schema the
/// file uses (`type`, `enum`, `required`, `properties`,
/// `additionalProperties: false`, `items`, `minLength`).
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut fits = types.is_empty();
    for t in &types {
        fits |= match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            other => return Err(format!("{at}: the checker does not know type {other}")),
        };
    }
    if !fits {
        return Err(format!("{at} is not of type {}", schema["type"]));
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return Err(format!("{at} is not one of {options:?}"));
        }
    }
    if let (Some(min), Some(s)) = (
        schema.get("minLength").and_then(Value::as_u64),
        value.as_str(),
    ) {
        if (s.chars().count() as u64) < min {
            return Err(format!("{at} is shorter than {min}"));
        }
    }
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = name.as_str().expect("a property name");
        if value.get(name).is_none() {
            return Err(format!("{at}.{name} is missing"));
        }
    }
    if let Some(object) = value.as_object() {
        let props = schema.get("properties");
        for (name, v) in object {
            match props.and_then(|p| p.get(name)) {
                Some(s) => conforms(doc, s, v, &format!("{at}.{name}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}.{name} is not documented"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}
