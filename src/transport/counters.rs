//! Counters of what the transport refused or cut short, shared with the node so operators and
//! tests can see that a limit was hit (STYLE.md: "Reasons are enums, logged and counted").
//!
//! Written by the event loop (and, for `busy_replies`, the protocol thread) with relaxed atomics:
//! each is a tally read now and then, never used to synchronise anything.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::ids::NodeId;

/// Most links whose bytes are published (two samples each in a status of at most
/// `metrics::SAMPLES_MAX`); a member has its two ring neighbours and a few more at most.
pub const LINKS_PUBLISHED_MAX: usize = 32;

/// Live counters; `snapshot` reads them.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused_full: AtomicU64,
    pub(crate) handshakes_evicted: AtomicU64,
    pub(crate) handshakes_failed: AtomicU64,
    pub(crate) wrong_key: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) forged: AtomicU64,
    pub(crate) too_large: AtomicU64,
    pub(crate) stalled: AtomicU64,
    pub(crate) slow_readers: AtomicU64,
    pub(crate) link_pushbacks: AtomicU64,
    pub(crate) busy_replies: AtomicU64,
    pub(crate) dialled: AtomicU64,
    pub(crate) links_accepted: AtomicU64,
    /// Bytes read and written, by what the connection was at the time (for the metrics).
    pub(crate) traffic: [[AtomicU64; 2]; 3],
    /// Payload bytes of client requests handed to the protocol thread and not yet taken by it;
    /// the loop stops reading clients while this is above its budget.
    pub(crate) client_bytes_queued: AtomicUsize,
    /// Set by the protocol thread while this member's submit queue has no room for the client
    /// requests the loop may still hand it: the loop stops reading clients meanwhile, so a
    /// backlog waits in TCP rather than being sent and answered busy (docs/PROTOCOL.md §2.2).
    pub(crate) submit_queue_full: AtomicBool,
    /// Bytes read and written (`[in, out]`) since start with each peer whose link is up, as the
    /// event loop last published them (every `LINK_TRAFFIC_PUBLISH` while there is traffic):
    /// the loop counts them in its own slots and takes this lock only to publish.
    pub(crate) link_traffic: Mutex<Vec<(NodeId, [u64; 2])>>,
}

/// A reading of `Counters`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed at once because the node had as many open as it serves.
    pub refused_full: u64,
    /// Unproven connections closed to make room for newer ones.
    pub handshakes_evicted: u64,
    /// Handshakes refused for another reason than a wrong key (cluster, mode, ids, frame).
    pub handshakes_failed: u64,
    /// Handshakes refused because the other end's proof did not match the key.
    pub wrong_key: u64,
    /// Connections that did not complete their handshake in time.
    pub handshake_timeouts: u64,
    /// Connections closed for a frame that does not decode.
    pub malformed: u64,
    /// Connections closed for a record that fails authentication.
    pub forged: u64,
    /// Connections closed for announcing a frame or record above its maximum.
    pub too_large: u64,
    /// Clients closed for holding part of a frame too long.
    pub stalled: u64,
    /// Connections closed for not reading what was sent to them.
    pub slow_readers: u64,
    /// Times a link's unsent bytes passed their maximum, so the loop stopped reading the other
    /// connections until it drained (docs/PROTOCOL.md §2.2).
    pub link_pushbacks: u64,
    /// Client requests answered "busy".
    pub busy_replies: u64,
    /// Peer connections dialled (docs/PROTOCOL.md §4 says which).
    pub dialled: u64,
    /// Peer links accepted: dialled by another member, handshake completed.
    pub links_accepted: u64,
    /// Bytes read and written (`[in, out]`) on peer links, client connections, and connections
    /// still in their handshake (`TRAFFIC_CLASSES`' order).
    pub traffic: [[u64; 2]; 3],
}

/// The classes of `CounterSnapshot::traffic`, as the metrics name them.
pub const TRAFFIC_CLASSES: [&str; 3] = ["peers", "clients", "handshakes"];

impl Counters {
    /// Counts `bytes` read (`out` false) or written on a connection whose role is `class`
    /// (an index of `TRAFFIC_CLASSES`).
    pub(crate) fn traffic(&self, class: usize, out: bool, bytes: usize) {
        if let Some(pair) = self.traffic.get(class) {
            pair[usize::from(out)].fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// The bytes of each up link, by peer, as last published.
    pub fn link_traffic(&self) -> Vec<(NodeId, [u64; 2])> {
        self.link_traffic.lock().map(|links| links.clone()).unwrap_or_default()
    }

    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            accepted: read(&self.accepted),
            refused_full: read(&self.refused_full),
            handshakes_evicted: read(&self.handshakes_evicted),
            handshakes_failed: read(&self.handshakes_failed),
            wrong_key: read(&self.wrong_key),
            handshake_timeouts: read(&self.handshake_timeouts),
            malformed: read(&self.malformed),
            forged: read(&self.forged),
            too_large: read(&self.too_large),
            stalled: read(&self.stalled),
            slow_readers: read(&self.slow_readers),
            link_pushbacks: read(&self.link_pushbacks),
            busy_replies: read(&self.busy_replies),
            dialled: read(&self.dialled),
            links_accepted: read(&self.links_accepted),
            traffic: self.traffic.each_ref().map(|pair| pair.each_ref().map(read)),
        }
    }
}

impl fmt::Display for CounterSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer links dialled {}, accepted {}; connections accepted {}, refused (full) {}, handshakes \
             evicted {}, failed {}, wrong key {}, timed out {}; closed for malformed frames {}, forged \
             records {}, oversized frames {}, stalled clients {}, slow readers {}; link pushbacks {}; \
             busy replies {}",
            self.dialled,
            self.links_accepted,
            self.accepted,
            self.refused_full,
            self.handshakes_evicted,
            self.handshakes_failed,
            self.wrong_key,
            self.handshake_timeouts,
            self.malformed,
            self.forged,
            self.too_large,
            self.stalled,
            self.slow_readers,
            self.link_pushbacks,
            self.busy_replies
        )
    }
}
