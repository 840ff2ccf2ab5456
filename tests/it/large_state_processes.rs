//! Real `harness node` processes with a growing state (docs/PROTOCOL.md §5.1, §5.3, §7): three
//! members with `--durability checkpoint` and checkpoints forced every 32 commits, one client
//! writing 64 KiB values, and the warm member killed -9 and restarted mid-load. The kill and the
//! restart must cost exactly their two view changes (no false suspicion while checkpoints and
//! the restarted member's catch-up run), every acknowledged key must be at every member, and no
//! member's longest protocol step may come near what a whole-state step costs at that size. The
//! processes are stopped by pid (the `Nodes` guard).

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{connect, init_logging, status, wait_until, Nodes};
use harness::client::ClientError;
use harness::replication::{Action, Command, DvmState, Outcome, Read, Session, StateMachine};
use harness::wire::{ClientReply, Consistency, ErrorCode, NodeStatus};
use harness::{MsgId, NodeId, RingMode};

const VALUE_BYTES: usize = 64 << 10;
/// Values written before the kill, while the member is down, and after its restart: about
/// 40 MB of state in all.
const PHASES: [u64; 3] = [250, 150, 250];
const WINDOW: usize = 8;
const PHASE_DEADLINE: Duration = Duration::from_secs(120);
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

fn key(i: u64) -> Vec<u8> {
    format!("big/{i:06}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    let mut v = vec![(i % 251) as u8; VALUE_BYTES];
    v[..8].copy_from_slice(&i.to_be_bytes());
    v
}

fn put(i: u64) -> Vec<u8> {
    let action = Action::Put { key: key(i), value: value(i) };
    Command { session: Session { client_id: 77, request: i + 1 }, action }.encode()
}

/// Writes keys `range` through `addr` with a window of requests in flight, retrying what is
/// refused; returns when every one is acknowledged.
fn write(addr: SocketAddr, range: std::ops::Range<u64>) {
    let until = Instant::now() + PHASE_DEADLINE;
    let mut c = connect(addr, PHASE_DEADLINE);
    let mut outstanding = std::collections::BTreeMap::new();
    let mut todo: Vec<u64> = range.clone().rev().collect();
    let mut acked = 0;
    for _ in 0..(range.end - range.start) * 1000 + 10_000 {
        if todo.is_empty() && outstanding.is_empty() {
            return;
        }
        assert!(Instant::now() < until, "{acked} of {:?} acknowledged", range);
        while outstanding.len() < WINDOW {
            let Some(i) = todo.pop() else { break };
            outstanding.insert(c.send_broadcast(&put(i)).expect("sends"), i);
        }
        match c.recv_reply(Duration::from_millis(500)) {
            Ok(ClientReply::Committed { request, .. }) => {
                outstanding.remove(&request).expect("a reply to a request in flight");
                acked += 1;
            }
            Ok(ClientReply::Error { request, code: ErrorCode::Busy | ErrorCode::NoQuorum, .. }) => {
                todo.push(outstanding.remove(&request).expect("a reply to a request in flight"));
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(other) => panic!("unexpected reply {other:?}"),
            Err(ClientError::Timeout { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the write loop exhausted its steps");
}

/// Waits for the three members in one primary view at one committed seq with equal state.
fn settled(nodes: &Nodes) -> Vec<NodeStatus> {
    let mut last = Vec::new();
    wait_until(
        "the members to settle with equal state",
        Duration::from_millis(200),
        10_000,
        SETTLE_DEADLINE,
        || {
            last = (1..=3).filter_map(|id| status(nodes.addr(id))).collect();
            last.len() == 3
                && last.iter().all(|s| {
                    s.primary
                        && s.ring.len() == 3
                        && s.committed_upto == last[0].committed_upto
                        && s.state_digest == last[0].state_digest
                })
        },
    );
    last
}

/// What one step that handled the whole state took before checkpoints left the protocol
/// thread (docs/PROTOCOL.md §7): encode the state, write it and sync it; and a joiner's decode.
/// Measured here, at the size the members hold, on the same machine.
fn whole_state_step(values: u64, dir: &std::path::Path) -> Duration {
    let mut state = DvmState::default();
    for i in 0..values {
        let id = MsgId { origin: NodeId(1), incarnation: 1, counter: i };
        state.apply(i + 1, id, &put(i));
    }
    let started = Instant::now();
    let bytes = state.snapshot();
    let path = dir.join("whole-state-step");
    let mut file = std::fs::File::create(&path).expect("creates");
    std::io::Write::write_all(&mut file, &bytes).expect("writes");
    file.sync_all().expect("syncs");
    let mut decoded = DvmState::default();
    decoded.restore(&bytes).expect("decodes");
    let took = started.elapsed();
    assert_eq!(decoded.digest(), state.digest());
    let _ = std::fs::remove_file(&path);
    took
}

#[test]
fn a_warm_member_killed_and_restarted_under_a_growing_state_costs_only_its_two_view_changes() {
    init_logging();
    let mut nodes = Nodes::new("large-state", 3, RingMode::Bidirectional);
    nodes.durability = Some("checkpoint");
    nodes.flags = ["--checkpoint-every", "32", "--hot", "2"].map(String::from).to_vec();
    nodes.rust_log = Some("info");
    for id in 1..=3 {
        nodes.start(id);
    }
    // n3 is the warm member (the two lowest ids are hot, §7); the client writes through n1.
    let (a, b, c) = (PHASES[0], PHASES[0] + PHASES[1], PHASES[0] + PHASES[1] + PHASES[2]);
    write(nodes.addr(1), 0..a);
    nodes.kill(3);
    write(nodes.addr(1), a..b);
    nodes.start(3);
    write(nodes.addr(1), b..c);
    let end = settled(&nodes);

    // v1 (genesis), v2 without n3, v3 with its restart: nothing else.
    for s in &end {
        assert_eq!(
            s.view.0,
            3,
            "{}: views other than the kill's and the restart's: {:?}",
            s.member,
            nodes.log(s.member.id.0)
        );
    }
    // Every acknowledged key, read locally at every member.
    for id in 1..=3 {
        let mut client = connect(nodes.addr(id), SETTLE_DEADLINE);
        for i in (0..c).step_by(7).chain([c - 1]) {
            let read = Command {
                session: Session::default(),
                action: Action::Txn {
                    guards: Vec::new(),
                    then: vec![harness::replication::Op::Get { key: key(i) }],
                    otherwise: Vec::new(),
                },
            };
            let (_, outcome) = client.execute(Consistency::Stale, &read.encode()).expect("reads");
            match Outcome::decode(&outcome).expect("an outcome") {
                Outcome::Ok { reads, .. } => match reads.as_slice() {
                    [Read::Get(Some(entry))] => assert_eq!(entry.value, value(i), "n{id} key {i}"),
                    other => panic!("n{id} key {i}: {other:?}"),
                },
                other => panic!("n{id} key {i}: {other:?}"),
            }
        }
    }
    let whole = whole_state_step(c, nodes.dir());
    let max_step = end.iter().map(|s| s.max_step_us).max().unwrap_or(0);
    eprintln!(
        "large state: {} bytes at every member; longest protocol step {} us; a whole-state step \
         (encode, write, sync, decode) {} us",
        end[0].state_bytes,
        max_step,
        whole.as_micros()
    );
    assert!(end[0].state_bytes > (c * VALUE_BYTES as u64), "the state holds every value");
    assert!(
        u128::from(max_step) * 2 < whole.as_micros(),
        "a protocol step of {max_step} us is not well below a whole-state step of {whole:?}"
    );
}
