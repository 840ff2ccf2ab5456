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

/// The epoch of a view. Primary views are numbered 1, 2, ... along their chain; 0 means "none".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewId(pub u64);

impl fmt::Display for ViewId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
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
