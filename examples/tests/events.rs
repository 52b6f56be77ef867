//! The event layer through `wsway::testing` (the wire envelopes are the
//! point here, not the sockets): acks, every kind of error envelope,
//! ordering, groups and checks, emit/publish, and auth with revocation.
//! Every body runs on the test server's threads and on tokio, smol and
//! async-std.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::Log;
use examples::served_tests;
use futures_lite::future::block_on;
use serde::Deserialize;
use serde_json::{Value, json};
use wsway::testing::{TestClient, TestServer};
use wsway::{App, Bearer, EventError, Events, Message, StatusCode};

/// Sends a call and returns the next envelope.
fn call(ws: &mut TestClient, call: Value) -> Value {
    ws.send(call.to_string()).unwrap();
    next_json(ws)
}

fn next_json(ws: &mut TestClient) -> Value {
    ws.recv_json().unwrap()
}

fn send_text(ws: &mut TestClient, text: &str) {
    ws.send(text.to_owned()).unwrap();
}

fn join(server: &TestServer, path: &str) -> TestClient {
    server
        .request(path)
        .protocols(&["wsway.v1"])
        .connect()
        .unwrap()
}

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// Per-connection state for the group tests.
#[derive(Default)]
struct Session {
    admin: bool,
}

fn app(failures: Log) -> App {
    let mut events = Events::<Session>::new();
    events.on("math:add", |_ws, add: Add| {
        Ok::<_, EventError>(add.a + add.b)
    });
    events.on("fail:typed", |_ws, (): ()| {
        Err::<(), _>(EventError::new("nope", "said no"))
    });
    events.on("fail:internal", |_ws, (): ()| -> Result<(), EventError> {
        Err(std::io::Error::other("secret detail at /etc/db.conf"))?
    });
    events.on("fail:panic", |_ws, (): ()| -> () {
        panic!("secret panic detail")
    });
    events.on("noop", |_ws, (): ()| ());
    events.on_async("slow", |_ws, ms: u64| {
        Box::pin(async move {
            async_io::Timer::after(Duration::from_millis(ms)).await;
            Ok::<_, EventError>(ms)
        })
    });
    events.on("login:admin", |ws, (): ()| ws.data.admin = true);
    events.group("orders", |orders| {
        orders.on("list", |_ws, (): ()| Ok::<_, EventError>(vec!["o1", "o2"]));
        orders.group("admin", |admin| {
            admin.middleware(|ws, _event| match ws.data.admin {
                true => Ok(()),
                false => Err(EventError::new("forbidden", "admins only")),
            });
            admin.on("retry", |_ws, id: u64| {
                Ok::<_, EventError>(format!("retried {id}"))
            });
        });
        orders
            .on("cancel", |_ws, id: u64| Ok::<_, EventError>(id))
            .middleware(|_ws, _event| Err(EventError::new("closed", "cancellations are closed")));
    });
    events.on_failure(move |event, err| failures.push(format!("{event}: {err}")));
    let mut app = App::new();
    app.ws("/events", events);
    app
}

fn ack(id: u64, data: Value) -> Value {
    json!({"id": id, "ok": true, "data": data})
}

fn nack(id: Value, error: &str) -> (Value, Value, Value) {
    (id, json!(false), json!(error))
}

fn parts(v: &Value) -> (Value, Value, Value) {
    (v["id"].clone(), v["ok"].clone(), v["error"].clone())
}

/// Revocable sessions keyed by token.
#[derive(Clone, Default)]
struct Sessions(Arc<Mutex<HashSet<String>>>);

#[derive(Clone)]
struct User {
    name: String,
    token: String,
}

fn auth_app(sessions: Sessions) -> App {
    let live = sessions.clone();
    let verify = move |token: String| {
        let live = live.clone();
        async move {
            let known = live.0.lock().unwrap().contains(&token);
            known.then(|| User {
                name: token.trim_start_matches("t-").into(),
                token,
            })
        }
    };
    let mut events = Events::<()>::new();
    let revoked = sessions.clone();
    events.middleware(move |ws, _event| {
        let user = ws.value::<User>().expect("Bearer ran before the upgrade");
        if revoked.0.lock().unwrap().contains(&user.token) {
            Ok(())
        } else {
            Err(EventError::new("unauthorized", "session revoked").close(4001, "session revoked"))
        }
    });
    events.on("whoami", |ws, (): ()| {
        Ok::<_, EventError>(ws.value::<User>().map(|u| u.name.clone()))
    });
    events.on_open(|ws| {
        ws.subscribe("news");
    });
    events.on("shout", |ws, text: String| -> Result<(), EventError> {
        ws.emit("echoed", &text)?;
        ws.publish_event("news", "shouted", &json!({"text": text}))?;
        Ok(())
    });
    let mut app = App::new();
    app.ws("/live", events).middleware(Bearer::protocol(verify));
    app
}

