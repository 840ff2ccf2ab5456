//! The quorum rule of a view change (docs/PROTOCOL.md §5.2): which promises are votes, which
//! promisers hold the last primary view's log, whether together they make a primary, and the
//! quorum the proposed view hands on to its successor. Pure functions of the promises and the
//! configuration, so that the coordinator's decision and its patience use the same rule.

use std::fmt;

use crate::config::{CoreConfig, Defect, QuorumMode};
use crate::ids::{Member, NodeId, Seq, ViewId, Voter};
use crate::wire::{Promise, Quorum};

/// Why a view change could not make a primary; reported in `status` and in write refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::core) enum Shortfall {
    /// Too few votes of the last primary view's electorate answered, or none of its holders.
    NoQuorum {
        /// Votes that answered.
        votes: usize,
        /// Votes a quorum needs.
        needed: usize,
        /// Whether a holder of the last primary's log answered.
        holder: bool,
    },
    /// A quorum answered, but too few members for the write quorum.
    Replicas {
        /// Members the view would have.
        in_view: usize,
        /// Members of the configuration that hold state.
        configured: usize,
        /// The write quorum.
        needed: usize,
    },
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Shortfall::NoQuorum { votes, needed, holder } if votes >= needed && !holder => {
                write!(f, "no quorum: no member that holds the last primary view's log answered")
            }
            Shortfall::NoQuorum { votes, needed, .. } => {
                write!(f, "no quorum: {votes} of the {needed} needed votes answered")
            }
            Shortfall::Replicas { in_view, configured, needed } => {
                write!(f, "not enough replicas: {in_view} of {configured} in the view, {needed} needed")
            }
        }
    }
}

/// What the promises of one round say about the last primary view `L`.
#[derive(Debug)]
pub(in crate::core) struct Tally {
    /// `L`: the newest view any promiser installed or accepted a successor of (0: genesis).
    pub(in crate::core) lstar: ViewId,
    /// Who votes on `L`'s successor and its write quorum.
    pub(in crate::core) quorum: Quorum,
    /// The promises that are votes.
    pub(in crate::core) voters: Vec<Promise>,
    /// The promisers that are members of `L` and hold its log (none at genesis).
    pub(in crate::core) holders: Vec<Promise>,
    /// Votes a quorum needs.
    pub(in crate::core) needed: usize,
    /// The fewest members the successor's ring may have.
    pub(in crate::core) floor: usize,
}

/// A promiser in no primary view: fresh, a new incarnation after exclusion, or restarted from
/// durable state (whose `committed_upto` says how far that state goes).
pub(in crate::core) fn blank(p: &Promise) -> bool {
    !p.holds_log && p.received_upto == 0
}

/// The process behind a promise.
pub(in crate::core) fn voter_of(p: &Promise) -> Voter {
    Voter { id: p.member.id, boot: p.boot }
}

impl Tally {
    /// Counts the promises of one round (docs/PROTOCOL.md §5.2).
    pub(in crate::core) fn of(promises: &[Promise], config: &CoreConfig) -> Tally {
        // A promiser that accepted a proposal for the successor of a view knows that view was
        // installed, even if it never installed it itself: the history may have gone that far.
        let lstar = promises
            .iter()
            .map(|p| p.accepted.as_ref().map_or(p.last_primary, |(_, a)| a.prev.max(p.last_primary)))
            .max()
            .unwrap_or_default();
        // The broken variants that ignore the quorum rule ignore its write quorum too.
        let no_floor = matches!(config.defect, Defect::NoReplicaFloor | Defect::QuorumOff);
        let floor_w = if no_floor { 1 } else { config.write_quorum() };
        if lstar == ViewId(0) {
            let voters: Vec<Promise> = promises.iter().filter(|p| blank(p)).cloned().collect();
            return Tally {
                lstar,
                quorum: Quorum::default(),
                voters,
                holders: Vec::new(),
                needed: config.universe.len() / 2 + 1,
                floor: floor_w,
            };
        }
        let installed = promises.iter().find(|p| p.last_primary == lstar);
        let quorum = installed.map(|p| p.quorum.clone()).unwrap_or_default();
        let lstar_members = installed.map(|p| p.last_primary_members.clone()).unwrap_or_default();
        let voters: Vec<Promise> = promises.iter().filter(|p| quorum.names(voter_of(p))).cloned().collect();
        let holders: Vec<Promise> = promises
            .iter()
            .filter(|p| p.last_primary == lstar && p.holds_log && lstar_members.contains(&p.member))
            .cloned()
            .collect();
        let floor = if no_floor { 1 } else { usize::from(quorum.min_replicas).max(1) };
        Tally { lstar, needed: quorum.needed(), quorum, voters, holders, floor }
    }

