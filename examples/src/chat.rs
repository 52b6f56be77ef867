//! Chat rooms on the event layer, with a browser page that uses `wsway.js`.
//!
//! - `GET /login?name=ann` hands out a token (a demo: any name is accepted).
//!   Tokens are signed with `$CHAT_SECRET`: every process of the deployment
//!   accepts them, the one started after a restart included, so the page
//!   reconnects into its room by itself.
//! - `/chat/:room` takes the token as the `bearer.<token>` subprotocol,
//!   which is what `wsway.js` sends; without a valid one the upgrade is a 401.
//!   Tokens last an hour: before one expires the server asks the page for
//!   a new one (`Bearer::refresh`), which the page gets from
//!   `POST /token` (`Authorization: Bearer <current>`) and hands over on
//!   the open socket.
//! - The room's topic keeps a short history: a page that reconnects gets
//!   what it missed (`wsway.js` resumes by itself).
//! - Events from the client: `chat:send` `{"text"}` → ack `{"sent": true}`
//!   (an `unavailable` error if the line could not be sent to the other
//!   processes);
//!   `chat:who` → ack `{"members": [name, ..], "count": n}`: who is in the
//!   room, on every process sharing the Redis (`--redis`);
//!   `chat:members` with the target `#members`: the same list as an HTML
//!   fragment, which `wsway.js` morphs into the page's `#members`.
//! - Each page is in its user's room (`user:<name>`): with the admin page
//!   or the server API (`$WSWAY_ADMIN_KEY`, `$WSWAY_API_KEY`) an operator
//!   reaches, or disconnects, a user by name.
//! - Events to the client: `chat:welcome` `{"name", "room"}`, a render of
//!   the room's name into `#where` (`wsway:render`), and to the
//!   whole room `chat:message` `{"name", "text"}`, `chat:join` / `chat:leave`
//!   `{"name"}`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};
use ts_rs::TS;

use serde::{Deserialize, Serialize};
use wsway::{
    App, Bearer, EventError, Events, Expiring, Fragment, Html, IntoResponse, Request, Response,
    Retention, StatusCode, Ws, escape_html, middleware, text,
};

/// Longest message, in characters.
const MAX_TEXT: usize = 500;

/// Sign-in tokens that every process of the deployment accepts, the one
/// started after a restart included: `name.expiry.mac`, an HMAC-SHA1 over
/// the name and expiry with a secret shared through `CHAT_SECRET`. Without
/// it, each process makes up its own secret and its tokens die with it.
#[derive(Clone)]
struct Tokens {
    key: Arc<[u8]>,
    lifetime: Duration,
}

/// Who a connection belongs to: the verified identity `Bearer` attaches.
#[derive(Clone, Debug)]
struct Member {
    name: String,
    /// When the token expires, in seconds since the epoch.
    expires: u64,
}

/// A member's token expires; the page renews it on its open socket
/// (`Bearer::refresh`), and a socket never changes names.
impl Expiring for Member {
    type Subject = String;

    fn subject(&self) -> String {
        self.name.clone()
    }

    fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.expires)
    }
}

/// How long a token is valid: an hour, renewed in place before it ends.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);

impl Tokens {
    fn from_env() -> Tokens {
        match std::env::var("CHAT_SECRET") {
            Ok(secret) if !secret.is_empty() => Tokens::new(secret.as_bytes(), TOKEN_LIFETIME),
            _ => {
                eprintln!(
                    "chat: CHAT_SECRET is not set; sign-ins will not survive a restart \
                     or work on another process"
                );
                let random: Vec<u8> = (0..4)
                    .flat_map(|_| RandomState::new().hash_one(0u8).to_le_bytes())
                    .collect();
                Tokens::new(&random, TOKEN_LIFETIME)
            }
        }
    }

    fn new(secret: &[u8], lifetime: Duration) -> Tokens {
        Tokens {
            key: secret.into(),
            lifetime,
        }
    }

    fn issue(&self, name: &str) -> String {
        let expiry = now_secs() + self.lifetime.as_secs();
        let body = format!("{}.{expiry}", hex(name.as_bytes()));
        let mac = hex(&hmac_sha1(&self.key, body.as_bytes()));
        format!("{body}.{mac}")
    }

