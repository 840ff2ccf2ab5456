//! Identities and counters that appear on the wire: members, views, ballots, seqs, message ids.
//!
//! See the glossary in docs/PROTOCOL.md §1.

use std::fmt;

/// A configured member id (1..=65535; 0 is never a member).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u16);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A member: a node id and the incarnation of that node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// The configured id.
    pub id: NodeId,
    /// New for every process start; grows when the member rejoins after exclusion.
    pub incarnation: u64,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.id, self.incarnation)
    }
}

/// One process that votes on a view's successor: a member id and the incarnation its process
/// started with (its *boot*, docs/PROTOCOL.md §1). A member that rejoins as a new incarnation keeps
/// its boot; a restarted process has a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Voter {
    /// The configured id.
    pub id: NodeId,
    /// The incarnation the process started with.
    pub boot: u64,
}

impl fmt::Display for Voter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.boot)
    }
}

/// The epoch of a view. Primary views are numbered 1, 2, ... along their chain; 0 means "none".
/// The high 32 bits count forced recoveries (docs/PROTOCOL.md §5.8): a forced view starts a new
/// epoch, so it is newer than every view of the old one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewId(pub u64);

/// Bits of a view id below the forced-recovery epoch.
const VIEW_EPOCH_SHIFT: u32 = 32;

impl ViewId {
    /// How many forced recoveries lie behind this view.
    pub fn epoch(self) -> u64 {
        self.0 >> VIEW_EPOCH_SHIFT
    }

    /// The first view of the next epoch: newer than every view of this one.
    pub fn next_epoch(self) -> ViewId {
        ViewId(((self.epoch() + 1) << VIEW_EPOCH_SHIFT) | 1)
    }
}

impl fmt::Display for ViewId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.epoch() {
            0 => write!(f, "v{}", self.0),
            epoch => write!(f, "v{}.{}", epoch, self.0 & ((1 << VIEW_EPOCH_SHIFT) - 1)),
        }
    }
}

/// One attempt at choosing a successor view, ordered by round and then node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot {
    /// Higher than every round its coordinator had seen.
    pub round: u64,
    /// The coordinator; breaks ties between equal rounds.
    pub node: NodeId,
}

/// A global sequence number in the primary history (from 1; 0 means "nothing").
pub type Seq = u64;

/// The identity of one submitted message, stable across re-sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId {
    /// The member that submitted it.
    pub origin: NodeId,
    /// The origin's incarnation when it was submitted.
    pub incarnation: u64,
    /// Counts the origin's submissions in that incarnation, from 1.
    pub counter: u64,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}:{}", self.origin, self.incarnation, self.counter)
    }
}

/// Which way messages travel round the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingMode {
    /// Each batch goes both ways and covers half the ring each way (the default).
    Bidirectional,
    /// Each batch goes to the successor only, all the way round.
    Unidirectional,
}

impl RingMode {
    /// The flag spelling: `bi` or `uni`.
    pub fn as_str(self) -> &'static str {
        match self {
            RingMode::Bidirectional => "bi",
            RingMode::Unidirectional => "uni",
        }
    }
}

impl std::str::FromStr for RingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<RingMode, String> {
        match s {
            "bi" => Ok(RingMode::Bidirectional),
            "uni" => Ok(RingMode::Unidirectional),
            other => Err(format!("ring mode must be bi or uni, not {other:?}")),
        }
    }
}
