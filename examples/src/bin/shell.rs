//! A line-oriented shell over WebSocket, one loop per connection:
//! `cargo run -p examples --bin shell`, then connect to
//! `ws://127.0.0.1:9002/term/NAME` and type `help`.

fn main() -> std::process::ExitCode {
    examples::run(examples::shell::app(), 9002)
}
