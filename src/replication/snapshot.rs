//! The canonical encoding of a whole `DvmState`, written and read in pieces: checkpoints are
//! encoded by the storage thread from a frozen state, state transfer sends the same pieces as
//! chunks, and a joiner decodes them chunk by chunk into a new state (docs/PROTOCOL.md §5.3, §7).
//!
//! Big-endian: `magic "HDVM" | format version u16 (=4) | revision u64 | clients_max u64 |
//! session clock u64 | history count u64 | history chain u64 | key count u32 | keys | members |
//! plug-ins | sessions | open proposals` (seq, plug-in, view, voters, yes votes); every section
//! after the keys is a u32 count and its elements, every section in ascending order. Pieces end
//! on record boundaries, and resuming an encoding from a `Cursor` (section, last key or client)
//! writes the same bytes from any frozen copy of the same state, so a transfer can continue at
//! another donor. Integrity is the container's business: checkpoint files carry a CRC-32 and a
//! transfer ends by comparing digests.
//!
//! Decoding trusts nothing: every invariant (ascending unique keys, revisions not above the
//! global one, plug-ins only on real member ids, session bounds, yes votes only from voters) is
//! checked and a violation is a `DecodeError` naming the field. The state is built aside and
//! only handed out whole.

use std::any::Any;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use super::agreement::{Proposal, PROPOSALS_OPEN_MAX};
use super::command::parse::{bytes, text};
use super::command::{MemberStatus, Role};
use super::encoding::{put_bytes, put_count, put_str, put_u16, put_u64, put_u8, Sink};
use super::kv::{DvmState, Key, Stored};
use super::outcome::{entry, put_entry};
use super::registry::MemberRecord;
use super::session::{ClientRecord, Sessions, SESSION_OUTCOME_BYTES_MAX};
use super::{Builder, Cursor, DigestLog, Frozen, Snapshot};
use crate::error::DecodeError;
use crate::ids::NodeId;
use crate::wire::bytes::{invalid, Reader};

/// Opens every DVM snapshot, so another file or state machine's bytes are refused early.
const MAGIC: &[u8; 4] = b"HDVM";
/// The snapshot format this member writes and reads.
const FORMAT_VERSION: u16 = 4;
/// Magic, version, five u64s and the key count.
const HEAD_BYTES: usize = 4 + 2 + 5 * 8 + 4;
/// The largest record a builder waits for; a longer length prefix is damage.
const RECORD_BYTES_MAX: usize = SESSION_OUTCOME_BYTES_MAX + (1 << 20);

/// The sections, in encoding order (the `Cursor`'s stage).
const HEAD: u8 = 0;
const KEYS: u8 = 1;
const REGISTRY: u8 = 2;
const SESSIONS: u8 = 3;
const PROPOSALS: u8 = 4;
const DONE: u8 = 5;

/// Counts bytes instead of keeping them.
struct CountSink(u64);

impl Sink for CountSink {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len() as u64;
    }
}

impl Snapshot for DvmState {
    fn state_digest(&self) -> u64 {
        super::StateMachine::digest(self)
    }

    fn applied_count(&self) -> u64 {
        self.history.count
    }

    fn encoded_bytes(&self) -> u64 {
        let mut rest = CountSink(0);
        put_registry(&mut rest, self);
        put_proposals(&mut rest, self);
        let sessions = 4 + 28 * self.sessions.clients.len() as u64 + self.sessions.outcome_bytes as u64;
        HEAD_BYTES as u64 + self.keys.encoded_bytes + sessions + rest.0
    }

