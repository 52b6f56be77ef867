//! The chat example: rooms keep their messages to themselves, joins and
//! leaves are announced, and the page is served at `/`.

mod common;

use async_tungstenite::tungstenite::Message as Frame;
use common::*;

fn event(frame: Frame) -> serde_json::Value {
    match frame {
        Frame::Text(t) => serde_json::from_str(t.as_str()).expect("JSON event"),
        other => panic!("expected a text event, got {other:?}"),
    }
}

runtime_tests! {
    async fn rooms_broadcast_to_their_members_only(rt) {
        let server = rt.start(examples::chat::app()).await;
        let addr = server.local_addr();

        let page = raw(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status_of(&page), 200);
        assert!(page.contains("new WebSocket("), "the page opens a socket");

        let mut ann = connect(addr, "/chat/lobby?name=ann").await;
        assert_eq!(event(next_message(&mut ann).await)["kind"], "join");
        let mut bob = connect(addr, "/chat/lobby?name=bob").await;
        let mut eve = connect(addr, "/chat/other?name=eve").await;
        assert_eq!(event(next_message(&mut ann).await)["name"], "bob");
        assert_eq!(event(next_message(&mut bob).await)["name"], "bob");
        assert_eq!(event(next_message(&mut eve).await)["name"], "eve");

        send_text(&mut ann, "hi bob").await;
        for ws in [&mut ann, &mut bob] {
            let e = event(next_message(ws).await);
            assert_eq!((e["kind"].as_str(), e["name"].as_str(), e["text"].as_str()), (Some("message"), Some("ann"), Some("hi bob")));
        }
        send_text(&mut eve, "anyone?").await;
        assert_eq!(event(next_message(&mut eve).await)["text"], "anyone?");

        ann.close(None).await.unwrap();
        let e = event(next_message(&mut bob).await);
        assert_eq!((e["kind"].as_str(), e["name"].as_str()), (Some("leave"), Some("ann")));

        // Nothing from the lobby ever reached the other room.
        send_text(&mut eve, "still alone").await;
        assert_eq!(event(next_message(&mut eve).await)["text"], "still alone");

        let long = "n".repeat(40);
        let r = raw(addr, &upgrade_request(&format!("/chat/lobby?name={long}"), "")).await;
        assert_eq!(status_of(&r), 400);
    }
}
