//! The demo's (and the fault tests') workload: one pipelined submitter per node that fails over
//! to another node when its node dies, and the status polling that waits for the ring to settle.
//!
//! Every send of a message is a new *attempt* with its own payload (`payload`), so a delivery
//! log shows exactly which attempt was ordered. That matters after a crash: an attempt whose
//! node died before acknowledging may or may not have been committed, and resending the very
//! same bytes would make a legitimate retry look like a duplicate delivery. Each attempt ends
//! `Acked` (with its seq), `Refused` (the node said it was not committed) or `Lost` (the
//! connection broke or stalled first). Every loop here is bounded by a step count and a deadline.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::{code_name, Client, ClientError};
use crate::ids::{NodeId, Seq};
use crate::node::payload_hash;
use crate::replication::{Action, Check, Command, Compare, Guard, Op, Session};
use crate::wire::{ClientReply, ErrorCode, NodeStatus};

/// Most broadcasts one submitter has outstanding.
pub const WINDOW: usize = 256;
/// Every workload payload is this long.
pub const PAYLOAD_BYTES: usize = 160;
/// The longest single wait for a reply; the loop around it checks the overall deadline.
const REPLY_WAIT: Duration = Duration::from_millis(100);
/// Pause before resending refused broadcasts, so a busy node can drain its queue.
const BUSY_BACKOFF: Duration = Duration::from_millis(10);
/// How long one connection attempt may take; a dead node refuses at once on loopback.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause after a failed connection attempt before trying the next node.
const CONNECT_RETRY: Duration = Duration::from_millis(20);
/// Pause between status polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Most status polls.
const POLLS_MAX: u32 = 100_000;

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed at this seq, acknowledged by node `via` (index into the address list).
    Acked {
        /// The seq of the commit.
        seq: Seq,
        /// Which node acknowledged it.
        via: usize,
    },
    /// The node answered that it did not commit it.
    Refused(ErrorCode),
    /// No answer: the connection broke or stalled, so it may or may not be committed.
    Lost,
}

/// One send of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// `payload_hash` of the bytes sent.
    pub payload_hash: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// What one submitter did: per message index, its attempts in order.
#[derive(Clone, Debug, Default)]
pub struct Submissions {
    /// The node whose messages these are.
    pub origin: NodeId,
    /// `attempts[index]`: every send of message `index`.
    pub attempts: Vec<Vec<Attempt>>,
}

/// What a submitter is asked to do.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Every node, member `i + 1` at `addrs[i]`.
    pub addrs: Vec<SocketAddr>,
    /// Messages per submitter.
    pub messages: u64,
    /// Spread the first sends evenly over this long (so faults meet a running workload);
    /// `None` sends as fast as the window allows.
    pub spread: Option<Duration>,
    /// A connection with requests outstanding and no reply for this long counts as dead.
    pub stall: Duration,
}

/// The bytes of attempt `attempt` of message `index` of node `origin`: a DVM transaction that
/// counts the node's messages under `n<origin>/count` (guarded by its version, so it always
/// writes) and records the attempt under `n<origin>/<index>`. Distinct over all nodes, messages
/// and attempts, and padded to `PAYLOAD_BYTES` in the value.
pub fn payload(origin: NodeId, index: u64, attempt: usize) -> Vec<u8> {
    let command = |value: Vec<u8>| {
        let count = format!("n{}/count", origin.0).into_bytes();
        let action = Action::Txn {
            guards: vec![Guard { key: count.clone(), check: Check::Version(Compare::Less, u64::MAX) }],
            then: vec![
                Op::Put { key: count, value: index.to_be_bytes().to_vec() },
                Op::Put { key: format!("n{}/{index}", origin.0).into_bytes(), value },
            ],
            otherwise: Vec::new(),
        };
        // Untracked: a resent attempt is a new payload, audited as such.
        Command { session: Session::default(), action }.encode()
    };
    let tag = format!("a{attempt}").into_bytes();
    let mut value = tag.clone();
    value.resize(PAYLOAD_BYTES.saturating_sub(command(tag).len()) + value.len(), b'.');
    command(value)
}

