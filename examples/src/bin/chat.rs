//! Chat rooms with a browser page: `cargo run -p examples --bin chat`, then
//! open <http://127.0.0.1:3000> in two tabs. `chat --typescript` prints
//! the event contract the page's TypeScript checks against
//! (`examples/src/chat-contract.d.ts`).

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--typescript") {
        print!("{}", examples::chat::contract());
        return std::process::ExitCode::SUCCESS;
    }
    examples::run(examples::chat::app(), 3000)
}
