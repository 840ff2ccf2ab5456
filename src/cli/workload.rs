//! The demo's workload: one pipelined client per node submitting that node's messages, and the
//! status polling that waits for every node to deliver everything.
//!
//! A submitter keeps at most `WINDOW` broadcasts outstanding and checks that each of its
//! messages is acknowledged exactly once; a refusal because the node is busy or
//! has no quorum yet is retried.
//! Every loop here is bounded by a step count and a deadline.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::{code_name, Client, ClientError};
use crate::ids::{NodeId, Seq};
use crate::wire::{ClientReply, ErrorCode, NodeStatus};

/// Most broadcasts one submitter has outstanding.
pub const WINDOW: usize = 256;
/// Every demo payload is this long.
pub const PAYLOAD_BYTES: usize = 64;
/// The longest single wait for a reply; the loop around it checks the overall deadline.
const REPLY_WAIT: Duration = Duration::from_millis(500);
/// Pause before resending refused broadcasts, so a busy node can drain its queue.
const BUSY_BACKOFF: Duration = Duration::from_millis(10);
/// Pause between connection attempts to a node that is still starting.
const CONNECT_RETRY: Duration = Duration::from_millis(50);
/// Most connection attempts to one node.
const CONNECT_ATTEMPTS_MAX: u32 = 2_000;
/// Pause between status polls.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Most status polls.
const POLLS_MAX: u32 = 10_000;

/// The `index`-th payload of node `id`: distinct over all nodes, padded to `PAYLOAD_BYTES`.
pub fn payload(id: NodeId, index: u64) -> Vec<u8> {
    let mut bytes = format!("n{}-{}", id.0, index).into_bytes();
    bytes.resize(PAYLOAD_BYTES, b'.');
    bytes
}

/// Connects to a node that may still be starting, until `deadline`.
pub fn connect_with_retry(addr: SocketAddr, deadline: Instant) -> Result<Client, ClientError> {
    let mut last = None;
    for _ in 0..CONNECT_ATTEMPTS_MAX {
        match Client::connect(addr, Duration::from_secs(2)) {
            Ok(client) => return Ok(client),
            Err(e) => last = Some(e),
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(CONNECT_RETRY);
    }
    Err(last.expect("at least one attempt was made"))
}

/// Submits `messages` payloads of node `id` through one pipelined client and returns the seq
/// of each acknowledgement. `committed` counts acknowledgements for the progress display.
pub fn submit_all(
    addr: SocketAddr,
    id: NodeId,
    messages: u64,
    committed: &AtomicU64,
    deadline: Instant,
) -> Result<Vec<Seq>, String> {
    let mut client = connect_with_retry(addr, deadline).map_err(|e| e.to_string())?;
    let mut outstanding: BTreeMap<u64, u64> = BTreeMap::new(); // request -> payload index
    let mut acknowledged = vec![false; messages as usize];
    let mut seqs = Vec::with_capacity(messages as usize);
    let mut refused: VecDeque<u64> = VecDeque::new();
    let mut next_index = 0;
    // Each step receives one reply or times out after REPLY_WAIT, so this bounds the loop
    // beyond the deadline check.
    let steps_max = messages * 1000 + 100_000;
    for _ in 0..steps_max {
        if seqs.len() as u64 == messages {
            return Ok(seqs);
        }
        if Instant::now() >= deadline {
            break;
        }
        while outstanding.len() < WINDOW {
            let index = match refused.pop_front() {
                Some(index) => index,
                None if next_index < messages => {
                    next_index += 1;
                    next_index - 1
                }
                None => break,
            };
            let request = client.send_broadcast(&payload(id, index)).map_err(|e| e.to_string())?;
            outstanding.insert(request, index);
        }
        let reply = match client.recv_reply(REPLY_WAIT) {
            Ok(reply) => reply,
            Err(ClientError::Timeout { .. }) => continue,
            Err(e) => return Err(e.to_string()),
        };
        match reply {
            ClientReply::Committed { request, seq } => {
                let index =
                    outstanding.remove(&request).ok_or(format!("request {request} acknowledged twice"))?;
                if std::mem::replace(&mut acknowledged[index as usize], true) {
                    return Err(format!("message {index} acknowledged twice"));
                }
                seqs.push(seq);
                committed.fetch_add(1, Ordering::Relaxed);
            }
            // Both pass: a full queue drains, and a ring still forming gets its quorum.
            ClientReply::Error { request, code: ErrorCode::Busy | ErrorCode::NoQuorum, .. } => {
                let index =
                    outstanding.remove(&request).ok_or(format!("request {request} answered twice"))?;
                refused.push_back(index);
                std::thread::sleep(BUSY_BACKOFF);
            }
            ClientReply::Error { code, message, .. } => {
                return Err(format!("broadcast refused ({}): {message}", code_name(code)));
            }
            ClientReply::Status { request, .. } => {
                return Err(format!("status reply to broadcast request {request}"));
            }
        }
    }
    Err(format!("{} of {messages} messages acknowledged before the deadline", seqs.len()))
}

/// Polls every node's status until each has delivered and committed `total` messages, or the
/// deadline passes. Returns the last status of every node (`None`: never answered) and
/// whether all of them got there.
pub fn wait_for_delivery(
    addrs: &[SocketAddr],
    total: u64,
    deadline: Instant,
) -> (Vec<Option<NodeStatus>>, bool) {
    let mut clients: Vec<Option<Client>> = addrs.iter().map(|_| None).collect();
    let mut statuses: Vec<Option<NodeStatus>> = addrs.iter().map(|_| None).collect();
    let done = |s: &Option<NodeStatus>| {
        s.as_ref().is_some_and(|s| s.delivered == total && s.committed_upto == total)
    };
    for _ in 0..POLLS_MAX {
        for ((addr, client), status) in addrs.iter().zip(&mut clients).zip(&mut statuses) {
            if done(status) {
                continue;
            }
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
        if statuses.iter().all(done) {
            return (statuses, true);
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    (statuses, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_distinct_and_of_fixed_length() {
        let a = payload(NodeId(1), 12);
        let b = payload(NodeId(11), 2);
        assert_eq!(a.len(), PAYLOAD_BYTES);
        assert_ne!(a, b);
        assert!(a.starts_with(b"n1-12."));
    }
}