/// Submits `work.messages` messages of node `home + 1`, starting at that node and failing over
/// round the ring; `committed` counts acknowledgements for the progress display.
pub fn submit_all(
    work: &Workload,
    home: usize,
    committed: &AtomicU64,
    deadline: Instant,
) -> Result<Submissions, String> {
    let origin = NodeId(home as u16 + 1);
    let messages = work.messages as usize;
    let mut record = Submissions { origin, attempts: vec![Vec::new(); messages] };
    let mut target = home;
    let mut client: Option<Client> = None;
    let mut outstanding: BTreeMap<u64, usize> = BTreeMap::new(); // request -> message index
    let mut retry: VecDeque<usize> = VecDeque::new();
    let mut acked = 0;
    let mut next_new = 0;
    let mut last_progress = Instant::now();
    // After a NoQuorum refusal the node is cut off or still forming: send nothing more there and
    // move on once what is outstanding has been answered.
    let mut draining = false;
    let started = Instant::now();
    let steps_max = work.messages * 1000 + 100_000;
    for _ in 0..steps_max {
        if acked == messages {
            return Ok(record);
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let mut connection = match client.take() {
            Some(connection) => connection,
            None => match Client::connect(work.addrs[target], CONNECT_TIMEOUT) {
                Ok(connection) => {
                    last_progress = Instant::now();
                    draining = false;
                    connection
                }
                Err(_) => {
                    target = (target + 1) % work.addrs.len();
                    std::thread::sleep(CONNECT_RETRY);
                    continue;
                }
            },
        };
        let allowed_new = match work.spread {
            Some(spread) if !spread.is_zero() => {
                let fraction = now.duration_since(started).as_secs_f64() / spread.as_secs_f64();
                ((fraction * messages as f64) as usize + 1).min(messages)
            }
            _ => messages,
        };
        let mut broken = false;
        while outstanding.len() < WINDOW && !draining {
            let index = match retry.pop_front() {
                Some(index) => index,
                None if next_new < allowed_new => {
                    next_new += 1;
                    next_new - 1
                }
                None => break,
            };
            let attempt = record.attempts[index].len();
            let bytes = payload(origin, index as u64, attempt);
            let hash = payload_hash(&bytes);
            match connection.send_broadcast(&bytes) {
                Ok(request) => {
                    record.attempts[index].push(Attempt { payload_hash: hash, outcome: Outcome::Lost });
                    outstanding.insert(request, index);
                }
                Err(_) => {
                    // Never reached the node: not an attempt at all.
                    retry.push_front(index);
                    broken = true;
                    break;
                }
            }
        }
        if !broken && outstanding.is_empty() && draining {
            broken = true;
        }
        if !broken && !outstanding.is_empty() {
            match connection.recv_reply(REPLY_WAIT) {
                Ok(ClientReply::Committed { request, seq }) => {
                    let index =
                        outstanding.remove(&request).ok_or(format!("request {request} answered twice"))?;
                    set_outcome(&mut record, index, Outcome::Acked { seq, via: target });
                    acked += 1;
                    committed.fetch_add(1, Ordering::Relaxed);
                    last_progress = Instant::now();
                }
                Ok(ClientReply::Error { request, code, message }) => {
                    let index =
                        outstanding.remove(&request).ok_or(format!("request {request} answered twice"))?;
                    // An unknown outcome stays `Lost`: the audit allows it to be ordered or not.
                    if code != ErrorCode::OutcomeUnknown {
                        set_outcome(&mut record, index, Outcome::Refused(code));
                    }
                    retry.push_back(index);
                    last_progress = Instant::now();
                    match code {
                        // A full queue drains; stay.
                        ErrorCode::Busy => std::thread::sleep(BUSY_BACKOFF),
                        // Cut off, still forming, or leaving: try elsewhere.
                        ErrorCode::NoQuorum | ErrorCode::ShuttingDown | ErrorCode::OutcomeUnknown => {
                            draining = true
                        }
                        other => return Err(format!("broadcast refused ({}): {message}", code_name(other))),
                    }
                }
                Ok(other) => {
                    let request = crate::client::reply_request(&other);
                    return Err(format!("a reply other than a commit to broadcast request {request}"));
                }
                Err(ClientError::Timeout { .. }) => broken = last_progress.elapsed() >= work.stall,
                Err(_) => broken = true,
            }
        } else if !broken {
            // Paced and caught up: wait for the next message's turn.
            std::thread::sleep(REPLY_WAIT.min(Duration::from_millis(5)));
        }
        if broken {
            // Whatever is outstanding may or may not commit; its next attempt goes elsewhere.
            for index in std::mem::take(&mut outstanding).into_values() {
                retry.push_back(index);
            }
            target = (target + 1) % work.addrs.len();
            if draining {
                std::thread::sleep(BUSY_BACKOFF);
            }
        } else {
            client = Some(connection);
        }
    }
    Err(format!("{acked} of {messages} messages acknowledged before the deadline"))
}

fn set_outcome(record: &mut Submissions, index: usize, outcome: Outcome) {
    if let Some(last) = record.attempts[index].last_mut() {
        last.outcome = outcome;
    }
}

/// What the ring must reach before its logs are compared.
#[derive(Clone, Copy, Debug)]
pub struct Settled<'a> {
    /// `survivors[i]`: node `i + 1` ran from start to end, so it delivered the whole history.
    pub survivors: &'a [bool],
    /// Every node must have committed at least this far.
    pub committed_at_least: Seq,
}

