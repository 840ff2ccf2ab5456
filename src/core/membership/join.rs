//! Joining and leaving: a member in no view looks for a primary to join through any live member,
//! or forms the first view of a fresh cluster with a majority of the universe; a member that stops
//! cleanly coordinates its own removal (docs/PROTOCOL.md §5).

use std::collections::BTreeSet;

use super::{PeerStatus, Phase, Reason};
use crate::core::{Core, Output, RejectReason};
use crate::ids::{Member, NodeId, ViewId};
use crate::time::Time;
use crate::wire::PeerFrame;

/// How many members a joining member links to at once (docs/PROTOCOL.md §4).
pub(in crate::core) const CONTACTS: usize = 3;
/// Token timeouts a member other than the streaming one waits for a stateless joiner's
/// catch-up to start before it lets the joiner in anyway: a live donor answers within one
/// (docs/PROTOCOL.md §2, §5.3).
const CATCH_UP_WAIT: u32 = 1;

/// Longest a leaving coordinator lingers after its own commit (docs/PROTOCOL.md §5.6): enough
/// for its `Commit` frames to leave, short enough that a long token timeout does not hold up a
/// clean stop.
const LINGER_MAX: std::time::Duration = std::time::Duration::from_millis(100);
impl Core {
    /// After being left out of a view: the next join requests come later, doubling each time.
    pub(in crate::core) fn back_off_joining(&mut self, now: Time) {
        let base = self.config.token_timeout / 4;
        let backoff = (self.membership.join_backoff * 2).clamp(base * 2, self.config.token_timeout * 16);
        self.membership.join_backoff = backoff;
        self.membership.phase = Phase::Joining { next_join: now + backoff };
    }

    /// Every join interval: link to a few contacts, ask them to let this member in, and form
    /// the first view if the cluster is fresh (docs/PROTOCOL.md §4).
    pub(in crate::core) fn on_join_interval(&mut self, now: Time, out: &mut Vec<Output>) {
        let interval = (self.config.token_timeout / 4).max(self.membership.join_backoff);
        self.membership.phase = Phase::Joining { next_join: now + interval };
        // A witness past genesis waits to be asked: coordinators dial it (docs/PROTOCOL.md §5.7).
        if self.config.is_witness() && self.membership.last_primary != ViewId(0) {
            return;
        }
        self.rotate_contacts(now);
        let contacts = self.choose_contacts(now);
        for &old in &self.membership.contacts {
            if !contacts.contains(&old) {
                self.links.unwant(old, now);
            }
        }
        if self.membership.contacts.first() != contacts.first() {
            self.membership.contacts_since = now;
        }
        self.membership.contacts = contacts.clone();
        for &peer in &contacts {
            self.links.want(peer, now, out);
        }
        self.check_catch_up(now, out);
        self.check_learning(now, out);
        let frame = self.join_frame();
        for &peer in &contacts {
            if self.links.is_up(peer) {
                self.links.send(peer, frame.clone(), now, out);
            }
        }
        self.check_genesis(now, out);
    }

    /// Where a joining member looks for a primary, best first: the members of the newest primary
    /// view it heard of, then those of its own last primary view, then the universe; each in id
    /// order, so that the fresh members of a new cluster all contact its lowest ids (the seeds).
    fn contact_candidates(&self) -> Vec<NodeId> {
        let me = self.config.me.id;
        let mut hint = self.membership.view_hint.clone();
        hint.sort();
        let mut last: Vec<NodeId> = self.membership.last_primary_members.iter().map(|m| m.id).collect();
        last.sort();
        let mut universe = self.config.universe.clone();
        universe.sort();
        let mut seen = BTreeSet::new();
        hint.into_iter().chain(last).chain(universe).filter(|&id| id != me && seen.insert(id)).collect()
    }

    /// The first `CONTACTS` candidates not passed over for a failed link.
    fn choose_contacts(&self, now: Time) -> Vec<NodeId> {
        let skip = &self.membership.contact_skip;
        self.contact_candidates()
            .into_iter()
            .filter(|id| skip.get(id).is_none_or(|&(until, _)| now >= until))
            .take(CONTACTS)
            .collect()
    }

