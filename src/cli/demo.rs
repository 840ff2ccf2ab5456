//! `harness demo`: a whole ring on loopback, a concurrent workload, crashes, and the audit.
//!
//! It starts `--nodes` `harness node` processes, each writing a delivery log, and submits
//! `--messages` from every node at once. With `--kill N` it kills N random members with kill -9,
//! one after another at random times while the workload runs, and restarts each with the same
//! id and flags about a second later; their clients fail over to other nodes. At the end every
//! node must reach the same commit and state digest, and the delivery logs are audited
//! (`audit`). The child-process guard stops every node it started, also when a step fails.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::args::DemoArgs;
use super::audit::{audit, NodeLog};
use super::procs::Children;
use super::report::{DemoReport, Kill};
use super::workload::{submit_all, wait_until_settled, Outcome, Settled, Submissions, Workload};
use crate::ids::NodeId;
use crate::node::read_log;
use crate::procs::free_loopback_ports;
use crate::rng::Rng;
use crate::wire::NodeStatus;

/// How long the submissions may take in all.
const SUBMIT_DEADLINE: Duration = Duration::from_secs(120);
/// How long the nodes may take to settle once submissions are acknowledged.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
/// How long status polling may take after a failure, only to fill in the report.
const REPORT_DEADLINE: Duration = Duration::from_secs(2);
/// How long a node may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often progress is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Each kill gets a slot this long: killed at a random time early in it, restarted, rejoined.
const KILL_SLOT: Duration = Duration::from_secs(2);
/// A kill falls this many milliseconds into its slot.
const KILL_OFFSET_MS: (u64, u64) = (200, 1000);
/// How long a killed member stays down.
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// A connection silent this long with requests outstanding counts as dead.
const STALL: Duration = Duration::from_secs(3);

/// One planned fault: at `at` after the start, kill (or restart) `id`.
#[derive(Clone, Copy, Debug)]
struct Event {
    at: Duration,
    id: NodeId,
    restart: bool,
}