    fn encode_piece(&self, cursor: &mut Cursor, out: &mut Vec<u8>, bytes_max: usize) -> bool {
        let full = |out: &Vec<u8>| out.len() >= bytes_max;
        while !full(out) {
            match cursor.stage {
                HEAD => {
                    put_head(out, self);
                    cursor.stage = KEYS;
                }
                KEYS => {
                    let from = cursor.after.take();
                    let range = match &from {
                        Some(key) => {
                            self.keys.map.range::<_, [u8]>((Bound::Excluded(&**key), Bound::Unbounded))
                        }
                        None => self.keys.map.range::<_, [u8]>(..),
                    };
                    for (key, stored) in range {
                        put_entry(out, &stored.entry(key));
                        if full(out) {
                            cursor.after = Some(Arc::clone(key));
                            return true;
                        }
                    }
                    cursor.stage = REGISTRY;
                }
                REGISTRY => {
                    put_registry(out, self);
                    cursor.stage = SESSIONS;
                }
                SESSIONS => {
                    let from = cursor.after.take().and_then(|id| <[u8; 8]>::try_from(&*id).ok());
                    let range = match from {
                        Some(id) => self
                            .sessions
                            .clients
                            .range((Bound::Excluded(u64::from_be_bytes(id)), Bound::Unbounded)),
                        None => {
                            put_count(out, self.sessions.clients.len());
                            self.sessions.clients.range::<_, u64>(..)
                        }
                    };
                    for (client, record) in range {
                        put_u64(out, *client);
                        put_u64(out, record.request);
                        put_u64(out, record.used);
                        put_bytes(out, &record.outcome);
                        if full(out) {
                            cursor.after = Some(client.to_be_bytes().as_slice().into());
                            return true;
                        }
                    }
                    cursor.stage = PROPOSALS;
                }
                PROPOSALS => {
                    put_proposals(out, self);
                    cursor.stage = DONE;
                }
                _ => return false,
            }
        }
        cursor.stage < DONE
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn put_head(out: &mut impl Sink, state: &DvmState) {
    out.put(MAGIC);
    put_u16(out, FORMAT_VERSION);
    put_u64(out, state.revision);
    put_u64(out, state.sessions.clients_max as u64);
    put_u64(out, state.sessions.clock);
    put_u64(out, state.history.count);
    put_u64(out, state.history.chain);
    put_count(out, state.keys.len());
}

fn put_registry(out: &mut impl Sink, state: &DvmState) {
    put_count(out, state.registry.members.len());
    for (id, record) in &state.registry.members {
        put_member(out, *id, record);
    }
    put_count(out, state.registry.plugins.len());
    for (name, members) in &state.registry.plugins {
        put_str(out, name);
        put_count(out, members.len());
        for member in members {
            put_u16(out, member.0);
        }
    }
}

fn put_member(out: &mut impl Sink, id: NodeId, record: &MemberRecord) {
    put_u16(out, id.0);
    put_str(out, &record.host);
    put_u8(out, record.role.tag());
    put_u8(out, record.status.tag());
    put_u64(out, record.joined_at);
    put_count(out, record.attributes.len());
    for (name, value) in &record.attributes {
        put_str(out, name);
        put_str(out, value);
    }
}

fn put_proposals(out: &mut impl Sink, state: &DvmState) {
    put_count(out, state.proposals.len());
    for (seq, proposal) in &state.proposals {
        put_u64(out, *seq);
        put_str(out, &proposal.name);
        put_u64(out, proposal.view);
        for set in [&proposal.voters, &proposal.yes] {
            put_count(out, set.len());
            for member in set {
                put_u16(out, member.0);
            }
        }
    }
}

/// The small parts of the state's digest (registry and open proposals), hashed whole: they are
/// bounded by the member ids and `PROPOSALS_OPEN_MAX`, never by the key-value state.
pub(super) fn small_parts_hash(state: &DvmState) -> u64 {
    let mut sink = super::encoding::FnvSink::new();
    put_registry(&mut sink, state);
    put_proposals(&mut sink, state);
    sink.hash
}

/// Where a builder is: the section and how many of its elements are still to come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Head,
    Keys(u32),
    Members(Option<u32>),
    Plugins(Option<u32>),
    Sessions(Option<u32>),
    Proposals(Option<u32>),
    Done,
}

/// Decodes a DVM snapshot piece by piece into a new state (`Builder`).
pub struct DvmBuilder {
    state: DvmState,
    section: Section,
    /// Bytes of a record not yet complete.
    pending: Vec<u8>,
}

impl DvmBuilder {
    /// A builder that has seen nothing.
    pub fn new() -> DvmBuilder {
        DvmBuilder { state: DvmState::default(), section: Section::Head, pending: Vec::new() }
    }

