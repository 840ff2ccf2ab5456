//! The coordinator of a view change: collects promises, applies the quorum rule, proposes (or
//! re-proposes) a successor, and commits it once chosen (docs/PROTOCOL.md §5.1, §5.2).

use std::collections::{BTreeMap, BTreeSet};

use super::quorum::{Shortfall, Tally};
use super::ring_order::ring_order;
use super::{Phase, Reason};
use crate::config::Defect;
use crate::core::{Core, Output};
use crate::ids::{Ballot, Member, NodeId, Seq, ViewId};
use crate::time::Time;
use crate::wire::{PeerFrame, Promise, Proposal};

/// What the coordinator is waiting for.
#[derive(Debug)]
pub(in crate::core) enum Stage {
    Preparing {
        deadline: Time,
        /// The deadline never moves past this.
        latest: Time,
    },
    Accepting {
        /// Where the coordinator, as donor, fetches the prefix it lacks.
        source: NodeId,
        proposal: Proposal,
        /// The promisers whose accepts count, and how many of them choose the proposal.
        voters: Vec<Member>,
        needed: usize,
        /// Ring members that must accept (and so hold the prefix) before the commit.
        floor: usize,
        accepted: BTreeSet<Member>,
        deadline: Time,
    },
}

/// One view change run by this member.
#[derive(Debug)]
pub(in crate::core) struct Coordination {
    pub(in crate::core) ballot: Ballot,
    targets: BTreeSet<NodeId>,
    prepared: BTreeSet<NodeId>,
    promises: BTreeMap<NodeId, Promise>,
    refused: BTreeSet<NodeId>,
    unreachable: BTreeSet<NodeId>,
    /// Everyone to tell about the outcome.
    told: BTreeSet<NodeId>,
    pub(in crate::core) stage: Stage,
}

impl Coordination {
    /// Where the coordinator fetches what it lacks of its own proposal.
    pub(in crate::core) fn source(&self) -> Option<NodeId> {
        match &self.stage {
            Stage::Accepting { source, .. } => Some(*source),
            Stage::Preparing { .. } => None,
        }
    }

    pub(in crate::core) fn deadline(&self) -> Time {
        match &self.stage {
            Stage::Preparing { deadline, .. } | Stage::Accepting { deadline, .. } => *deadline,
        }
    }

    /// A failed dial makes a target unreachable; a closed link only means its `Prepare` may be
    /// lost, so it is sent again when the link is back.
    pub(in crate::core) fn on_link_lost(&mut self, peer: NodeId, was_up: bool) {
        if matches!(self.stage, Stage::Preparing { .. }) && !self.promises.contains_key(&peer) {
            if was_up {
                self.prepared.remove(&peer);
            } else {
                self.unreachable.insert(peer);
            }
        }
    }

    /// A promise arrived or a target's link came up: the others may be slow rather than gone
    /// (a loaded host, a dial still in progress), so give them another `patience`, up to the
    /// latest deadline. A quiet wait ends after one `patience` (docs/PROTOCOL.md §5.1).
    fn on_progress(&mut self, now: Time, patience: std::time::Duration) {
        if let Stage::Preparing { deadline, latest } = &mut self.stage {
            *deadline = (*deadline).max(now + patience).min(*latest);
        }
    }

    fn all_answered(&self) -> bool {
        self.targets.iter().all(|t| {
            self.promises.contains_key(t) || self.refused.contains(t) || self.unreachable.contains(t)
        })
    }
}

