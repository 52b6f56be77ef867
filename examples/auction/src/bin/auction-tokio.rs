//! The auction, served: `cargo run -p auction --bin auction-<runtime>`
//! (`-- --tls-cert PEM --tls-key PEM` for wss://; `/metrics` either way;
//! `REDIS_URL` to share its rooms with other processes).

fn main() -> std::io::Result<()> {
    wsway_tokio::run_with(auction::set_up(), auction::addr())
}
