//! Chat rooms: `/chat/:room?name=...` joins a room; every message goes to
//! everyone in it, as a JSON object `{"kind", "name", "text"}`. A page at
//! `/` lets two browser tabs chat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use wsway::{
    Accept, App, CloseCode, Handle, Handler, Html, Message, Request, Response, StatusCode, Ws, text,
};

/// Who is in which room: connection id → handle, per room.
#[derive(Clone, Default)]
struct Chat {
    rooms: Arc<Mutex<HashMap<String, HashMap<u64, Handle>>>>,
}

/// Per-connection state.
#[derive(Default)]
struct Member {
    room: String,
    name: String,
}

#[derive(Deserialize)]
struct Query {
    name: Option<String>,
}

/// What the page receives, one JSON object per message.
#[derive(Serialize)]
struct Event<'a> {
    kind: &'a str,
    name: &'a str,
    text: &'a str,
}

impl Chat {
    fn broadcast(&self, room: &str, event: Event<'_>) {
        let json = serde_json::to_string(&event).expect("events serialize");
        let msg = Message::text(json);
        if let Some(members) = self.rooms.lock().unwrap().get(room) {
            for handle in members.values() {
                handle.send(msg.clone());
            }
        }
    }
}

impl Handler for Chat {
    type Data = Member;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<Member>, Response> {
        let room: String = req.params()?;
        let query: Query = req.query()?;
        let name = query.name.unwrap_or_else(|| "anonymous".into());
        if room.is_empty() || room.len() > 64 || name.len() > 32 {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "room names are 1-64 bytes, user names at most 32",
            ));
        }
        Ok(Accept::new(Member { room, name }))
    }

    async fn open(&self, ws: &mut Ws<Member>) {
        let Member { room, name } = &ws.data;
        self.rooms
            .lock()
            .unwrap()
            .entry(room.clone())
            .or_default()
            .insert(ws.id(), ws.handle());
        self.broadcast(
            room,
            Event {
                kind: "join",
                name,
                text: "",
            },
        );
    }

    async fn message(&self, ws: &mut Ws<Member>, msg: Message) {
        let Some(text) = msg.as_text() else {
            let _ = ws.close(CloseCode::UNSUPPORTED, "text only");
            return;
        };
        let Member { room, name } = &ws.data;
        self.broadcast(
            room,
            Event {
                kind: "message",
                name,
                text,
            },
        );
    }

    async fn close(&self, ws: &mut Ws<Member>, _code: CloseCode, _reason: &str) {
        let Member { room, name } = &ws.data;
        {
            let mut rooms = self.rooms.lock().unwrap();
            if let Some(members) = rooms.get_mut(room) {
                members.remove(&ws.id());
                if members.is_empty() {
                    rooms.remove(room);
                }
            }
        }
        self.broadcast(
            room,
            Event {
                kind: "leave",
                name,
                text: "",
            },
        );
    }
}

/// The chat app: the page at `/`, rooms at `/chat/:room`.
pub fn app() -> App {
    let mut app = App::new();
    app.get("/", |_req| async { Html(include_str!("chat.html")) });
    app.ws("/chat/:room", Chat::default());
    app
}
