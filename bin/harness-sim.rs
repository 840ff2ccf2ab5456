//! `harness-sim`: the deterministic simulator.

fn main() {
    eprintln!("harness-sim: not built yet");
    std::process::exit(2);
}
