//! The core's side of distributed agreement (docs/PROTOCOL.md §7.1): a member votes on every
//! plug-in proposal it is a voter of when the proposal commits, and on every open proposal of an
//! older view when it installs a primary view, which aborts it. Votes are ordinary ordered
//! commands, so the decision the state machine derives from them is the same at every member.

use crate::core::{Core, Output};
use crate::ids::Seq;
use crate::replication::agreement::vote_command;
use crate::time::Time;

impl Core {
    /// Votes on the proposal committed at `seq`: yes when `name` is among this member's
    /// loadable plug-ins. The vote carries the view this member is in now.
    pub(in crate::core) fn vote(&mut self, seq: Seq, name: &str, view: u64, out: &mut Vec<Output>) {
        let yes = self.config.plugins.iter().any(|p| p == name);
        let now_view = self.ring.view.0;
        log::info!(
            "{} vote: proposal {seq} to load {name:?} (view {view}): {} in view {now_view}",
            self.config.me.id,
            if yes { "yes" } else { "no" }
        );
        let payload = vote_command(seq, self.config.me.id, now_view, yes);
        self.submit_own(self.now, payload.into(), out);
    }

    /// After installing a primary view: every proposal still open from an older view gets this
    /// member's vote in the new one, which aborts it (the view changed before every vote
    /// arrived), so a proposal whose voter failed does not stay open forever. A warm member
    /// catches up first to know which proposals are open.
    pub(in crate::core) fn vote_on_view_change(&mut self, now: Time, out: &mut Vec<Output>) {
        let view = self.ring.view.0;
        self.replica.catch_up();
        let Some(state) = self.replica.machine_mut().as_dvm_mut() else { return };
        // Every proposal open at an install was ordered before it, in an earlier view. After a
        // full restart the first view is numbered 1 again and may carry the proposal's number:
        // the vote then names the view after the proposal's, which aborts it all the same.
        for (seq, proposed_in) in state.open_proposals() {
            log::info!("{} vote: proposal {seq} is open from an older view: aborting it", self.config.me.id);
            let payload = vote_command(seq, self.config.me.id, view.max(proposed_in + 1), false);
            self.submit_own(now, payload.into(), out);
        }
    }

    /// A client's proposal carries no voters: fill in this member's view and members.
    pub(in crate::core) fn fill_proposal(&self, payload: crate::wire::Payload) -> crate::wire::Payload {
        let members: Vec<_> = self.ring.members.iter().map(|m| m.id).collect();
        match crate::replication::agreement::fill_proposal(&payload, self.ring.view, &members) {
            Some(filled) => filled.into(),
            None => payload,
        }
    }
}
