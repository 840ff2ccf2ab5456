//! Membership: views, the view change that chooses each primary view's successor, recovery up to
//! the cut, joins, leaves and partial connectivity (docs/PROTOCOL.md §5). Serves guarantees 2, 3,
//! 5 and 6, and 7 after faults. Follows Viewstamped Replication's view change with single-decree
//! Paxos per successor, and Totem's idea of recovering the old ring's messages before installing.

mod coordinator;
mod force;
mod join;
pub(in crate::core) mod learn;
mod participant;
mod quorum;
pub(in crate::core) mod ring_order;
pub(in crate::core) mod stream;
mod transfer;
mod witness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub(in crate::core) use coordinator::Coordination;
pub(in crate::core) use force::ForceRequest;
pub(in crate::core) use quorum::Shortfall;
pub(in crate::core) use transfer::Transfer;

use crate::core::{Core, Output};
use crate::ids::{Ballot, Member, NodeId, ViewId};
use crate::time::Time;
use crate::wire::{PeerFrame, Proposal, Quorum};

/// Why a view change started; logged and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Forming the first view of a fresh cluster.
    Genesis,
    /// A ring neighbour's link closed.
    LinkClosed,
    /// A ring neighbour's link went silent.
    LinkSilent,
    /// No token for too long.
    TokenLost,
    /// Members asked to join.
    Join,
    /// A member asked to leave.
    Leave,
    /// A view change made no progress; trying again with a higher ballot.
    Retry,
    /// An operator forces a primary (docs/PROTOCOL.md §5.8).
    Force,
    /// The installed view's quorum is not the committed universe's (docs/PROTOCOL.md §5.9).
    Universe,
}

impl Reason {
    /// Every reason, in the order `Core::installs_by_reason` counts them.
    pub const ALL: [Reason; 9] = [
        Reason::Genesis,
        Reason::LinkClosed,
        Reason::LinkSilent,
        Reason::TokenLost,
        Reason::Join,
        Reason::Leave,
        Reason::Retry,
        Reason::Force,
        Reason::Universe,
    ];

    /// Its name in metrics: lower case, words joined by `_`.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Genesis => "genesis",
            Reason::LinkClosed => "link_closed",
            Reason::LinkSilent => "link_silent",
            Reason::TokenLost => "token_lost",
            Reason::Join => "join",
            Reason::Leave => "leave",
            Reason::Retry => "retry",
            Reason::Force => "force",
            Reason::Universe => "universe",
        }
    }
}

/// Where a member stands in the membership protocol.
#[derive(Debug)]
pub(in crate::core) enum Phase {
    /// In no view: looking for a primary to join, or for enough fresh peers to form the first.
    Joining { next_join: Time },
    /// Member of an installed primary view; the ring runs.
    Operational,
    /// Left the ring; coordinates at `coordinate_at` unless a coordinator prepares it first.
    Gather { coordinate_at: Time },
    /// Promised a ballot; waits for its `Accept`.
    Promised { deadline: Time },
    /// Fetching what it lacks before accepting `proposal`.
    Accepting { ballot: Ballot, proposal: Proposal, transfer: Transfer, deadline: Time, committed: bool },
    /// Accepted; waits for `Commit`.
    Accepted { proposal: Proposal, deadline: Time },
    /// Left the group.
    Left,
}

/// A link that failed while in use, and for how long it counts as unusable.
#[derive(Clone, Copy, Debug)]
pub(in crate::core) struct Penalty {
    incarnation: u64,
    until: Time,
    window: Duration,
}

/// What a joining peer said about itself.
#[derive(Clone, Copy, Debug)]
pub(in crate::core) struct PeerStatus {
    pub(in crate::core) last_primary: ViewId,
    pub(in crate::core) operational: bool,
}

