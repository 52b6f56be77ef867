//! Renewing a connection's token in place, for routes behind a refreshing
//! [`Bearer`](crate::Bearer): one task per such connection asks the
//! client for a new token before the old one expires, has it checked, and
//! hands the new identity to the connection's own task; without a valid
//! answer by the expiry, the connection closes with 4001.
//!
//! The exchange is the event layer's envelope, on every kind of route:
//!
//! - server to client, `{"event":"wsway:refresh","data":{"expires_in_ms":N}}`;
//! - client to server, the JSON object
//!   `{"event":"wsway:refresh","data":{"token":T},"id":I}` as a text
//!   message, answered (when it has an `id`) with `{"id":I,"ok":true,"data":{"expires_in_ms":N}}`
//!   or `{"id":I,"ok":false,"error":"refresh_refused","message":..}`.
//!
//! Such a message never reaches the handler. A client may also send one
//! before it is asked.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use event_listener::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connection::socket::Ws;
use crate::delivery::deferred::Job;
use crate::delivery::outbox::Shared;
use crate::message::{CloseCode, Message};
use crate::policy::expiry::{Renewal, Renewed};
use crate::runtime::Rt;

/// The event both ways of the exchange carry.
pub const REFRESH_EVENT: &str = "wsway:refresh";

/// The close code when the token expired unrenewed.
pub(crate) const EXPIRED: u16 = 4001;

/// The client's answers, from the driver to the renewal task. In the
/// connection's values.
#[derive(Clone, Default)]
pub(crate) struct Answers(Arc<Inbox>);

#[derive(Default)]
struct Inbox {
    queue: Mutex<VecDeque<Answer>>,
    event: Event,
}

struct Answer {
    token: Option<String>,
    id: Option<Value>,
}

impl Answers {
    fn push(&self, answer: Answer) {
        self.0
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(answer);
        self.0.event.notify(usize::MAX);
    }

