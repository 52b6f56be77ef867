//! Testing an [`App`](crate::App) without ports.
//!
//! A [`TestServer`] runs the app exactly as a real server does (routing,
//! middleware, origin and auth checks, `before_upgrade`, limits, the
//! upgrade, the connection's driver) but takes its connections from
//! [`TestClient`]s over in-memory streams. It needs no async runtime: its
//! tasks run on threads of their own, so a plain `#[test]` works, whatever
//! runtime the application is deployed on. Every client call blocks with a
//! timeout.
//!
//! ```
//! use wsway::testing::TestServer;
//! use wsway::{App, CloseCode, on_message};
//!
//! let mut app = App::new();
//! app.ws("/echo", on_message(|ws, msg| {
//!     ws.send(msg);
//! }));
//! let server = TestServer::new(app);
//!
//! let mut client = server.connect("/echo").unwrap();
//! client.send("hello").unwrap();
//! assert_eq!(client.recv_text().unwrap(), "hello");
//! client.close(CloseCode::NORMAL, "").unwrap();
//!
//! // A refused upgrade reports its status.
//! let refused = server.connect("/nowhere").unwrap_err();
//! assert_eq!(refused.status(), Some(wsway::StatusCode::NOT_FOUND));
//! ```

mod client;
mod pipe;
mod runtime;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

pub use client::{ClientError, Push, TestClient, TestResponse};

use crate::runtime::Runtime;
use crate::server::control::{Listener, Server, ServerHandle};

/// How long a client call waits, unless [`TestServer::timeout`] says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// An app served over in-memory streams. Dropping it terminates every
/// connection and stops the server.
pub struct TestServer {
    handle: ServerHandle,
    queue: Arc<Queue>,
    timeout: Duration,
}

impl TestServer {
    /// Serves `app` (an [`App`](crate::App) or a configured [`Server`]) on
    /// threads of its own: no async runtime is needed.
    pub fn new(app: impl Into<Server>) -> Self {
        Self::with_runtime(app, runtime::Threads)
    }

    /// Serves `app` on `runtime`: for handlers that need their runtime's
    /// context (a `tokio::time::sleep` in a handler needs tokio's).
    pub fn with_runtime(app: impl Into<Server>, runtime: impl Runtime) -> Self {
        let queue = Arc::new(Queue::default());
        let listener = MemoryListener(queue.clone());
        let handle = app
            .into()
            .handle_signals(false)
            .start(listener, runtime)
            .expect("an in-memory listener always starts");
        TestServer {
            handle,
            queue,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// How long each client call waits before failing with
    /// [`ClientError::Timeout`]. Default: 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Opens a WebSocket to `path` (with its query, if any).
    pub fn connect(&self, path: &str) -> Result<TestClient, ClientError> {
        self.request(path).connect()
    }

    /// An upgrade request to `path` with headers of the test's choosing.
    pub fn request(&self, path: &str) -> TestRequest<'_> {
        TestRequest {
            server: self,
            path: path.to_owned(),
            headers: Vec::new(),
        }
    }

    /// Sends a plain `GET` to `path` (a page, a login endpoint, a health
    /// check) and returns the response.
    pub fn get(&self, path: &str) -> Result<TestResponse, ClientError> {
        self.request(path).get()
    }

    /// A new in-memory connection to the server: the client's end.
    fn dial(&self) -> pipe::End {
        let (ours, theirs) = pipe::pair();
        self.queue.push(theirs);
        ours
    }

    /// The running server: publish, count subscribers and connections,
    /// shut down.
    pub fn handle(&self) -> &ServerHandle {
        &self.handle
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Also ends the accept loop, which stops waiting on the queue.
        self.handle.terminate();
    }
}

/// An upgrade request being built; [`connect`](Self::connect) sends it.
pub struct TestRequest<'a> {
    server: &'a TestServer,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl TestRequest<'_> {
    /// Adds a header (`Origin`, `Cookie`, `Authorization` ...).
    ///
    /// # Panics
    ///
    /// When `name` or `value` is not a valid header name or value.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        let value = HeaderValue::from_str(value).expect("a valid header value");
        self.headers.push((name, value));
        self
    }

    /// Resumes from `positions` (topic → `"epoch:offset"`, as
    /// [`TestClient::positions`] keeps them): adds the `wsway-resume` query
    /// parameter a reconnecting `wsway.js` sends, so what was missed on
    /// those topics is replayed first.
    ///
    /// ```
    /// # use wsway::testing::TestServer;
    /// # fn f(server: &TestServer, before: &wsway::testing::TestClient) {
    /// let again = server.request("/board/red").resume(before.positions()).connect();
    /// # }
    /// ```
    pub fn resume(mut self, positions: &BTreeMap<String, String>) -> Self {
        if positions.is_empty() {
            return self;
        }
        let json = serde_json::to_string(positions).unwrap_or_default();
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("wsway-resume", &json)
            .finish();
        let joiner = if self.path.contains('?') { '&' } else { '?' };
        self.path = format!("{}{joiner}{query}", self.path);
        self
    }

    /// Offers these subprotocols (`Sec-WebSocket-Protocol`).
    pub fn protocols(self, protocols: &[&str]) -> Self {
        let list = protocols.join(", ");
        self.header("sec-websocket-protocol", &list)
    }

    /// Sends the upgrade; a refusal comes back as
    /// [`ClientError::Refused`] with its status, headers and body.
    pub fn connect(self) -> Result<TestClient, ClientError> {
        let timeout = self.server.timeout;
        let mut ours = self.server.dial();
        let upgrade = client::upgrade(&mut ours, &self.path, &self.headers, timeout)?;
        Ok(TestClient::new(ours, upgrade, timeout))
    }

    /// Sends it as a plain `GET` (no upgrade) and returns the response.
    pub fn get(self) -> Result<TestResponse, ClientError> {
        let mut ours = self.server.dial();
        client::get(&mut ours, &self.path, &self.headers, self.server.timeout)
    }
}

/// Streams waiting to be accepted.
#[derive(Default)]
struct Queue {
    waiting: Mutex<VecDeque<pipe::End>>,
    arrived: event_listener::Event,
}

impl Queue {
    fn push(&self, end: pipe::End) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(end);
        self.arrived.notify(1);
    }

    fn pop(&self) -> Option<pipe::End> {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

/// The listener a [`TestServer`] accepts from. Each connection gets its
/// own loopback address (127.0.0.1, a port counted up), as if it came from
/// a client of its own.
struct MemoryListener(Arc<Queue>);

static NEXT_PORT: AtomicU16 = AtomicU16::new(1);

impl Listener for MemoryListener {
    type Io = pipe::End;

    async fn accept(&mut self) -> io::Result<(pipe::End, SocketAddr)> {
        let end = loop {
            if let Some(end) = self.0.pop() {
                break end;
            }
            let listener = self.0.arrived.listen();
            if let Some(end) = self.0.pop() {
                break end;
            }
            listener.await;
        };
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed).max(1);
        Ok((end, SocketAddr::from(([127, 0, 0, 1], port))))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}
