//! Joining and leaving: a member in no view looks for a primary to join through any live member,
//! or forms the first view of a fresh cluster with a majority of the universe; a member that stops
//! cleanly coordinates its own removal (docs/PROTOCOL.md §5).

use super::{PeerStatus, Phase, Reason};
use crate::core::{Core, Output, RejectReason};
use crate::ids::{Member, NodeId, ViewId};
use crate::time::Time;
use crate::wire::PeerFrame;

impl Core {
    /// Every join interval: link to the universe, ask every linked peer to let this member in,
    /// and form the first view if the cluster is fresh.
    /// After being left out of a view: the next join requests come later, doubling each time.
    pub(in crate::core) fn back_off_joining(&mut self, now: Time) {
        let base = self.config.token_timeout / 4;
        let backoff = (self.membership.join_backoff * 2).clamp(base * 2, self.config.token_timeout * 16);
        self.membership.join_backoff = backoff;
        self.membership.phase = Phase::Joining { next_join: now + backoff };
    }

    pub(in crate::core) fn on_join_interval(&mut self, now: Time, out: &mut Vec<Output>) {
        let interval = (self.config.token_timeout / 4).max(self.membership.join_backoff);
        self.membership.phase = Phase::Joining { next_join: now + interval };
        // A witness past genesis waits to be asked: coordinators dial it (docs/PROTOCOL.md §5.7).
        if self.config.is_witness() && self.membership.last_primary != ViewId(0) {
            return;
        }
        let peers: Vec<NodeId> =
            self.config.universe.iter().copied().filter(|&id| id != self.config.me.id).collect();
        for &peer in &peers {
            self.links.want(peer, out);
        }
        self.check_catch_up(now, out);
        let frame = self.join_frame();
        for &peer in &peers {
            if self.links.is_up(peer) {
                self.links.send(peer, frame.clone(), now, out);
            }
        }
        self.check_genesis(now, out);
    }

    /// Forms the first view when this member and every linked peer are fresh, they are a
    /// majority of the universe, this member has the lowest id among them, and either the whole
    /// universe is linked or the bootstrap wait is over.
    pub(in crate::core) fn check_genesis(&mut self, now: Time, out: &mut Vec<Output>) {
        if self.membership.last_primary != ViewId(0)
            || self.membership.coordination.is_some()
            || self.config.is_witness()
        {
            return;
        }
        let me = self.config.me.id;
        let linked: Vec<NodeId> =
            self.config.universe.iter().copied().filter(|&id| id != me && self.links.is_up(id)).collect();
        let all_fresh = linked.iter().all(|id| {
            self.membership.peer_status.get(id).is_some_and(|s| s.last_primary == ViewId(0) && !s.operational)
        });
        let lowest = linked.iter().all(|&id| id > me);
        let majority = (linked.len() + 1) * 2 > self.config.universe.len();
        let everyone = linked.len() + 1 == self.config.universe.len();
        let waited = now >= self.membership.started_at + self.config.bootstrap_wait;
        if all_fresh && lowest && majority && (everyone || waited) {
            log::info!("{} check_genesis: forming the first view with {} fresh peers", me, linked.len());
            self.start_coordination(now, Reason::Genesis, out);
        }
    }

    /// This member's request to join: with the state it caught up to, if any.
    pub(in crate::core) fn join_frame(&self) -> PeerFrame {
        PeerFrame::Join {
            member: self.config.me,
            last_primary: self.membership.last_primary,
            caught_up: self.membership.streams.caught_up,
            catching_up: self.membership.streams.catching_up(),
        }
    }

    pub(in crate::core) fn on_join(
        &mut self,
        now: Time,
        from: NodeId,
        join: PeerFrame,
        out: &mut Vec<Output>,
    ) {
        let PeerFrame::Join { member, last_primary, caught_up, catching_up } = join else { return };
        if self.membership.is_operational() {
            // A witness joins no ring, but a restarted one votes only once a view change has
            // named its new process (docs/PROTOCOL.md §5.7).
            let witness_known = self.is_witness_id(member.id) && self.witness_named(member);
            if self.ring.members.contains(&member) || witness_known {
                return;
            }
            if self.catch_up_first(now, from, member, caught_up, catching_up, out) {
                return;
            }
            self.membership.joiners.insert(member);
            if self.membership.join_at.is_none() {
                // Stagger by ring position so that usually one member coordinates the join.
                let position = self.ring.position as u32 + 1;
                self.membership.join_at = Some(now + self.config.token_timeout / 20 * position);
            }
        } else if matches!(self.membership.phase, Phase::Joining { .. }) {
            self.membership.peer_status.insert(from, PeerStatus { last_primary, operational: false });
            self.check_genesis(now, out);
        }
    }

    /// A joiner without state is first given this view's checkpoint, streamed while the ring
    /// runs (docs/PROTOCOL.md §5.3, "Catching up"): the first member of the ring starts the
    /// stream instead of letting it in, and every member leaves it out while it says it is
    /// catching up. The others' join timers run later than the first member's, and the joiner
    /// says so at its first chunk, so a stream that starts keeps the join back; one that cannot
    /// start (no link from the first member) lets the join go ahead as before. Returns whether
    /// the join waits.
    fn catch_up_first(
        &mut self,
        now: Time,
        from: NodeId,
        member: Member,
        caught_up: crate::ids::Seq,
        catching_up: bool,
        out: &mut Vec<Output>,
    ) -> bool {
        if catching_up {
            self.membership.joiners.remove(&member);
            return true;
        }
        if caught_up > 0 || self.replica.checkpoint().seq == 0 || self.ring.position != 0 {
            return false;
        }
        if member.id == from && self.links.is_up(from) {
            self.start_stream(now, from, crate::ids::Ballot::default(), 0, out);
            return true;
        }
        false
    }

    /// Leaves the group: coordinates a view without this member, or stops at once when alone.
    pub(in crate::core) fn start_leave(&mut self, now: Time, out: &mut Vec<Output>) {
        if self.membership.leaving.is_some() || matches!(self.membership.phase, Phase::Left) {
            return;
        }
        self.membership.leaving = Some(now + self.view_change_timeout());
        let alone = self.membership.last_primary_members.iter().all(|m| m.id == self.config.me.id);
        if !self.membership.holds_log || alone {
            self.finish_leave(out);
            return;
        }
        self.start_coordination(now, Reason::Leave, out);
    }

    pub(in crate::core) fn finish_leave(&mut self, out: &mut Vec<Output>) {
        self.fail_queue(RejectReason::ShuttingDown, out);
        self.membership.phase = Phase::Left;
        self.membership.coordination = None;
        self.membership.leaving = None;
        log::info!("{} finish_leave: left the group", self.config.me.id);
        out.push(Output::Left);
    }
}
