//! The `scale` figure: rings of 16 to 256 real `harness node` processes on loopback
//! (docs/PROTOCOL.md §4, O(n) links). Per ring size: the time from the first spawn until
//! member 1 shows a primary view of all n; the links each member holds in the stable view and
//! the peers it dialled to form it (from its status); idle CPU and RSS per member; commit
//! latency through the Rust client at member 1; and the longest client write gap when a member
//! is killed with SIGKILL (member 1, the middle one and the last, each restarted before the
//! next), with four writers homed around the ring.
//!
//! Targets (this 2-core machine): 256 members form within 15 s; idle under 0.2% of a core per
//! member; kill -9 write gap under 250 ms; commit latency growing by at most 2 x the one-way
//! floor per added member; at most 4 links per member in a stable view.

use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::load;
use super::recovery::{self, Fault};
use super::report::{percentile, Record};
use super::Plan;
use crate::ids::RingMode;

/// The ring sizes of the full figure (the issue's).
pub const SIZES: [usize; 4] = [16, 64, 128, 256];
/// Time a formed ring is given to settle (joins, token parked) before anything is measured.
const SETTLE: Duration = Duration::from_secs(2);
/// The formation target at 256 members, seconds.
const FORM_TARGET_S: f64 = 15.0;
/// Idle CPU target per member, % of one core.
const IDLE_TARGET_PERCENT: f64 = 0.2;
/// Write gap target after kill -9, ms.
const GAP_TARGET_MS: f64 = 250.0;
/// Links per member in a stable view.
const LINKS_TARGET: u64 = 4;
/// Commit latency growth per added member, in one-way floors.
const GROWTH_TARGET_FLOORS: f64 = 2.0;
/// Status requests per member before the figure gives up on it.
const STATUS_ATTEMPTS: usize = 5;
/// Value size of the latency probe.
const VALUE_BYTES: usize = 64;
/// Time allowed per timed request and member, on top of a fixed allowance: a commit takes
/// token rotations, each a hop per member.
const PER_REQUEST_MEMBER_ALLOWANCE: Duration = Duration::from_millis(2);
/// Member-requests of the latency probe: fewer requests on larger rings, so every size takes
/// about as long.
const PROBE_MEMBER_REQUESTS: usize = 16_000;

