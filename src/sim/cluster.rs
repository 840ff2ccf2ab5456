//! One simulated run: N real `Core`s, the simulated network, the workload, the fault schedule
//! and the checker, driven by virtual time from one seed. No threads, clocks or sockets: a run is
//! a pure function of the seed and the options.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use byteorder::{BigEndian, ByteOrder};

use super::checker::{Checker, Guarantee, Violation};
use super::faults::{self, FaultAction};
use super::network::Network;
use super::trace::Trace;
use super::{RunReport, SimOptions};
use crate::config::CoreConfig;
use crate::config::Durability;
use crate::core::{Core, Input, Output};
use crate::ids::Seq;
use crate::ids::{Member, NodeId};
use crate::replication::workload::random_action;
use crate::replication::{Action, Checkpoint, Command, DvmState, Session, StateMachine};
use crate::rng::Rng;
use crate::time::Time;
use crate::wire::Message;
use crate::wire::PeerFrame;

/// Read tags start here, far above the submissions' (which count from 1), so the two never meet.
const READ_TAG_BASE: u64 = 1 << 48;

/// Something scheduled to happen.
#[derive(Debug)]
enum Event {
    Frame {
        from: NodeId,
        to: NodeId,
        epoch: u64,
        frame: PeerFrame,
    },
    /// A dial's handshake completes (or fails, if the world changed meanwhile).
    Handshake {
        dialer: NodeId,
        peer: NodeId,
    },
    /// Tells `node` that its link to `peer` went up or down; dropped if `epoch` is stale.
    Notify {
        node: NodeId,
        peer: NodeId,
        epoch: u64,
        up: bool,
    },
    /// A dial failed.
    Refused {
        node: NodeId,
        peer: NodeId,
    },
    Submit {
        node: NodeId,
        tag: u64,
        payload: Vec<u8>,
    },
    /// A linearizable read through the read barrier (docs/PROTOCOL.md §3).
    Read {
        node: NodeId,
        tag: u64,
    },
    /// A checkpoint write of `node`'s incarnation finishes: it is on its disk from now on.
    Stored {
        node: NodeId,
        incarnation: u64,
        checkpoint: Checkpoint,
        replaces: bool,
    },
    Fault(FaultAction),
}

impl Event {
    /// The node that must be running for this event, if any.
    fn target(&self) -> Option<NodeId> {
        match self {
            Event::Frame { to, .. } => Some(*to),
            Event::Notify { node, .. }
            | Event::Refused { node, .. }
            | Event::Submit { node, .. }
            | Event::Read { node, .. } => Some(*node),
            Event::Handshake { .. } | Event::Fault(_) | Event::Stored { .. } => None,
        }
    }
}

struct Scheduled {
    time: Time,
    order: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.order) == (other.time, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.order).cmp(&(other.time, other.order))
    }
}

struct SimNode {
    id: NodeId,
    core: Option<Core>,
    incarnation: u64,
    paused: bool,
    deferred: Vec<Event>,
    deadline: Time,
    /// What survives a crash, by the run's durability.
    disk: Disk,
}

/// A member's simulated data directory: its last stored checkpoint and the commands after it.
#[derive(Default)]
struct Disk {
    checkpoint: Option<Checkpoint>,
    log: Vec<Message>,
}

impl Disk {
    /// The last seq it holds.
    fn upto(&self) -> Seq {
        let logged = self.log.last().map(|m| m.seq);
        logged.or(self.checkpoint.as_ref().map(|c| c.seq)).unwrap_or(0)
    }
}

