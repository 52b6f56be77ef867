//! Echo server: `/echo` (and `/`) send every message back. The Autobahn target.
//!
//! ```sh
//! cargo run -p examples --bin echo -- --port 9001
//! ```

use wsway::{App, on_message};

fn main() -> std::process::ExitCode {
    let mut app = App::new();
    let echo = || {
        on_message(|ws, msg| {
            ws.send(msg);
        })
    };
    app.ws("/", echo());
    app.ws("/echo", echo());
    examples::run(app, 9001)
}