impl Core {
    /// Starts a view change with a ballot above every one seen (docs/PROTOCOL.md §5.1).
    pub(in crate::core) fn start_coordination(&mut self, now: Time, reason: Reason, out: &mut Vec<Output>) {
        if matches!(self.membership.phase, Phase::Left) || self.config.is_witness() {
            return;
        }
        let ballot = self.next_ballot();
        self.membership.max_round = ballot.round;
        // Who can matter to the successor (docs/PROTOCOL.md §4): the members of the last primary
        // view (its voters), the joiners that asked this member, whoever is linked to it (fresh
        // peers at genesis) and the witnesses, which wait to be asked (§5.7). Members of the
        // universe in none of these are down or joining through a contact of their own, and
        // dialling them would only cost dial slots.
        let mut targets: BTreeSet<NodeId> =
            self.membership.last_primary_members.iter().map(|m| m.id).collect();
        targets.extend(self.membership.joiners.iter().map(|m| m.id));
        targets.extend(self.links.up());
        targets.extend(self.config.witnesses.iter().copied());
        targets.remove(&self.config.me.id);
        if self.membership.change.is_none() {
            self.membership.change = Some((now, reason));
        }
        log::debug!("{} start_coordination: {:?} ballot {:?}", self.config.me.id, reason, ballot);
        self.membership.promised = ballot;
        let promise = self.my_promise(ballot, now);
        self.membership.phase = Phase::Promised { deadline: now + self.view_change_timeout() };
        let mut promises = BTreeMap::new();
        promises.insert(self.config.me.id, promise);
        for &t in &targets {
            self.links.want_now(t, now, out);
        }
        self.membership.coordination = Some(Coordination {
            ballot,
            targets,
            prepared: BTreeSet::new(),
            promises,
            refused: BTreeSet::new(),
            unreachable: BTreeSet::new(),
            told: BTreeSet::new(),
            stage: Stage::Preparing {
                deadline: now + self.prepare_patience(),
                latest: now + self.config.token_timeout,
            },
        });
        self.send_prepares(now, out);
        self.check_coordination(now, out);
    }

    /// A ballot above every one this member has seen or promised.
    pub(in crate::core) fn next_ballot(&self) -> Ballot {
        let round = self.membership.max_round.max(self.membership.promised.round).saturating_add(1);
        Ballot { round, node: self.config.me.id }
    }

    /// How long the coordinator waits for promises after the last sign of progress.
    fn prepare_patience(&self) -> std::time::Duration {
        self.config.token_timeout / 2
    }

    /// Sends `Prepare` to every target whose link is up and that has not had it.
    pub(in crate::core) fn send_prepares(&mut self, now: Time, out: &mut Vec<Output>) {
        let patience = self.prepare_patience();
        let Some(c) = self.membership.coordination.as_mut() else { return };
        if !matches!(c.stage, Stage::Preparing { .. }) {
            return;
        }
        let frame = PeerFrame::Prepare { ballot: c.ballot, last_primary: self.membership.last_primary };
        let due: Vec<NodeId> =
            c.targets.iter().copied().filter(|t| !c.prepared.contains(t) && self.links.is_up(*t)).collect();
        if !due.is_empty() {
            c.on_progress(now, patience);
        }
        for t in due {
            c.prepared.insert(t);
            c.unreachable.remove(&t);
            self.links.send(t, frame.clone(), now, out);
        }
    }

    pub(in crate::core) fn on_promise(
        &mut self,
        now: Time,
        from: NodeId,
        promise: Promise,
        out: &mut Vec<Output>,
    ) {
        self.membership.see_ballot(promise.ballot);
        let patience = self.prepare_patience();
        let Some(c) = self.membership.coordination.as_mut() else { return };
        if promise.ballot != c.ballot || !matches!(c.stage, Stage::Preparing { .. }) {
            return;
        }
        // A promiser from a newer primary view than this member knows: that view's members
        // are its voters, so they are prepared too.
        let newer: Vec<NodeId> = if promise.last_primary > self.membership.last_primary {
            promise.last_primary_members.iter().map(|m| m.id).filter(|id| *id != self.config.me.id).collect()
        } else {
            Vec::new()
        };
        c.promises.insert(from, promise);
        c.on_progress(now, patience);
        for id in newer {
            if c.targets.insert(id) {
                self.links.want_now(id, now, out);
            }
        }
        self.send_prepares(now, out);
        self.check_coordination(now, out);
    }

    pub(in crate::core) fn on_nack(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        promised: Ballot,
        last_primary: ViewId,
        out: &mut Vec<Output>,
    ) {
        self.membership.see_ballot(promised);
        self.force_nacked(from, ballot, last_primary);
        if last_primary > self.membership.last_primary {
            // A newer primary exists: whatever this member coordinates is stale.
            self.membership.peer_status.insert(from, super::PeerStatus { last_primary, operational: true });
            if self.membership.coordination.as_ref().is_some_and(|c| c.ballot == ballot) {
                self.membership.coordination = None;
                if !self.named_in_open_proposal(last_primary) {
                    self.become_excluded(now, out);
                } else if !matches!(self.membership.phase, Phase::Joining { .. }) {
                    self.enter_gather(now);
                }
            }
            return;
        }
        self.send_missed_commit(now, from, last_primary, out);
        let Some(c) = self.membership.coordination.as_mut() else { return };
        if c.ballot != ballot {
            return;
        }
        if promised > ballot {
            // Someone coordinates with a higher ballot; let it.
            self.membership.coordination = None;
            if !matches!(self.membership.phase, Phase::Joining { .. }) {
                self.enter_gather(now);
            }
            return;
        }
        c.refused.insert(from);
        self.check_coordination(now, out);
    }

