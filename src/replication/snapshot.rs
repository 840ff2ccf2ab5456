//! The canonical encoding of a whole `DvmState`: its snapshot (checkpoints, state transfer) and
//! its digest (guarantee 6: equal histories give equal digests at every member).
//!
//! Snapshot, big-endian: `magic "HDVM" | format version u16 (=1) | body length u64 | body |
//! crc32 u32` (crc32fast over everything before it). Body: `revision u64 | clients_max u64 |
//! session clock u64 | history count u64 | history chain u64 | keys | members | plug-ins |
//! sessions | open proposals` (seq, plug-in, view, voters, yes votes), each a u32 count and its elements in ascending order. The digest is FNV-1a over the body, so it covers the revision and the
//! exactly-once table too, and the order is fixed by the `BTreeMap`s, not by history.
//!
//! Restore trusts nothing: the length, the checksum and then every invariant (ascending unique
//! keys, revisions not above the global one, plug-ins only on real member ids, session bounds,
//! yes votes only from voters)
//! are checked and a violation is a `DecodeError` naming the field; the state is replaced only on
//! success.

use std::collections::{BTreeMap, BTreeSet};

use super::agreement::{Proposal, Proposals, PROPOSALS_OPEN_MAX};
use super::command::parse::{bytes, text};
use super::command::{MemberStatus, Role};
use super::encoding::{put_bytes, put_count, put_str, put_u16, put_u32, put_u64, put_u8, FnvSink, Sink};
use super::kv::{DvmState, Stored};
use super::outcome::{entry, put_entry, ENTRY_BYTES_MIN};
use super::registry::{MemberRecord, Registry};
use super::session::{ClientRecord, Sessions, SESSION_OUTCOME_BYTES_MAX};
use super::DigestLog;
use crate::error::DecodeError;
use crate::ids::NodeId;
use crate::wire::bytes::{invalid, Reader};

/// Opens every DVM snapshot, so another file or state machine's bytes are refused early.
const MAGIC: &[u8; 4] = b"HDVM";
/// The snapshot format this member writes and reads.
const FORMAT_VERSION: u16 = 3;
/// Magic, format version and body length.
const HEADER_BYTES: usize = 4 + 2 + 8;
/// The trailing CRC-32.
const CHECKSUM_BYTES: usize = 4;

/// The state's snapshot.
pub(super) fn encode(state: &DvmState) -> Vec<u8> {
    let mut body = Vec::new();
    put_body(&mut body, state);
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len() + CHECKSUM_BYTES);
    out.extend_from_slice(MAGIC);
    put_u16(&mut out, FORMAT_VERSION);
    put_u64(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    let checksum = crc32fast::hash(&out);
    put_u32(&mut out, checksum);
    out
}

/// FNV-1a over the canonical body, without building it.
pub(super) fn digest(state: &DvmState) -> u64 {
    let mut sink = FnvSink::new();
    put_body(&mut sink, state);
    sink.hash
}

/// A state from a snapshot written by `encode`.
pub(super) fn decode(snapshot: &[u8]) -> Result<DvmState, DecodeError> {
    let mut r = Reader::new(snapshot);
    if r.take(4, "snapshot magic")? != MAGIC {
        return Err(invalid("snapshot magic", "not a DVM snapshot"));
    }
    let version = r.u16("snapshot version")?;
    if version != FORMAT_VERSION {
        return Err(invalid("snapshot version", format!("{version}, this member reads {FORMAT_VERSION}")));
    }
    let body_bytes = r.u64("snapshot length")?;
    let expected = (r.remaining() as u64).checked_sub(CHECKSUM_BYTES as u64);
    match expected {
        Some(len) if len == body_bytes => {}
        Some(len) if len > body_bytes => {
            return Err(DecodeError::TrailingBytes { count: (len - body_bytes) as usize })
        }
        _ => return Err(DecodeError::Truncated { field: "snapshot body" }),
    }
    let covered = snapshot.len() - CHECKSUM_BYTES;
    let body = r.take(body_bytes as usize, "snapshot body")?;
    if r.u32("snapshot checksum")? != crc32fast::hash(&snapshot[..covered]) {
        return Err(DecodeError::Checksum);
    }
    let mut r = Reader::new(body);
    let state = read_body(&mut r)?;
    if r.remaining() > 0 {
        return Err(DecodeError::TrailingBytes { count: r.remaining() });
    }
    Ok(state)
}

