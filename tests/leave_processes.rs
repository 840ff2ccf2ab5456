//! A member stopped cleanly leaves at once (docs/PROTOCOL.md §5.6): with a token timeout of a
//! minute, the others still install a view without it within seconds, which only the leave can
//! explain, and they keep committing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Children stopped by pid when the test ends, however it ends.
struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

#[test]
fn a_member_stopped_cleanly_leaves_without_waiting_for_the_timeout() {
    let addrs = free_ports(3);
    let peers: Vec<String> = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    let mut guard = Guard(Vec::new());
    for (i, addr) in addrs.iter().enumerate() {
        let child = Command::new(HARNESS)
            .args(["node", "--id", &(i + 1).to_string(), "--listen", &addr.to_string()])
            .args(["--peers", &peers.join(","), "--token-timeout", "60000"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("harness node starts");
        guard.0.push(child);
    }
    let mut client = connect(addrs[0], Duration::from_secs(20));
    let mut first_view = 0;
    wait_until("a view of all three", Duration::from_millis(20), 2_000, Duration::from_secs(20), || {
        let status = client.status().expect("status");
        first_view = status.view.0;
        status.primary && status.ring.len() == 3
    });
    client.broadcast(b"before the leave").expect("committed");

    // SIGTERM member 3 by its pid: it leaves cleanly and exits.
    let pid = guard.0[2].id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success());
    let started = Instant::now();
    wait_until("member 3 to exit", Duration::from_millis(20), 1_000, Duration::from_secs(10), || {
        matches!(guard.0[2].try_wait(), Ok(Some(_)))
    });
    let mut after = None;
    wait_until("a view without member 3", Duration::from_millis(20), 1_000, Duration::from_secs(10), || {
        let status = client.status().expect("status");
        let gone = status.primary && status.view.0 > first_view && status.ring.len() == 2;
        if gone {
            after = Some(status);
        }
        gone
    });
    // Far below the 60 s timeout: the leave, not silence, removed it.
    assert!(started.elapsed() < Duration::from_secs(30));
    let after = after.expect("a later view");
    assert!(after.ring.iter().all(|m| m.id.0 != 3), "{:?}", after.ring);
    client.broadcast(b"after the leave").expect("the two left still commit");
}