/// Runs the demo with `exe` as the node executable (normally `std::env::current_exe()`).
pub fn run_demo(args: &DemoArgs, exe: &Path) -> DemoReport {
    let started = Instant::now();
    let log_dir = std::env::temp_dir().join(format!("harness-demo-{}", std::process::id()));
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let mut report = DemoReport {
        nodes: args.nodes,
        ring: args.ring,
        messages: args.messages * args.nodes as u64,
        kills: Vec::new(),
        seed,
        statuses: vec![None; args.nodes],
        addrs: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
        seconds: 0.0,
        log_dir: log_dir.clone(),
        hot: 0,
    };
    // Declared before anything can fail, so its Drop stops every child on every path out.
    let mut children = Children::new(STOP_GRACE);
    let submissions =
        run_cluster(args, exe, &log_dir, &mut children, &mut report).unwrap_or_else(|problem| {
            report.problems.push(problem);
            None
        });
    // Stopped cleanly before the audit, so every delivery log is flushed.
    for ended in children.stop_all() {
        match ended.status {
            Ok(status) if status.success() && !ended.killed => {}
            Ok(status) if ended.killed => {
                report.problems.push(format!("{} ignored SIGTERM and was killed ({status})", ended.key))
            }
            Ok(status) => report.problems.push(format!("{} exited with {status}", ended.key)),
            Err(e) => report.problems.push(format!("{} could not be waited for: {e}", ended.key)),
        }
    }
    if let Some(submissions) = submissions {
        audit_logs(args, &log_dir, &submissions, &mut report);
    }
    if report.verified() {
        let _ = std::fs::remove_dir_all(&log_dir);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Where node `id` writes its delivery log.
fn delivery_log(log_dir: &Path, id: NodeId) -> std::path::PathBuf {
    log_dir.join(format!("deliveries-{}.log", id.0))
}

/// Starts the nodes, runs the workload and the faults, and waits for the ring to settle.
/// Returns what the submitters did when they finished; a returned error is fatal.
fn run_cluster(
    args: &DemoArgs,
    exe: &Path,
    log_dir: &Path,
    children: &mut Children,
    report: &mut DemoReport,
) -> Result<Option<Vec<Submissions>>, String> {
    std::fs::create_dir_all(log_dir).map_err(|e| format!("create {}: {e}", log_dir.display()))?;
    let addrs = free_loopback_ports(args.nodes).map_err(|e| format!("allocate loopback ports: {e}"))?;
    report.addrs = addrs.clone();
    let peers: Vec<String> = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    for (i, addr) in addrs.iter().enumerate() {
        let id = NodeId(i as u16 + 1);
        let log = delivery_log(log_dir, id).display().to_string();
        let node_args: Vec<String> = [
            "node",
            "--id",
            &id.0.to_string(),
            "--listen",
            &addr.to_string(),
            "--peers",
            &peers.join(","),
            "--ring",
            args.ring.as_str(),
            "--delivery-log",
            &log,
            "--hot",
            &args.hot.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let stderr = log_dir.join(format!("node-{}.log", id.0));
        children
            .spawn(exe, id, &node_args, &stderr)
            .map_err(|e| format!("start {id} ({}): {e}", exe.display()))?;
    }
    eprintln!("harness demo: started {} nodes, logs in {}", args.nodes, log_dir.display());

    let plan = plan_kills(args, &mut Rng::new(report.seed));
    let work = Workload {
        addrs: addrs.clone(),
        messages: args.messages,
        // Spread over the kill slots so every kill meets a running workload.
        spread: (args.kill > 0).then(|| KILL_SLOT * args.kill as u32 + RESTART_AFTER),
        stall: STALL,
    };
    let outcome = submit_everywhere(&work, &plan, log_dir, children, report);
    let (settle_deadline, submissions) = match outcome {
        Ok(submissions) => (SETTLE_DEADLINE, Some(submissions)),
        Err(problem) => {
            report.problems.push(problem);
            (REPORT_DEADLINE, None)
        }
    };
    let survivors: Vec<bool> =
        (1..=args.nodes).map(|i| !report.kills.iter().any(|k| k.id == NodeId(i as u16))).collect();
    let acked_seqs = submissions.as_deref().map(acked_seqs).unwrap_or_default();
    let goal = Settled { survivors: &survivors, committed_at_least: acked_seqs.last().copied().unwrap_or(0) };
    let (statuses, settled) = wait_until_settled(&addrs, goal, Instant::now() + settle_deadline);
    report.statuses = statuses;
    if !settled {
        return Err(format!(
            "the nodes did not reach one commit and state digest within {settle_deadline:?} \
             (survivors also delivering all of it)"
        ));
    }
    let Some(submissions) = submissions else { return Ok(None) };
    let lost =
        submissions.iter().flat_map(|s| s.attempts.iter().flatten()).any(|a| a.outcome == Outcome::Lost);
    if !lost {
        // Nothing was left in doubt, so the acknowledgements must be exactly 1..=total.
        if let Err(problem) = check_acknowledgements(&acked_seqs, report.messages) {
            report.problems.push(problem);
        }
    }
    let statuses: Vec<_> = report.statuses.iter().flatten().collect();
    let reference = statuses.iter().zip(&survivors).find(|(_, s)| **s).map(|(status, _)| *status);
    for (i, (status, survivor)) in statuses.iter().zip(&survivors).enumerate() {
        if *survivor && reference.is_some_and(|r| r.delivery_digest != status.delivery_digest) {
            report
                .problems
                .push(format!("n{} delivered in a different order (delivery digest differs)", i + 1));
        }
    }
    Ok(Some(submissions))
}

/// The hot members at the end (the `--hot` lowest ids: every member is back by then) must hold
/// one state: equal digests at one commit (docs/PROTOCOL.md §7).
fn check_hot_digests(args: &DemoArgs, report: &mut DemoReport) {
    let hot: Vec<&NodeStatus> = report.statuses.iter().take(args.hot).flatten().collect();
    if hot.len() < args.hot.min(args.nodes) {
        report.problems.push("a hot member gave no status".to_string());
    } else if hot
        .iter()
        .any(|s| s.committed_upto != hot[0].committed_upto || s.state_digest != hot[0].state_digest)
    {
        report.problems.push("the hot members' state digests differ".to_string());
    }
    report.hot = args.hot.min(args.nodes);
}

/// Picks `--kill` distinct victims and a random kill time in each one's slot.
fn plan_kills(args: &DemoArgs, rng: &mut Rng) -> Vec<Event> {
    let mut candidates: Vec<NodeId> = (1..=args.nodes as u16).map(NodeId).collect();
    let mut plan = Vec::new();
    for slot in 0..args.kill {
        let victim = candidates.swap_remove(rng.below(candidates.len() as u64) as usize);
        let at =
            KILL_SLOT * slot as u32 + Duration::from_millis(rng.range(KILL_OFFSET_MS.0, KILL_OFFSET_MS.1));
        plan.push(Event { at, id: victim, restart: false });
        plan.push(Event { at: at + RESTART_AFTER, id: victim, restart: true });
    }
    plan
}

/// Runs one submitter thread per node while this thread carries out `plan` and prints progress.
fn submit_everywhere(
    work: &Workload,
    plan: &[Event],
    log_dir: &Path,
    children: &mut Children,
    report: &mut DemoReport,
) -> Result<Vec<Submissions>, String> {
    let deadline = Instant::now() + SUBMIT_DEADLINE;
    let committed: Vec<AtomicU64> = work.addrs.iter().map(|_| AtomicU64::new(0)).collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = crossbeam_channel::bounded(work.addrs.len());
        for (i, counter) in committed.iter().enumerate() {
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let _ = done_tx.send((i, submit_all(work, i, counter, deadline)));
            });
        }
        drop(done_tx);
        let mut results: Vec<Option<Result<Submissions, String>>> = work.addrs.iter().map(|_| None).collect();
        let mut events = plan.iter().peekable();
        let mut commands = Vec::new();
        let mut last_progress = Instant::now();
        // Bounded by the deadline: every submitter gives up by then and reports; the plan is
        // carried out in full even when the submitters finish first, so every victim restarts.
        while results.iter().any(Option::is_none) || events.peek().is_some() {
            let next_event =
                events.peek().map_or(PROGRESS_INTERVAL, |e| e.at.saturating_sub(started.elapsed()));
            match done_rx.recv_timeout(next_event.min(PROGRESS_INTERVAL)) {
                Ok((i, outcome)) => results[i] = Some(outcome),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) if events.peek().is_none() => break,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => std::thread::sleep(next_event),
            }
            while let Some(event) = events.next_if(|e| e.at <= started.elapsed()) {
                let at = started.elapsed().as_secs_f64();
                if event.restart {
                    let stderr = log_dir.join(format!("node-{}-restarted.log", event.id.0));
                    let (_, command) =
                        commands.iter().find(|(id, _)| *id == event.id).ok_or("no command kept")?;
                    children
                        .restart(event.id, command, &stderr)
                        .map_err(|e| format!("restart {}: {e}", event.id))?;
                    eprintln!("harness demo: {at:>5.1}s restarted {}", event.id);
                    report.kills.iter_mut().filter(|k| k.id == event.id).for_each(|k| k.restarted = true);
                } else {
                    commands.push((
                        event.id,
                        children.kill(event.id).map_err(|e| format!("kill {}: {e}", event.id))?,
                    ));
                    eprintln!("harness demo: {at:>5.1}s killed {} with kill -9", event.id);
                    report.kills.push(Kill { id: event.id, at, restarted: false });
                }
            }
            if last_progress.elapsed() >= PROGRESS_INTERVAL {
                last_progress = Instant::now();
                print_progress(started, &committed, work.messages);
                if let Some((id, status, log)) = children.first_exited() {
                    eprintln!("harness demo: {id} exited early ({status}); see {}", log.display());
                }
            }
        }
        print_progress(started, &committed, work.messages);
        let mut all = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Some(Ok(submissions)) => all.push(submissions),
                Some(Err(problem)) => return Err(format!("n{}: {problem}", i + 1)),
                None => return Err(format!("n{}: submitter ended without a report", i + 1)),
            }
        }
        Ok(all)
    })
}

