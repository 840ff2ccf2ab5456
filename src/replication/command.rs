//! The command language of the built-in DVM state machine and its byte encoding (docs/PROTOCOL.md §7).
//!
//! The ring orders opaque payloads; this module gives them meaning. A command is a client session
//! (for exactly-once retries, docs/PROTOCOL.md §8.2) and one action on the key-value namespace, the member
//! registry or the plug-in registry. Every member decodes the same bytes into the same command, and
//! a payload that does not decode or breaks a limit is refused identically everywhere, so the
//! decision is part of the deterministic history (guarantee 6).
//!
//! Encoding, all integers big-endian, every byte string and text u32-length-prefixed:
//! `version u8 (=1) | client_id u64 | request u64 | action tag u8 | action body`.
//! Decoding reads through the bounds-checked `wire::bytes::Reader` and names the failing field.

use std::collections::BTreeSet;

use super::agreement::VOTERS_MAX;
use super::encoding::{put_bool, put_bytes, put_count, put_str, put_u16, put_u32, put_u64, put_u8, Sink};
pub use super::universe::MemberChange;
use super::universe::{UNIVERSE_KEY, UNIVERSE_MEMBERS_MAX};
use crate::error::DecodeError;
use crate::ids::NodeId;
use crate::wire::bytes::{invalid, Reader};

pub(crate) mod parse;

/// The version byte that opens every command; another value is refused, not guessed at.
pub const COMMAND_VERSION: u8 = 1;
/// Longest key (and key prefix) a command may carry.
pub const KEY_BYTES_MAX: usize = 4096;
/// Longest value a command may carry; matches the ring's default payload maximum.
pub const VALUE_BYTES_MAX: usize = 1 << 20;
/// Longest host name, plug-in name, attribute name or attribute value.
pub const TEXT_BYTES_MAX: usize = 1024;
/// Most guards in one transaction.
pub const GUARDS_MAX: usize = 64;
/// Most operations in one branch of a transaction.
pub const OPS_MAX: usize = 64;
/// Most attributes of one member.
pub const ATTRIBUTES_MAX: usize = 64;
/// Most entries one range read returns; a limit of 0 or above this means this.
pub const RANGE_LIMIT_MAX: u32 = 10_000;

/// The client session of a command: who sent it and which of its requests it is.
///
/// Client id 0 means "no session": the command is applied every time it is committed and its
/// result is not remembered (for commands members issue about themselves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Session {
    /// The client, chosen unique by the client (docs/PROTOCOL.md §8.2); 0 for none.
    pub client_id: u64,
    /// Grows by one per new request of the client; a retry repeats the number.
    pub request: u64,
}

impl Session {
    /// Whether the state machine tracks this session for exactly-once.
    pub fn is_tracked(&self) -> bool {
        self.client_id != 0
    }
}

/// One command: a session and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Who sent it, for exactly-once.
    pub session: Session,
    /// What to do.
    pub action: Action,
}

/// The kind byte of each action, in an encoded command right after its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ActionKind {
    /// `Action::Put`.
    Put = 1,
    /// `Action::Delete`.
    Delete = 2,
    /// `Action::DeleteRange`.
    DeleteRange = 3,
    /// `Action::Txn`.
    Txn = 4,
    /// `Action::RegisterMember`.
    RegisterMember = 5,
    /// `Action::SetMemberStatus`.
    SetMemberStatus = 6,
    /// `Action::LoadPlugin`.
    LoadPlugin = 7,
    /// `Action::UnloadPlugin`.
    UnloadPlugin = 8,
    /// `Action::Propose`.
    Propose = 9,
    /// `Action::Vote`.
    Vote = 10,
    /// `Action::Universe`.
    Universe = 11,
}

impl ActionKind {
    /// Every kind, in byte order.
    pub const ALL: [ActionKind; 11] = [
        ActionKind::Put,
        ActionKind::Delete,
        ActionKind::DeleteRange,
        ActionKind::Txn,
        ActionKind::RegisterMember,
        ActionKind::SetMemberStatus,
        ActionKind::LoadPlugin,
        ActionKind::UnloadPlugin,
        ActionKind::Propose,
        ActionKind::Vote,
        ActionKind::Universe,
    ];

    /// The kind whose byte is `byte`, if any.
    pub fn from_byte(byte: u8) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|kind| *kind as u8 == byte)
    }
}

