//! Client ids for exactly-once sessions (docs/PROTOCOL.md §8.2).
//!
//! The state machine remembers the last request and its outcome per client id, so two clients
//! must never share an id by accident. An id is drawn from std's per-process random hash keys
//! (seeded by the OS) mixed with the process id, the time and a counter, so two processes, or
//! two clients of one process, get different ids without a random-number crate.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Distinguishes the clients of one process even within one clock tick.
static CLIENTS_CREATED: AtomicU64 = AtomicU64::new(0);

/// A fresh client id, never 0 (0 means "no session").
pub fn new_client_id() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(CLIENTS_CREATED.fetch_add(1, Ordering::Relaxed));
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    hasher.write_u128(since_epoch.as_nanos());
    hasher.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_nonzero_and_distinct() {
        let ids: std::collections::BTreeSet<u64> = (0..1000).map(|_| new_client_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&0));
    }
}
