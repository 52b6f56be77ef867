//! Middleware before the upgrade: groups and their stacks, bearer tokens
//! from every source, the origin allow-list and the per-IP handshake limit.

mod common;

use std::time::Duration;

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use wsway::{
    App, Bearer, Handler, HandshakeLimit, IntoResponse, Limits, Message, Origins, Request,
    StatusCode, Ws, middleware, on_message,
};

/// The middleware a request went through, in order.
#[derive(Clone, Default)]
struct Trail(Vec<&'static str>);

fn step(
    name: &'static str,
) -> middleware::FromFn<impl Fn(&mut Request) -> Result<(), wsway::Response>> {
    middleware::from_fn(move |req: &mut Request| {
        let mut trail = req.value::<Trail>().cloned().unwrap_or_default();
        trail.0.push(name);
        req.insert(trail);
        Ok(())
    })
}

/// Sends the trail on open.
struct ShowTrail;

impl Handler for ShowTrail {
    type Data = ();

    async fn open(&self, ws: &mut Ws<()>) {
        let trail = ws
            .value::<Trail>()
            .map(|t| t.0.join(">"))
            .unwrap_or_default();
        ws.send(Message::text(trail));
    }
}

fn grouped_app() -> App {
    let mut app = App::new();
    app.middleware(step("app"));
    app.group("/api", |api| {
        api.ws("/trail", ShowTrail);
        api.group("/admin", |admin| {
            admin.ws("/trail", ShowTrail).middleware(step("route"));
            // Declared after the route: a group's stack covers all its routes.
            admin.middleware(middleware::from_fn(|req: &mut Request| {
                match req.header("x-admin") {
                    Some("yes") => Ok(()),
                    _ => Err(StatusCode::FORBIDDEN.into_response()),
                }
            }));
            admin.middleware(step("admin"));
        });
        api.middleware(step("api"));
        api.get("/", |req: Request| async move {
            req.value::<Trail>()
                .map(|t| t.0.join(">"))
                .unwrap_or_default()
        });
    });
    app.get("/free", |req: Request| async move {
        req.value::<Trail>()
            .map(|t| t.0.join(">"))
            .unwrap_or_default()
    });
    app
}

async fn first_text(ws: &mut Client) -> String {
    match next_message(ws).await {
        Frame::Text(t) => t.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[derive(Clone, Debug, PartialEq)]
struct User(String);

async fn verify(token: String) -> Option<User> {
    match token.as_str() {
        "t-ann" => Some(User("ann".into())),
        "t-bob" => Some(User("bob".into())),
        _ => None,
    }
}

/// Sends `name|protocol` on open.
struct Whoami;

impl Handler for Whoami {
    type Data = ();

    async fn open(&self, ws: &mut Ws<()>) {
        let who = ws.value::<User>().map(|u| u.0.clone()).unwrap_or_default();
        let text = format!("{who}|{}", ws.protocol().unwrap_or(""));
        ws.send(Message::text(text));
    }
}

fn auth_app() -> App {
    let mut app = App::new();
    app.ws("/h", Whoami).middleware(Bearer::header(verify));
    app.ws("/q", Whoami)
        .middleware(Bearer::query("token", verify));
    app.ws("/p", Whoami)
        .protocols(["chat"])
        .middleware(Bearer::protocol(verify).or_header());
    app
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

runtime_tests! {
    async fn groups_share_prefixes_and_stacks_in_order(rt) {
        let server = rt.start(grouped_app()).await;
        let addr = server.local_addr();

        let mut ws = connect(addr, "/api/trail").await;
        assert_eq!(first_text(&mut ws).await, "app>api");

        let req = request_with(addr, "/api/admin/trail", &[("x-admin", "yes")]);
        let mut ws = try_connect(addr, req).await.expect("admin upgrade").0;
        assert_eq!(first_text(&mut ws).await, "app>api>admin>route", "outer groups first, the route last");

        let r = raw(addr, &upgrade_request("/api/admin/trail", "")).await;
        assert_eq!(status_of(&r), 403, "the admin group's check rejects before the 101");

        let r = raw(addr, "GET /api HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status_of(&r), 200);
        assert!(r.ends_with("app>api"), "a group's GET route runs its stack: {r}");
        let r = raw(addr, "GET /free HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.ends_with("\r\n\r\napp"), "routes outside the group run the app's only: {r}");
        let r = raw(addr, &upgrade_request("/trail", "")).await;
        assert_eq!(status_of(&r), 404, "routes exist under their prefix only");
    }

    async fn bearer_tokens_from_header_query_and_subprotocol(rt) {
        let server = rt.start(auth_app()).await;
        let addr = server.local_addr();

        // Missing and wrong tokens: 401 before the 101, with a challenge.
        for path in ["/h", "/q", "/p"] {
            let r = raw(addr, &upgrade_request(path, "")).await;
            assert_eq!(status_of(&r), 401, "{path}: {r}");
            assert_eq!(header(&r, "www-authenticate"), Some("Bearer realm=\"wsway\""));
        }
        for (path, extra) in [
            ("/h", "Authorization: Bearer t-eve\r\n"),
            ("/q?token=t-eve", ""),
            ("/p", "Sec-WebSocket-Protocol: chat, bearer.t-eve\r\n"),
        ] {
            let r = raw(addr, &upgrade_request(path, extra)).await;
            assert_eq!(status_of(&r), 401, "{path}: {r}");
            assert!(header(&r, "www-authenticate").unwrap().contains("invalid_token"));
            assert!(!r.contains("t-eve"), "a rejected token is never echoed: {r}");
        }

        // Good tokens: the identity reaches the handler.
        let req = request_with(addr, "/h", &[("authorization", "Bearer t-ann")]);
        let mut ws = try_connect(addr, req).await.expect("header token").0;
        assert_eq!(first_text(&mut ws).await, "ann|");
        let mut ws = connect(addr, "/q?token=t-bob").await;
        assert_eq!(first_text(&mut ws).await, "bob|");
        let req = request_with(addr, "/p", &[("sec-websocket-protocol", "chat, bearer.t-ann")]);
        let (mut ws, res) = try_connect(addr, req).await.expect("subprotocol token");
        assert_eq!(res.headers()["sec-websocket-protocol"], "chat", "the real protocol is chosen");
        assert_eq!(first_text(&mut ws).await, "ann|chat");

        // Offering only the token: a browser would fail the 101 (it chose
        // no subprotocol), so it is a 400 that says why, token not echoed.
        let r = raw(addr, &upgrade_request("/p", "Sec-WebSocket-Protocol: bearer.t-ann\r\n")).await;
        assert_eq!(status_of(&r), 400, "{r}");
        assert!(r.contains("the only subprotocol offered is a bearer token"), "{r}");
        assert!(!r.contains("t-ann"), "{r}");
        // `or_header` also works on the protocol route.
        let req = request_with(addr, "/p", &[("authorization", "Bearer t-bob")]);
        let mut ws = try_connect(addr, req).await.expect("header fallback").0;
        assert_eq!(first_text(&mut ws).await, "bob|");
    }

    async fn origin_middleware_guards_a_group(rt) {
        let mut app = App::new();
        app.limits(Limits::default().origins(Origins::any()));
        app.group("/site", |site| {
            site.middleware(Origins::only(["https://good.example"]));
            site.get("/data", |_req| async { "data" });
            site.ws("/echo", on_message(|ws, msg| { ws.send(msg); }));
        });
        let server = rt.start(app).await;
        let addr = server.local_addr();
        let get = |origin: &str| format!("GET /site/data HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\n\r\n");
        assert_eq!(status_of(&raw(addr, &get("https://evil.example")).await), 403);
        assert_eq!(status_of(&raw(addr, &get("https://good.example")).await), 200);
        let up = |origin: &str| upgrade_request("/site/echo", &format!("Origin: {origin}\r\n"));
        assert_eq!(status_of(&raw(addr, &up("https://evil.example")).await), 403);
        assert_eq!(status_of(&raw(addr, &up("https://good.example")).await), 101);
    }

    async fn handshake_limit_answers_429_per_ip(rt) {
        let mut app = App::new();
        app.middleware(HandshakeLimit::per_ip(3, Duration::from_secs(60)));
        app.ws("/echo", on_message(|ws, msg| { ws.send(msg); }));
        let server = rt.start(app).await;
        let addr = server.local_addr();
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(connect(addr, "/echo").await);
        }
        let r = raw(addr, &upgrade_request("/echo", "")).await;
        assert_eq!(status_of(&r), 429, "{r}");
        let retry: u64 = header(&r, "retry-after").expect("Retry-After").parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        // The admitted connections carry on.
        for ws in &mut open {
            send_text(ws, "still here").await;
            assert_eq!(next_message(ws).await, Frame::text("still here"));
        }
    }
}
