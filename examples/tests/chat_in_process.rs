//! The chat example tested the way an application's own tests would be:
//! plain `#[test]`s with `wsway::testing`, no port and no runtime. (The
//! same app over real sockets, on each runtime, is `tests/chat.rs`.)

use serde_json::{Value, json};
use wsway::testing::{ClientError, TestClient, TestServer};
use wsway::{CloseCode, StatusCode};

fn server() -> TestServer {
    TestServer::new(examples::chat::app_with_secret(b"test secret"))
}

fn login(server: &TestServer, name: &str) -> String {
    let res = server.get(&format!("/login?name={name}")).unwrap();
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let body: Value = serde_json::from_str(&res.body).unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// Signs in and joins `room`, reading the welcome and the own join.
fn join(server: &TestServer, room: &str, name: &str) -> TestClient {
    let token = login(server, name);
    let mut client = server
        .request(&format!("/chat/{room}"))
        .protocols(&["wsway.v1", &format!("bearer.{token}")])
        .connect()
        .unwrap();
    assert_eq!(client.protocol(), Some("wsway.v1"));
    let welcome: Value = client.next_push("chat:welcome").unwrap();
    assert_eq!(welcome, json!({"name": name, "room": room}));
    let own: Value = client.next_push("chat:join").unwrap();
    assert_eq!(own, json!({"name": name}));
    client
}

#[test]
fn a_line_reaches_the_room_and_only_the_room() {
    let server = server();
    let mut ann = join(&server, "lobby", "ann");
    let mut bob = join(&server, "lobby", "bob");
    let mut cid = join(&server, "kitchen", "cid");
    let joined: Value = ann.next_push("chat:join").unwrap();
    assert_eq!(joined, json!({"name": "bob"}));

    let ack: Value = ann.emit("chat:send", &json!({"text": "hello"})).unwrap();
    assert_eq!(ack, json!({"sent": true}));
    for client in [&mut ann, &mut bob] {
        let line: Value = client.next_push("chat:message").unwrap();
        assert_eq!(line, json!({"name": "ann", "text": "hello"}));
    }
    // The other room hears nothing: its next push is its own line.
    let _: Value = cid.emit("chat:send", &json!({"text": "psst"})).unwrap();
    let line: Value = cid.next_push("chat:message").unwrap();
    assert_eq!(line, json!({"name": "cid", "text": "psst"}));

    let who: Value = bob.emit("chat:who", &()).unwrap();
    assert_eq!(who, json!({"count": 2, "members": ["ann", "bob"]}));
    assert_eq!(server.handle().subscriber_count("room:lobby"), 2);

    // A member who leaves is announced to the others.
    let (code, _) = bob.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(code, CloseCode::NORMAL);
    let left: Value = ann.next_push("chat:leave").unwrap();
    assert_eq!(left, json!({"name": "bob"}));
}

#[test]
fn refusals_come_back_typed() {
    let server = server();
    // No token: refused before the 101, with its status.
    let err = server
        .request("/chat/lobby")
        .protocols(&["wsway.v1"])
        .connect()
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED), "{err}");
    // A room name over 64 bytes: 400.
    let token = login(&server, "ann");
    let err = server
        .request(&format!("/chat/{}", "x".repeat(65)))
        .protocols(&["wsway.v1", &format!("bearer.{token}")])
        .connect()
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST), "{err}");

    // An empty line is an error reply with its code; the connection stays.
    let mut ann = join(&server, "lobby", "ann");
    let err = ann
        .emit::<Value>("chat:send", &json!({"text": "  "}))
        .unwrap_err();
    assert_eq!(err.rejection().map(|e| e.code()), Some("empty"), "{err}");
    let err = ann
        .emit::<Value>("chat:send", &json!({"text": "x".repeat(501)}))
        .unwrap_err();
    assert_eq!(err.rejection().map(|e| e.code()), Some("too_long"), "{err}");
    let ack: Value = ann
        .emit("chat:send", &json!({"text": "still here"}))
        .unwrap();
    assert_eq!(ack, json!({"sent": true}));
    // An event nobody handles is refused by name.
    let err = ann.emit::<Value>("chat:dance", &()).unwrap_err();
    assert!(matches!(err, ClientError::Rejected(_)), "{err}");
}

#[test]
fn the_page_and_the_client_are_served() {
    let server = server();
    let page = server.get("/").unwrap();
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("from \"/wsway.js\""));
    let js = server.get("/wsway.js").unwrap();
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("export function connect"));
    assert_eq!(
        server.get("/nowhere").unwrap().status,
        StatusCode::NOT_FOUND
    );
}
