//! The test client: a WebSocket client over an in-memory stream, with a
//! blocking API and a timeout on every wait.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::pipe::End;
use super::runtime::block_on_until;
use crate::events::EventError;
use crate::message::{CloseCode, Message, Text};
use crate::protocol::frame::{Header, MAX_HEADER};
use crate::protocol::{Decoder, DecoderConfig, Incoming, Opcode, Outgoing, mask};

/// Why a [`TestClient`] call did not give what was asked for.
#[derive(Debug)]
pub enum ClientError {
    /// The server answered the upgrade with something other than `101`.
    Refused {
        /// Its status (`403`, `503` ...).
        status: StatusCode,
        /// Its headers.
        headers: HeaderMap,
        /// Its body, as text.
        body: String,
    },
    /// Nothing came within the client's timeout.
    Timeout {
        /// What was being waited for.
        waiting_for: &'static str,
        /// How long.
        after: Duration,
    },
    /// The server closed the connection with this code and reason (or the
    /// stream ended without a close frame: `1006`).
    Closed {
        /// The close code.
        code: CloseCode,
        /// The reason.
        reason: String,
    },
    /// An event call was answered with an error (`{"ok": false}`).
    Rejected(EventError),
    /// Something other than what was asked for arrived.
    Unexpected(String),
    /// The server broke the protocol, or a reply was not the JSON expected.
    Protocol(String),
}

impl ClientError {
    /// The HTTP status of a refused upgrade.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The close code, when the server closed the connection.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            ClientError::Closed { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The event error, when a call was rejected.
    pub fn rejection(&self) -> Option<&EventError> {
        match self {
            ClientError::Rejected(e) => Some(e),
            _ => None,
        }
    }

    /// The body of a refused upgrade.
    pub fn body(&self) -> Option<&str> {
        match self {
            ClientError::Refused { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The headers of a refused upgrade (`Retry-After`, `WWW-Authenticate` ...).
    pub fn headers(&self) -> Option<&HeaderMap> {
        match self {
            ClientError::Refused { headers, .. } => Some(headers),
            _ => None,
        }
    }

    /// True when nothing came in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout { .. })
    }
}

/// An event push as it arrived: its data, and where it stands in its
/// topic's history when the topic keeps history (see
/// [`App::history`](crate::App::history)).
#[derive(Clone, Debug, PartialEq)]
pub struct Push<T> {
    /// The push's data.
    pub data: T,
    /// The topic it was published on, when that topic keeps history.
    pub topic: Option<String>,
    /// Its position there (`"epoch:offset"`).
    pub pos: Option<String>,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Refused { status, body, .. } => {
                write!(f, "the upgrade was refused with {status}: {body}")
            }
            ClientError::Timeout { waiting_for, after } => {
                write!(f, "no {waiting_for} within {after:?}")
            }
            ClientError::Closed { code, reason } => {
                write!(f, "the server closed the connection ({}", code.0)?;
                if !reason.is_empty() {
                    write!(f, ", \"{reason}\"")?;
                }
                f.write_str(")")
            }
            ClientError::Rejected(e) => write!(f, "the call was rejected: {e}"),
            ClientError::Unexpected(what) => write!(f, "unexpected: {what}"),
            ClientError::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// The sample nonce of RFC 6455 §1.3; the server only checks its form.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A response's head, and the bytes read past it (after a `101`, the
/// first frames).
pub(crate) struct Head {
    status: StatusCode,
    headers: HeaderMap,
    rest: BytesMut,
}

/// Writes `request` (a whole request head) and reads the response's head.
fn exchange(
    io: &mut End,
    request: &[u8],
    deadline: Instant,
    timeout: Duration,
) -> Result<Head, ClientError> {
    let timed_out = || ClientError::Timeout {
        waiting_for: "response",
        after: timeout,
    };
    block_on_until(io.write_all(request), deadline)
        .ok_or_else(timed_out)?
        .map_err(|e| io_error(e, "sending the request"))?;
    let mut buf = BytesMut::new();
    loop {
        let mut parsed = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut parsed);
        match res.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = StatusCode::from_u16(res.code.unwrap_or(0))
                    .map_err(|_| ClientError::Protocol("a bad status line".into()))?;
                let mut headers = HeaderMap::new();
                for h in res.headers.iter() {
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(h.name.as_bytes()),
                        HeaderValue::from_bytes(h.value),
                    ) {
                        headers.append(name, value);
                    }
                }
                let rest = buf.split_off(n);
                return Ok(Head {
                    status,
                    headers,
                    rest,
                });
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(ClientError::Protocol(format!("a bad response head: {e}"))),
        }
        if read_more(io, &mut buf, deadline).ok_or_else(timed_out)? == 0 {
            return Err(ClientError::Closed {
                code: CloseCode::ABNORMAL,
                reason: "the server hung up before answering".into(),
            });
        }
    }
}

