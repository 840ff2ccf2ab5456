//! Memory bounded in bytes (docs/PROTOCOL.md §2.2 and §3): dozens of clients, each with many
//! 16 KiB puts outstanding, flood a ring of three real `harness node` processes. Far more is
//! offered at once than any member may hold (the submit queue, the channels between the threads,
//! the links' and clients' unsent bytes and the byte window are all capped), so the overload is
//! pushed back through TCP or answered busy. Afterwards every member's peak resident memory
//! (`VmHWM`) is within the stated bound, and every acknowledged put is present at every member.
//! A bound on memory, not on time: the machine may be as slow as it likes.

use crate::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{connect, init_logging, wait_until, Nodes};
use harness::client::ClientError;
use harness::procs::process_peak_rss_kib;
use harness::replication::{Action, Command, Op, Outcome, Read, Session};
use harness::wire::{ClientReply, Consistency, ErrorCode};
use harness::RingMode;

/// Client connections, spread over the three members.
const CLIENTS: usize = 30;
/// Puts each client keeps outstanding: 30 x 128 x 16 KiB = 60 MiB offered at once, 20 MiB per
/// member, beyond its 16 MiB submit queue.
const OUTSTANDING: usize = 128;
/// Puts each client has acknowledged before it stops.
const PUTS: u64 = 160;
/// Keys each client rewrites in turn, so the state stays small and memory is the buffers' doing.
const KEYS: u64 = 8;
const VALUE_BYTES: usize = 16 << 10;
/// The replicated state the flood leaves: every client's keys with a 16 KiB value.
const STATE_BYTES: u64 = CLIENTS as u64 * KEYS * VALUE_BYTES as u64;
/// What a member may hold beyond twice its state (docs/PROTOCOL.md §2.2, the allowance).
const ALLOWANCE_BYTES: u64 = 64 << 20;
/// Commits between checkpoints: the committed tail a member keeps after its checkpoint is
/// bounded by count (4096 by default, 64 MiB of these values); bounding it in bytes is the
/// checkpoint's business (docs/PROTOCOL.md §7), so this test keeps it to 4 MiB.
const CHECKPOINT_EVERY: &str = "256";
const DEADLINE: Duration = Duration::from_secs(180);

fn key(client: usize, index: u64) -> Vec<u8> {
    format!("flood/{client}/{}", index % KEYS).into_bytes()
}

/// The put of `index` by `client`: its value starts with the index, so a read says which put
/// it holds.
fn put(client: usize, index: u64) -> Vec<u8> {
    let mut value = vec![b'v'; VALUE_BYTES];
    value[..8].copy_from_slice(&index.to_be_bytes());
    Command { session: Session::default(), action: Action::Put { key: key(client, index), value } }.encode()
}

/// Floods `addr` with `client`'s puts until `PUTS` are acknowledged; returns, per key, the
/// highest acknowledged index. Busy and no-quorum refusals are sent again.
fn flood(addr: SocketAddr, client: usize) -> BTreeMap<Vec<u8>, u64> {
    let until = Instant::now() + DEADLINE;
    let mut c = connect(addr, DEADLINE);
    let mut outstanding: BTreeMap<u64, u64> = BTreeMap::new();
    let mut again = Vec::new();
    let (mut next, mut acknowledged) = (0u64, 0u64);
    let mut highest = BTreeMap::new();
    for _ in 0..PUTS * 1000 {
        if acknowledged >= PUTS {
            return highest;
        }
        assert!(Instant::now() < until, "client {client}: {acknowledged} of {PUTS} puts in {DEADLINE:?}");
        while outstanding.len() < OUTSTANDING {
            let index = again.pop().unwrap_or_else(|| {
                next += 1;
                next
            });
            let request = c.send_execute(Consistency::Linearizable, &put(client, index)).unwrap();
            outstanding.insert(request, index);
        }
        let reply = match c.recv_reply(Duration::from_millis(200)) {
            Ok(reply) => reply,
            Err(ClientError::Timeout { .. }) => continue,
            Err(e) => panic!("client {client}: {e}"),
        };
        match reply {
            ClientReply::Executed { request, outcome, .. } => {
                let index = outstanding.remove(&request).expect("a reply to an outstanding put");
                assert!(matches!(Outcome::decode(&outcome), Ok(Outcome::Ok { .. })), "put {index}");
                acknowledged += 1;
                let best = highest.entry(key(client, index)).or_insert(0);
                *best = (*best).max(index);
            }
            ClientReply::Error { request, code: ErrorCode::Busy | ErrorCode::NoQuorum, .. } => {
                again.extend(outstanding.remove(&request));
                std::thread::sleep(Duration::from_millis(1));
            }
            other => panic!("client {client}: unexpected {other:?}"),
        }
    }
    panic!("client {client}: out of steps");
}