    /// Decides once every target answered or could not be reached.
    pub(in crate::core) fn check_coordination(&mut self, now: Time, out: &mut Vec<Output>) {
        let ready = self
            .membership
            .coordination
            .as_ref()
            .is_some_and(|c| matches!(c.stage, Stage::Preparing { .. }) && c.all_answered());
        if ready {
            self.decide(now, out);
        }
    }

    pub(in crate::core) fn on_coordination_timeout(&mut self, now: Time, out: &mut Vec<Output>) {
        let Some(c) = self.membership.coordination.as_ref() else { return };
        match &c.stage {
            Stage::Preparing { latest, .. } => {
                let latest = *latest;
                if now < latest && !self.could_decide() {
                    // The answers so far make no primary: wait for the slow ones rather than
                    // leave them out (docs/PROTOCOL.md §5.2).
                    if let Some(Coordination { stage: Stage::Preparing { deadline, .. }, .. }) =
                        self.membership.coordination.as_mut()
                    {
                        *deadline = latest;
                    }
                    return;
                }
                self.decide(now, out)
            }
            Stage::Accepting { .. } => {
                if !self.try_commit(now, true, out) {
                    log::warn!("{} on_accept_timeout: proposal not chosen; retrying", self.config.me.id);
                    self.membership.coordination = None;
                    self.start_coordination(now, Reason::Retry, out);
                }
            }
        }
    }

    /// Whether the promises so far could make a primary, before every target answered.
    fn could_decide(&self) -> bool {
        let Some(c) = self.membership.coordination.as_ref() else { return false };
        let promises: Vec<Promise> = c.promises.values().cloned().collect();
        let tally = Tally::of(&promises, &self.config);
        tally.has_quorum() && tally.ring_candidates(&promises, &self.config).len() >= tally.floor
    }

    /// No primary this time: say why, and retry after token_timeout with jitter.
    pub(in crate::core) fn no_primary(&mut self, now: Time, shortfall: Shortfall) {
        log::info!(
            "{} decide: no primary after {}: {}",
            self.config.me.id,
            self.membership.last_primary,
            shortfall
        );
        self.membership.shortfall = Some(shortfall);
        self.membership.coordination = None;
        let retry = self.config.token_timeout
            + std::time::Duration::from_nanos(
                self.rng.below(u64::try_from(self.config.token_timeout.as_nanos()).unwrap_or(1)),
            );
        if !matches!(self.membership.phase, Phase::Joining { .. }) {
            self.membership.phase = Phase::Gather { coordinate_at: now + retry };
        }
    }