/// Where the kind byte sits in an encoded command: after the version (u8), the client id (u64)
/// and the request number (u64).
const KIND_OFFSET: usize = 1 + 8 + 8;

/// What a command does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Sets `key` to `value`, creating it if it does not exist.
    Put {
        /// The key, 1..=`KEY_BYTES_MAX` bytes.
        key: Vec<u8>,
        /// The value, at most `VALUE_BYTES_MAX` bytes.
        value: Vec<u8>,
    },
    /// Removes `key`; `NotFound` if it does not exist.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Removes every key that starts with `prefix` (all keys for an empty prefix).
    DeleteRange {
        /// The prefix.
        prefix: Vec<u8>,
    },
    /// Checks every guard; applies `then` if all hold, else `otherwise`, atomically.
    Txn {
        /// The compares, at most `GUARDS_MAX`.
        guards: Vec<Guard>,
        /// Applied when every guard holds, at most `OPS_MAX`.
        then: Vec<Op>,
        /// Applied when a guard fails, at most `OPS_MAX`.
        otherwise: Vec<Op>,
    },
    /// Adds a member to the registry, or replaces its record if it re-registers.
    RegisterMember {
        /// The member's node id (not 0).
        id: NodeId,
        /// Where it runs.
        host: String,
        /// Its standby role.
        role: Role,
        /// Free-form name/value pairs, names unique, at most `ATTRIBUTES_MAX`.
        attributes: Vec<(String, String)>,
    },
    /// Changes a registered member's status; `NotFound` if it is not registered.
    SetMemberStatus {
        /// The member.
        id: NodeId,
        /// Its new status.
        status: MemberStatus,
    },
    /// Records that plug-in `name` is loaded on `member` (which must be registered).
    LoadPlugin {
        /// The plug-in.
        name: String,
        /// The member it is loaded on.
        member: NodeId,
    },
    /// Records that plug-in `name` is no longer loaded on `member`.
    UnloadPlugin {
        /// The plug-in.
        name: String,
        /// The member it was loaded on.
        member: NodeId,
    },
    /// Distributed agreement (docs/PROTOCOL.md §7.1): load plug-in `name` on every voter, only if
    /// every voter votes yes. A client leaves `view` 0 and `voters` empty; the member that submits
    /// it fills in its view and members.
    Propose {
        /// The plug-in.
        name: String,
        /// The view it is proposed in.
        view: u64,
        /// The members that must vote yes, ascending, unique.
        voters: Vec<NodeId>,
    },
    /// A member's vote on the proposal committed at seq `proposal`, cast in `view`. Only the
    /// member itself submits it (the state checks the message's origin).
    Vote {
        /// The seq of the proposal.
        proposal: u64,
        /// The voting member.
        voter: NodeId,
        /// The view the voter was in when it voted.
        view: u64,
        /// Whether it can load the plug-in.
        yes: bool,
    },
    /// Replaces the universe (docs/PROTOCOL.md §5.9) with `members`, as epoch `epoch`, only if
    /// the committed universe is epoch `epoch - 1` (else `GuardFailed`, nothing changes).
    /// Applied whatever the session: the epoch makes a retry harmless.
    Universe {
        /// The epoch this change creates (at least 1).
        epoch: u64,
        /// What the operator asked for, for reports.
        change: MemberChange,
        /// Every member after the change, ids ascending and unique, with its `HOST:PORT`.
        members: Vec<(NodeId, String)>,
    },
}

/// One compare of a transaction, on the state before the transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// The key compared.
    pub key: Vec<u8>,
    /// What must hold of it.
    pub check: Check,
}

/// What a guard requires of its key. A missing key has version 0 and modify revision 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The key exists and holds exactly this value.
    ValueEquals(Vec<u8>),
    /// The key's version (puts since it was created) compares so to the number.
    Version(Compare, u64),
    /// The key's modify revision compares so to the number.
    ModRevision(Compare, u64),
    /// The key exists.
    Exists,
    /// The key does not exist.
    Missing,
}

/// A comparison of the key's number (left) with the guard's number (right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// Equal.
    Equal,
    /// The key's number is smaller.
    Less,
    /// The key's number is greater.
    Greater,
}

impl Compare {
    /// Whether `actual` compares so to `expected`.
    pub fn holds(self, actual: u64, expected: u64) -> bool {
        match self {
            Compare::Equal => actual == expected,
            Compare::Less => actual < expected,
            Compare::Greater => actual > expected,
        }
    }
}

