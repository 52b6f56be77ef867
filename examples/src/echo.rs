//! Echo: every message on `/echo` (and `/`) comes straight back, compressed
//! with permessage-deflate when the client offers it. The target the
//! Autobahn conformance suite runs against.

use wsway::{App, Compression, on_message};

/// The echo app.
pub fn app() -> App {
    let mut app = App::new();
    let echo = || {
        on_message(|ws, msg| {
            ws.send(msg);
        })
    };
    app.ws("/", echo()).compression(Compression::dedicated());
    app.ws("/echo", echo())
        .compression(Compression::dedicated());
    app
}
