//! The benchmark server for `../shared/bench/run.sh`:
//! `bench-server [PORT] [--runtime tokio|async-std|smol]` (the port also comes from `$PORT`).

fn main() -> std::process::ExitCode {
    examples::run(examples::bench::app(), 9002)
}
