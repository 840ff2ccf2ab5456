//! Figure 1, commit latency: one client, one put outstanding, 64-byte values, timed from submit
//! to the reply, which the member sends once the put is applied at commit (safe delivery: every
//! member holds it). Each repetition yields p50, p99 and p99.9 over its requests; the record
//! keeps median, min and max of each over the repetitions.

use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::load;
use super::report::{percentile, Record};
use super::Plan;
use crate::ids::RingMode;

/// The value size of the latency figure (the issue's).
pub const VALUE_BYTES: usize = 64;
/// Time allowed per timed request, on top of a fixed allowance, before a repetition fails.
const PER_REQUEST_ALLOWANCE: Duration = Duration::from_millis(20);

/// Percentiles of one repetition, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (sorted here).
    pub fn of(mut samples: Vec<f64>) -> Percentiles {
        samples.sort_by(f64::total_cmp);
        Percentiles {
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
            p999: percentile(&samples, 0.999),
        }
    }
}

/// Measures the commit latency at member 1 of a ready ring.
pub fn measure(cluster: &Cluster, ring: RingMode, plan: &Plan) -> Result<Record, String> {
    let runs = repeated(plan, |deadline| {
        load::one_outstanding(
            cluster.addrs[0],
            VALUE_BYTES,
            plan.latency_warmup,
            plan.latency_requests,
            deadline,
        )
    })?;
    Ok(record("commit_latency", cluster, ring, plan, &runs))
}

/// Measures the linearizable get latency at member 1 of a ready ring (after `measure`, so the
/// keys exist): one get outstanding, answered after its read barrier (docs/PROTOCOL.md §3).
pub fn measure_gets(cluster: &Cluster, ring: RingMode, plan: &Plan) -> Result<Record, String> {
    let runs = repeated(plan, |deadline| {
        load::one_outstanding_gets(cluster.addrs[0], plan.latency_warmup, plan.latency_requests, deadline)
    })?;
    Ok(record("lget_latency", cluster, ring, plan, &runs))
}

/// The percentiles of `plan.repetitions` runs of `probe`, each given its own deadline.
fn repeated(
    plan: &Plan,
    probe: impl Fn(Instant) -> Result<Vec<f64>, String>,
) -> Result<Vec<Percentiles>, String> {
    (0..plan.repetitions)
        .map(|_| {
            let deadline = Instant::now()
                + Duration::from_secs(10)
                + PER_REQUEST_ALLOWANCE * (plan.latency_requests + plan.latency_warmup) as u32;
            probe(deadline).map(Percentiles::of)
        })
        .collect()
}

fn record(
    name: &'static str,
    cluster: &Cluster,
    ring: RingMode,
    plan: &Plan,
    runs: &[Percentiles],
) -> Record {
    let column = |f: fn(&Percentiles) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    Record::new(name)
        .int("n", cluster.addrs.len() as u64)
        .text("ring", ring.as_str())
        .int("value_bytes", VALUE_BYTES as u64)
        .int("requests", plan.latency_requests as u64)
        .int("repetitions", plan.repetitions as u64)
        .stat("p50_us", &column(|p| p.p50))
        .stat("p99_us", &column(|p| p.p99))
        .stat("p999_us", &column(|p| p.p999))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered() {
        let samples: Vec<f64> = (0..5000).map(|i| f64::from((i * 7919) % 5000)).collect();
        let p = Percentiles::of(samples);
        assert!(p.p50 <= p.p99 && p.p99 <= p.p999);
        assert_eq!(p.p50, 2499.0);
        assert_eq!(p.p999, 4994.0);
    }
}
