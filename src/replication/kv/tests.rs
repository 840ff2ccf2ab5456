//! Tests of the DVM state: every action, guards and transactions, snapshots and restores, the
//! change journal of watches.

use super::*;
use crate::replication::command::{Compare, MemberStatus, Role, Session};
use crate::rng::Rng;

/// A message id for `apply`; the DVM state ignores it.
pub(crate) fn msg(counter: u64) -> MsgId {
    MsgId { origin: NodeId(1), incarnation: 1, counter }
}

/// Applies `action` without a session and decodes the outcome.
pub(crate) fn run(state: &mut DvmState, action: Action) -> Outcome {
    run_as(state, Session::default(), action)
}

fn run_as(state: &mut DvmState, session: Session, action: Action) -> Outcome {
    let payload = Command { session, action }.encode();
    let bytes = state.apply(0, msg(0), &payload);
    Outcome::decode(&bytes).expect("apply returns a decodable outcome")
}

fn put(key: &str, value: &str) -> Action {
    Action::Put { key: key.into(), value: value.into() }
}

fn ok(revision: u64) -> Outcome {
    Outcome::Ok { revision, deleted: 0, reads: Vec::new() }
}

fn keys_of(read: &Read) -> (Vec<&[u8]>, bool) {
    match read {
        Read::Range { entries, more } => (entries.iter().map(|e| e.key.as_slice()).collect(), *more),
        Read::Get(_) => panic!("not a range"),
    }
}

/// A random valid command over a small key space, with a few clients whose request numbers
/// sometimes repeat, so that commands interact and exactly-once is exercised.
pub(crate) fn random_command(rng: &mut Rng) -> Command {
    let session = Session { client_id: rng.below(4), request: rng.below(30) };
    Command { session, action: crate::replication::workload::random_action(rng) }
}

#[test]
fn puts_grow_the_revision_and_the_version_and_keep_the_create_revision() {
    let mut state = DvmState::default();
    assert_eq!(run(&mut state, put("a", "1")), ok(1));
    assert_eq!(run(&mut state, put("b", "1")), ok(2));
    assert_eq!(run(&mut state, put("a", "2")), ok(3));
    let a = state.get(b"a").expect("a exists");
    assert_eq!((a.value.as_slice(), a.create_revision, a.mod_revision, a.version), (&b"2"[..], 1, 3, 2));
    let b = state.get(b"b").expect("b exists");
    assert_eq!((b.create_revision, b.mod_revision, b.version), (2, 2, 1));
    assert_eq!(state.revision(), 3);
}

#[test]
fn delete_then_recreate_starts_a_new_life_and_deleting_a_missing_key_changes_nothing() {
    let mut state = DvmState::default();
    run(&mut state, put("a", "1"));
    run(&mut state, put("a", "2"));
    assert_eq!(
        run(&mut state, Action::Delete { key: b"a".to_vec() }),
        Outcome::Ok { revision: 3, deleted: 1, reads: Vec::new() }
    );
    assert_eq!(state.get(b"a"), None);
    assert_eq!(run(&mut state, Action::Delete { key: b"a".to_vec() }), Outcome::NotFound { revision: 3 });
    run(&mut state, put("a", "3"));
    let a = state.get(b"a").expect("a exists again");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (4, 4, 1));
}

#[test]
fn ranges_follow_the_prefix_in_key_order_up_to_the_limit() {
    let mut state = DvmState::default();
    for key in ["b", "ab", "a", "aa", "a/x", "ac"] {
        run(&mut state, put(key, "v"));
    }
    assert_eq!(keys_of(&state.range(b"a", 0)), (vec![&b"a"[..], b"a/x", b"aa", b"ab", b"ac"], false));
    assert_eq!(keys_of(&state.range(b"a", 2)), (vec![&b"a"[..], b"a/x"], true));
    assert_eq!(keys_of(&state.range(b"a", 5)), (vec![&b"a"[..], b"a/x", b"aa", b"ab", b"ac"], false));
    assert_eq!(keys_of(&state.range(b"", 0)).0.len(), 6);
    assert_eq!(keys_of(&state.range(b"c", 0)), (Vec::new(), false));

    let deleted = run(&mut state, Action::DeleteRange { prefix: b"a".to_vec() });
    assert_eq!(deleted, Outcome::Ok { revision: 7, deleted: 5, reads: Vec::new() });
    assert_eq!(keys_of(&state.range(b"", 0)), (vec![&b"b"[..]], false));
    // Nothing under the prefix: nothing changes, the revision stays.
    let none = run(&mut state, Action::DeleteRange { prefix: b"a".to_vec() });
    assert_eq!(none, Outcome::Ok { revision: 7, deleted: 0, reads: Vec::new() });
}

