//! Figure 2, raw total ordering through the embedding API (`Node`, no state layer, no client
//! protocol): this process starts `n` nodes over loopback TCP.
//! - Broadcast latency: one 64-byte message at member 1 at a time, timed to its agreed delivery
//!   at member 1 (what Corosync's `lat` measures: send to own agreed delivery) and to the moment
//!   the last member has delivered it. Each repetition yields p50, p99 and p99.9; the record
//!   keeps median, min and max of each over the repetitions.
//! - Broadcast throughput: every member broadcasting with a window of its own messages
//!   outstanding (a message leaves the window at its own agreed delivery); messages delivered
//!   per second at member 1 (what Corosync's `tput` measures).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::cluster::loopback_addrs;
use super::latency::{Percentiles, VALUE_BYTES};
use super::report::Record;
use super::Plan;
use crate::config::CoreConfig;
use crate::ids::{Member, NodeId, RingMode};
use crate::node::{Node, NodeConfig, NodeOptions};

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(20);
/// Time allowed per timed message, on top of a fixed allowance, before a repetition fails.
const PER_MESSAGE_ALLOWANCE: Duration = Duration::from_millis(20);
/// The longest single wait for a delivery; the loop around it checks the stop flag.
const DELIVERY_WAIT: Duration = Duration::from_millis(50);
/// How long broadcasters may take to drain their windows once stopped.
const DRAIN_ALLOWANCE: Duration = Duration::from_secs(30);
/// Most steps of one broadcaster (each submits a window or takes one delivery).
const STEPS_MAX: u64 = 100_000_000;

/// Nodes of this process that stop when dropped, so a failed repetition leaves none running.
struct Ring {
    nodes: Vec<Node>,
}

impl Drop for Ring {
    fn drop(&mut self) {
        for node in self.nodes.drain(..) {
            if let Err(e) = node.stop() {
                eprintln!("harness-bench: stopping an in-process node: {e}");
            }
        }
    }
}

impl Ring {
    /// Starts `n` members of `ring` on fresh loopback ports, handing deliveries to this thread.
    fn start(n: usize, ring: RingMode) -> Result<Ring, String> {
        let addrs = loopback_addrs(n)?;
        let peers: BTreeMap<NodeId, SocketAddr> =
            addrs.iter().enumerate().map(|(i, addr)| (NodeId(i as u16 + 1), *addr)).collect();
        let universe: Vec<NodeId> = peers.keys().copied().collect();
        let mut started = Ring { nodes: Vec::with_capacity(n) };
        for (&id, &listen) in &peers {
            let mut core = CoreConfig::new(Member { id, incarnation: 1 }, universe.clone());
            core.ring_mode = ring;
            let config = NodeConfig { core, listen, peers: peers.clone(), auth: None };
            let node = Node::start_with(config, NodeOptions::default())
                .map_err(|e| format!("start n{}: {e}", id.0))?;
            started.nodes.push(node);
        }
        Ok(started)
    }