/// Reads a response's body: as far as `Content-Length` says, or until the
/// server closes.
fn body(io: &mut End, head: Head, deadline: Instant) -> TestResponse {
    let Head {
        status,
        headers,
        mut rest,
    } = head;
    let len = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    loop {
        if let Some(n) = len.filter(|n| rest.len() >= *n) {
            rest.truncate(n);
            break;
        }
        match read_more(io, &mut rest, deadline) {
            Some(0) | None => break,
            Some(_) => {}
        }
    }
    TestResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&rest).into_owned(),
    }
}

/// A plain HTTP response, from [`TestServer::get`](super::TestServer::get).
#[derive(Debug)]
pub struct TestResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, as text.
    pub body: String,
}

fn head_lines(first: &str, headers: &[(HeaderName, HeaderValue)]) -> Vec<u8> {
    let mut req = first.as_bytes().to_vec();
    for (name, value) in headers {
        req.extend_from_slice(name.as_str().as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req
}

/// Sends a `GET` (not an upgrade) and reads the whole response.
pub(crate) fn get(
    io: &mut End,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
    timeout: Duration,
) -> Result<TestResponse, ClientError> {
    let deadline = Instant::now() + timeout;
    let first = format!("GET {path} HTTP/1.1\r\nHost: wsway.test\r\nConnection: close\r\n");
    let head = exchange(io, &head_lines(&first, headers), deadline, timeout)?;
    Ok(body(io, head, deadline))
}

/// Sends the upgrade request and reads the answer.
pub(crate) fn upgrade(
    io: &mut End,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
    timeout: Duration,
) -> Result<Head, ClientError> {
    let deadline = Instant::now() + timeout;
    let first = format!(
        "GET {path} HTTP/1.1\r\nHost: wsway.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"
    );
    let head = exchange(io, &head_lines(&first, headers), deadline, timeout)?;
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        let accept = head
            .headers
            .get(http::header::SEC_WEBSOCKET_ACCEPT)
            .map(HeaderValue::as_bytes);
        if accept != Some(crate::protocol::handshake::accept_key(KEY.as_bytes()).as_bytes()) {
            return Err(ClientError::Protocol(
                "a 101 without the right Sec-WebSocket-Accept".into(),
            ));
        }
        return Ok(head);
    }
    let refused = body(io, head, deadline);
    Err(ClientError::Refused {
        status: refused.status,
        headers: refused.headers,
        body: refused.body,
    })
}

/// Reads what the stream has into `buf`; `None` at the deadline, `Some(0)`
/// at end of stream (or a broken stream).
fn read_more(io: &mut End, buf: &mut BytesMut, deadline: Instant) -> Option<usize> {
    let mut chunk = [0u8; 16 << 10];
    let n = block_on_until(io.read(&mut chunk), deadline)?.unwrap_or(0);
    buf.extend_from_slice(&chunk[..n]);
    Some(n)
}

fn io_error(e: io::Error, doing: &str) -> ClientError {
    ClientError::Closed {
        code: CloseCode::ABNORMAL,
        reason: format!("the stream broke while {doing}: {e}"),
    }
}

/// A WebSocket client connected to a [`TestServer`](super::TestServer)
/// over an in-memory stream: no port, no runtime. Every call blocks the
/// calling thread, at most for the client's
/// [timeout](TestClient::set_timeout) (5 s unless set).
///
/// Pings are answered as they arrive, and a close from the server is
/// answered and reported as [`ClientError::Closed`].
pub struct TestClient {
    io: End,
    read: BytesMut,
    decoder: Decoder,
    timeout: Duration,
    headers: HeaderMap,
    /// The server's close, once it came.
    closed: Option<(CloseCode, String)>,
    sent_close: bool,
    next_id: u64,
    /// Event envelopes read while waiting for something else.
    pushes: VecDeque<Value>,
    /// The last position seen on each topic that keeps history, as
    /// `wsway.js` keeps them.
    positions: BTreeMap<String, String>,
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient")
            .field("protocol", &self.protocol())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl TestClient {
    pub(crate) fn new(io: End, upgrade: Head, timeout: Duration) -> Self {
        TestClient {
            io,
            read: upgrade.rest,
            decoder: Decoder::new(DecoderConfig {
                max_frame: usize::MAX,
                max_message: usize::MAX,
                max_fragments: usize::MAX,
                compression: false,
                require_mask: false,
            }),
            timeout,
            headers: upgrade.headers,
            closed: None,
            sent_close: false,
            next_id: 0,
            pushes: VecDeque::new(),
            positions: BTreeMap::new(),
        }
    }

    /// The last position this client saw on each topic that keeps history
    /// (from pushes there, and from the `wsway:pos` a sender gets for its
    /// own publish): what to resume from, with
    /// [`TestRequest::resume`](super::TestRequest::resume).
    pub fn positions(&self) -> &BTreeMap<String, String> {
        &self.positions
    }

    /// Waits `quiet` and fails if any message arrives meanwhile: for
    /// checking that something is *not* sent (a replay that must not
    /// happen, a push to someone left out). Pings are answered.
    pub fn expect_silence(&mut self, quiet: Duration) -> Result<(), ClientError> {
        if let Some(kept) = self.pushes.front() {
            return Err(ClientError::Unexpected(format!("{kept} arrived")));
        }
        match self.next_message(Instant::now() + quiet, "silence") {
            Ok(msg) => Err(ClientError::Unexpected(format!("{msg:?} arrived"))),
            Err(ClientError::Timeout { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// How long each call waits before [`ClientError::Timeout`].
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The headers of the server's `101`.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.headers
            .get(http::header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
    }

    /// Sends a message (a `&str` or `String` is text, a `Vec<u8>` binary).
    pub fn send(&mut self, msg: impl Into<Message>) -> Result<(), ClientError> {
        let (opcode, payload): (Opcode, Bytes) = match msg.into() {
            Message::Text(t) => (Opcode::Text, t.into_bytes()),
            Message::Binary(b) => (Opcode::Binary, b),
        };
        self.write_frame(opcode, &payload)
    }

    /// Sends a ping; its pong is read (and dropped) by later calls.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.write_frame(Opcode::Ping, payload)
    }

    /// The next message from the server.
    pub fn recv(&mut self) -> Result<Message, ClientError> {
        let deadline = Instant::now() + self.timeout;
        self.next_message(deadline, "message")
    }

    /// The next message, which must be text.
    pub fn recv_text(&mut self) -> Result<String, ClientError> {
        match self.recv()? {
            Message::Text(t) => Ok(t.as_str().to_owned()),
            Message::Binary(b) => Err(ClientError::Unexpected(format!(
                "a binary message of {} bytes where text was expected",
                b.len()
            ))),
        }
    }

    /// The next message, read as JSON into `T`.
    pub fn recv_json<T: DeserializeOwned>(&mut self) -> Result<T, ClientError> {
        let text = self.recv_text()?;
        serde_json::from_str(&text)
            .map_err(|e| ClientError::Protocol(format!("`{text}` is not the JSON expected: {e}")))
    }

    /// Waits for the server to close the connection (no message may come
    /// first) and returns its code and reason.
    pub fn expect_close(&mut self) -> Result<(CloseCode, String), ClientError> {
        let deadline = Instant::now() + self.timeout;
        match self.next_message(deadline, "close") {
            Ok(msg) => Err(ClientError::Unexpected(format!(
                "{msg:?} where a close was expected"
            ))),
            Err(ClientError::Closed { code, reason }) => Ok((code, reason)),
            Err(e) => Err(e),
        }
    }

    /// Starts the closing handshake and waits for the server's answer;
    /// returns its code and reason. Messages that arrive first are dropped.
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> Result<(CloseCode, String), ClientError> {
        if !self.sent_close {
            self.write_frame(Opcode::Close, &Outgoing::close(code.0, reason).payload)?;
            self.sent_close = true;
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next_message(deadline, "answer to the close") {
                Ok(_) => {}
                Err(ClientError::Closed { code, reason }) => return Ok((code, reason)),
                Err(e) => return Err(e),
            }
        }
    }

    // ---- the event layer (`Events`, protocol `wsway.v1`) ----

    /// Calls `event` with `data` and waits for its reply: the ack's data
    /// read into `R`, or [`ClientError::Rejected`] with the server's
    /// error. Event pushes that arrive meanwhile are kept for
    /// [`next_push`](Self::next_push).
    pub fn emit<R: DeserializeOwned>(
        &mut self,
        event: &str,
        data: &impl Serialize,
    ) -> Result<R, ClientError> {
        self.next_id += 1;
        let id = self.next_id;
        let call = serde_json::json!({ "event": event, "data": data, "id": id });
        self.send(call.to_string())?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let value = self.next_json(deadline, "reply")?;
            if value.get("id").and_then(Value::as_u64) == Some(id) && value.get("ok").is_some() {
                return reply(value);
            }
            self.keep_push(value);
        }
    }

    /// Sends `event` with `data` as a call without an id: no reply comes.
    pub fn emit_no_ack(&mut self, event: &str, data: &impl Serialize) -> Result<(), ClientError> {
        let call = serde_json::json!({ "event": event, "data": data });
        self.send(call.to_string())
    }

    /// The data of the next push of `event` from the server, read into `T`.
    /// Pushes of other events that arrive first are kept for later calls.
    pub fn next_push<T: DeserializeOwned>(&mut self, event: &str) -> Result<T, ClientError> {
        Ok(self.next_push_with_position(event)?.data)
    }

    /// As [`next_push`](Self::next_push), with the push's topic and
    /// position when its topic keeps history.
    pub fn next_push_with_position<T: DeserializeOwned>(
        &mut self,
        event: &str,
    ) -> Result<Push<T>, ClientError> {
        let push = self.next_event(event, "event push")?;
        let text = |key: &str| push.get(key).and_then(Value::as_str).map(str::to_owned);
        let (topic, pos) = (text("topic"), text("pos"));
        let data = push.get("data").cloned().unwrap_or(Value::Null);
        Ok(Push {
            data: decode(event, data)?,
            topic,
            pos,
        })
    }

    /// Waits for the server's request `event` (sent with
    /// [`Ws::emit_with_ack`](crate::Ws::emit_with_ack)), reads its data
    /// into `T` and replies with what `answer` returns: an ack with its
    /// data, or an error with its code, message and data.
    pub fn answer<T, R>(
        &mut self,
        event: &str,
        answer: impl FnOnce(T) -> Result<R, EventError>,
    ) -> Result<(), ClientError>
    where
        T: DeserializeOwned,
        R: Serialize,
    {
        let request = self.next_event(event, "server request")?;
        let data = request.get("data").cloned().unwrap_or(Value::Null);
        let Some(id) = request.get("id").and_then(Value::as_u64) else {
            return Err(ClientError::Unexpected(format!(
                "`{event}` came without an id: the server does not wait for a reply"
            )));
        };
        let reply = match answer(decode(event, data)?) {
            Ok(data) => serde_json::json!({ "id": id, "ok": true, "data": data }),
            Err(e) => {
                let data = e.data().and_then(|d| serde_json::from_str::<Value>(d).ok());
                serde_json::json!({
                    "id": id, "ok": false, "error": e.code(), "message": e.message(), "data": data,
                })
            }
        };
        self.send(reply.to_string())
    }

    /// The next push of `event` (kept or read now), whole.
    fn next_event(&mut self, event: &str, what: &'static str) -> Result<Value, ClientError> {
        let named = |v: &Value| v.get("event").and_then(Value::as_str) == Some(event);
        if let Some(i) = self.pushes.iter().position(named) {
            if let Some(push) = self.pushes.remove(i) {
                return Ok(push);
            }
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let value = self.next_json(deadline, what)?;
            if named(&value) {
                return Ok(value);
            }
            self.keep_push(value);
        }
    }

    fn keep_push(&mut self, value: Value) {
        if value.get("event").is_some() {
            self.pushes.push_back(value);
        }
    }

    /// Notes where a push stands in its topic's history. A position note
    /// (`wsway:pos`) is consumed here: it is bookkeeping, not a push.
    fn note_position(&mut self, value: &Value) -> bool {
        let text = |key: &str| value.get(key).and_then(Value::as_str);
        if let (Some(topic), Some(pos)) = (text("topic"), text("pos")) {
            self.positions.insert(topic.to_owned(), pos.to_owned());
            return text("event") == Some(crate::delivery::history::POSITION_EVENT);
        }
        false
    }

    fn next_json(&mut self, deadline: Instant, what: &'static str) -> Result<Value, ClientError> {
        loop {
            let value: Value = match self.next_message(deadline, what)? {
                Message::Text(t) => serde_json::from_str(t.as_str()).map_err(|e| {
                    ClientError::Protocol(format!("`{}` is not an event envelope: {e}", t.as_str()))
                })?,
                Message::Binary(_) => {
                    return Err(ClientError::Unexpected(
                        "a binary message on an event connection".into(),
                    ));
                }
            };
            if !self.note_position(&value) {
                return Ok(value);
            }
        }
    }

    // ---- frames ----

    fn write_frame(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), ClientError> {
        if let Some((code, reason)) = &self.closed {
            return Err(ClientError::Closed {
                code: *code,
                reason: reason.clone(),
            });
        }
        let key = [0x5a, 0x17, 0xc3, 0x9e];
        let mut head = [0u8; MAX_HEADER];
        let n = Header::write_masked(true, false, opcode, payload.len(), Some(key), &mut head);
        let mut frame = Vec::with_capacity(n + payload.len());
        frame.extend_from_slice(&head[..n]);
        frame.extend_from_slice(payload);
        mask::apply(&mut frame[n..], key, 0);
        let deadline = Instant::now() + self.timeout;
        match block_on_until(self.io.write_all(&frame), deadline) {
            None => Err(ClientError::Timeout {
                waiting_for: "room to send (the server is not reading)",
                after: self.timeout,
            }),
            Some(Err(e)) => Err(io_error(e, "sending")),
            Some(Ok(())) => Ok(()),
        }
    }

    fn next_message(
        &mut self,
        deadline: Instant,
        what: &'static str,
    ) -> Result<Message, ClientError> {
        loop {
            if let Some((code, reason)) = &self.closed {
                return Err(ClientError::Closed {
                    code: *code,
                    reason: reason.clone(),
                });
            }
            match self.decoder.decode(&mut self.read) {
                Err(e) => return Err(ClientError::Protocol(format!("the server sent {e}"))),
                Ok(Some(item)) => match item {
                    Incoming::Text { payload, .. } => {
                        return Ok(Message::Text(Text::from_codec(payload)));
                    }
                    Incoming::Binary { payload, .. } => return Ok(Message::Binary(payload)),
                    Incoming::Ping(payload) => {
                        // Best effort: a failed pong shows on the next read.
                        let _ = self.write_frame(Opcode::Pong, &payload);
                    }
                    Incoming::Pong(_) => {}
                    Incoming::Close(frame) => {
                        // The answer echoes the code (§5.5.1); a close
                        // without one is answered empty (1005 is never sent).
                        let (code, reason, answer) = match frame {
                            Some(f) => (
                                CloseCode(f.code),
                                f.reason,
                                Outgoing::close(f.code, "").payload,
                            ),
                            None => (CloseCode::NO_STATUS, String::new(), Bytes::new()),
                        };
                        if !self.sent_close {
                            let _ = self.write_frame(Opcode::Close, &answer);
                            self.sent_close = true;
                        }
                        self.closed = Some((code, reason));
                    }
                },
                Ok(None) => match read_more(&mut self.io, &mut self.read, deadline) {
                    None => {
                        return Err(ClientError::Timeout {
                            waiting_for: what,
                            after: self.timeout,
                        });
                    }
                    Some(0) => {
                        self.closed = Some((CloseCode::ABNORMAL, String::new()));
                    }
                    Some(_) => {}
                },
            }
        }
    }
}

/// An ack's data, or the error it carries.
fn reply<R: DeserializeOwned>(value: Value) -> Result<R, ClientError> {
    if value.get("ok").and_then(Value::as_bool) == Some(true) {
        return decode("reply", value.get("data").cloned().unwrap_or(Value::Null));
    }
    let field = |name| value.get(name).and_then(Value::as_str).unwrap_or_default();
    let mut err = EventError::new(field("error").to_owned(), field("message").to_owned());
    if let Some(data) = value.get("data") {
        err = err.with_data(data);
    }
    Err(ClientError::Rejected(err))
}

fn decode<T: DeserializeOwned>(what: &str, data: Value) -> Result<T, ClientError> {
    serde_json::from_value(data.clone()).map_err(|e| {
        ClientError::Protocol(format!(
            "the {what}'s data `{data}` is not the type expected: {e}"
        ))
    })
}
