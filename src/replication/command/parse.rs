//! Decoding of DVM commands from untrusted bytes, and the codec's golden and hostile-input tests.
//!
//! Every read goes through the bounds-checked `Reader` and names its field; every count is checked
//! against the bytes left before anything is allocated for it, so a committed payload of garbage
//! costs an error result, never a panic or a large allocation (rustls `msgs/codec.rs`).

use super::{
    Action, ActionKind, Check, Command, Compare, Guard, MemberChange, MemberStatus, Op, Role, Session,
    COMMAND_VERSION,
};
use crate::error::DecodeError;
use crate::ids::NodeId;
use crate::wire::bytes::{invalid, Reader};

/// The fewest bytes a guard takes: an empty key's length and the check tag.
const GUARD_BYTES_MIN: usize = 5;
/// The fewest bytes an op takes: the tag and an empty key's length.
const OP_BYTES_MIN: usize = 5;
/// The fewest bytes an attribute takes: two empty strings' lengths.
const ATTRIBUTE_BYTES_MIN: usize = 8;

/// Reads one command's fields (not its limits: `Command::validate` checks those).
pub(super) fn command(r: &mut Reader<'_>) -> Result<Command, DecodeError> {
    let version = r.u8("command version")?;
    if version != COMMAND_VERSION {
        return Err(invalid("command version", format!("{version}, this member reads {COMMAND_VERSION}")));
    }
    let session = Session { client_id: r.u64("client id")?, request: r.u64("request")? };
    let kind = r.u8("command kind")?;
    let Some(kind) = ActionKind::from_byte(kind) else {
        return Err(invalid("command kind", format!("unknown kind {kind}")));
    };
    let action = match kind {
        ActionKind::Put => Action::Put { key: bytes(r, "key")?, value: bytes(r, "value")? },
        ActionKind::Delete => Action::Delete { key: bytes(r, "key")? },
        ActionKind::DeleteRange => Action::DeleteRange { prefix: bytes(r, "prefix")? },
        ActionKind::Txn => {
            let count = r.count(GUARD_BYTES_MIN, "guards")?;
            let guards = (0..count).map(|_| guard(r)).collect::<Result<_, _>>()?;
            let then = ops(r, "then ops")?;
            let otherwise = ops(r, "otherwise ops")?;
            Action::Txn { guards, then, otherwise }
        }
        ActionKind::RegisterMember => {
            let id = NodeId(r.u16("member id")?);
            let host = text(r, "host")?;
            let role = Role::from_tag(r.u8("role")?, "role")?;
            let count = r.count(ATTRIBUTE_BYTES_MIN, "attributes")?;
            let attributes = (0..count)
                .map(|_| Ok((text(r, "attribute name")?, text(r, "attribute value")?)))
                .collect::<Result<_, DecodeError>>()?;
            Action::RegisterMember { id, host, role, attributes }
        }
        ActionKind::SetMemberStatus => Action::SetMemberStatus {
            id: NodeId(r.u16("member id")?),
            status: MemberStatus::from_tag(r.u8("member status")?, "member status")?,
        },
        ActionKind::LoadPlugin => {
            Action::LoadPlugin { name: text(r, "plugin name")?, member: NodeId(r.u16("member id")?) }
        }
        ActionKind::UnloadPlugin => {
            Action::UnloadPlugin { name: text(r, "plugin name")?, member: NodeId(r.u16("member id")?) }
        }
        ActionKind::Propose => {
            let name = text(r, "plugin name")?;
            let view = r.u64("proposal view")?;
            let count = r.count(2, "voters")?;
            let voters = (0..count).map(|_| r.u16("voter").map(NodeId)).collect::<Result<_, _>>()?;
            Action::Propose { name, view, voters }
        }
        ActionKind::Vote => Action::Vote {
            proposal: r.u64("proposal")?,
            voter: NodeId(r.u16("voter")?),
            view: r.u64("vote view")?,
            yes: r.bool("vote")?,
        },
        ActionKind::Universe => {
            let epoch = r.u64("universe epoch")?;
            let tag = r.u8("member change")?;
            let id = NodeId(r.u16("changed member id")?);
            let Some(change) = MemberChange::from_tag(tag, id) else {
                return Err(invalid("member change", format!("unknown change {tag}")));
            };
            let count = r.count(6, "universe")?;
            let members = (0..count)
                .map(|_| Ok((NodeId(r.u16("universe member id")?), text(r, "universe address")?)))
                .collect::<Result<_, DecodeError>>()?;
            Action::Universe { epoch, change, members }
        }
    };
    Ok(Command { session, action })
}