#[test]
fn a_range_stops_at_its_byte_budget_and_says_there_is_more() {
    let mut state = DvmState::default();
    let big = "x".repeat(crate::replication::command::VALUE_BYTES_MAX);
    for key in ["a1", "a2", "a3", "a4", "a5"] {
        assert!(matches!(run(&mut state, put(key, &big)), Outcome::Ok { .. }));
    }
    // Four full values exceed RANGE_BYTES_MAX by their keys' bytes: three fit.
    assert_eq!(keys_of(&state.range(b"a", 0)), (vec![&b"a1"[..], b"a2", b"a3"], true));
}

/// Every guard kind, each once holding and once failing, on key "a" (value "1", version 2,
/// modify revision 2) and the missing key "z".
#[test]
fn every_guard_kind_selects_both_branches() {
    let guard = |key: &str, check: Check| Guard { key: key.into(), check };
    let cases = [
        (guard("a", Check::ValueEquals(b"1".to_vec())), guard("a", Check::ValueEquals(b"2".to_vec()))),
        (guard("z", Check::Missing), guard("z", Check::ValueEquals(Vec::new()))),
        (guard("a", Check::Version(Compare::Equal, 2)), guard("a", Check::Version(Compare::Equal, 1))),
        (guard("a", Check::Version(Compare::Less, 3)), guard("a", Check::Version(Compare::Less, 2))),
        (guard("a", Check::Version(Compare::Greater, 1)), guard("a", Check::Version(Compare::Greater, 2))),
        (guard("z", Check::Version(Compare::Equal, 0)), guard("z", Check::Version(Compare::Greater, 0))),
        (
            guard("a", Check::ModRevision(Compare::Equal, 2)),
            guard("a", Check::ModRevision(Compare::Equal, 1)),
        ),
        (guard("a", Check::ModRevision(Compare::Less, 3)), guard("a", Check::ModRevision(Compare::Less, 2))),
        (
            guard("a", Check::ModRevision(Compare::Greater, 1)),
            guard("a", Check::ModRevision(Compare::Greater, 2)),
        ),
        (
            guard("z", Check::ModRevision(Compare::Less, 1)),
            guard("z", Check::ModRevision(Compare::Greater, 0)),
        ),
        (guard("a", Check::Exists), guard("z", Check::Exists)),
        (guard("z", Check::Missing), guard("a", Check::Missing)),
    ];
    for (holding, failing) in cases {
        for (guards, expect_then) in [(vec![holding.clone()], true), (vec![holding.clone(), failing], false)]
        {
            let mut state = DvmState::default();
            run(&mut state, put("a", "0"));
            run(&mut state, put("a", "1"));
            let txn = Action::Txn {
                guards: guards.clone(),
                then: vec![
                    Op::Put { key: b"then".to_vec(), value: Vec::new() },
                    Op::Get { key: b"a".to_vec() },
                ],
                otherwise: vec![Op::Put { key: b"else".to_vec(), value: Vec::new() }],
            };
            let outcome = run(&mut state, txn);
            let ran_then = matches!(&outcome, Outcome::Ok { revision: 3, reads, .. } if reads.len() == 1);
            let ran_otherwise =
                matches!(&outcome, Outcome::GuardFailed { revision: 3, reads, .. } if reads.is_empty());
            assert!(if expect_then { ran_then } else { ran_otherwise }, "{guards:?}: {outcome:?}");
            assert_eq!(state.get(b"then").is_some(), expect_then, "{guards:?}");
            assert_eq!(state.get(b"else").is_some(), !expect_then, "{guards:?}");
        }
    }
}