fn print_progress(started: Instant, committed: &[AtomicU64], messages: u64) {
    let mut line = format!("harness demo: {:>5.1}s committed", started.elapsed().as_secs_f64());
    for (i, counter) in committed.iter().enumerate() {
        let count = counter.load(std::sync::atomic::Ordering::Relaxed);
        line.push_str(&format!(" n{} {count}/{messages}", i + 1));
    }
    eprintln!("{line}");
}

/// Every acknowledged seq, sorted.
fn acked_seqs(submissions: &[Submissions]) -> Vec<u64> {
    let mut seqs: Vec<u64> = submissions
        .iter()
        .flat_map(|s| s.attempts.iter().flatten())
        .filter_map(|a| match a.outcome {
            Outcome::Acked { seq, .. } => Some(seq),
            _ => None,
        })
        .collect();
    seqs.sort_unstable();
    seqs
}

/// Every submission acknowledged once, at seqs that are exactly 1..=total: no seq given to two
/// submissions, none skipped. `all` is sorted.
fn check_acknowledgements(all: &[u64], total: u64) -> Result<(), String> {
    if all.len() as u64 != total {
        return Err(format!("{} acknowledgements for {total} submissions", all.len()));
    }
    if let Some(pair) = all.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("seq {} acknowledged to two submissions", pair[0]));
    }
    if all.first() != Some(&1) || all.last() != Some(&total) {
        return Err(format!("acknowledged seqs span {:?}..={:?}, not 1..={total}", all.first(), all.last()));
    }
    Ok(())
}

