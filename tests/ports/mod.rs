//! Loopback ports for tests, shared by `common` and `in_process`.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

/// `count` distinct loopback addresses whose ports were free a moment ago and were never handed
/// out before in this test binary: tests run in parallel threads, and two rings given the same
/// port would dial into each other (seen as "hello for n1, this is n2" and a failed bind).
pub fn free_addrs(count: usize) -> Vec<SocketAddr> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut listeners: Vec<TcpListener> = Vec::with_capacity(count);
    // Bounded: the kernel hands out each ephemeral port again only after cycling through them.
    for _ in 0..count * 1000 {
        if listeners.len() == count {
            break;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        if handed_out.insert(listener.local_addr().unwrap().port()) {
            listeners.push(listener);
        }
    }
    assert_eq!(listeners.len(), count, "no fresh loopback ports left");
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}
