//! A participant in a view change: promise, fetch what it lacks, accept, and install the chosen
//! view (docs/PROTOCOL.md §5.2–§5.4). Installing delivers the old view up to the cut, so every
//! member that moves from one view to the next delivered the same messages in it.

use super::transfer::{Need, Transfer};
use super::{PeerStatus, Phase};
use crate::core::ring::message_log::MessageLog;
use crate::core::ring::RingState;
use crate::core::Core;
use crate::core::{Output, RejectReason, ViewInfo};
use crate::ids::{Ballot, Member, ViewId};
use crate::time::Time;
use crate::wire::{PeerFrame, Proposal};

impl Core {
    fn nack(&mut self, now: Time, to: crate::ids::NodeId, ballot: Ballot, out: &mut Vec<Output>) {
        let frame = PeerFrame::Nack {
            ballot,
            promised: self.membership.promised,
            last_primary: self.membership.last_primary,
        };
        self.links.send(to, frame, now, out);
    }

    pub(in crate::core) fn on_prepare(
        &mut self,
        now: Time,
        from: crate::ids::NodeId,
        ballot: Ballot,
        coordinator_primary: ViewId,
        out: &mut Vec<Output>,
    ) {
        self.membership.see_ballot(ballot);
        if self.send_missed_commit(now, from, coordinator_primary, out) {
            return;
        }
        if ballot <= self.membership.promised || matches!(self.membership.phase, Phase::Left) {
            self.nack(now, from, ballot, out);
            return;
        }
        if self.membership.is_operational() && !self.ring.members.iter().any(|m| m.id == from) {
            // An outsider may not disrupt a working primary; the Nack tells it to join instead.
            self.nack(now, from, ballot, out);
            return;
        }
        if coordinator_primary > self.membership.last_primary && self.has_history() {
            let me = self.config.me;
            let maybe_member = self
                .membership
                .accepted
                .as_ref()
                .is_some_and(|(_, p)| p.view == coordinator_primary && p.ring.contains(&me));
            if maybe_member {
                // It accepted that view with itself in it, so its Commit was probably lost on
                // the way. The Nack shows the coordinator this member's older view; the
                // coordinator answers with the view's Commit, which settles it.
                self.nack(now, from, ballot, out);
                return;
            }
            if !self.named_in_open_proposal(coordinator_primary) {
                // A newer primary exists without this incarnation: it is excluded.
                self.become_excluded(now, out);
            }
        }
        if self.membership.coordination.as_ref().is_some_and(|c| c.ballot < ballot) {
            self.membership.coordination = None;
        }
        self.membership.promised = ballot;
        if self.membership.change.is_none() {
            self.membership.change = Some((now, super::Reason::Retry));
        }
        let promise = self.my_promise(ballot, now);
        if !matches!(self.membership.phase, Phase::Joining { .. }) {
            self.membership.phase = Phase::Promised { deadline: now + self.view_change_timeout() };
        }
        self.links.send(from, PeerFrame::Promise(Box::new(promise)), now, out);
    }

    /// Whether an `Accept` named this very incarnation in its ring for a view after `newest` (the
    /// newest primary it has heard of). Others may have accepted that proposal, and every later
    /// coordinator proposes it again unchanged (§5.2); were this incarnation to rejoin as a new
    /// one, the proposal could never gather its ring's accepts and the view change would never
    /// end. So it keeps its incarnation until a view at or after the proposal's is known
    /// (docs/PROTOCOL.md §5.4, "A named incarnation stays").
    pub(in crate::core) fn named_in_open_proposal(&self, newest: ViewId) -> bool {
        self.membership.named.is_some_and(|(view, member)| view > newest && member == self.config.me)
    }

    /// A member that caught up before joining keeps only what it committed: messages it fetched
    /// for a proposal that never installed are not, and the view chosen instead may have another
    /// cut, above which a later view numbers other messages with the same seqs. So it fetches
    /// them again after what it committed, rather than the whole checkpoint (docs/PROTOCOL.md
    /// §5.3, "Learning the log").
    pub(in crate::core) fn drop_unchosen_fetch(&mut self) {
        let caught_up = self.membership.streams.caught_up > 0;
        if !self.membership.holds_log && caught_up && self.log.received_upto > self.log.committed_upto {
            self.log.truncate_above(self.log.committed_upto);
        }
    }

    /// Whether this incarnation has history of its own (a view it was in, or durable state): a
    /// state it caught up to from the primary is not its own.
    pub(in crate::core) fn has_history(&self) -> bool {
        self.membership.holds_log || (self.log.committed_upto > 0 && self.membership.streams.caught_up == 0)
    }