    /// Waits until every member has installed one primary view of all of them.
    fn wait_ready(&self, deadline: Duration) -> Result<(), String> {
        let until = Instant::now() + deadline;
        let n = self.nodes.len();
        // Bounded by the deadline: one poll per `POLL`.
        while Instant::now() < until {
            let ready = self
                .nodes
                .iter()
                .filter(|node| node.status().is_ok_and(|s| s.view.primary && s.view.ring.len() == n));
            if ready.count() == n {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        Err(format!("{n} in-process nodes did not form one primary view within {deadline:?}"))
    }

    /// Waits until `node` delivers `payload`; returns when. Other deliveries (there are none
    /// while only this probe submits) are skipped.
    fn delivered(node: &Node, payload: &[u8], until: Instant) -> Result<Instant, String> {
        // Bounded by the deadline: every wait ends by `until`.
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match node.deliveries().recv_timeout(left) {
                Ok(delivery) if *delivery.message.payload == *payload => return Ok(Instant::now()),
                Ok(_) => {}
                Err(e) => return Err(format!("{} did not deliver a probe: {e}", node.member())),
            }
        }
    }
}

/// The submitter's and the last member's latencies of one repetition, microseconds.
fn one_run(ring: &Ring, serial: &mut u64, plan: &Plan) -> Result<(Vec<f64>, Vec<f64>), String> {
    let count = plan.latency_warmup + plan.latency_requests;
    let until = Instant::now() + Duration::from_secs(10) + PER_MESSAGE_ALLOWANCE * count as u32;
    let (mut own, mut last) = (Vec::with_capacity(count), Vec::with_capacity(count));
    let submitter = &ring.nodes[0];
    for index in 0..count {
        *serial += 1;
        // A distinct payload per probe, so a delivery is matched to its submission.
        let mut payload = vec![b'b'; VALUE_BYTES];
        payload[..8].copy_from_slice(&serial.to_be_bytes());
        let started = Instant::now();
        submitter.submit(payload.clone()).map_err(|e| format!("submit: {e}"))?;
        let at_submitter = Ring::delivered(submitter, &payload, until)?;
        let mut at_last = at_submitter;
        for node in &ring.nodes[1..] {
            at_last = at_last.max(Ring::delivered(node, &payload, until)?);
        }
        if index >= plan.latency_warmup {
            own.push(at_submitter.duration_since(started).as_secs_f64() * 1e6);
            last.push(at_last.duration_since(started).as_secs_f64() * 1e6);
        }
    }
    Ok((own, last))
}

/// Measures the broadcast latency and, for each of `plan.value_sizes`, the broadcast throughput
/// of a fresh in-process ring of `n`.
pub fn measure(n: usize, ring_mode: RingMode, plan: &Plan) -> Result<Vec<Record>, String> {
    let ring = Ring::start(n, ring_mode)?;
    ring.wait_ready(plan.ready_deadline)?;
    let mut records = vec![latency(&ring, ring_mode, plan)?];
    for &value_bytes in &plan.value_sizes {
        let mut rates = Vec::with_capacity(plan.repetitions);
        for _ in 0..plan.repetitions {
            rates.push(throughput_run(&ring, value_bytes, plan)?);
        }
        let mb: Vec<f64> = rates.iter().map(|r| r * value_bytes as f64 / 1e6).collect();
        records.push(
            Record::new("broadcast_throughput")
                .int("n", n as u64)
                .text("ring", ring_mode.as_str())
                .int("value_bytes", value_bytes as u64)
                .int("window", plan.window as u64)
                .stat("msgs_per_s", &rates)
                .stat("mb_per_s", &mb),
        );
    }
    Ok(records)
}

fn latency(ring: &Ring, ring_mode: RingMode, plan: &Plan) -> Result<Record, String> {
    let n = ring.nodes.len();
    let (mut own, mut last) = (Vec::new(), Vec::new());
    let mut serial = 0;
    for _ in 0..plan.repetitions {
        let (run_own, run_last) = one_run(ring, &mut serial, plan)?;
        own.push(Percentiles::of(run_own));
        last.push(Percentiles::of(run_last));
    }
    let column = |runs: &[Percentiles], f: fn(&Percentiles) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    Ok(Record::new("broadcast_latency")
        .int("n", n as u64)
        .text("ring", ring_mode.as_str())
        .int("value_bytes", VALUE_BYTES as u64)
        .int("messages", plan.latency_requests as u64)
        .int("repetitions", plan.repetitions as u64)
        .stat("p50_us", &column(&own, |p| p.p50))
        .stat("p99_us", &column(&own, |p| p.p99))
        .stat("p999_us", &column(&own, |p| p.p999))
        .stat("last_p50_us", &column(&last, |p| p.p50))
        .stat("last_p99_us", &column(&last, |p| p.p99))
        .stat("last_p999_us", &column(&last, |p| p.p999)))
}

/// One repetition of the throughput figure: messages delivered per second at member 1.
fn throughput_run(ring: &Ring, value_bytes: usize, plan: &Plan) -> Result<f64, String> {
    let stop = AtomicBool::new(false);
    let delivered: Vec<AtomicU64> = ring.nodes.iter().map(|_| AtomicU64::new(0)).collect();
    let deadline = Instant::now() + plan.warmup + plan.measure + DRAIN_ALLOWANCE;
    std::thread::scope(|scope| {
        let handles: Vec<_> = ring
            .nodes
            .iter()
            .zip(&delivered)
            .map(|(node, delivered)| {
                let stop = &stop;
                scope.spawn(move || broadcaster(node, value_bytes, plan.window, delivered, stop, deadline))
            })
            .collect();
        std::thread::sleep(plan.warmup);
        let before = delivered[0].load(Ordering::Relaxed);
        let started = Instant::now();
        std::thread::sleep(plan.measure);
        let count = delivered[0].load(Ordering::Relaxed) - before;
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for handle in handles {
            handle.join().map_err(|_| "a broadcaster panicked".to_string())??;
        }
        if count == 0 {
            return Err(format!("nothing delivered at member 1 in {:?}", plan.measure));
        }
        Ok(count as f64 / elapsed)
    })
}

/// Keeps `window` of `node`'s own messages outstanding until `stop`, counting every delivery;
/// then takes deliveries until its own outstanding ones are in (or `deadline` passes), so the
/// next repetition starts from an empty pipeline.
fn broadcaster(
    node: &Node,
    value_bytes: usize,
    window: usize,
    delivered: &AtomicU64,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<(), String> {
    let me = node.member().id;
    let payload = vec![b't'; value_bytes];
    let mut outstanding = 0usize;
    for _ in 0..STEPS_MAX {
        let stopping = stop.load(Ordering::Relaxed);
        while !stopping && outstanding < window {
            node.submit(payload.clone()).map_err(|e| format!("{me} submit: {e}"))?;
            outstanding += 1;
        }
        if stopping && outstanding == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{me}: {outstanding} own messages undelivered at the deadline"));
        }
        match node.deliveries().recv_timeout(DELIVERY_WAIT) {
            Ok(delivery) => {
                delivered.fetch_add(1, Ordering::Relaxed);
                if delivery.message.id.origin == me {
                    outstanding -= 1;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(e) => return Err(format!("{me} deliveries: {e}")),
        }
    }
    Err(format!("{me}: broadcaster exhausted its steps"))
}
