//! The simulated network: links that behave like TCP between live peers.
//!
//! A link is FIFO and reliable while it lives; a broken link loses what was in flight (frames
//! carry the link's epoch and stale ones are dropped). A blocked direction (partition or one-way
//! cut) holds frames the way TCP keeps retransmitting them: they arrive if the block heals while the
//! connection still lives, and are lost with it otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::ids::NodeId;
use crate::rng::Rng;
use crate::time::Time;
use crate::wire::PeerFrame;

/// One undirected link.
#[derive(Debug, Default)]
pub(crate) struct SimLink {
    pub(crate) up: bool,
    pub(crate) connecting: bool,
    pub(crate) epoch: u64,
    /// Per direction (lower id to higher, higher to lower): the earliest next arrival, for FIFO.
    next_free: [Time; 2],
}

/// A frame waiting behind a blocked direction.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) epoch: u64,
    pub(crate) frame: PeerFrame,
}

/// Link table, latency model and blocked directions.
#[derive(Debug)]
pub(crate) struct Network {
    links: BTreeMap<(NodeId, NodeId), SimLink>,
    /// Directed pairs whose bytes do not get through.
    blocked: BTreeSet<(NodeId, NodeId)>,
    held: BTreeMap<(NodeId, NodeId), Vec<Held>>,
    pub(crate) latency: Duration,
    pub(crate) jitter: Duration,
}

fn key(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

fn direction(from: NodeId, to: NodeId) -> usize {
    usize::from(from > to)
}

impl Network {
    pub(crate) fn new(latency: Duration, jitter: Duration) -> Network {
        Network { links: BTreeMap::new(), blocked: BTreeSet::new(), held: BTreeMap::new(), latency, jitter }
    }

    pub(crate) fn link(&mut self, a: NodeId, b: NodeId) -> &mut SimLink {
        self.links.entry(key(a, b)).or_default()
    }

    pub(crate) fn is_up(&self, a: NodeId, b: NodeId) -> bool {
        self.links.get(&key(a, b)).is_some_and(|l| l.up)
    }

    pub(crate) fn epoch(&self, a: NodeId, b: NodeId) -> u64 {
        self.links.get(&key(a, b)).map_or(0, |l| l.epoch)
    }

    pub(crate) fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Either direction blocked: a handshake cannot complete.
    pub(crate) fn is_cut(&self, a: NodeId, b: NodeId) -> bool {
        self.is_blocked(a, b) || self.is_blocked(b, a)
    }

    /// One hop's delay, with jitter.
    pub(crate) fn delay(&self, rng: &mut Rng) -> Duration {
        let jitter = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        let extra = if jitter == 0 { 0 } else { rng.below(jitter + 1) };
        self.latency + Duration::from_nanos(extra)
    }

    /// When a frame of `bytes` sent now arrives, keeping the direction FIFO: the frame
    /// occupies the direction for `bytes / bytes_per_s` after the one before it.
    pub(crate) fn arrival(
        &mut self,
        from: NodeId,
        to: NodeId,
        now: Time,
        delay: Duration,
        bytes: u64,
        bytes_per_s: u64,
    ) -> Time {
        let link = self.link(from, to);
        let d = direction(from, to);
        let on_wire = Duration::from_nanos(bytes.saturating_mul(1_000_000_000) / bytes_per_s.max(1));
        let at = (now + delay).max(link.next_free[d]) + on_wire;
        link.next_free[d] = at;
        at
    }

    /// Marks the link up with a fresh epoch.
    pub(crate) fn bring_up(&mut self, a: NodeId, b: NodeId, now: Time) -> u64 {
        let link = self.link(a, b);
        link.up = true;
        link.connecting = false;
        link.epoch += 1;
        link.next_free = [now, now];
        link.epoch
    }

    /// Marks the link down; frames in flight become stale. Returns whether it was up.
    pub(crate) fn bring_down(&mut self, a: NodeId, b: NodeId) -> bool {
        let link = self.link(a, b);
        let was_up = link.up;
        link.up = false;
        link.connecting = false;
        link.epoch += 1;
        self.held.remove(&(a, b));
        self.held.remove(&(b, a));
        was_up
    }

    pub(crate) fn hold(&mut self, from: NodeId, to: NodeId, epoch: u64, frame: PeerFrame) {
        self.held.entry((from, to)).or_default().push(Held { epoch, frame });
    }

    pub(crate) fn block(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    /// Unblocks a direction and returns the frames it held, in order.
    pub(crate) fn unblock(&mut self, from: NodeId, to: NodeId) -> Vec<Held> {
        self.blocked.remove(&(from, to));
        self.held.remove(&(from, to)).unwrap_or_default()
    }

    pub(crate) fn blocked_pairs(&self) -> Vec<(NodeId, NodeId)> {
        self.blocked.iter().copied().collect()
    }

    /// Every up link with `node` at one end.
    pub(crate) fn up_links_of(&self, node: NodeId) -> Vec<NodeId> {
        self.links
            .iter()
            .filter(|(_, l)| l.up || l.connecting)
            .filter_map(|(&(a, b), _)| {
                if a == node {
                    Some(b)
                } else if b == node {
                    Some(a)
                } else {
                    None
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direction_stays_fifo_under_jitter() {
        let mut net = Network::new(Duration::from_micros(100), Duration::from_micros(50));
        let mut rng = Rng::new(1);
        let (a, b) = (NodeId(1), NodeId(2));
        net.bring_up(a, b, Time::ZERO);
        let mut last = Time::ZERO;
        for i in 0..100 {
            let delay = net.delay(&mut rng);
            let at = net.arrival(a, b, Time(i * 1000), delay, 100, 1 << 30);
            assert!(at >= last);
            last = at;
        }
    }

    #[test]
    fn breaking_a_link_bumps_its_epoch_and_drops_held_frames() {
        let mut net = Network::new(Duration::from_micros(100), Duration::ZERO);
        let (a, b) = (NodeId(1), NodeId(2));
        let epoch = net.bring_up(a, b, Time::ZERO);
        net.block(a, b);
        net.hold(a, b, epoch, PeerFrame::Heartbeat);
        assert!(net.bring_down(a, b));
        assert_ne!(net.epoch(a, b), epoch);
        assert!(net.unblock(a, b).is_empty());
    }
}