    pub(in crate::core) fn on_accept(
        &mut self,
        now: Time,
        from: crate::ids::NodeId,
        ballot: Ballot,
        proposal: Proposal,
        out: &mut Vec<Output>,
    ) {
        self.membership.see_ballot(ballot);
        // A proposal for a view installed here already is stale (its Commit overtook it); the
        // Nack carries the newer view so a stale coordinator learns it is out.
        let stale = proposal.view <= self.membership.last_primary;
        if stale || ballot < self.membership.promised || matches!(self.membership.phase, Phase::Left) {
            self.nack(now, from, ballot, out);
            return;
        }
        self.begin_accept(now, ballot, proposal, false, out);
    }

    /// Starts fetching what this member lacks of `proposal`'s prefix; accepts once it holds it.
    pub(in crate::core) fn begin_accept(
        &mut self,
        now: Time,
        ballot: Ballot,
        proposal: Proposal,
        committed: bool,
        out: &mut Vec<Output>,
    ) {
        self.membership.promised = self.membership.promised.max(ballot);
        self.drop_unchosen_fetch();
        let me = self.config.me;
        let in_ring = proposal.ring.contains(&me);
        if in_ring && self.membership.named.is_none_or(|(view, named)| named != me || view < proposal.view) {
            self.membership.named = Some((proposal.view, me));
        }
        let member_of_prev = self.membership.holds_log && self.membership.last_primary == proposal.prev;
        let donor = proposal.donor == me.id;
        let need = if !in_ring && !donor {
            Need::Nothing
        } else if member_of_prev {
            if self.log.received_upto >= proposal.cut {
                Need::Nothing
            } else {
                Need::Log
            }
        } else if proposal.cut == 0 && !self.has_history() {
            Need::Nothing
        } else if !self.membership.holds_log
            && self.membership.streams.caught_up > 0
            && self.membership.streams.caught_up == self.log.received_upto
            && self.membership.streams.caught_up <= proposal.cut
            && proposal.prev != ViewId(0)
        {
            // Caught up before it was let in: only the log after that checkpoint is missing.
            if self.log.received_upto == proposal.cut {
                Need::Nothing
            } else {
                Need::Log
            }
        } else if !self.membership.holds_log
            && proposal.prev == ViewId(0)
            && self.log.committed_upto == proposal.cut
        {
            // A restarted member whose durable state is the first view's starting point.
            Need::Nothing
        } else {
            Need::Snapshot
        };
        self.want_neighbours(now, &proposal.ring, out);
        let need =
            if self.config.defect == crate::config::Defect::SkipRecovery { Need::Nothing } else { need };
        let transfer = Transfer::new(need, proposal.cut, proposal.donor);
        self.membership.phase = Phase::Accepting {
            ballot,
            proposal,
            transfer,
            deadline: now + self.view_change_timeout(),
            committed,
        };
        self.request_transfer(now, out);
        self.check_accept_done(now, out);
    }

    /// Accepts once the transfer is complete; installs if the view is already known chosen.
    pub(in crate::core) fn check_accept_done(&mut self, now: Time, out: &mut Vec<Output>) {
        let Phase::Accepting { transfer, .. } = &self.membership.phase else { return };
        if !transfer.done(&self.log) {
            return;
        }
        let Phase::Accepting { ballot, proposal, committed, transfer, .. } =
            std::mem::replace(&mut self.membership.phase, Phase::Left)
        else {
            unreachable!("matched above")
        };
        for (from, fetch) in transfer.deferred {
            self.on_fetch(now, from, fetch, out);
        }
        self.membership.accepted = Some((ballot, proposal.clone()));
        self.membership.phase =
            Phase::Accepted { proposal: proposal.clone(), deadline: now + self.view_change_timeout() };
        if committed {
            self.install(now, proposal, out);
            return;
        }
        let me = self.config.me;
        if ballot.node == me.id {
            self.on_accepted(now, ballot, me, out);
        } else {
            self.links.send(ballot.node, PeerFrame::Accepted { ballot, member: me }, now, out);
        }
    }

    /// `to`, a member of the view installed here, reports an older primary: it missed this
    /// view's `Commit` (lost with a link). Send it again; it installs, fetching from this member
    /// what it lacks. Left to guess from view ids, it excluded itself, and a small view whose
    /// live member re-incarnated could never regain a quorum (docs/PROTOCOL.md §5.3).
    pub(in crate::core) fn send_missed_commit(
        &mut self,
        now: Time,
        to: crate::ids::NodeId,
        their_primary: ViewId,
        out: &mut Vec<Output>,
    ) -> bool {
        if !self.membership.holds_log || their_primary == ViewId(0) {
            return false;
        }
        let Some((ballot, proposal)) = self.membership.installed.as_ref() else { return false };
        // By id: a link keeps the incarnation its process announced at start-up, while the core
        // counts a new one at each exclusion. The receiver checks its exact incarnation itself
        // and learns it is excluded if the view holds another.
        let member = proposal.ring.iter().any(|m| m.id == to);
        if proposal.view != self.membership.last_primary || their_primary >= proposal.view || !member {
            return false;
        }
        let mut proposal = proposal.clone();
        proposal.donor = self.config.me.id;
        let frame = PeerFrame::Commit { ballot: *ballot, proposal };
        log::info!(
            "{} send_missed_commit: {} is still in {}; sending the commit of {}",
            self.config.me.id,
            to,
            their_primary,
            self.membership.last_primary
        );
        self.links.send(to, frame, now, out)
    }

