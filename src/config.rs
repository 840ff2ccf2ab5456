//! Configuration of the protocol core; `validate()` names the bad setting.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::ConfigError;
use crate::ids::{Member, NodeId, RingMode};

/// Everything a `Core` needs to know before its first step.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This member.
    pub me: Member,
    /// Every configured member id (the universe), in any order: the seed list of a brand-new
    /// cluster, or what a joiner was told; committed changes replace it (docs/PROTOCOL.md §5.9).
    pub universe: Vec<NodeId>,
    /// How many committed changes made `universe` (0: a seed list).
    pub universe_epoch: u64,
    /// The members' addresses, by id, as the universe's text records them (`HOST:PORT`); empty
    /// where nothing dials (the simulator).
    pub addresses: BTreeMap<NodeId, String>,
    /// Hash of the cluster name; links to another cluster are refused.
    pub cluster: u64,
    /// How stamped batches travel round the ring.
    pub ring_mode: RingMode,
    /// Silence on a link for this long means the peer is gone (docs/PROTOCOL.md §2).
    pub token_timeout: Duration,
    /// How long the first ring member holds the token of a quiet ring.
    pub idle_hold: Duration,
    /// Most messages one member stamps in one token visit.
    pub batch_max: usize,
    /// Most messages stamped but not yet safe at all members.
    pub window_max: u64,
    /// Most payload bytes stamped but not yet safe at all members (docs/PROTOCOL.md §3, flow
    /// control): what every member may have to hold of the ring's messages in flight. A holder
    /// with any room left stamps at least one message, so the window may overshoot by less
    /// than one payload.
    pub window_bytes_max: u64,
    /// Most messages waiting in this member's submit queue.
    pub queue_max: usize,
    /// Most payload bytes this member's own submissions may hold, waiting or in flight; beyond
    /// it submissions are refused as busy, so overload cannot grow memory without bound.
    pub queue_bytes_max: usize,
    /// Largest payload one submission may carry.
    pub payload_bytes_max: usize,
    /// Most payload bytes one stamped batch carries: one frame per hop, so this bounds how long a
    /// link is busy with one batch and how much a member buffers to forward it.
    pub batch_bytes_max: usize,
    /// How long a fresh member waits for the whole universe before forming the first view with
    /// a majority.
    pub bootstrap_wait: Duration,
    /// How many members of a view are hot standbys (apply every command as it commits): the
    /// `hot` lowest ids; the others are warm (docs/PROTOCOL.md §7).
    pub hot: usize,
    /// Every member checkpoints its state after this many commits since the last checkpoint...
    pub checkpoint_every: u64,
    /// ...or once this long has passed since it, if anything committed.
    pub checkpoint_interval: Duration,
    /// What a full-cluster crash may lose; with `Fsync` the core outputs every commit to be
    /// logged before it is acknowledged.
    pub durability: Durability,
    /// The plug-ins this member can load: its vote on a plug-in agreement is yes exactly for
    /// these names (docs/PROTOCOL.md §7.1). The node fills it from `--plugins` and `--plugin-dir`.
    pub plugins: Vec<String>,
    /// Members of the universe that are witnesses: they vote on views and hold no state
    /// (docs/PROTOCOL.md §5.7). Every member must be given the same list.
    pub witnesses: Vec<NodeId>,
    /// The write quorum `W`: a commit is acknowledged only once this many members hold it
    /// (docs/PROTOCOL.md §5.2). `None`: a majority of the universe less its witnesses.
    pub min_replicas: Option<usize>,
    /// Who chooses a primary view's successor (docs/PROTOCOL.md §5.2).
    pub quorum_mode: QuorumMode,
    /// Seed of the core's one random generator.
    pub seed: u64,
    /// A deliberate defect, for proving that the simulator's checker can fail. Always `None`
    /// outside those tests.
    #[doc(hidden)]
    pub defect: Defect,
}

/// What is written to durable storage, and so what a crash of every member at once may lose
/// (docs/PROTOCOL.md §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Nothing is written: a full-cluster crash loses the whole state.
    #[default]
    Memory,
    /// Checkpoints are written: a full-cluster crash loses the commands after the last one.
    Checkpoint,
    /// Checkpoints and every committed command, synced before it is acknowledged: a full-cluster
    /// crash loses no acknowledged command.
    Fsync,
}

impl Durability {
    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Memory => "memory",
            Durability::Checkpoint => "checkpoint",
            Durability::Fsync => "fsync",
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Durability, ConfigError> {
        match s {
            "memory" => Ok(Durability::Memory),
            "checkpoint" => Ok(Durability::Checkpoint),
            "fsync" => Ok(Durability::Fsync),
            other => {
                Err(ConfigError::new("durability", format!("{other:?} is not memory, checkpoint or fsync")))
            }
        }
    }
}

