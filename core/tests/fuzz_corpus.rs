//! Replays the committed fuzz corpus (`fuzz/corpus/*`) through the fuzz
//! targets' entry points, so every input that ever mattered keeps passing
//! without cargo-fuzz or a nightly toolchain.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a corpus file");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{} fails the {target} target", path.display());
        }
        count += 1;
    }
    assert!(count > 0, "no corpus in {}", dir.display());
}

#[test]
fn handshake_corpus() {
    replay("handshake", wsway::__fuzz::handshake);
}

#[test]
fn connection_corpus() {
    replay("connection", wsway::__fuzz::connection);
}

#[test]
fn events_corpus() {
    replay("events", wsway::__fuzz::events);
}
