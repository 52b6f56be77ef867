//! The auction, served: `cargo run -p auction --bin auction-<runtime>`.

fn main() -> std::io::Result<()> {
    wsway_async_std::run(auction::app(auction::Config::default()), auction::addr())
}