    fn pop(&self) -> Option<Answer> {
        self.0
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

/// Called by the driver on every message: true when it was an answer for
/// the renewal task, taken from the handler. On a connection without
/// one, this costs a look at its (usually empty) values; on one with it,
/// a search of each text message for the event's name.
pub(crate) fn take<D>(ws: &Ws<D>, msg: &Message) -> bool {
    let Message::Text(text) = msg else {
        return false;
    };
    let Some(answers) = ws.value::<Answers>() else {
        return false;
    };
    if !text.as_str().contains(REFRESH_EVENT) {
        return false;
    }
    #[derive(Deserialize)]
    struct Call {
        event: String,
        #[serde(default)]
        data: Option<Data>,
        #[serde(default)]
        id: Option<Value>,
    }
    #[derive(Deserialize)]
    struct Data {
        token: Option<String>,
    }
    match serde_json::from_str::<Call>(text.as_str()) {
        Ok(call) if call.event == REFRESH_EVENT => {
            answers.push(Answer {
                token: call.data.and_then(|d| d.token).filter(|t| !t.is_empty()),
                id: call.id,
            });
            true
        }
        // Some other message that mentions it: the handler's.
        _ => false,
    }
}

/// Starts the renewal task of a connection a refreshing `Bearer` admitted
/// (nothing for any other): at `open`, before the client can answer.
pub(crate) fn start<D: Send + 'static>(ws: &mut Ws<D>) {
    let Some(renewal) = ws.value::<Renewal>().cloned() else {
        return;
    };
    let answers = Answers::default();
    ws.values_mut().insert(answers.clone());
    let rt = ws.runtime().clone();
    let shared = ws.shared().clone();
    rt.clone().spawn(Box::pin(renew_until_closed::<D>(
        renewal, answers, shared, rt,
    )));
}

/// What the renewal task waits for.
enum Woken {
    Answer(Answer),
    /// The time it waited for came.
    Due,
    Closed,
}

/// The renewal task: for each token, ask before it expires, check
/// answers, and close with 4001 at the expiry if none was valid.
async fn renew_until_closed<D: Send + 'static>(
    renewal: Renewal,
    answers: Answers,
    shared: Arc<Shared>,
    rt: Rt,
) {
    let mut since = SystemTime::now();
    let mut expires_at = renewal.expires_at;
    let mut asked = false;
    loop {
        let ask_at = renewal.margin.ask_at(since, expires_at);
        let due = if asked { expires_at } else { ask_at };
        match next(&answers, &shared, &rt, due).await {
            Woken::Closed => return,
            Woken::Due if !asked => {
                asked = true;
                let left = until(expires_at);
                shared.push(ask(left).into_codec(), true);
            }
            Woken::Due => {
                crate::observe::token_expired();
                let _ = shared.request_close(CloseCode::from(EXPIRED), "token expired", true);
                return;
            }
            Woken::Answer(Answer { token, id }) => {
                let verdict = match token {
                    Some(token) => renewal.renew.renew(token).await,
                    None => Err("the answer carries no token".to_owned()),
                };
                match verdict {
                    Ok(Renewed {
                        expires_at: next_expiry,
                        apply,
                    }) => {
                        (since, expires_at, asked) = (SystemTime::now(), next_expiry, false);
                        let ack = id.map(|id| reply_renewed(&id, until(expires_at)));
                        // On the connection's task: the identity is replaced
                        // before the client reads the ack, so whatever it
                        // sends after the ack runs with the new one.
                        let job: Job<Ws<D>> = Box::new(move |ws: &mut Ws<D>| {
                            apply(ws.values_mut());
                            crate::observe::token_renewed();
                            if let Some(ack) = ack {
                                let _ = ws.send(Message::text(ack));
                            }
                        });
                        if !shared.defer(job) {
                            return;
                        }
                    }
                    Err(why) => {
                        crate::observe::refresh_refused();
                        if id.is_some() {
                            shared.push(
                                Message::text(reply_refused(id.as_ref(), &why)).into_codec(),
                                true,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The next answer, or `due`, or the connection's end.
async fn next(answers: &Answers, shared: &Shared, rt: &Rt, due: SystemTime) -> Woken {
    let mut sleep = rt.sleep(until(due));
    loop {
        let mut closed = pin!(shared.closed.listen());
        let mut arrived = pin!(answers.0.event.listen());
        if shared.is_closed() {
            return Woken::Closed;
        }
        if let Some(answer) = answers.pop() {
            return Woken::Answer(answer);
        }
        let woken = poll_fn(|cx| {
            if closed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Woken::Closed));
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Woken::Due));
            }
            arrived.as_mut().poll(cx).map(|()| None)
        })
        .await;
        match woken {
            Some(Woken::Due) => {
                // An answer that came with the deadline still counts.
                return answers.pop().map_or(Woken::Due, Woken::Answer);
            }
            Some(w) => return w,
            None => {}
        }
    }
}

/// Time left until `t`, zero once past.
fn until(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::now()).unwrap_or_default()
}

#[derive(Serialize)]
struct Left {
    expires_in_ms: u64,
}

fn left(d: Duration) -> Left {
    Left {
        expires_in_ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The server's request for a new token.
fn ask(expires_in: Duration) -> Message {
    #[derive(Serialize)]
    struct Ask {
        event: &'static str,
        data: Left,
    }
    Message::text(
        serde_json::to_string(&Ask {
            event: REFRESH_EVENT,
            data: left(expires_in),
        })
        .unwrap_or_default(),
    )
}

fn reply_renewed(id: &Value, expires_in: Duration) -> String {
    #[derive(Serialize)]
    struct Ack<'a> {
        id: &'a Value,
        ok: bool,
        data: Left,
    }
    serde_json::to_string(&Ack {
        id,
        ok: true,
        data: left(expires_in),
    })
    .unwrap_or_default()
}

fn reply_refused(id: Option<&Value>, message: &str) -> String {
    #[derive(Serialize)]
    struct Nack<'a> {
        id: Option<&'a Value>,
        ok: bool,
        error: &'static str,
        message: &'a str,
    }
    serde_json::to_string(&Nack {
        id,
        ok: false,
        error: "refresh_refused",
        message,
    })
    .unwrap_or_default()
}
