//! What both benchmark binaries share.

use criterion::Criterion;

/// Runs `benches` when cargo passes `--bench` (`cargo bench`, and so `make bench`).
/// `cargo test --all-targets` runs bench targets without it: there they are compiled, never run.
pub fn run(benches: fn(&mut Criterion)) {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
