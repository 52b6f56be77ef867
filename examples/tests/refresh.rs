//! Tokens renewed inside open sockets (`Bearer::refresh`), on every
//! runtime and every kind of route (callbacks, events, a loop): a client
//! that answers the server's `wsway:refresh` keeps its socket past every
//! expiry with each message answered once and in order; one that does not
//! is closed with 4001 at the expiry; a token for another user is refused;
//! and a verifier that rotates tokens keeps refusing the old one.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use serde_json::{Value, json};
use wsway::{App, Bearer, EventError, Events, Expiring, RefreshMargin, on_message};

/// A test token names its subject and when it expires: `ann.<unix ms>`.
#[derive(Clone, Debug)]
struct Claims {
    sub: String,
    exp_ms: u64,
}

impl Expiring for Claims {
    type Subject = String;

    fn subject(&self) -> String {
        self.sub.clone()
    }

    fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.exp_ms)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn token(sub: &str, lifetime: Duration) -> String {
    format!("{sub}.{}", now_ms() + lifetime.as_millis() as u64)
}

/// Accepts unexpired tokens, and rotates: once a subject showed a token
/// that expires later, its earlier ones are refused.
#[derive(Clone, Default)]
struct Rotating(Arc<Mutex<HashMap<String, u64>>>);

impl Rotating {
    fn verify(&self, token: &str) -> Result<Claims, String> {
        // As a session store's error often does, this one quotes the token.
        if token.starts_with("quote") {
            return Err(format!("no session {token}"));
        }
        let (sub, exp) = token.split_once('.').ok_or("not a test token")?;
        let exp_ms: u64 = exp.parse().map_err(|_| "not a test token")?;
        if exp_ms <= now_ms() {
            return Err("expired".into());
        }
        let mut latest = self.0.lock().unwrap();
        let newest = latest.entry(sub.to_owned()).or_insert(exp_ms);
        if exp_ms < *newest {
            return Err("replaced by a newer token".into());
        }
        *newest = exp_ms;
        Ok(Claims {
            sub: sub.to_owned(),
            exp_ms,
        })
    }
}

/// Asks at half the lifetime, so short test tokens are asked for in time.
fn bearer(rotating: &Rotating) -> Bearer<impl wsway::Verify<Identity = Claims>> {
    let rotating = rotating.clone();
    Bearer::query("token", move |token: String| {
        let verdict = rotating.verify(&token);
        async move { verdict }
    })
    .refresh_margin(RefreshMargin::new(0.5, Duration::ZERO))
}

/// The three faces, each echoing with the expiry of the identity the
/// connection has at that moment (the loop: without).
fn app(rotating: &Rotating) -> App {
    let mut app = App::new();
    app.ws(
        "/callbacks",
        on_message(|ws, msg: wsway::Message| {
            let exp = ws.value::<Claims>().map_or(0, |c| c.exp_ms);
            if let wsway::Message::Text(t) = msg {
                ws.send(format!("{exp} {}", t.as_str()));
            }
        }),
    )
    .middleware(bearer(rotating));
    let mut events = Events::<()>::new();
    events.on("echo", |ws, text: String| {
        let exp = ws.value::<Claims>().map_or(0, |c| c.exp_ms);
        Ok::<_, EventError>(format!("{exp} {text}"))
    });
    // A handler's error that quotes what it was given: the token, here.
    events.on("leak", |_ws, text: String| {
        Err::<(), _>(EventError::new("leak", format!("store says: {text}")))
    });
    app.ws("/events", events).middleware(bearer(rotating));
    app.ws_fn("/loop", |_req, mut socket| async move {
        while let Some(msg) = socket.recv().await {
            if let wsway::Message::Text(t) = msg {
                socket.send(format!("0 {}", t.as_str()));
            }
        }
    })
    .middleware(bearer(rotating));
    app
}

const FACES: [&str; 3] = ["/callbacks", "/events", "/loop"];

fn request(face: &str, i: usize) -> String {
    if face == "/events" {
        json!({"event": "echo", "data": format!("m{i}"), "id": i}).to_string()
    } else {
        format!("m{i}")
    }
}

/// What a frame from the server is.
#[derive(Debug)]
enum Seen {
    /// The echo of message `i`, made with an identity expiring at `exp`.
    Echo(usize, u64),
    /// The server asks for a new token.
    Asked(u64),
    /// The answer to refresh call `id`.
    Renewed(String, Value),
    Other(String),
}

