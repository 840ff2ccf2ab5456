//! Carrying out faults in a run: crashes, pauses, blocked directions, link breaks, delays and
//! the heal that ends the fault phase (the schedule comes from `sim::faults`).

use super::{frame_bytes, Cluster, Event};
use crate::config::Durability;
use crate::ids::NodeId;
use crate::sim::checker::{Guarantee, Violation};
use crate::sim::faults::FaultAction;
use crate::time::Time;

impl Cluster<'_> {
    pub(super) fn crash(&mut self, id: NodeId) -> Result<(), Violation> {
        if !self.alive(id) {
            return Ok(());
        }
        self.trace.record(self.now, id, "crash", 0, 0);
        let node = self.node(id);
        node.core = None;
        node.paused = false;
        node.deferred.clear();
        self.set_deadline(id, Time::NEVER);
        for peer in self.net.up_links_of(id) {
            if self.net.bring_down(id, peer) {
                let epoch = self.net.epoch(id, peer);
                let delay = self.net.delay(&mut self.rng);
                self.schedule(self.now + delay, Event::Notify { node: peer, peer: id, epoch, up: false });
            }
        }
        if self.nodes.iter().all(|n| n.core.is_none()) {
            self.trace.record(self.now, id, "total-loss", 0, 0);
            let durable = (self.options.durability != Durability::Memory)
                .then(|| self.nodes.iter().map(|n| n.disk.upto()).max().unwrap_or(0));
            let lost = self.checker.on_total_loss(durable);
            if lost > 0 && self.options.durability == Durability::Fsync {
                return Err(Violation {
                    guarantee: Guarantee::LinearHistory,
                    detail: format!("a total loss with durable commands lost {lost} committed seqs"),
                });
            }
        }
        Ok(())
    }

    pub(super) fn resume(&mut self, id: NodeId) {
        if !self.paused(id) {
            return;
        }
        self.trace.record(self.now, id, "resume", 0, 0);
        let node = self.node(id);
        node.paused = false;
        let deferred = std::mem::take(&mut node.deferred);
        let deadline = node.deadline;
        self.set_deadline(id, deadline);
        for event in deferred {
            self.schedule(self.now, event);
        }
    }

    pub(super) fn unblock(&mut self, from: NodeId, to: NodeId) {
        for held in self.net.unblock(from, to) {
            if self.net.is_up(from, to) && self.net.epoch(from, to) == held.epoch {
                let delay = self.net.delay(&mut self.rng);
                let bytes = frame_bytes(&held.frame);
                let at = self.net.arrival(from, to, self.now, delay, bytes, self.options.link_bytes_per_s);
                self.schedule(at, Event::Frame { from, to, epoch: held.epoch, frame: held.frame });
            }
        }
    }

    pub(super) fn fault(&mut self, action: FaultAction) -> Result<(), Violation> {
        if !matches!(action, FaultAction::Heal) && self.first_fault.is_none() {
            self.first_fault = Some(self.now);
        }
        match action {
            FaultAction::Crash(id) => self.crash(id)?,
            FaultAction::Start(id) => self.start(id),
            FaultAction::BreakLink(a, b) => {
                self.trace.record(self.now, a, "break-link", u64::from(b.0), 0);
                self.execute_disconnect(a, b);
            }
            FaultAction::Partition(side) => {
                let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
                for &a in &side {
                    self.trace.record(self.now, a, "partition", side.len() as u64, 0);
                    for &b in ids.iter().filter(|b| !side.contains(b)) {
                        self.net.block(a, b);
                        self.net.block(b, a);
                    }
                }
            }
            FaultAction::Block(a, b) => {
                self.trace.record(self.now, a, "block", u64::from(b.0), 0);
                self.net.block(a, b);
            }
            FaultAction::Pause(id) => {
                if self.alive(id) {
                    self.trace.record(self.now, id, "pause", 0, 0);
                    self.node(id).paused = true;
                }
            }
            FaultAction::Resume(id) => self.resume(id),
            FaultAction::SetDelay(latency, jitter) => {
                self.trace.record(
                    self.now,
                    NodeId(0),
                    "delay",
                    latency.as_micros() as u64,
                    jitter.as_micros() as u64,
                );
                self.net.latency = latency;
                self.net.jitter = jitter;
            }
            FaultAction::Heal => {
                self.trace.record(self.now, NodeId(0), "heal", 0, 0);
                for (a, b) in self.net.blocked_pairs() {
                    self.unblock(a, b);
                }
                let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
                for id in ids {
                    self.resume(id);
                    self.start(id);
                }
                self.net.latency = self.options.latency;
                self.net.jitter = self.options.jitter;
                if self.now >= Time::ZERO + self.options.fault_phase {
                    self.healed_at = Some(self.now);
                }
            }
        }
        Ok(())
    }

    pub(super) fn execute_disconnect(&mut self, a: NodeId, b: NodeId) {
        if self.net.bring_down(a, b) {
            let epoch = self.net.epoch(a, b);
            self.schedule(self.now, Event::Notify { node: a, peer: b, epoch, up: false });
            let delay = self.net.delay(&mut self.rng);
            self.schedule(self.now + delay, Event::Notify { node: b, peer: a, epoch, up: false });
        }
    }
}
