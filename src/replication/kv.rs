//! `DvmState`: the built-in DVM state machine — a versioned key-value namespace, the member
//! registry and the plug-in registry, with exactly-once client sessions (docs/PROTOCOL.md §7, §8.2).
//!
//! Guarantee 6 (linear history) is only useful if applying it is deterministic: `apply` is a pure
//! function of the state and the payload, every map is ordered, no clock or randomness is
//! read, and a payload that does not decode changes nothing but the history chain (so a group
//! that also orders raw broadcasts still has one comparable digest). Each command applies
//! atomically at its
//! point of the order: it is validated whole before anything changes, and no operation of a
//! transaction can fail after the first one has run.
//!
//! Every map is a persistent B-tree (`imbl::OrdMap`) whose keys and values sit behind `Arc`s, so
//! cloning the state is O(1) and shares structure: a checkpoint freezes it on the protocol thread
//! and another thread encodes it (docs/PROTOCOL.md §7). The digest is kept incrementally, as the
//! wrapping sum of one hash per key and per remembered client, so `digest` costs O(registry),
//! never O(state).
//!
//! Revisions follow etcd: a global revision grows by one per command that changes the state (a
//! transaction's writes all share one); each key has the revision that created it, the revision
//! that last wrote it, and a version counting its puts since creation.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

use super::agreement::{
    apply_vote, decision_key, plugin_key, Decision, Proposal, Proposals, COMMITTED, PENDING,
    PROPOSALS_OPEN_MAX,
};
use super::command::{Action, Check, Command, Guard, Op, RANGE_LIMIT_MAX};
use super::journal::{Journal, StateChange};
use super::outcome::{Entry, Outcome, Read};
use super::registry::{Change, MemberRecord, Registry};
use super::session::{Sessions, CLIENTS_MAX};
use super::universe::{Universe, UNIVERSE_KEY};
use super::{DigestLog, Frozen, StateMachine};
use crate::error::DecodeError;
use crate::hash::{fnv1a, mix64, FNV_OFFSET};
use crate::ids::{MsgId, NodeId, Seq};

/// Most key and value bytes one range read returns; it stops early with `more` set. With
/// `OPS_MAX` ops per branch this bounds a command's result near `OPS_MAX * RANGE_BYTES_MAX`.
pub const RANGE_BYTES_MAX: usize = 4 << 20;

/// A key as stored: shared, so copying a B-tree node on write never copies key bytes.
pub(crate) type Key = Arc<[u8]>;

/// One key's value and revisions, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The value, shared for the same reason as the key.
    pub(crate) value: Arc<[u8]>,
    /// The revision that created the key.
    pub(crate) create_revision: u64,
    /// The revision that last wrote it.
    pub(crate) mod_revision: u64,
    /// Puts since creation, from 1.
    pub(crate) version: u64,
}

impl Stored {
    /// The entry a read of `key` returns.
    pub(crate) fn entry(&self, key: &[u8]) -> Entry {
        Entry {
            key: key.to_vec(),
            value: self.value.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        }
    }

    /// This key's share of the state digest: a hash of its canonical encoding's fields (the
    /// value enters as its CRC-32, as in `DigestLog::extend`), mixed so that the wrapping sum
    /// over all keys does not let two changes cancel by accident.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        let mut head = [0u8; 36];
        head[0..4].copy_from_slice(&(key.len() as u32).to_be_bytes());
        head[4..8].copy_from_slice(&(self.value.len() as u32).to_be_bytes());
        head[8..16].copy_from_slice(&self.create_revision.to_be_bytes());
        head[16..24].copy_from_slice(&self.mod_revision.to_be_bytes());
        head[24..32].copy_from_slice(&self.version.to_be_bytes());
        head[32..36].copy_from_slice(&crc32fast::hash(&self.value).to_be_bytes());
        mix64(fnv1a(fnv1a(FNV_OFFSET, key), &head))
    }

    /// The bytes this key takes in the snapshot encoding (`put_entry`).
    pub(crate) fn encoded_bytes(&self, key: &[u8]) -> u64 {
        (4 + key.len() + 4 + self.value.len() + 24) as u64
    }
}

/// The key-value namespace with its digest and size kept as it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Keys {
    pub(crate) map: OrdMap<Key, Stored>,
    /// Wrapping sum of `Stored::hash` over every key.
    pub(crate) digest: u64,
    /// Sum of `Stored::encoded_bytes` over every key.
    pub(crate) encoded_bytes: u64,
}