fn seen(face: &str, frame: Frame) -> Seen {
    let Frame::Text(text) = frame else {
        return Seen::Other(format!("{frame:?}"));
    };
    let text = text.as_str();
    if let Ok(v) = serde_json::from_str::<Value>(text)
        && v.is_object()
    {
        if v["event"] == "wsway:refresh" {
            return Seen::Asked(v["data"]["expires_in_ms"].as_u64().unwrap_or(u64::MAX));
        }
        if let Some(id) = v["id"].as_str() {
            return Seen::Renewed(id.to_owned(), v);
        }
        if face == "/events" && v["ok"] == true {
            return echo(v["data"].as_str().unwrap_or_default());
        }
        return Seen::Other(text.to_owned());
    }
    echo(text)
}

fn echo(text: &str) -> Seen {
    let parse = || {
        let (exp, m) = text.split_once(' ')?;
        Some(Seen::Echo(
            m.strip_prefix('m')?.parse().ok()?,
            exp.parse().ok()?,
        ))
    };
    parse().unwrap_or_else(|| Seen::Other(text.to_owned()))
}

async fn open(addr: std::net::SocketAddr, face: &str, token: &str) -> Client {
    connect(addr, &format!("{face}?token={token}")).await
}

/// Each face's own user: a rotating verifier compares tokens per user.
fn user(face: &str) -> String {
    format!("ann-{}", face.trim_start_matches('/'))
}

fn refresh_call(token: &str, id: &str) -> String {
    json!({"event": "wsway:refresh", "data": {"token": token}, "id": id}).to_string()
}

const LIFETIME: Duration = Duration::from_millis(1600);

