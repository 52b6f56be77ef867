//! The wire format: JSON text frames.
//!
//! - client → server: `{"event": "name", "data": any, "id": integer|string}`,
//!   a JSON object (anything else is `malformed`);
//!   `data` and `id` are optional, and only calls with an `id` get a reply.
//! - reply (ack): `{"id": 7, "ok": true, "data": any}`
//! - reply (error): `{"id": 7, "ok": false, "error": "code", "message": "..."}`,
//!   with `"data": any` when the error carries a payload;
//!   `id` is `null` when the call had none or could not be read.
//! - server → client: `{"event": "name", "data": any}`, with `"id": integer`
//!   when the server waits for the client's reply
//!   ([`Ws::emit_with_ack`]); the client answers with a reply of the same
//!   shape as the server's, `{"id", "ok": true, "data"}` or
//!   `{"id", "ok": false, "error", "message", "data"}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::error::EventError;
use crate::connection::handle::Handle;
use crate::connection::socket::Ws;
use crate::delivery::outbox::SendStatus;
use crate::message::Message;
use crate::topics::pubsub::{Published, Topics};

/// One call from the client. `data` stays raw JSON, borrowed from the
/// message, until the handler's type reads it: no intermediate tree.
pub(crate) struct Incoming<'a> {
    pub(crate) event: String,
    pub(crate) data: Option<&'a RawValue>,
    pub(crate) id: Option<Value>,
    /// The page element the reply renders into (`emit(.., { target })`).
    pub(crate) target: Option<String>,
}

/// The client's reply to a server request: the data, or its error.
pub(crate) struct ClientReply<'a> {
    pub(crate) id: u64,
    pub(crate) outcome: Result<Option<&'a RawValue>, EventError>,
}

/// What a text frame from the client is.
pub(crate) enum Frame<'a> {
    Call(Incoming<'a>),
    Reply(ClientReply<'a>),
}

/// The envelope as it arrives; `event` and `id` are checked after.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    target: Option<Value>,
    // Present on replies only, and read only for them: kept raw so that a
    // call carrying keys of these names, of any type, is still a call.
    #[serde(borrow, default)]
    ok: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
}

/// A raw field read as `T`, when it is one.
fn read<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    serde_json::from_str(raw?.get()).ok()
}

/// Reads a call or a reply. When it cannot, the error comes with the
/// call's `id`, if that much could be read.
pub(crate) fn parse(text: &str) -> Result<Frame<'_>, (Option<Value>, EventError)> {
    // serde's derived `Deserialize` reads a struct from a JSON array too
    // (`["bid", 13, {..}]` would be a call): only an object is one.
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        let why = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => "a call must be a JSON object".to_owned(),
            Err(e) => format!("the message is not JSON: {e}"),
        };
        return Err((None, malformed(why)));
    }
    let mut wire = match serde_json::from_str::<Wire<'_>>(text) {
        Ok(wire) => wire,
        Err(e) if e.classify() == Category::Data => {
            let why = "a call must be a JSON object, with each key at most once";
            return Err((None, malformed(why)));
        }
        Err(e) => return Err((None, malformed(format!("the message is not JSON: {e}")))),
    };
    let id = match wire.id.take() {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n)),
        Some(id @ Value::String(_)) => Some(id),
        Some(_) => return Err((None, malformed("`id` must be an integer or a string"))),
    };
    if wire.event.is_none() {
        if let Some(ok) = read(wire.ok) {
            return reply(id, ok, wire).map(Frame::Reply);
        }
    }
    let event = match wire.event {
        Some(Value::String(event)) => event,
        _ => return Err((id, malformed("`event` must be a string naming the event"))),
    };
    let target = match wire.target {
        None | Some(Value::Null) => None,
        Some(Value::String(target)) => Some(target),
        Some(_) => return Err((id, malformed("`target` must be a string (a CSS selector)"))),
    };
    Ok(Frame::Call(Incoming {
        event,
        data: wire.data,
        id,
        target,
    }))
}