    /// Decodes one element of the current section from `r`, changing nothing if the bytes end
    /// first (`Truncated`: wait for the next piece).
    fn step(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        let state = &mut self.state;
        self.section = match self.section {
            Section::Head => {
                if r.take(4, "snapshot magic")? != MAGIC {
                    return Err(invalid("snapshot magic", "not a DVM snapshot"));
                }
                let version = r.u16("snapshot version")?;
                if version != FORMAT_VERSION {
                    return Err(invalid(
                        "snapshot version",
                        format!("{version}, this member reads {FORMAT_VERSION}"),
                    ));
                }
                let revision = r.u64("revision")?;
                let clients_max = usize::try_from(r.u64("clients max")?)
                    .ok()
                    .filter(|&max| max >= 1)
                    .ok_or_else(|| invalid("clients max", "must be at least 1 and fit this machine"))?;
                let clock = r.u64("session clock")?;
                let history = DigestLog { count: r.u64("history count")?, chain: r.u64("history chain")? };
                let keys = r.u32("keys")?;
                state.revision = revision;
                state.sessions = Sessions::new(clients_max);
                state.sessions.clock = clock;
                state.history = history;
                Section::Keys(keys)
            }
            Section::Keys(0) => Section::Members(None),
            Section::Keys(left) => {
                let e = entry(r)?;
                let sane = 1 <= e.create_revision
                    && e.create_revision <= e.mod_revision
                    && e.mod_revision <= state.revision;
                if e.key.is_empty() || e.version == 0 || !sane {
                    return Err(invalid("entry", "empty key, zero version or revisions out of order"));
                }
                ascending(state.keys.map.get_max().map(|(k, _)| &**k), e.key.as_slice(), "entry key")?;
                let stored = Stored {
                    value: e.value.into(),
                    create_revision: e.create_revision,
                    mod_revision: e.mod_revision,
                    version: e.version,
                };
                let key: Key = e.key.into();
                state.keys.insert(key, stored);
                Section::Keys(left - 1)
            }
            Section::Members(None) => Section::Members(Some(r.u32("members")?)),
            Section::Members(Some(0)) => Section::Plugins(None),
            Section::Members(Some(left)) => {
                let (id, record) = member(r, state.revision)?;
                ascending(state.registry.members.get_max().map(|(k, _)| k), &id, "member id")?;
                state.registry.members.insert(id, record);
                Section::Members(Some(left - 1))
            }
            Section::Plugins(None) => Section::Plugins(Some(r.u32("plugins")?)),
            Section::Plugins(Some(0)) => Section::Sessions(None),
            Section::Plugins(Some(left)) => {
                let name = text(r, "plugin name")?;
                let mut members = BTreeSet::new();
                for _ in 0..r.count(2, "plugin members")? {
                    let member = NodeId(r.u16("plugin member")?);
                    ascending(members.iter().next_back(), &member, "plugin member")?;
                    // An agreed load places a plug-in on every voter, registered or not (§7.1).
                    if member.0 == 0 {
                        return Err(invalid("plugin member", "0 is never a member"));
                    }
                    members.insert(member);
                }
                if members.is_empty() {
                    return Err(invalid("plugin members", "a plug-in loaded nowhere is not stored"));
                }
                ascending(state.registry.plugins.get_max().map(|(k, _)| k), &name, "plugin name")?;
                state.registry.plugins.insert(name, members);
                Section::Plugins(Some(left - 1))
            }
            Section::Sessions(None) => {
                let count = r.u32("sessions")?;
                if count as usize > state.sessions.clients_max {
                    return Err(invalid(
                        "sessions",
                        format!("{count} clients, at most {}", state.sessions.clients_max),
                    ));
                }
                Section::Sessions(Some(count))
            }
            Section::Sessions(Some(0)) => Section::Proposals(None),
            Section::Sessions(Some(left)) => {
                let client = r.u64("client id")?;
                let request = r.u64("request")?;
                let used = r.u64("session used")?;
                let outcome = bytes(r, "session outcome")?;
                let sessions = &mut state.sessions;
                if client == 0 {
                    return Err(invalid("client id", "client 0 is never remembered"));
                }
                ascending(sessions.clients.get_max().map(|(k, _)| k), &client, "client id")?;
                if used == 0 || used > sessions.clock || sessions.by_use.contains_key(&used) {
                    return Err(invalid("session used", "zero, after the clock or repeated"));
                }
                sessions.set(client, ClientRecord { request, outcome: outcome.into(), used });
                if sessions.outcome_bytes > SESSION_OUTCOME_BYTES_MAX {
                    return Err(invalid("session outcome", "remembered outcomes exceed their byte bound"));
                }
                Section::Sessions(Some(left - 1))
            }
            Section::Proposals(None) => {
                let count = r.u32("proposals")?;
                if count as usize > PROPOSALS_OPEN_MAX {
                    return Err(invalid("proposals", format!("{count} open, at most {PROPOSALS_OPEN_MAX}")));
                }
                Section::Proposals(Some(count))
            }
            Section::Proposals(Some(0)) => Section::Done,
            Section::Proposals(Some(left)) => {
                let (seq, p) = proposal(r)?;
                ascending(state.proposals.get_max().map(|(k, _)| k), &seq, "proposal seq")?;
                state.proposals.insert(seq, p);
                Section::Proposals(Some(left - 1))
            }
            Section::Done => return Err(DecodeError::TrailingBytes { count: r.remaining() }),
        };
        Ok(())
    }
}

impl Default for DvmBuilder {
    fn default() -> DvmBuilder {
        DvmBuilder::new()
    }
}

impl Builder for DvmBuilder {
    fn push(&mut self, piece: &[u8]) -> Result<(), DecodeError> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(piece);
        let result = self.decode_pending(&pending);
        if let Ok(used) = result {
            pending.drain(..used);
            self.pending = pending;
        }
        result.map(|_| ())
    }