    /// Whether these promises may choose `L`'s successor: a quorum of votes and, after genesis, a
    /// holder of `L`'s log to say how far it got.
    pub(in crate::core) fn has_quorum(&self) -> bool {
        self.voters.len() >= self.needed && (self.lstar == ViewId(0) || !self.holders.is_empty())
    }

    /// Why there is no quorum, if there is none.
    pub(in crate::core) fn no_quorum(&self) -> Option<Shortfall> {
        (!self.has_quorum()).then_some(Shortfall::NoQuorum {
            votes: self.voters.len(),
            needed: self.needed,
            holder: !self.holders.is_empty() || self.lstar == ViewId(0),
        })
    }

    /// The promisers that may be in the successor's ring: holders and blank members of the
    /// universe, not leaving and not witnesses (docs/PROTOCOL.md §5.2, §5.7, §5.9).
    pub(in crate::core) fn ring_candidates<'a>(
        &self,
        promises: &'a [Promise],
        config: &CoreConfig,
    ) -> Vec<&'a Promise> {
        promises
            .iter()
            .filter(|p| !p.leaving && !config.witnesses.contains(&p.member.id))
            // A holder removed from the universe stays until it commits its removal and leaves
            // by itself (§5.9); a blank member outside the universe is never let in.
            .filter(|p| {
                self.holders.iter().any(|h| h.member == p.member)
                    || (blank(p) && config.universe.contains(&p.member.id))
            })
            .collect()
    }

    /// How far the history goes: the furthest prefix a holder received, or at genesis the
    /// furthest durable state of a voter (docs/PROTOCOL.md §7).
    pub(in crate::core) fn cut(&self) -> Seq {
        if self.lstar == ViewId(0) {
            self.voters.iter().map(|p| p.committed_upto).max().unwrap_or(0)
        } else {
            self.holders.iter().map(|p| p.received_upto).max().unwrap_or(0)
        }
    }

    /// What a promiser holds of the history, as the cut counts it.
    pub(in crate::core) fn held(&self, p: &Promise) -> Seq {
        if self.lstar == ViewId(0) {
            p.committed_upto
        } else if self.holders.iter().any(|h| h.member == p.member) {
            p.received_upto
        } else {
            0
        }
    }

    /// The quorum a new view over `ring` hands on to its successor (docs/PROTOCOL.md §5.2).
    pub(in crate::core) fn next_quorum(
        &self,
        promises: &[Promise],
        ring: &[Member],
        config: &CoreConfig,
    ) -> Quorum {
        let configured = config.universe.len();
        let min_replicas = config.write_quorum().min(self.floor.max(ring.len()));
        let dynamic = config.quorum_mode == QuorumMode::Dynamic || config.defect == Defect::NoReplicaFloor;
        let promised = |id: NodeId| promises.iter().find(|p| p.member.id == id).map(voter_of);
        let mut electorate: Vec<Voter> = if dynamic {
            let witnesses = config.witnesses.iter().copied();
            ring.iter().map(|m| m.id).chain(witnesses).filter_map(promised).collect()
        } else {
            let mut ids = config.universe.clone();
            ids.sort();
            ids.into_iter()
                .filter_map(|id| {
                    promised(id).or_else(|| self.quorum.electorate.iter().copied().find(|v| v.id == id))
                })
                .collect()
        };
        electorate.sort();
        electorate.dedup_by_key(|v| v.id);
        let expected = if dynamic {
            electorate.len()
        } else {
            let before = if self.lstar == ViewId(0) { configured } else { usize::from(self.quorum.expected) };
            configured.min(before.max(electorate.len()))
        };
        Quorum {
            electorate,
            expected: u16::try_from(expected).unwrap_or(u16::MAX),
            min_replicas: u16::try_from(min_replicas).unwrap_or(u16::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Ballot;

    fn config(n: u16) -> CoreConfig {
        let universe: Vec<NodeId> = (1..=n).map(NodeId).collect();
        CoreConfig::new(Member { id: NodeId(1), incarnation: 1 }, universe)
    }

    fn quorum(boots: &[(u16, u64)], expected: u16, min_replicas: u16) -> Quorum {
        Quorum {
            electorate: boots.iter().map(|&(id, boot)| Voter { id: NodeId(id), boot }).collect(),
            expected,
            min_replicas,
        }
    }

    /// A promise from `id` (process `boot`, incarnation `incarnation`) that installed view 7.
    fn promise(
        id: u16,
        boot: u64,
        incarnation: u64,
        holds_log: bool,
        members: &[u16],
        q: &Quorum,
    ) -> Promise {
        Promise {
            ballot: Ballot { round: 1, node: NodeId(1) },
            member: Member { id: NodeId(id), incarnation },
            boot,
            last_primary: ViewId(7),
            last_primary_members: members.iter().map(|&i| Member { id: NodeId(i), incarnation: 1 }).collect(),
            quorum: q.clone(),
            holds_log,
            accepted: None,
            received_upto: if holds_log { 40 + u64::from(id) } else { 0 },
            committed_upto: 30,
            unreachable: Vec::new(),
            leaving: false,
        }
    }

    #[test]
    fn a_glitch_does_not_shrink_the_quorum_base() {
        // §5.2: view 7 is {1, 2} after member 3 was excluded by a glitch; 3 rejoined as a new
        // incarnation of the same process. Member 1 crashes: 2 and 3 are two of three votes.
        let q = quorum(&[(1, 1), (2, 1), (3, 1)], 3, 2);
        let promises = vec![promise(2, 1, 1, true, &[1, 2], &q), promise(3, 1, 2, false, &[1, 2], &q)];
        let tally = Tally::of(&promises, &config(3));
        assert!(tally.has_quorum());
        assert_eq!(tally.holders.len(), 1);
        assert_eq!(tally.cut(), 42);
        let candidates = tally.ring_candidates(&promises, &config(3));
        assert_eq!(candidates.len(), 2, "the rejoined member is blank and may be in the ring");
    }

    #[test]
    fn a_restarted_process_does_not_vote_for_its_old_self() {
        // §5.4: member 3's process restarted (boot 9): it forgot what boot 1 promised.
        let q = quorum(&[(1, 1), (2, 1), (3, 1)], 3, 2);
        let promises = vec![promise(2, 1, 1, true, &[1, 2], &q), promise(3, 9, 9, false, &[1, 2], &q)];
        let tally = Tally::of(&promises, &config(3));
        assert!(!tally.has_quorum());
        assert_eq!(tally.no_quorum().unwrap().to_string(), "no quorum: 1 of the 2 needed votes answered");
    }

    #[test]
    fn votes_without_a_holder_of_the_log_are_no_quorum() {
        let q = quorum(&[(1, 1), (2, 1), (3, 1)], 3, 2);
        let promises = vec![promise(2, 1, 2, false, &[1], &q), promise(3, 1, 2, false, &[1], &q)];
        let tally = Tally::of(&promises, &config(3));
        assert!(!tally.has_quorum());
        assert!(tally.no_quorum().unwrap().to_string().contains("holds the last primary view's log"));
    }

    #[test]
    fn the_next_electorate_keeps_every_configured_id() {
        // Member 3 did not answer: its process from the last electorate is carried.
        let q = quorum(&[(1, 1), (2, 1), (3, 1)], 3, 2);
        let promises = vec![promise(1, 1, 1, true, &[1, 2, 3], &q), promise(2, 5, 5, false, &[1, 2, 3], &q)];
        let tally = Tally::of(&promises, &config(3));
        let ring = [promises[0].member, promises[1].member];
        let next = tally.next_quorum(&promises, &ring, &config(3));
        assert_eq!(next, quorum(&[(1, 1), (2, 5), (3, 1)], 3, 2));
        let mut dynamic = config(3);
        dynamic.quorum_mode = QuorumMode::Dynamic;
        let next = tally.next_quorum(&promises, &ring, &dynamic);
        assert_eq!(next, quorum(&[(1, 1), (2, 5)], 2, 2), "dynamic: a majority of the new view");
    }
}
