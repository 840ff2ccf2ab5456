//! The exactly-once table: the last request and its result per client (docs/PROTOCOL.md §8.2).
//!
//! A client that loses its member retries the same request through another; the retry is a new
//! message to the ring and may commit after the original did. The state machine answers it from
//! this table instead of applying it twice. The table is part of the replicated state (in the
//! snapshot and the digest), so every member answers a retry the same way.
//!
//! Bounds: at most `clients_max` clients, and at most `SESSION_OUTCOME_BYTES_MAX` bytes of
//! remembered results. When either is exceeded the least recently used client is forgotten;
//! "use" is counted by a logical clock that ticks once per tracked command, never wall time, so
//! every member expires the same client. A forgotten client's retry is applied again: exactly-once
//! holds for clients that send a request at least once per `clients_max` other clients' requests.

use std::sync::Arc;

use imbl::OrdMap;

use super::command::Session;
use crate::hash::{fnv1a, mix64, FNV_OFFSET};

/// Default most clients remembered.
pub const CLIENTS_MAX: usize = 4096;
/// Most bytes of remembered outcomes over all clients (large range reads are expensive to keep).
pub const SESSION_OUTCOME_BYTES_MAX: usize = 64 << 20;

/// What is remembered of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientRecord {
    /// The last request applied.
    pub(crate) request: u64,
    /// Its encoded outcome (shared: freezing the state copies no outcome).
    pub(crate) outcome: Arc<[u8]>,
    /// The logical time of its last use; unique across clients.
    pub(crate) used: u64,
}

impl ClientRecord {
    /// This client's share of the state digest (kept incrementally, like a key's).
    pub(crate) fn hash(&self, client: u64) -> u64 {
        let mut head = [0u8; 32];
        head[0..8].copy_from_slice(&client.to_be_bytes());
        head[8..16].copy_from_slice(&self.request.to_be_bytes());
        head[16..24].copy_from_slice(&self.used.to_be_bytes());
        head[24..28].copy_from_slice(&(self.outcome.len() as u32).to_be_bytes());
        head[28..32].copy_from_slice(&crc32fast::hash(&self.outcome).to_be_bytes());
        mix64(fnv1a(FNV_OFFSET, &head))
    }
}

/// The exactly-once table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sessions {
    /// Most clients remembered; part of the replicated state so that all members expire alike.
    pub(crate) clients_max: usize,
    /// Ticks once per tracked command.
    pub(crate) clock: u64,
    /// By client id. Change it through `set` and `unset`, which keep `digest`.
    pub(crate) clients: OrdMap<u64, ClientRecord>,
    /// Client ids by last use, oldest first: the expiry order.
    pub(crate) by_use: OrdMap<u64, u64>,
    /// Sum of the remembered outcomes' lengths.
    pub(crate) outcome_bytes: usize,
    /// Wrapping sum of `ClientRecord::hash` over every client.
    pub(crate) digest: u64,
}

impl Sessions {
    /// An empty table remembering at most `clients_max` (at least 1) clients.
    pub(crate) fn new(clients_max: usize) -> Sessions {
        Sessions {
            clients_max: clients_max.max(1),
            clock: 0,
            clients: OrdMap::new(),
            by_use: OrdMap::new(),
            outcome_bytes: 0,
            digest: 0,
        }
    }

    /// Remembers `record` for `client`, keeping the digest, the byte count and the expiry
    /// order; returns the record it replaced.
    pub(crate) fn set(&mut self, client: u64, record: ClientRecord) -> Option<ClientRecord> {
        self.digest = self.digest.wrapping_add(record.hash(client));
        self.outcome_bytes += record.outcome.len();
        self.by_use.insert(record.used, client);
        let old = self.clients.insert(client, record);
        if let Some(old) = &old {
            self.forget_record(client, old);
        }
        old
    }

    /// Forgets `client`.
    pub(crate) fn unset(&mut self, client: u64) -> Option<ClientRecord> {
        let old = self.clients.remove(&client)?;
        self.forget_record(client, &old);
        Some(old)
    }