fn put_body(out: &mut impl Sink, state: &DvmState) {
    put_u64(out, state.revision);
    put_u64(out, state.sessions.clients_max as u64);
    put_u64(out, state.sessions.clock);
    put_u64(out, state.history.count);
    put_u64(out, state.history.chain);
    put_count(out, state.keys.len());
    for (key, stored) in &state.keys {
        put_entry(out, &stored.entry(key));
    }
    put_count(out, state.registry.members.len());
    for (id, record) in &state.registry.members {
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
    put_count(out, state.registry.plugins.len());
    for (name, members) in &state.registry.plugins {
        put_str(out, name);
        put_count(out, members.len());
        for member in members {
            put_u16(out, member.0);
        }
    }
    put_count(out, state.sessions.clients.len());
    for (client, record) in &state.sessions.clients {
        put_u64(out, *client);
        put_u64(out, record.request);
        put_u64(out, record.used);
        put_bytes(out, &record.outcome);
    }
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

fn read_body(r: &mut Reader<'_>) -> Result<DvmState, DecodeError> {
    let revision = r.u64("revision")?;
    let clients_max = usize::try_from(r.u64("clients max")?)
        .ok()
        .filter(|&max| max >= 1)
        .ok_or_else(|| invalid("clients max", "must be at least 1 and fit this machine"))?;
    let clock = r.u64("session clock")?;
    let history = DigestLog { count: r.u64("history count")?, chain: r.u64("history chain")? };

    let mut keys = BTreeMap::new();
    for _ in 0..r.count(ENTRY_BYTES_MIN, "keys")? {
        let e = entry(r)?;
        let sane =
            1 <= e.create_revision && e.create_revision <= e.mod_revision && e.mod_revision <= revision;
        if e.key.is_empty() || e.version == 0 || !sane {
            return Err(invalid("entry", "empty key, zero version or revisions out of order"));
        }
        ascending(keys.keys().next_back(), &e.key, "entry key")?;
        let stored = Stored {
            value: e.value,
            create_revision: e.create_revision,
            mod_revision: e.mod_revision,
            version: e.version,
        };
        keys.insert(e.key, stored);
    }

    let mut registry = Registry::default();
    // A member takes at least: id, two tags, joined-at and two counts.
    for _ in 0..r.count(2 + 4 + 2 + 8 + 4, "members")? {
        let id = NodeId(r.u16("member id")?);
        if id.0 == 0 {
            return Err(invalid("member id", "0 is never a member"));
        }
        ascending(registry.members.keys().next_back(), &id, "member id")?;
        let host = text(r, "host")?;
        let role = Role::from_tag(r.u8("role")?, "role")?;
        let status = MemberStatus::from_tag(r.u8("member status")?, "member status")?;
        let joined_at = r.u64("joined at")?;
        if joined_at == 0 || joined_at > revision {
            return Err(invalid("joined at", format!("{joined_at} outside 1..={revision}")));
        }
        let mut attributes = BTreeMap::new();
        for _ in 0..r.count(8, "attributes")? {
            let name = text(r, "attribute name")?;
            ascending(attributes.keys().next_back(), &name, "attribute name")?;
            attributes.insert(name, text(r, "attribute value")?);
        }
        registry.members.insert(id, MemberRecord { host, role, attributes, status, joined_at });
    }

    for _ in 0..r.count(4 + 4, "plugins")? {
        let name = text(r, "plugin name")?;
        ascending(registry.plugins.keys().next_back(), &name, "plugin name")?;
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
        registry.plugins.insert(name, members);
    }

    let mut sessions = Sessions::new(clients_max);
    sessions.clock = clock;
    let count = r.count(8 + 8 + 8 + 4, "sessions")?;
    if count > clients_max {
        return Err(invalid("sessions", format!("{count} clients, at most {clients_max}")));
    }
    let mut uses = BTreeSet::new();
    for _ in 0..count {
        let client = r.u64("client id")?;
        if client == 0 {
            return Err(invalid("client id", "client 0 is never remembered"));
        }
        ascending(sessions.clients.keys().next_back(), &client, "client id")?;
        let request = r.u64("request")?;
        let used = r.u64("session used")?;
        if used == 0 || used > clock || !uses.insert(used) {
            return Err(invalid("session used", "zero, after the clock or repeated"));
        }
        let outcome = bytes(r, "session outcome")?;
        sessions.clients.insert(client, ClientRecord { request, outcome, used });
    }
    sessions.reindex();
    if sessions.outcome_bytes > SESSION_OUTCOME_BYTES_MAX {
        return Err(invalid("session outcome", "remembered outcomes exceed their byte bound"));
    }
    let mut proposals = Proposals::new();
    let count = r.count(8 + 4 + 8 + 4 + 4, "proposals")?;
    if count > PROPOSALS_OPEN_MAX {
        return Err(invalid("proposals", format!("{count} open, at most {PROPOSALS_OPEN_MAX}")));
    }
    for _ in 0..count {
        let seq = r.u64("proposal seq")?;
        ascending(proposals.keys().next_back(), &seq, "proposal seq")?;
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
        proposals.insert(seq, Proposal { name, view, voters, yes });
    }
    Ok(DvmState { revision, keys, registry, sessions, history, proposals, journal: None })
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
    use crate::replication::StateMachine;
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

    /// A snapshot with a valid header and checksum around `body`.
    fn seal(body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        put_u16(&mut out, FORMAT_VERSION);
        put_u64(&mut out, body.len() as u64);
        out.extend_from_slice(body);
        let checksum = crc32fast::hash(&out);
        put_u32(&mut out, checksum);
        out
    }

    fn field_of(result: Result<DvmState, DecodeError>) -> &'static str {
        match result {
            Err(DecodeError::Invalid { field, .. }) | Err(DecodeError::Truncated { field }) => field,
            other => panic!("not refused by a field: {other:?}"),
        }
    }

    #[test]
    fn a_restored_snapshot_has_the_same_digest_and_the_same_future() {
        let mut a = busy_state(1, 1500);
        assert!(!a.keys.is_empty() && !a.registry.members.is_empty() && !a.sessions.clients.is_empty());
        let mut b = busy_state(2, 300);
        b.restore(&a.snapshot()).expect("a fresh snapshot restores");
        assert_eq!(b, a);
        assert_eq!(b.digest(), a.digest());
        let mut rng = Rng::new(3);
        for seq in 0..500 {
            let payload = random_command(&mut rng).encode();
            assert_eq!(a.apply(seq, msg(seq), &payload), b.apply(seq, msg(seq), &payload));
            assert_eq!(a.digest(), b.digest(), "after further command {seq}");
        }
        let empty = DvmState::default();
        assert_eq!(decode(&encode(&empty)), Ok(empty));
    }

    #[test]
    fn truncated_extended_and_corrupted_snapshots_are_refused_and_change_nothing() {
        let good = encode(&busy_state(4, 200));
        let mut state = busy_state(5, 50);
        let before = state.clone();
        for len in 0..good.len() {
            assert!(state.restore(&good[..len]).is_err(), "cut at {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(state.restore(&longer), Err(DecodeError::TrailingBytes { count: 1 }));
        // CRC-32 catches every single-byte error; a damaged header fails on its own field.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x5a;
            assert!(state.restore(&bad).is_err(), "byte {at} corrupted");
        }
        let mut bad = good.clone();
        bad[HEADER_BYTES + 3] ^= 1;
        assert_eq!(state.restore(&bad), Err(DecodeError::Checksum));
        assert_eq!(state, before, "a refused snapshot left the state as it was");
        assert_eq!(field_of(decode(b"NOPE")), "snapshot magic");
    }

    #[test]
    fn broken_invariants_under_a_valid_checksum_are_refused_naming_the_field() {
        let mut state = busy_state(6, 300);
        state.registry.plugins.insert("ghost".into(), [NodeId(0)].into());
        assert_eq!(field_of(decode(&encode(&state))), "plugin member");

        let mut state = busy_state(6, 300);
        let voters: BTreeSet<NodeId> = [NodeId(1), NodeId(2)].into();
        let yes = [NodeId(3)].into();
        state.proposals.insert(5, Proposal { name: "p".into(), view: 1, voters, yes });
        assert_eq!(field_of(decode(&encode(&state))), "proposal yes votes");

        let mut state = busy_state(6, 300);
        state.revision = 0;
        assert_eq!(field_of(decode(&encode(&state))), "entry");

        let mut state = busy_state(6, 300);
        state.sessions.clients_max = 1;
        assert_eq!(field_of(decode(&encode(&state))), "sessions");

        let mut body = Vec::new();
        put_body(&mut body, &DvmState::default());
        body[8..16].fill(0); // clients_max
        assert_eq!(field_of(decode(&seal(&body))), "clients max");
    }

    #[test]
    fn random_bytes_never_panic_the_restore() {
        let mut rng = Rng::new(0xbad);
        let good = encode(&busy_state(7, 100));
        let body = &good[HEADER_BYTES..good.len() - CHECKSUM_BYTES];
        for case in 0..3000 {
            let bytes: Vec<u8> = match case % 3 {
                0 => (0..rng.below(200)).map(|_| rng.below(256) as u8).collect(),
                // Behind a valid checksum, damaged bodies reach the field checks.
                1 => {
                    let mut body = body.to_vec();
                    for _ in 0..rng.range(1, 4) {
                        let at = rng.below(body.len() as u64) as usize;
                        body[at] = rng.below(256) as u8;
                    }
                    seal(&body)
                }
                _ => seal(&body[..rng.below(body.len() as u64) as usize]),
            };
            // Whatever decodes must be a state that encodes back to the same bytes.
            if let Ok(state) = decode(&bytes) {
                assert_eq!(encode(&state), bytes);
            }
        }
    }
}