fn connect_as(server: &TestServer, token: &str) -> TestClient {
    let bearer = format!("bearer.{token}");
    let ws = server
        .request("/live")
        .protocols(&["wsway.v1", &bearer])
        .connect()
        .expect("upgrade with a token");
    assert_eq!(ws.protocol(), Some("wsway.v1"));
    ws
}

served_tests! {
    fn acks_and_every_error_envelope(served) {
        let failures = Log::default();
        let server = served.serve(app(failures.clone()));
        let mut ws = join(&server, "/events");

        let r = call(
            &mut ws,
            json!({"event": "math:add", "data": {"a": 2, "b": 3}, "id": 1}),
        );
        assert_eq!(r, ack(1, json!(5)));
        let r = call(
            &mut ws,
            json!({"event": "math:add", "data": {"a": 1, "b": 1}, "id": "k"}),
        );
        assert_eq!(r["id"], "k", "string ids come back as given");

        let r = call(&mut ws, json!({"event": "fail:typed", "id": 2}));
        assert_eq!(
            r,
            json!({"id": 2, "ok": false, "error": "nope", "message": "said no"})
        );

        let r = call(&mut ws, json!({"event": "fail:internal", "id": 3}));
        assert_eq!(
            r,
            json!({"id": 3, "ok": false, "error": "internal", "message": "internal error"})
        );
        let r = call(&mut ws, json!({"event": "fail:panic", "id": 4}));
        assert_eq!(
            r,
            json!({"id": 4, "ok": false, "error": "internal", "message": "internal error"})
        );

        let r = call(
            &mut ws,
            json!({"event": "math:add", "data": {"a": "x"}, "id": 5}),
        );
        assert_eq!(parts(&r), nack(json!(5), "bad_data"));
        assert!(
            r["message"].as_str().unwrap().contains("invalid type"),
            "{r}"
        );
        let r = call(&mut ws, json!({"event": "no:such", "id": 6}));
        assert_eq!(parts(&r), nack(json!(6), "unknown_event"));
        send_text(&mut ws, "this is not JSON");
        assert_eq!(parts(&next_json(&mut ws)), nack(Value::Null, "malformed"));
        let r = call(&mut ws, json!({"event": 12, "id": 7}));
        assert_eq!(parts(&r), nack(json!(7), "malformed"));
        ws.send(Message::binary(vec![1, 2, 3])).unwrap();
        assert_eq!(parts(&next_json(&mut ws)), nack(Value::Null, "unsupported"));
        // Only an object is a call: an array shaped like one is not run, and
        // ids are integers or strings.
        for not_a_call in [
            r#"["math:add", 13, {"a": 1, "b": 1}]"#,
            "[1,2]",
            r#"{"event":"math:add","data":{"a":1,"b":1},"id":1.5}"#,
        ] {
            send_text(&mut ws, not_a_call);
            assert_eq!(
                parts(&next_json(&mut ws)),
                nack(Value::Null, "malformed"),
                "{not_a_call}"
            );
        }

        // A call without an id gets no reply: the next envelope is the next ack.
        send_text(&mut ws, &json!({"event": "noop"}).to_string());
        let r = call(&mut ws, json!({"event": "noop", "id": 8}));
        assert_eq!(r, ack(8, Value::Null));

        // After all that, including a panic, the socket is still open.
        let r = call(
            &mut ws,
            json!({"event": "math:add", "data": {"a": 40, "b": 2}, "id": 9}),
        );
        assert_eq!(r, ack(9, json!(42)));

        let logged = failures.snapshot();
        assert_eq!(logged.len(), 2, "{logged:?}");
        assert!(
            logged[0].starts_with("fail:internal: internal error: secret detail"),
            "{logged:?}"
        );
        assert!(logged[1].contains("secret panic detail"), "{logged:?}");
    }

    fn acks_arrive_in_call_order(served) {
        let server = served.serve(app(Log::default()));
        let mut ws = join(&server, "/events");
        // Earlier calls take longer, yet their replies come first.
        for id in 1..=20u64 {
            let ms = 2 * (21 - id);
            send_text(
                &mut ws,
                &json!({"event": "slow", "data": ms, "id": id}).to_string(),
            );
        }
        let started = std::time::Instant::now();
        for id in 1..=20u64 {
            assert_eq!(next_json(&mut ws), ack(id, json!(2 * (21 - id))));
        }
        // One at a time: the handlers' sleeps (420 ms in all) add up.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(420), "20 slow calls answered in {took:?}");
    }

    fn groups_prefix_names_and_run_their_checks(served) {
        let server = served.serve(app(Log::default()));
        let mut ws = join(&server, "/events");
        let r = call(&mut ws, json!({"event": "orders:list", "id": 1}));
        assert_eq!(r, ack(1, json!(["o1", "o2"])));
        let r = call(
            &mut ws,
            json!({"event": "orders:admin:retry", "data": 7, "id": 2}),
        );
        assert_eq!(parts(&r), nack(json!(2), "forbidden"));
        let r = call(&mut ws, json!({"event": "admin:retry", "data": 7, "id": 3}));
        assert_eq!(
            parts(&r),
            nack(json!(3), "unknown_event"),
            "names carry the full prefix"
        );
        let r = call(&mut ws, json!({"event": "login:admin", "id": 4}));
        assert_eq!(r, ack(4, Value::Null));
        let r = call(
            &mut ws,
            json!({"event": "orders:admin:retry", "data": 7, "id": 5}),
        );
        assert_eq!(r, ack(5, json!("retried 7")));
        let r = call(
            &mut ws,
            json!({"event": "orders:cancel", "data": 7, "id": 6}),
        );
        assert_eq!(parts(&r), nack(json!(6), "closed"), "per-event checks run");
    }

    fn identity_reaches_events_and_revocation_closes_4001(served) {
        let sessions = Sessions::default();
        sessions
            .0
            .lock()
            .unwrap()
            .extend(["t-ann".to_owned(), "t-bob".to_owned()]);
        let server = served.serve(auth_app(sessions.clone()));

        let err = server
            .request("/live")
            .protocols(&["wsway.v1"])
            .connect()
            .unwrap_err();
        assert_eq!(
            err.status(),
            Some(StatusCode::UNAUTHORIZED),
            "no token, no upgrade"
        );
        let mut ann = connect_as(&server, "t-ann");
        let mut bob = connect_as(&server, "t-bob");
        let r = call(&mut ann, json!({"event": "whoami", "id": 1}));
        assert_eq!(r, ack(1, json!("ann")));
        let r = call(&mut bob, json!({"event": "whoami", "id": 1}));
        assert_eq!(r, ack(1, json!("bob")));

        // emit reaches the caller, publish reaches the topic's other members.
        let r = call(&mut ann, json!({"event": "shout", "data": "hi", "id": 2}));
        assert_eq!(r, json!({"event": "echoed", "data": "hi"}));
        assert_eq!(next_json(&mut ann), ack(2, Value::Null));
        assert_eq!(
            next_json(&mut bob),
            json!({"event": "shouted", "data": {"text": "hi"}})
        );
        // So does a publish from outside any connection.
        server
            .handle()
            .topics()
            .publish_event("news", "tick", &1)
            .unwrap();
        assert_eq!(next_json(&mut bob), json!({"event": "tick", "data": 1}));
        assert_eq!(next_json(&mut ann), json!({"event": "tick", "data": 1}));

        // Revoke ann's session mid-connection: her next call, even to an
        // unknown event, is refused and the socket closes with 4001; bob
        // carries on.
        sessions.0.lock().unwrap().remove("t-ann");
        let r = call(&mut ann, json!({"event": "no:such:event", "id": 3}));
        assert_eq!(
            r,
            json!({"id": 3, "ok": false, "error": "unauthorized", "message": "session revoked"})
        );
        let (code, reason) = ann.expect_close().unwrap();
        assert_eq!((code.0, reason.as_str()), (4001, "session revoked"));
        let r = call(&mut bob, json!({"event": "whoami", "id": 4}));
        assert_eq!(r, ack(4, json!("bob")));
        let err = server
            .request("/live")
            .protocols(&["wsway.v1", "bearer.t-ann"])
            .connect()
            .unwrap_err();
        assert_eq!(
            err.status(),
            Some(StatusCode::UNAUTHORIZED),
            "a revoked token cannot reconnect"
        );
    }

    fn connection_errors_reach_on_error_and_on_close(served) {
        let log = Log::default();
        let (errors, closes) = (log.clone(), log.clone());
        let mut events = Events::<()>::new();
        events.on_error(move |_ws, err| errors.push(format!("error: {err}")));
        events.on_close(move |_ws, code, _reason| closes.push(format!("close: {code}")));
        let mut app = App::new();
        app.ws("/events", events)
            .limits(|l| l.max_message_size(1024));
        let server = served.serve(app);
        let mut ws = join(&server, "/events");
        send_text(&mut ws, &"x".repeat(2000));
        assert_eq!(ws.expect_close().unwrap().0.0, 1009);
        drop(ws); // the server lingers until the peer hangs up
        block_on(log.wait_for("close:"));
        let seen = log.snapshot();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[0].starts_with("error: ") && seen[1].starts_with("close: 1009"),
            "{seen:?}"
        );
    }
}
