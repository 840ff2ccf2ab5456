//! A member stopped cleanly leaves at once (docs/PROTOCOL.md §5.6): with a token timeout of a
//! minute, the others still install a view without it within seconds, which only the leave can
//! explain, and they keep committing.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use harness::procs::ProcessGroup;
use nix::sys::signal::Signal;

#[test]
fn a_member_stopped_cleanly_leaves_without_waiting_for_the_timeout() {
    let addrs = free_ports(3);
    let peers: Vec<String> = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    // Stops every member by pid when the test ends, however it ends.
    let mut nodes = ProcessGroup::new(STOP_GRACE);
    for (i, addr) in addrs.iter().enumerate() {
        let mut command = Command::new(HARNESS);
        command
            .args(["node", "--id", &(i + 1).to_string(), "--listen", &addr.to_string()])
            .args(["--peers", &peers.join(","), "--token-timeout", "60000"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        nodes.spawn(i + 1, command).expect("harness node starts");
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
    nodes.signal(3, Signal::SIGTERM).expect("SIGTERM member 3");
    let started = Instant::now();
    wait_until("member 3 to exit", Duration::from_millis(20), 1_000, Duration::from_secs(10), || {
        nodes.pid(3).is_none()
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