/// Who votes on the successor of a primary view (docs/PROTOCOL.md §5.2, §5.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QuorumMode {
    /// A majority of the configuration's processes, whatever members the last view had.
    #[default]
    Configuration,
    /// Dynamic linear voting: a majority of the last primary view, which never has fewer than
    /// the write quorum's members.
    Dynamic,
}

impl QuorumMode {
    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            QuorumMode::Configuration => "configuration",
            QuorumMode::Dynamic => "dynamic",
        }
    }
}

impl std::str::FromStr for QuorumMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<QuorumMode, ConfigError> {
        match s {
            "configuration" => Ok(QuorumMode::Configuration),
            "dynamic" => Ok(QuorumMode::Dynamic),
            other => Err(ConfigError::new("quorum", format!("{other:?} is not configuration or dynamic"))),
        }
    }
}

/// The default number of hot members: two, the fewest that keep serving through one failure
/// without a promotion, and fewer than the members of any ring of three or more (the seed's rule
/// 1 < H < n). Rings of one or two are all hot.
pub const HOT_DEFAULT: usize = 2;

/// The default largest payload of one submission (1 MiB): what clients check a request against
/// before they send it (`harness put --file`), and what the node refuses above.
pub const PAYLOAD_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// The default byte window (docs/PROTOCOL.md §3): 8 MiB in flight keeps a ring of three busy
/// with 16 KiB puts while bounding what each member buffers of the ring's traffic.
pub const WINDOW_BYTES_MAX_DEFAULT: u64 = 8 << 20;

/// The default bound on a member's own submissions, waiting or in flight (docs/PROTOCOL.md §2.2):
/// room for a member's part of the byte window in flight and several batches waiting for the
/// token.
pub const QUEUE_BYTES_MAX_DEFAULT: usize = 8 << 20;

/// Deliberately broken variants of the core (docs/PROTOCOL.md rules they break in brackets).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Defect {
    /// The correct protocol.
    #[default]
    None,
    /// Deliver each message on arrival, not in seq order [§3 agreed delivery].
    DeliverOnArrival,
    /// The holder does not advance `next_seq`, so seqs are reused [§3 token].
    ReuseSeq,
    /// Batches are not forwarded past the first hop [§3 dissemination].
    NoForwarding,
    /// A coordinator proposes without a quorum of the last primary view [§5.2].
    QuorumOff,
    /// Participants accept without fetching what they lack up to the cut [§5.3].
    SkipRecovery,
    /// After a view change a sender re-sends its committed messages too: duplicate filtering
    /// is off [§5.4].
    ResendCommitted,
    /// The behaviour before the write quorum: dynamic linear voting with no floor, so a glitch
    /// can shrink a primary view to one member that acknowledges writes alone [§5.2].
    NoReplicaFloor,
    /// A linearizable read is answered from the member's state at once, without waiting for
    /// the token to go round [§3 read barrier].
    ReadWithoutBarrier,
}

impl CoreConfig {
    /// Defaults suited to a LAN, for member `me` of `universe`.
    pub fn new(me: Member, universe: Vec<NodeId>) -> CoreConfig {
        CoreConfig {
            me,
            universe,
            universe_epoch: 0,
            addresses: BTreeMap::new(),
            cluster: 0,
            ring_mode: RingMode::Bidirectional,
            token_timeout: Duration::from_millis(1000),
            idle_hold: Duration::from_millis(250),
            batch_max: 256,
            window_max: 4096,
            window_bytes_max: WINDOW_BYTES_MAX_DEFAULT,
            queue_max: 65_536,
            queue_bytes_max: QUEUE_BYTES_MAX_DEFAULT,
            payload_bytes_max: PAYLOAD_BYTES_MAX_DEFAULT,
            batch_bytes_max: 1 << 20,
            bootstrap_wait: Duration::from_secs(5),
            hot: HOT_DEFAULT,
            checkpoint_every: 4096,
            checkpoint_interval: Duration::from_secs(10),
            durability: Durability::Memory,
            plugins: Vec::new(),
            witnesses: Vec::new(),
            min_replicas: None,
            quorum_mode: QuorumMode::Configuration,
            seed: u64::from(me.id.0),
            defect: Defect::None,
        }
    }

    /// Whether this member is a witness (docs/PROTOCOL.md §5.7).
    pub fn is_witness(&self) -> bool {
        self.witnesses.contains(&self.me.id)
    }

    /// The members of the universe that hold state: every one but the witnesses.
    pub fn data_members(&self) -> usize {
        self.universe.iter().filter(|id| !self.witnesses.contains(id)).count()
    }

