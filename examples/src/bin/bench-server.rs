//! The benchmark server for `../shared/bench/run.sh`:
//! `bench-server [PORT] [--runtime tokio|async-std|smol]` (the port also comes from `$PORT`).
//!
//! With `BENCH_HISTORY=N` in its environment, its rooms keep their last N
//! messages (in Redis, with `--redis`): what `benches/nodes.rs --history`
//! measures.

fn main() -> std::process::ExitCode {
    let mut app = examples::bench::app();
    if let Some(n) = std::env::var("BENCH_HISTORY")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        app.history("*", wsway::Retention::messages(n));
    }
    examples::run(app, 9002)
}
