//! Real `harness node` processes running the DVM state (docs/PROTOCOL.md §7): warm
//! standbys take over when both hot members die, a full-cluster kill -9 with `--durability fsync`
//! loses no acknowledged transaction, and a corrupted checkpoint file is refused and the member
//! recovers from a peer. Each test stops its processes by pid (the `Nodes` guard).

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{connect, init_logging, status, wait_until, Nodes};
use harness::client::ClientError;
use harness::replication::{Action, Check, Command, Compare, Guard, Op, Session};
use harness::wire::{ClientReply, ErrorCode, NodeStatus};
use harness::RingMode;

const SUBMIT_DEADLINE: Duration = Duration::from_secs(60);
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);
/// Requests in flight per submitter.
const WINDOW: usize = 16;

/// A transaction of client `client`: bump its own counter key only if its version is still below
/// the request number, and record the request under its own key.
fn txn(client: u64, request: u64) -> Vec<u8> {
    let counter = format!("counter/{client}").into_bytes();
    let action = Action::Txn {
        guards: vec![Guard { key: counter.clone(), check: Check::Version(Compare::Less, request) }],
        then: vec![
            Op::Put { key: counter.clone(), value: request.to_be_bytes().to_vec() },
            Op::Put { key: format!("req/{client}/{request}").into_bytes(), value: b"done".to_vec() },
        ],
        otherwise: vec![Op::Get { key: counter }],
    };
    Command { session: Session { client_id: client, request }, action }.encode()
}