#[test]
fn a_txn_writes_at_one_revision_and_its_reads_see_its_earlier_writes() {
    let mut state = DvmState::default();
    run(&mut state, put("a", "1"));
    let txn = Action::Txn {
        guards: vec![Guard { key: b"a".to_vec(), check: Check::Exists }],
        then: vec![
            Op::Put { key: b"a".to_vec(), value: b"2".to_vec() },
            Op::Put { key: b"b".to_vec(), value: b"1".to_vec() },
            Op::Delete { key: b"missing".to_vec() },
            Op::Get { key: b"a".to_vec() },
            Op::Delete { key: b"a".to_vec() },
            Op::Range { prefix: Vec::new(), limit: 0 },
        ],
        otherwise: Vec::new(),
    };
    let Outcome::Ok { revision, deleted, reads } = run(&mut state, txn) else { panic!("guard held") };
    assert_eq!((revision, deleted), (2, 1));
    let Read::Get(Some(a)) = &reads[0] else { panic!("a was read") };
    assert_eq!((a.value.as_slice(), a.mod_revision, a.version), (&b"2"[..], 2, 2));
    assert_eq!(keys_of(&reads[1]), (vec![&b"b"[..]], false));
    assert_eq!(state.get(b"b").map(|b| b.mod_revision), Some(2));

    // A read-only transaction does not take a revision.
    let read_only =
        Action::Txn { guards: Vec::new(), then: vec![Op::Get { key: b"b".to_vec() }], otherwise: Vec::new() };
    assert!(matches!(run(&mut state, read_only), Outcome::Ok { revision: 2, .. }));
}

#[test]
fn a_retried_request_returns_the_same_result_and_applies_once() {
    let mut state = DvmState::default();
    let first = Session { client_id: 9, request: 1 };
    let incr = || Action::Txn {
        guards: vec![Guard { key: b"n".to_vec(), check: Check::Missing }],
        then: vec![Op::Put { key: b"n".to_vec(), value: b"1".to_vec() }],
        otherwise: vec![Op::Put { key: b"n".to_vec(), value: b"2".to_vec() }],
    };
    let original = run_as(&mut state, first, incr());
    assert_eq!(original, ok(1));
    // The retry commits later, after another client wrote: it is answered, not applied.
    run(&mut state, put("other", "x"));
    assert_eq!(run_as(&mut state, first, incr()), original);
    assert_eq!(run_as(&mut state, Session { client_id: 9, request: 0 }, incr()), original);
    assert_eq!(state.revision(), 2);
    assert_eq!(state.get(b"n").map(|n| n.version), Some(1));
    // The client's next request is applied.
    let next = run_as(&mut state, Session { client_id: 9, request: 2 }, incr());
    assert!(matches!(next, Outcome::GuardFailed { revision: 3, .. }));
}

#[test]
fn the_client_table_is_bounded_and_forgets_the_least_recent_client() {
    let mut state = DvmState::with_clients_max(2);
    for client_id in 1..=3 {
        run_as(&mut state, Session { client_id, request: 1 }, put("k", "v"));
    }
    assert_eq!(state.revision(), 3);
    // Clients 2 and 3 are remembered; client 1 was least recent and is forgotten, so its
    // retry is applied again (the documented limit of exactly-once).
    run_as(&mut state, Session { client_id: 3, request: 1 }, put("k", "v"));
    run_as(&mut state, Session { client_id: 2, request: 1 }, put("k", "v"));
    assert_eq!(state.revision(), 3);
    run_as(&mut state, Session { client_id: 1, request: 1 }, put("k", "v"));
    assert_eq!(state.revision(), 4);
    assert_eq!(state.sessions.clients.len(), 2);
}

#[test]
fn registry_commands_take_revisions_and_name_missing_members() {
    let mut state = DvmState::default();
    let register = |id: u16, role: Role| Action::RegisterMember {
        id: NodeId(id),
        host: format!("node{id}"),
        role,
        attributes: vec![("cores".into(), "64".into())],
    };
    assert_eq!(run(&mut state, register(1, Role::Hot)), ok(1));
    assert_eq!(run(&mut state, put("a", "1")), ok(2));
    assert_eq!(run(&mut state, register(2, Role::Warm)), ok(3));
    let two = state.member(NodeId(2)).expect("registered");
    assert_eq!((two.role, two.status, two.joined_at), (Role::Warm, MemberStatus::Up, 3));
    assert_eq!(two.attributes.get("cores").map(String::as_str), Some("64"));

    let down = |id: u16| Action::SetMemberStatus { id: NodeId(id), status: MemberStatus::Down };
    assert_eq!(run(&mut state, down(2)), ok(4));
    assert_eq!(run(&mut state, down(2)), ok(4));
    assert_eq!(run(&mut state, down(5)), Outcome::NotFound { revision: 4 });

    let load = |member: u16| Action::LoadPlugin { name: "odls".into(), member: NodeId(member) };
    assert_eq!(run(&mut state, load(1)), ok(5));
    assert_eq!(run(&mut state, load(2)), ok(6));
    assert_eq!(run(&mut state, load(7)), Outcome::NotFound { revision: 6 });
    assert_eq!(state.plugin_members("odls"), [NodeId(1), NodeId(2)].into());
    let unload = Action::UnloadPlugin { name: "odls".into(), member: NodeId(1) };
    assert_eq!(run(&mut state, unload.clone()), ok(7));
    assert_eq!(run(&mut state, unload), Outcome::NotFound { revision: 7 });
    assert_eq!(state.plugins().count(), 1);
    assert_eq!(state.members().count(), 2);
}

