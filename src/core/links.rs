//! Link policy: which peers we want a link to, redial backoff, heartbeats and silence detection.
//!
//! The shell executes `Connect`/`Disconnect` and reports `LinkUp`/`LinkDown`; every decision about
//! when to dial, when to send a heartbeat and when a silent peer counts as gone is made here, so
//! that the simulator exercises it (docs/PROTOCOL.md §2).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::core::Output;
use crate::ids::{Member, NodeId};
use crate::time::Time;
use crate::wire::PeerFrame;

/// The first redial delay after a failed or broken link.
const BACKOFF_MIN: Duration = Duration::from_millis(10);

#[derive(Debug)]
struct Link {
    /// The member at the other end while the link is up.
    peer: Option<Member>,
    wanted: bool,
    dialing: bool,
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
            dialing: false,
            last_rx: Time::ZERO,
            last_tx: Time::ZERO,
            redial_at: None,
            backoff: BACKOFF_MIN,
            close_at: None,
        }
    }
}

/// The link table of one member.
#[derive(Debug)]
pub(in crate::core) struct Links {
    table: BTreeMap<NodeId, Link>,
    heartbeat: Duration,
    silence: Duration,
    backoff_max: Duration,
}

impl Links {
    pub(in crate::core) fn new(heartbeat: Duration, silence: Duration) -> Links {
        Links { table: BTreeMap::new(), heartbeat, silence, backoff_max: silence / 2 }
    }

    /// The member at the other end of an up link.
    pub(in crate::core) fn peer(&self, id: NodeId) -> Option<Member> {
        self.table.get(&id).and_then(|l| l.peer)
    }

    pub(in crate::core) fn is_up(&self, id: NodeId) -> bool {
        self.peer(id).is_some()
    }

    /// Asks for a link to `id`; dials now unless a dial or a backoff is already pending.
    pub(in crate::core) fn want(&mut self, id: NodeId, out: &mut Vec<Output>) {
        let link = self.table.entry(id).or_insert_with(Link::new);
        link.wanted = true;
        link.close_at = None;
        if link.peer.is_none() && !link.dialing && link.redial_at.is_none() {
            link.dialing = true;
            out.push(Output::Connect { peer: id });
        }
    }

    /// Asks for a link to `id` and dials now even if a redial backoff is pending: a view change
    /// must learn at once which peers refuse connections.
    pub(in crate::core) fn want_now(&mut self, id: NodeId, out: &mut Vec<Output>) {
        if let Some(link) = self.table.get_mut(&id) {
            if link.peer.is_none() && !link.dialing {
                link.redial_at = None;
            }
        }
        self.want(id, out);
    }

    /// Stops wanting every link but `keep`; unwanted links close after a grace period, so that
    /// frames already queued on them (a commit, a retransmission) still go out.
    pub(in crate::core) fn unwant_all_except(&mut self, keep: &[NodeId], now: Time) {
        let grace = self.silence;
        for (id, link) in self.table.iter_mut() {
            if keep.contains(id) {
                continue;
            }
            link.wanted = false;
            link.redial_at = None;
            if link.peer.is_some() {
                link.close_at = Some(now + grace);
            }
        }
    }

    pub(in crate::core) fn on_up(&mut self, member: Member, now: Time) {
        let link = self.table.entry(member.id).or_insert_with(Link::new);
        link.peer = Some(member);
        link.dialing = false;
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
        link.dialing = false;
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

    /// Heartbeats, silence detection and redials due at `now`; returns the peers found silent.
    ///
    /// Unwanted links close only while `settled` (an installed view, no view change running):
    /// during a view change any peer may turn out to be a participant, and a commit or fetch
    /// sent on a link just closed would be lost.
    pub(in crate::core) fn on_tick(
        &mut self,
        now: Time,
        settled: bool,
        out: &mut Vec<Output>,
    ) -> Vec<NodeId> {
        let mut silent = Vec::new();
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
                    silent.push(id);
                } else if now >= link.last_tx + self.heartbeat {
                    link.last_tx = now;
                    out.push(Output::Send { to: id, frame: PeerFrame::Heartbeat });
                }
            } else if let Some(at) = link.redial_at {
                if now >= at && link.wanted {
                    link.redial_at = None;
                    link.dialing = true;
                    out.push(Output::Connect { peer: id });
                }
            }
        }
        silent
    }

    pub(in crate::core) fn next_deadline(&self) -> Time {
        let mut next = Time::NEVER;
        for link in self.table.values() {
            if link.peer.is_some() {
                next = next.min(link.last_rx + self.silence).min(link.last_tx + self.heartbeat);
                if !link.wanted {
                    next = next.min(link.close_at.unwrap_or(Time::NEVER));
                }
            } else if let Some(at) = link.redial_at {
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
        links.want(NodeId(2), &mut out);
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
        assert_eq!(links.on_tick(t, true, &mut out), vec![NodeId(2)]);
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
        links.want(NodeId(2), &mut out);
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
    fn sending_on_a_down_link_sends_nothing() {
        let mut links = Links::new(Duration::from_millis(200), Duration::from_millis(1000));
        let mut out = Vec::new();
        assert!(!links.send(NodeId(3), PeerFrame::Heartbeat, Time::ZERO, &mut out));
        assert!(out.is_empty());
    }
}