/// The world of one run.
pub(crate) struct Cluster<'a> {
    options: &'a SimOptions,
    seed: u64,
    rng: Rng,
    now: Time,
    queue: BinaryHeap<Reverse<Scheduled>>,
    order: u64,
    nodes: Vec<SimNode>,
    net: Network,
    checker: Checker,
    trace: Trace,
    out: Vec<Output>,
    owned: Vec<(Member, u64)>,
    healed_at: Option<Time>,
    steps: u64,
    views: Vec<(Time, u64)>,
    first_fault: Option<Time>,
    /// Dials started by each member (its `Connect`s), by index.
    dials: Vec<u64>,
    /// Frames sent, and of them those of joins and view changes (docs/PROTOCOL.md §4, §5).
    frames: u64,
    membership_frames: u64,
    /// The last primary view each member installed: its id, ring size and time; and how many
    /// installs there were.
    installed: Vec<Option<(u64, usize, Time)>>,
    installs: u64,
    /// Every member's deadline as it was set (stale entries are dropped when they surface), so
    /// the next one is found in O(log n) rather than by a scan of every member.
    deadlines: BinaryHeap<Reverse<(Time, NodeId)>>,
}

impl<'a> Cluster<'a> {
    pub(crate) fn new(seed: u64, options: &'a SimOptions) -> Cluster<'a> {
        let mut rng = Rng::new(seed);
        let ids: Vec<NodeId> = (1..=options.nodes as u16).map(NodeId).collect();
        let probe = probe_config(options);
        let single_copy = probe.write_quorum() == 1 && probe.data_members() > 1;
        let schedule = faults::draw(
            &mut rng,
            &options.profile,
            &ids,
            options.fault_phase,
            options.token_timeout,
            single_copy,
            usize::from(options.member_changes),
        );
        let heal = schedule.kind.is_none();
        Cluster::with_schedule(seed, rng, options, schedule, heal)
    }

    /// A run of `schedule`, with a heal at the end of the fault phase if `heal`.
    fn with_schedule(
        seed: u64,
        rng: Rng,
        options: &'a SimOptions,
        schedule: faults::Schedule,
        heal: bool,
    ) -> Cluster<'a> {
        let ids: Vec<NodeId> = (1..=options.nodes as u16).map(NodeId).collect();
        let witnesses = witness_ids(options);
        let probe = probe_config(options);
        let mut cluster = Cluster {
            options,
            seed,
            rng,
            now: Time::ZERO,
            queue: BinaryHeap::new(),
            order: 0,
            nodes: ids
                .iter()
                .map(|&id| SimNode {
                    id,
                    core: None,
                    incarnation: 0,
                    paused: false,
                    deferred: Vec::new(),
                    deadline: Time::NEVER,
                    disk: Disk::default(),
                })
                .collect(),
            net: Network::new(options.latency, options.jitter),
            checker: Checker::with_write_quorum(probe.write_quorum(), &witnesses),
            trace: Trace::new(options.trace),
            out: Vec::new(),
            owned: Vec::new(),
            healed_at: None,
            steps: 0,
            views: Vec::new(),
            first_fault: None,
            dials: vec![0; ids.len()],
            frames: 0,
            membership_frames: 0,
            installed: vec![None; ids.len()],
            installs: 0,
            deadlines: BinaryHeap::new(),
        };
        for (time, action) in schedule.actions {
            cluster.schedule(time, Event::Fault(action));
        }
        if heal {
            cluster.schedule(Time::ZERO + options.fault_phase, Event::Fault(FaultAction::Heal));
        }
        cluster.schedule_workload();
        for id in ids {
            if !schedule.late.contains(&id) {
                cluster.start(id);
            }
        }
        cluster
    }

    fn schedule(&mut self, time: Time, event: Event) {
        self.order += 1;
        self.queue.push(Reverse(Scheduled { time, order: self.order, event }));
    }