/// One operation of a transaction branch; ops apply in order and see earlier ops' writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Sets a key.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Removes a key if it exists (no error if it does not).
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Reads one key.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// Reads the keys starting with `prefix`, in key order.
    Range {
        /// The prefix (empty for all keys).
        prefix: Vec<u8>,
        /// Most entries returned; 0 or above `RANGE_LIMIT_MAX` means `RANGE_LIMIT_MAX`.
        limit: u32,
    },
}

/// A member's standby role (docs/PROTOCOL.md §7): hot members apply every command, warm ones hold checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Applies every committed command: continuous service.
    Hot,
    /// Holds a checkpoint and the commands after it; promoted when a hot member fails.
    Warm,
}

/// A registered member's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemberStatus {
    /// Running and in the view.
    Up,
    /// Failed or unreachable.
    Down,
    /// Left the cluster on purpose.
    Left,
}

impl Role {
    /// The byte that encodes this role.
    pub(crate) fn tag(self) -> u8 {
        match self {
            Role::Hot => 1,
            Role::Warm => 2,
        }
    }

    /// The role a byte encodes.
    pub(crate) fn from_tag(tag: u8, field: &'static str) -> Result<Role, DecodeError> {
        match tag {
            1 => Ok(Role::Hot),
            2 => Ok(Role::Warm),
            other => Err(invalid(field, format!("unknown role {other}"))),
        }
    }
}

impl MemberStatus {
    /// The byte that encodes this status.
    pub(crate) fn tag(self) -> u8 {
        match self {
            MemberStatus::Up => 1,
            MemberStatus::Down => 2,
            MemberStatus::Left => 3,
        }
    }

    /// The status a byte encodes.
    pub(crate) fn from_tag(tag: u8, field: &'static str) -> Result<MemberStatus, DecodeError> {
        match tag {
            1 => Ok(MemberStatus::Up),
            2 => Ok(MemberStatus::Down),
            3 => Ok(MemberStatus::Left),
            other => Err(invalid(field, format!("unknown member status {other}"))),
        }
    }
}

impl Action {
    /// The action's kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Put { .. } => ActionKind::Put,
            Action::Delete { .. } => ActionKind::Delete,
            Action::DeleteRange { .. } => ActionKind::DeleteRange,
            Action::Txn { .. } => ActionKind::Txn,
            Action::RegisterMember { .. } => ActionKind::RegisterMember,
            Action::SetMemberStatus { .. } => ActionKind::SetMemberStatus,
            Action::LoadPlugin { .. } => ActionKind::LoadPlugin,
            Action::UnloadPlugin { .. } => ActionKind::UnloadPlugin,
            Action::Propose { .. } => ActionKind::Propose,
            Action::Vote { .. } => ActionKind::Vote,
            Action::Universe { .. } => ActionKind::Universe,
        }
    }
}

impl Command {
    /// The kind of the command encoded in `payload`, read from its header alone (nothing else
    /// is decoded, so every member can look at every commit cheaply); `None` if `payload` is
    /// not a command of this version.
    pub fn peek_kind(payload: &[u8]) -> Option<ActionKind> {
        if payload.first() != Some(&COMMAND_VERSION) {
            return None;
        }
        payload.get(KIND_OFFSET).copied().and_then(ActionKind::from_byte)
    }

