//! Link policy: which peers we want a link to, how many dials run at once, redial backoff,
//! heartbeats and silence detection.
//!
//! The shell executes `Connect`/`Disconnect` and reports `LinkUp`/`LinkDown`; every decision about
//! when to dial, when to send a heartbeat and when a silent peer counts as gone is made here, so
//! that the simulator exercises it (docs/PROTOCOL.md §2). A member dials at most `DIALS_MAX` peers
//! at once and queues the rest in the order asked, so a coordinator that must reach hundreds of
//! members never opens hundreds of handshakes at once (docs/PROTOCOL.md §4). The table holds only
//! links that are wanted, up or being dialled, so its per-step cost follows the links a member
//! has, not the size of the cluster.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::core::Output;
use crate::ids::{Member, NodeId};
use crate::time::Time;
use crate::wire::PeerFrame;

/// The first redial delay after a failed or broken link.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Most dials one member runs at once (docs/PROTOCOL.md §4); further wanted links wait their turn.
pub(in crate::core) const DIALS_MAX: usize = 16;

#[derive(Debug)]
struct Link {
    /// The member at the other end while the link is up.
    peer: Option<Member>,
    wanted: bool,
    /// A dial runs since this time; the shell answers it with `LinkUp` or `LinkDown`.
    dialing: Option<Time>,
    /// Waiting in the dial queue for a free slot.
    queued: bool,
    last_rx: Time,
    last_tx: Time,
    redial_at: Option<Time>,
    backoff: Duration,
    /// Unwanted and up: closed at this time unless wanted again or used.
    close_at: Option<Time>,
}

impl Link {
    fn new() -> Link {
        Link {
            peer: None,
            wanted: false,
            dialing: None,
            queued: false,
            last_rx: Time::ZERO,
            last_tx: Time::ZERO,
            redial_at: None,
            backoff: BACKOFF_MIN,
            close_at: None,
        }
    }

    /// Whether the table must keep this entry.
    fn in_use(&self) -> bool {
        self.wanted || self.peer.is_some() || self.dialing.is_some() || self.queued
    }
}

/// Why `on_tick` gave a link up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::core) enum Lost {
    /// An up link received nothing for the silence timeout.
    Silent,
    /// A dial got no answer for the silence timeout (the shell lost it, or the peer hangs).
    DialUnanswered,
}

/// The link table of one member.
#[derive(Debug)]
pub(in crate::core) struct Links {
    table: BTreeMap<NodeId, Link>,
    heartbeat: Duration,
    silence: Duration,
    backoff_max: Duration,
    /// Wanted links waiting for a dial slot, in the order they were asked for.
    queue: VecDeque<NodeId>,
    /// Dials running now (at most `DIALS_MAX`).
    running: usize,
    /// Dials started by this incarnation of the process: the connections it opened.
    pub(in crate::core) dials_started: u64,
}

impl Links {
    pub(in crate::core) fn new(heartbeat: Duration, silence: Duration) -> Links {
        Links {
            table: BTreeMap::new(),
            heartbeat,
            silence,
            backoff_max: silence / 2,
            queue: VecDeque::new(),
            running: 0,
            dials_started: 0,
        }
    }

    /// The member at the other end of an up link.
    pub(in crate::core) fn peer(&self, id: NodeId) -> Option<Member> {
        self.table.get(&id).and_then(|l| l.peer)
    }

    pub(in crate::core) fn is_up(&self, id: NodeId) -> bool {
        self.peer(id).is_some()
    }

    /// The peers with an up link, in id order.
    pub(in crate::core) fn up(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.table.iter().filter(|(_, l)| l.peer.is_some()).map(|(&id, _)| id)
    }

    /// How many links are up.
    pub(in crate::core) fn up_count(&self) -> usize {
        self.table.values().filter(|l| l.peer.is_some()).count()
    }

    /// Asks for a link to `id`; dials now (or queues the dial) unless a dial or a backoff is
    /// already pending.
    pub(in crate::core) fn want(&mut self, id: NodeId, now: Time, out: &mut Vec<Output>) {
        let link = self.table.entry(id).or_insert_with(Link::new);
        link.wanted = true;
        link.close_at = None;
        if link.peer.is_none() && link.dialing.is_none() && link.redial_at.is_none() {
            self.dial(id, now, out);
        }
    }

