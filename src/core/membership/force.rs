//! Forced recovery (docs/PROTOCOL.md §5.8): when a quorum is gone for good, an operator asks one
//! surviving member to form a primary from the newest history it can reach, in the spirit of
//! etcd's `--force-new-cluster` and Corosync's expected-votes override. It refuses while a member
//! with a newer history is reachable, says exactly what may be lost, and is logged.

use std::collections::BTreeSet;

use super::coordinator::Coordination;
use super::quorum::{blank, voter_of, Tally};
use super::ring_order::ring_order;
use super::{Phase, Reason};
use crate::core::{Core, ForceOutcome, Output};
use crate::ids::{Ballot, Member, NodeId, ViewId};
use crate::time::Time;
use crate::wire::{Promise, Proposal, Quorum};

/// An operator's request waiting for its outcome.
#[derive(Debug)]
pub(in crate::core) struct ForceRequest {
    tag: u64,
    confirm: bool,
    /// The ballot of the view change that serves it.
    pub(in crate::core) ballot: Ballot,
    /// The forced view once proposed, and the report to send when it is installed.
    proposed: Option<(ViewId, String)>,
}

impl Core {
    /// `Input::Force`: coordinates a view change that may be forced.
    pub(in crate::core) fn start_force(&mut self, now: Time, tag: u64, confirm: bool, out: &mut Vec<Output>) {
        let refuse = if self.membership.force.is_some() {
            Some("a forced recovery is already running here".to_string())
        } else if self.config.is_witness() {
            Some("this member is a witness and holds no history: run it at a member that does".into())
        } else if self.membership.is_operational() {
            Some(format!(
                "this member is in primary view {} with members {:?}: there is nothing to force",
                self.membership.last_primary,
                self.membership.last_primary_members.iter().map(|m| m.id.0).collect::<Vec<_>>()
            ))
        } else if matches!(self.membership.phase, Phase::Left) || self.membership.leaving.is_some() {
            Some("this member is leaving".into())
        } else {
            None
        };
        if let Some(reason) = refuse {
            out.push(Output::Forced { tag, outcome: ForceOutcome::Refused(reason) });
            return;
        }
        log::warn!(
            "{} start_force: an operator asks for a forced primary{}",
            self.config.me.id,
            if confirm { "" } else { " (dry run)" }
        );
        self.membership.coordination = None;
        let ballot = self.next_ballot();
        self.membership.force = Some(ForceRequest { tag, confirm, ballot, proposed: None });
        self.start_coordination(now, Reason::Force, out);
    }

    /// The forced view change found a quorum after all: it proceeds as any other.
    pub(in crate::core) fn force_answered_by_quorum(&mut self) {
        if let Some(force) = self.membership.force.take() {
            let report = "a quorum of the last primary view's electorate answered: the view change \
                          proceeds without forcing anything"
                .to_string();
            log::info!("{} force: {report}", self.config.me.id);
            self.pending_force_output(force.tag, ForceOutcome::NotNeeded(report));
        }
    }

    /// A participant refused the forced ballot because it is in a newer primary.
    pub(in crate::core) fn force_nacked(&mut self, from: NodeId, ballot: Ballot, last_primary: ViewId) {
        let newer = last_primary > self.membership.last_primary;
        let ours = if newer { self.membership.force.take_if(|f| f.ballot == ballot) } else { None };
        if let Some(force) = ours {
            let reason = format!(
                "member {} is in a newer primary view ({last_primary}) than this member's last ({}): \
                 nothing is forced; this member rejoins it",
                from.0, self.membership.last_primary
            );
            log::warn!("{} force: refused: {reason}", self.config.me.id);
            self.pending_force_output(force.tag, ForceOutcome::Refused(reason));
        }
    }

