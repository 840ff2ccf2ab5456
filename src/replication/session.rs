//! The exactly-once table: the last request and its result per client (issue 6).
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

use std::collections::BTreeMap;

use super::command::Session;

/// Default most clients remembered.
pub const CLIENTS_MAX: usize = 4096;
/// Most bytes of remembered outcomes over all clients (large range reads are expensive to keep).
pub const SESSION_OUTCOME_BYTES_MAX: usize = 64 << 20;

/// What is remembered of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientRecord {
    /// The last request applied.
    pub(crate) request: u64,
    /// Its encoded outcome.
    pub(crate) outcome: Vec<u8>,
    /// The logical time of its last use; unique across clients.
    pub(crate) used: u64,
}

/// The exactly-once table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sessions {
    /// Most clients remembered; part of the replicated state so that all members expire alike.
    pub(crate) clients_max: usize,
    /// Ticks once per tracked command.
    pub(crate) clock: u64,
    /// By client id.
    pub(crate) clients: BTreeMap<u64, ClientRecord>,
    /// Client ids by last use, oldest first: the expiry order.
    pub(crate) by_use: BTreeMap<u64, u64>,
    /// Sum of the remembered outcomes' lengths.
    pub(crate) outcome_bytes: usize,
}

impl Sessions {
    /// An empty table remembering at most `clients_max` (at least 1) clients.
    pub(crate) fn new(clients_max: usize) -> Sessions {
        Sessions {
            clients_max: clients_max.max(1),
            clock: 0,
            clients: BTreeMap::new(),
            by_use: BTreeMap::new(),
            outcome_bytes: 0,
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
        let outcome = record.outcome.clone();
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
        let record = ClientRecord { request: session.request, outcome: outcome.to_vec(), used };
        if let Some(old) = self.clients.insert(session.client_id, record) {
            self.by_use.remove(&old.used);
            self.outcome_bytes -= old.outcome.len();
        }
        self.by_use.insert(used, session.client_id);
        self.outcome_bytes += outcome.len();
        while self.clients.len() > self.clients_max || self.outcome_bytes > SESSION_OUTCOME_BYTES_MAX {
            let Some((&oldest_used, &oldest)) = self.by_use.iter().next() else { break };
            if oldest == session.client_id {
                break;
            }
            self.by_use.remove(&oldest_used);
            if let Some(expired) = self.clients.remove(&oldest) {
                self.outcome_bytes -= expired.outcome.len();
            }
        }
    }

    /// Marks a client as just used, moving it to the end of the expiry order.
    fn touch(&mut self, client_id: u64) {
        self.clock += 1;
        let used = self.clock;
        if let Some(record) = self.clients.get_mut(&client_id) {
            self.by_use.remove(&record.used);
            record.used = used;
            self.by_use.insert(used, client_id);
        }
    }

    /// Rebuilds the expiry order and byte count from `clients` (after a restore).
    pub(crate) fn reindex(&mut self) {
        self.by_use = self.clients.iter().map(|(&client, record)| (record.used, client)).collect();
        self.outcome_bytes = self.clients.values().map(|record| record.outcome.len()).sum();
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
        let before = table.clone();
        let mut rebuilt = table.clone();
        rebuilt.reindex();
        assert_eq!(rebuilt, before);
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
