//! The cost of authentication (issue #7): throughput of one 3-member bidirectional ring, every
//! member's client submitting, without a key, with `--key-file` (handshake plus a MAC on every
//! record) and with `--key-file --encrypt` (ChaCha20-Poly1305), at every value size of the
//! throughput figure. Each mode runs on a fresh ring, so the three differ in their links only.

use std::path::Path;

use super::cluster::{Cluster, Security};
use super::report::Record;
use super::throughput::one_run;
use super::Plan;
use crate::ids::RingMode;

/// Members of the measured ring.
const NODES: usize = 3;

/// One `auth_throughput` record per mode and value size.
pub fn measure(exe: &Path, plan: &Plan) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for security in [Security::Open, Security::Keyed, Security::Encrypted] {
        let mut cluster = Cluster::start_secured(exe, NODES, RingMode::Bidirectional, None, security)?;
        cluster.wait_ready(plan.ready_deadline)?;
        for &value_bytes in &plan.value_sizes {
            let mut runs = Vec::with_capacity(plan.repetitions);
            for _ in 0..plan.repetitions {
                runs.push(one_run(&mut cluster, value_bytes, plan)?);
            }
            let ops: Vec<f64> = runs.iter().map(|r| r.ops_per_s).collect();
            let mb: Vec<f64> = ops.iter().map(|o| o * value_bytes as f64 / 1e6).collect();
            let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_s_per_1000_ops).collect();
            records.push(
                Record::new("auth_throughput")
                    .text("links", security.as_str())
                    .int("n", NODES as u64)
                    .int("value_bytes", value_bytes as u64)
                    .stat("ops_per_s", &ops)
                    .stat("mb_per_s", &mb)
                    .stat("cpu_s_per_1000_ops", &cpu),
            );
        }
    }
    Ok(records)
}
