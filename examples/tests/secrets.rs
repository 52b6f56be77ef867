//! Secrets stay out of wsway's own output: tokens in query strings,
//! `Authorization` headers and `Sec-WebSocket-Protocol` never appear in
//! what a server process prints, nor in any span or event field it records
//! with `tracing`, whatever happens to the request, bearer tokens of the
//! chat example's sessions included.

mod common;

use std::time::Duration;

use async_tungstenite::tungstenite::client::IntoClientRequest;
use common::*;
use wsway::{Accept, App, CloseCode, Error, Handler, Request, Response, Ws};

const SECRET: &str = "s3cr3t-T0KEN-value";

/// Every outcome an upgrade request can have, each carrying the secret in
/// its query, `Authorization` and `Sec-WebSocket-Protocol`, with the status
/// the server must answer.
fn requests() -> Vec<(String, u16)> {
    let creds = format!("Authorization: Bearer {SECRET}\r\nSec-WebSocket-Protocol: {SECRET}\r\n");
    let path = format!("/echo?token={SECRET}");
    vec![
        (upgrade_request(&path, &creds), 101),
        (
            upgrade_request(&path, &creds).replace("Version: 13", "Version: 8"),
            426,
        ),
        (
            upgrade_request(&path, &creds).replacen("GET", "POST", 1),
            405,
        ),
        (
            upgrade_request(
                &path,
                &format!("{creds}Origin: https://{SECRET}.example\r\n"),
            ),
            403,
        ),
        (
            upgrade_request(&path, &format!("{creds}Content-Length: 3\r\n")),
            400,
        ),
        (
            upgrade_request(&format!("/nowhere?token={SECRET}"), &creds),
            404,
        ),
        (
            format!("GET /echo?token={SECRET} HTTP/1.1\r\nHost: x\r\n{creds}\r\n"),
            426,
        ),
    ]
}

/// Sends every request of [`requests`], checks each status, and checks that
/// no response (head or body) carries the secret. Returns each request's
/// client address (the `remote` its span records) with its status.
async fn refuse_every_way(addr: std::net::SocketAddr) -> Vec<(std::net::SocketAddr, u16)> {
    let mut sent = Vec::new();
    for (request, status) in requests() {
        let (r, client) = raw_from(addr, &request).await;
        sent.push((client, status));
        let line = request.lines().next().unwrap_or_default().to_owned();
        assert_eq!(status_of(&r), status, "{line}: {r}");
        assert!(
            !r.contains(SECRET),
            "{line}: the response repeats a secret: {r}"
        );
    }
    sent
}

/// An accepted connection that then breaks the protocol (bad UTF-8);
/// returns the client's address.
async fn fail_a_connection(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    let mut req = format!("ws://{addr}/echo?token={SECRET}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {SECRET}").parse().unwrap());
    let mut ws = connect_request(addr, req).await;
    let client = ws.get_ref().get_ref().local_addr().unwrap();
    use async_tungstenite::tungstenite::protocol::frame::{
        Frame as RawFrame,
        coding::{Data, OpCode},
    };
    let bad = RawFrame::message(vec![0xff, 0xfe], OpCode::Data(Data::Text), true);
    ws.send(async_tungstenite::tungstenite::Message::Frame(bad))
        .await
        .expect("send");
    assert_eq!(expect_close(&mut ws).await.0, 1007);
    finish_close(&mut ws).await;
    client
}

/// The fields of the connection span whose remote address is `client` and
/// its events', once it or one of its events has `field` = `value`: this
/// test's own connections, whatever else the process traces meanwhile.
async fn traced_for(
    traced: &common::trace::Captured,
    client: std::net::SocketAddr,
    field: &str,
    value: &str,
) -> Vec<String> {
    let remote = client.to_string();
    let mut found = Vec::new();
    eventually(&format!("{field}={value} traced for {remote}"), || {
        let spans = traced.spans_where("remote", &remote);
        found = spans
            .iter()
            .filter(|s| {
                std::iter::once(&s.fields)
                    .chain(&s.events)
                    .any(|f| f.get(field).is_some_and(|v| v == value))
            })
            .flat_map(|s| std::iter::once(&s.fields).chain(&s.events))
            .flat_map(|f| f.iter().map(|(k, v)| format!("{k}={v}")))
            .collect();
        !found.is_empty()
    })
    .await;
    found
}