/// The membership state of one member.
#[derive(Debug)]
pub(in crate::core) struct Membership {
    pub(in crate::core) phase: Phase,
    /// The last installed primary view, its members, and who votes on its successor.
    pub(in crate::core) last_primary: ViewId,
    pub(in crate::core) last_primary_members: Vec<Member>,
    pub(in crate::core) quorum: Quorum,
    /// The view and universe epoch whose quorum was last compared with the universe
    /// (docs/PROTOCOL.md §5.9), so that the comparison runs once per view and change.
    pub(in crate::core) universe_checked: (ViewId, u64),
    /// The incarnation this process started with: with the id, the process that votes
    /// (docs/PROTOCOL.md §1). `promised` and `accepted` belong to it and survive a rejoin.
    pub(in crate::core) boot: u64,
    /// Whether this incarnation is a member of `last_primary` and holds its log.
    pub(in crate::core) holds_log: bool,
    pub(in crate::core) promised: Ballot,
    pub(in crate::core) accepted: Option<(Ballot, Proposal)>,
    /// The newest view an `Accept` proposed with this process in its ring, and the incarnation it
    /// named: whether or not it got as far as accepting, others may have, and a coordinator
    /// proposes that value again unchanged (docs/PROTOCOL.md §5.4, "A named incarnation stays").
    pub(in crate::core) named: Option<(ViewId, Member)>,
    /// The chosen proposal of `last_primary` as installed here, to send again to a member of
    /// it that missed its `Commit` (docs/PROTOCOL.md §5.3).
    pub(in crate::core) installed: Option<(Ballot, Proposal)>,
    pub(in crate::core) max_round: u64,
    pub(in crate::core) coordination: Option<Coordination>,
    /// Members that asked to join while this one is operational, and when to let them in.
    pub(in crate::core) joiners: BTreeSet<Member>,
    /// When a joiner without state first asked this member, which does not stream to it: the
    /// join waits for the streaming member's catch-up (docs/PROTOCOL.md §5.3).
    pub(in crate::core) stateless_joins: BTreeMap<NodeId, Time>,
    pub(in crate::core) join_at: Option<Time>,
    pub(in crate::core) peer_status: BTreeMap<NodeId, PeerStatus>,
    pub(in crate::core) penalties: BTreeMap<NodeId, Penalty>,
    pub(in crate::core) leaving: Option<Time>,
    pub(in crate::core) started_at: Time,
    pub(in crate::core) token_seen_at: Time,
    /// Ring frames of a view not yet installed here, and their `held_bytes`.
    pub(in crate::core) early: Vec<(NodeId, PeerFrame)>,
    pub(in crate::core) early_bytes: usize,
    /// When the current view change started, and why.
    pub(in crate::core) change: Option<(Time, Reason)>,
    pub(in crate::core) view_changes: u64,
    /// Views installed, by what started their change (`Reason::ALL`'s order), for the metrics.
    pub(in crate::core) installs_by_reason: [u64; Reason::ALL.len()],
    /// How long to wait between join requests after being left out of views.
    pub(in crate::core) join_backoff: Duration,
    /// Why the last attempt to form a primary failed, until one is installed.
    pub(in crate::core) shortfall: Option<Shortfall>,
    /// An operator's forced recovery waiting for its outcome (docs/PROTOCOL.md §5.8), and its
    /// answers decided inside a handler that has no output list.
    pub(in crate::core) force: Option<ForceRequest>,
    pub(in crate::core) force_reports: Vec<Output>,
    /// Checkpoints streamed to and from this member (docs/PROTOCOL.md §5.3).
    pub(in crate::core) streams: stream::Streams,
    /// The members a joining member links to and asks to let it in (docs/PROTOCOL.md §4), and
    /// since when the first of them has been asked.
    pub(in crate::core) contacts: Vec<NodeId>,
    pub(in crate::core) contacts_since: Time,
    /// Contacts whose link failed, passed over until the time given; the window doubles.
    pub(in crate::core) contact_skip: BTreeMap<NodeId, (Time, Duration)>,
    /// The members of the newest primary view heard of that this member is not in.
    pub(in crate::core) view_hint: Vec<NodeId>,
}

/// Ring frames of future views kept until their view is installed, at most this many and at
/// most the byte window and two batches in bytes (docs/PROTOCOL.md §2.2): the new view's token
/// cannot have stamped more that this member has not yet seen safe.
const EARLY_FRAMES_MAX: usize = 4096;
/// Ranks beyond this wait as long as this one to coordinate after a failed view change.
const GATHER_RANKS_MAX: usize = 15;

