//! Figure 4, recovery: a ring of five under load loses its last member, either to SIGKILL (the
//! kernel resets its links, so no timeout should be needed) or to SIGSTOP (silence: only the
//! token timeout finds it). A survivor's status is polled every millisecond; we record the time
//! from the signal until it shows a new primary view without the victim, and until its
//! committed prefix first grows after that view (the first commit in the new view).
//!
//! The signal time is taken just before the signal is sent; for SIGSTOP that includes starting
//! the `kill` utility (about a millisecond), so the figure errs on the slow side.

use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::load::{self, Submitter, Workload};
use super::report::Record;
use super::Plan;
use crate::client::Client;
use crate::ids::RingMode;

/// The ring size of this figure (the issue's).
pub const NODES: usize = 5;
/// Broadcasts each survivor's client keeps outstanding: load, not saturation.
const LOAD_WINDOW: usize = 32;
/// Status poll interval.
const POLL: Duration = Duration::from_millis(1);
/// Most polls of one repetition.
const POLLS_MAX: u32 = 200_000;

/// How the victim fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9`: the process is gone and the kernel closes its sockets.
    Kill,
    /// `kill -STOP`: the process is silent with its sockets open.
    Stop,
}

impl Fault {
    /// The name in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Kill => "sigkill",
            Fault::Stop => "sigstop",
        }
    }
}

/// Measures recovery from `fault` over `plan.repetitions` fresh rings.
pub fn measure(exe: &std::path::Path, ring: RingMode, fault: Fault, plan: &Plan) -> Result<Record, String> {
    let mut view_ms = Vec::new();
    let mut commit_ms = Vec::new();
    for _ in 0..plan.repetitions {
        let mut cluster = Cluster::start(exe, NODES, ring, Some(plan.token_timeout))?;
        cluster.wait_ready(plan.ready_deadline)?;
        let (view, commit) = one_run(&mut cluster, fault, plan)?;
        view_ms.push(view.as_secs_f64() * 1e3);
        commit_ms.push(commit.as_secs_f64() * 1e3);
    }
    Ok(Record::new("recovery")
        .int("n", NODES as u64)
        .text("ring", ring.as_str())
        .text("fault", fault.as_str())
        .int("token_timeout_ms", plan.token_timeout.as_millis() as u64)
        .stat("view_ms", &view_ms)
        .stat("first_commit_ms", &commit_ms))
}

/// One fault under load; returns the time to the new view and to its first commit.
fn one_run(cluster: &mut Cluster, fault: Fault, plan: &Plan) -> Result<(Duration, Duration), String> {
    let victim = NODES - 1;
    let allowance = plan.token_timeout * 10 + Duration::from_secs(10);
    let deadline = Instant::now() + plan.warmup + allowance * 2;
    let submitters = cluster.addrs[..victim]
        .iter()
        .map(|&addr| Submitter {
            workload: Workload::Put,
            addr,
            value_bytes: 64,
            window: LOAD_WINDOW,
            messages: None,
            auth: None,
        })
        .collect();
    load::under_load(submitters, deadline, |_| time_recovery(cluster, victim, fault, plan, allowance))
}

fn time_recovery(
    cluster: &mut Cluster,
    victim: usize,
    fault: Fault,
    plan: &Plan,
    allowance: Duration,
) -> Result<(Duration, Duration), String> {
    std::thread::sleep(plan.warmup);
    let mut poller = Client::connect(cluster.addrs[0], Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let before = poller.status().map_err(|e| e.to_string())?;
    let signalled = Instant::now();
    match fault {
        Fault::Kill => cluster.kill(victim),
        Fault::Stop => cluster.signal(victim, "STOP")?,
    }
    let mut view_at: Option<(Duration, u64)> = None;
    for _ in 0..POLLS_MAX {
        let status = poller.status().map_err(|e| e.to_string())?;
        let elapsed = signalled.elapsed();
        match view_at {
            None if status.view > before.view && status.primary && status.ring.len() < NODES => {
                view_at = Some((elapsed, status.committed_upto));
            }
            Some((view, committed)) if status.committed_upto > committed => return Ok((view, elapsed)),
            _ => {}
        }
        if elapsed >= allowance {
            break;
        }
        std::thread::sleep(POLL);
    }
    Err(match view_at {
        None => format!("no new view within {allowance:?} of {}", fault.as_str()),
        Some(_) => format!("no commit within {allowance:?} of the new view after {}", fault.as_str()),
    })
}
