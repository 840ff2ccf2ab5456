//! The core's part of a universe that is replicated state (docs/PROTOCOL.md §5.9): every commit
//! may change who the members are; the core then counts quorums, chooses contacts and admits
//! joiners by the new universe, tells the driver the new addresses, and a member that was
//! removed leaves cleanly.

use crate::core::membership::Reason;
use crate::core::{Core, Output};
use crate::ids::NodeId;
use crate::replication::{Action, ActionKind, Command, MemberChange, Universe};
use crate::time::Time;

/// A universe change committed here that the installed view's quorum does not reflect yet
/// (docs/PROTOCOL.md §5.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeInProgress {
    /// In the universe, not yet in the view's electorate: added, and not yet admitted.
    Joining,
    /// In the view's electorate, no longer in the universe: removed, and the view change that
    /// hands the quorum on (or its own leave) is still to come.
    Leaving,
}

impl ChangeInProgress {
    /// The word `harness members` prints, and the value of the metric (1 joining, 2 leaving).
    pub fn name(self) -> &'static str {
        match self {
            ChangeInProgress::Joining => "joining",
            ChangeInProgress::Leaving => "leaving",
        }
    }
}

impl Core {
    /// The changes of the universe that the installed primary view's quorum does not reflect
    /// yet, by member id ascending (docs/PROTOCOL.md §5.9); none outside a primary view, and
    /// none with `--quorum dynamic`, whose electorate is the ring rather than the universe.
    pub fn changes_in_progress(&self) -> Vec<(NodeId, ChangeInProgress)> {
        if !self.is_primary() || self.config.quorum_mode == crate::config::QuorumMode::Dynamic {
            return Vec::new();
        }
        let electorate: Vec<NodeId> = self.membership.quorum.electorate.iter().map(|v| v.id).collect();
        let mut changes: Vec<(NodeId, ChangeInProgress)> = self
            .config
            .universe
            .iter()
            .filter(|id| !electorate.contains(id))
            .map(|&id| (id, ChangeInProgress::Joining))
            .collect();
        changes.extend(
            electorate.iter().filter(|id| !self.in_universe(**id)).map(|&id| (id, ChangeInProgress::Leaving)),
        );
        changes.sort_by_key(|(id, _)| *id);
        changes
    }

    /// The universe as of this member's last commit (the seed list before the first change).
    pub fn universe(&self) -> &Universe {
        self.replica.universe()
    }

    /// Whether `id` is a member of the universe now.
    pub(in crate::core) fn in_universe(&self, id: NodeId) -> bool {
        self.config.universe.contains(&id)
    }

    /// Takes a universe change made by the last commits (or by a restored checkpoint) into the
    /// configuration the protocol reads, and outputs it for the driver. A change takes effect
    /// for whatever this member decides from now on; the view change it leads to (a join, a
    /// leave, the next failure) hands the new electorate on (docs/PROTOCOL.md §5.9).
    pub(in crate::core) fn on_universe_change(&mut self, now: Time, out: &mut Vec<Output>) {
        let Some(universe) = self.replica.take_universe_change() else { return };
        log::info!("{} universe: {universe}", self.config.me.id);
        self.apply_universe(&universe);
        out.push(Output::Universe(universe.clone()));
        // Only a member of a primary view acts on its removal: a joiner's universe from a donor's
        // checkpoint is the one before the log it still fetches, which may add it back.
        if !universe.members.contains_key(&self.config.me.id) && self.membership.is_operational() {
            log::warn!("{} universe: this member was removed; leaving", self.config.me.id);
            self.start_leave(now, out);
        }
    }

    /// A change takes effect in the quorum of the next view change (docs/PROTOCOL.md §5.9):
    /// when the installed view's electorate still names a removed member, or expects more
    /// votes than the universe has members, the first member of the ring, which committed the
    /// change, starts that view change at once. Checked once per installed view and change.
    pub(in crate::core) fn check_quorum_against_universe(&mut self, now: Time, out: &mut Vec<Output>) {
        let key = (self.membership.last_primary, self.replica.universe().epoch);
        if self.membership.universe_checked == key || !self.membership.is_operational() {
            return;
        }
        self.membership.universe_checked = key;
        let dynamic = self.config.quorum_mode == crate::config::QuorumMode::Dynamic;
        if dynamic || self.ring.position != 0 || self.membership.coordination.is_some() {
            return;
        }
        let quorum = &self.membership.quorum;
        let stale = quorum.electorate.iter().any(|v| !self.config.universe.contains(&v.id))
            || usize::from(quorum.expected) > self.config.universe.len();
        if stale {
            log::info!(
                "{} universe: the quorum of {} predates epoch {}; starting a view change",
                self.config.me.id,
                self.membership.last_primary,
                key.1
            );
            self.start_coordination(now, Reason::Universe, out);
        }
    }

    /// Whether `payload` is a removal that would leave fewer members of the installed view than
    /// a quorum of the new universe: refused before it is ordered (docs/PROTOCOL.md §5.9), as
    /// etcd's strict reconfiguration check does, since committing it would stop the cluster.
    pub(in crate::core) fn removal_loses_quorum(&self, payload: &[u8]) -> bool {
        if Command::peek_kind(payload) != Some(ActionKind::Universe)
            || self.config.quorum_mode == crate::config::QuorumMode::Dynamic
            || !self.membership.is_operational()
        {
            return false;
        }
        let Ok(Command {
            action: Action::Universe { change: MemberChange::Remove(gone), members, .. }, ..
        }) = Command::decode(payload)
        else {
            return false;
        };
        let needed = members.len() / 2 + 1;
        let connected = self
            .ring
            .members
            .iter()
            .filter(|m| m.id != gone && members.iter().any(|(id, _)| *id == m.id))
            .count();
        connected < needed
    }

    /// Sets the ids the protocol reads from `universe` (the witnesses named in it stay).
    pub(in crate::core) fn apply_universe(&mut self, universe: &Universe) {
        self.config.universe = universe.ids();
        let ids = &self.config.universe;
        self.config.witnesses.retain(|w| ids.contains(w));
    }
}