    pub(in crate::core) fn on_commit(
        &mut self,
        now: Time,
        ballot: Ballot,
        proposal: Proposal,
        out: &mut Vec<Output>,
    ) {
        self.membership.see_ballot(ballot);
        if proposal.view <= self.membership.last_primary || matches!(self.membership.phase, Phase::Left) {
            return;
        }
        let me = self.config.me;
        if !proposal.ring.contains(&me) {
            if self.membership.leaving.is_some() {
                if ballot.node == me.id {
                    // Its own commit: its `Commit` frames are still on their way (§5.6).
                    self.linger_after_commit(now, out);
                } else {
                    self.finish_leave(out);
                }
                return;
            }
            if self.config.is_witness() {
                self.witness_saw_commit(now, proposal);
                return;
            }
            let newer = PeerStatus { last_primary: proposal.view, operational: true };
            self.membership.peer_status.insert(proposal.donor, newer);
            // Where to ask to join: the members of that view (docs/PROTOCOL.md §4).
            self.membership.view_hint = proposal.ring.iter().map(|m| m.id).collect();
            if self.named_in_open_proposal(proposal.view) {
                // A late commit of a view before the one an `Accept` named it in (§5.4).
                return;
            }
            if self.has_history() || !matches!(self.membership.phase, Phase::Joining { .. }) {
                self.become_excluded(now, out);
            }
            // Left out although it answered: its links are failing. Asking again at once would
            // only start another view change that leaves it out (docs/PROTOCOL.md §5.5).
            self.back_off_joining(now);
            return;
        }
        // The successor is chosen: whatever this member coordinates for it is moot.
        self.membership.coordination = None;
        // Only the very value accepted here may be installed without fetching again: another
        // proposal for the same view (a different ballot's) may have another cut or ring.
        match &mut self.membership.phase {
            // Only what it accepted: the prefix it holds is that proposal's (a damaged `Accept`
            // of the same view must not let it install another ring, cut or electorate).
            Phase::Accepted { proposal: p, .. } if same_value(p, &proposal) => {
                self.install(now, proposal, out)
            }
            Phase::Accepting { proposal: p, committed, .. } if same_value(p, &proposal) => {
                *committed = true;
            }
            _ => self.begin_accept(now, ballot, proposal, true, out),
        }
    }