    fn verify(&self, token: &str) -> Option<Member> {
        let (body, mac) = token.rsplit_once('.')?;
        let expected = hex(&hmac_sha1(&self.key, body.as_bytes()));
        // Compared in full whatever the first difference: no timing hint.
        let same = mac.len() == expected.len()
            && mac
                .bytes()
                .zip(expected.bytes())
                .fold(0, |d, (a, b)| d | (a ^ b))
                == 0;
        let (name, expiry) = body.split_once('.')?;
        let expires = expiry.parse::<u64>().ok()?;
        if !same || expires <= now_secs() {
            return None;
        }
        let name = String::from_utf8(unhex(name)?).ok()?;
        Some(Member { name, expires })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// HMAC (RFC 2104) over SHA-1, the hash the WebSocket handshake already
/// brings in.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha1::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha1::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[derive(Deserialize)]
struct Login {
    name: String,
}

// The types on the wire, which the page's TypeScript contract
// (`chat-contract.d.ts`, from `contract()`) also describes.

/// A line to say in the room (`chat:send`).
#[derive(Deserialize, TS)]
struct Send {
    text: String,
}

/// `chat:send`'s reply.
#[derive(Serialize, TS)]
struct Sent {
    sent: bool,
}

/// Who is in the room, on every process (`chat:who`'s reply).
#[derive(Serialize, TS)]
struct Present {
    count: usize,
    members: Vec<String>,
}

/// A member, in presence lists and in `chat:join` / `chat:leave`.
#[derive(Serialize, Deserialize, TS)]
struct Who {
    name: String,
}

/// `chat:welcome`, to a page that entered a room.
#[derive(Serialize, TS)]
struct Welcome {
    name: String,
    room: String,
}

/// A line said in the room (`chat:message`).
#[derive(Serialize, TS)]
struct Said<'a> {
    name: &'a str,
    text: &'a str,
}

/// The chat's event contract, as the TypeScript declaration file
/// `examples/src/chat-contract.d.ts` (`chat --typescript` prints it; a
/// test checks the file is current).
pub fn contract() -> String {
    events().typescript("the chat example")
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
        let _ = ws.track(&room, &Who { name: name.clone() });
        let welcome = Welcome {
            name: name.clone(),
            room: ws.param("room").unwrap_or_default().to_owned(),
        };
        let _ = ws.emit("chat:welcome", &welcome);
        let where_ = format!(
            "Room <b>{}</b>",
            escape_html(ws.param("room").unwrap_or_default())
        );
        let _ = ws.render("#where", &Fragment::new(where_));
        let _ = ws.publish_event(&room, "chat:join", &Who { name });
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
            if sent.forwarded == wsway::Forwarded::Dropped {
                return Err(EventError::new(
                    "unavailable",
                    "the room cannot be reached right now; try again",
                ));
            }
            Ok(Sent { sent: true })
        })
        .errors(["empty", "too_long", "unavailable"]);
        chat.on_async("who", |ws, (): ()| {
            Box::pin(async move {
                let members = members(ws).await?;
                Ok::<_, EventError>(Present {
                    count: members.len(),
                    members,
                })
            })
        })
        .errors(["unavailable"]);
        // The same list as HTML for the page's `#members`: one `<li>` per
        // member, keyed by name, so the page's list changes in place.
        chat.on_async("members", |ws, (): ()| {
            Box::pin(async move {
                let names = members(ws).await?;
                let items: String = names
                    .iter()
                    .map(|name| {
                        let key: String = name.bytes().map(|b| format!("{b:02x}")).collect();
                        format!(r#"<li id="member-{key}">{}</li>"#, escape_html(name))
                    })
                    .collect();
                Ok::<_, EventError>(Fragment::new(items))
            })
        })
        .targets(["#members"])
        .errors(["unavailable"]);
    });
    events
        .emits::<Welcome>("chat:welcome")
        .emits::<Said>("chat:message")
        .emits::<Who>("chat:join")
        .emits::<Who>("chat:leave");
    // The member has already left the room's presence when this runs.
    events.on_close(|ws, _code, _reason| {
        let name = member(ws).to_owned();
        let _ = ws.publish_event(&room(ws), "chat:leave", &Who { name });
    });
    events.on_failure(|event, err| eprintln!("chat: event {event} failed: {err}"));
    events
}

