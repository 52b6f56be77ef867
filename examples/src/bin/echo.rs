//! Echo server on `/echo` and `/`: `cargo run -p examples --bin echo -- --port 9001`

fn main() -> std::process::ExitCode {
    examples::run(examples::echo::app(), 9001)
}