    fn schedule_workload(&mut self) {
        let window = u64::try_from(self.options.fault_phase.as_nanos()).unwrap_or(u64::MAX) * 9 / 10;
        let mut tag = 0u64;
        let witnesses = witness_ids(self.options);
        // The large state first: member 1 writes it in the first tenth of the fault phase.
        let value_bytes = (self.options.state_bytes / 64).clamp(1, 64 << 10);
        let mut filled = 0u64;
        while filled < self.options.state_bytes {
            tag += 1;
            let at = Time(self.rng.below((window / 9).max(1)));
            let key = format!("fill/{tag:08}").into_bytes();
            let value = vec![tag as u8; value_bytes as usize];
            let session = Session { client_id: tag, request: 1 };
            let payload = Command { session, action: Action::Put { key, value } }.encode();
            self.schedule(at, Event::Submit { node: NodeId(1), tag, payload });
            filled += value_bytes;
        }
        for index in 0..self.nodes.len() {
            let node = self.nodes[index].id;
            if witnesses.contains(&node) {
                // A witness orders nothing (docs/PROTOCOL.md §5.7).
                continue;
            }
            for _ in 0..self.options.messages {
                tag += 1;
                let at = Time(self.rng.below(window.max(1)));
                let payload = if self.rng.below(100) < self.options.commands_percent {
                    // The client id names the submission; each is a client of its own.
                    let session = Session { client_id: tag, request: 1 };
                    let action = if self.rng.below(10) == 0 {
                        // A plug-in agreement; the submitting core fills in its view (§7.1).
                        let name = format!("{AGREED_PLUGIN}{}", self.rng.below(3));
                        Action::Propose { name, view: 0, voters: Vec::new() }
                    } else {
                        random_action(&mut self.rng)
                    };
                    Command { session, action }.encode()
                } else {
                    let filler = self.rng.below(self.options.payload_bytes.max(8) as u64 - 7) as usize;
                    let mut payload = vec![0u8; 8 + filler];
                    BigEndian::write_u64(&mut payload[..8], tag);
                    for byte in &mut payload[8..] {
                        *byte = self.rng.next_u64() as u8;
                    }
                    payload
                };
                self.schedule(at, Event::Submit { node, tag, payload });
            }
        }
        if self.options.member_changes {
            self.schedule_member_changes(&mut tag);
        }
        // Drawn last, and only when asked for, so runs without reads replay as before.
        for index in 0..self.nodes.len() {
            let node = self.nodes[index].id;
            if witnesses.contains(&node) {
                continue;
            }
            for _ in 0..self.options.reads {
                tag += 1;
                let at = Time(self.rng.below(window.max(1)));
                self.schedule(at, Event::Read { node, tag: READ_TAG_BASE + tag });
            }
        }
    }

    fn node(&mut self, id: NodeId) -> &mut SimNode {
        &mut self.nodes[usize::from(id.0) - 1]
    }

    fn member(&self, id: NodeId) -> Member {
        let node = &self.nodes[usize::from(id.0) - 1];
        Member { id, incarnation: node.incarnation }
    }

    fn alive(&self, id: NodeId) -> bool {
        self.nodes[usize::from(id.0) - 1].core.is_some()
    }

    fn paused(&self, id: NodeId) -> bool {
        self.nodes[usize::from(id.0) - 1].paused
    }

    /// Runs to the end: settled after the heal, a violation, or a bound.
    pub(crate) fn run(mut self) -> RunReport {
        let result = self.run_loop();
        let violation = result.err();
        RunReport {
            seed: self.seed,
            steps: self.steps,
            trace_hash: self.trace.hash(),
            recent: if violation.is_some() { self.trace.recent() } else { Vec::new() },
            violation,
            deliveries: self.checker.deliveries,
            commits: self.checker.commits,
            checkpoints: self.checker.checkpoints(),
            virtual_time: self.now,
            views: std::mem::take(&mut self.views),
            first_fault: self.first_fault,
            reads_served: self.checker.reads_served,
            reads_refused: self.checker.reads_refused,
        }
    }

    fn run_loop(&mut self) -> Result<(), Violation> {
        let mut next_settle_check = 0u64;
        while self.steps < self.options.step_max {
            let event_time = self.queue.peek().map_or(Time::NEVER, |s| s.0.time);
            let (deadline_node, deadline) = self.next_deadline();
            let next = event_time.min(deadline);
            if let Some(healed) = self.healed_at {
                if next == Time::NEVER || next > healed + self.options.settle {
                    return self.check_end();
                }
                if self.steps >= next_settle_check {
                    next_settle_check = self.steps + 512;
                    if self.settled() {
                        return self.check_end();
                    }
                }
            } else if next == Time::NEVER {
                break;
            }
            self.steps += 1;
            self.now = next;
            if deadline < event_time {
                self.trace.record(self.now, deadline_node, "tick", 0, 0);
                self.step(deadline_node, Input::Tick)?;
                continue;
            }
            let Some(Reverse(scheduled)) = self.queue.pop() else { break };
            self.handle(scheduled.event)?;
        }
        Err(Violation {
            guarantee: Guarantee::Liveness,
            detail: format!("no settled state within {} steps", self.options.step_max),
        })
    }