/// The index held under `key` at the member at `addr`, read through the ring.
fn read(addr: SocketAddr, key: &[u8]) -> Option<u64> {
    let mut c = connect(addr, DEADLINE);
    let get =
        Action::Txn { guards: Vec::new(), then: vec![Op::Get { key: key.to_vec() }], otherwise: Vec::new() };
    let command = Command { session: Session::default(), action: get }.encode();
    let (_, outcome) = c.execute(Consistency::Linearizable, &command).unwrap();
    match Outcome::decode(&outcome) {
        Ok(Outcome::Ok { reads, .. }) => match reads.as_slice() {
            [Read::Get(entry)] => {
                entry.as_ref().map(|e| u64::from_be_bytes(e.value[..8].try_into().expect("an index")))
            }
            other => panic!("a get read {other:?}"),
        },
        other => panic!("a get answered {other:?}"),
    }
}

#[test]
fn a_flood_of_16_kib_puts_stays_within_the_memory_bound_and_loses_no_acknowledged_put() {
    init_logging();
    let mut nodes = Nodes::new("memory-flood", 3, RingMode::Bidirectional);
    nodes.flags = vec!["--checkpoint-every".into(), CHECKPOINT_EVERY.into()];
    for id in 1..=3 {
        nodes.start(id);
    }
    let addrs = nodes.addrs.clone();
    wait_until("a primary view of three", Duration::from_millis(50), 10_000, DEADLINE, || {
        addrs.iter().all(|&a| common::status(a).is_some_and(|s| s.primary && s.ring.len() == 3))
    });
    let highest: BTreeMap<Vec<u8>, u64> = std::thread::scope(|scope| {
        let floods: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let addr = addrs[client % addrs.len()];
                scope.spawn(move || flood(addr, client))
            })
            .collect();
        floods.into_iter().flat_map(|f| f.join().expect("a flooding client")).collect()
    });
    // Before anything else touches them: the peak of every member over the flood.
    let bound_kib = (2 * STATE_BYTES + ALLOWANCE_BYTES) / 1024;
    for id in 1..=3u16 {
        let peak_kib = process_peak_rss_kib(nodes.pid(id));
        assert!(peak_kib > 0, "n{id}'s VmHWM is readable");
        eprintln!("n{id} peaked at {} KiB of at most {bound_kib}", peak_kib);
        assert!(
            peak_kib <= bound_kib,
            "n{id} peaked at {} MiB; the bound is 2 x {} MiB of state + {} MiB",
            peak_kib / 1024,
            STATE_BYTES >> 20,
            ALLOWANCE_BYTES >> 20
        );
    }
    assert_eq!(highest.len() as u64, CLIENTS as u64 * KEYS, "every key was written");
    // Every acknowledged put is present: each key holds its last acknowledged put or a later one
    // (a later put may have committed without its reply being read), at every member.
    for (id, &addr) in (1..).zip(&addrs) {
        for (key, &acknowledged) in &highest {
            let held = read(addr, key);
            assert!(
                held.is_some_and(|index| index >= acknowledged),
                "n{id}: {} holds put {held:?}, but put {acknowledged} was acknowledged",
                String::from_utf8_lossy(key)
            );
        }
    }
}