#[test]
fn garbage_payloads_never_panic_and_change_nothing() {
    let mut rng = Rng::new(0x5eed);
    let mut state = DvmState::default();
    for _ in 0..50 {
        let command = random_command(&mut rng);
        state.apply(0, msg(0), &command.encode());
    }
    for case in 0..4000 {
        let payload: Vec<u8> = if case % 2 == 0 {
            (0..rng.below(64)).map(|_| rng.below(256) as u8).collect()
        } else {
            // A valid command with a few bytes changed reaches deeper into the decoder.
            let mut bytes = random_command(&mut rng).encode();
            for _ in 0..rng.range(1, 3) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.below(256) as u8;
            }
            bytes
        };
        let mut before = state.clone();
        let outcome = Outcome::decode(&state.apply(0, msg(0), &payload)).expect("decodable outcome");
        if let Outcome::BadCommand { reason } = outcome {
            assert!(reason.starts_with("bad command: "), "{reason}");
            before.history.apply(0, msg(0), &payload);
            assert_eq!(state, before, "a bad payload changed more than the history chain");
        }
    }
}

#[test]
fn two_machines_fed_the_same_commands_have_equal_digests() {
    let mut rng = Rng::new(42);
    let commands: Vec<Vec<u8>> = (0..2000).map(|_| random_command(&mut rng).encode()).collect();
    let (mut a, mut b) = (DvmState::default(), DvmState::default());
    for (seq, payload) in commands.iter().enumerate() {
        let result_a = a.apply(seq as u64 + 1, msg(seq as u64), payload);
        let result_b = b.apply(seq as u64 + 1, msg(seq as u64), payload);
        assert_eq!(result_a, result_b, "command {seq}");
    }
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a, b);
    assert!(a.revision() > 100, "the workload changes the state");
    // One more write changes the digest.
    let before = a.digest();
    run(&mut a, put("k0", "new"));
    assert_ne!(a.digest(), before);
}

#[test]
fn the_journal_records_every_written_and_removed_key_once_drained() {
    let mut state = DvmState::default();
    run(&mut state, Action::Put { key: b"x".to_vec(), value: b"0".to_vec() });
    assert!(state.take_changes().is_empty(), "off by default");
    state.enable_journal();
    run(&mut state, Action::Put { key: b"a/1".to_vec(), value: b"1".to_vec() });
    run(&mut state, Action::Put { key: b"a/2".to_vec(), value: b"2".to_vec() });
    run(&mut state, Action::Delete { key: b"missing".to_vec() });
    let txn = Action::Txn {
        guards: vec![],
        then: vec![Op::Delete { key: b"x".to_vec() }, Op::Put { key: b"b".to_vec(), value: b"3".to_vec() }],
        otherwise: vec![],
    };
    run(&mut state, txn);
    run(&mut state, Action::DeleteRange { prefix: b"a/".to_vec() });
    let key = |revision, key: &[u8], value: Option<&[u8]>| StateChange::Key {
        revision,
        key: key.to_vec(),
        value: value.map(<[u8]>::to_vec),
    };
    assert_eq!(
        state.take_changes(),
        [
            key(2, b"a/1", Some(b"1")),
            key(3, b"a/2", Some(b"2")),
            key(4, b"x", None),
            key(4, b"b", Some(b"3")),
            key(5, b"a/1", None),
            key(5, b"a/2", None),
        ]
    );
    assert!(state.take_changes().is_empty());
    let snapshot = state.snapshot();
    let mut other = DvmState::default();
    other.enable_journal();
    other.restore(&snapshot).unwrap();
    assert_eq!(other.take_changes(), [StateChange::Reset { revision: 5 }]);
}