/// Reads a reply to a server request, whose ids are positive integers.
fn reply<'a>(
    id: Option<Value>,
    ok: bool,
    wire: Wire<'a>,
) -> Result<ClientReply<'a>, (Option<Value>, EventError)> {
    let Some(n) = id.as_ref().and_then(Value::as_u64) else {
        return Err((id, malformed("a reply's `id` must be a request's id")));
    };
    let outcome = if ok {
        Ok(wire.data)
    } else {
        let code: String = read(wire.error).unwrap_or_else(|| "error".to_owned());
        let mut err = EventError::new(code, read::<String>(wire.message).unwrap_or_default());
        if let Some(data) = wire.data {
            err = err.with_data(&data);
        }
        Err(err)
    };
    Ok(ClientReply { id: n, outcome })
}

fn malformed(message: impl Into<String>) -> EventError {
    EventError::new("malformed", message)
}

/// `{"id": .., "ok": true, "data": ..}`, with `data` already JSON.
pub(crate) fn ack(id: &Value, data: &str) -> String {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "null".into());
    format!(r#"{{"id":{id},"ok":true,"data":{data}}}"#)
}

/// `{"id": .., "ok": false, "error": .., "message": ..}`.
pub(crate) fn nack(id: Option<&Value>, err: &EventError) -> String {
    #[derive(Serialize)]
    struct Nack<'a> {
        id: Option<&'a Value>,
        ok: bool,
        error: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a RawValue>,
    }
    let nack = Nack {
        id,
        ok: false,
        error: err.code(),
        message: err.message(),
        data: err.raw_data(),
    };
    // Strings and a JSON value always serialize.
    serde_json::to_string(&nack).unwrap_or_default()
}

impl Message {
    /// A server-to-client event, `{"event": .., "data": ..}`, as a text
    /// message: build it once, send or publish it to many.
    pub fn event(event: &str, data: &impl Serialize) -> Result<Message, EventError> {
        push(event, data, None)
    }
}

/// `{"event": .., "data": ..}`, with the request's `id` when it has one.
pub(crate) fn push(
    event: &str,
    data: &impl Serialize,
    id: Option<u64>,
) -> Result<Message, EventError> {
    #[derive(Serialize)]
    struct Push<'a, T> {
        event: &'a str,
        data: &'a T,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    }
    Ok(Message::text(serde_json::to_string(&Push {
        event,
        data,
        id,
    })?))
}

impl<D> Ws<D> {
    /// Sends the event `{"event": .., "data": ..}` to this connection. Fails
    /// only when `data` cannot be serialized.
    pub fn emit(&self, event: &str, data: &impl Serialize) -> Result<SendStatus, EventError> {
        Ok(self.send(Message::event(event, data)?))
    }

    /// Publishes the event to `topic`'s subscribers, as [`Ws::publish`]
    /// does (so not to this connection unless the route publishes to self).
    pub fn publish_event(
        &self,
        topic: &str,
        event: &str,
        data: &impl Serialize,
    ) -> Result<Published, EventError> {
        Ok(self.publish(topic, Message::event(event, data)?))
    }
}

impl Handle {
    /// Sends the event `{"event": .., "data": ..}` to the connection.
    pub fn emit(&self, event: &str, data: &impl Serialize) -> Result<SendStatus, EventError> {
        Ok(self.send(Message::event(event, data)?))
    }
}

impl Topics {
    /// Publishes the event `{"event": .., "data": ..}` to every subscriber
    /// of `topic`.
    pub fn publish_event(
        &self,
        topic: &str,
        event: &str,
        data: &impl Serialize,
    ) -> Result<Published, EventError> {
        Ok(self.publish(topic, Message::event(event, data)?))
    }