impl Keys {
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Stored> {
        self.map.get(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sets `key`, keeping the digest and the size.
    pub(crate) fn insert(&mut self, key: Key, stored: Stored) {
        self.digest = self.digest.wrapping_add(stored.hash(&key));
        self.encoded_bytes += stored.encoded_bytes(&key);
        if let Some(old) = self.map.insert(Arc::clone(&key), stored) {
            self.digest = self.digest.wrapping_sub(old.hash(&key));
            self.encoded_bytes -= old.encoded_bytes(&key);
        }
    }

    /// Removes `key`; whether it existed.
    pub(crate) fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some(old) => {
                self.digest = self.digest.wrapping_sub(old.hash(key));
                self.encoded_bytes -= old.encoded_bytes(key);
                true
            }
            None => false,
        }
    }

    /// The keys under `prefix`, in order.
    pub(crate) fn under<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        self.map
            .range::<_, [u8]>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(key, _)| key.starts_with(prefix))
    }
}

/// The built-in DVM state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DvmState {
    /// The global revision: changing commands applied.
    pub(crate) revision: u64,
    /// The key-value namespace.
    pub(crate) keys: Keys,
    /// Members and plug-ins.
    pub(crate) registry: Registry,
    /// The exactly-once table.
    pub(crate) sessions: Sessions,
    /// A hash chain over every committed payload applied, commands or not: two members with
    /// equal digests applied the same history, and a checkpoint names the prefix it is after.
    pub(crate) history: DigestLog,
    /// Open distributed agreements, by the seq of their proposal (docs/PROTOCOL.md §7.1).
    pub(crate) proposals: Proposals,
    /// Changes not yet drained by the node (off unless `enable_journal` was called).
    pub(crate) journal: Journal,
}

impl Default for DvmState {
    fn default() -> DvmState {
        DvmState::with_clients_max(CLIENTS_MAX)
    }
}

impl DvmState {
    /// An empty state remembering at most `clients_max` clients for exactly-once. Every member
    /// of a group must use the same value; a restored snapshot brings the donor's.
    pub fn with_clients_max(clients_max: usize) -> DvmState {
        DvmState {
            revision: 0,
            keys: Keys::default(),
            registry: Registry::default(),
            sessions: Sessions::new(clients_max),
            history: DigestLog::default(),
            proposals: Proposals::new(),
            journal: None,
        }
    }

    /// A copy sharing every map (O(1)), without the node-local journal.
    fn frozen_copy(&self) -> DvmState {
        DvmState {
            revision: self.revision,
            keys: self.keys.clone(),
            registry: self.registry.clone(),
            sessions: self.sessions.clone(),
            history: self.history.clone(),
            proposals: self.proposals.clone(),
            journal: None,
        }
    }

    /// The whole canonical encoding at once: for tests and small states (a node's checkpoints
    /// are encoded in pieces by its storage thread).
    pub fn snapshot(&self) -> Vec<u8> {
        super::encode_all(self)
    }