/// Measures one ring of `n` members.
pub fn measure(exe: &std::path::Path, n: usize, ring: RingMode, plan: &Plan) -> Result<Record, String> {
    let started = Instant::now();
    // The members' default token timeout, also in a quick run: a quick plan's short one makes
    // a large ring on a loaded 2-core machine suspect live members.
    let mut cluster = Cluster::start(exe, n, ring, None)?;
    let form_deadline = plan.ready_deadline.max(Duration::from_secs(120));
    cluster.wait_primary_of_all(0, form_deadline)?;
    let formed_s = started.elapsed().as_secs_f64();
    cluster.wait_ready(form_deadline)?;
    std::thread::sleep(SETTLE);

    let statuses = (0..n).map(|i| status_patiently(&cluster, i)).collect::<Result<Vec<_>, _>>()?;
    let links: Vec<u64> = statuses.iter().map(|s| u64::from(s.links_up)).collect();
    let dialled: Vec<u64> = statuses.iter().map(|s| s.links_dialled).collect();

    let cpu_before = cluster.cpu_seconds();
    let idle_started = Instant::now();
    std::thread::sleep(plan.idle);
    let cpu_after = cluster.cpu_seconds();
    let wall = idle_started.elapsed().as_secs_f64();
    let idle: Vec<f64> = cpu_after.iter().zip(&cpu_before).map(|(a, b)| (a - b) / wall * 100.0).collect();
    let rss_mib: Vec<f64> = cluster.rss_kib().iter().map(|&kib| kib as f64 / 1024.0).collect();

    let requests = (PROBE_MEMBER_REQUESTS / n).clamp(50, plan.latency_requests);
    let warmup = (requests / 10).min(plan.latency_warmup);
    let deadline = Instant::now()
        + Duration::from_secs(10)
        + PER_REQUEST_MEMBER_ALLOWANCE * (n * (requests + warmup)) as u32;
    let mut commit_us = load::one_outstanding(cluster.addrs[0], VALUE_BYTES, warmup, requests, deadline)?;
    commit_us.sort_by(f64::total_cmp);

    let homes = [0, n / 4, n / 2, 3 * n / 4];
    let victims = [0, n / 2, n - 1];
    let (view_ms, mut gap_ms) = recovery::trials(&mut cluster, &homes, &victims, Fault::Kill, plan)?;
    gap_ms.sort_by(f64::total_cmp);
    let view_max = view_ms.iter().copied().fold(0.0, f64::max);
    cluster.stop_all();

    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let idle_max = idle.iter().copied().fold(0.0, f64::max);
    let gap_max = gap_ms.last().copied().unwrap_or(f64::NAN);
    let links_max = links.iter().copied().max().unwrap_or(0);
    let mut met = vec![];
    if n == 256 {
        met.push(mark("form", formed_s <= FORM_TARGET_S));
    }
    met.push(mark("idle", mean(&idle) <= IDLE_TARGET_PERCENT));
    met.push(mark("gap", gap_max <= GAP_TARGET_MS));
    met.push(mark("links", links_max <= LINKS_TARGET));
    Ok(Record::new("scale")
        .int("n", n as u64)
        .text("ring", ring.as_str())
        .num("formed_s", formed_s)
        .int("links_max", links_max)
        .num("links_mean", mean(&links.iter().map(|&l| l as f64).collect::<Vec<_>>()))
        .int("dialled_max", dialled.iter().copied().max().unwrap_or(0))
        .num("idle_cpu_mean_pct", mean(&idle))
        .num("idle_cpu_max_pct", idle_max)
        .num("rss_mean_mib", mean(&rss_mib))
        .num("rss_max_mib", rss_mib.iter().copied().fold(0.0, f64::max))
        .int("commits", requests as u64)
        .num("commit_p50_us", percentile(&commit_us, 0.5))
        .num("commit_p99_us", percentile(&commit_us, 0.99))
        .num("kill_view_max_ms", view_max)
        .num("kill_gap_max_ms", gap_max)
        .text("targets", &met.join(", ")))
}

/// Member `index`'s status, asked up to `STATUS_ATTEMPTS` times: on a 2-core machine running
/// hundreds of members a member can take longer than one client timeout to be scheduled.
fn status_patiently(cluster: &Cluster, index: usize) -> Result<crate::wire::NodeStatus, String> {
    let mut last = String::new();
    for _ in 0..STATUS_ATTEMPTS {
        match cluster.status(index) {
            Ok(status) => return Ok(status),
            Err(e) => last = e,
        }
    }
    Err(format!("n{}: {last} ({STATUS_ATTEMPTS} attempts)", index + 1))
}

/// `what: met` or `what: NOT met`.
fn mark(what: &str, met: bool) -> String {
    format!("{what} {}", if met { "met" } else { "NOT met" })
}

/// The growth of the commit latency per added member between consecutive sizes, against
/// `GROWTH_TARGET_FLOORS` one-way floors; one record per pair of sizes measured.
pub fn growth(records: &[Record], one_way_us: f64) -> Vec<Record> {
    let sizes: Vec<(f64, f64)> = records
        .iter()
        .filter(|r| r.figure == "scale")
        .filter_map(|r| Some((r.get("n")?, r.get("commit_p50_us")?)))
        .collect();
    sizes
        .windows(2)
        .map(|pair| {
            let ((n0, p0), (n1, p1)) = (pair[0], pair[1]);
            let per_member = (p1 - p0) / (n1 - n0);
            let allowed = GROWTH_TARGET_FLOORS * one_way_us;
            Record::new("scale_growth")
                .text("from_to", &format!("{n0} -> {n1}"))
                .num("per_member_us", per_member)
                .num("one_way_floor_us", one_way_us)
                .text("target", &mark(&format!("<= {allowed:.1} us"), per_member <= allowed))
        })
        .collect()
}
