//! Figure 3, throughput: every member's client submits puts with a window outstanding; over a
//! measuring window after a warm-up we count commits acknowledged to the clients (committed
//! ops/s, MB/s), the CPU time of every node process (CPU seconds per 1,000 commits: on 2 shared
//! cores this is what bounds throughput) and each node's RSS.

use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::load::{self, Progress, Submitter, Workload};
use super::report::Record;
use super::Plan;
use crate::ids::RingMode;

/// How long submitters may take to drain once stopped, beyond the measuring window.
const DRAIN_ALLOWANCE: Duration = Duration::from_secs(30);

/// One repetition's figures.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Run {
    pub(super) ops_per_s: f64,
    pub(super) cpu_s_per_1000_ops: f64,
    pub(super) rss_kib_max: f64,
}

/// Measures throughput with `value_bytes` values on a ready ring; returns the `throughput`
/// record.
pub fn measure(
    cluster: &mut Cluster,
    ring: RingMode,
    value_bytes: usize,
    plan: &Plan,
) -> Result<Record, String> {
    let mut runs = Vec::with_capacity(plan.repetitions);
    for _ in 0..plan.repetitions {
        runs.push(one_run(cluster, value_bytes, plan)?);
    }
    let n = cluster.addrs.len() as u64;
    let column = |f: fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    let ops = column(|r| r.ops_per_s);
    let mb: Vec<f64> = ops.iter().map(|o| o * value_bytes as f64 / 1e6).collect();
    Ok(Record::new("throughput")
        .int("n", n)
        .text("ring", ring.as_str())
        .int("value_bytes", value_bytes as u64)
        .int("window", plan.window as u64)
        .stat("ops_per_s", &ops)
        .stat("mb_per_s", &mb)
        .stat("cpu_s_per_1000_ops", &column(|r| r.cpu_s_per_1000_ops))
        .stat("rss_kib_max", &column(|r| r.rss_kib_max)))
}

pub(super) fn one_run(cluster: &mut Cluster, value_bytes: usize, plan: &Plan) -> Result<Run, String> {
    let deadline = Instant::now() + plan.warmup + plan.measure + DRAIN_ALLOWANCE;
    let submitters = cluster
        .addrs
        .iter()
        .map(|&addr| Submitter {
            workload: Workload::Put,
            addr,
            value_bytes,
            window: plan.window,
            messages: None,
            auth: cluster.auth.clone(),
        })
        .collect();
    load::under_load(submitters, deadline, |progress| measure_window(cluster, progress, plan))
}

/// Reads counters, statuses and CPU times at both edges of the measuring window.
fn measure_window(cluster: &mut Cluster, progress: &[Progress], plan: &Plan) -> Result<Run, String> {
    std::thread::sleep(plan.warmup);
    let committed_before: u64 = load::committed(progress).iter().sum();
    let cpu_before: f64 = cluster.cpu_seconds().iter().sum();
    let started = Instant::now();
    std::thread::sleep(plan.measure);
    let committed_after: u64 = load::committed(progress).iter().sum();
    let cpu_after: f64 = cluster.cpu_seconds().iter().sum();
    let elapsed = started.elapsed().as_secs_f64();
    let rss_kib_max = cluster.rss_kib().into_iter().max().unwrap_or(0) as f64;
    let ops = committed_after.saturating_sub(committed_before) as f64;
    if ops == 0.0 {
        return Err(format!("nothing committed in {:?}", plan.measure));
    }
    Ok(Run {
        ops_per_s: ops / elapsed,
        cpu_s_per_1000_ops: (cpu_after - cpu_before) / (ops / 1000.0),
        rss_kib_max,
    })
}