    /// Sends the event `{"event": .., "data": ..}` to every connection of
    /// user `id`, on every node. Fails when `data` cannot be serialized,
    /// and when the app has no [`UserRooms`](crate::UserRooms) (nobody could get it).
    pub fn emit_to_user(
        &self,
        id: &str,
        event: &str,
        data: &impl Serialize,
    ) -> Result<Published, EventError> {
        let topic = self.configured_user_topic(id, "emit_to_user")?;
        self.publish_event(&topic, event, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (Option<Value>, String) {
        let (id, e) = parse(text).err().expect("an error");
        (id, e.code().to_owned())
    }

    fn call(text: &str) -> Incoming<'_> {
        match parse(text) {
            Ok(Frame::Call(call)) => call,
            _ => panic!("not a call: {text}"),
        }
    }

    #[test]
    fn parses_replies_to_server_requests() {
        let Ok(Frame::Reply(r)) = parse(r#"{"id":3,"ok":true,"data":[1]}"#) else {
            panic!("a reply")
        };
        assert_eq!(r.id, 3);
        assert_eq!(r.outcome.ok().flatten().map(RawValue::get), Some("[1]"));
        let text = r#"{"id":4,"ok":false,"error":"busy","message":"later","data":{"s":2}}"#;
        let Ok(Frame::Reply(r)) = parse(text) else {
            panic!("a reply")
        };
        let e = r.outcome.err().unwrap();
        assert_eq!(
            (e.code(), e.message(), e.data()),
            ("busy", "later", Some(r#"{"s":2}"#))
        );
        assert_eq!(
            err(r#"{"id":"x","ok":true}"#),
            (Some("x".into()), "malformed".into())
        );
        assert_eq!(err(r#"{"ok":true}"#), (None, "malformed".into()));
        // With an event it is a call, whatever else it carries.
        assert_eq!(call(r#"{"event":"e","ok":true,"id":1}"#).event, "e");
        let odd = r#"{"event":"e","ok":"yes","error":[1],"message":5}"#;
        assert_eq!(call(odd).event, "e");
    }

    #[test]
    fn parses_calls_and_reports_what_is_wrong() {
        let call = call(r#"{"event":"a:b","data":{"x":1},"id":7}"#);
        assert_eq!((call.event.as_str(), call.id), ("a:b", Some(7.into())));
        let call = self::call(r#"{"event":"ping"}"#);
        assert_eq!((call.data.map(RawValue::get), call.id), (None, None));
        let call = self::call(r#"{"data": {"x": [1, 2]}, "event":"e"}"#);
        assert_eq!(call.data.map(RawValue::get), Some(r#"{"x": [1, 2]}"#));
        assert_eq!(err("not json"), (None, "malformed".into()));
        assert_eq!(err("[1]"), (None, "malformed".into()));
        // An array is not a call, even one shaped like the envelope's fields.
        assert_eq!(
            err(r#"["bid", 13, {"amount": 100}]"#),
            (None, "malformed".into())
        );
        assert_eq!(err("[1,2]"), (None, "malformed".into()));
        assert_eq!(err(r#" ["x"]"#), (None, "malformed".into()));
        // Ids are integers or strings.
        assert_eq!(err(r#"{"event":"x","id":1.5}"#), (None, "malformed".into()));
        assert_eq!(err(r#"{"event":"x","id":1e3}"#), (None, "malformed".into()));
        assert_eq!(
            err(r#"{"event":"x","id":true}"#),
            (None, "malformed".into())
        );
        let call = self::call(r#" {"event":"x","id":-3}"#);
        assert_eq!(call.id, Some((-3).into()));
        let call = self::call(r#"{"event":"x","id":18446744073709551615}"#);
        assert_eq!(call.id, Some(u64::MAX.into()));
        assert_eq!(err(r#"{"id":{},"event":"x"}"#), (None, "malformed".into()));
        assert_eq!(
            err(r#"{"event":"x","event":"y"}"#),
            (None, "malformed".into())
        );
        assert_eq!(
            err(r#"{"id":"k","event":3}"#),
            (Some("k".into()), "malformed".into())
        );
    }

    #[test]
    fn replies_are_json() {
        let a: Value = serde_json::from_str(&ack(&7.into(), r#"{"n":1}"#)).unwrap();
        assert_eq!(
            a,
            serde_json::json!({"id": 7, "ok": true, "data": {"n": 1}})
        );
        let e = EventError::new("nope", "said \"no\"");
        let n: Value = serde_json::from_str(&nack(None, &e)).unwrap();
        assert_eq!(
            n,
            serde_json::json!({"id": null, "ok": false, "error": "nope", "message": "said \"no\""})
        );
        let m = Message::event("t", &[1, 2]).unwrap();
        assert_eq!(m.as_text(), Some(r#"{"event":"t","data":[1,2]}"#));
    }
}
