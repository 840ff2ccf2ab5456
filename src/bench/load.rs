//! The load the figures put on a ring: pipelined submitters (one client per member, a window of
//! broadcasts or puts outstanding) and the one-outstanding latency probe.
//!
//! A submitter counts commits in shared atomics so the measuring thread can read them at the
//! edges of its window without stopping the load; a refusal because the node is busy or has
//! no quorum (during a view change) is sent again, since the load must stay backlogged. Every
//! loop is bounded by a step count and a deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::auth::Auth;
use crate::client::{Client, ClientError};
use crate::replication::{Action, Command, Op, Outcome, Session};
use crate::wire::{ClientReply, Consistency, ErrorCode};

/// The longest single wait for a reply; the loop around it checks the stop flag and deadline.
const REPLY_WAIT: Duration = Duration::from_millis(50);
/// Pause after a refusal, so a busy node can drain.
const BUSY_BACKOFF: Duration = Duration::from_millis(1);
/// Timeout of every client call.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most steps of one submitter (each sends a window or waits for one reply).
const STEPS_MAX: u64 = 100_000_000;
/// Most refusals the latency probe retries in a row before giving up.
const REFUSALS_MAX: u32 = 10_000;

/// What a submitter sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Raw broadcasts, answered at their commit: ordering alone.
    Broadcast,
    /// Puts of the DVM state (`PUT_KEYS` keys per submitter, rewritten in turn), answered once
    /// applied at commit: what a client of the control plane pays.
    Put,
}

/// Keys each put submitter cycles through, so the state stays small however long it runs.
const PUT_KEYS: usize = 64;

/// What one submitter does.
#[derive(Clone, Debug)]
pub struct Submitter {
    /// Broadcasts or puts.
    pub workload: Workload,
    /// The member it talks to.
    pub addr: SocketAddr,
    /// Payload size.
    pub value_bytes: usize,
    /// Broadcasts outstanding at most.
    pub window: usize,
    /// Messages to send in all; `None`: until stopped.
    pub messages: Option<u64>,
    /// The cluster key's credentials, on a keyed ring.
    pub auth: Option<Auth>,
}

/// A submitter's progress, shared with the measuring thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Broadcasts committed.
    pub committed: AtomicU64,
    /// Set once the last message has been sent: from then on it is no longer backlogged.
    pub exhausted: AtomicBool,
}

/// Runs each of `submitters` on its own thread while `measure` reads their progress (one
/// `Progress` per submitter, in order); then stops them, waits for them to drain (bounded by
/// `deadline`), and returns what `measure` returned.
pub fn under_load<T>(
    submitters: Vec<Submitter>,
    deadline: Instant,
    measure: impl FnOnce(&[Progress]) -> Result<T, String>,
) -> Result<T, String> {
    let stop = AtomicBool::new(false);
    let progress: Vec<Progress> = submitters.iter().map(|_| Progress::default()).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = submitters
            .into_iter()
            .zip(&progress)
            .map(|(submitter, progress)| {
                let stop = &stop;
                scope.spawn(move || run(submitter, progress, stop, deadline))
            })
            .collect();
        let measured = measure(&progress);
        stop.store(true, Ordering::Relaxed);
        for handle in handles {
            handle.join().map_err(|_| "a submitter panicked".to_string())??;
        }
        measured
    })
}

