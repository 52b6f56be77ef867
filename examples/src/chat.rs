//! Chat rooms on the event layer, with a browser page that uses `wsway.js`.
//!
//! - `GET /login?name=ann` hands out a token (a demo: any name is accepted).
//! - `/chat/:room` takes the token as the `bearer.<token>` subprotocol,
//!   which is what `wsway.js` sends; without a valid one the upgrade is a 401.
//! - Events from the client: `chat:send` `{"text"}` → ack `{"sent": n}`;
//!   `chat:who` → ack `{"members": [name, ..], "count": n}`: who is in the
//!   room, on every process sharing the Redis (`--redis`).
//! - Events to the client: `chat:welcome` `{"name", "room"}`, and to the
//!   whole room `chat:message` `{"name", "text"}`, `chat:join` / `chat:leave`
//!   `{"name"}`.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use wsway::{
    App, Bearer, EventError, Events, Html, IntoResponse, Request, Response, StatusCode, Ws,
    middleware, text,
};

/// Longest message, in characters.
const MAX_TEXT: usize = 500;

/// Signed-in users by token. A real app keeps sessions in a store and
/// issues tokens after checking a password; the demo takes any name.
#[derive(Clone, Default)]
struct Sessions(Arc<Mutex<HashMap<String, Member>>>);

/// Who a connection belongs to: the verified identity `Bearer` attaches.
#[derive(Clone, Debug, Serialize)]
struct Member {
    name: String,
}

impl Sessions {
    fn login(&self, name: String) -> String {
        // Unguessable enough for a demo: two randomly keyed hashes.
        let token = format!(
            "{:016x}{:016x}",
            RandomState::new().hash_one(&name),
            RandomState::new().hash_one(&name)
        );
        let mut sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions.insert(token.clone(), Member { name });
        token
    }

    fn verify(&self, token: &str) -> Option<Member> {
        let sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get(token).cloned()
    }
}

#[derive(Deserialize)]
struct Login {
    name: String,
}

#[derive(Deserialize)]
struct Send {
    text: String,
}

#[derive(Deserialize)]
struct Who {
    name: String,
}

#[derive(Serialize)]
struct Said<'a> {
    name: &'a str,
    text: &'a str,
}

/// The room a connection is in, from the `:room` segment.
fn room(ws: &Ws<()>) -> String {
    format!("room:{}", ws.param("room").unwrap_or_default())
}

fn member(ws: &Ws<()>) -> &str {
    ws.value::<Member>().map_or("someone", |m| m.name.as_str())
}

fn events() -> Events {
    let mut events = Events::new();
    events.on_open(|ws| {
        let room = room(ws);
        ws.subscribe(&room);
        let name = member(ws).to_owned();
        // Before the join goes out, so whoever hears it and asks who is
        // here sees the newcomer.
        let _ = ws.track(&room, &Member { name: name.clone() });
        let _ = ws.emit(
            "chat:welcome",
            &serde_json::json!({ "name": name, "room": ws.param("room") }),
        );
        let _ = ws.publish_event(&room, "chat:join", &serde_json::json!({ "name": name }));
    });
    events.group("chat", |chat| {
        chat.on("send", |ws, msg: Send| {
            let text = msg.text.trim();
            if text.is_empty() {
                return Err(EventError::new("empty", "say something"));
            }
            if text.chars().count() > MAX_TEXT {
                return Err(EventError::new(
                    "too_long",
                    format!("messages are at most {MAX_TEXT} characters"),
                ));
            }
            let said = Said {
                name: member(ws),
                text,
            };
            // The route publishes to self: the sender sees its own line
            // in the same order as everyone else.
            let sent = ws.publish_event(&room(ws), "chat:message", &said)?;
            Ok(serde_json::json!({ "sent": sent.delivered }))
        });
        chat.on_async("who", |ws, _: serde::de::IgnoredAny| {
            Box::pin(async move {
                // Redis unreachable: say so, rather than list only this
                // process's members.
                let members = ws
                    .topics()
                    .presence(&room(ws))
                    .await
                    .map_err(|e| EventError::new("unavailable", e.to_string()))?;
                let mut names: Vec<String> = members
                    .iter()
                    .filter_map(|m| m.meta::<Who>().ok().map(|w| w.name))
                    .collect();
                names.sort();
                Ok::<_, EventError>(serde_json::json!({ "count": names.len(), "members": names }))
            })
        });
    });
    // The member has already left the room's presence when this runs.
    events.on_close(|ws, _code, _reason| {
        let name = member(ws).to_owned();
        let _ = ws.publish_event(
            &room(ws),
            "chat:leave",
            &serde_json::json!({ "name": name }),
        );
    });
    events.on_failure(|event, err| eprintln!("chat: event {event} failed: {err}"));
    events
}

/// Room names are 1 to 64 bytes.
fn valid_room(req: &mut Request) -> Result<(), Response> {
    match req.param("room") {
        Some(room) if !room.is_empty() && room.len() <= 64 => Ok(()),
        _ => Err(text(StatusCode::BAD_REQUEST, "room names are 1-64 bytes")),
    }
}

/// The chat app: the page at `/`, `wsway.js`, `/login`, rooms at `/chat/:room`.
pub fn app() -> App {
    let sessions = Sessions::default();
    let mut app = App::new();
    app.get("/", |_req| async { Html(include_str!("chat.html")) });
    app.serve_client("/wsway.js");
    let issuer = sessions.clone();
    app.get("/login", move |req: Request| {
        let sessions = issuer.clone();
        async move {
            let login: Login = match req.query() {
                Ok(login) => login,
                Err(rejection) => return Response::from(rejection),
            };
            let name = login.name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 32 {
                return text(StatusCode::BAD_REQUEST, "names are 1-32 characters");
            }
            let token = sessions.login(name);
            let mut res = serde_json::json!({ "token": token })
                .to_string()
                .into_response();
            res.headers_mut().insert(
                wsway::http::header::CONTENT_TYPE,
                wsway::http::HeaderValue::from_static("application/json"),
            );
            res
        }
    });
    let verify = move |token: String| {
        let sessions = sessions.clone();
        async move { sessions.verify(&token) }
    };
    app.ws("/chat/:room", events())
        .publish_to_self(true)
        .middleware(middleware::from_fn(valid_room))
        .middleware(Bearer::protocol(verify));
    app
}
