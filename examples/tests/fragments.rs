//! Rendered fragments on the wire, on every runtime: an event called with a
//! target on its allow-list answers `{"html"}`; any other target is refused
//! with `bad_target` before the handler runs; server pushes render with
//! `wsway:render`. (What `wsway.js` does with them is checked in headless
//! Chromium by the browser test.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use serde_json::{Value, json};
use wsway::{App, EventError, Events, Fragment, escape_html};

fn app(calls: Arc<AtomicU32>) -> App {
    let mut events = Events::<()>::new();
    events
        .on("feed", move |_ws, name: String| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, EventError>(Fragment::new(format!("<li>{}</li>", escape_html(&name))))
        })
        .targets(["#feed", "#side"]);
    events.on("plain", |_ws, (): ()| Ok::<_, EventError>(1));
    events.on_join(|_ws, _topic| Ok(()));
    events.on("push", |ws, (): ()| {
        ws.render("#banner", &Fragment::new("<b>hi</b>"))?;
        Ok::<_, EventError>(())
    });
    let mut app = App::new();
    app.ws("/events", events);
    app
}

async fn json_of(ws: &mut Client) -> Value {
    match Box::pin(next_message(ws)).await {
        Frame::Text(t) => serde_json::from_str(&t).expect("JSON"),
        other => panic!("expected JSON text, got {other:?}"),
    }
}

async fn call(ws: &mut Client, msg: Value) -> Value {
    Box::pin(async move {
        send_text(ws, &msg.to_string()).await;
        json_of(ws).await
    })
    .await
}

runtime_tests! {
    async fn targets_on_the_allow_list_only(rt) {
        let calls = Arc::new(AtomicU32::new(0));
        let app = app(calls.clone());
        let topics = app.topics();
        let server = rt.start(app).await;
        let mut ws = connect(server.local_addr(), "/events").await;

        let ok = call(&mut ws, json!({ "event": "feed", "data": "<ann>", "id": 1, "target": "#feed" })).await;
        assert_eq!(ok, json!({ "id": 1, "ok": true, "data": { "html": "<li>&lt;ann&gt;</li>" } }));
        let side = call(&mut ws, json!({ "event": "feed", "data": "bob", "id": 2, "target": "#side" })).await;
        assert_eq!(side["data"]["html"], "<li>bob</li>");

        // Refused before the handler runs.
        let bad = call(&mut ws, json!({ "event": "feed", "data": "eve", "id": 3, "target": "#admin" })).await;
        assert_eq!(
            bad,
            json!({ "id": 3, "ok": false, "error": "bad_target", "message": "event `feed` cannot render into `#admin`" })
        );
        let none = call(&mut ws, json!({ "event": "plain", "id": 4, "target": "#feed" })).await;
        assert_eq!(none["error"], "bad_target", "an event without targets takes none: {none}");
        let builtin = call(&mut ws, json!({ "event": "wsway:join", "data": { "topic": "t" }, "id": 5, "target": "#feed" })).await;
        assert_eq!(builtin["error"], "bad_target", "{builtin}");
        assert_eq!(topics.subscriber_count("t"), 0, "the refused join did not run");
        let typed = call(&mut ws, json!({ "event": "feed", "data": "x", "id": 6, "target": 7 })).await;
        assert_eq!(typed["error"], "malformed", "{typed}");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "only the allowed calls ran");

        // Without a target the fragment is plain data.
        let untargeted = call(&mut ws, json!({ "event": "feed", "data": "cy", "id": 7 })).await;
        assert_eq!(untargeted["data"], json!({ "html": "<li>cy</li>" }));

        // Pushes, to one connection and to a topic.
        let pushed = call(&mut ws, json!({ "event": "push", "id": 8 })).await;
        assert_eq!(pushed, json!({ "event": "wsway:render", "data": { "target": "#banner", "html": "<b>hi</b>" } }));
        assert_eq!(json_of(&mut ws).await, json!({ "id": 8, "ok": true, "data": null }));
        assert_eq!(topics.render("nobody", "#x", &Fragment::new("")).unwrap().delivered, 0);
    }
}
