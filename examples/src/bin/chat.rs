//! Chat rooms with a browser page: `cargo run -p examples --bin chat`, then
//! open <http://127.0.0.1:3000> in two tabs.

fn main() -> std::process::ExitCode {
    examples::run(examples::chat::app(), 3000)
}
