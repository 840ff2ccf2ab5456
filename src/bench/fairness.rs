//! Figure 5, fairness under skew: member 1 offers 100 times the load of the others (100 times
//! the messages and 16 times the window; its window is capped so its queue stays within the
//! node's limit). While every member is backlogged, i.e. until the first light member has sent
//! its last message, we count each member's commits; its share of them, its commits per token
//! rotation, and Jain's index (sum x)^2 / (n * sum x^2) over the backlogged members follow.
//! PROTOCOL.md §3 promises an equal share per rotation to every backlogged member.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::load::{self, Progress, Submitter, Workload};
use super::report::Record;
use super::Plan;
use crate::ids::RingMode;

/// The ring size of this figure.
pub const NODES: usize = 5;
/// Broadcasts a light member keeps outstanding: more than its share of the ring's window
/// (4,096 / 5), so it stays backlogged at the node.
const LIGHT_WINDOW: usize = 1024;
/// The heavy member's window.
const HEAVY_WINDOW: usize = 16 * LIGHT_WINDOW;
/// How much more the heavy member submits.
const SKEW: u64 = 100;
/// How often the light members are checked for running out.
const POLL: Duration = Duration::from_millis(5);
/// Field names of the per-member shares.
const SHARE_NAMES: [&str; NODES] = ["share_n1", "share_n2", "share_n3", "share_n4", "share_n5"];

/// Jain's fairness index of `x`: 1 when all are equal, 1/n when one has everything.
pub fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let squares: f64 = x.iter().map(|v| v * v).sum();
    if squares == 0.0 {
        return 0.0;
    }
    sum * sum / (x.len() as f64 * squares)
}

/// Measures shares under skew on fresh rings.
pub fn measure(exe: &std::path::Path, ring: RingMode, plan: &Plan) -> Result<Record, String> {
    let mut jains = Vec::new();
    let mut shares: Vec<Vec<f64>> = vec![Vec::new(); NODES];
    let mut per_rotation = Vec::new();
    for _ in 0..plan.repetitions {
        let mut cluster = Cluster::start(exe, NODES, ring, None)?;
        cluster.wait_ready(plan.ready_deadline)?;
        let (counts, rotations) = one_run(&mut cluster, plan)?;
        let total: f64 = counts.iter().sum();
        for (share, count) in shares.iter_mut().zip(&counts) {
            share.push(count / total);
        }
        jains.push(jain(&counts));
        per_rotation.push(counts[1..].iter().sum::<f64>() / (NODES - 1) as f64 / rotations.max(1) as f64);
    }
    let mut record = Record::new("fairness")
        .int("n", NODES as u64)
        .text("ring", ring.as_str())
        .int("skew", SKEW)
        .stat("jain", &jains)
        .stat("light_commits_per_rotation", &per_rotation);
    for (name, share) in SHARE_NAMES.iter().zip(&shares) {
        record = record.stat(name, share);
    }
    Ok(record)
}

/// One skewed run; returns each member's commits while all were backlogged and the token
/// rotations member 1 saw meanwhile.
fn one_run(cluster: &mut Cluster, plan: &Plan) -> Result<(Vec<f64>, u64), String> {
    let deadline = Instant::now() + plan.fairness_deadline + Duration::from_secs(30);
    let submitters = cluster
        .addrs
        .iter()
        .enumerate()
        .map(|(i, &addr)| {
            let (window, messages) = match i {
                0 => (HEAVY_WINDOW, plan.fairness_messages * SKEW),
                _ => (LIGHT_WINDOW, plan.fairness_messages),
            };
            Submitter {
                workload: Workload::Broadcast,
                addr,
                value_bytes: 64,
                window,
                messages: Some(messages),
                auth: None,
            }
        })
        .collect();
    load::under_load(submitters, deadline, |progress| backlogged_window(cluster, progress, plan))
}

fn backlogged_window(
    cluster: &Cluster,
    progress: &[Progress],
    plan: &Plan,
) -> Result<(Vec<f64>, u64), String> {
    // The window opens once every member has had a commit, so every client is connected and
    // its window is full; it closes when a light member runs out of messages.
    let until = Instant::now() + plan.fairness_deadline;
    let polls = plan.fairness_deadline.as_millis() as u64 / POLL.as_millis() as u64 + 1;
    for _ in 0..polls {
        if load::committed(progress).iter().all(|&c| c > 0) || Instant::now() >= until {
            break;
        }
        std::thread::sleep(POLL);
    }
    let rotations_before = cluster.status(0)?.rotations;
    let before = load::committed(progress);
    for _ in 0..polls {
        if progress[1..].iter().any(|p| p.exhausted.load(Ordering::Relaxed)) || Instant::now() >= until {
            break;
        }
        std::thread::sleep(POLL);
    }
    let after = load::committed(progress);
    let rotations = cluster.status(0)?.rotations.saturating_sub(rotations_before);
    let counts: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a.saturating_sub(*b) as f64).collect();
    if counts.contains(&0.0) {
        return Err(format!("a member committed nothing while backlogged: {counts:?}"));
    }
    Ok((counts, rotations))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_is_one_for_equal_shares_and_one_over_n_for_a_monopoly() {
        assert!((jain(&[3.0, 3.0, 3.0]) - 1.0).abs() < 1e-12);
        assert!((jain(&[9.0, 0.0, 0.0]) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(jain(&[0.0, 0.0]), 0.0);
    }
}
