//! The checks at the end of a run: the live members settled on one committed prefix, every
//! acknowledged message is held, every agreement decided alike (docs/DESIGN.md §2).

use super::{loadable_plugins, Cluster, AGREED_PLUGIN};
use crate::core::Core;
use crate::ids::Member;
use crate::sim::checker::{Guarantee, Violation};

impl Cluster<'_> {
    /// Live members with nothing left to do and one committed prefix. The cheap accessors go
    /// first: a status digests the whole state, which at hundreds of members dominated runs.
    /// Nothing may be in flight either: a vote a member cast as it installed its view (§7.1) is
    /// on its way to commit, and ending before it did reported its proposal as left open.
    pub(super) fn settled(&self) -> bool {
        let mut cores = self.nodes.iter().filter_map(|n| n.core.as_ref());
        let Some(first) = cores.next() else { return true };
        let quiet = |c: &Core| {
            c.queued() == 0
                && c.in_flight() == 0
                && c.committed_upto() == first.committed_upto()
                && c.last_primary() == first.last_primary()
        };
        quiet(first)
            && cores.all(quiet)
            && self.checker.at_end(&self.live_statuses(), &self.live_owned()).is_ok()
    }

    /// The statuses of the live members that hold state (witnesses are never in a view).
    pub(super) fn live_statuses(&self) -> Vec<crate::core::CoreStatus> {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .filter(|c| !c.is_witness())
            .map(Core::status)
            .collect()
    }

    pub(super) fn live_owned(&self) -> Vec<(Member, u64)> {
        self.owned
            .iter()
            .copied()
            .filter(|(m, _)| {
                let node = &self.nodes[usize::from(m.id.0) - 1];
                node.core.is_some() && node.incarnation == m.incarnation
            })
            .collect()
    }

    pub(super) fn check_end(&mut self) -> Result<(), Violation> {
        // Warm members rebuild the committed state from their checkpoint and tail: it must be
        // the hot members' state exactly.
        for core in self.nodes.iter_mut().filter_map(|n| n.core.as_mut()) {
            core.catch_up();
        }
        let live = self.live_statuses();
        self.checker.at_end(&live, &self.live_owned())?;
        self.check_agreements()
    }

    /// Distributed agreement (§7.1): once settled no proposal is left open (a view change aborts
    /// those whose voters failed), and a plug-in is agreed loaded only on members that can load it.
    pub(super) fn check_agreements(&mut self) -> Result<(), Violation> {
        let n = self.nodes.len();
        for node in &mut self.nodes {
            let Some(core) = node.core.as_mut().filter(|c| !c.is_witness()) else { continue };
            let at = core.me();
            let Some(state) = core.machine_mut().as_dvm_mut() else { continue };
            if let Some((seq, view)) = state.open_proposals().first() {
                return Err(Violation::new(
                    Guarantee::Liveness,
                    format!("{at}: the proposal at {seq} (view {view}) is still open"),
                ));
            }
            for (name, members) in state.plugins().filter(|(name, _)| name.starts_with(AGREED_PLUGIN)) {
                if let Some(m) = members.iter().find(|m| !loadable_plugins(**m, n).iter().any(|p| p == name))
                {
                    return Err(Violation::new(
                        Guarantee::LinearHistory,
                        format!("{at}: {name} agreed loaded on {m}, which cannot load it"),
                    ));
                }
            }
        }
        Ok(())
    }
}
