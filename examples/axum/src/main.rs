//! The chat inside an axum app: `cargo run -p axum-example -- --port 3000`,
//! then open <http://127.0.0.1:3000>. See `lib.rs`.

fn main() -> std::process::ExitCode {
    axum_example::main()
}
