//! The memory figure (docs/PROTOCOL.md §2.2, bounded resources): many clients, each with many
//! 16 KiB puts outstanding, flood a ring of three `harness node` processes; we read every
//! member's peak resident memory (`VmHWM`) afterwards, next to the committed ops/s and MB/s.
//! The target is at most 256 MiB per member: every buffer a member holds for other people's
//! bytes is capped in bytes, so the peak must not depend on how many clients push how hard.
//!
//! The puts rewrite a few keys per client (`load::Workload::Put`), so the state stays a few
//! megabytes and the peak is the buffers' doing, not the state's.

use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::load::{self, Progress, Submitter, Workload};
use super::report::Record;
use super::Plan;
use crate::ids::RingMode;

/// Members of the flooded ring.
pub const NODES: usize = 3;
/// Bytes of each put's value.
pub const VALUE_BYTES: usize = 16 * 1024;
/// The target peak resident memory of one member, KiB (256 MiB).
pub const TARGET_KIB: u64 = 256 * 1024;
/// How long submitters may take to drain once stopped, beyond the measuring window.
const DRAIN_ALLOWANCE: Duration = Duration::from_secs(30);

/// The load: `clients` connections spread evenly over the members, each keeping `window` puts
/// outstanding.
#[derive(Clone, Copy, Debug)]
pub struct Flood {
    /// Client connections in all.
    pub clients: usize,
    /// Puts each keeps outstanding.
    pub window: usize,
}

impl Flood {
    /// The figure's load for `plan`: 48 clients of 128 outstanding in the full run (six thousand
    /// 16 KiB puts, 96 MiB, outstanding at once), a quarter of that in the quick one.
    pub fn of(plan: &Plan) -> Flood {
        if plan.repetitions >= 3 {
            Flood { clients: 48, window: 128 }
        } else {
            Flood { clients: 12, window: 64 }
        }
    }
}

/// Floods a fresh ring `plan.repetitions` times (a fresh ring each time, so the peak of one run
/// does not carry into the next) and returns the `flood` record.
pub fn measure(exe: &std::path::Path, ring: RingMode, plan: &Plan) -> Result<Record, String> {
    let flood = Flood::of(plan);
    let (mut ops, mut peak) = (Vec::new(), Vec::new());
    for _ in 0..plan.repetitions {
        let mut cluster = Cluster::start(exe, NODES, ring, None)?;
        cluster.wait_ready(plan.ready_deadline)?;
        let (ops_per_s, hwm_kib) = one_run(&mut cluster, flood, plan)?;
        ops.push(ops_per_s);
        peak.push(hwm_kib);
    }
    let mb: Vec<f64> = ops.iter().map(|o| o * VALUE_BYTES as f64 / 1e6).collect();
    let peak_max = peak.iter().copied().fold(0.0, f64::max);
    Ok(Record::new("flood")
        .int("n", NODES as u64)
        .text("ring", ring.as_str())
        .int("value_bytes", VALUE_BYTES as u64)
        .int("clients", flood.clients as u64)
        .int("window", flood.window as u64)
        .stat("ops_per_s", &ops)
        .stat("mb_per_s", &mb)
        .stat("hwm_mib_max", &peak.iter().map(|k| k / 1024.0).collect::<Vec<_>>())
        .int("target_mib", TARGET_KIB / 1024)
        .text("met", if peak_max <= TARGET_KIB as f64 { "yes" } else { "no" }))
}

/// One flood: committed ops/s over the measuring window, and the highest `VmHWM` of any member
/// (KiB) once the submitters have drained.
fn one_run(cluster: &mut Cluster, flood: Flood, plan: &Plan) -> Result<(f64, f64), String> {
    let deadline = Instant::now() + plan.warmup + plan.measure + DRAIN_ALLOWANCE;
    let submitters = (0..flood.clients)
        .map(|i| Submitter {
            workload: Workload::Put,
            addr: cluster.addrs[i % cluster.addrs.len()],
            value_bytes: VALUE_BYTES,
            window: flood.window,
            messages: None,
            auth: cluster.auth.clone(),
        })
        .collect();
    let ops_per_s = load::under_load(submitters, deadline, |progress: &[Progress]| {
        std::thread::sleep(plan.warmup);
        let before: u64 = load::committed(progress).iter().sum();
        let started = Instant::now();
        std::thread::sleep(plan.measure);
        let after: u64 = load::committed(progress).iter().sum();
        match after.saturating_sub(before) {
            0 => Err(format!("nothing committed in {:?}", plan.measure)),
            ops => Ok(ops as f64 / started.elapsed().as_secs_f64()),
        }
    })?;
    let peak = cluster.peak_rss_kib().into_iter().max().unwrap_or(0);
    if peak == 0 {
        return Err("cannot read the members' VmHWM".to_string());
    }
    Ok((ops_per_s, peak as f64))
}