impl Membership {
    pub(in crate::core) fn new(now: Time, boot: u64) -> Membership {
        Membership {
            phase: Phase::Joining { next_join: now },
            last_primary: ViewId(0),
            last_primary_members: Vec::new(),
            quorum: Quorum::default(),
            universe_checked: (ViewId(0), 0),
            boot,
            holds_log: false,
            promised: Ballot::default(),
            accepted: None,
            named: None,
            installed: None,
            max_round: 0,
            coordination: None,
            joiners: BTreeSet::new(),
            stateless_joins: BTreeMap::new(),
            join_at: None,
            peer_status: BTreeMap::new(),
            penalties: BTreeMap::new(),
            leaving: None,
            started_at: now,
            token_seen_at: now,
            early: Vec::new(),
            early_bytes: 0,
            change: None,
            view_changes: 0,
            installs_by_reason: [0; Reason::ALL.len()],
            join_backoff: Duration::ZERO,
            shortfall: None,
            force: None,
            force_reports: Vec::new(),
            streams: stream::Streams::default(),
            contacts: Vec::new(),
            contacts_since: now,
            contact_skip: BTreeMap::new(),
            view_hint: Vec::new(),
        }
    }

    pub(in crate::core) fn is_operational(&self) -> bool {
        matches!(self.phase, Phase::Operational)
    }

    fn see_ballot(&mut self, ballot: Ballot) {
        self.max_round = self.max_round.max(ballot.round);
    }

    /// The next deadline of the membership protocol.
    pub(in crate::core) fn next_deadline(&self) -> Time {
        let phase = match &self.phase {
            Phase::Joining { next_join } => *next_join,
            Phase::Operational => Time::NEVER,
            Phase::Gather { coordinate_at } => *coordinate_at,
            Phase::Promised { deadline, .. }
            | Phase::Accepting { deadline, .. }
            | Phase::Accepted { deadline, .. } => *deadline,
            Phase::Left => Time::NEVER,
        };
        let coordination = self.coordination.as_ref().map_or(Time::NEVER, Coordination::deadline);
        let join = self.join_at.unwrap_or(Time::NEVER);
        let leave = self.leaving.unwrap_or(Time::NEVER);
        phase.min(coordination).min(join).min(leave)
    }
}

impl Core {
    /// The timeouts of docs/PROTOCOL.md §5, all derived from the token timeout.
    pub(in crate::core) fn token_loss_timeout(&self) -> Duration {
        self.config.token_timeout * 3 + self.config.idle_hold
    }

    pub(in crate::core) fn view_change_timeout(&self) -> Duration {
        self.config.token_timeout * 2
    }

    /// A link to `peer` failed while in use: avoid it in ring orders for a while, longer each
    /// time it fails again (docs/PROTOCOL.md §5.5).
    pub(in crate::core) fn penalize(&mut self, now: Time, peer: NodeId, incarnation: u64) {
        let base = self.config.token_timeout * 2;
        let window = match self.membership.penalties.get(&peer) {
            Some(p) if p.incarnation == incarnation && now < p.until + p.window => {
                (p.window * 2).min(self.config.token_timeout * 64)
            }
            _ => base,
        };
        self.membership.penalties.insert(peer, Penalty { incarnation, until: now + window, window });
    }

    /// A peer showed up as a new incarnation: the links that failed were its predecessor's.
    pub(in crate::core) fn forgive(&mut self, peer: Member) {
        if self.membership.penalties.get(&peer.id).is_some_and(|p| p.incarnation < peer.incarnation) {
            self.membership.penalties.remove(&peer.id);
        }
    }