    /// A contact's link failed: pass it over for a while, longer each time, and try the next
    /// candidate; it is tried again when the window ends, so a seed that starts late still
    /// gets every fresh member's link.
    pub(in crate::core) fn skip_contact(&mut self, now: Time, id: NodeId) {
        let base = self.config.token_timeout;
        let window = match self.membership.contact_skip.get(&id) {
            Some(&(_, window)) => (window * 2).min(base * 16),
            None => base,
        };
        self.membership.contact_skip.insert(id, (now + window, window));
    }

    /// A contact that answers but does not let this member in for long (it is in no primary
    /// itself) is passed over, once a primary is known to exist or the bootstrap wait is long
    /// over; a fresh cluster's seeds are never rotated away while they may still form the
    /// first view.
    fn rotate_contacts(&mut self, now: Time) {
        let patience = self.config.token_timeout * 4;
        let primary_known = self.membership.last_primary != ViewId(0)
            || self.membership.peer_status.values().any(|s| s.operational);
        let genesis_over = now >= self.membership.started_at + self.config.bootstrap_wait + patience;
        let stuck = now >= self.membership.contacts_since + patience;
        if stuck && (primary_known || genesis_over) {
            if let Some(&first) = self.membership.contacts.first() {
                self.skip_contact(now, first);
                self.membership.contacts_since = now;
            }
        }
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
        // The shell refuses links from outside the universe, but a link may predate the change
        // that removed its member (or the restore that told this member of it): such a member
        // neither counts nor holds the first view back (docs/PROTOCOL.md §5.9).
        let linked: Vec<NodeId> = self.links.up().filter(|&id| id != me && self.in_universe(id)).collect();
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
        if !self.in_universe(member.id) {
            // Not admitted (docs/PROTOCOL.md §5.9): its `member add` has not committed here.
            log::debug!("{} on_join: {member} is not in the universe", self.config.me.id);
            return;
        }
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
    /// runs (docs/PROTOCOL.md §5.3, "Catching up"): the ring member with the lowest id starts the
    /// stream instead of letting it in, and every member leaves it out while it says it is
    /// catching up. The others wait `CATCH_UP_WAIT` token timeout from its first request for
    /// that stream to start (the joiner then says so to every member it is linked to), so a
    /// busy donor whose first chunk comes late does not see the joiner let in without the state;
    /// a stream that cannot start (no link from the lowest member) lets the join go ahead after
    /// the wait, with the state transferred inside the view change. Returns whether the join
    /// waits.
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
        if caught_up > 0 || self.replica.checkpoint().seq == 0 {
            self.membership.stateless_joins.remove(&member.id);
            return false;
        }
        // The ring member with the lowest id streams: every fresh joiner contacts the lowest ids
        // (docs/PROTOCOL.md §4), so it is linked to this one, not necessarily to position 0.
        let lowest = self.ring.members.iter().map(|m| m.id).min() == Some(self.config.me.id);
        if lowest {
            if member.id == from && self.links.is_up(from) {
                self.start_stream(now, from, crate::ids::Ballot::default(), 0, out);
                return true;
            }
            return false;
        }
        let wait = self.config.token_timeout * CATCH_UP_WAIT;
        // Entries of joiners long gone are dropped, so the map holds recent joiners only.
        self.membership.stateless_joins.retain(|_, &mut first| now < first + wait * 2);
        let first = *self.membership.stateless_joins.entry(member.id).or_insert(now);
        now < first + wait
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

    /// A leaving coordinator that committed a view without itself stays in `Left`, doing
    /// nothing, for half a token timeout (at most `LINGER_MAX`) before it says `Left` and its process exits
    /// (docs/PROTOCOL.md §5.6): its `Commit` frames must reach the ring first. A `Commit` lost
    /// with the process leaves the others to learn the chosen view again from a quorum, which
    /// may no longer be there (one vote fewer), and a blank ring member of that view that has
    /// since rejoined as a new incarnation can never accept it again.
    pub(in crate::core) fn linger_after_commit(&mut self, now: Time, out: &mut Vec<Output>) {
        self.fail_queue(RejectReason::ShuttingDown, out);
        self.membership.phase = Phase::Left;
        self.membership.coordination = None;
        self.membership.leaving = Some(now + (self.config.token_timeout / 2).min(LINGER_MAX));
        log::info!("{} linger_after_commit: leaving once the commit is out", self.config.me.id);
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
