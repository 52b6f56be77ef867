//! `{base}/stream`: the page's WebSocket. A snapshot at once and every
//! [`REFRESH`]; the page's commands in between: which
//! topic's presence to show, and the server API's disconnect.
//!
//! The page sends `{"presence": "<topic>"}` (or `null` to stop), and
//! `{"disconnect": {"user" | "topic" | "member": "..", "code": 4000,
//! "reason": ".."}}`, answered with `{"reply": {"closed": n}}` or
//! `{"reply": {"error": ".."}}`.

use std::time::Duration;

use serde::Deserialize;

use super::snapshot::{self, Rates};
use crate::api::disconnect::Cut;
use crate::loop_fn::Socket;
use crate::message::Message;
use crate::topics::pubsub::Topics;
use crate::watch::Watcher;
use crate::web::request::Request;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
enum Command {
    #[serde(rename = "presence")]
    Presence(Option<String>),
    #[serde(rename = "disconnect")]
    Disconnect(Cut),
}

/// How often the page is sent a snapshot.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// Why the stream's loop woke.
enum Wake {
    Tick,
    Message(Option<Message>),
}

/// Runs one page's stream until it closes.
pub(crate) async fn stream(topics: Topics, _req: Request, mut socket: Socket) {
    // Counting, and reporting often, for as long as the page is open.
    let _watching = Watcher::start();
    topics.backplane().watching();
    let mut rates = Rates::default();
    let mut presence: Option<String> = None;
    let mut tick = socket.interval(REFRESH);
    loop {
        let view = snapshot::take(&topics, &mut rates, presence.as_deref()).await;
        if socket.send_json(&view).is_err() {
            return;
        }
        loop {
            let wake = futures_lite::future::or(
                async {
                    tick.tick().await;
                    Wake::Tick
                },
                async { Wake::Message(socket.recv().await) },
            )
            .await;
            let msg = match wake {
                Wake::Tick => break,
                Wake::Message(None) => return,
                Wake::Message(Some(msg)) => msg,
            };
            let command = match msg.as_text().map(serde_json::from_str::<Command>) {
                Some(Ok(command)) => command,
                _ => {
                    let error = "commands are JSON: {\"presence\": topic} or {\"disconnect\": ..}";
                    let _ = socket.send_json(&serde_json::json!({ "reply": { "error": error } }));
                    continue;
                }
            };
            match command {
                Command::Presence(topic) => {
                    // Shown at once, not a refresh later.
                    presence = topic.filter(|t| !t.is_empty());
                    break;
                }
                Command::Disconnect(cut) => {
                    let reply = match disconnect(&topics, cut) {
                        Ok(closed) => serde_json::json!({ "closed": closed }),
                        Err(error) => serde_json::json!({ "error": error }),
                    };
                    let _ = socket.send_json(&serde_json::json!({ "reply": reply }));
                }
            }
        }
    }
}

/// The server API's disconnect, from the page: sockets of this node that
/// began closing now (the others close on their nodes).
fn disconnect(topics: &Topics, cut: Cut) -> Result<usize, String> {
    cut.apply(topics)
        .map(|d| d.closed)
        .map_err(|refused| refused.message().to_owned())
}