    /// Asks for a link to `id` and dials now even if a redial backoff is pending: a view change
    /// must learn at once which peers refuse connections.
    pub(in crate::core) fn want_now(&mut self, id: NodeId, now: Time, out: &mut Vec<Output>) {
        if let Some(link) = self.table.get_mut(&id) {
            if link.peer.is_none() && link.dialing.is_none() {
                link.redial_at = None;
            }
        }
        self.want(id, now, out);
    }

    /// Asks for a link that the peer is expected to dial (a ring predecessor dials its
    /// successor, docs/PROTOCOL.md §4): this end dials only if it is not up after `wait`. One
    /// handshake per ring link instead of two crossing ones.
    pub(in crate::core) fn want_passive(&mut self, id: NodeId, now: Time, wait: Duration) {
        let link = self.table.entry(id).or_insert_with(Link::new);
        link.wanted = true;
        link.close_at = None;
        if link.peer.is_none() && link.dialing.is_none() && !link.queued && link.redial_at.is_none() {
            link.redial_at = Some(now + wait);
        }
    }

    /// Stops wanting the link to `id`; up, it closes after a grace period unless used.
    pub(in crate::core) fn unwant(&mut self, id: NodeId, now: Time) {
        let grace = self.silence;
        if let Some(link) = self.table.get_mut(&id) {
            link.wanted = false;
            link.redial_at = None;
            if link.peer.is_some() {
                link.close_at = Some(now + grace);
            }
        }
    }

    /// Stops wanting every link but `keep`; unwanted links close after a grace period, so that
    /// frames already queued on them (a commit, a retransmission) still go out.
    pub(in crate::core) fn unwant_all_except(&mut self, keep: &[NodeId], now: Time) {
        let ids: Vec<NodeId> = self.table.keys().copied().filter(|id| !keep.contains(id)).collect();
        for id in ids {
            self.unwant(id, now);
        }
    }

    /// Starts a dial if a slot is free, else queues it.
    fn dial(&mut self, id: NodeId, now: Time, out: &mut Vec<Output>) {
        let Some(link) = self.table.get_mut(&id) else { return };
        if link.peer.is_some() || link.dialing.is_some() {
            return;
        }
        link.redial_at = None;
        if self.running < DIALS_MAX {
            link.dialing = Some(now);
            self.running += 1;
            self.dials_started += 1;
            out.push(Output::Connect { peer: id });
        } else if !link.queued {
            link.queued = true;
            self.queue.push_back(id);
        }
    }

    /// A dial ended (answered or given up): its slot is free.
    fn end_dial(running: &mut usize, link: &mut Link) {
        if link.dialing.take().is_some() {
            *running = running.saturating_sub(1);
        }
    }

    /// Starts queued dials while slots are free; entries no longer wanted are dropped.
    fn start_queued(&mut self, now: Time, out: &mut Vec<Output>) {
        // Bounded by the queue, which only shrinks here.
        while self.running < DIALS_MAX {
            let Some(id) = self.queue.pop_front() else { return };
            let Some(link) = self.table.get_mut(&id) else { continue };
            link.queued = false;
            if link.wanted && link.peer.is_none() && link.dialing.is_none() {
                self.dial(id, now, out);
            }
        }
    }

    pub(in crate::core) fn on_up(&mut self, member: Member, now: Time) {
        let link = self.table.entry(member.id).or_insert_with(Link::new);
        Links::end_dial(&mut self.running, link);
        link.peer = Some(member);
        link.redial_at = None;
        link.backoff = BACKOFF_MIN;
        link.last_rx = now;
        link.last_tx = now;
        // A peer dialled it for a reason (a view change, a join): keep it while it is used. A
        // close time left over from an earlier link would cut this one off before its first frame.
        link.close_at = if link.wanted { None } else { Some(now + self.silence) };
    }

    /// Records a closed or failed link; returns whether it had been up.
    pub(in crate::core) fn on_down(&mut self, id: NodeId, now: Time) -> bool {
        let Some(link) = self.table.get_mut(&id) else { return false };
        let was_up = link.peer.take().is_some();
        Links::end_dial(&mut self.running, link);
        if link.wanted && link.redial_at.is_none() {
            link.redial_at = Some(now + link.backoff);
            link.backoff = (link.backoff * 2).min(self.backoff_max);
        }
        was_up
    }