    /// Applies the quorum rule and proposes (docs/PROTOCOL.md §5.2).
    fn decide(&mut self, now: Time, out: &mut Vec<Output>) {
        let me = self.config.me;
        let Some(c) = self.membership.coordination.as_ref() else { return };
        let ballot = c.ballot;
        let promises: Vec<Promise> = c.promises.values().cloned().collect();
        let dial_failed: Vec<NodeId> = c.unreachable.iter().copied().collect();
        let tally = Tally::of(&promises, &self.config);
        if self.membership.force.as_ref().is_some_and(|f| f.ballot == ballot) {
            if !tally.has_quorum() {
                self.decide_forced(now, &tally, &promises, &dial_failed, out);
                return;
            }
            self.force_answered_by_quorum();
        }
        if let Some(shortfall) = tally.no_quorum() {
            if self.config.defect != Defect::QuorumOff {
                self.no_primary(now, shortfall);
                return;
            }
        }
        let lstar = tally.lstar;
        let i_hold = tally.holders.iter().any(|h| h.member == me);
        if lstar != ViewId(0)
            && !i_hold
            && self.membership.last_primary < lstar
            && self.has_history()
            && !self.named_in_open_proposal(lstar)
        {
            // A newer primary exists without this incarnation: it rejoins, and a member that
            // holds the newer view coordinates (docs/PROTOCOL.md §5.2).
            self.membership.coordination = None;
            self.become_excluded(now, out);
            return;
        }
        let voter_members: Vec<Member> = tally.voters.iter().map(|p| p.member).collect();
        let reproposal = tally
            .voters
            .iter()
            .filter_map(|p| p.accepted.clone())
            .filter(|(_, p)| p.prev == lstar)
            .max_by_key(|(b, _)| *b);
        let proposal = match reproposal {
            Some((_, mut p)) => {
                p.donor = self.pick_donor(&tally, p.cut, &p.ring);
                p
            }
            None => {
                let candidates = tally.ring_candidates(&promises, &self.config);
                let ids: Vec<NodeId> = candidates.iter().map(|p| p.member.id).collect();
                let Some(first) =
                    ids.iter().copied().find(|&id| id == me.id).or_else(|| ids.iter().copied().min())
                else {
                    log::info!("{} decide: nobody is left to form a view", me.id);
                    self.membership.coordination = None;
                    return;
                };
                let mut bad = BTreeSet::new();
                for p in &promises {
                    for &u in &p.unreachable {
                        bad.insert((p.member.id, u));
                    }
                }
                for &u in &dial_failed {
                    bad.insert((me.id, u));
                }
                let keep_first = self.config.defect == Defect::NoReplicaFloor;
                let (ring_ids, dropped) = ring_order(first, &ids, &bad, tally.floor, keep_first);
                if ring_ids.len() < tally.floor {
                    let configured = self.config.data_members();
                    let shortfall =
                        Shortfall::Replicas { in_view: ring_ids.len(), configured, needed: tally.floor };
                    self.no_primary(now, shortfall);
                    return;
                }
                if !dropped.is_empty() {
                    log::warn!("{} decide: left out {:?}: no ring avoids their failed links", me.id, dropped);
                }
                let ring: Vec<Member> = ring_ids
                    .iter()
                    .filter_map(|id| candidates.iter().find(|p| p.member.id == *id).map(|p| p.member))
                    .collect();
                let cut = tally.cut();
                let donor = self.pick_donor(&tally, cut, &ring);
                let quorum = tally.next_quorum(&promises, &ring, &self.config);
                Proposal { view: ViewId(lstar.0.saturating_add(1)), prev: lstar, cut, ring, donor, quorum }
            }
        };
        let source = pick_source(&tally, me, proposal.cut, &proposal.ring);
        let needed = if self.config.defect == Defect::QuorumOff { 1 } else { tally.needed };
        self.propose(now, ballot, proposal, &promises, voter_members, needed, tally.floor, source, out);
    }