    fn forget_record(&mut self, client: u64, old: &ClientRecord) {
        self.digest = self.digest.wrapping_sub(old.hash(client));
        self.outcome_bytes -= old.outcome.len();
        if self.by_use.get(&old.used) == Some(&client) {
            self.by_use.remove(&old.used);
        }
    }

    /// The remembered outcome if `session` repeats or precedes its client's last request.
    ///
    /// A request below the remembered one can only be a late duplicate (a sync client has one
    /// request outstanding), so it too gets the remembered outcome and is never applied.
    pub(crate) fn replay(&mut self, session: Session) -> Option<Vec<u8>> {
        if !session.is_tracked() {
            return None;
        }
        let record = self.clients.get(&session.client_id)?;
        if session.request > record.request {
            return None;
        }
        let outcome = record.outcome.to_vec();
        self.touch(session.client_id);
        Some(outcome)
    }

    /// Remembers `outcome` as the result of `session`, expiring the least recent clients if a
    /// bound is exceeded (never the one just recorded).
    pub(crate) fn record(&mut self, session: Session, outcome: &[u8]) {
        if !session.is_tracked() {
            return;
        }
        self.clock += 1;
        let used = self.clock;
        let record = ClientRecord { request: session.request, outcome: outcome.into(), used };
        self.set(session.client_id, record);
        while self.clients.len() > self.clients_max || self.outcome_bytes > SESSION_OUTCOME_BYTES_MAX {
            let Some((oldest_used, oldest)) = self.by_use.get_min().map(|(u, c)| (*u, *c)) else { break };
            if oldest == session.client_id {
                break;
            }
            if self.unset(oldest).is_none() {
                self.by_use.remove(&oldest_used);
            }
        }
    }

    /// Marks a client as just used, moving it to the end of the expiry order.
    fn touch(&mut self, client_id: u64) {
        self.clock += 1;
        let used = self.clock;
        if let Some(mut record) = self.clients.get(&client_id).cloned() {
            record.used = used;
            self.set(client_id, record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(client_id: u64, request: u64) -> Session {
        Session { client_id, request }
    }

    #[test]
    fn a_repeated_or_older_request_replays_and_a_newer_one_does_not() {
        let mut table = Sessions::new(8);
        assert_eq!(table.replay(at(1, 1)), None);
        table.record(at(1, 5), b"five");
        assert_eq!(table.replay(at(1, 5)), Some(b"five".to_vec()));
        assert_eq!(table.replay(at(1, 4)), Some(b"five".to_vec()));
        assert_eq!(table.replay(at(1, 6)), None);
        assert_eq!(table.replay(at(2, 5)), None);
    }

    #[test]
    fn client_zero_is_never_remembered() {
        let mut table = Sessions::new(8);
        table.record(at(0, 1), b"x");
        assert_eq!(table.replay(at(0, 1)), None);
        assert!(table.clients.is_empty());
    }

    #[test]
    fn the_least_recently_used_client_expires_first() {
        let mut table = Sessions::new(2);
        table.record(at(1, 1), b"a");
        table.record(at(2, 1), b"b");
        // A replay counts as use: client 1 is now more recent than client 2.
        assert!(table.replay(at(1, 1)).is_some());
        table.record(at(3, 1), b"c");
        assert_eq!(table.clients.keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(table.by_use.len(), 2);
        assert_eq!(table.outcome_bytes, 2);
        // Rebuilt from its records alone, the table has the same order, bytes and digest.
        let mut rebuilt = Sessions::new(2);
        rebuilt.clock = table.clock;
        for (client, record) in table.clients.iter() {
            rebuilt.set(*client, record.clone());
        }
        assert_eq!(rebuilt, table);
    }

    #[test]
    fn outcome_bytes_are_bounded_but_the_newest_is_kept() {
        let mut table = Sessions::new(100);
        let big = vec![0u8; SESSION_OUTCOME_BYTES_MAX / 2 + 1];
        table.record(at(1, 1), &big);
        table.record(at(2, 1), &big);
        assert_eq!(table.clients.keys().copied().collect::<Vec<_>>(), [2]);
        assert!(table.outcome_bytes <= SESSION_OUTCOME_BYTES_MAX);
    }
}
