//! The deterministic simulator: the real protocol `Core` under virtual time, a simulated TCP
//! network and seeded faults, with the guarantees of DESIGN.md checked after every step.
//!
//! Follows the shape of TigerBeetle's VOPR and quinn-proto's test pairs: one seed drives the fault
//! schedule, the workload and every latency, so a failing seed replays exactly (same trace hash).
//! A run has a fault phase, then a heal, then a liveness phase that must settle in bounded time.

mod campaign;
mod checker;
mod cluster;
pub mod cost;
mod faults;
mod history;
mod network;
mod trace;

use std::time::Duration;

pub use campaign::{
    campaign, cost_json, cost_markdown, cost_table, print_violation, scale_json, scale_markdown, Summary,
};
pub use checker::{tag_of, Checker, Guarantee, Violation};
pub use cluster::{scale_run, PhaseCost, ScaleRow};
pub use faults::{FaultAction, FaultKind, Profile};

use crate::ids::RingMode;
use crate::time::Time;

/// What one run simulates.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Members in the universe.
    pub nodes: usize,
    /// Messages each member submits.
    pub messages: usize,
    /// Faults to draw from.
    pub profile: Profile,
    /// Ring mode of every member.
    pub ring_mode: RingMode,
    /// Print every event.
    pub trace: bool,
    /// Base one-hop latency.
    pub latency: Duration,
    /// Extra random latency per frame (FIFO is kept per direction).
    pub jitter: Duration,
    /// The members' token timeout.
    pub token_timeout: Duration,
    /// How long faults are injected; the workload is submitted within it.
    pub fault_phase: Duration,
    /// How long after the heal everything must have settled (guarantee 7).
    pub settle: Duration,
    /// Bound on events per run.
    pub step_max: u64,
    /// A deliberate defect in every core, to prove the checker catches it.
    pub defect: crate::config::Defect,
    /// Hot members per view (docs/PROTOCOL.md §7).
    pub hot: usize,
    /// Commits between checkpoints; small, so that runs take many and check each.
    pub checkpoint_every: u64,
    /// Percent of submissions that are DVM commands (mostly transactions); the rest are raw.
    pub commands_percent: u64,
    /// What restarted members get back from their simulated disks.
    pub durability: crate::config::Durability,
    /// Largest raw (non-command) payload submitted, in bytes (at least 8: the tag).
    pub payload_bytes: usize,
    /// The members' byte window (docs/PROTOCOL.md §3); batches are at most this large too.
    pub window_bytes: u64,
    /// The write quorum `W` (`None`: the default, a majority less the witnesses).
    pub min_replicas: Option<usize>,
    /// How many members, the highest ids, are witnesses (docs/PROTOCOL.md §5.7).
    pub witnesses: usize,
    /// Who chooses each primary view's successor (docs/PROTOCOL.md §5.2).
    pub quorum_mode: crate::config::QuorumMode,
    /// Bytes of state member 1 writes first (puts of up to 64 KiB values), so that checkpoints
    /// and transfers are large; 0: none (docs/PROTOCOL.md §7).
    pub state_bytes: u64,
    /// Bytes per second one direction of a link carries: a frame occupies its link for its size
    /// over this, so a snapshot stream delays the frames behind it.
    pub link_bytes_per_s: u64,
    /// Bytes per second a member's disk writes: a checkpoint is durable only after its size
    /// over this.
    pub disk_bytes_per_s: u64,
    /// Check that no live member is ever excluded (for runs whose faults never cut a live member
    /// off: crashes, restarts and joins): a busy member must not look dead (guarantee 7).
    pub no_live_exclusion: bool,
    /// Submit a sequence of universe changes (an address change, a removal and re-addition,
    /// another address change) during the fault phase (docs/PROTOCOL.md §5.9).
    pub member_changes: bool,
    /// Linearizable reads each data member makes through the read barrier (docs/PROTOCOL.md §3),
    /// at random times of the fault phase; each is checked to see every write acknowledged
    /// before it started. 0 (the default) draws nothing, so other runs replay unchanged.
    pub reads: usize,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            nodes: 5,
            messages: 100,
            profile: Profile::none(),
            ring_mode: RingMode::Bidirectional,
            trace: false,
            latency: cluster::LATENCY_DEFAULT,
            jitter: Duration::from_micros(50),
            token_timeout: Duration::from_millis(200),
            fault_phase: Duration::from_secs(2),
            settle: Duration::from_secs(20),
            step_max: 5_000_000,
            defect: crate::config::Defect::None,
            hot: crate::config::HOT_DEFAULT,
            checkpoint_every: 16,
            commands_percent: 50,
            durability: crate::config::Durability::Memory,
            payload_bytes: 64,
            window_bytes: crate::config::WINDOW_BYTES_MAX_DEFAULT,
            min_replicas: None,
            witnesses: 0,
            quorum_mode: crate::config::QuorumMode::Configuration,
            state_bytes: 0,
            link_bytes_per_s: 1 << 30,
            disk_bytes_per_s: 256 << 20,
            no_live_exclusion: false,
            member_changes: false,
            reads: 0,
        }
    }
}

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub steps: u64,
    /// Hash of the whole event trace: equal for equal seeds and options.
    pub trace_hash: u64,
    /// The first violation, if any.
    pub violation: Option<Violation>,
    /// The events leading to the violation.
    pub recent: Vec<String>,
    /// Agreed deliveries over all members.
    pub deliveries: u64,
    /// Commits over all members.
    pub commits: u64,
    /// Checkpoints checked against the history (guarantee 6).
    pub checkpoints: u64,
    /// Virtual time at the end.
    pub virtual_time: Time,
    /// When each primary view was first installed, in order.
    pub views: Vec<(Time, u64)>,
    /// When the first fault struck, if any.
    pub first_fault: Option<Time>,
    /// Linearizable reads answered through the read barrier.
    pub reads_served: u64,
    /// Linearizable reads refused (the member left the primary view or crashed meanwhile).
    pub reads_refused: u64,
}

/// Runs one seed.
pub fn run(seed: u64, options: &SimOptions) -> RunReport {
    cluster::Cluster::new(seed, options).run()
}
