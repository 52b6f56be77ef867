//! A live auction: the app a new user wrote from the README (issue 14),
//! on wsway's event layer.
//!
//! - `/auction/:id?name=..` joins auction `id` (a `u32`; anything else is
//!   refused with 400 before the upgrade, as is a missing name).
//! - `bid {"amount": n}` places a bid. The ack is `{"high": n}`; a bid
//!   that is not above the current high fails with `too_low` and the
//!   current high as the error's data; after the end, `ended`.
//! - Everyone in the auction gets `bid {"bidder", "amount"}` pushes, and
//!   once per tick a `clock {"remaining_ms"}` from a timer that reads the
//!   connection's own data.
//! - At the end each bidder gets `ended {"winner", "amount"}`, and the
//!   winner is asked to `confirm` (a server request that waits for the
//!   client's ack): the room then hears `sold` or, on a refusal or no
//!   answer in time, `unsold`.
//!
//! Runtime-agnostic: the three `main`s in `src/bin` differ in one line,
//! the adapter's `run_with`, which runs the async [`set_up`] first. An app
//! with one `main` swaps that line, its adapter crate, and `wsway-redis`'s
//! feature (`tokio`, or `smol` for smol and async-std).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wsway::{App, EventError, Events, Request, Ws};

/// How long auctions run and how often clients hear the clock.
#[derive(Clone, Debug)]
pub struct Config {
    /// From an auction's first bidder to its end. Default: 60 s.
    pub length: Duration,
    /// How often each bidder gets `clock`. Default: 1 s.
    pub tick: Duration,
    /// How long the winner has to confirm. Default: 10 s.
    pub confirm_within: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            length: Duration::from_secs(60),
            tick: Duration::from_secs(1),
            confirm_within: Duration::from_secs(10),
        }
    }
}

/// One auction's state.
#[derive(Debug)]
struct Lot {
    high: u64,
    leader: Option<String>,
    ends: Instant,
}

/// Every auction, shared by all connections as app state.
#[derive(Clone, Default)]
struct Auctions {
    lots: Arc<Mutex<HashMap<u32, Lot>>>,
}

impl Auctions {
    fn with<R>(&self, id: u32, f: impl FnOnce(&mut Lot) -> R) -> Option<R> {
        self.lots.lock().ok()?.get_mut(&id).map(f)
    }
}

/// One bidder's connection.
#[derive(Default)]
pub struct Bidder {
    auction: u32,
    name: String,
    /// `ended` was pushed to this connection.
    told_end: bool,
}

#[derive(Deserialize)]
struct Join {
    name: String,
}

/// The `bid` call.
#[derive(Deserialize)]
pub struct Bid {
    /// The amount offered.
    pub amount: u64,
}

/// The `bid` push and the `ended` push.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Who bid (or won; empty when nobody did).
    pub bidder: String,
    /// How much.
    pub amount: u64,
}

/// The `clock` push.
#[derive(Serialize, Deserialize, Debug)]
pub struct Clock {
    /// Milliseconds until the end.
    pub remaining_ms: u64,
}

/// The served app, set up as a `main` does before serving (each `main`
/// hands this to its adapter's `run_with`): the auction with `/metrics`
/// and, given `--tls-cert` and `--tls-key`, wss://, as every example; and
/// with `$REDIS_URL` set, its rooms shared with other processes through
/// Redis (connected here, so an unreachable Redis ends `main` with the
/// reason before anything is served). Each lot's high bid stays in the
/// process that took it: Redis carries the pushes, not the app's state.
pub async fn set_up() -> Result<wsway::Server, Box<dyn std::error::Error + Send + Sync>> {
    let mut app = app(Config::default());
    if let Some(url) = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) {
        app.backplane(wsway_redis::Redis::connect(&url).await?);
    }
    Ok(examples::operated(app)?)
}

/// Where the `main`s listen: `127.0.0.1:$PORT`, 3000 without it (0 picks
/// a free port; `run_with` prints the one it got).
pub fn addr() -> String {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    format!("127.0.0.1:{port}")
}

fn room(id: u32) -> String {
    format!("auction:{id}")
}

/// The app: the auction route and its state.
pub fn app(config: Config) -> App {
    let mut events = Events::<Bidder>::new();
    events.before_upgrade(|req: &Request| {
        let Join { name } = req.query()?;
        Ok(Bidder {
            auction: req.params()?,
            name,
            told_end: false,
        })
    });
    let length = config.length;
    let (tick, confirm_within) = (config.tick, config.confirm_within);
    events.on_open(move |ws| {
        let id = ws.data.auction;
        ws.state::<Auctions>()
            .lots
            .lock()
            .expect("no panics hold the auctions' lock")
            .entry(id)
            .or_insert_with(|| Lot {
                high: 0,
                leader: None,
                ends: Instant::now() + length,
            });
        ws.subscribe(&room(id));
        ws.every(tick, move |ws| on_tick(ws, confirm_within));
    });
    events.on("bid", bid);
    let mut app = App::new();
    app.state(Auctions::default());
    app.ws("/auction/:id", events);
    app
}

fn bid(ws: &mut Ws<Bidder>, Bid { amount }: Bid) -> Result<serde_json::Value, EventError> {
    let (id, name) = (ws.data.auction, ws.data.name.clone());
    let placed = ws.state::<Auctions>().with(id, |lot| {
        if Instant::now() >= lot.ends {
            return Err(EventError::new("ended", "this auction has ended"));
        }
        if amount <= lot.high {
            let err = EventError::new("too_low", format!("the high bid is {}", lot.high));
            return Err(err.with_data(&serde_json::json!({ "high": lot.high })));
        }
        lot.high = amount;
        lot.leader = Some(name.clone());
        Ok(())
    });
    placed.ok_or_else(|| EventError::new("not_found", "no such auction"))??;
    ws.topics().publish_event(
        &room(id),
        "bid",
        &Placed {
            bidder: name,
            amount,
        },
    )?;
    Ok(serde_json::json!({ "high": amount }))
}

/// Each bidder's clock: the time left, then (once) the end, and the
/// winner's confirmation.
fn on_tick(ws: &mut Ws<Bidder>, confirm_within: Duration) {
    let id = ws.data.auction;
    let Some((ends, high, leader)) = ws
        .state::<Auctions>()
        .with(id, |lot| (lot.ends, lot.high, lot.leader.clone()))
    else {
        return;
    };
    let remaining = ends.saturating_duration_since(Instant::now());
    let _ = ws.emit(
        "clock",
        &Clock {
            remaining_ms: remaining.as_millis() as u64,
        },
    );
    if !remaining.is_zero() || ws.data.told_end {
        return;
    }
    ws.data.told_end = true;
    let winner = leader.unwrap_or_default();
    let _ = ws.emit(
        "ended",
        &Placed {
            bidder: winner.clone(),
            amount: high,
        },
    );
    if winner != ws.data.name {
        return;
    }
    let _ = ws.emit_with_ack(
        "confirm",
        &high,
        confirm_within,
        move |ws, yes: Result<bool, EventError>| {
            let outcome = if matches!(yes, Ok(true)) {
                "sold"
            } else {
                "unsold"
            };
            let _ = ws.topics().publish_event(&room(id), outcome, &high);
        },
    );
}