    fn handle(&mut self, event: Event) -> Result<(), Violation> {
        if let Some(target) = event.target() {
            if !self.alive(target) {
                return Ok(());
            }
            if self.paused(target) {
                self.node(target).deferred.push(event);
                return Ok(());
            }
        }
        match event {
            Event::Frame { from, to, epoch, frame } => {
                if !self.net.is_up(from, to) || self.net.epoch(from, to) != epoch {
                    return Ok(());
                }
                self.trace.record(self.now, to, frame.kind().name(), u64::from(from.0), epoch);
                self.step(to, Input::Frame { from, frame })
            }
            Event::Handshake { dialer, peer } => {
                let ok = self.alive(dialer) && self.alive(peer) && !self.net.is_cut(dialer, peer);
                if !ok {
                    self.net.link(dialer, peer).connecting = false;
                    self.schedule(self.now, Event::Refused { node: dialer, peer });
                    return Ok(());
                }
                let epoch = self.net.bring_up(dialer, peer, self.now);
                self.schedule(self.now, Event::Notify { node: dialer, peer, epoch, up: true });
                self.schedule(self.now, Event::Notify { node: peer, peer: dialer, epoch, up: true });
                Ok(())
            }
            Event::Notify { node, peer, epoch, up } => {
                if self.net.epoch(node, peer) != epoch {
                    return Ok(());
                }
                self.trace.record(
                    self.now,
                    node,
                    if up { "link-up" } else { "link-down" },
                    u64::from(peer.0),
                    epoch,
                );
                let input =
                    if up { Input::LinkUp { peer: self.member(peer) } } else { Input::LinkDown { peer } };
                self.step(node, input)
            }
            Event::Refused { node, peer } => {
                if self.net.is_up(node, peer) {
                    return Ok(());
                }
                self.trace.record(self.now, node, "refused", u64::from(peer.0), 0);
                self.step(node, Input::LinkDown { peer })
            }
            Event::Submit { node, tag, payload } => {
                let member = self.member(node);
                self.checker.on_submit(tag, node);
                self.owned.push((member, tag));
                self.trace.record(self.now, node, "submit", tag, payload.len() as u64);
                self.step(node, Input::Submit { tag, payload: payload.into() })
            }
            Event::Read { node, tag } => {
                self.checker.on_read(tag);
                self.trace.record(self.now, node, "read", tag, 0);
                self.step(node, Input::Read { tag })
            }
            Event::Stored { node, incarnation, checkpoint, replaces } => {
                // A crash before the write finished left the older files in place.
                let n = self.node(node);
                if n.core.is_some() && n.incarnation == incarnation {
                    if replaces {
                        n.disk.log.clear();
                    } else {
                        n.disk.log.retain(|m| m.seq > checkpoint.seq);
                    }
                    n.disk.checkpoint = Some(checkpoint);
                }
                Ok(())
            }
            Event::Fault(action) => self.fault(action),
        }
    }