    /// The command's bytes. Encoding never fails: limits are checked by `validate`, which a
    /// client may call before submitting and which every member calls after decoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u8(&mut out, COMMAND_VERSION);
        put_u64(&mut out, self.session.client_id);
        put_u64(&mut out, self.session.request);
        put_u8(&mut out, self.action.kind() as u8);
        match &self.action {
            Action::Put { key, value } => {
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
            Action::Delete { key } => {
                put_bytes(&mut out, key);
            }
            Action::DeleteRange { prefix } => {
                put_bytes(&mut out, prefix);
            }
            Action::Txn { guards, then, otherwise } => {
                put_count(&mut out, guards.len());
                for guard in guards {
                    put_guard(&mut out, guard);
                }
                for ops in [then, otherwise] {
                    put_count(&mut out, ops.len());
                    for op in ops {
                        put_op(&mut out, op);
                    }
                }
            }
            Action::RegisterMember { id, host, role, attributes } => {
                put_u16(&mut out, id.0);
                put_str(&mut out, host);
                put_u8(&mut out, role.tag());
                put_count(&mut out, attributes.len());
                for (name, value) in attributes {
                    put_str(&mut out, name);
                    put_str(&mut out, value);
                }
            }
            Action::SetMemberStatus { id, status } => {
                put_u16(&mut out, id.0);
                put_u8(&mut out, status.tag());
            }
            Action::LoadPlugin { name, member } => {
                put_str(&mut out, name);
                put_u16(&mut out, member.0);
            }
            Action::UnloadPlugin { name, member } => {
                put_str(&mut out, name);
                put_u16(&mut out, member.0);
            }
            Action::Propose { name, view, voters } => {
                put_str(&mut out, name);
                put_u64(&mut out, *view);
                put_count(&mut out, voters.len());
                for voter in voters {
                    put_u16(&mut out, voter.0);
                }
            }
            Action::Vote { proposal, voter, view, yes } => {
                put_u64(&mut out, *proposal);
                put_u16(&mut out, voter.0);
                put_u64(&mut out, *view);
                put_bool(&mut out, *yes);
            }
            Action::Universe { epoch, change, members } => {
                put_u64(&mut out, *epoch);
                put_u8(&mut out, change.tag());
                put_u16(&mut out, change.id().0);
                put_count(&mut out, members.len());
                for (id, addr) in members {
                    put_u16(&mut out, id.0);
                    put_str(&mut out, addr);
                }
            }
        }
        out
    }

    /// Decodes and validates a command; the error names the field that failed.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        let mut reader = Reader::new(bytes);
        let command = parse::command(&mut reader)?;
        if reader.remaining() > 0 {
            return Err(DecodeError::TrailingBytes { count: reader.remaining() });
        }
        command.validate()?;
        Ok(command)
    }

    /// Checks the limits and rules every member enforces, naming the field that breaks one.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match &self.action {
            Action::Put { key, value } => {
                check_key(key, "key")?;
                check_unreserved(key, "key")?;
                check_len(value, VALUE_BYTES_MAX, "value")
            }
            Action::Delete { key } => {
                check_key(key, "key")?;
                check_unreserved(key, "key")
            }
            Action::DeleteRange { prefix } => check_len(prefix, KEY_BYTES_MAX, "prefix"),
            Action::Txn { guards, then, otherwise } => {
                check_count(guards.len(), GUARDS_MAX, "guards")?;
                check_count(then.len(), OPS_MAX, "then ops")?;
                check_count(otherwise.len(), OPS_MAX, "otherwise ops")?;
                for guard in guards {
                    check_key(&guard.key, "guard key")?;
                    if let Check::ValueEquals(value) = &guard.check {
                        check_len(value, VALUE_BYTES_MAX, "guard value")?;
                    }
                }
                then.iter().chain(otherwise).try_for_each(check_op)
            }
            Action::RegisterMember { id, host, attributes, .. } => {
                check_member(*id, "member id")?;
                check_text(host, "host")?;
                check_count(attributes.len(), ATTRIBUTES_MAX, "attributes")?;
                let mut names = BTreeSet::new();
                for (name, value) in attributes {
                    check_text(name, "attribute name")?;
                    check_len(value.as_bytes(), TEXT_BYTES_MAX, "attribute value")?;
                    if !names.insert(name.as_str()) {
                        return Err(invalid("attribute name", "appears twice"));
                    }
                }
                Ok(())
            }
            Action::SetMemberStatus { id, .. } => check_member(*id, "member id"),
            Action::LoadPlugin { name, member } | Action::UnloadPlugin { name, member } => {
                check_text(name, "plugin name")?;
                check_member(*member, "member id")
            }
            Action::Propose { name, voters, .. } => {
                check_text(name, "plugin name")?;
                check_count(voters.len(), VOTERS_MAX, "voters")?;
                for pair in voters.windows(2) {
                    if pair[0] >= pair[1] {
                        return Err(invalid("voters", "not ascending and unique"));
                    }
                }
                voters.iter().try_for_each(|&id| check_member(id, "voter"))
            }
            Action::Vote { voter, .. } => check_member(*voter, "voter"),
            Action::Universe { epoch, change, members } => {
                if *epoch == 0 {
                    return Err(invalid("universe epoch", "0 is the seed list, never a change"));
                }
                if members.is_empty() {
                    return Err(invalid("universe", "has no member"));
                }
                check_count(members.len(), UNIVERSE_MEMBERS_MAX, "universe")?;
                for pair in members.windows(2) {
                    if pair[0].0 >= pair[1].0 {
                        return Err(invalid("universe", "ids not ascending and unique"));
                    }
                }
                for (id, addr) in members {
                    check_member(*id, "universe member id")?;
                    check_text(addr, "universe address")?;
                    if addr.contains(char::is_whitespace) {
                        return Err(invalid("universe address", "contains white space"));
                    }
                }
                check_member(change.id(), "changed member id")?;
                let listed = members.iter().any(|(id, _)| *id == change.id());
                if listed == matches!(change, MemberChange::Remove(_)) {
                    return Err(invalid("universe", format!("does not match the change `{change}`")));
                }
                Ok(())
            }
        }
    }
}

