//! `harness demo`: a whole ring on loopback, a concurrent workload, and its verification.
//!
//! It starts `--nodes` `harness node` processes, submits `--messages` from every node at once,
//! then checks the promise: every node delivered every message exactly once, in the
//! same order (equal delivery digests over the same count), and every submission was
//! acknowledged exactly once at a distinct seq. The child-process guard stops every node it
//! started, also when a step fails or panics.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use super::args::DemoArgs;
use super::procs::{free_loopback_ports, Children};
use super::workload::{submit_all, wait_for_delivery};
use crate::ids::{NodeId, RingMode};
use crate::wire::NodeStatus;

/// How long the submissions may take in all.
const SUBMIT_DEADLINE: Duration = Duration::from_secs(120);
/// How long the nodes may take to deliver everything once submissions are acknowledged.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);
/// How long status polling may take after a failure, only to fill in the report.
const REPORT_DEADLINE: Duration = Duration::from_secs(2);
/// How long a node may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often progress is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What the demo found.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Nodes started.
    pub nodes: usize,
    /// Ring mode used.
    pub ring: RingMode,
    /// Messages submitted over all nodes.
    pub messages: u64,
    /// Each node's last status (`None`: it never answered).
    pub statuses: Vec<Option<NodeStatus>>,
    /// Each node's address.
    pub addrs: Vec<SocketAddr>,
    /// Everything that went wrong; empty means verified.
    pub problems: Vec<String>,
    /// Wall-clock time of the whole demo.
    pub seconds: f64,
    /// Where each node's stderr went (kept when the demo fails).
    pub log_dir: PathBuf,
}

impl DemoReport {
    /// Whether every check held.
    pub fn verified(&self) -> bool {
        self.problems.is_empty()
    }

    /// The one-object JSON summary (`messages` is the total over all nodes).
    pub fn json(&self) -> String {
        let delivered: Vec<String> =
            self.statuses.iter().map(|s| s.as_ref().map_or(0, |s| s.delivered).to_string()).collect();
        let digests: Vec<String> = self
            .statuses
            .iter()
            .map(|s| format!("\"{:016x}\"", s.as_ref().map_or(0, |s| s.delivery_digest)))
            .collect();
        format!(
            "{{\"nodes\":{},\"ring\":\"{}\",\"messages\":{},\"delivered\":[{}],\"digests\":[{}],\"verified\":{},\"seconds\":{:.2}}}",
            self.nodes,
            self.ring.as_str(),
            self.messages,
            delivered.join(","),
            digests.join(","),
            self.verified(),
            self.seconds
        )
    }

    /// The human summary, several lines.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "harness demo: {} nodes, ring {}, {} messages ({} per node) in {:.2} s\n",
            self.nodes,
            self.ring.as_str(),
            self.messages,
            self.messages / self.nodes.max(1) as u64,
            self.seconds
        );
        for (i, status) in self.statuses.iter().enumerate() {
            let addr = self.addrs.get(i).map_or(String::new(), SocketAddr::to_string);
            let _ = match status {
                Some(s) => writeln!(
                    text,
                    "  n{:<3} {addr:<21} delivered {:>8}  committed {:>8}  delivery digest {:016x}  state digest {:016x}",
                    i + 1,
                    s.delivered,
                    s.committed_upto,
                    s.delivery_digest,
                    s.state_digest
                ),
                None => writeln!(text, "  n{:<3} {addr:<21} no status", i + 1),
            };
        }
        if self.verified() {
            let _ = writeln!(
                text,
                "verified: every node delivered all {} messages exactly once, in the same order",
                self.messages
            );
        } else {
            let _ = writeln!(text, "NOT verified:");
            for problem in &self.problems {
                let _ = writeln!(text, "  - {problem}");
            }
            let _ = writeln!(text, "node logs: {}", self.log_dir.display());
        }
        text
    }
}

