//! A line-oriented shell over WebSocket, written as one loop that owns its
//! connection ([`wsway::ws_fn`]). Each text message is a command line:
//!
//! ```text
//! help              the commands
//! echo TEXT         TEXT back
//! join TOPIC        receive what is said on TOPIC
//! leave TOPIC       stop receiving it
//! say TOPIC TEXT    publish TEXT on TOPIC
//! count N           count down from N, one a tick, while commands still work
//! stop              stop the count
//! exit              close the connection (1000)
//! ```
//!
//! `GET /term` answers how many shells are running: a shell counts until
//! its loop has returned, so a client that vanished stops counting once its
//! loop has noticed and cleaned up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_lite::future;
use wsway::{App, Interval, Message, Request, Socket, StatusCode, text, ws_fn};

/// How often a count ticks.
pub const TICK: Duration = Duration::from_millis(100);

/// The shells running now.
#[derive(Clone, Default)]
struct Running(Arc<AtomicUsize>);

/// Counts a shell for as long as its loop runs, whichever way it returns.
struct Counted(Running);

impl Counted {
    fn enter(running: &Running) -> Self {
        running.0.fetch_add(1, Ordering::SeqCst);
        Counted(running.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The shell app: terminals on `/term/:id`, and their count on `/term`.
pub fn app() -> App {
    let mut app = App::new();
    app.state(Running::default());
    app.ws("/term/:id", ws_fn(shell).before_upgrade(valid_id));
    app.get("/term", |req: Request| async move {
        req.state::<Running>().0.load(Ordering::SeqCst).to_string()
    });
    app
}

/// Terminal ids are short names: refused with 400 before the upgrade
/// otherwise.
fn valid_id(req: &Request) -> Result<(), wsway::Response> {
    let id = req.param("id").unwrap_or("");
    let ok = (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(text(
            StatusCode::BAD_REQUEST,
            "a terminal id is 1 to 32 letters, digits, - or _",
        ))
    }
}

/// What the loop wakes up for.
enum Input {
    Line(Message),
    Tick,
    /// The connection is closing: `recv` has nothing more.
    Closed,
}

/// A count in progress.
struct Count {
    left: u32,
    ticks: Interval,
}

async fn shell(req: Request, mut socket: Socket) {
    let _counted = Counted::enter(req.state::<Running>());
    let id = req.param("id").unwrap_or_default().to_owned();
    socket.send(format!("shell {id}: type help"));
    let mut count: Option<Count> = None;
    loop {
        let input = match &mut count {
            None => next_line(&mut socket).await,
            // Both are cancel-safe: whichever loses keeps its message or
            // its tick for the next round.
            Some(c) => {
                future::or(next_line(&mut socket), async {
                    c.ticks.tick().await;
                    Input::Tick
                })
                .await
            }
        };
        match input {
            Input::Closed => break,
            Input::Tick => {
                if let Some(c) = &mut count {
                    socket.send(format!("count {}", c.left));
                    c.left = c.left.saturating_sub(1);
                    if c.left == 0 {
                        socket.send("count done");
                        count = None;
                    }
                }
            }
            Input::Line(Message::Binary(_)) => {
                socket.send("error: commands are text");
            }
            Input::Line(Message::Text(line)) => match run(&socket, line.as_str()) {
                Command::Reply(reply) => {
                    socket.send(reply);
                }
                Command::Count(n) => {
                    socket.send(format!("counting down from {n}"));
                    count = Some(Count {
                        left: n,
                        ticks: socket.interval(TICK),
                    });
                }
                Command::Stop => {
                    socket.send(if count.take().is_some() {
                        "stopped"
                    } else {
                        "nothing to stop"
                    });
                }
                Command::Exit => {
                    socket.send("bye");
                    // Returning drops the socket: a normal close (1000).
                    return;
                }
            },
        }
    }
}

async fn next_line(socket: &mut Socket) -> Input {
    socket.recv().await.map_or(Input::Closed, Input::Line)
}

/// What a command line asks of the loop.
enum Command {
    Reply(String),
    Count(u32),
    Stop,
    Exit,
}

/// Runs one command line; those that change the loop's state are handed
/// back to it.
fn run(socket: &Socket, line: &str) -> Command {
    let (cmd, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
    let reply = match cmd {
        "help" => "commands: help, echo TEXT, join TOPIC, leave TOPIC, say TOPIC TEXT, \
                   count N, stop, exit"
            .to_owned(),
        "echo" => rest.to_owned(),
        "join" | "leave" | "say" if rest.is_empty() => format!("error: {cmd} needs a topic"),
        "join" => match socket.subscribe(rest) {
            true => format!("joined {rest}"),
            false => format!("already in {rest}"),
        },
        "leave" => match socket.unsubscribe(rest) {
            true => format!("left {rest}"),
            false => format!("not in {rest}"),
        },
        "say" => {
            let (topic, said) = rest.split_once(' ').unwrap_or((rest, ""));
            let sent = socket.topics().publish(topic, format!("{topic}: {said}"));
            format!("said to {} on {topic}", sent.delivered)
        }
        "count" => match rest.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => return Command::Count(n),
            _ => "error: count takes a number from 1 to 1000".to_owned(),
        },
        "stop" => return Command::Stop,
        "exit" => return Command::Exit,
        "" => String::new(),
        _ => format!("error: unknown command {cmd:?} (try help)"),
    };
    Command::Reply(reply)
}
