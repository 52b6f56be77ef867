//! The auction, served: `cargo run -p auction --bin auction-<runtime>`.

fn main() -> std::io::Result<()> {
    wsway_smol::run(auction::app(auction::Config::default()), auction::addr())
}
