//! The recording client: one logical client doing one operation at a time on a few keys through
//! `ClusterClient` (failover, exactly-once sessions), printing every operation with its call and
//! return times as a history line (`check::history`). A `harness-check client` process runs one.
//!
//! The operations: reads (linearizable, or stale when asked, to show the checker catching a read
//! path that is not), puts of values unique to the client, deletes, and compare-and-set as a
//! transaction (`if key == expected (or missing) then put new else get key`). A write whose
//! request failed may have been applied: it is printed as indeterminate. A read that failed is
//! printed too (`?`) and constrains nothing.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::history::{Call, Operation, Ret};
use crate::client::{ClusterClient, ClusterError, ClusterOptions};
use crate::replication::{Check, Guard, Op, Outcome, Read};
use crate::rng::Rng;
use crate::wire::Consistency;

/// Nanoseconds of `CLOCK_MONOTONIC`: one clock for every process on the host, so histories of
/// different client processes can be merged.
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec()).unwrap_or(0)
        }
        // Linux always has it; without it no history can be ordered.
        Err(e) => panic!("CLOCK_MONOTONIC is unavailable: {e}"),
    }
}

/// What one recording client does.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Its number in the history (unique per run).
    pub client: u64,
    /// The members, tried in this order.
    pub addrs: Vec<SocketAddr>,
    /// Keys `k0..` it works on.
    pub keys: u64,
    /// How long it keeps calling operations.
    pub duration: Duration,
    /// Drives the choice of operations and keys.
    pub seed: u64,
    /// Reads served from the answering member's state: the deliberately broken read path.
    pub stale_reads: bool,
    /// Bounds one request to one member.
    pub request_timeout: Duration,
    /// Bounds one operation, failovers included; after it the outcome is unknown.
    pub op_deadline: Duration,
    /// Pause between operations, so several clients interleave rather than saturate the ring.
    pub think: Duration,
}

/// Most operations of one client, whatever the duration.
const OPS_MAX: u64 = 1_000_000;

/// Runs `workload`, writing one history line per operation to `out`; returns the count.
pub fn run(workload: &Workload, out: &mut impl Write) -> Result<u64, String> {
    let options = ClusterOptions {
        request_timeout: workload.request_timeout,
        deadline: workload.op_deadline,
        auth: None,
        ..ClusterOptions::default()
    };
    let mut client = ClusterClient::new(&workload.addrs, options).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(workload.seed);
    let consistency = if workload.stale_reads { Consistency::Stale } else { Consistency::Linearizable };
    let until = Instant::now() + workload.duration;
    // What this client last saw of each key: compare-and-set guesses it still holds.
    let mut last_seen: Vec<Option<String>> = vec![None; usize::try_from(workload.keys).unwrap_or(1)];
    let mut done = 0;
    while done < OPS_MAX && Instant::now() < until {
        let k = rng.below(workload.keys.max(1));
        let key = format!("k{k}");
        let slot = usize::try_from(k).unwrap_or(0);
        let value = format!("c{}-{done}", workload.client);
        let call = match rng.below(10) {
            0..=3 => Call::Get,
            4..=6 => Call::Put { value },
            7 => Call::Delete,
            _ => Call::Cas { expected: last_seen[slot].clone(), new: value },
        };
        let call_ns = monotonic_ns();
        let ret = perform(&mut client, &key, &call, consistency)?;
        let return_ns = (ret != Ret::Unknown).then(monotonic_ns);
        match (&call, &ret) {
            (Call::Get, Ret::Value(v)) | (Call::Cas { .. }, Ret::Failed(v)) => last_seen[slot] = v.clone(),
            (Call::Put { value }, Ret::Ok) | (Call::Cas { new: value, .. }, Ret::Ok) => {
                last_seen[slot] = Some(value.clone())
            }
            (Call::Delete, Ret::Ok | Ret::NotFound) => last_seen[slot] = None,
            _ => {}
        }
        let op = Operation { client: workload.client, key, call, ret, call_ns, return_ns };
        writeln!(out, "{op}").and_then(|()| out.flush()).map_err(|e| format!("write the history: {e}"))?;
        done += 1;
        if !workload.think.is_zero() {
            std::thread::sleep(workload.think);
        }
    }
    Ok(done)
}

/// A failed write may have been applied; a bad request is a bug of this client, not an outcome.
fn unknown_unless_bad(error: ClusterError) -> Result<Ret, String> {
    match error {
        ClusterError::BadRequest { reason } => Err(format!("the cluster refused a request as bad: {reason}")),
        ClusterError::Protocol { what } => Err(format!("protocol error: {what}")),
        _ => Ok(Ret::Unknown),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs one operation and turns its outcome into a result.
fn perform(client: &mut ClusterClient, key: &str, call: &Call, reads: Consistency) -> Result<Ret, String> {
    let k = key.as_bytes();
    let unexpected = |what: &str, outcome: &Outcome| Err(format!("{what} answered {outcome:?}"));
    match call {
        Call::Get => match client.get(k, reads) {
            Ok((entry, _)) => Ok(Ret::Value(entry.map(|e| text(&e.value)))),
            Err(e) => unknown_unless_bad(e),
        },
        Call::Put { value } => match client.put(k, value.as_bytes()) {
            Ok(Outcome::Ok { .. }) => Ok(Ret::Ok),
            Ok(other) => unexpected("a put", &other),
            Err(e) => unknown_unless_bad(e),
        },
        Call::Delete => match client.delete(k) {
            Ok(Outcome::Ok { .. }) => Ok(Ret::Ok),
            Ok(Outcome::NotFound { .. }) => Ok(Ret::NotFound),
            Ok(other) => unexpected("a delete", &other),
            Err(e) => unknown_unless_bad(e),
        },
        Call::Cas { expected, new } => {
            let check = match expected {
                Some(v) => Check::ValueEquals(v.as_bytes().to_vec()),
                None => Check::Missing,
            };
            let guards = vec![Guard { key: k.to_vec(), check }];
            let then = vec![Op::Put { key: k.to_vec(), value: new.as_bytes().to_vec() }];
            let otherwise = vec![Op::Get { key: k.to_vec() }];
            match client.txn(guards, then, otherwise) {
                Ok(Outcome::Ok { .. }) => Ok(Ret::Ok),
                Ok(Outcome::GuardFailed { reads, .. }) => match reads.as_slice() {
                    [Read::Get(entry)] => Ok(Ret::Failed(entry.as_ref().map(|e| text(&e.value)))),
                    _ => Err(format!("a compare-and-set answered with reads {reads:?}")),
                },
                Ok(other) => unexpected("a compare-and-set", &other),
                Err(e) => unknown_unless_bad(e),
            }
        }
    }
}
