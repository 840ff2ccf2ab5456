//! Figures of the replicated state (docs/PROTOCOL.md §7): what a checkpoint of a large
//! state costs (snapshot bytes, time to take it, time to write it with fsync), what a warm
//! member's promotion step applies and costs after a long tail, and how long a ring of five takes to commit again
//! after both hot members are killed at once (so a warm member must be promoted).
//!
//! The checkpoint and promotion-step figures run the state machine and the checkpoint store in this
//! process (the same code a node runs); the promotion time runs real `harness node` processes.

use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::load::{self, Submitter, Workload};
use super::report::Record;
use super::Plan;
use crate::checkpoint::Store;
use crate::client::Client;
use crate::ids::{MsgId, NodeId, RingMode};
use crate::replication::replica::Replica;
use crate::replication::{Action, Checkpoint, CheckpointPolicy, Command, DvmState, Session, StateMachine};
use crate::wire::Message;

/// Keys of the checkpointed state (the 100k).
pub const KEYS: u64 = 100_000;
/// Bytes of each value.
const VALUE_BYTES: usize = 64;
/// The ring size of the promotion figure.
const NODES: usize = 5;
/// Status poll interval and most polls.
const POLL: Duration = Duration::from_millis(1);
const POLLS_MAX: u32 = 200_000;

/// The committed put of key `i`, at seq `i + 1`.
fn put(i: u64) -> Message {
    let action = Action::Put { key: format!("jobs/{i:08}").into_bytes(), value: vec![b'x'; VALUE_BYTES] };
    let payload = Command { session: Session::default(), action }.encode();
    Message {
        seq: i + 1,
        id: MsgId { origin: NodeId(1), incarnation: 1, counter: i + 1 },
        attempt: 0,
        payload: payload.into(),
    }
}

/// Snapshot size and the time to take it and to write it durably, over `repetitions`.
pub fn checkpoint(repetitions: usize) -> Result<Record, String> {
    let mut state = DvmState::default();
    for i in 0..KEYS {
        let m = put(i);
        state.apply(m.seq, m.id, &m.payload);
    }
    let dir = std::env::temp_dir().join(format!("harness-bench-checkpoint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let (mut store, _) =
        Store::open(&dir, &|| Box::new(crate::replication::DvmBuilder::new())).map_err(|e| e.to_string())?;
    let (mut take_ms, mut write_ms, mut total_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for r in 0..repetitions as u64 {
        let started = Instant::now();
        // Taken on the protocol thread: a frozen view, O(1).
        let snapshot = state.freeze();
        let taken = started.elapsed();
        let written =
            store.write_checkpoint(&Checkpoint::new(KEYS + r, snapshot), false).map_err(|e| e.to_string())?;
        bytes = written.bytes;
        take_ms.push(taken.as_secs_f64() * 1e3);
        write_ms.push(written.took.as_secs_f64() * 1e3);
        total_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Record::new("checkpoint")
        .int("keys", KEYS)
        .int("bytes", bytes)
        .stat("snapshot_ms", &take_ms)
        .stat("write_fsync_ms", &write_ms)
        .stat("ms", &total_ms))
}

/// A warm member's promotion step after `KEYS` committed puts since its checkpoint: the
/// commands it applies then (at most one slice, docs/PROTOCOL.md §7) and the time it takes, µs.
fn promotion_step(repetitions: usize) -> (u64, Vec<f64>) {
    let policy = CheckpointPolicy {
        every_commits: u64::MAX,
        interval: Duration::from_secs(86_400),
        tail_bytes_max: u64::MAX,
    };
    let mut replayed = 0;
    let took = (0..repetitions)
        .map(|_| {
            let mut replica = Replica::new(Box::new(DvmState::default()), policy);
            replica.set_hot(false);
            for i in 0..KEYS {
                replica.commit(put(i), false);
            }
            let started = Instant::now();
            let promotion = replica.set_hot(true).expect("a warm replica is promoted");
            replayed = replayed.max(promotion.replayed);
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    (replayed, took)
}

/// Kills both hot members (the two lowest ids) of a loaded ring of five at once and times the
/// first commit after it at a survivor; with the in-process replay rate.
pub fn promotion(exe: &std::path::Path, ring: RingMode, plan: &Plan) -> Result<Record, String> {
    let mut first_commit_ms = Vec::new();
    for _ in 0..plan.repetitions {
        let mut cluster = Cluster::start(exe, NODES, ring, Some(plan.token_timeout))?;
        cluster.wait_ready(plan.ready_deadline)?;
        first_commit_ms.push(one_run(&mut cluster, plan)?.as_secs_f64() * 1e3);
    }
    let (replayed, step_us) = promotion_step(plan.repetitions);
    Ok(Record::new("promotion")
        .int("n", NODES as u64)
        .text("ring", ring.as_str())
        .text("killed", "both hot (ids 1, 2)")
        .stat("first_commit_ms", &first_commit_ms)
        .int("tail", KEYS)
        .int("replayed", replayed)
        .stat("promotion_step_us", &step_us))
}

fn one_run(cluster: &mut Cluster, plan: &Plan) -> Result<Duration, String> {
    let allowance = plan.token_timeout * 10 + Duration::from_secs(10);
    let deadline = Instant::now() + plan.warmup + allowance * 2;
    let submitters = cluster.addrs[2..]
        .iter()
        .map(|&addr| Submitter {
            workload: Workload::Put,
            addr,
            value_bytes: 64,
            window: 32,
            messages: None,
            auth: None,
        })
        .collect();
    load::under_load(submitters, deadline, |_| time_promotion(cluster, plan, allowance))
}

fn time_promotion(cluster: &mut Cluster, plan: &Plan, allowance: Duration) -> Result<Duration, String> {
    std::thread::sleep(plan.warmup);
    let mut poller = Client::connect(cluster.addrs[2], Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let before = poller.status().map_err(|e| e.to_string())?;
    let killed = Instant::now();
    cluster.kill(0);
    cluster.kill(1);
    let mut view_committed = None;
    for _ in 0..POLLS_MAX {
        let status = poller.status().map_err(|e| e.to_string())?;
        match view_committed {
            None if status.view > before.view && status.primary && status.ring.len() == NODES - 2 => {
                view_committed = Some(status.committed_upto);
            }
            Some(committed) if status.committed_upto > committed => return Ok(killed.elapsed()),
            _ => {}
        }
        if killed.elapsed() >= allowance {
            break;
        }
        std::thread::sleep(POLL);
    }
    Err(format!("no commit within {allowance:?} of killing both hot members"))
}