    /// Steps one node and carries out its outputs.
    fn step(&mut self, id: NodeId, input: Input) -> Result<(), Violation> {
        let mut out = std::mem::take(&mut self.out);
        let now = self.now;
        let check_exclusion = self.options.no_live_exclusion;
        let node = self.node(id);
        let Some(core) = node.core.as_mut() else { return Ok(()) };
        // A broken assertion in the core is a finding like any other: the run stops with the
        // seed instead of taking the campaign down (STYLE.md: asserts become seeds).
        let stepped =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.step(now, input, &mut out)));
        if let Err(panic) = stepped {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            self.out = Vec::new();
            return Err(Violation::new(Guarantee::CoreAssertion, format!("{id}: {what}")));
        }
        let view = core.last_primary();
        let deadline = core.next_deadline();
        // A core that was cut off rejoins as a new incarnation; outputs of this step are its.
        let excluded = node.incarnation != core.me().incarnation;
        node.incarnation = core.me().incarnation;
        if excluded && check_exclusion {
            self.out = Vec::new();
            return Err(Violation::new(
                Guarantee::Liveness,
                format!("{id}: a live member was excluded from the primary view"),
            ));
        }
        let member = core.me();
        self.set_deadline(id, deadline);
        let mut result = Ok(());
        for output in out.drain(..) {
            if result.is_err() {
                break;
            }
            result = self.execute(id, member, view, output);
        }
        self.out = out;
        result
    }

    /// The earliest deadline of a running member, ties to the lowest id.
    fn next_deadline(&mut self) -> (NodeId, Time) {
        if self.deadlines.len() > 4 * self.nodes.len() + 1024 {
            // Mostly stale entries: rebuild from the members' current deadlines.
            self.deadlines = self.nodes.iter().map(|n| Reverse((n.deadline, n.id))).collect();
        }
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            let node = &self.nodes[usize::from(id.0) - 1];
            if node.core.is_some() && !node.paused && node.deadline == at && at != Time::NEVER {
                return (id, at);
            }
            self.deadlines.pop();
        }
        (NodeId(0), Time::NEVER)
    }

    /// Sets member `id`'s deadline.
    fn set_deadline(&mut self, id: NodeId, at: Time) {
        self.node(id).deadline = at;
        if at != Time::NEVER {
            self.deadlines.push(Reverse((at, id)));
        }
    }

    fn execute(
        &mut self,
        id: NodeId,
        member: Member,
        view: crate::ids::ViewId,
        output: Output,
    ) -> Result<(), Violation> {
        match output {
            Output::Send { to, frame } => {
                if let PeerFrame::Token(token) = &frame {
                    self.check_window(id, token)?;
                }
                self.frames += 1;
                if !matches!(
                    frame,
                    PeerFrame::Heartbeat | PeerFrame::Token(_) | PeerFrame::Data(_) | PeerFrame::Wake { .. }
                ) {
                    self.membership_frames += 1;
                }
                self.send(id, to, frame)
            }
            Output::Connect { peer } => {
                self.dials[usize::from(id.0) - 1] += 1;
                self.connect(id, peer)
            }
            Output::Disconnect { peer } => self.execute_disconnect(id, peer),
            Output::Deliver(delivery) => self.checker.on_deliver(member, &delivery)?,
            Output::Commit(commit) => {
                self.checker.on_commit(member, view, &commit)?;
                if commit.tag.is_some() {
                    let holders: Vec<NodeId> = self
                        .nodes
                        .iter()
                        .filter(|n| n.core.as_ref().is_some_and(|c| c.holds(commit.seq, commit.id)))
                        .map(|n| n.id)
                        .collect();
                    self.checker.on_ack(member, &commit, &holders)?;
                }
            }
            Output::ViewChange(info) => {
                self.trace.record(self.now, id, "view", info.view.0, info.ring.len() as u64);
                if info.primary && self.views.last().is_none_or(|&(_, v)| v < info.view.0) {
                    self.views.push((self.now, info.view.0));
                }
                self.installed[usize::from(id.0) - 1] = Some((info.view.0, info.ring.len(), self.now));
                self.installs += 1;
                self.checker.on_view(member, &info)?;
            }
            Output::ReadReady { tag, upto } => self.checker.on_read_ready(member, tag, upto)?,
            Output::Rejected { tag, .. } if tag >= READ_TAG_BASE => self.checker.on_read_refused(tag),
            Output::Rejected { tag, reason } => {
                self.owned.retain(|&(_, t)| t != tag);
                self.checker.on_reject(member, tag, reason)?;
            }
            // A member leaves only when it was removed from the universe (§5.9).
            Output::Left if self.options.member_changes => self.on_left(id)?,
            Output::Left | Output::Forced { .. } | Output::Universe(_) => {}
            Output::Persist(message) => {
                if self.options.durability == Durability::Fsync {
                    self.node(id).disk.log.push(message);
                }
            }
            Output::Checkpoint(checkpoint) => {
                self.checker.on_checkpoint(member, &checkpoint)?;
                self.store(id, member, checkpoint, false);
            }
            Output::Restored(checkpoint) => {
                self.checker.on_restore(member, &checkpoint)?;
                self.store(id, member, checkpoint, true);
            }
            // Simulated members share one process: freeing here is as good as anywhere.
            Output::Discard(_) => {}
        }
        Ok(())
    }

    /// The members' byte window, batch and payload maximum: the options' window, and the
    /// defaults where they fit in it.
    fn byte_limits(&self) -> (u64, usize, usize) {
        let window = self.options.window_bytes;
        let batch = (1usize << 20).min(usize::try_from(window).unwrap_or(usize::MAX));
        (window, batch, crate::config::PAYLOAD_BYTES_MAX_DEFAULT.min(batch))
    }

    /// docs/PROTOCOL.md §3 flow control: a token never carries more payload bytes in flight
    /// than the byte window plus one payload (the one message a holder with any room may stamp).
    fn check_window(&self, id: NodeId, token: &crate::wire::Token) -> Result<(), Violation> {
        let (window_bytes_max, _, payload_bytes_max) = self.byte_limits();
        let bound = window_bytes_max + payload_bytes_max as u64;
        if token.window_bytes >= bound {
            let detail = format!(
                "{id}: a token of {} carries {} bytes in flight; the byte window allows less than {bound}",
                token.view, token.window_bytes
            );
            return Err(Violation::new(Guarantee::CoreAssertion, detail));
        }
        Ok(())
    }

    /// Writes a checkpoint to the member's simulated disk, done after its size over the disk
    /// rate (the storage thread's work: the core is not held up meanwhile).
    fn store(&mut self, id: NodeId, member: Member, checkpoint: Checkpoint, replaces: bool) {
        if self.options.durability == Durability::Memory {
            return;
        }
        let bytes = checkpoint.state.encoded_bytes();
        let took =
            Duration::from_nanos(bytes.saturating_mul(1_000_000_000) / self.options.disk_bytes_per_s.max(1));
        let event = Event::Stored { node: id, incarnation: member.incarnation, checkpoint, replaces };
        self.schedule(self.now + took, event);
    }

    fn send(&mut self, from: NodeId, to: NodeId, frame: PeerFrame) {
        if !self.net.is_up(from, to) {
            return;
        }
        let epoch = self.net.epoch(from, to);
        if self.net.is_blocked(from, to) {
            self.net.hold(from, to, epoch, frame);
            return;
        }
        let delay = self.net.delay(&mut self.rng);
        let at =
            self.net.arrival(from, to, self.now, delay, frame_bytes(&frame), self.options.link_bytes_per_s);
        self.schedule(at, Event::Frame { from, to, epoch, frame });
    }

    fn connect(&mut self, dialer: NodeId, peer: NodeId) {
        if self.net.is_up(dialer, peer) {
            let epoch = self.net.epoch(dialer, peer);
            self.schedule(self.now, Event::Notify { node: dialer, peer, epoch, up: true });
            return;
        }
        if self.net.link(dialer, peer).connecting {
            return;
        }
        let delay = self.net.delay(&mut self.rng);
        if !self.alive(peer) {
            self.schedule(self.now + delay, Event::Refused { node: dialer, peer });
        } else if self.paused(peer) || self.net.is_cut(dialer, peer) {
            // The handshake never completes; the dialler gives up after its handshake timeout.
            self.schedule(self.now + self.options.token_timeout / 2, Event::Refused { node: dialer, peer });
        } else {
            self.net.link(dialer, peer).connecting = true;
            self.schedule(self.now + delay * 2, Event::Handshake { dialer, peer });
        }
    }

    fn start(&mut self, id: NodeId) {
        if self.alive(id) {
            return;
        }
        let universe: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let incarnation = self.node(id).incarnation + 1;
        let member = Member { id, incarnation };
        let mut config = CoreConfig::new(member, universe);
        config.ring_mode = self.options.ring_mode;
        config.token_timeout = self.options.token_timeout;
        config.idle_hold = self.options.token_timeout / 5;
        config.bootstrap_wait = self.options.token_timeout * 5;
        config.seed = self.rng.next_u64();
        config.defect = self.options.defect;
        config.hot = self.options.hot;
        config.checkpoint_every = self.options.checkpoint_every;
        config.checkpoint_interval = self.options.token_timeout * 5;
        config.durability = self.options.durability;
        config.plugins = loadable_plugins(id, self.nodes.len());
        (config.window_bytes_max, config.batch_bytes_max, config.payload_bytes_max) = self.byte_limits();
        config.witnesses = witness_ids(self.options);
        config.min_replicas = self.options.min_replicas;
        config.quorum_mode = self.options.quorum_mode;
        let durability = self.options.durability;
        let node = self.node(id);
        node.incarnation = incarnation;
        let mut core = Core::with_machine(config, Box::new(DvmState::default()));
        if durability != Durability::Memory && node.disk.upto() > 0 {
            let checkpoint = node
                .disk
                .checkpoint
                .clone()
                .unwrap_or_else(|| Checkpoint::new(0, DvmState::default().freeze()));
            if let Err(e) = core.restore_durable(checkpoint, node.disk.log.clone()) {
                // The simulated disk only holds what the core output, so this is a core bug.
                panic!("{id}: the durable checkpoint does not restore: {e}");
            }
        }
        node.core = Some(core);
        node.paused = false;
        node.deferred.clear();
        self.set_deadline(id, Time::NEVER);
        self.trace.record(self.now, id, "start", incarnation, 0);
        // A fresh core needs one step to start; its first outputs carry no violation.
        let _ = self.step(id, Input::Tick);
    }
}

