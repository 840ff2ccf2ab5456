//! The `large_state` figure (docs/PROTOCOL.md §3, §7): a ring of real `harness node` processes
//! with `--durability checkpoint` (or `fsync`) and default checkpointing grows its state to
//! hundreds of MiB or GiB through pipelined writers, one per member but the warm victim; then
//! the writers rewrite their keys (the state stays that size), the warm member is killed -9, its
//! data directory wiped (a replaced disk, so the whole state must stream to it) and it is
//! started again. A probe client puts 64 B values one at a time at member 1 all along.
//!
//! Reported: the views member 1 installed (the kill and the readmission should be the only
//! ones), probe put p50/p99/max at small state (the first `SMALL_STATE_MIB`) and through the
//! growth, the checkpoints and the transfer, the members' checkpoint write times (from their
//! logs), the transfer time and MB/s seen from outside (restart to readmission) and by the
//! receiver, the ring's commits per second during the transfer against before it, the longest
//! protocol step of any member, and RSS per member against the state.
//!
//! Targets: no view change but the kill's and the restart's; probe p99 within 2x of the small
//! state's and max under 50 ms; peak RSS at most 2 x state + 64 MiB; transfer at least 200 MB/s
//! while the ring keeps at least half its throughput.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::report::{percentile, Record};
use crate::client::{Client, ClientError};
use crate::config::Durability;
use crate::ids::{NodeId, RingMode};
use crate::replication::{Action, Command, Session};
use crate::wire::{ClientReply, Consistency, ErrorCode, NodeStatus, StandbyRole};

/// Probe samples taken before the state reaches this size (or an eighth of the target, if less)
/// are the small-state figure.
const SMALL_STATE_MIB: u64 = 64;
/// Status poll interval at member 1.
const POLL: Duration = Duration::from_millis(100);
/// Time the writers rewrite before the kill, to measure the throughput before the transfer.
const STEADY: Duration = Duration::from_secs(3);
/// Bytes each writer keeps in flight.
const WINDOW_BYTES: usize = 1 << 20;
/// Most requests each writer keeps in flight.
const WINDOW_MAX: usize = 64;
/// The longest single wait for a reply.
const REPLY_WAIT: Duration = Duration::from_millis(50);
/// Timeout of every client call.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to form, and to readmit the restarted member, at most.
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// A readmission counts once member 1 has shown the same view with the restarted member in it
/// this long: a member let in and dropped again every few seconds is not back.
const STABLE_VIEW: Duration = Duration::from_secs(3);
/// How long stopped writers wait for the replies still outstanding.
const DRAIN: Duration = Duration::from_secs(20);
/// Targets.
const P99_RATIO_TARGET: f64 = 2.0;
const MAX_TARGET_MS: f64 = 50.0;
const RSS_ALLOWANCE_MIB: f64 = 64.0;
const TRANSFER_TARGET_MB_S: f64 = 200.0;
const THROUGHPUT_KEPT_TARGET: f64 = 0.5;

/// One configuration of the figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Members.
    pub nodes: usize,
    /// Bytes of each value the writers put.
    pub value_bytes: usize,
    /// `--durability`.
    pub durability: Durability,
    /// The state grown to, MiB.
    pub state_mib: u64,
}

/// The runs of the figure: 3 members with 64 KiB and 1 KiB values, 5 members with 64 KiB, and
/// 3 members with `fsync`; the state is `state_mib`, lowered for a run whose members would not
/// fit in the memory this machine has free (`fits`).
pub fn runs(quick: bool, state_mib: u64) -> Vec<Run> {
    let run = |nodes, value_bytes, durability| Run { nodes, value_bytes, durability, state_mib };
    if quick {
        return vec![run(3, 64 << 10, Durability::Checkpoint)];
    }
    vec![
        run(3, 64 << 10, Durability::Checkpoint),
        run(3, 1 << 10, Durability::Checkpoint),
        run(5, 64 << 10, Durability::Checkpoint),
        run(3, 64 << 10, Durability::Fsync),
    ]
}

/// `run` with its state lowered (halved until it fits) so that every member at 2 x state +
/// 64 MiB fits in three quarters of `available_mib`.
pub fn fits(mut run: Run, available_mib: u64) -> Run {
    let need = |state_mib: u64| run.nodes as u64 * (2 * state_mib + 64);
    while run.state_mib > SMALL_STATE_MIB * 2 && need(run.state_mib) > available_mib / 4 * 3 {
        run.state_mib /= 2;
    }
    run
}

