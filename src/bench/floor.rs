//! Figure 6, the floor: a raw TCP ping-pong over loopback between two threads of this process,
//! with TCP_NODELAY as on every ring and client link, and the ratio of our one-outstanding
//! latencies to (message steps x one-way floor). The steps are the simulator's cost table
//! (`crate::sim::cost::measure`): for the broadcast latency at the last member, the hops until
//! every member delivered (atomic broadcast); for the commit latency, the hops until the
//! sender's commit (distributed agreement) plus the client's request and reply.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::latency::Percentiles;
use super::report::Record;
use crate::ids::RingMode;
use crate::sim::cost;

/// Bytes per ping, the size of a small frame.
const PING_BYTES: usize = 64;
/// Untimed round trips first.
const WARMUP: usize = 1000;
/// How long one repetition may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// Hops the client adds: its request to the node and the reply back.
const CLIENT_HOPS: u64 = 2;

/// Turns an I/O error into the figure's error, naming what was being done.
fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("floor {what}: {e}")
}

/// Round-trip times of one repetition, microseconds.
fn ping_pong(round_trips: usize) -> Result<Vec<f64>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("bind"))?;
    let addr = listener.local_addr().map_err(io("bind"))?;
    let total = WARMUP + round_trips;
    let echo = std::thread::spawn(move || -> Result<(), String> {
        let (mut stream, _) = listener.accept().map_err(io("accept"))?;
        stream.set_nodelay(true).map_err(io("configure"))?;
        stream.set_read_timeout(Some(DEADLINE)).map_err(io("configure"))?;
        let mut buf = [0u8; PING_BYTES];
        for _ in 0..total {
            stream.read_exact(&mut buf).map_err(io("echo read"))?;
            stream.write_all(&buf).map_err(io("echo write"))?;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(addr).map_err(io("connect"))?;
    stream.set_nodelay(true).map_err(io("configure"))?;
    stream.set_read_timeout(Some(DEADLINE)).map_err(io("configure"))?;
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [7u8; PING_BYTES];
    let mut rtts = Vec::with_capacity(round_trips);
    for index in 0..total {
        if Instant::now() >= deadline {
            return Err(format!("floor: {index} of {total} round trips within {DEADLINE:?}"));
        }
        let started = Instant::now();
        stream.write_all(&buf).map_err(io("write"))?;
        stream.read_exact(&mut buf).map_err(io("read"))?;
        if index >= WARMUP {
            rtts.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    echo.join().map_err(|_| "floor: the echo thread panicked".to_string())??;
    Ok(rtts)
}

/// Measures the loopback round trip over `repetitions`; returns the record and the median
/// one-way time (half the median p50 round trip) in microseconds.
pub fn measure(round_trips: usize, repetitions: usize) -> Result<(Record, f64), String> {
    let mut runs = Vec::with_capacity(repetitions);
    for _ in 0..repetitions {
        runs.push(Percentiles::of(ping_pong(round_trips)?));
    }
    let p50: Vec<f64> = runs.iter().map(|p| p.p50).collect();
    let record = Record::new("floor")
        .int("round_trips", round_trips as u64)
        .stat("rtt_p50_us", &p50)
        .stat("rtt_p99_us", &runs.iter().map(|p| p.p99).collect::<Vec<f64>>());
    let one_way = record.get("rtt_p50_us").unwrap_or(0.0) / 2.0;
    Ok((record, one_way))
}

/// Which measured latency a floor ratio is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// Submit to the last member's agreed delivery, through the embedding API.
    BroadcastLast,
    /// A client's put, submit to the reply after its commit.
    Commit,
}

/// The cost table's steps beside a measured latency `p50_us` of an `n`-member ring.
pub fn ratio(n: usize, ring: RingMode, latency: Latency, p50_us: f64, one_way_us: f64) -> Record {
    let row = cost::measure(n, ring);
    let (name, steps) = match latency {
        Latency::BroadcastLast => ("broadcast_last", row.atomic.0),
        Latency::Commit => ("commit", row.agreement.0 + CLIENT_HOPS),
    };
    let floor_us = steps as f64 * one_way_us;
    Record::new("floor_ratio")
        .int("n", n as u64)
        .text("ring", ring.as_str())
        .text("latency", name)
        .int("steps", steps)
        .int("atomic_steps", row.atomic.0)
        .int("atomic_frames", row.atomic.1)
        .int("agreement_steps", row.agreement.0)
        .int("agreement_frames", row.agreement.1)
        .num("one_way_us", one_way_us)
        .num("floor_us", floor_us)
        .num("p50_us", p50_us)
        .num("ratio", if floor_us > 0.0 { p50_us / floor_us } else { f64::NAN })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_ping_pong_yields_positive_round_trips() {
        let rtts = ping_pong(50).unwrap();
        assert_eq!(rtts.len(), 50);
        assert!(rtts.iter().all(|&r| r > 0.0));
    }

    #[test]
    fn the_ratio_uses_the_cost_table_plus_the_client_hops() {
        let record = ratio(4, RingMode::Bidirectional, Latency::Commit, 120.0, 10.0);
        // PROTOCOL.md §6: agreement at n = 4, bi, is 4 hops; the client adds 2.
        assert_eq!(record.get("steps"), Some(6.0));
        assert_eq!(record.get("ratio"), Some(2.0));
        // Atomic broadcast at n = 4, bi, is 2 hops.
        let record = ratio(4, RingMode::Bidirectional, Latency::BroadcastLast, 40.0, 10.0);
        assert_eq!(record.get("steps"), Some(2.0));
        assert_eq!(record.get("ratio"), Some(2.0));
    }
}