    /// Installs a chosen view (docs/PROTOCOL.md §5.3, §5.4).
    pub(in crate::core) fn install(&mut self, now: Time, proposal: Proposal, out: &mut Vec<Output>) {
        // Installed primary views form one chain (docs/PROTOCOL.md §5.4): never one twice or an
        // older one. A core that breaks it panics, and the simulator replays the seed.
        assert!(
            proposal.view > self.membership.last_primary,
            "install of {} after {}",
            proposal.view,
            self.membership.last_primary
        );
        let cut = proposal.cut;
        let member_of_prev = self.membership.holds_log && self.membership.last_primary == proposal.prev;
        if member_of_prev {
            // Finish the old view: deliver and commit exactly its prefix up to the cut.
            self.log.truncate_above(cut);
            self.deliver_ready(out);
            self.commit_upto(cut, out);
        } else {
            // A joiner applies the prefix it fetched but delivers only what its views carry.
            self.log.skip_delivery_upto(cut);
            self.commit_upto(cut, out);
        }
        if self.log.committed_upto < cut {
            // Only a broken core (or a forged frame) gets here: this member does not hold the
            // prefix it would install on. It must not take part with a gap in its history, so it
            // rejoins as a new incarnation and is given the state (docs/PROTOCOL.md §5.3).
            log::error!(
                "{} install: prefix held only up to {} of cut {}; rejoining",
                self.config.me.id,
                self.log.committed_upto,
                cut
            );
            self.become_excluded(now, out);
            return;
        }
        self.log = MessageLog::starting_after(cut.max(self.log.committed_upto));
        let requeued = self.queue.requeue_in_flight();
        self.barriers.on_install();
        self.membership.last_primary = proposal.view;
        self.membership.last_primary_members = proposal.ring.clone();
        self.membership.quorum = proposal.quorum.clone();
        self.membership.shortfall = None;
        self.membership.holds_log = true;
        let ballot = match self.membership.accepted.take() {
            Some((ballot, accepted)) if accepted.view == proposal.view => ballot,
            _ => self.membership.promised,
        };
        self.membership.installed = Some((ballot, proposal.clone()));
        self.membership.joiners.retain(|j| {
            let witness_named = proposal.quorum.names(crate::ids::Voter { id: j.id, boot: j.incarnation });
            !proposal.ring.contains(j) && !witness_named
        });
        self.membership.streams.caught_up = 0;
        self.membership.streams.learning = None;
        self.membership.view_changes += 1;
        self.membership.join_backoff = std::time::Duration::ZERO;
        self.membership.token_seen_at = now;
        self.membership.phase = Phase::Operational;
        self.ring =
            RingState::new(proposal.view, proposal.ring.clone(), self.config.me, self.config.ring_mode);
        self.ring.create_token_if_first(cut);
        self.assign_role(&proposal.ring);
        self.want_neighbours(now, &proposal.ring, out);
        self.links.unwant_all_except(&self.ring.neighbours(), now);
        self.membership.contacts.clear();
        self.membership.contact_skip.clear();
        self.membership.view_hint.clear();
        let took = self.membership.change.take().map(|(at, reason)| (now.since(at), reason));
        // A view installed without a change of its own (a joiner's first) counts as a join.
        let cause = took.map_or(super::Reason::Join, |(_, reason)| reason);
        if let Some(at) = super::Reason::ALL.iter().position(|r| *r == cause) {
            self.membership.installs_by_reason[at] += 1;
        }
        log::info!(
            "{} install: view {} members {:?} primary true cut {} replicas {} of W {} requeued {}{}",
            self.config.me.id,
            proposal.view,
            proposal.ring.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            cut,
            proposal.ring.len(),
            proposal.quorum.min_replicas,
            requeued,
            took.map(|(d, r)| format!(" after {:?} ({:?})", d, r)).unwrap_or_default()
        );
        out.push(Output::ViewChange(ViewInfo { view: proposal.view, ring: proposal.ring, primary: true }));
        self.vote_on_view_change(now, out);
        self.try_release(now, out);
        let early = std::mem::take(&mut self.membership.early);
        self.membership.early_bytes = 0;
        for (from, frame) in early {
            self.on_ring_frame(now, from, frame, out);
        }
        if !self.queue.is_empty() {
            self.on_queue_grew(now, out);
        }
    }

    /// This incarnation is cut off from the primary: fail its pending work and come back as a
    /// new incarnation through the join path (docs/PROTOCOL.md §5.4).
    pub(in crate::core) fn become_excluded(&mut self, now: Time, out: &mut Vec<Output>) {
        let old = self.config.me;
        self.fail_queue(RejectReason::Excluded, out);
        self.config.me.incarnation += 1;
        self.log = MessageLog::starting_after(0);
        self.replica.reset(now);
        self.membership.streams.caught_up = 0;
        self.membership.streams.learning = None;
        self.drop_incoming();
        self.membership.holds_log = false;
        // `promised` and `accepted` stay: they belong to the process, which still votes
        // (docs/PROTOCOL.md §5.4).
        self.membership.installed = None;
        self.membership.coordination = None;
        self.membership.phase = Phase::Joining { next_join: now };
        self.reset_incarnation_stats();
        log::warn!(
            "{} become_excluded: {} is not in primary {}; rejoining as {}",
            old.id,
            old,
            self.membership.last_primary,
            self.config.me
        );
    }
}

impl Core {
    /// Links to this member's neighbours in `ring`: it dials its successor and waits for its
    /// predecessor to dial it (docs/PROTOCOL.md §4), dialling too only if that link is not up
    /// after a quarter of the token timeout. One handshake per ring link, and none crossing.
    fn want_neighbours(&mut self, now: Time, ring: &[Member], out: &mut Vec<Output>) {
        let n = ring.len();
        let Some(p) = ring.iter().position(|m| *m == self.config.me) else { return };
        if n < 2 {
            return;
        }
        let successor = ring[(p + 1) % n].id;
        let predecessor = ring[(p + n - 1) % n].id;
        self.links.want(successor, now, out);
        if predecessor != successor {
            self.links.want_passive(predecessor, now, self.config.token_timeout / 4);
        }
    }
}

/// Whether two proposals choose the same view: equal but for the donor, which a coordinator
/// picks afresh when it proposes an accepted value again (docs/PROTOCOL.md §5.2).
fn same_value(a: &Proposal, b: &Proposal) -> bool {
    (a.view, a.prev, a.cut, &a.ring, &a.quorum) == (b.view, b.prev, b.cut, &b.ring, &b.quorum)
}