/// Runs the demo with `exe` as the node executable (normally `std::env::current_exe()`).
pub fn run_demo(args: &DemoArgs, exe: &Path) -> DemoReport {
    let started = Instant::now();
    let log_dir = std::env::temp_dir().join(format!("harness-demo-{}", std::process::id()));
    let mut report = DemoReport {
        nodes: args.nodes,
        ring: args.ring,
        messages: args.messages * args.nodes as u64,
        statuses: vec![None; args.nodes],
        addrs: Vec::new(),
        problems: Vec::new(),
        seconds: 0.0,
        log_dir: log_dir.clone(),
    };
    // Declared before anything can fail, so its Drop stops every child on every path out.
    let mut children = Children::new(STOP_GRACE);
    if let Err(problem) = run_cluster(args, exe, &log_dir, &mut children, &mut report) {
        report.problems.push(problem);
    }
    for ended in children.stop_all() {
        match ended.status {
            Ok(status) if status.success() && !ended.killed => {}
            Ok(status) if ended.killed => {
                report.problems.push(format!("{} ignored SIGTERM and was killed ({status})", ended.id))
            }
            Ok(status) => report.problems.push(format!("{} exited with {status}", ended.id)),
            Err(e) => report.problems.push(format!("{} could not be waited for: {e}", ended.id)),
        }
    }
    if report.verified() {
        let _ = std::fs::remove_dir_all(&log_dir);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Starts the nodes, runs the workload and checks the outcome; a returned error is fatal.
fn run_cluster(
    args: &DemoArgs,
    exe: &Path,
    log_dir: &Path,
    children: &mut Children,
    report: &mut DemoReport,
) -> Result<(), String> {
    std::fs::create_dir_all(log_dir).map_err(|e| format!("create {}: {e}", log_dir.display()))?;
    let addrs = free_loopback_ports(args.nodes).map_err(|e| format!("allocate loopback ports: {e}"))?;
    report.addrs = addrs.clone();
    let peers: Vec<String> = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    for (i, addr) in addrs.iter().enumerate() {
        let id = NodeId(i as u16 + 1);
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = log_dir.join(format!("node-{}.log", id.0));
        children
            .spawn(exe, id, &node_args, &log)
            .map_err(|e| format!("start {id} ({}): {e}", exe.display()))?;
    }
    eprintln!("harness demo: started {} nodes, logs in {}", args.nodes, log_dir.display());

    // After a failed workload the nodes are still asked for their status, briefly, so the
    // report shows how far each got.
    let delivery_deadline = match submit_everywhere(args, &addrs, children) {
        Ok(seqs) => match check_acknowledgements(seqs, report.messages) {
            Ok(()) => DELIVERY_DEADLINE,
            Err(problem) => {
                report.problems.push(problem);
                REPORT_DEADLINE
            }
        },
        Err(problem) => {
            report.problems.push(problem);
            REPORT_DEADLINE
        }
    };
    let (statuses, done) = wait_for_delivery(&addrs, report.messages, Instant::now() + delivery_deadline);
    report.statuses = statuses;
    if !done {
        return Err(format!(
            "not every node delivered {} messages within {delivery_deadline:?}",
            report.messages
        ));
    }
    let first = report.statuses[0].as_ref().expect("done means every node answered");
    for (i, status) in report.statuses.iter().enumerate() {
        let status = status.as_ref().expect("done means every node answered");
        if status.delivery_digest != first.delivery_digest {
            report
                .problems
                .push(format!("n{} delivered in a different order (delivery digest differs from n1)", i + 1));
        }
        if status.state_digest != first.state_digest {
            report
                .problems
                .push(format!("n{} committed a different history (state digest differs from n1)", i + 1));
        }
    }
    Ok(())
}

/// Runs one submitter thread per node and prints progress every second; returns every seq
/// acknowledged, per node.
fn submit_everywhere(
    args: &DemoArgs,
    addrs: &[SocketAddr],
    children: &mut Children,
) -> Result<Vec<Vec<u64>>, String> {
    let deadline = Instant::now() + SUBMIT_DEADLINE;
    let committed: Vec<AtomicU64> = addrs.iter().map(|_| AtomicU64::new(0)).collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = crossbeam_channel::bounded(addrs.len());
        for (i, (addr, counter)) in addrs.iter().zip(&committed).enumerate() {
            let done_tx = done_tx.clone();
            let id = NodeId(i as u16 + 1);
            scope.spawn(move || {
                let outcome = submit_all(*addr, id, args.messages, counter, deadline);
                let _ = done_tx.send((i, outcome));
            });
        }
        drop(done_tx);
        let mut results: Vec<Option<Result<Vec<u64>, String>>> = addrs.iter().map(|_| None).collect();
        // Bounded by the deadline: every submitter gives up by then and reports.
        while results.iter().any(Option::is_none) {
            match done_rx.recv_timeout(PROGRESS_INTERVAL) {
                Ok((i, outcome)) => results[i] = Some(outcome),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    print_progress(started, &committed, args.messages);
                    if let Some((id, status, log)) = children.first_exited() {
                        eprintln!("harness demo: {id} exited early ({status}); see {}", log.display());
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
        print_progress(started, &committed, args.messages);
        let mut seqs = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Some(Ok(node_seqs)) => seqs.push(node_seqs),
                Some(Err(problem)) => return Err(format!("n{}: {problem}", i + 1)),
                None => return Err(format!("n{}: submitter ended without a report", i + 1)),
            }
        }
        Ok(seqs)
    })
}

fn print_progress(started: Instant, committed: &[AtomicU64], messages: u64) {
    let mut line = format!("harness demo: {:>5.1}s committed", started.elapsed().as_secs_f64());
    for (i, counter) in committed.iter().enumerate() {
        let _ = write!(line, " n{} {}/{messages}", i + 1, counter.load(std::sync::atomic::Ordering::Relaxed));
    }
    eprintln!("{line}");
}

/// Every submission acknowledged once, at seqs that are exactly 1..=total: no seq given to two
/// submissions, none skipped.
fn check_acknowledgements(seqs: Vec<Vec<u64>>, total: u64) -> Result<(), String> {
    let mut all: Vec<u64> = seqs.into_iter().flatten().collect();
    all.sort_unstable();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_must_cover_every_seq_once() {
        assert!(check_acknowledgements(vec![vec![1, 3], vec![2, 4]], 4).is_ok());
        assert!(check_acknowledgements(vec![vec![1, 2], vec![2, 4]], 4).unwrap_err().contains("seq 2"));
        assert!(check_acknowledgements(vec![vec![1, 2]], 3).unwrap_err().contains("2 acknowledgements"));
        assert!(check_acknowledgements(vec![vec![2, 3]], 2).unwrap_err().contains("span"));
    }

    #[test]
    fn json_has_the_documented_shape() {
        let status = |delivered, digest| {
            Some(NodeStatus {
                member: crate::ids::Member { id: NodeId(1), incarnation: 1 },
                view: crate::ids::ViewId(1),
                primary: true,
                ring: Vec::new(),
                delivered,
                committed_upto: delivered,
                state_digest: digest,
                delivery_digest: digest,
                rotations: 0,
            })
        };
        let report = DemoReport {
            nodes: 2,
            ring: RingMode::Bidirectional,
            messages: 10,
            statuses: vec![status(10, 0xab), None],
            addrs: Vec::new(),
            problems: Vec::new(),
            seconds: 1.234,
            log_dir: PathBuf::new(),
        };
        assert_eq!(
            report.json(),
            "{\"nodes\":2,\"ring\":\"bi\",\"messages\":10,\"delivered\":[10,0],\
             \"digests\":[\"00000000000000ab\",\"0000000000000000\"],\"verified\":true,\"seconds\":1.23}"
        );
        assert!(report.summary().contains("verified: every node delivered all 10 messages"));
    }
}
