//! The auction, served: `cargo run -p auction --bin auction-<runtime>`
//! (`-- --tls-cert PEM --tls-key PEM` for wss://; `/metrics` either way).

fn main() -> std::io::Result<()> {
    let app = auction::app(auction::Config::default());
    wsway_smol::run(examples::operated(app)?, auction::addr())
}