/// MiB this machine has available (`MemAvailable`), 0 if unknown.
pub fn available_mib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// What the writers and the probe share with the measuring thread.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Puts acknowledged, all writers.
    acked: AtomicU64,
    /// Bytes of new keys acknowledged, all writers.
    grown: AtomicU64,
    /// Probe latencies in µs, with the state bytes acknowledged when each was sent.
    probe: Mutex<Vec<(u64, f64)>>,
    /// The first error of a writer or the probe.
    failed: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, error: String) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.get_or_insert(error);
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }
}

fn put(key: String, value: &[u8]) -> Vec<u8> {
    Command {
        session: Session::default(),
        action: Action::Put { key: key.into_bytes(), value: value.to_vec() },
    }
    .encode()
}

/// Writer `writer`: puts `keys` new keys of `value_bytes` at `addr`, then rewrites them in turn
/// until stopped; a refusal (busy, no quorum) is sent again.
fn writer(
    addr: SocketAddr,
    writer: usize,
    value_bytes: usize,
    keys: u64,
    shared: &Shared,
    deadline: Instant,
) {
    let mut client = match Client::connect(addr, CLIENT_TIMEOUT) {
        Ok(client) => client,
        Err(e) => return shared.fail(format!("writer {writer}: {e}")),
    };
    let window = (WINDOW_BYTES / value_bytes).clamp(1, WINDOW_MAX);
    let value = vec![b'L'; value_bytes];
    let mut in_flight: BTreeMap<u64, u64> = BTreeMap::new();
    let mut retry = Vec::new();
    let mut next: u64 = 0;
    let mut drain_until = None;
    // Bounded by the deadline and the stop flag, checked every reply wait.
    while Instant::now() < deadline {
        let stopping = shared.stop.load(Ordering::Relaxed);
        if stopping {
            // Replies lost with a view change never come: drain for a while, then go.
            let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN);
            if in_flight.is_empty() || Instant::now() >= until {
                return;
            }
        }
        while !stopping && in_flight.len() < window {
            let index = retry.pop().unwrap_or_else(|| {
                next += 1;
                next - 1
            });
            let request = put(format!("large/{writer}/{:010}", index % keys), &value);
            match client.send_execute(Consistency::Linearizable, &request) {
                Ok(id) => in_flight.insert(id, index),
                Err(e) => return shared.fail(format!("writer {writer}: {e}")),
            };
        }
        match client.recv_reply(REPLY_WAIT) {
            Ok(ClientReply::Executed { request, .. } | ClientReply::Committed { request, .. }) => {
                if let Some(index) = in_flight.remove(&request) {
                    shared.acked.fetch_add(1, Ordering::Relaxed);
                    if index < keys {
                        shared.grown.fetch_add(value_bytes as u64, Ordering::Relaxed);
                    }
                }
            }
            Ok(ClientReply::Error { request, code: ErrorCode::Busy | ErrorCode::NoQuorum, .. }) => {
                retry.extend(in_flight.remove(&request));
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(other) => return shared.fail(format!("writer {writer}: unexpected reply {other:?}")),
            Err(ClientError::Timeout { .. }) => {}
            Err(e) => return shared.fail(format!("writer {writer}: {e}")),
        }
    }
    shared.fail(format!("writer {writer} ran into the deadline"));
}