/// Who is in the connection's room, by name, on every process. Redis
/// unreachable: say so, rather than list only this process's members.
async fn members(ws: &mut Ws<()>) -> Result<Vec<String>, EventError> {
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
    Ok(names)
}

/// Room names are 1 to 64 bytes.
fn valid_room(req: &mut Request) -> Result<(), Response> {
    match req.param("room") {
        Some(room) if !room.is_empty() && room.len() <= 64 => Ok(()),
        _ => Err(text(StatusCode::BAD_REQUEST, "room names are 1-64 bytes")),
    }
}

/// The chat app: the page at `/`, `wsway.js`, `/login`, rooms at `/chat/:room`.
///
/// Sign-in tokens are signed with `$CHAT_SECRET`, so every process started
/// with the same secret accepts them, across restarts.
pub fn app() -> App {
    with_tokens(Tokens::from_env())
}

/// The chat app with its sign-in tokens signed with `secret`, whatever the
/// environment says: for tests that restart it in one process.
pub fn app_with_secret(secret: &[u8]) -> App {
    app_with(secret, TOKEN_LIFETIME)
}

/// The chat app with its tokens signed with `secret` and valid for
/// `token_lifetime` (whole seconds): for tests of their renewal.
pub fn app_with(secret: &[u8], token_lifetime: Duration) -> App {
    with_tokens(Tokens::new(secret, token_lifetime))
}

fn with_tokens(sessions: Tokens) -> App {
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
            token_response(&sessions.issue(&name))
        }
    });
    // A fresh token for the holder of a valid one: what the page asks for
    // on every reconnect and whenever the server asks it to renew.
    let renewer = sessions.clone();
    app.post("/token", move |req: Request| {
        let sessions = renewer.clone();
        async move {
            let current = req
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "));
            match current.and_then(|t| sessions.verify(t)) {
                Some(member) => token_response(&sessions.issue(&member.name)),
                None => text(StatusCode::UNAUTHORIZED, "sign in again"),
            }
        }
    });
    let verify = move |token: String| {
        let sessions = sessions.clone();
        async move { sessions.verify(&token) }
    };
    // A short history: a page that loses its connection for a moment (a
    // restart's few seconds, even in a busy room) gets the lines it missed
    // when wsway.js reconnects.
    app.history(
        "room:*",
        Retention::messages(1000).max_age(Duration::from_secs(120)),
    );
    // Every page of a name is in its user room: the server API and the
    // admin page reach (and cut off) a user by name.
    app.user_rooms(wsway::UserRooms::new(|m: &Member| m.name.clone()));
    app.ws("/chat/:room", events())
        .publish_to_self(true)
        .middleware(middleware::from_fn(valid_room))
        .middleware(Bearer::protocol(verify).refresh());
    app
}

/// `{"token": ..}` as JSON.
fn token_response(token: &str) -> Response {
    let mut res = serde_json::json!({ "token": token })
        .to_string()
        .into_response();
    res.headers_mut().insert(
        wsway::http::header::CONTENT_TYPE,
        wsway::http::HeaderValue::from_static("application/json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        let mac = hmac_sha1(&[0x0b; 20], b"Hi There");
        assert_eq!(hex(&mac), "b617318655057264e28bc0b6fb378c8ef146be00");
        let long_key = hmac_sha1(
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(hex(&long_key), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
    }

    #[test]
    fn tokens_verify_across_instances_with_one_secret_only() {
        let token = Tokens::new(b"s3cret", TOKEN_LIFETIME).issue("Ann Lee");
        let member = Tokens::new(b"s3cret", TOKEN_LIFETIME)
            .verify(&token)
            .expect("same secret");
        assert_eq!(member.name, "Ann Lee");
        assert!(
            Tokens::new(b"other", TOKEN_LIFETIME)
                .verify(&token)
                .is_none()
        );
        let mut forged = token.clone();
        forged.replace_range(0..2, "42");
        assert!(
            Tokens::new(b"s3cret", TOKEN_LIFETIME)
                .verify(&forged)
                .is_none()
        );
        assert!(
            Tokens::new(b"s3cret", TOKEN_LIFETIME)
                .verify("x.y")
                .is_none()
        );
        assert!(Tokens::new(b"s3cret", TOKEN_LIFETIME).verify("").is_none());
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.'),
            "a subprotocol token"
        );
    }
}
