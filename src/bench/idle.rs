//! Figure 7, idle cost: the CPU a formed ring of five uses when nobody submits. PROTOCOL.md §3
//! parks the token for `idle_hold` after two quiet rotations, so an idle ring should cost a few
//! frames per second; the target is under 1% of one core for all five processes. The
//! processes' CPU time (every thread, from /proc) is read before and after the interval.

use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::report::Record;
use super::Plan;
use crate::ids::RingMode;

/// The ring size of this figure.
pub const NODES: usize = 5;
/// Time given to a fresh ring to go quiet and park its token before measuring.
const SETTLE: Duration = Duration::from_secs(1);

/// Measures the idle CPU of a fresh ring over `plan.idle`.
pub fn measure(exe: &std::path::Path, ring: RingMode, plan: &Plan) -> Result<Record, String> {
    let mut cluster = Cluster::start(exe, NODES, ring, None)?;
    cluster.wait_ready(plan.ready_deadline)?;
    std::thread::sleep(SETTLE);
    let before = cluster.cpu_seconds();
    let started = Instant::now();
    std::thread::sleep(plan.idle);
    let after = cluster.cpu_seconds();
    let wall = started.elapsed().as_secs_f64();
    let per_node: Vec<f64> = after.iter().zip(&before).map(|(a, b)| (a - b) / wall * 100.0).collect();
    let total: f64 = per_node.iter().sum();
    let busiest = per_node.iter().copied().fold(0.0, f64::max);
    Ok(Record::new("idle_cpu")
        .int("n", NODES as u64)
        .text("ring", ring.as_str())
        .num("seconds", wall)
        .num("core_percent", total)
        .num("busiest_node_percent", busiest))
}