    fn finish(self: Box<Self>) -> Result<Frozen, DecodeError> {
        if self.section != Section::Done {
            return Err(DecodeError::Truncated { field: "snapshot body" });
        }
        if !self.pending.is_empty() {
            return Err(DecodeError::TrailingBytes { count: self.pending.len() });
        }
        Ok(Arc::new(self.state))
    }
}

impl DvmBuilder {
    /// Decodes every whole element at the start of `pending`; returns the bytes used.
    fn decode_pending(&mut self, pending: &[u8]) -> Result<usize, DecodeError> {
        let mut used = 0;
        loop {
            // Empty sections end without bytes; everything else needs some.
            let empty_end = matches!(
                self.section,
                Section::Keys(0)
                    | Section::Members(Some(0))
                    | Section::Plugins(Some(0))
                    | Section::Sessions(Some(0))
                    | Section::Proposals(Some(0))
            );
            if used == pending.len() && !empty_end {
                break;
            }
            let mut r = Reader::new(&pending[used..]);
            // Parse into a copy of the section's position: a record cut by the piece's end is
            // parsed again whole from the next piece.
            let before = self.section;
            match self.step(&mut r) {
                Ok(()) => used = pending.len() - r.remaining(),
                Err(DecodeError::Truncated { field }) => {
                    self.section = before;
                    if pending.len() - used > RECORD_BYTES_MAX {
                        return Err(invalid(field, "a record longer than any the state holds"));
                    }
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(used)
    }
}

fn member(r: &mut Reader<'_>, revision: u64) -> Result<(NodeId, MemberRecord), DecodeError> {
    let id = NodeId(r.u16("member id")?);
    if id.0 == 0 {
        return Err(invalid("member id", "0 is never a member"));
    }
    let host = text(r, "host")?;
    let role = Role::from_tag(r.u8("role")?, "role")?;
    let status = MemberStatus::from_tag(r.u8("member status")?, "member status")?;
    let joined_at = r.u64("joined at")?;
    if joined_at == 0 || joined_at > revision {
        return Err(invalid("joined at", format!("{joined_at} outside 1..={revision}")));
    }
    let mut attributes = std::collections::BTreeMap::new();
    for _ in 0..r.count(8, "attributes")? {
        let name = text(r, "attribute name")?;
        ascending(attributes.keys().next_back(), &name, "attribute name")?;
        attributes.insert(name, text(r, "attribute value")?);
    }
    Ok((id, MemberRecord { host, role, attributes, status, joined_at }))
}

fn proposal(r: &mut Reader<'_>) -> Result<(u64, Proposal), DecodeError> {
    let seq = r.u64("proposal seq")?;
    let name = text(r, "proposal plugin")?;
    let view = r.u64("proposal view")?;
    let mut sets = [BTreeSet::new(), BTreeSet::new()];
    for (set, field) in sets.iter_mut().zip(["proposal voters", "proposal yes votes"]) {
        for _ in 0..r.count(2, field)? {
            let member = NodeId(r.u16(field)?);
            ascending(set.iter().next_back(), &member, field)?;
            set.insert(member);
        }
    }
    let [voters, yes] = sets;
    if voters.is_empty() || !yes.is_subset(&voters) || yes == voters {
        return Err(invalid("proposal yes votes", "no voters, a vote from a non-voter, or decided"));
    }
    Ok((seq, Proposal { name, view, voters, yes }))
}

/// Refuses `next` unless it is above `last`: one order, no duplicates, one canonical encoding.
fn ascending<T: Ord + ?Sized>(last: Option<&T>, next: &T, field: &'static str) -> Result<(), DecodeError> {
    match last {
        Some(last) if last >= next => Err(invalid(field, "not in ascending order")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::kv::tests::{msg, random_command};
    use crate::replication::{decode_all, encode_all, StateMachine};
    use crate::rng::Rng;

    /// A state after `count` random commands.
    fn busy_state(seed: u64, count: usize) -> DvmState {
        let mut rng = Rng::new(seed);
        let mut state = DvmState::default();
        for seq in 0..count as u64 {
            state.apply(seq + 1, msg(seq), &random_command(&mut rng).encode());
        }
        state
    }

    fn decode(bytes: &[u8]) -> Result<DvmState, DecodeError> {
        let frozen = decode_all(Box::new(DvmBuilder::new()), bytes)?;
        Ok(frozen.as_any().downcast_ref::<DvmState>().expect("a DVM state").clone())
    }

    fn field_of(result: Result<DvmState, DecodeError>) -> &'static str {
        match result {
            Err(DecodeError::Invalid { field, .. }) | Err(DecodeError::Truncated { field }) => field,
            other => panic!("not refused by a field: {other:?}"),
        }
    }

    #[test]
    fn a_decoded_snapshot_has_the_same_digest_size_and_future() {
        let mut a = busy_state(1, 1500);
        assert!(!a.keys.is_empty() && !a.registry.members.is_empty() && !a.sessions.clients.is_empty());
        let bytes = encode_all(&a);
        assert_eq!(bytes.len() as u64, a.encoded_bytes(), "the size is kept exactly");
        let mut b = decode(&bytes).expect("a fresh snapshot decodes");
        assert_eq!(b, a, "rebuilt from its records, the incremental digests agree too");
        assert_eq!(b.digest(), a.digest());
        let mut rng = Rng::new(3);
        for seq in 0..500 {
            let payload = random_command(&mut rng).encode();
            assert_eq!(a.apply(seq, msg(seq), &payload), b.apply(seq, msg(seq), &payload));
            assert_eq!(a.digest(), b.digest(), "after further command {seq}");
        }
        let empty = DvmState::default();
        assert_eq!(decode(&encode_all(&empty)), Ok(empty));
    }

    #[test]
    fn pieces_of_any_size_make_the_same_bytes_and_decode_fed_in_any_cut() {
        let state = busy_state(8, 800);
        let whole = encode_all(&state);
        for bytes_max in [1, 100, 4096, 1 << 20] {
            let mut cursor = Cursor::default();
            let mut pieces = Vec::new();
            loop {
                let mut piece = Vec::new();
                let more = state.encode_piece(&mut cursor, &mut piece, bytes_max);
                pieces.push(piece);
                if !more {
                    break;
                }
            }
            assert_eq!(pieces.concat(), whole, "pieces of {bytes_max} bytes");
            // Resumed from each cursor on a copy of the state, the rest is the same too.
            let mut builder = Box::new(DvmBuilder::new());
            for piece in &pieces {
                builder.push(piece).expect("decodes");
            }
            let built = builder.finish().expect("complete");
            assert_eq!(built.state_digest(), state.digest());
        }
        for cut in [1, 7, 999] {
            let mut builder = Box::new(DvmBuilder::new());
            for piece in whole.chunks(cut) {
                builder.push(piece).expect("decodes");
            }
            assert_eq!(builder.finish().expect("complete").state_digest(), state.digest());
        }
    }

    #[test]
    fn truncated_extended_and_corrupted_snapshots_are_refused() {
        let good = encode_all(&busy_state(4, 200));
        for len in 0..good.len() {
            assert!(decode(&good[..len]).is_err(), "cut at {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert_eq!(field_of(decode(b"NOPE")), "snapshot magic");
    }

    #[test]
    fn broken_invariants_are_refused_naming_the_field() {
        let mut state = busy_state(6, 300);
        state.registry.plugins.insert("ghost".into(), [NodeId(0)].into());
        assert_eq!(field_of(decode(&encode_all(&state))), "plugin member");

        let mut state = busy_state(6, 300);
        let voters: BTreeSet<NodeId> = [NodeId(1), NodeId(2)].into();
        let yes = [NodeId(3)].into();
        state.proposals.insert(5, Proposal { name: "p".into(), view: 1, voters, yes });
        assert_eq!(field_of(decode(&encode_all(&state))), "proposal yes votes");

        let mut state = busy_state(6, 300);
        state.revision = 0;
        assert_eq!(field_of(decode(&encode_all(&state))), "entry");

        let mut state = busy_state(6, 300);
        state.sessions.clients_max = 1;
        assert_eq!(field_of(decode(&encode_all(&state))), "sessions");

        let mut bytes = encode_all(&DvmState::default());
        bytes[14..22].fill(0); // clients_max
        assert_eq!(field_of(decode(&bytes)), "clients max");
    }

    #[test]
    fn random_bytes_never_panic_the_builder() {
        let mut rng = Rng::new(0xbad);
        let good = encode_all(&busy_state(7, 100));
        for case in 0..3000 {
            let bytes: Vec<u8> = match case % 3 {
                0 => (0..rng.below(200)).map(|_| rng.below(256) as u8).collect(),
                1 => {
                    let mut bytes = good.clone();
                    for _ in 0..rng.range(1, 4) {
                        let at = rng.below(bytes.len() as u64) as usize;
                        bytes[at] = rng.below(256) as u8;
                    }
                    bytes
                }
                _ => good[..rng.below(good.len() as u64) as usize].to_vec(),
            };
            // Whatever decodes must be a state that encodes back to the same bytes.
            if let Ok(state) = decode(&bytes) {
                assert_eq!(encode_all(&state), bytes);
            }
        }
    }
}