    /// Replaces the state with a decoded `snapshot`; a snapshot that does not decode changes
    /// nothing.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), DecodeError> {
        let frozen = super::decode_all(Box::new(super::DvmBuilder::new()), snapshot)?;
        StateMachine::thaw(self, &frozen)
    }

    /// The bytes of the state's canonical encoding (for status and measurements).
    pub fn state_bytes(&self) -> u64 {
        super::Snapshot::encoded_bytes(self)
    }

    /// The global revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A local (possibly stale) read of one key.
    pub fn get(&self, key: &[u8]) -> Option<Entry> {
        self.keys.get(key).map(|stored| stored.entry(key))
    }

    /// A local (possibly stale) read of the keys under `prefix`, in key order, at most `limit`
    /// (0 or above `RANGE_LIMIT_MAX` means `RANGE_LIMIT_MAX`) and `RANGE_BYTES_MAX`.
    pub fn range(&self, prefix: &[u8], limit: u32) -> Read {
        let limit = if limit == 0 { RANGE_LIMIT_MAX } else { limit.min(RANGE_LIMIT_MAX) } as usize;
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let mut more = false;
        for (key, stored) in self.under(prefix) {
            let size = key.len() + stored.value.len();
            if entries.len() >= limit || (!entries.is_empty() && bytes + size > RANGE_BYTES_MAX) {
                more = true;
                break;
            }
            bytes += size;
            entries.push(stored.entry(key));
        }
        Read::Range { entries, more }
    }

    /// A registered member.
    pub fn member(&self, id: NodeId) -> Option<&MemberRecord> {
        self.registry.members.get(&id)
    }

    /// Every registered member, by id.
    pub fn members(&self) -> impl Iterator<Item = (NodeId, &MemberRecord)> {
        self.registry.members.iter().map(|(&id, record)| (id, record))
    }

    /// The members plug-in `name` is loaded on (empty if none).
    pub fn plugin_members(&self, name: &str) -> BTreeSet<NodeId> {
        self.registry.plugins.get(name).cloned().unwrap_or_default()
    }

    /// Every loaded plug-in, by name, with its members.
    pub fn plugins(&self) -> impl Iterator<Item = (&str, &BTreeSet<NodeId>)> {
        self.registry.plugins.iter().map(|(name, members)| (name.as_str(), members))
    }

    /// The open agreements as `(proposal seq, proposal view)`, in seq order: at a new view, every
    /// member votes on those of older views, which aborts them (docs/PROTOCOL.md §7.1).
    pub fn open_proposals(&self) -> Vec<(Seq, u64)> {
        self.proposals.iter().map(|(&seq, p)| (seq, p.view)).collect()
    }

    /// Starts journalling changes for `take_changes` (the node does, for watches).
    pub fn enable_journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// The changes since the last call, in order (empty if the journal is off).
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        self.journal.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn journal_key(&mut self, revision: u64, key: &[u8], value: Option<&[u8]>) {
        if let Some(journal) = &mut self.journal {
            journal.push(StateChange::Key { revision, key: key.to_vec(), value: value.map(<[u8]>::to_vec) });
        }
    }

    /// Applies a decoded command with exactly-once and returns its outcome's bytes: a repeated
    /// request of a remembered client gets the remembered bytes and changes nothing else.
    pub fn execute(&mut self, command: &Command) -> Vec<u8> {
        self.execute_at(0, NodeId(0), command)
    }

    /// `execute` for the command committed at `seq` and submitted by member `origin`, which
    /// agreement commands need: a proposal is named by its seq and a vote counts only from its
    /// voter.
    fn execute_at(&mut self, seq: Seq, origin: NodeId, command: &Command) -> Vec<u8> {
        // A universe change applies by its epoch alone, as every member's tracked universe does
        // (docs/PROTOCOL.md §5.9): a session replay here could not be seen by the core.
        if matches!(command.action, Action::Universe { .. }) {
            return self.perform(seq, origin, &command.action).encode();
        }
        if let Some(outcome) = self.sessions.replay(command.session) {
            return outcome;
        }
        let outcome = self.perform(seq, origin, &command.action).encode();
        self.sessions.record(command.session, &outcome);
        outcome
    }

    /// The keys under `prefix`, in order.
    fn under<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        self.keys.under(prefix)
    }

    /// Applies one action at the next point of the order.
    fn perform(&mut self, seq: Seq, origin: NodeId, action: &Action) -> Outcome {
        let next = self.revision + 1;
        match action {
            Action::Put { key, value } => {
                self.put_at(key, value, next);
                self.revision = next;
                self.ok(0, Vec::new())
            }
            Action::Delete { key } => {
                if !self.keys.remove(key.as_slice()) {
                    return Outcome::NotFound { revision: self.revision };
                }
                self.journal_key(next, key, None);
                self.revision = next;
                self.ok(1, Vec::new())
            }
            Action::DeleteRange { prefix } => {
                // The universe's key is never removed by a range (docs/PROTOCOL.md §5.9).
                let doomed: Vec<Key> = self
                    .under(prefix)
                    .filter(|(key, _)| &key[..] != UNIVERSE_KEY.as_bytes())
                    .map(|(key, _)| Arc::clone(key))
                    .collect();
                for key in &doomed {
                    self.keys.remove(key);
                    self.journal_key(next, key, None);
                }
                if !doomed.is_empty() {
                    self.revision = next;
                }
                self.ok(doomed.len() as u64, Vec::new())
            }
            Action::Txn { guards, then, otherwise } => {
                // Guards see the state before the transaction; ops see each other's writes.
                let held = guards.iter().all(|guard| self.holds(guard));
                let (changed, deleted, reads) = self.run(if held { then } else { otherwise }, next);
                if changed {
                    self.revision = next;
                }
                if held {
                    self.ok(deleted, reads)
                } else {
                    Outcome::GuardFailed { revision: self.revision, deleted, reads }
                }
            }
            Action::RegisterMember { id, host, role, attributes } => {
                let change = self.registry.register(*id, host, *role, attributes, next);
                self.settle(change)
            }
            Action::SetMemberStatus { id, status } => {
                let change = self.registry.set_status(*id, *status);
                self.settle(change)
            }
            Action::LoadPlugin { name, member } => {
                let change = self.registry.load(name, *member);
                self.settle(change)
            }
            Action::UnloadPlugin { name, member } => {
                let change = self.registry.unload(name, *member);
                self.settle(change)
            }
            Action::Propose { name, view, voters } => self.propose(seq, name, *view, voters),
            Action::Universe { epoch, members, .. } => {
                let key = UNIVERSE_KEY.as_bytes();
                let current = self.universe().map_or(0, |u| u.epoch);
                if *epoch != current + 1 {
                    let read = Read::Get(self.get(key));
                    return Outcome::GuardFailed { revision: self.revision, deleted: 0, reads: vec![read] };
                }
                let universe = Universe { epoch: *epoch, members: members.iter().cloned().collect() };
                self.put_at(key, universe.to_text().as_bytes(), next);
                self.revision = next;
                let read = Read::Get(self.get(key));
                self.ok(0, vec![read])
            }
            Action::Vote { proposal, voter, view, yes } => {
                if *voter != origin {
                    let reason = format!("a vote of member {voter} submitted by member {origin}");
                    return Outcome::BadCommand { reason };
                }
                self.vote(*proposal, *voter, *view, *yes)
            }
        }
    }

    /// Opens the agreement on loading `name` at `seq`: its decision key reads `pending` (or the
    /// abort, when no more proposals may be open). The outcome reads the key back, so the
    /// submitter learns where to wait for the decision.
    fn propose(&mut self, seq: Seq, name: &str, view: u64, voters: &[NodeId]) -> Outcome {
        if voters.is_empty() {
            return Outcome::BadCommand { reason: "a proposal needs voters".into() };
        }
        let next = self.revision + 1;
        let key = decision_key(seq);
        let value: &[u8] = if self.proposals.len() >= PROPOSALS_OPEN_MAX {
            b"aborted: too many open proposals"
        } else {
            let voters = voters.iter().copied().collect();
            let proposal = Proposal { name: name.to_owned(), view, voters, yes: Default::default() };
            self.proposals.insert(seq, proposal);
            PENDING.as_bytes()
        };
        self.put_at(&key, value, next);
        self.revision = next;
        let read = Read::Get(self.get(&key));
        self.ok(0, vec![read])
    }

    /// Applies a vote; a decision writes the decision key and, on commit, the plug-in registry,
    /// at one new revision.
    fn vote(&mut self, proposal: Seq, voter: NodeId, view: u64, yes: bool) -> Outcome {
        let Some(decision) = apply_vote(&mut self.proposals, proposal, voter, view, yes) else {
            return Outcome::NotFound { revision: self.revision };
        };
        let next = self.revision + 1;
        let value = match decision {
            Decision::Open => return self.ok(0, Vec::new()),
            Decision::Commit { name, voters } => {
                for member in voters {
                    self.registry.load_agreed(&name, member);
                }
                // Mirrored as a key, so clients read and watch the placement like any key.
                let members = self.plugin_members(&name);
                let list: Vec<String> = members.iter().map(|m| m.0.to_string()).collect();
                self.put_at(&plugin_key(&name), list.join(",").as_bytes(), next);
                COMMITTED.to_owned()
            }
            Decision::Abort(reason) => reason,
        };
        self.put_at(&decision_key(proposal), value.as_bytes(), next);
        self.revision = next;
        self.ok(0, Vec::new())
    }

    fn ok(&self, deleted: u64, reads: Vec<Read>) -> Outcome {
        Outcome::Ok { revision: self.revision, deleted, reads }
    }

    /// The outcome of a registry command, taking a revision if it changed anything.
    fn settle(&mut self, change: Change) -> Outcome {
        match change {
            Change::Changed => {
                self.revision += 1;
                self.ok(0, Vec::new())
            }
            Change::Unchanged => self.ok(0, Vec::new()),
            Change::NotFound => Outcome::NotFound { revision: self.revision },
        }
    }

    fn put_at(&mut self, key: &[u8], value: &[u8], revision: u64) {
        self.journal_key(revision, key, Some(value));
        let (create_revision, version) = match self.keys.get(key) {
            Some(old) => (old.create_revision, old.version + 1),
            None => (revision, 1),
        };
        let stored = Stored { value: value.into(), create_revision, mod_revision: revision, version };
        self.keys.insert(key.into(), stored);
    }

    /// Whether a guard holds now. A missing key has version and modify revision 0.
    fn holds(&self, guard: &Guard) -> bool {
        let stored = self.keys.get(guard.key.as_slice());
        match &guard.check {
            Check::ValueEquals(value) => stored.is_some_and(|s| *s.value == **value),
            Check::Version(compare, number) => compare.holds(stored.map_or(0, |s| s.version), *number),
            Check::ModRevision(compare, number) => {
                compare.holds(stored.map_or(0, |s| s.mod_revision), *number)
            }
            Check::Exists => stored.is_some(),
            Check::Missing => stored.is_none(),
        }
    }

    /// Runs a branch's ops in order at `revision`: (whether anything changed, keys deleted,
    /// reads). No op can fail, so a branch is all-or-nothing by construction.
    fn run(&mut self, ops: &[Op], revision: u64) -> (bool, u64, Vec<Read>) {
        let mut changed = false;
        let mut deleted = 0;
        let mut reads = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    self.put_at(key, value, revision);
                    changed = true;
                }
                Op::Delete { key } => {
                    if self.keys.remove(key.as_slice()) {
                        self.journal_key(revision, key, None);
                        changed = true;
                        deleted += 1;
                    }
                }
                Op::Get { key } => reads.push(Read::Get(self.get(key))),
                Op::Range { prefix, limit } => reads.push(self.range(prefix, *limit)),
            }
        }
        (changed, deleted, reads)
    }
}