    /// Peers this member cannot usefully link to now: penalized links to the same incarnation.
    pub(in crate::core) fn unreachable(&self, now: Time) -> Vec<NodeId> {
        self.membership
            .penalties
            .iter()
            .filter(|(id, p)| {
                now < p.until && self.links.peer(**id).is_none_or(|m| m.incarnation == p.incarnation)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// A link went down or silent (`was_up`), or a dial failed.
    pub(in crate::core) fn on_link_lost(
        &mut self,
        now: Time,
        peer: NodeId,
        was_up: bool,
        reason: Reason,
        out: &mut Vec<Output>,
    ) {
        if let Some(c) = self.membership.coordination.as_mut() {
            c.on_link_lost(peer, was_up);
        }
        if matches!(self.membership.phase, Phase::Joining { .. }) && self.membership.contacts.contains(&peer)
        {
            self.skip_contact(now, peer);
        }
        if self.membership.is_operational() && self.ring.neighbours().contains(&peer) {
            let incarnation = self.ring.members.iter().find(|m| m.id == peer).map_or(0, |m| m.incarnation);
            self.penalize(now, peer, incarnation);
            log::warn!("{} on_link_lost: ring neighbour {} lost ({:?})", self.config.me.id, peer, reason);
            if peer == self.ring.successor() {
                self.start_coordination(now, reason, out);
            } else {
                // Only the predecessor link is gone: the member before it lost its successor
                // link and coordinates; this one steps in only if no Prepare comes
                // (docs/PROTOCOL.md §5.1). One coordinator instead of two, each dialling every
                // member.
                self.membership.change.get_or_insert((now, reason));
                let coordinate_at = now + self.config.token_timeout / 4;
                self.membership.phase = Phase::Gather { coordinate_at };
            }
        }
        self.check_coordination(now, out);
    }

    /// Membership deadlines due at `now`.
    pub(in crate::core) fn on_membership_timeouts(&mut self, now: Time, out: &mut Vec<Output>) {
        if let Some(at) = self.membership.leaving.filter(|at| now >= *at) {
            // In `Left` already, it lingered after its own commit (§5.6); otherwise the view
            // change that was to leave it out did not complete in time.
            if !matches!(self.membership.phase, Phase::Left) {
                log::warn!(
                    "{} on_leave_timeout: leaving without a completed view change at {at}",
                    self.config.me.id
                );
            }
            self.finish_leave(out);
            return;
        }
        if self.membership.coordination.as_ref().is_some_and(|c| now >= c.deadline()) {
            self.on_coordination_timeout(now, out);
        }
        if self.membership.join_at.is_some_and(|at| now >= at) {
            self.membership.join_at = None;
            if self.membership.is_operational() && !self.membership.joiners.is_empty() {
                self.start_coordination(now, Reason::Join, out);
            }
        }
        match self.membership.phase {
            Phase::Joining { next_join } if now >= next_join => self.on_join_interval(now, out),
            Phase::Operational if now >= self.membership.token_seen_at + self.token_loss_timeout() => {
                log::warn!(
                    "{} on_token_timeout: no token for {:?}",
                    self.config.me.id,
                    self.token_loss_timeout()
                );
                // Every member sees the token lost at about the same time: coordinating at once
                // would start one view change per member, each dialling every other. The rank
                // stagger lets the first of them do it (docs/PROTOCOL.md §5.1).
                self.membership.change.get_or_insert((now, Reason::TokenLost));
                self.enter_gather(now);
            }
            Phase::Gather { coordinate_at } if now >= coordinate_at => {
                self.start_coordination(now, Reason::Retry, out);
            }
            Phase::Accepting { deadline, committed: true, .. } if now >= deadline => {
                // The view is chosen with this member in it, but nobody could give it the
                // prefix: it cannot take part, so it rejoins as a new incarnation.
                log::warn!(
                    "{} on_view_change_timeout: cannot fetch the prefix of a chosen view",
                    self.config.me.id
                );
                self.become_excluded(now, out);
            }
            Phase::Promised { deadline, .. }
            | Phase::Accepting { deadline, .. }
            | Phase::Accepted { deadline, .. }
                if now >= deadline =>
            {
                log::warn!("{} on_view_change_timeout: no progress; gathering again", self.config.me.id);
                self.enter_gather(now);
            }
            _ => {}
        }
    }

    /// Leaves the ring and waits for a coordinator, coordinating itself after a staggered delay.
    /// The rank is capped, so that in a large view the fallback comes within a few token
    /// timeouts; ballots settle the rare duel that the jitter does not avoid. A witness never
    /// coordinates: it waits for the next `Prepare` (docs/PROTOCOL.md §5.7).
    pub(in crate::core) fn enter_gather(&mut self, now: Time) {
        if self.config.is_witness() {
            self.membership.phase = Phase::Joining { next_join: now };
            return;
        }
        let ids = &self.membership.last_primary_members;
        let rank = ids.iter().position(|m| m.id == self.config.me.id).unwrap_or(ids.len());
        let stagger = self.config.token_timeout / 8 * (rank.min(GATHER_RANKS_MAX) as u32 + 1);
        let jitter =
            Duration::from_nanos(self.rng.below(u64::try_from(stagger.as_nanos()).unwrap_or(1).max(1)));
        self.membership.phase = Phase::Gather { coordinate_at: now + stagger + jitter };
    }

    /// Keeps a ring frame of a view not yet installed here, to replay after the install.
    pub(in crate::core) fn keep_early(&mut self, from: NodeId, frame: PeerFrame) {
        let bytes = frame.held_bytes();
        let bytes_max = self.config.window_bytes_max as usize + 2 * self.config.batch_bytes_max;
        if self.membership.early.len() < EARLY_FRAMES_MAX && self.membership.early_bytes + bytes <= bytes_max
        {
            self.membership.early_bytes += bytes;
            self.membership.early.push((from, frame));
        }
    }
}