/// Logs what an application that logs everything would: each request as
/// `{:?}` (middleware sees every upgrade that passes the protocol checks),
/// each error both ways, and each close.
#[derive(Clone, Default)]
struct Chatty(Log);

impl Handler for Chatty {
    type Data = ();

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<()>, Response> {
        self.0.push(format!("before_upgrade {req:?}"));
        Ok(Accept::new(()))
    }

    async fn error(&self, _ws: &mut Ws<()>, err: &Error) {
        self.0.push(format!("error {err} / {err:?}"));
    }

    async fn close(&self, _ws: &mut Ws<()>, code: CloseCode, reason: &str) {
        self.0.push(format!("close {code} {reason}"));
    }
}

runtime_tests! {
    async fn secrets_never_reach_the_output(rt) {
        let mut example = Example::spawn(env!("CARGO_BIN_EXE_echo"), rt);
        let addr = example.addr;
        refuse_every_way(addr).await;
        fail_a_connection(addr).await;
        example.signal("-TERM");
        assert!(example.wait_exit(Duration::from_secs(9)).success());
        let output = example.output();
        assert!(!output.contains(SECRET), "a secret reached the output:\n{output}");
        assert!(output.contains("listening on"), "the output was captured: {output:?}");
    }

    async fn secrets_never_reach_what_an_app_logs(rt) {
        let traced = common::trace::capture();
        let chatty = Chatty::default();
        let mut app = App::new();
        let log = chatty.0.clone();
        app.middleware(wsway::middleware::from_fn(move |req: &mut Request| {
            log.push(format!("middleware {req:?}"));
            Ok(())
        }));
        app.ws("/echo", chatty.clone());
        let server = rt.start(app).await;
        let refused = refuse_every_way(server.local_addr()).await;
        let failed = fail_a_connection(server.local_addr()).await;
        chatty.0.wait_for("close").await;
        let log = chatty.0.snapshot();
        // What was logged is there to leak: the path, the error, the close.
        assert!(log.iter().any(|l| l.starts_with("middleware") && l.contains("/echo")), "{log:?}");
        assert!(log.iter().any(|l| l.starts_with("before_upgrade") && l.contains("/echo")), "{log:?}");
        assert!(log.iter().any(|l| l.starts_with("error")), "{log:?}");
        for line in &log {
            assert!(!line.contains(SECRET), "a secret reached the log: {line}");
        }
        // Nor what the server recorded with tracing for this test's own
        // connections (found by their client address): each outcome, with
        // its status, and the failed connection's close.
        let mut fields = traced_for(&traced, failed, "code", "1007").await;
        for (client, status) in refused {
            // No route, no upgrade to refuse: its span holds no status.
            let (field, value) = match status {
                404 => ("remote", client.to_string()),
                status => ("status", status.to_string()),
            };
            fields.extend(traced_for(&traced, client, field, &value).await);
        }
        for expected in ["message=upgrade refused", "status=426", "status=403", "route=/echo", "code=1007"] {
            assert!(fields.iter().any(|l| l == expected), "{expected} was not traced: {fields:?}");
        }
        for field in &fields {
            assert!(!field.contains(SECRET), "a secret reached a tracing field: {field}");
        }
        // Nor anything else traced in this process.
        for field in traced.all_text() {
            assert!(!field.contains(SECRET), "a secret reached a tracing field: {field}");
        }
    }

    async fn a_verifier_that_quotes_the_token_is_scrubbed(rt) {
        let traced = common::trace::capture();
        let mut app = App::new();
        // A session store's error, quoting the token as such errors do.
        let verify = |token: String| async move {
            Err::<(), _>(format!("no session for token {token} (store: sessions-1, key {token})"))
        };
        app.ws("/echo", Chatty::default())
            .middleware(wsway::Bearer::query("token", verify).or_header().or_protocol());
        let server = rt.start(app).await;
        let addr = server.local_addr();
        for creds in [
            String::new(),
            format!("Authorization: Bearer {SECRET}\r\n"),
            format!("Sec-WebSocket-Protocol: bearer.{SECRET}\r\n"),
        ] {
            let path = if creds.is_empty() { format!("/echo?token={SECRET}") } else { "/echo".into() };
            let r = raw(addr, &upgrade_request(&path, &creds)).await;
            assert_eq!(status_of(&r), 401, "{r}");
            // The reason reaches the client, with the token replaced.
            assert!(r.contains("no session for token [redacted] (store: sessions-1, key [redacted])"), "{r}");
            assert!(!r.contains(SECRET), "the refusal repeats the token: {r}");
        }
        let traced = traced.all_text();
        assert!(traced.iter().any(|l| l == "status=401"), "{traced:?}");
        for field in &traced {
            assert!(!field.contains(SECRET), "a secret reached a tracing field: {field}");
        }
    }

    async fn an_event_error_that_quotes_the_token_is_scrubbed(rt) {
        /// What the verifier found: the session, token and all.
        #[derive(Clone)]
        struct Session {
            token: String,
        }
        let failures = Log::default();
        let mut events = wsway::Events::<()>::new();
        // A handler whose store errors quote the token, in every place an
        // error can carry text.
        events.on("typed", |ws, _: serde_json::Value| {
            let token = ws.value::<Session>().unwrap().token.clone();
            Err::<(), _>(
                wsway::EventError::new("store", format!("no row for {token}, nor for {token}"))
                    .with_data(&serde_json::json!({ "key": token })),
            )
        });
        events.on("internal", |ws, _: serde_json::Value| {
            let token = ws.value::<Session>().unwrap().token.clone();
            Err::<(), _>(wsway::EventError::internal(format!("store down while reading {token}")))
        });
        events.on("revoke", |ws, _: serde_json::Value| {
            let token = ws.value::<Session>().unwrap().token.clone();
            Err::<(), _>(
                wsway::EventError::new("revoked", "revoked").close(4001, format!("{token} revoked")),
            )
        });
        let log = failures.clone();
        events.on_failure(move |event, err| log.push(format!("{event}: {err}")));
        let mut app = App::new();
        let verify = |token: String| async move { Some(Session { token }) };
        app.ws("/events", events).middleware(wsway::Bearer::query("token", verify));
        let server = rt.start(app).await;
        let mut ws = connect(server.local_addr(), &format!("/events?token={SECRET}")).await;

        let typed = call(&mut ws, serde_json::json!({"event": "typed", "data": 1, "id": 1})).await;
        assert_eq!(typed["message"], "no row for [redacted], nor for [redacted]", "{typed}");
        assert_eq!(typed["data"]["key"], "[redacted]", "{typed}");
        let internal = call(&mut ws, serde_json::json!({"event": "internal", "data": 1, "id": 2})).await;
        assert_eq!(internal["error"], "internal", "{internal}");
        let logged = failures.wait_for("internal").await;
        assert_eq!(logged, "internal: internal error: store down while reading [redacted]");
        let revoked = call(&mut ws, serde_json::json!({"event": "revoke", "data": 1, "id": 3})).await;
        assert_eq!(revoked["error"], "revoked", "{revoked}");
        assert_eq!(expect_close(&mut ws).await, (4001, "[redacted] revoked".to_owned()));
        for text in [typed.to_string(), internal.to_string(), revoked.to_string()] {
            assert!(!text.contains(SECRET), "{text}");
        }
    }

    async fn chat_tokens_never_reach_the_output(rt) {
        let mut example = Example::spawn(env!("CARGO_BIN_EXE_chat"), rt);
        let addr = example.addr;
        // A forged token, from every source a client could put it in.
        let forged = format!("Sec-WebSocket-Protocol: wsway.v1, bearer.{SECRET}\r\nAuthorization: Bearer {SECRET}\r\n");
        let r = raw(addr, &upgrade_request(&format!("/chat/lobby?token={SECRET}"), &forged)).await;
        assert_eq!(status_of(&r), 401);
        // A real one, through a session that sends bad calls too.
        let token = chat_login(addr, "ann").await;
        let mut ws = chat_enter(addr, "lobby", "ann", &token).await;
        for bad in ["not json", r#"{"event":"chat:send","data":7,"id":1}"#, r#"{"event":"nope","id":2}"#] {
            send_text(&mut ws, bad).await;
            let _ = next_json(&mut ws).await;
        }
        drop(ws);

        example.signal("-TERM");
        assert!(example.wait_exit(Duration::from_secs(9)).success());
        let output = example.output();
        assert!(!output.contains(SECRET), "a forged token reached the output:\n{output}");
        assert!(!output.contains(&token), "a session token reached the output:\n{output}");
        assert!(output.contains("listening on"), "the output was captured: {output:?}");
    }
}