fn put_guard(out: &mut impl Sink, guard: &Guard) {
    put_bytes(out, &guard.key);
    match &guard.check {
        Check::ValueEquals(value) => {
            put_u8(out, 1);
            put_bytes(out, value);
        }
        Check::Version(compare, number) => {
            put_u8(out, 2);
            put_u8(out, compare_tag(*compare));
            put_u64(out, *number);
        }
        Check::ModRevision(compare, number) => {
            put_u8(out, 3);
            put_u8(out, compare_tag(*compare));
            put_u64(out, *number);
        }
        Check::Exists => put_u8(out, 4),
        Check::Missing => put_u8(out, 5),
    }
}

fn compare_tag(compare: Compare) -> u8 {
    match compare {
        Compare::Equal => 1,
        Compare::Less => 2,
        Compare::Greater => 3,
    }
}

fn put_op(out: &mut impl Sink, op: &Op) {
    match op {
        Op::Put { key, value } => {
            put_u8(out, 1);
            put_bytes(out, key);
            put_bytes(out, value);
        }
        Op::Delete { key } => {
            put_u8(out, 2);
            put_bytes(out, key);
        }
        Op::Get { key } => {
            put_u8(out, 3);
            put_bytes(out, key);
        }
        Op::Range { prefix, limit } => {
            put_u8(out, 4);
            put_bytes(out, prefix);
            put_u32(out, *limit);
        }
    }
}

fn check_op(op: &Op) -> Result<(), DecodeError> {
    match op {
        Op::Put { key, value } => {
            check_key(key, "op key")?;
            check_unreserved(key, "op key")?;
            check_len(value, VALUE_BYTES_MAX, "op value")
        }
        Op::Delete { key } => {
            check_key(key, "op key")?;
            check_unreserved(key, "op key")
        }
        Op::Get { key } => check_key(key, "op key"),
        Op::Range { prefix, .. } => check_len(prefix, KEY_BYTES_MAX, "op prefix"),
    }
}

/// A key is never empty: the empty prefix means "every key" and must not name one.
fn check_key(key: &[u8], field: &'static str) -> Result<(), DecodeError> {
    if key.is_empty() {
        return Err(invalid(field, "empty"));
    }
    check_len(key, KEY_BYTES_MAX, field)
}

/// The universe's key changes only through `Action::Universe`, so that the state and every
/// member's tracked universe stay one value (docs/PROTOCOL.md §5.9).
fn check_unreserved(key: &[u8], field: &'static str) -> Result<(), DecodeError> {
    if key == UNIVERSE_KEY.as_bytes() {
        return Err(invalid(field, "harness/universe changes only through `harness member`"));
    }
    Ok(())
}

fn check_text(text: &str, field: &'static str) -> Result<(), DecodeError> {
    if text.is_empty() {
        return Err(invalid(field, "empty"));
    }
    check_len(text.as_bytes(), TEXT_BYTES_MAX, field)
}

fn check_len(bytes: &[u8], max: usize, field: &'static str) -> Result<(), DecodeError> {
    if bytes.len() > max {
        return Err(invalid(field, format!("{} bytes, at most {max}", bytes.len())));
    }
    Ok(())
}

fn check_count(count: usize, max: usize, field: &'static str) -> Result<(), DecodeError> {
    if count > max {
        return Err(invalid(field, format!("{count} entries, at most {max}")));
    }
    Ok(())
}

fn check_member(id: NodeId, field: &'static str) -> Result<(), DecodeError> {
    if id.0 == 0 {
        return Err(invalid(field, "0 is never a member"));
    }
    Ok(())
}