impl StateMachine for DvmState {
    /// Decodes and applies one committed command. A payload that is not a valid command (a raw
    /// broadcast) yields `Outcome::BadCommand` and changes nothing but the history chain, not
    /// even the exactly-once table.
    fn apply(&mut self, seq: Seq, id: MsgId, payload: &[u8]) -> Vec<u8> {
        self.history.apply(seq, id, payload);
        match Command::decode(payload) {
            Ok(command) => self.execute_at(seq, id.origin, &command),
            Err(e) => Outcome::BadCommand { reason: format!("bad command: {e}") }.encode(),
        }
    }

    /// O(registry): the keys' and sessions' parts are kept as they change.
    fn digest(&self) -> u64 {
        let mut head = [0u8; 64];
        for (i, part) in [
            self.revision,
            self.sessions.clients_max as u64,
            self.sessions.clock,
            self.history.count,
            self.history.chain,
            self.keys.len() as u64,
            self.keys.digest,
            self.sessions.digest,
        ]
        .iter()
        .enumerate()
        {
            head[i * 8..i * 8 + 8].copy_from_slice(&part.to_be_bytes());
        }
        fnv1a(super::snapshot::small_parts_hash(self), &head)
    }

    fn freeze(&self) -> Frozen {
        Arc::new(self.frozen_copy())
    }

    fn thaw(&mut self, frozen: &Frozen) -> Result<(), DecodeError> {
        let Some(state) = frozen.as_any().downcast_ref::<DvmState>() else {
            return Err(DecodeError::Invalid { field: "snapshot", reason: "not a DVM state".into() });
        };
        let journal = self.journal.take();
        *self = state.frozen_copy();
        // The journal is node-local: it survives the restore, which it records as a reset.
        self.journal = journal.map(|mut changes| {
            changes.push(StateChange::Reset { revision: self.revision });
            changes
        });
        Ok(())
    }

    fn builder(&self) -> Box<dyn super::Builder> {
        Box::new(super::DvmBuilder::new())
    }

    fn as_dvm_mut(&mut self) -> Option<&mut DvmState> {
        Some(self)
    }

    fn universe(&self) -> Option<Universe> {
        // Only `Action::Universe` writes the key, always in the text form.
        self.keys.get(UNIVERSE_KEY.as_bytes()).and_then(|stored| Universe::from_text(&stored.value).ok())
    }
}

#[cfg(test)]
pub(crate) mod tests;
