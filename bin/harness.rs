//! `harness`: run a member, a local demo cluster, or client commands.

fn main() {
    eprintln!("harness: not built yet");
    std::process::exit(2);
}