    pub(in crate::core) fn on_rx(&mut self, id: NodeId, now: Time) {
        if let Some(link) = self.table.get_mut(&id) {
            link.last_rx = now;
        }
    }

    /// A frame other than a heartbeat arrived: an unwanted link in use stays open.
    pub(in crate::core) fn on_use(&mut self, id: NodeId, now: Time) {
        if let Some(link) = self.table.get_mut(&id) {
            if link.close_at.is_some() {
                link.close_at = Some(now + self.silence);
            }
        }
    }

    /// Sends over an up link; returns false (and sends nothing) when the link is down.
    pub(in crate::core) fn send(
        &mut self,
        to: NodeId,
        frame: PeerFrame,
        now: Time,
        out: &mut Vec<Output>,
    ) -> bool {
        match self.table.get_mut(&to) {
            Some(link) if link.peer.is_some() => {
                link.last_tx = now;
                out.push(Output::Send { to, frame });
                true
            }
            _ => false,
        }
    }

    /// Heartbeats, silence detection, unanswered dials and redials due at `now`; returns the
    /// links given up.
    ///
    /// Unwanted links close only while `settled` (an installed view, no view change running):
    /// during a view change any peer may turn out to be a participant, and a commit or fetch
    /// sent on a link just closed would be lost.
    pub(in crate::core) fn on_tick(
        &mut self,
        now: Time,
        settled: bool,
        out: &mut Vec<Output>,
    ) -> Vec<(NodeId, Lost)> {
        let mut lost = Vec::new();
        let mut redial = Vec::new();
        // When one link's heartbeat is due, or this step sent a frame anyway (the token of a
        // parked ring), links half-way to theirs send one too: an idle member then wakes once
        // per heartbeat interval or token visit, not once per link (docs/PROTOCOL.md §2).
        let heartbeat_due = self
            .table
            .values()
            .any(|l| l.peer.is_some() && (now >= l.last_tx + self.heartbeat || l.last_tx == now));
        let heartbeat_after = if heartbeat_due { self.heartbeat / 2 } else { self.heartbeat };
        let running = &mut self.running;
        for (&id, link) in self.table.iter_mut() {
            if link.peer.is_some() {
                if !settled && link.close_at.is_some_and(|at| now >= at) {
                    link.close_at = Some(now + self.silence);
                }
                if !link.wanted && link.close_at.is_some_and(|at| now >= at) {
                    link.peer = None;
                    link.close_at = None;
                    out.push(Output::Disconnect { peer: id });
                } else if now >= link.last_rx + self.silence {
                    link.peer = None;
                    out.push(Output::Disconnect { peer: id });
                    if link.wanted {
                        link.redial_at = Some(now + link.backoff);
                        link.backoff = (link.backoff * 2).min(self.backoff_max);
                    }
                    lost.push((id, Lost::Silent));
                } else if now >= link.last_tx + heartbeat_after {
                    link.last_tx = now;
                    out.push(Output::Send { to: id, frame: PeerFrame::Heartbeat });
                }
            } else if link.dialing.is_some_and(|since| now >= since + self.silence) {
                Links::end_dial(running, link);
                if link.wanted {
                    link.redial_at = Some(now + link.backoff);
                    link.backoff = (link.backoff * 2).min(self.backoff_max);
                }
                lost.push((id, Lost::DialUnanswered));
            } else if let Some(at) = link.redial_at {
                if now >= at && link.wanted && link.dialing.is_none() {
                    redial.push(id);
                }
            }
        }
        for id in redial {
            self.dial(id, now, out);
        }
        self.start_queued(now, out);
        self.table.retain(|_, link| link.in_use());
        lost
    }