/// Runs `submitter` until `stop` is set (then drains what is outstanding) or it has sent and
/// seen committed all its messages, or `deadline` passes.
pub fn run(
    submitter: Submitter,
    progress: &Progress,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<(), String> {
    let mut client = Client::connect_with(submitter.addr, CLIENT_TIMEOUT, submitter.auth.as_ref())
        .map_err(|e| e.to_string())?;
    let requests = encoded_requests(&submitter);
    let limit = submitter.messages.unwrap_or(u64::MAX);
    let mut sent: u64 = 0;
    for _ in 0..STEPS_MAX {
        let stopping = stop.load(Ordering::Relaxed);
        while !stopping && client.in_flight() < submitter.window && sent < limit {
            let request = &requests[sent as usize % requests.len()];
            match submitter.workload {
                Workload::Broadcast => client.send_broadcast(request),
                Workload::Put => client.send_execute(Consistency::Linearizable, request),
            }
            .map_err(|e| e.to_string())?;
            sent += 1;
        }
        if sent == limit {
            progress.exhausted.store(true, Ordering::Relaxed);
        }
        if client.in_flight() == 0 && (stopping || sent == limit) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            // Outstanding replies die with the connection; the ring does not care.
            return Ok(());
        }
        match client.recv_reply(REPLY_WAIT) {
            Ok(ClientReply::Committed { .. } | ClientReply::Executed { .. }) => {
                progress.committed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(ClientReply::Error { code: ErrorCode::Busy | ErrorCode::NoQuorum, .. }) => {
                // Sent again by the next fill.
                sent -= 1;
                std::thread::sleep(BUSY_BACKOFF);
            }
            Ok(other) => return Err(format!("unexpected reply {other:?}")),
            Err(ClientError::Timeout { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("submitter exhausted its steps".to_string())
}

/// What `submitter` sends, in turn: one broadcast payload, or one encoded put per key.
fn encoded_requests(submitter: &Submitter) -> Vec<Vec<u8>> {
    let value = vec![b'v'; submitter.value_bytes];
    match submitter.workload {
        Workload::Broadcast => vec![value],
        Workload::Put => (0..PUT_KEYS)
            .map(|key| {
                let key = format!("bench/{}/{key}", submitter.addr.port()).into_bytes();
                let action = Action::Put { key, value: value.clone() };
                Command { session: Session::default(), action }.encode()
            })
            .collect(),
    }
}

/// Commits `count` puts of `value_bytes` one at a time at `addr` after `warmup` untimed ones;
/// returns each latency in microseconds, submit to the reply (sent once the put is applied at
/// commit, that is held by every member: safe delivery).
pub fn one_outstanding(
    addr: SocketAddr,
    value_bytes: usize,
    warmup: usize,
    count: usize,
    deadline: Instant,
) -> Result<Vec<f64>, String> {
    let submitter =
        Submitter { workload: Workload::Put, addr, value_bytes, window: 1, messages: None, auth: None };
    timed(addr, &encoded_requests(&submitter), warmup, count, deadline)
}

/// Like `one_outstanding` with linearizable gets of the keys the puts write: answered after a
/// read barrier (docs/PROTOCOL.md §3), not ordered.
pub fn one_outstanding_gets(
    addr: SocketAddr,
    warmup: usize,
    count: usize,
    deadline: Instant,
) -> Result<Vec<f64>, String> {
    let requests: Vec<Vec<u8>> = (0..PUT_KEYS)
        .map(|key| {
            let key = format!("bench/{}/{key}", addr.port()).into_bytes();
            let action =
                Action::Txn { guards: Vec::new(), then: vec![Op::Get { key }], otherwise: Vec::new() };
            Command { session: Session::default(), action }.encode()
        })
        .collect();
    timed(addr, &requests, warmup, count, deadline)
}

/// Sends `requests` in turn, one outstanding, and times the last `count` of `warmup + count`.
fn timed(
    addr: SocketAddr,
    requests: &[Vec<u8>],
    warmup: usize,
    count: usize,
    deadline: Instant,
) -> Result<Vec<f64>, String> {
    let mut client = Client::connect(addr, CLIENT_TIMEOUT).map_err(|e| e.to_string())?;
    let mut latencies = Vec::with_capacity(count);
    let mut refusals = 0;
    for index in 0..warmup + count {
        loop {
            if Instant::now() >= deadline {
                return Err(format!("{} of {count} timed requests before the deadline", latencies.len()));
            }
            let started = Instant::now();
            match client.execute(Consistency::Linearizable, &requests[index % requests.len()]) {
                Ok((_, outcome)) => {
                    match Outcome::decode(&outcome) {
                        Ok(Outcome::Ok { .. }) => {}
                        other => return Err(format!("a request answered {other:?}")),
                    }
                    if index >= warmup {
                        latencies.push(started.elapsed().as_secs_f64() * 1e6);
                    }
                    break;
                }
                Err(e)
                    if e.is_retryable()
                        || matches!(e, ClientError::Rejected { code: ErrorCode::NoQuorum, .. }) =>
                {
                    refusals += 1;
                    if refusals > REFUSALS_MAX {
                        return Err(format!("refused {refusals} times: {e}"));
                    }
                    std::thread::sleep(BUSY_BACKOFF);
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(latencies)
}

/// Sum of every submitter's commits so far.
pub fn committed(progress: &[Progress]) -> Vec<u64> {
    progress.iter().map(|p| p.committed.load(Ordering::Relaxed)).collect()
}