    /// Sends `Accept` for `proposal` to its ring and the voters, and waits for their accepts.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::core) fn propose(
        &mut self,
        now: Time,
        ballot: Ballot,
        proposal: Proposal,
        promises: &[Promise],
        voters: Vec<Member>,
        needed: usize,
        floor: usize,
        source: NodeId,
        out: &mut Vec<Output>,
    ) {
        let me = self.config.me;
        let mut told: BTreeSet<NodeId> = promises.iter().map(|p| p.member.id).collect();
        told.extend(proposal.ring.iter().map(|m| m.id));
        told.remove(&me.id);
        let accept_to: BTreeSet<NodeId> =
            proposal.ring.iter().map(|m| m.id).chain(voters.iter().map(|m| m.id)).collect();
        let Some(c) = self.membership.coordination.as_mut() else { return };
        c.told = told;
        c.stage = Stage::Accepting {
            source,
            proposal: proposal.clone(),
            voters,
            needed,
            floor: floor.min(proposal.ring.len()),
            accepted: BTreeSet::new(),
            deadline: now + self.config.token_timeout,
        };
        log::debug!(
            "{} decide: proposing {} ring {:?} cut {} (ballot {:?})",
            me.id,
            proposal.view,
            proposal.ring.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            proposal.cut,
            ballot
        );
        for &to in accept_to.iter().filter(|&&id| id != me.id) {
            self.links.send(to, PeerFrame::Accept { ballot, proposal: proposal.clone() }, now, out);
        }
        if accept_to.contains(&me.id) {
            self.begin_accept(now, ballot, proposal, false, out);
        }
    }

    /// The donor serves the prefix to every participant. A coordinator that holds the history and
    /// is in the ring has a link to every participant, so it is the donor, fetching first from a
    /// holder what it lacks; otherwise a ring member that holds the whole prefix is.
    fn pick_donor(&self, tally: &Tally, cut: Seq, ring: &[Member]) -> NodeId {
        let me = self.config.me;
        let holds = tally.lstar == ViewId(0) && tally.voters.iter().any(|p| p.member == me)
            || tally.holders.iter().any(|p| p.member == me);
        if holds && ring.contains(&me) {
            return me.id;
        }
        let candidates = if tally.lstar == ViewId(0) { &tally.voters } else { &tally.holders };
        let mut full: Vec<&Promise> = candidates.iter().filter(|p| tally.held(p) >= cut).collect();
        full.sort_by_key(|p| (!ring.contains(&p.member), p.member.id));
        full.first().map_or(me.id, |p| p.member.id)
    }

    pub(in crate::core) fn on_accepted(
        &mut self,
        now: Time,
        ballot: Ballot,
        member: Member,
        out: &mut Vec<Output>,
    ) {
        let Some(c) = self.membership.coordination.as_mut() else { return };
        if c.ballot != ballot {
            return;
        }
        if let Stage::Accepting { accepted, .. } = &mut c.stage {
            accepted.insert(member);
        }
        self.try_commit(now, false, out);
    }

    /// Commits the proposal once chosen, and once every ring member has it unless `timed_out`.
    fn try_commit(&mut self, now: Time, timed_out: bool, out: &mut Vec<Output>) -> bool {
        let Some(c) = self.membership.coordination.as_ref() else { return false };
        let Stage::Accepting { proposal, voters, needed, floor, accepted, .. } = &c.stage else {
            return false;
        };
        let chosen = voters.iter().filter(|v| accepted.contains(v)).count() >= *needed;
        let holding = proposal.ring.iter().filter(|m| accepted.contains(m)).count();
        let all = holding == proposal.ring.len();
        // The install commits the prefix up to the cut: only once the write quorum holds it
        // (docs/PROTOCOL.md §5.2).
        let chosen = chosen && holding >= *floor;
        log::trace!(
            "{} try_commit: voters {:?} accepted {:?} chosen {} all {}",
            self.config.me.id,
            voters,
            accepted,
            chosen,
            all
        );
        if !(chosen && (all || timed_out)) {
            return false;
        }
        let ballot = c.ballot;
        let proposal = proposal.clone();
        let told: Vec<NodeId> = c.told.iter().copied().collect();
        self.membership.coordination = None;
        self.on_force_committed(&proposal, out);
        for to in told {
            self.links.send(to, PeerFrame::Commit { ballot, proposal: proposal.clone() }, now, out);
        }
        self.on_commit(now, ballot, proposal, out);
        true
    }

    /// This member's promise for `ballot`.
    pub(in crate::core) fn my_promise(&self, ballot: Ballot, now: Time) -> Promise {
        Promise {
            ballot,
            member: self.config.me,
            boot: self.membership.boot,
            last_primary: self.membership.last_primary,
            last_primary_members: self.membership.last_primary_members.clone(),
            quorum: self.membership.quorum.clone(),
            holds_log: self.membership.holds_log,
            // Whatever this process accepted last, for whichever view: the coordinator compares it
            // with the newest view it hears of (docs/PROTOCOL.md §5.2).
            accepted: self.membership.accepted.clone(),
            received_upto: if self.membership.holds_log { self.log.received_upto } else { 0 },
            committed_upto: self.log.committed_upto,
            unreachable: self.unreachable(now),
            // A member receiving a catch-up is not to be let in before it ends (§5.3).
            leaving: self.membership.leaving.is_some() || self.membership.streams.catching_up(),
        }
    }
}

/// Where a coordinator that donates fetches the prefix it lacks: itself if it holds it all, else a
/// holder of the whole prefix, ring members first (a holder left out of the ring drops its log on
/// the commit).
fn pick_source(tally: &Tally, me: Member, cut: Seq, ring: &[Member]) -> NodeId {
    let candidates = if tally.lstar == ViewId(0) { &tally.voters } else { &tally.holders };
    let mut full: Vec<&Promise> = candidates.iter().filter(|p| tally.held(p) >= cut).collect();
    full.sort_by_key(|p| (p.member.id != me.id, !ring.contains(&p.member), p.member.id));
    full.first().map_or(me.id, |p| p.member.id)
}