runtime_tests! {
    async fn a_client_that_answers_keeps_its_socket_past_every_expiry(rt) {
        let rotating = Rotating::default();
        let server = rt.start(app(&rotating)).await;
        let addr = server.local_addr();
        for face in FACES {
            let first = token(&user(face), LIFETIME);
            let mut ws = open(addr, face, &first).await;
            let started = Instant::now();
            let (mut next_echo, mut sent, mut renewals) = (0, 0, 0);
            // The expiry each echo must show: the first token's, then the
            // latest renewed one's from its ack on.
            let mut shown: u64 = first.split_once('.').unwrap().1.parse().unwrap();
            let mut exps = std::collections::BTreeSet::new();
            // The expiry of the token sent in the last refresh call: shown
            // from its ack on (the ack leaves after the identity changed).
            let mut renewing = None;
            // Three lifetimes: two renewals at least, messages throughout.
            while started.elapsed() < LIFETIME * 3 || renewals < 2 {
                assert!(started.elapsed() < WAIT, "{face}: {renewals} renewals in {:?}", started.elapsed());
                send_text(&mut ws, &request(face, sent)).await;
                sent += 1;
                while next_echo < sent {
                    match seen(face, next_message(&mut ws).await) {
                        Seen::Echo(i, exp) => {
                            assert_eq!(i, next_echo, "{face}: echoes in order, each once");
                            if face != "/loop" {
                                assert_eq!(exp, shown, "{face}: message {i} ran with the current identity");
                                exps.insert(exp);
                            }
                            next_echo += 1;
                        }
                        Seen::Asked(left) => {
                            assert!(left <= LIFETIME.as_millis() as u64, "{face}: asked with {left} ms left");
                            let fresh = token(&user(face), LIFETIME);
                            send_text(&mut ws, &refresh_call(&fresh, &format!("r{renewals}"))).await;
                            renewing = Some(fresh.split_once('.').unwrap().1.parse().unwrap());
                        }
                        Seen::Renewed(id, v) => {
                            assert_eq!(id, format!("r{renewals}"), "{face}: {v}");
                            assert_eq!(v["ok"], true, "{face}: {v}");
                            shown = renewing.take().expect("a call was sent");
                            renewals += 1;
                        }
                        Seen::Other(o) => panic!("{face}: unexpected {o}"),
                    }
                }
                rt.sleep(Duration::from_millis(10)).await;
            }
            assert!(renewals >= 2, "{face}: {renewals}");
            if face != "/loop" {
                assert!(exps.len() >= 3, "{face}: the identity changed with each renewal: {exps:?}");
            }
            // Still open: one more echo (a request for the next renewal
            // may come first).
            send_text(&mut ws, &request(face, sent)).await;
            loop {
                match seen(face, next_message(&mut ws).await) {
                    Seen::Echo(i, _) => break assert_eq!(i, sent, "{face}"),
                    Seen::Asked(_) => {}
                    other => panic!("{face}: {other:?}"),
                }
            }
        }
    }

    async fn a_client_that_does_not_answer_is_closed_with_4001_at_the_expiry(rt) {
        let server = rt.start(app(&Rotating::default())).await;
        let addr = server.local_addr();
        for face in FACES {
            let t = token(&user(face), LIFETIME);
            let expiry = UNIX_EPOCH + Duration::from_millis(t.split_once('.').unwrap().1.parse().unwrap());
            let mut ws = open(addr, face, &t).await;
            assert!(matches!(seen(face, next_message(&mut ws).await), Seen::Asked(_)), "{face}: asked first");
            let (code, reason) = expect_close(&mut ws).await;
            let closed = SystemTime::now();
            assert_eq!((code, reason.as_str()), (4001, "token expired"), "{face}");
            let late = closed.duration_since(expiry).unwrap_or_else(|e| panic!("{face}: closed {:?} before the expiry", e.duration()));
            assert!(late < Duration::from_secs(1), "{face}: closed {late:?} after the expiry");
            finish_close(&mut ws).await;
        }
    }

    async fn a_token_for_another_user_is_refused_and_the_socket_still_expires(rt) {
        let server = rt.start(app(&Rotating::default())).await;
        let addr = server.local_addr();
        for face in FACES {
            let mut ws = open(addr, face, &token(&user(face), LIFETIME)).await;
            assert!(matches!(seen(face, next_message(&mut ws).await), Seen::Asked(_)), "{face}");
            send_text(&mut ws, &refresh_call(&token("bob", LIFETIME * 10), "r0")).await;
            match seen(face, next_message(&mut ws).await) {
                Seen::Renewed(id, v) => {
                    assert_eq!(id, "r0");
                    assert_eq!(v["ok"], false, "{face}: {v}");
                    assert_eq!(v["error"], "refresh_refused", "{face}: {v}");
                    assert_eq!(v["message"], "the token is for another user", "{face}: {v}");
                }
                other => panic!("{face}: {other:?}"),
            }
            // Neither does a token the verifier refuses, nor none at all.
            send_text(&mut ws, &refresh_call("nonsense", "r1")).await;
            let Seen::Renewed(_, v) = seen(face, next_message(&mut ws).await) else { panic!("{face}") };
            assert_eq!(v["message"], "the token was refused: not a test token", "{face}: {v}");
            assert_eq!(expect_close(&mut ws).await.0, 4001, "{face}");
            finish_close(&mut ws).await;
        }
    }

    async fn a_rotating_verifier_refuses_the_old_token_after_a_refresh(rt) {
        let server = rt.start(app(&Rotating::default())).await;
        let addr = server.local_addr();
        for face in FACES {
            let old = token(&user(face), LIFETIME);
            let mut ws = open(addr, face, &old).await;
            assert!(matches!(seen(face, next_message(&mut ws).await), Seen::Asked(_)), "{face}");
            let new = token(&user(face), LIFETIME * 2);
            send_text(&mut ws, &refresh_call(&new, "r0")).await;
            let Seen::Renewed(_, v) = seen(face, next_message(&mut ws).await) else { panic!("{face}") };
            assert_eq!(v["ok"], true, "{face}: {v}");
            let refused = try_connect(addr, format!("ws://{addr}{face}?token={old}")).await;
            match refused {
                Err(async_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401, "{face}"),
                other => panic!("{face}: the old token still opens a socket: {:?}", other.map(|_| ())),
            }
            let mut again = open(addr, face, &new).await;
            send_text(&mut again, &request(face, 0)).await;
            assert!(matches!(seen(face, next_message(&mut again).await), Seen::Echo(0, _)), "{face}");
        }
    }

    async fn a_renewed_token_is_kept_out_of_errors_and_traces_like_the_first(rt) {
        let traced = common::trace::capture();
        let server = rt.start(app(&Rotating::default())).await;
        let addr = server.local_addr();
        let face = "/events";
        let (first, renewed) = (token("ann-secrets", LIFETIME), token("ann-secrets", LIFETIME * 2));
        let mut ws = open(addr, face, &first).await;
        assert!(matches!(seen(face, next_message(&mut ws).await), Seen::Asked(_)));
        // A refusal that quotes the token it refused.
        let quoted = format!("quote{}", "Q".repeat(20));
        send_text(&mut ws, &refresh_call(&quoted, "r0")).await;
        let Seen::Renewed(_, v) = seen(face, next_message(&mut ws).await) else { panic!() };
        assert_eq!(v["message"], "the token was refused: no session [redacted]", "{v}");
        send_text(&mut ws, &refresh_call(&renewed, "r1")).await;
        let Seen::Renewed(_, v) = seen(face, next_message(&mut ws).await) else { panic!() };
        assert_eq!(v["ok"], true, "{v}");
        // A handler's error quoting the connection's token: the new one.
        let reply = call(&mut ws, json!({"event": "leak", "data": renewed, "id": 1})).await;
        assert_eq!(reply["message"], "store says: [redacted]", "{reply}");
        drop(ws);
        for field in traced.all_text() {
            for secret in [&first, &renewed, &quoted] {
                assert!(!field.contains(secret.as_str()), "a token in a trace: {field}");
            }
        }
        assert!(
            traced.all_text().iter().any(|f| f.contains("token renewed")),
            "the renewal was traced"
        );
    }
}