/// The witnesses of a run: the highest ids.
fn witness_ids(options: &SimOptions) -> Vec<NodeId> {
    let n = options.nodes as u16;
    (n.saturating_sub(options.witnesses as u16) + 1..=n).map(NodeId).collect()
}

/// About the bytes a frame takes on the wire: its payloads and a fixed envelope.
fn frame_bytes(frame: &PeerFrame) -> u64 {
    let payloads: usize = match frame {
        PeerFrame::SnapshotChunk { bytes, .. } => bytes.len(),
        PeerFrame::Data(data) => data.messages.iter().map(|m| m.payload.len() + 40).sum(),
        PeerFrame::Retransmit { messages, .. } => messages.iter().map(|m| m.payload.len() + 40).sum(),
        _ => 0,
    };
    64 + payloads as u64
}

/// The plug-ins the simulator's workload proposes; only they are loaded by agreement.
const AGREED_PLUGIN: &str = "agreed-p";

/// What member `id` of `n` can load: p0 everywhere, p1 on all but the highest id, p2 on odd
/// ids; so agreements on p0 commit, on p1 and p2 abort (with more than one member).
fn loadable_plugins(id: NodeId, n: usize) -> Vec<String> {
    let mut names = vec![format!("{AGREED_PLUGIN}0")];
    if usize::from(id.0) != n {
        names.push(format!("{AGREED_PLUGIN}1"));
    }
    if id.0 % 2 == 1 {
        names.push(format!("{AGREED_PLUGIN}2"));
    }
    names
}

mod actions;
mod end_checks;
mod members;
mod scale;
pub use scale::{scale_run, PhaseCost, ScaleRow};

/// A member's configuration for `options`, for the write quorum and the replicas it implies.
fn probe_config(options: &SimOptions) -> CoreConfig {
    let ids: Vec<NodeId> = (1..=options.nodes as u16).map(NodeId).collect();
    let mut probe = CoreConfig::new(Member { id: NodeId(1), incarnation: 1 }, ids);
    probe.witnesses = witness_ids(options);
    probe.min_replicas = options.min_replicas;
    probe
}

/// The latency used when a run does not set one.
pub const LATENCY_DEFAULT: Duration = Duration::from_micros(100);
