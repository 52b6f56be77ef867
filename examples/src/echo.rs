//! Echo: every message on `/echo` (and `/`) comes straight back. The target
//! the Autobahn conformance suite runs against.

use wsway::{App, on_message};

/// The echo app.
pub fn app() -> App {
    let mut app = App::new();
    let echo = || {
        on_message(|ws, msg| {
            ws.send(msg);
        })
    };
    app.ws("/", echo());
    app.ws("/echo", echo());
    app
}
