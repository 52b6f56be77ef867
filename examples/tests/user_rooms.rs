//! User rooms and client joins on every runtime: an authenticated
//! connection is in its user's room from the start (every face: events,
//! callbacks, loops), `emit_to_user` reaches all of that user's connections
//! and nobody else's, and topics a client asks to join go through the
//! app's hook, except user rooms, which nobody but their user can join,
//! whatever the hook says.

mod common;

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use serde_json::{Value, json};
use wsway::{App, Bearer, EventError, Events, UserRooms, on_message};

#[derive(Clone)]
struct User {
    id: String,
}

/// Tokens are `t-<user>`.
fn bearer() -> Bearer<impl wsway::Verify<Identity = User>> {
    Bearer::header(|token: String| async move {
        token
            .strip_prefix("t-")
            .map(|id| User { id: id.to_owned() })
    })
}

fn events() -> Events<()> {
    let mut events = Events::<()>::new();
    // A careless hook: it lets anything but `secret:` through. The guard in
    // front of it still keeps users out of each other's rooms.
    events.on_join(|ws, topic| {
        if topic.starts_with("secret:") {
            return Err(EventError::new(
                "forbidden",
                format!("{topic} is not for {:?}", ws.user_id()),
            ));
        }
        Ok(())
    });
    events.on("whoami", |ws, (): ()| Ok::<_, EventError>(ws.user_id()));
    events
}

/// Signed-in routes of every face, and `/anonymous` without a sign-in.
fn app() -> App {
    let mut app = App::new();
    app.user_rooms(UserRooms::new(|user: &User| user.id.clone()).pattern("inbox:{id}"));
    app.ws("/events", events()).middleware(bearer());
    app.ws("/anonymous", events());
    app.ws("/plain", on_message(|_ws, _msg| {}))
        .middleware(bearer());
    app.ws_fn("/loop", |_req, mut socket| async move {
        while socket.recv().await.is_some() {}
    })
    .middleware(bearer());
    app
}

async fn as_user(addr: std::net::SocketAddr, path: &str, user: &str) -> Client {
    let auth = format!("Bearer t-{user}");
    Box::pin(connect_request(
        addr,
        request_with(addr, path, &[("authorization", &auth)]),
    ))
    .await
}

async fn json_of(ws: &mut Client) -> Value {
    match Box::pin(next_message(ws)).await {
        Frame::Text(t) => serde_json::from_str(&t).expect("JSON"),
        other => panic!("expected JSON text, got {other:?}"),
    }
}

/// Boxed, as the connection helpers are: test bodies hold many of them,
/// and async-std polls a test body on the test thread's stack.
async fn call(ws: &mut Client, id: u64, event: &str, data: Value) -> Value {
    Box::pin(async move {
        send_text(
            ws,
            &json!({ "event": event, "data": data, "id": id }).to_string(),
        )
        .await;
        let reply = json_of(ws).await;
        assert_eq!(reply["id"], id, "{reply}");
        reply
    })
    .await
}

