//! The chat example: sign-in, rooms that keep their messages to themselves,
//! joins and leaves, acks and refusals, all through the event layer.

mod common;

use common::*;
use serde_json::{Value, json};

fn event(name: &str, data: Value) -> Value {
    json!({"event": name, "data": data})
}

runtime_tests! {
    async fn rooms_broadcast_to_their_members_only(rt) {
        let server = rt.start(examples::chat::app()).await;
        let addr = server.local_addr();

        let page = raw(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status_of(&page), 200);
        assert!(page.contains("from \"/wsway.js\""), "the page uses wsway.js");
        let js = raw(addr, "GET /wsway.js HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status_of(&js), 200);
        assert!(js.contains("text/javascript") && js.contains("export function connect"));

        // No token, or a made-up one: 401 before the 101.
        let r = raw(addr, &upgrade_request("/chat/lobby", "Sec-WebSocket-Protocol: wsway.v1\r\n")).await;
        assert_eq!(status_of(&r), 401);
        let r = raw(addr, &upgrade_request("/chat/lobby", "Sec-WebSocket-Protocol: wsway.v1, bearer.forged\r\n")).await;
        assert_eq!(status_of(&r), 401);

        let mut ann = chat_join(addr, "lobby", "ann").await;
        let mut bob = chat_join(addr, "lobby", "bob").await;
        assert_eq!(next_json(&mut ann).await, event("chat:join", json!({"name": "bob"})));
        let mut eve = chat_join(addr, "other", "eve").await;

        let r = call(&mut ann, json!({"event": "chat:send", "data": {"text": "hi bob"}, "id": 1})).await;
        assert_eq!(r, event("chat:message", json!({"name": "ann", "text": "hi bob"})));
        assert_eq!(next_json(&mut ann).await, json!({"id": 1, "ok": true, "data": {"sent": true}}));
        assert_eq!(next_json(&mut bob).await, event("chat:message", json!({"name": "ann", "text": "hi bob"})));

        let r = call(&mut ann, json!({"event": "chat:send", "data": {"text": "  "}, "id": 2})).await;
        assert_eq!((r["id"].clone(), r["error"].clone()), (json!(2), json!("empty")));
        let long = "x".repeat(501);
        let r = call(&mut ann, json!({"event": "chat:send", "data": {"text": long}, "id": 3})).await;
        assert_eq!(r["error"], "too_long");

        // Who is in the room: eve is elsewhere.
        let who = json!({"event": "chat:who", "id": 7});
        assert_eq!(call(&mut bob, who.clone()).await, json!({"id": 7, "ok": true, "data": {"members": ["ann", "bob"], "count": 2}}));

        ann.close(None).await.unwrap();
        assert_eq!(next_json(&mut bob).await, event("chat:leave", json!({"name": "ann"})));
        assert_eq!(call(&mut bob, who).await, json!({"id": 7, "ok": true, "data": {"members": ["bob"], "count": 1}}));

        // Nothing from the lobby reached the other room.
        let r = call(&mut eve, json!({"event": "chat:send", "data": {"text": "anyone?"}})).await;
        assert_eq!(r, event("chat:message", json!({"name": "eve", "text": "anyone?"})));

        let r = raw(addr, &upgrade_request(&format!("/chat/{}", "r".repeat(65)), "")).await;
        assert_eq!(status_of(&r), 400);
        let r = raw(addr, &format!("GET /login?name={} HTTP/1.1\r\nHost: x\r\n\r\n", "n".repeat(40))).await;
        assert_eq!(status_of(&r), 400);
    }
}