    pub(in crate::core) fn next_deadline(&self) -> Time {
        let mut next = Time::NEVER;
        for link in self.table.values() {
            if link.peer.is_some() {
                next = next.min(link.last_rx + self.silence).min(link.last_tx + self.heartbeat);
                if !link.wanted {
                    next = next.min(link.close_at.unwrap_or(Time::NEVER));
                }
            } else if let Some(since) = link.dialing {
                next = next.min(since + self.silence);
            } else if let Some(at) = link.redial_at.filter(|_| link.wanted) {
                next = next.min(at);
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u16) -> Member {
        Member { id: NodeId(id), incarnation: 1 }
    }

    #[test]
    fn a_silent_link_is_closed_and_redialled_with_backoff() {
        let mut links = Links::new(Duration::from_millis(200), Duration::from_millis(1000));
        let mut out = Vec::new();
        links.want(NodeId(2), Time::ZERO, &mut out);
        assert!(matches!(out.as_slice(), [Output::Connect { peer: NodeId(2) }]));
        out.clear();
        links.on_up(member(2), Time::ZERO);
        // A heartbeat is due after 200 ms of sending nothing.
        let t = Time::ZERO + Duration::from_millis(200);
        assert!(links.on_tick(t, true, &mut out).is_empty());
        assert!(matches!(out.as_slice(), [Output::Send { frame: PeerFrame::Heartbeat, .. }]));
        out.clear();
        // Nothing received for the whole timeout: closed, and a redial is scheduled.
        let t = Time::ZERO + Duration::from_millis(1000);
        assert_eq!(links.on_tick(t, true, &mut out), vec![(NodeId(2), Lost::Silent)]);
        assert!(matches!(out.as_slice(), [Output::Disconnect { peer: NodeId(2) }]));
        assert!(!links.is_up(NodeId(2)));
        out.clear();
        let redial = links.next_deadline();
        assert_eq!(redial, t + BACKOFF_MIN);
        links.on_tick(redial, true, &mut out);
        assert!(matches!(out.as_slice(), [Output::Connect { peer: NodeId(2) }]));
    }

    #[test]
    fn an_unwanted_link_stays_open_while_used_and_closes_when_idle() {
        let second = Duration::from_millis(1000);
        let mut links = Links::new(Duration::from_millis(200), second);
        let mut out = Vec::new();
        links.want(NodeId(2), Time::ZERO, &mut out);
        links.on_up(member(2), Time::ZERO);
        links.unwant_all_except(&[], Time::ZERO);
        // The peer closes it first, within the grace period.
        links.on_down(NodeId(2), Time::ZERO + second / 2);
        assert!(!links.is_up(NodeId(2)));
        // Much later the peer dials in (say, to coordinate a view change): the old close time
        // must not cut the new link off before it carries anything.
        let t = Time::ZERO + second * 10;
        links.on_up(member(2), t);
        links.on_tick(t, true, &mut out);
        assert!(links.is_up(NodeId(2)), "closed at once: {out:?}");
        // Used: it stays; idle but for heartbeats: it closes one grace period after the last use.
        links.on_use(NodeId(2), t + second / 2);
        links.on_rx(NodeId(2), t + second);
        links.on_tick(t + second, true, &mut out);
        assert!(links.is_up(NodeId(2)));
        // During a view change it is kept: the peer may be a participant.
        links.on_rx(NodeId(2), t + second * 3 / 2);
        links.on_tick(t + second * 3 / 2, false, &mut out);
        assert!(links.is_up(NodeId(2)));
        links.on_rx(NodeId(2), t + second * 2);
        links.on_tick(t + second * 2, true, &mut out);
        assert!(links.is_up(NodeId(2)), "the grace period starts again after a view change");
        links.on_rx(NodeId(2), t + second * 5 / 2);
        links.on_tick(t + second * 5 / 2, true, &mut out);
        assert!(!links.is_up(NodeId(2)));
        assert!(matches!(out.as_slice(), [.., Output::Disconnect { peer: NodeId(2) }]));
    }

    #[test]
    fn a_frame_sent_anyway_carries_the_heartbeats_of_links_half_way_to_theirs() {
        // docs/PROTOCOL.md §2: the parked token's visit, not a timer, sends the heartbeats.
        let heartbeat = Duration::from_millis(300);
        let mut links = Links::new(heartbeat, Duration::from_millis(1000));
        let mut out = Vec::new();
        for id in [2, 3] {
            links.want(NodeId(id), Time::ZERO, &mut out);
            links.on_up(member(id), Time::ZERO);
        }
        out.clear();
        // Not yet half-way: a token sent to 2 goes alone.
        let early = Time::ZERO + Duration::from_millis(100);
        links.send(NodeId(2), PeerFrame::Heartbeat, early, &mut out);
        links.on_tick(early, true, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        out.clear();
        // Half-way: the link to 3 sends its heartbeat with the frame to 2.
        let later = Time::ZERO + Duration::from_millis(250);
        links.send(NodeId(2), PeerFrame::Heartbeat, later, &mut out);
        links.on_tick(later, true, &mut out);
        let to: Vec<NodeId> = out
            .iter()
            .filter_map(|o| match o {
                Output::Send { to, .. } => Some(*to),
                _ => None,
            })
            .collect();
        assert_eq!(to, vec![NodeId(2), NodeId(3)]);
        // So no timer is due before a whole interval from now.
        assert_eq!(links.next_deadline(), later + heartbeat);
    }

    #[test]
    fn at_most_dials_max_dials_run_at_once_and_the_rest_wait_their_turn() {
        let mut links = Links::new(Duration::from_millis(200), Duration::from_millis(1000));
        let mut out = Vec::new();
        for id in 2..2 + DIALS_MAX as u16 + 5 {
            links.want_now(NodeId(id), Time::ZERO, &mut out);
        }
        let dialled = |out: &[Output]| out.iter().filter(|o| matches!(o, Output::Connect { .. })).count();
        assert_eq!(dialled(&out), DIALS_MAX);
        out.clear();
        // Two answers free two slots: the next two in the order asked are dialled.
        links.on_up(member(2), Time::ZERO);
        links.on_down(NodeId(3), Time::ZERO);
        links.on_tick(Time::ZERO, false, &mut out);
        let next: Vec<NodeId> = out
            .iter()
            .filter_map(|o| match o {
                Output::Connect { peer } => Some(*peer),
                _ => None,
            })
            .collect();
        assert_eq!(next, vec![NodeId(2 + DIALS_MAX as u16), NodeId(3 + DIALS_MAX as u16)]);
        // A queued link nobody wants any more is skipped.
        out.clear();
        links.unwant_all_except(&[NodeId(2)], Time::ZERO);
        links.on_up(member(4), Time::ZERO);
        links.on_tick(Time::ZERO, false, &mut out);
        assert_eq!(dialled(&out), 0, "{out:?}");
        assert_eq!(links.dials_started, DIALS_MAX as u64 + 2);
    }

    #[test]
    fn a_passive_link_is_dialled_only_if_the_peer_does_not_dial_in_time() {
        let wait = Duration::from_millis(250);
        let mut links = Links::new(Duration::from_millis(200), Duration::from_millis(1000));
        let mut out = Vec::new();
        links.want_passive(NodeId(2), Time::ZERO, wait);
        links.want_passive(NodeId(3), Time::ZERO, wait);
        // Asking again, as an install after an accept does, does not dial either.
        links.want(NodeId(2), Time::ZERO, &mut out);
        assert!(out.is_empty(), "{out:?}");
        links.on_up(member(2), Time::ZERO + wait / 2);
        links.on_tick(Time::ZERO + wait, true, &mut out);
        assert!(matches!(out.as_slice(), [Output::Connect { peer: NodeId(3) }]), "{out:?}");
        assert_eq!(links.dials_started, 1);
    }

    #[test]
    fn an_unanswered_dial_is_given_up_and_the_table_forgets_unwanted_links() {
        let second = Duration::from_millis(1000);
        let mut links = Links::new(Duration::from_millis(200), second);
        let mut out = Vec::new();
        links.want(NodeId(2), Time::ZERO, &mut out);
        assert_eq!(links.next_deadline(), Time::ZERO + second);
        assert_eq!(
            links.on_tick(Time::ZERO + second, true, &mut out),
            vec![(NodeId(2), Lost::DialUnanswered)]
        );
        links.unwant(NodeId(2), Time::ZERO + second);
        links.on_tick(Time::ZERO + second, true, &mut out);
        assert!(links.table.is_empty());
        assert_eq!(links.next_deadline(), Time::NEVER);
    }

    #[test]
    fn sending_on_a_down_link_sends_nothing() {
        let mut links = Links::new(Duration::from_millis(200), Duration::from_millis(1000));
        let mut out = Vec::new();
        assert!(!links.send(NodeId(3), PeerFrame::Heartbeat, Time::ZERO, &mut out));
        assert!(out.is_empty());
    }
}