/// The probe: one 64 B put at a time at `addr`, each timed from its first attempt to its
/// acknowledgement. Refusals during a view change and a reply that never came (sent again on a
/// fresh connection; the put rewrites one key, so a repeat is harmless) count in its latency.
fn probe(addr: SocketAddr, shared: &Shared, deadline: Instant) {
    let mut client = match Client::connect(addr, CLIENT_TIMEOUT) {
        Ok(client) => client,
        Err(e) => return shared.fail(format!("probe: {e}")),
    };
    let request = put("large/probe".to_string(), &[b'p'; 64]);
    // Bounded by the deadline and the stop flag.
    while !shared.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let grown = shared.grown.load(Ordering::Relaxed);
        let started = Instant::now();
        let outcome = loop {
            let retry = match client.execute(Consistency::Linearizable, &request) {
                Err(e) if e.is_retryable() => true,
                Err(ClientError::Rejected { code: ErrorCode::NoQuorum, .. }) => true,
                Err(ClientError::Timeout { .. }) => match Client::connect(addr, CLIENT_TIMEOUT) {
                    Ok(fresh) => {
                        client = fresh;
                        true
                    }
                    Err(e) => break Err(e),
                },
                other => break other,
            };
            if retry && Instant::now() >= deadline {
                break Err(ClientError::Timeout { addr, waiting_for: "a probe put", waited: CLIENT_TIMEOUT });
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        match outcome {
            Ok(_) => {
                if let Ok(mut samples) = shared.probe.lock() {
                    samples.push((grown, started.elapsed().as_secs_f64() * 1e6));
                }
            }
            Err(e) => return shared.fail(format!("probe: {e}")),
        }
    }
}

/// Durations in a log line's `in 1.234s` / `in 850.1ms` / `in 12µs` form, as milliseconds.
pub fn logged_ms(line: &str, after: &str) -> Option<f64> {
    let rest = &line[line.find(after)? + after.len()..];
    let token = rest.split([' ', ',', ')']).next()?;
    let (number, scale) = if let Some(n) = token.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = token.strip_suffix("µs") {
        (n, 1e-3)
    } else if let Some(n) = token.strip_suffix("ns") {
        (n, 1e-6)
    } else {
        (token.strip_suffix('s')?, 1e3)
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

/// What the measuring thread observed.
struct Observed {
    views: u64,
    grow_s: f64,
    before_ops_s: f64,
    during_ops_s: f64,
    transfer_s: f64,
    state_bytes: u64,
}

/// Measures one run.
pub fn measure(exe: &std::path::Path, ring: RingMode, run: Run) -> Result<Record, String> {
    let mut cluster = Cluster::start_durable(exe, run.nodes, ring, run.durability)?;
    cluster.wait_ready(READY_DEADLINE)?;
    let statuses = (0..run.nodes).map(|i| cluster.status(i)).collect::<Result<Vec<_>, _>>()?;
    let victim = statuses
        .iter()
        .rposition(|s| s.role == StandbyRole::Warm)
        .ok_or("no warm member to kill: every member is hot")?;
    let homes: Vec<usize> = (0..run.nodes).filter(|&i| i != victim).collect();
    let target = run.state_mib << 20;
    let keys = (target / run.value_bytes as u64).div_ceil(homes.len() as u64);
    let deadline = Instant::now() + Duration::from_secs(600 + run.state_mib);
    let shared = Shared::default();
    let addrs = cluster.addrs.clone();
    let observed = std::thread::scope(|scope| {
        for (writer_index, &home) in homes.iter().enumerate() {
            let (shared, addr) = (&shared, addrs[home]);
            scope.spawn(move || writer(addr, writer_index, run.value_bytes, keys, shared, deadline));
        }
        let shared_probe = &shared;
        scope.spawn(move || probe(addrs[0], shared_probe, deadline));
        let observed = observe(&mut cluster, &shared, victim, target, deadline);
        shared.stop.store(true, Ordering::Relaxed);
        observed
    });
    let observed = observed?;
    if let Some(failure) = shared.failure() {
        return Err(failure);
    }
    let statuses = (0..run.nodes).map(|i| cluster.status(i)).collect::<Result<Vec<_>, _>>()?;
    let peak_rss_mib = cluster.peak_rss_kib().iter().map(|&kib| kib as f64 / 1024.0).fold(0.0, f64::max);
    let rss_mib = cluster.rss_kib().iter().map(|&kib| kib as f64 / 1024.0).fold(0.0, f64::max);
    let checkpoint_ms: Vec<f64> = (0..run.nodes)
        .flat_map(|i| cluster.log_lines(i, "checkpoint at"))
        .filter_map(|line| logged_ms(&line, "written in "))
        .collect();
    let received_mb_s = cluster
        .log_lines(victim, "caught up to")
        .last()
        .and_then(|line| line.split(", ").last()?.split(' ').next()?.parse::<f64>().ok());
    // The log learned after the stream (docs/PROTOCOL.md §5.3, "Learning the log").
    let learned = cluster.log_lines(victim, "learned up to").last().cloned();
    let learn_ms = learned.as_deref().and_then(|line| logged_ms(line, " bytes in "));
    let learned_messages = learned.as_deref().and_then(|line| {
        let rest = &line[line.find(" (")? + 2..];
        rest.split(' ').next()?.parse::<u64>().ok()
    });
    let stopping = Instant::now();
    cluster.stop_all();
    let stop_s = stopping.elapsed().as_secs_f64();
    let record = record(
        run,
        ring,
        &observed,
        &shared,
        &statuses,
        peak_rss_mib,
        rss_mib,
        &checkpoint_ms,
        received_mb_s,
    );
    let record = record.num("learn_s", learn_ms.map_or(f64::NAN, |ms| ms / 1e3));
    let record = record.int("learned_messages", learned_messages.unwrap_or(0));
    // SIGTERM to exit: a member finishes the checkpoint it is writing first.
    Ok(record.num("stop_s", stop_s))
}

/// Polls member 1 through the growth, the kill and the restart.
fn observe(
    cluster: &mut Cluster,
    shared: &Shared,
    victim: usize,
    target: u64,
    deadline: Instant,
) -> Result<Observed, String> {
    let mut poller = Client::connect(cluster.addrs[0], CLIENT_TIMEOUT).map_err(|e| e.to_string())?;
    let mut views = 0;
    let mut last_view = poller.status().map_err(|e| e.to_string())?.view;
    let mut poll = |poller: &mut Client| -> Result<NodeStatus, String> {
        if let Some(failure) = shared.failure() {
            return Err(failure);
        }
        if Instant::now() >= deadline {
            return Err("the run passed its deadline".into());
        }
        std::thread::sleep(POLL);
        let status = poller.status().map_err(|e| e.to_string())?;
        if status.view != last_view {
            views += 1;
            last_view = status.view;
        }
        Ok(status)
    };
    let started = Instant::now();
    // Bounded by the deadline, which `poll` checks.
    while shared.grown.load(Ordering::Relaxed) < target {
        poll(&mut poller)?;
    }
    let grow_s = started.elapsed().as_secs_f64();
    let acked = || shared.acked.load(Ordering::Relaxed);
    let (steady_from, acked_from) = (Instant::now(), acked());
    while steady_from.elapsed() < STEADY {
        poll(&mut poller)?;
    }
    let before_ops_s = (acked() - acked_from) as f64 / steady_from.elapsed().as_secs_f64();
    cluster.kill(victim);
    let victim_id = NodeId(u16::try_from(victim + 1).unwrap_or(u16::MAX));
    while poll(&mut poller)?.ring.iter().any(|m| m.id == victim_id) {}
    if let Some(dir) = cluster.data_dir(victim) {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("wipe {}: {e}", dir.display()))?;
    }
    let (restarted, acked_at_restart) = (Instant::now(), acked());
    cluster.restart(victim)?;
    let mut admitted: Option<(crate::ids::ViewId, Instant, u64)> = None;
    let (admitted_at, acked_at_admission, state_bytes) = loop {
        let status = poll(&mut poller)?;
        // Member 1 keeps listing a member that gave up on the view until the next view change:
        // the restarted member must show the same primary view itself.
        let back = cluster.status(victim).is_ok_and(|own| own.primary && own.view == status.view);
        if back && status.primary && status.ring.iter().any(|m| m.id == victim_id) {
            match admitted {
                Some((view, at, acked_then)) if view == status.view => {
                    if at.elapsed() >= STABLE_VIEW {
                        break (at, acked_then, status.state_bytes);
                    }
                }
                _ => admitted = Some((status.view, Instant::now(), acked())),
            }
        } else {
            admitted = None;
        }
        if restarted.elapsed() > READY_DEADLINE {
            return Err(format!(
                "n{} was not back in a stable view within {READY_DEADLINE:?} ({views} views installed)",
                victim + 1
            ));
        }
    };
    let transfer_s = admitted_at.duration_since(restarted).as_secs_f64();
    let during_ops_s = (acked_at_admission - acked_at_restart) as f64 / transfer_s;
    Ok(Observed { views, grow_s, before_ops_s, during_ops_s, transfer_s, state_bytes })
}

#[allow(clippy::too_many_arguments)]
fn record(
    run: Run,
    ring: RingMode,
    observed: &Observed,
    shared: &Shared,
    statuses: &[NodeStatus],
    peak_rss_mib: f64,
    rss_mib: f64,
    checkpoint_ms: &[f64],
    received_mb_s: Option<f64>,
) -> Record {
    let small = (SMALL_STATE_MIB << 20).min((run.state_mib << 20) / 8);
    let samples = shared.probe.lock().map(|s| s.clone()).unwrap_or_default();
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let before = sorted(samples.iter().filter(|(g, _)| *g < small).map(|(_, us)| *us).collect());
    let through = sorted(samples.iter().filter(|(g, _)| *g >= small).map(|(_, us)| *us).collect());
    let through_max_ms = through.last().copied().unwrap_or(f64::NAN) / 1e3;
    let p99_ratio = percentile(&through, 0.99) / percentile(&before, 0.99);
    let state_mib = observed.state_bytes as f64 / f64::from(1 << 20);
    let transfer_mb_s = observed.state_bytes as f64 / 1e6 / observed.transfer_s;
    let kept = observed.during_ops_s / observed.before_ops_s;
    let marks = [
        mark("views == 2", observed.views == 2),
        mark(&format!("p99 <= {P99_RATIO_TARGET}x"), p99_ratio <= P99_RATIO_TARGET),
        mark(&format!("max < {MAX_TARGET_MS} ms"), through_max_ms < MAX_TARGET_MS),
        mark("RSS <= 2 x state + 64 MiB", peak_rss_mib <= 2.0 * state_mib + RSS_ALLOWANCE_MIB),
        mark(&format!("transfer >= {TRANSFER_TARGET_MB_S} MB/s"), transfer_mb_s >= TRANSFER_TARGET_MB_S),
        mark("throughput kept >= 0.5", kept >= THROUGHPUT_KEPT_TARGET),
    ];
    Record::new("large_state")
        .int("n", run.nodes as u64)
        .text("ring", ring.as_str())
        .int("value_bytes", run.value_bytes as u64)
        .text("durability", run.durability.as_str())
        .num("state_mib", state_mib)
        .num("grow_s", observed.grow_s)
        .int("views", observed.views)
        .num("small_p99_us", percentile(&before, 0.99))
        .num("put_p50_us", percentile(&through, 0.5))
        .num("put_p99_us", percentile(&through, 0.99))
        .num("put_max_ms", through_max_ms)
        .int("checkpoints", checkpoint_ms.len() as u64)
        .num("checkpoint_max_ms", checkpoint_ms.iter().copied().fold(0.0, f64::max))
        .num("transfer_s", observed.transfer_s)
        .num("transfer_mb_s", transfer_mb_s)
        .num("received_mb_s", received_mb_s.unwrap_or(f64::NAN))
        .num("ops_s_before", observed.before_ops_s)
        .num("ops_s_during", observed.during_ops_s)
        .int("max_step_us", statuses.iter().map(|s| s.max_step_us).max().unwrap_or(0))
        .num("rss_max_mib", rss_mib)
        .num("rss_peak_mib", peak_rss_mib)
        .num("peak_rss_per_state", peak_rss_mib / state_mib)
        .text("targets", &marks.join(", "))
}

fn mark(what: &str, met: bool) -> String {
    format!("{what} {}", if met { "met" } else { "NOT met" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_durations_parse_in_every_unit() {
        let line = "n1 protocol: checkpoint at 900: 123 bytes written in 1.5s";
        assert_eq!(logged_ms(line, "written in "), Some(1500.0));
        assert_eq!(logged_ms("written in 850.5ms", "written in "), Some(850.5));
        assert_eq!(logged_ms("x (5 bytes in 12µs, 3 MB/s)", "bytes in "), Some(0.012));
        assert_eq!(logged_ms("written in soon", "written in "), None);
        assert_eq!(logged_ms("nothing here", "written in "), None);
    }

    #[test]
    fn a_run_too_large_for_memory_is_halved_until_it_fits() {
        let run = Run { nodes: 5, value_bytes: 1024, durability: Durability::Checkpoint, state_mib: 2048 };
        assert_eq!(fits(run, 64 * 1024).state_mib, 2048);
        // 5 x (2 x 1024 + 64) = 10,560 MiB fits in three quarters of 16 GiB; 2048 does not.
        assert_eq!(fits(run, 16 * 1024).state_mib, 1024);
        assert_eq!(fits(run, 0).state_mib, SMALL_STATE_MIB * 2);
        assert_eq!(runs(true, 16).len(), 1);
    }
}