/// Reads every node's delivery log and audits them, after the nodes stopped.
fn audit_logs(args: &DemoArgs, log_dir: &Path, submissions: &[Submissions], report: &mut DemoReport) {
    let mut logs = Vec::new();
    for id in (1..=args.nodes as u16).map(NodeId) {
        match read_log(&delivery_log(log_dir, id)) {
            Ok(lines) => logs.push(NodeLog { id, survivor: !report.kills.iter().any(|k| k.id == id), lines }),
            Err(problem) => report.problems.push(problem),
        }
    }
    let findings = audit(submissions, &logs);
    report.problems.extend(findings.problems);
    report.notes.extend(findings.notes);
    check_hot_digests(args, report);
    let first = report.statuses.first().cloned().flatten();
    for (i, status) in report.statuses.iter().enumerate() {
        match (status, &first) {
            (Some(s), Some(f))
                if s.committed_upto == f.committed_upto && s.state_digest == f.state_digest => {}
            _ => report.problems.push(format!("n{} ended at another commit or state digest than n1", i + 1)),
        }
    }
    if let Some(line_count) = logs.iter().find(|l| l.survivor).map(|l| l.lines.len() as u64) {
        if first.is_some_and(|f| f.committed_upto != line_count) {
            report
                .problems
                .push(format!("the survivors' logs hold {line_count} lines, not the committed count"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_must_cover_every_seq_once() {
        assert!(check_acknowledgements(&[1, 2, 3, 4], 4).is_ok());
        assert!(check_acknowledgements(&[1, 2, 2, 4], 4).unwrap_err().contains("seq 2"));
        assert!(check_acknowledgements(&[1, 2], 3).unwrap_err().contains("2 acknowledgements"));
        assert!(check_acknowledgements(&[2, 3], 2).unwrap_err().contains("span"));
    }

    #[test]
    fn kills_pick_distinct_victims_each_restarted_within_its_slot() {
        let args = DemoArgs {
            nodes: 5,
            messages: 1,
            ring: crate::ids::RingMode::Bidirectional,
            json: false,
            kill: 4,
            hot: 2,
        };
        let plan = plan_kills(&args, &mut Rng::new(3));
        assert_eq!(plan.len(), 8);
        let mut victims: Vec<NodeId> = plan.iter().filter(|e| !e.restart).map(|e| e.id).collect();
        victims.sort();
        victims.dedup();
        assert_eq!(victims.len(), 4);
        for (slot, pair) in plan.chunks(2).enumerate() {
            assert_eq!(pair[1].at, pair[0].at + RESTART_AFTER);
            assert!(pair[0].at >= KILL_SLOT * slot as u32 && pair[1].at <= KILL_SLOT * (slot as u32 + 1));
        }
    }
}