/// Submits `count` transactions of `client` through `addr`; returns the highest acknowledged seq.
fn submit_txns(addr: SocketAddr, client: u64, count: u64) -> u64 {
    let until = Instant::now() + SUBMIT_DEADLINE;
    let mut c = connect(addr, SUBMIT_DEADLINE);
    let mut outstanding = std::collections::BTreeMap::new();
    let (mut next, mut acked, mut max_seq) = (1u64, 0u64, 0u64);
    let mut retry = Vec::new();
    for _ in 0..count * 1000 + 10_000 {
        if acked == count {
            return max_seq;
        }
        assert!(Instant::now() < until, "client {client}: {acked} of {count} acknowledged");
        while outstanding.len() < WINDOW {
            let request = match retry.pop() {
                Some(r) => r,
                None if next <= count => {
                    next += 1;
                    next - 1
                }
                None => break,
            };
            outstanding.insert(c.send_broadcast(&txn(client, request)).expect("sends"), request);
        }
        match c.recv_reply(Duration::from_millis(500)) {
            Ok(ClientReply::Committed { request, seq }) => {
                outstanding.remove(&request).expect("a reply to a request in flight");
                acked += 1;
                max_seq = max_seq.max(seq);
            }
            Ok(ClientReply::Error { request, code: ErrorCode::Busy | ErrorCode::NoQuorum, .. }) => {
                retry.push(outstanding.remove(&request).expect("a reply to a request in flight"));
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(other) => panic!("client {client}: unexpected reply {other:?}"),
            Err(ClientError::Timeout { .. }) => {}
            Err(e) => panic!("client {client}: {e}"),
        }
    }
    panic!("client {client}: submit loop exhausted its steps");
}

/// Waits until the members `ids` are in one primary view of `size` at one committed seq of at
/// least `at_least`, with equal state digests; returns their statuses.
fn settled(nodes: &Nodes, ids: &[u16], size: usize, at_least: u64) -> Vec<NodeStatus> {
    let mut last = Vec::new();
    wait_until(
        "the members to settle with equal state",
        Duration::from_millis(100),
        10_000,
        SETTLE_DEADLINE,
        || {
            last = ids.iter().filter_map(|&id| status(nodes.addr(id))).collect();
            last.len() == ids.len()
                && last.iter().all(|s| {
                    s.primary
                        && s.ring.len() == size
                        && s.committed_upto >= at_least
                        && s.committed_upto == last[0].committed_upto
                        && s.state_digest == last[0].state_digest
                })
        },
    );
    last
}

fn log_contains(nodes: &Nodes, id: u16, text: &str) -> bool {
    std::fs::read_to_string(nodes.log(id)).is_ok_and(|log| log.contains(text))
}

#[test]
fn warm_members_take_over_with_the_same_state_when_both_hot_members_die() {
    init_logging();
    let mut nodes = Nodes::new("state-promote", 5, RingMode::Bidirectional);
    nodes.flags =
        ["--hot", "2", "--checkpoint-every", "64", "--token-timeout", "500"].map(String::from).to_vec();
    nodes.rust_log = Some("info");
    for id in 1..=5 {
        nodes.start(id);
    }
    let addrs = nodes.addrs.clone();
    let acked = std::thread::scope(|scope| {
        let submitters: Vec<_> = (1..=5u64)
            .map(|id| {
                let addr = addrs[id as usize - 1];
                scope.spawn(move || submit_txns(addr, id, 200))
            })
            .collect();
        submitters.into_iter().map(|s| s.join().expect("a submitter panicked")).max().unwrap_or(0)
    });
    let before = settled(&nodes, &[1, 2, 3, 4, 5], 5, acked);
    // The two lowest ids are hot (PROTOCOL.md §7); kill both.
    let killed = Instant::now();
    nodes.kill(1);
    nodes.kill(2);
    let seq = submit_txns(nodes.addr(5), 50, 1);
    let first_commit = killed.elapsed();
    let after = settled(&nodes, &[3, 4, 5], 3, seq);
    assert!(after[0].committed_upto > before[0].committed_upto);
    for id in [3, 4] {
        assert!(log_contains(&nodes, id, "promoted to hot"), "n{id} was promoted (see {:?})", nodes.log(id));
    }
    assert!(!log_contains(&nodes, 5, "promoted to hot"), "n5 stays warm with --hot 2");
    let addrs = nodes.addrs.clone();
    std::thread::scope(|scope| {
        for id in 3..=5u64 {
            let addr = addrs[id as usize - 1];
            scope.spawn(move || submit_txns(addr, 100 + id, 100));
        }
    });
    let end = settled(&nodes, &[3, 4, 5], 3, seq + 300);
    eprintln!(
        "promotion: first commit {first_commit:?} after killing both hot members; \
         state up to {} equal at n3, n4, n5 ({:016x})",
        end[0].committed_upto, end[0].state_digest
    );
}

#[test]
fn a_full_cluster_kill_and_restart_with_fsync_loses_no_acknowledged_transaction() {
    init_logging();
    let mut nodes = Nodes::new("state-fsync", 3, RingMode::Bidirectional);
    nodes.flags = ["--checkpoint-every", "100"].map(String::from).to_vec();
    nodes.durability = Some("fsync");
    for id in 1..=3 {
        nodes.start(id);
    }
    let addrs = nodes.addrs.clone();
    let acked = std::thread::scope(|scope| {
        let submitters: Vec<_> = (1..=3u64)
            .map(|id| {
                let addr = addrs[id as usize - 1];
                scope.spawn(move || submit_txns(addr, id, 250))
            })
            .collect();
        submitters.into_iter().map(|s| s.join().expect("a submitter panicked")).max().unwrap_or(0)
    });
    let before = settled(&nodes, &[1, 2, 3], 3, acked);
    for id in 1..=3 {
        nodes.kill(id);
    }
    for id in 1..=3 {
        nodes.start(id);
    }
    let after = settled(&nodes, &[1, 2, 3], 3, acked);
    assert_eq!(after[0].committed_upto, before[0].committed_upto, "the history resumes where it stopped");
    assert_eq!(after[0].state_digest, before[0].state_digest, "the state is the one acknowledged");
    // And it goes on from there.
    let seq = submit_txns(nodes.addr(2), 9, 10);
    assert!(seq > before[0].committed_upto);
    settled(&nodes, &[1, 2, 3], 3, seq);
}

#[test]
fn a_corrupted_checkpoint_file_is_refused_and_the_member_recovers_from_a_peer() {
    init_logging();
    let mut nodes = Nodes::new("state-corrupt", 3, RingMode::Bidirectional);
    nodes.flags = ["--checkpoint-every", "20"].map(String::from).to_vec();
    nodes.durability = Some("fsync");
    for id in 1..=3 {
        nodes.start(id);
    }
    let acked = submit_txns(nodes.addr(1), 1, 100);
    settled(&nodes, &[1, 2, 3], 3, acked);
    nodes.kill(3);
    let mut damaged = 0;
    for entry in std::fs::read_dir(nodes.data_dir(3)).expect("n3 has a data directory") {
        let path = entry.expect("lists").path();
        if path.extension().is_some_and(|e| e == "hck") {
            let mut bytes = std::fs::read(&path).expect("reads");
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            std::fs::write(&path, bytes).expect("writes");
            damaged += 1;
        }
    }
    assert!(damaged > 0, "n3 had written checkpoints");
    let more = submit_txns(nodes.addr(2), 2, 50);
    nodes.start(3);
    let end = settled(&nodes, &[1, 2, 3], 3, more);
    assert!(log_contains(&nodes, 3, "refusing damaged checkpoint"), "see {:?}", nodes.log(3));
    assert!(end[0].committed_upto >= more);
}