    /// Decides a forced view change without a quorum (docs/PROTOCOL.md §5.8).
    pub(in crate::core) fn decide_forced(
        &mut self,
        now: Time,
        tally: &Tally,
        promises: &[Promise],
        dial_failed: &[NodeId],
        out: &mut Vec<Output>,
    ) {
        let me = self.config.me;
        let Some(ballot) = self.membership.coordination.as_ref().map(|c| c.ballot) else { return };
        let mine = self.membership.last_primary;
        let newer = promises.iter().find(|p| {
            p.member.id != me.id
                && (p.last_primary > mine
                    || p.accepted.as_ref().is_some_and(|(_, a)| a.prev > mine)
                    || (p.last_primary == mine && p.holds_log && !self.membership.holds_log))
        });
        let refusal = if let Some(p) = newer {
            Some(format!(
                "member {} holds a newer history (last primary view {}{}) than this member (last primary \
                 view {}{}): run force-primary there",
                p.member.id.0,
                p.last_primary,
                if p.holds_log { format!(", received up to seq {}", p.received_upto) } else { String::new() },
                mine,
                if self.membership.holds_log { ", holding its log" } else { ", without its log" }
            ))
        } else if mine == ViewId(0) || !self.membership.holds_log {
            Some("this member holds no history of a primary view: nothing to form a primary from".into())
        } else {
            None
        };
        if let Some(reason) = refusal {
            log::warn!("{} force: refused: {reason}", me.id);
            self.end_force(now, ForceOutcome::Refused(reason));
            return;
        }
        let candidates: Vec<&Promise> = promises
            .iter()
            .filter(|p| !p.leaving && !self.is_witness_id(p.member.id))
            .filter(|p| tally.holders.iter().any(|h| h.member == p.member) || blank(p))
            .collect();
        let ids: Vec<NodeId> = candidates.iter().map(|p| p.member.id).collect();
        let mut bad = BTreeSet::new();
        for p in promises {
            for &u in &p.unreachable {
                bad.insert((p.member.id, u));
            }
        }
        for &u in dial_failed {
            bad.insert((me.id, u));
        }
        // Keep every reachable member: a forced view is small already.
        let (ring_ids, _) = ring_order(me.id, &ids, &bad, ids.len(), true);
        let ring: Vec<Member> = ring_ids
            .iter()
            .filter_map(|id| candidates.iter().find(|p| p.member.id == *id).map(|p| p.member))
            .collect();
        let cut = tally.cut();
        let mut electorate: Vec<_> = promises.iter().map(voter_of).collect();
        electorate.sort();
        let quorum = Quorum {
            expected: u16::try_from(electorate.len()).unwrap_or(u16::MAX),
            electorate,
            min_replicas: u16::try_from(self.config.write_quorum().min(ring.len()).max(1)).unwrap_or(1),
        };
        let view = mine.next_epoch();
        let answered: Vec<u16> = promises.iter().map(|p| p.member.id.0).collect();
        let lost: Vec<u16> =
            self.config.universe.iter().map(|id| id.0).filter(|id| !answered.contains(id)).collect();
        let report = format!(
            "forced primary {view} of members {:?} (write quorum {}) from the history of view {mine} up to \
             seq {cut}; members {:?} did not answer and are declared lost; may be lost: every write they \
             acknowledged in a view after {mine} formed without the members here, and the messages of \
             {mine} above seq {cut}, which no reachable member holds and none acknowledged; a member \
             declared lost that is still running must be stopped: it rejoins as a new incarnation",
            ring.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            quorum.min_replicas,
            lost
        );
        let confirm = self.membership.force.as_ref().is_some_and(|f| f.confirm);
        if !confirm {
            log::warn!("{} force: dry run: would have {}", me.id, report);
            self.end_force(now, ForceOutcome::DryRun(format!("would form a {report}")));
            return;
        }
        log::error!("{} force: {report}", me.id);
        if let Some(force) = self.membership.force.as_mut() {
            force.proposed = Some((view, report));
        }
        let donor = me.id;
        let proposal = Proposal { view, prev: mine, cut, ring: ring.clone(), donor, quorum };
        let voters: Vec<Member> = promises.iter().map(|p| p.member).collect();
        let needed = voters.len();
        // Every reachable holder is a source; this member holds the view's log itself.
        let source = tally
            .holders
            .iter()
            .filter(|p| p.received_upto >= cut)
            .map(|p| p.member.id)
            .find(|&id| id == me.id)
            .or_else(|| tally.holders.iter().find(|p| p.received_upto >= cut).map(|p| p.member.id))
            .unwrap_or(me.id);
        self.propose(now, ballot, proposal, promises, voters, needed, ring.len(), source, out);
    }

    /// The forced view is committed here: report it.
    pub(in crate::core) fn on_force_committed(&mut self, proposal: &Proposal, out: &mut Vec<Output>) {
        let formed =
            self.membership.force.take_if(|f| f.proposed.as_ref().is_some_and(|(v, _)| *v == proposal.view));
        if let Some(ForceRequest { tag, proposed: Some((_, report)), .. }) = formed {
            out.push(Output::Forced { tag, outcome: ForceOutcome::Formed(report) });
        }
    }

    /// Ends a forced view change that formed nothing, and goes back to the ordinary retries.
    fn end_force(&mut self, now: Time, outcome: ForceOutcome) {
        if let Some(force) = self.membership.force.take() {
            self.pending_force_output(force.tag, outcome);
        }
        self.membership.coordination = None;
        // A member with no history goes back to asking to join; one with history retries.
        self.membership.phase = if self.membership.holds_log {
            Phase::Gather { coordinate_at: now + self.config.token_timeout }
        } else {
            Phase::Joining { next_join: now }
        };
    }

    /// Outputs are handed out by `step`; a report decided deep inside a handler waits here.
    fn pending_force_output(&mut self, tag: u64, outcome: ForceOutcome) {
        self.membership.force_reports.push(Output::Forced { tag, outcome });
    }

    /// After each step: a forced view change that another one replaced is answered.
    pub(in crate::core) fn check_force(&mut self, out: &mut Vec<Output>) {
        out.append(&mut self.membership.force_reports);
        let Some(force) = self.membership.force.as_ref() else { return };
        let running = matches!(&self.membership.coordination, Some(Coordination { ballot, .. }) if *ballot == force.ballot);
        if running {
            return;
        }
        let Some(force) = self.membership.force.take() else { return };
        let reason = if self.membership.is_operational() {
            format!("another view change formed primary view {} meanwhile", self.membership.last_primary)
        } else {
            "the view change was interrupted (a higher ballot, or members stopped answering); retry".into()
        };
        log::warn!("{} force: {reason}", self.config.me.id);
        out.push(Output::Forced { tag: force.tag, outcome: ForceOutcome::Refused(reason) });
    }
}