fn guard(r: &mut Reader<'_>) -> Result<Guard, DecodeError> {
    let key = bytes(r, "guard key")?;
    let check = match r.u8("guard kind")? {
        1 => Check::ValueEquals(bytes(r, "guard value")?),
        2 => Check::Version(compare(r)?, r.u64("guard version")?),
        3 => Check::ModRevision(compare(r)?, r.u64("guard revision")?),
        4 => Check::Exists,
        5 => Check::Missing,
        other => return Err(invalid("guard kind", format!("unknown kind {other}"))),
    };
    Ok(Guard { key, check })
}

fn compare(r: &mut Reader<'_>) -> Result<Compare, DecodeError> {
    match r.u8("guard compare")? {
        1 => Ok(Compare::Equal),
        2 => Ok(Compare::Less),
        3 => Ok(Compare::Greater),
        other => Err(invalid("guard compare", format!("unknown compare {other}"))),
    }
}

fn ops(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<Op>, DecodeError> {
    let count = r.count(OP_BYTES_MIN, field)?;
    (0..count).map(|_| op(r)).collect()
}

fn op(r: &mut Reader<'_>) -> Result<Op, DecodeError> {
    Ok(match r.u8("op kind")? {
        1 => Op::Put { key: bytes(r, "op key")?, value: bytes(r, "op value")? },
        2 => Op::Delete { key: bytes(r, "op key")? },
        3 => Op::Get { key: bytes(r, "op key")? },
        4 => Op::Range { prefix: bytes(r, "op prefix")?, limit: r.u32("op limit")? },
        other => return Err(invalid("op kind", format!("unknown kind {other}"))),
    })
}

/// A u32-length-prefixed byte string, copied out.
pub(crate) fn bytes(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u8>, DecodeError> {
    Ok(r.bytes_u32(field)?.to_vec())
}

/// A u32-length-prefixed UTF-8 string, copied out.
pub(crate) fn text(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let raw = r.bytes_u32(field)?;
    let text = std::str::from_utf8(raw).map_err(|e| invalid(field, format!("not UTF-8: {e}")))?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::{KEY_BYTES_MAX, OPS_MAX};
    use super::*;

    fn session() -> Session {
        Session { client_id: 7, request: 3 }
    }

    /// One command of every kind, with every guard and op kind.
    fn every_kind() -> Vec<Command> {
        let key = |k: &str| k.as_bytes().to_vec();
        let actions = vec![
            Action::Put { key: key("a"), value: key("1") },
            Action::Delete { key: key("a") },
            Action::DeleteRange { prefix: Vec::new() },
            Action::Txn {
                guards: vec![
                    Guard { key: key("a"), check: Check::ValueEquals(key("1")) },
                    Guard { key: key("a"), check: Check::Version(Compare::Equal, 2) },
                    Guard { key: key("a"), check: Check::ModRevision(Compare::Less, 9) },
                    Guard { key: key("b"), check: Check::Version(Compare::Greater, 0) },
                    Guard { key: key("c"), check: Check::Exists },
                    Guard { key: key("d"), check: Check::Missing },
                ],
                then: vec![
                    Op::Put { key: key("a"), value: key("2") },
                    Op::Delete { key: key("b") },
                    Op::Get { key: key("a") },
                    Op::Range { prefix: key("a"), limit: 10 },
                ],
                otherwise: vec![Op::Get { key: key("a") }],
            },
            Action::RegisterMember {
                id: NodeId(3),
                host: "node03".into(),
                role: Role::Warm,
                attributes: vec![("cores".into(), "64".into()), ("rack".into(), "r2".into())],
            },
            Action::SetMemberStatus { id: NodeId(3), status: MemberStatus::Down },
            Action::LoadPlugin { name: "odls".into(), member: NodeId(3) },
            Action::UnloadPlugin { name: "odls".into(), member: NodeId(3) },
            Action::Propose { name: "odls".into(), view: 4, voters: vec![NodeId(1), NodeId(3)] },
            Action::Vote { proposal: 12, voter: NodeId(3), view: 4, yes: false },
        ];
        actions.into_iter().map(|action| Command { session: session(), action }).collect()
    }

    #[test]
    fn every_kind_round_trips() {
        for command in every_kind() {
            assert_eq!(Command::decode(&command.encode()), Ok(command));
        }
    }

    #[test]
    fn put_has_golden_bytes() {
        let put =
            Command { session: session(), action: Action::Put { key: b"k".to_vec(), value: b"vv".to_vec() } };
        #[rustfmt::skip]
        let golden = [
            1,                          // version
            0, 0, 0, 0, 0, 0, 0, 7,     // client id
            0, 0, 0, 0, 0, 0, 0, 3,     // request
            1,                          // kind: put
            0, 0, 0, 1, b'k',           // key
            0, 0, 0, 2, b'v', b'v',     // value
        ];
        assert_eq!(put.encode(), golden);
    }

    #[test]
    fn every_truncation_is_refused_naming_a_field() {
        for command in every_kind() {
            let bytes = command.encode();
            for len in 0..bytes.len() {
                match Command::decode(&bytes[..len]) {
                    Err(DecodeError::Truncated { .. }) => {}
                    other => panic!("{command:?} cut at {len}: {other:?}"),
                }
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(Command::decode(&longer), Err(DecodeError::TrailingBytes { count: 1 }));
        }
    }

    #[test]
    fn limits_and_rules_are_refused_naming_the_field() {
        let field_of =
            |action: Action| match Command::decode(&Command { session: session(), action }.encode()) {
                Err(DecodeError::Invalid { field, .. }) => field,
                other => panic!("accepted: {other:?}"),
            };
        assert_eq!(field_of(Action::Put { key: Vec::new(), value: Vec::new() }), "key");
        assert_eq!(field_of(Action::Delete { key: vec![b'k'; KEY_BYTES_MAX + 1] }), "key");
        let get = Op::Get { key: b"k".to_vec() };
        let txn = Action::Txn { guards: Vec::new(), then: vec![get; OPS_MAX + 1], otherwise: Vec::new() };
        assert_eq!(field_of(txn), "then ops");
        assert_eq!(
            field_of(Action::SetMemberStatus { id: NodeId(0), status: MemberStatus::Up }),
            "member id"
        );
        assert_eq!(field_of(Action::LoadPlugin { name: String::new(), member: NodeId(1) }), "plugin name");
        let twice = vec![("a".to_owned(), "1".to_owned()), ("a".to_owned(), "2".to_owned())];
        let register =
            Action::RegisterMember { id: NodeId(1), host: "h".into(), role: Role::Hot, attributes: twice };
        assert_eq!(field_of(register), "attribute name");
        let unordered = Action::Propose { name: "p".into(), view: 1, voters: vec![NodeId(2), NodeId(1)] };
        assert_eq!(field_of(unordered), "voters");
        let zero = Action::Propose { name: "p".into(), view: 1, voters: vec![NodeId(0)] };
        assert_eq!(field_of(zero), "voter");
        assert_eq!(field_of(Action::Vote { proposal: 1, voter: NodeId(0), view: 1, yes: true }), "voter");
    }

    #[test]
    fn a_vote_has_golden_bytes() {
        let vote = Command {
            session: Session::default(),
            action: Action::Vote { proposal: 12, voter: NodeId(3), view: 4, yes: true },
        };
        #[rustfmt::skip]
        let golden = [
            1,                          // version
            0, 0, 0, 0, 0, 0, 0, 0,     // client id: none
            0, 0, 0, 0, 0, 0, 0, 0,     // request
            10,                         // kind: vote
            0, 0, 0, 0, 0, 0, 0, 12,    // proposal seq
            0, 3,                       // voter
            0, 0, 0, 0, 0, 0, 0, 4,     // view
            1,                          // yes
        ];
        assert_eq!(vote.encode(), golden);
    }

    #[test]
    fn unknown_tags_and_versions_are_refused() {
        let mut bytes = every_kind()[0].encode();
        bytes[0] = 2;
        assert!(matches!(
            Command::decode(&bytes),
            Err(DecodeError::Invalid { field: "command version", .. })
        ));
        bytes[0] = 1;
        bytes[17] = 99;
        assert!(matches!(Command::decode(&bytes), Err(DecodeError::Invalid { field: "command kind", .. })));
        // A count of 2^32 - 1 guards behind a few bytes is refused before allocating.
        let mut huge = every_kind()[3].encode()[..18].to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0]);
        assert_eq!(Command::decode(&huge), Err(DecodeError::Truncated { field: "guards" }));
    }
}