runtime_tests! {
    async fn emit_to_user_reaches_every_connection_of_that_user_only(rt) {
        let app = app();
        let topics = app.topics();
        let server = rt.start(app).await;
        let addr = server.local_addr();
        let mut ann_tab = as_user(addr, "/events", "ann").await;
        let mut ann_plain = as_user(addr, "/plain", "ann").await;
        let mut ann_loop = as_user(addr, "/loop", "ann").await;
        let mut bob = as_user(addr, "/events", "bob").await;
        let mut anonymous = connect(addr, "/anonymous").await;

        assert_eq!(topics.user_topic("ann"), "inbox:ann");
        let sent = topics.emit_to_user("ann", "notice", &"for ann").unwrap();
        assert_eq!(sent.delivered, 3, "every face joins its user's room");
        topics.emit_to_user("bob", "notice", &"for bob").unwrap();
        let for_ann = json!({ "event": "notice", "data": "for ann" });
        for ws in [&mut ann_tab, &mut ann_plain, &mut ann_loop] {
            assert_eq!(json_of(ws).await, for_ann);
        }
        // Bob's first message is his own: ann's never reached him.
        assert_eq!(json_of(&mut bob).await, json!({ "event": "notice", "data": "for bob" }));
        let who = call(&mut anonymous, 1, "whoami", json!(null)).await;
        assert_eq!(who["data"], Value::Null, "no identity, no room: {who}");
        assert_eq!(topics.subscriber_count("inbox:ann"), 3);
    }

    async fn joins_go_through_the_hook_and_never_into_another_users_room(rt) {
        let app = app();
        let topics = app.topics();
        let server = rt.start(app).await;
        let addr = server.local_addr();
        let mut ann = as_user(addr, "/events", "ann").await;
        let mut anonymous = connect(addr, "/anonymous").await;

        let ok = call(&mut ann, 1, "wsway:join", json!({ "topic": "room:1" })).await;
        assert_eq!(ok, json!({ "id": 1, "ok": true, "data": { "topic": "room:1", "joined": true } }));
        let again = call(&mut ann, 2, "wsway:join", json!({ "topic": "room:1" })).await;
        assert_eq!(again["data"]["joined"], false);
        topics.publish_event("room:1", "said", &"hello").unwrap();
        assert_eq!(json_of(&mut ann).await, json!({ "event": "said", "data": "hello" }));

        // The hook's refusal, with its own message.
        let secret = call(&mut ann, 3, "wsway:join", json!({ "topic": "secret:x" })).await;
        assert_eq!(secret["ok"], false);
        assert_eq!(secret["error"], "forbidden");
        assert_eq!(secret["message"], r#"secret:x is not for Some("ann")"#);

        // Another user's room: refused although the hook would allow it.
        let theft = call(&mut ann, 4, "wsway:join", json!({ "topic": "inbox:bob" })).await;
        assert_eq!(theft["error"], "forbidden", "{theft}");
        assert_eq!(theft["message"], "a user's room can only be joined by that user");
        let anon = call(&mut anonymous, 1, "wsway:join", json!({ "topic": "inbox:ann" })).await;
        assert_eq!(anon["error"], "forbidden", "{anon}");
        assert_eq!(topics.subscriber_count("inbox:bob"), 0);
        assert_eq!(topics.subscriber_count("inbox:ann"), 1, "only ann herself");
        // Her own: already in it.
        let own = call(&mut ann, 5, "wsway:join", json!({ "topic": "inbox:ann" })).await;
        assert_eq!(own["data"], json!({ "topic": "inbox:ann", "joined": false }));

        // Malformed requests.
        let bad = call(&mut ann, 6, "wsway:join", json!("room:1")).await;
        assert_eq!(bad["error"], "bad_data", "{bad}");
        let long = call(&mut ann, 7, "wsway:join", json!({ "topic": "r".repeat(300) })).await;
        assert_eq!(long["error"], "bad_data", "{long}");

        let left = call(&mut ann, 8, "wsway:leave", json!({ "topic": "room:1" })).await;
        assert_eq!(left["data"], json!({ "topic": "room:1", "left": true }));
        assert_eq!(topics.subscriber_count("room:1"), 0);
    }

    async fn without_a_hook_no_join_is_allowed(rt) {
        let mut app = App::new();
        app.ws("/events", Events::<()>::new());
        let server = rt.start(app).await;
        let mut ws = connect(server.local_addr(), "/events").await;
        let refused = call(&mut ws, 1, "wsway:join", json!({ "topic": "room:1" })).await;
        assert_eq!(refused["error"], "forbidden", "{refused}");
        assert_eq!(refused["message"], "this server lets clients join no topics");
    }

    async fn emit_to_user_without_user_rooms_is_an_error_not_silence(rt) {
        let mut app = App::new();
        app.ws("/events", events()).middleware(bearer());
        let topics = app.topics();
        let _server = rt.start(app).await;
        let err = topics.emit_to_user("ann", "notice", &"lost").unwrap_err();
        assert!(err.to_string().contains("emit_to_user(\"ann\"): the app has no user rooms"), "{err}");
        let err = topics.publish_to_user("ann", "lost").unwrap_err();
        assert!(err.to_string().contains("app.user_rooms(UserRooms::new("), "{err}");
    }

    async fn an_identity_of_another_type_than_the_user_rooms_take_is_reported(rt) {
        /// What the rooms expect; the verifier attaches a `User`.
        struct Account(String);
        let traced = common::trace::capture();
        let mut app = App::new();
        app.user_rooms(UserRooms::new(|a: &Account| a.0.clone()));
        app.ws("/events", events()).middleware(bearer());
        let server = rt.start(app).await;
        let mut ws = as_user(server.local_addr(), "/events", "ann").await;
        let client = ws.get_ref().get_ref().local_addr().unwrap().to_string();
        let who = call(&mut ws, 1, "whoami", json!(null)).await;
        assert_eq!(who["data"], Value::Null, "no user: {who}");
        // Reported in the connection's own span, naming the type expected.
        eventually("the warning traced", || {
            traced.spans_where("remote", &client).iter().any(|s| {
                s.events.iter().any(|e| {
                    e.get("message").is_some_and(|m| m == "no identity for the user rooms")
                        && e.get("expected").is_some_and(|t| t.ends_with("Account"))
                })
            })
        })
        .await;
    }
}

#[test]
#[should_panic(expected = "event names starting with `wsway:` are wsway's own")]
fn the_builtin_events_cannot_be_registered() {
    let mut events = Events::<()>::new();
    events.on("wsway:join", |_ws, (): ()| Ok::<_, EventError>(()));
}

#[test]
#[should_panic(expected = "a user room pattern holds `{id}` once")]
fn a_pattern_without_the_id_is_refused() {
    let _ = UserRooms::new(|user: &User| user.id.clone()).pattern("users");
}