/// Polls every node until all report the same `committed_upto` (at least the goal) and state
/// digest, and every survivor delivered all of it; or until the deadline. Returns the last
/// status of every node (`None`: never answered) and whether they got there.
pub fn wait_until_settled(
    addrs: &[SocketAddr],
    goal: Settled<'_>,
    deadline: Instant,
) -> (Vec<Option<NodeStatus>>, bool) {
    let mut clients: Vec<Option<Client>> = addrs.iter().map(|_| None).collect();
    let mut statuses: Vec<Option<NodeStatus>> = addrs.iter().map(|_| None).collect();
    for _ in 0..POLLS_MAX {
        for ((addr, client), status) in addrs.iter().zip(&mut clients).zip(&mut statuses) {
            if client.is_none() {
                *client = Client::connect(*addr, Duration::from_secs(1)).ok();
            }
            if let Some(c) = client {
                match c.status() {
                    Ok(s) => *status = Some(s),
                    // Reconnect on the next poll: the connection's state is unknown now.
                    Err(_) => *client = None,
                }
            }
        }
        if is_settled(&statuses, goal) {
            return (statuses, true);
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    (statuses, false)
}

fn is_settled(statuses: &[Option<NodeStatus>], goal: Settled<'_>) -> bool {
    let Some(Some(first)) = statuses.first() else { return false };
    statuses.iter().zip(goal.survivors).all(|(status, survivor)| {
        status.as_ref().is_some_and(|s| {
            s.committed_upto >= goal.committed_at_least
                && s.committed_upto == first.committed_upto
                && s.state_digest == first.state_digest
                && (!survivor || s.delivered == s.committed_upto)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_distinct_per_attempt_and_of_fixed_length() {
        let a = payload(NodeId(1), 12, 0);
        let b = payload(NodeId(11), 2, 0);
        assert_eq!(a.len(), PAYLOAD_BYTES);
        assert_ne!(a, b);
        assert_ne!(a, payload(NodeId(1), 12, 1));
        assert_eq!(b.len(), PAYLOAD_BYTES);
        let command = Command::decode(&a).expect("a DVM command");
        let Action::Txn { then, .. } = command.action else { panic!("a transaction") };
        assert_eq!(then[1], Op::Put { key: b"n1/12".to_vec(), value: then_value(&a) });
    }

    /// The value the second op of payload `bytes` writes.
    fn then_value(bytes: &[u8]) -> Vec<u8> {
        match Command::decode(bytes).expect("decodes").action {
            Action::Txn { then, .. } => match &then[1] {
                Op::Put { value, .. } => {
                    assert!(value.starts_with(b"a0."), "the attempt leads the padding");
                    value.clone()
                }
                other => panic!("not a put: {other:?}"),
            },
            other => panic!("not a txn: {other:?}"),
        }
    }

    #[test]
    fn a_dead_ring_is_reported_by_the_deadline_not_a_hang() {
        let addrs = crate::procs::free_loopback_ports(2).unwrap();
        let work = Workload { addrs, messages: 3, spread: None, stall: Duration::from_millis(100) };
        let started = Instant::now();
        let error = submit_all(&work, 0, &AtomicU64::new(0), Instant::now() + Duration::from_millis(300));
        assert!(error.unwrap_err().contains("0 of 3"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