    /// The default write quorum: a majority of the universe less its witnesses, at least one.
    /// That is how many members that hold state a view-change quorum always includes.
    pub fn default_min_replicas(&self) -> usize {
        (self.universe.len() / 2 + 1).saturating_sub(self.witnesses.len()).max(1)
    }

    /// The write quorum `W` (docs/PROTOCOL.md §5.2).
    pub fn write_quorum(&self) -> usize {
        self.min_replicas.unwrap_or_else(|| self.default_min_replicas())
    }

    /// How often an otherwise idle link sends a heartbeat: three tenths of the token timeout,
    /// so a link silent for the timeout missed three, and longer than the idle hold of a parked
    /// ring (at most a quarter of the timeout by default), so the parked token's visits carry
    /// the heartbeats instead of waking members in between (docs/PROTOCOL.md §2, §3 idle ring).
    pub fn heartbeat_interval(&self) -> Duration {
        self.token_timeout * 3 / 10
    }

    /// Checks the settings against each other; the error names the bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.me.id.0 == 0 {
            return Err(ConfigError::new("id", "must be at least 1"));
        }
        let mut ids = self.universe.clone();
        ids.sort();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::new("peers", "lists an id twice"));
        }
        if !ids.contains(&self.me.id) {
            return Err(ConfigError::new("id", "is not in the peer list"));
        }
        if self.token_timeout < Duration::from_millis(10) {
            return Err(ConfigError::new("token-timeout", "must be at least 10ms"));
        }
        if self.idle_hold * 2 >= self.token_timeout {
            return Err(ConfigError::new("idle-hold", "must be under half the token timeout"));
        }
        if self.batch_max == 0 || self.batch_max > 65_535 {
            return Err(ConfigError::new("batch-max", "must be in 1..=65535"));
        }
        if self.window_max < self.batch_max as u64 {
            return Err(ConfigError::new("window-max", "must be at least batch-max"));
        }
        if self.window_bytes_max < self.batch_bytes_max as u64 {
            return Err(ConfigError::new("window-bytes-max", "must be at least batch-bytes-max"));
        }
        if self.payload_bytes_max == 0 || self.payload_bytes_max > self.batch_bytes_max {
            return Err(ConfigError::new("payload-bytes-max", "must be in 1..=batch-bytes-max"));
        }
        // A batch plus its framing must fit the wire's frame maximum.
        if self.batch_bytes_max + self.batch_max * 64 > crate::wire::FRAME_BYTES_MAX / 2 {
            return Err(ConfigError::new("batch-bytes-max", "too large for one frame"));
        }
        if self.queue_max == 0 {
            return Err(ConfigError::new("queue-max", "must be at least 1"));
        }
        if self.queue_bytes_max < self.payload_bytes_max {
            return Err(ConfigError::new("queue-bytes-max", "must be at least payload-bytes-max"));
        }
        if self.hot == 0 {
            return Err(ConfigError::new("hot", "must be at least 1"));
        }
        if self.checkpoint_every == 0 {
            return Err(ConfigError::new("checkpoint-every", "must be at least 1 commit"));
        }
        if self.checkpoint_interval < Duration::from_millis(10) {
            return Err(ConfigError::new("checkpoint-interval", "must be at least 10ms"));
        }
        let mut witnesses = self.witnesses.clone();
        witnesses.sort();
        if witnesses.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::new("witness", "lists an id twice"));
        }
        if let Some(w) = witnesses.iter().find(|w| !ids.contains(w)) {
            return Err(ConfigError::new("witness", format!("{w} is not in the peer list")));
        }
        if self.data_members() == 0 {
            return Err(ConfigError::new("witness", "leaves no member that holds state"));
        }
        if self.universe.len() > usize::from(u16::MAX) {
            return Err(ConfigError::new("peers", "lists more than 65535 members"));
        }
        let w = self.write_quorum();
        if w == 0 || w > self.data_members() {
            return Err(ConfigError::new(
                "min-replicas",
                format!("must be in 1..={} (the members that hold state)", self.data_members()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u16) -> Member {
        Member { id: NodeId(id), incarnation: 1 }
    }

    #[test]
    fn validate_names_the_bad_setting() {
        let ok = CoreConfig::new(member(1), vec![NodeId(1), NodeId(2)]);
        assert!(ok.validate().is_ok());
        let not_listed = CoreConfig::new(member(3), vec![NodeId(1), NodeId(2)]);
        assert_eq!(not_listed.validate().unwrap_err().to_string(), "bad --id: is not in the peer list");
        let twice = CoreConfig::new(member(1), vec![NodeId(1), NodeId(1)]);
        assert_eq!(twice.validate().unwrap_err().setting, "peers");
        let mut slow = ok.clone();
        slow.idle_hold = slow.token_timeout;
        assert_eq!(slow.validate().unwrap_err().setting, "idle-hold");
    }
}
