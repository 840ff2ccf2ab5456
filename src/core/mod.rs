//! `Core`: the whole protocol of one member as a deterministic state machine.
//!
//! Its only entry is `step(now, input)`, which returns that step's outputs in the order the
//! driver must execute them; `next_deadline()` says when to step again without input. The core
//! never reads a clock, touches a socket or file, sleeps, spawns or locks, so the node and the
//! simulator drive the very same code (docs/PROTOCOL.md).

mod io;
mod links;
mod membership;
mod ring;
mod universe;
mod voting;

pub use io::{
    Commit, CoreStatus, Delivery, ForceOutcome, Input, Output, RejectReason, Replicas, TransferStats,
    ViewInfo,
};
pub use universe::ChangeInProgress;

use std::time::Duration;

use crate::config::{CoreConfig, Durability};
use crate::core::links::{Links, Lost};
use crate::core::membership::{Membership, Phase, Reason};
use crate::core::ring::barrier::ReadBarriers;
use crate::core::ring::message_log::MessageLog;
use crate::core::ring::queue::{Pending, SubmitQueue};
use crate::core::ring::RingState;
use crate::error::DecodeError;
use crate::ids::{Member, MsgId, NodeId, RingMode, Seq, ViewId};
use crate::replication::agreement::proposal_to_vote_on;
use crate::replication::replica::Replica;
use crate::replication::{hot_members, Checkpoint, CheckpointPolicy, DigestLog, StateMachine};
use crate::rng::Rng;
use crate::time::Time;
use crate::wire::{Message, Payload, PeerFrame};

/// The queue tag of a member's own submissions (votes), which no driver ever uses: the node's
/// tags count up from 0 and the simulator's name its submissions.
const OWN_TAG: u64 = u64::MAX;

/// The protocol state of one member.
///
/// Driven by hand, without threads or sockets: a ring of one forms its view on the first step,
/// and a submission comes out delivered and committed (the simulator drives many `Core`s the
/// same way over a virtual network).
///
/// ```
/// use harness::{Core, CoreConfig, Input, Member, NodeId, Output, Time};
///
/// let me = Member { id: NodeId(1), incarnation: 1 };
/// let mut core = Core::new(CoreConfig::new(me, vec![NodeId(1)]));
/// let mut out = Vec::new();
/// let mut now = Time::ZERO;
/// core.step(now, Input::Submit { tag: 7, payload: b"hello".as_slice().into() }, &mut out);
/// // Step at each deadline until the message commits (bounded: a lone member needs a few).
/// for _ in 0..1000 {
///     if out.iter().any(|o| matches!(o, Output::Commit(c) if c.tag == Some(7))) {
///         break;
///     }
///     now = core.next_deadline().min(now + std::time::Duration::from_millis(10));
///     core.step(now, Input::Tick, &mut out);
/// }
/// assert!(out.iter().any(|o| matches!(o, Output::Deliver(d) if &d.message.payload[..] == b"hello")));
/// assert!(out.iter().any(|o| matches!(o, Output::Commit(c) if c.tag == Some(7))));
/// ```
pub struct Core {
    config: CoreConfig,
    rng: Rng,
    membership: Membership,
    links: Links,
    ring: RingState,
    log: MessageLog,
    queue: SubmitQueue,
    /// Linearizable reads waiting for the token (docs/PROTOCOL.md §3, read barrier).
    barriers: ReadBarriers,
    replica: Replica,
    /// The time of the step being taken, for the parts that are not handed it.
    now: Time,
    next_counter: u64,
    delivered: u64,
    delivery_digest: u64,
    started: bool,
}

impl Core {
    /// A fresh member that will join or form a primary view (docs/PROTOCOL.md §5), over a digest
    /// log.
    pub fn new(config: CoreConfig) -> Core {
        Core::with_machine(config, Box::new(DigestLog::default()))
    }

    /// Like `new`, applying commits to `machine`.
    pub fn with_machine(config: CoreConfig, machine: Box<dyn StateMachine>) -> Core {
        let ring = RingState::new(ViewId(0), vec![config.me], config.me, config.ring_mode);
        let links = Links::new(config.heartbeat_interval(), config.token_timeout);
        let seed = crate::replication::Universe {
            epoch: config.universe_epoch,
            members: config
                .universe
                .iter()
                .map(|id| (*id, config.addresses.get(id).cloned().unwrap_or_default()))
                .collect(),
        };
        let mut core = Core {
            rng: Rng::new(config.seed),
            membership: Membership::new(Time::ZERO, config.me.incarnation),
            links,
            ring,
            log: MessageLog::starting_after(0),
            queue: SubmitQueue::default(),
            barriers: ReadBarriers::default(),
            replica: Replica::new(
                machine,
                CheckpointPolicy {
                    every_commits: config.checkpoint_every,
                    interval: config.checkpoint_interval,
                    tail_bytes_max: crate::replication::TAIL_BYTES_MAX,
                },
            ),
            now: Time::ZERO,
            next_counter: 0,
            delivered: 0,
            delivery_digest: DigestLog::default().chain,
            started: false,
            config,
        };
        core.replica.seed_universe(seed);
        core
    }

    /// This member.
    pub fn me(&self) -> Member {
        self.config.me
    }

    /// Advances the state machine by one input; outputs are appended to `out` in order.
    pub fn step(&mut self, now: Time, input: Input, out: &mut Vec<Output>) {
        self.now = now;
        if !self.started {
            self.started = true;
            self.start(now, out);
        }
        match input {
            Input::Frame { from, frame } => self.on_frame(now, from, frame, out),
            Input::LinkUp { peer } => self.on_link_up(now, peer, out),
            Input::LinkDown { peer } => {
                let was_up = self.links.on_down(peer, now);
                if was_up {
                    log::warn!("{} link to {} closed", self.config.me.id, peer);
                }
                self.on_link_lost(now, peer, was_up, Reason::LinkClosed, out);
            }
            Input::Submit { tag, payload } => self.on_submit(now, tag, payload, out),
            Input::Read { tag } => self.on_read(now, tag, out),
            Input::Tick => {}
            Input::Leave => self.start_leave(now, out),
            Input::Force { tag, confirm } => self.start_force(now, tag, confirm, out),
        }
        let settled = self.membership.is_operational() && self.membership.coordination.is_none();
        for (peer, lost) in self.links.on_tick(now, settled, out) {
            match lost {
                Lost::Silent => {
                    log::warn!(
                        "{} link to {} silent for {:?}: closed",
                        self.config.me.id,
                        peer,
                        self.config.token_timeout
                    );
                    self.on_link_lost(now, peer, true, Reason::LinkSilent, out);
                }
                Lost::DialUnanswered => {
                    log::warn!("{} dial to {} unanswered: given up", self.config.me.id, peer);
                    self.on_link_lost(now, peer, false, Reason::LinkClosed, out);
                }
            }
        }
        if self.membership.is_operational() {
            self.on_park_timeout(now, out);
        }
        self.on_membership_timeouts(now, out);
        self.check_force(out);
        self.on_hold_timeout(now, out);
        self.checkpoint_if_due(now, out);
        self.on_universe_change(now, out);
        self.check_quorum_against_universe(now, out);
        if let Some(discarded) = self.replica.take_discarded() {
            out.push(Output::Discard(discarded));
        }
    }

    /// When the core next needs a step without input.
    pub fn next_deadline(&self) -> Time {
        let ring = if self.membership.is_operational() { self.ring.park_deadline() } else { Time::NEVER };
        let waiting = self.queue.has_waiting_other_than(OWN_TAG) || !self.barriers.is_empty();
        let hold = if waiting { self.hold_deadline() } else { Time::NEVER };
        self.links
            .next_deadline()
            .min(ring)
            .min(self.membership.next_deadline())
            .min(self.replica.next_deadline())
            .min(hold)
    }

    /// Starts from durable state, before the first step: a checkpoint and the committed messages
    /// after it. Messages after a gap are ignored; returns the last seq held. The member still
    /// joins as a new incarnation: the state only lets a fully restarted cluster begin where it
    /// stopped (docs/PROTOCOL.md §7).
    pub fn restore_durable(
        &mut self,
        checkpoint: Checkpoint,
        after: Vec<Message>,
    ) -> Result<Seq, DecodeError> {
        assert!(!self.started, "durable state is restored before the first step");
        self.replica.restore(checkpoint, Time::ZERO)?;
        for message in after {
            if message.seq != self.replica.committed() + 1 {
                break;
            }
            self.replica.commit(message, false);
        }
        self.log = MessageLog::starting_after(self.replica.committed());
        // The durable universe replaces the seed list before the first step: a full restart
        // after changes starts from the newest universe (docs/PROTOCOL.md §5.9). The change
        // stays pending, so the first step outputs it for the driver.
        let universe = self.replica.universe().clone();
        self.apply_universe(&universe);
        Ok(self.replica.committed())
    }

    /// Sets this member's role from the installed view (docs/PROTOCOL.md §7).
    fn assign_role(&mut self, ring: &[Member]) {
        let ids: Vec<NodeId> = ring.iter().map(|m| m.id).collect();
        let hot = hot_members(&ids, self.config.hot).contains(&self.config.me.id);
        let was_hot = self.replica.is_hot();
        if let Some(p) = self.replica.set_hot(hot) {
            log::info!(
                "{} assign_role: promoted to hot: applied {} commands after {}",
                self.config.me.id,
                p.replayed,
                p.applied
            );
        } else if was_hot != hot {
            log::info!("{} assign_role: warm standby", self.config.me.id);
        }
    }

    /// Brings a warm member's state up to the committed prefix, so that its digest is comparable
    /// with the hot members'; returns the digest. Applies at most one slice (docs/PROTOCOL.md §7).
    pub fn catch_up(&mut self) -> u64 {
        self.replica.catch_up();
        self.replica.digest()
    }

    /// Whether the member has left the group.
    pub fn has_left(&self) -> bool {
        // Not while it lingers after its own commit (docs/PROTOCOL.md §5.6).
        matches!(self.membership.phase, Phase::Left) && self.membership.leaving.is_none()
    }

    fn on_link_up(&mut self, now: Time, peer: Member, out: &mut Vec<Output>) {
        self.forgive(peer);
        self.membership.contact_skip.remove(&peer.id);
        self.links.on_up(peer, now);
        self.ring.on_link_up(peer);
        if self.membership.is_operational() {
            self.try_release(now, out);
        }
        self.send_prepares(now, out);
        self.request_transfer(now, out);
        if matches!(self.membership.phase, Phase::Joining { .. }) {
            let frame = self.join_frame();
            self.links.send(peer.id, frame, now, out);
        }
    }

    /// Per-incarnation counters start again when the member rejoins as a new incarnation.
    fn reset_incarnation_stats(&mut self) {
        self.delivered = 0;
        self.delivery_digest = DigestLog::default().chain;
        self.next_counter = 0;
    }

    /// The last primary view and whether this member may commit in it (cheaper than
    /// `status`, which gathers every figure).
    pub fn view(&self) -> ViewInfo {
        ViewInfo {
            view: self.membership.last_primary,
            ring: self.membership.last_primary_members.clone(),
            primary: self.membership.is_operational(),
        }
    }

    /// Whether this member may commit now: it is operational in a primary view.
    pub fn is_primary(&self) -> bool {
        self.membership.is_operational()
    }

    /// Whether a submission made at `now` is served: at once in a primary view, or held through
    /// a view change of one until the next view installs, for at most `view_change_timeout`
    /// from the change's start (docs/PROTOCOL.md §8.1). A client asked elsewhere meanwhile
    /// would find every member of the view in the same change.
    pub fn serves_submissions(&self, now: Time) -> bool {
        self.membership.is_operational() || now < self.hold_deadline()
    }

    /// Until when submissions are held: set while this member of the last primary view (holding
    /// its log) is in a view change; `NEVER` otherwise.
    fn hold_deadline(&self) -> Time {
        let changing = matches!(
            self.membership.phase,
            Phase::Gather { .. } | Phase::Promised { .. } | Phase::Accepting { .. } | Phase::Accepted { .. }
        );
        match self.membership.change {
            Some((since, _)) if changing && self.membership.holds_log => since + self.view_change_timeout(),
            _ => Time::NEVER,
        }
    }

    /// Refuses the submissions still waiting once a view change has lasted past the hold
    /// (`RejectReason::ViewChange`): none was stamped, so a retry elsewhere cannot order one twice.
    fn on_hold_timeout(&mut self, now: Time, out: &mut Vec<Output>) {
        if self.membership.is_operational() || now < self.hold_deadline() {
            return;
        }
        if !self.queue.has_waiting_other_than(OWN_TAG) && self.barriers.is_empty() {
            return;
        }
        let mut tags = self.queue.take_waiting(OWN_TAG);
        tags.extend(self.barriers.take_all());
        log::info!(
            "{} on_hold_timeout: view change longer than {:?}; refused {} waiting submissions",
            self.config.me.id,
            self.view_change_timeout(),
            tags.len()
        );
        out.extend(tags.into_iter().map(|tag| Output::Rejected { tag, reason: RejectReason::ViewChange }));
    }

    /// What this member knows about itself. The state digest is kept incrementally, so this is
    /// O(registry), never O(state) (docs/PROTOCOL.md §7).
    pub fn status(&self) -> CoreStatus {
        CoreStatus {
            member: self.config.me,
            view: self.view(),
            delivered: self.delivered,
            delivery_digest: self.delivery_digest,
            committed_upto: self.log.committed_upto,
            state_digest: self.replica.digest(),
            applied_upto: self.replica.applied(),
            checkpoint_seq: self.replica.checkpoint().seq,
            hot: self.replica.is_hot(),
            rotations: self.ring.rotations_seen,
            queued: self.queue.waiting(),
            replicas: self.replicas(),
        }
    }

    /// Every member of the installed view with its received prefix as the token last carried
    /// it here (0 before the first visit): each member's progress, known without asking it.
    pub fn ring_progress(&self) -> Vec<(Member, Seq)> {
        let received = &self.ring.last_received;
        self.ring
            .members
            .iter()
            .enumerate()
            .map(|(p, m)| (*m, received.get(p).copied().unwrap_or(0)))
            .collect()
    }

    /// The ids of the installed view's hot members (docs/PROTOCOL.md §7).
    pub fn hot_ids(&self) -> Vec<NodeId> {
        let ids: Vec<NodeId> = self.ring.members.iter().map(|m| m.id).collect();
        hot_members(&ids, self.config.hot)
    }

    /// Peer links up now and dials started since start (docs/PROTOCOL.md §4).
    pub fn link_counts(&self) -> (usize, u64) {
        (self.links.up_count(), self.links.dials_started)
    }

    /// Replicas in the view against the write quorum; cheap (docs/PROTOCOL.md §5.2).
    pub fn replicas(&self) -> Replicas {
        let configured = self.config.data_members();
        if self.membership.is_operational() {
            let needed = usize::from(self.membership.quorum.min_replicas);
            return Replicas { in_view: self.ring.members.len(), configured, needed };
        }
        let in_view = match self.membership.shortfall {
            Some(membership::Shortfall::Replicas { in_view, .. }) => in_view,
            _ => 0,
        };
        Replicas { in_view, configured, needed: self.config.write_quorum() }
    }

    /// Why this member is in no primary view, when its last attempt to form one said:
    /// `Err` with the message for "not enough replicas", `Ok` with the one for "no quorum".
    pub fn shortfall(&self) -> Option<Result<String, String>> {
        if self.membership.is_operational() {
            return None;
        }
        self.membership.shortfall.map(|s| match s {
            membership::Shortfall::Replicas { .. } => Err(s.to_string()),
            membership::Shortfall::NoQuorum { .. } => Ok(s.to_string()),
        })
    }

    /// Whether this member holds message `id` at `seq`: committed here (its effect is in the
    /// state), or in its log. For the simulator's write-quorum check (docs/PROTOCOL.md §5.4).
    pub fn holds(&self, seq: Seq, id: MsgId) -> bool {
        seq <= self.log.committed_upto || self.log.get(seq).is_some_and(|m| m.id == id)
    }

    /// Whether this member is a witness (docs/PROTOCOL.md §5.7).
    pub fn is_witness(&self) -> bool {
        self.config.is_witness()
    }

    /// Token visits seen in this view (cheaper than `status`).
    pub fn rotations(&self) -> u64 {
        self.ring.rotations_seen
    }

    /// The committed prefix (cheaper than `status`, which digests the state).
    pub fn committed_upto(&self) -> Seq {
        self.log.committed_upto
    }

    /// The last seq applied to the state machine: `committed_upto` at a hot member, possibly less
    /// at a warm one (cheaper than `status`).
    pub fn applied_upto(&self) -> Seq {
        self.replica.applied()
    }

    /// Own messages waiting for the token (cheaper than `status`).
    pub fn queued(&self) -> usize {
        self.queue.waiting()
    }

    /// Own messages stamped and not yet seen committed.
    pub fn in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// The last installed primary view (cheaper than `status`, which digests the state).
    pub fn last_primary(&self) -> ViewId {
        self.membership.last_primary
    }

    /// The state machine, for the driver's local reads and its watch journal. The driver must
    /// not change replicated state through it: only committed messages may.
    /// A warm member first applies the commands it holds (at most one slice), so reads see every
    /// commit.
    pub fn machine_mut(&mut self) -> &mut dyn StateMachine {
        self.replica.catch_up();
        self.replica.machine_mut()
    }

    /// Whether the submit queue is within `room` bytes (or a sixteenth of its message count) of
    /// refusing submissions as busy: the driver stops taking client requests until it drains
    /// (docs/PROTOCOL.md §2.2). `room` counts as at most half the queue, so a queue smaller than
    /// the requests in flight towards it is still fed (and answers busy past it) instead of
    /// never being read from again.
    pub fn submit_queue_nearly_full(&self, room: usize) -> bool {
        let room = room.min(self.config.queue_bytes_max / 2);
        self.queue.held_bytes() + room > self.config.queue_bytes_max
            || self.queue.waiting() + self.config.queue_max / 16 > self.config.queue_max
    }

    /// The state machine as far as it has applied the history, without applying a warm member's
    /// tail first: for draining its change journal, never for reads (use `machine_mut`).
    pub fn machine_as_applied(&mut self) -> &mut dyn StateMachine {
        self.replica.machine_mut()
    }

    /// Whether this member is a hot standby (applies every command as it commits).
    pub fn is_hot(&self) -> bool {
        self.replica.is_hot()
    }

    /// The bytes of the state's canonical encoding, as applied here (O(small): kept as it
    /// changes).
    pub fn state_bytes(&self) -> u64 {
        self.replica.state_bytes()
    }

    /// The last state snapshot this member received whole, if any: its bytes and how long it
    /// took from the first chunk to the last.
    pub fn last_transfer(&self) -> Option<TransferStats> {
        self.membership.streams.last_received
    }

    /// Views installed here by what started their change, named for the metrics.
    pub fn installs_by_reason(&self) -> Vec<(&'static str, u64)> {
        Reason::ALL.iter().map(|r| r.name()).zip(self.membership.installs_by_reason).collect()
    }

    /// Payload bytes of this member's own messages queued or in flight until they commit
    /// (docs/PROTOCOL.md §2.2).
    pub fn submit_queue_bytes(&self) -> usize {
        self.queue.held_bytes()
    }

    /// The seq of the last checkpoint this member holds (0: none yet).
    pub fn last_checkpoint(&self) -> Seq {
        self.replica.checkpoint().seq
    }

    /// The ring mode in use.
    pub fn ring_mode(&self) -> RingMode {
        self.config.ring_mode
    }

    /// The token timeout in use.
    pub fn token_timeout(&self) -> Duration {
        self.config.token_timeout
    }

    fn start(&mut self, now: Time, out: &mut Vec<Output>) {
        self.membership = Membership::new(now, self.membership.boot);
        let (w, default) = (self.config.write_quorum(), self.config.default_min_replicas());
        if w < default {
            log::warn!(
                "{} start: write quorum lowered to {w} (default {default}): a write may be acknowledged \
                 while only {w} member(s) hold it, and lost if they crash (docs/PROTOCOL.md §5.4)",
                self.config.me.id
            );
        }
        self.on_join_interval(now, out);
    }

    fn on_frame(&mut self, now: Time, from: NodeId, frame: PeerFrame, out: &mut Vec<Output>) {
        self.links.on_rx(from, now);
        if !matches!(frame, PeerFrame::Heartbeat) {
            self.links.on_use(from, now);
        }
        match frame {
            // Handshake frames never reach the core (the transport consumes them); ignored if
            // one does.
            PeerFrame::Heartbeat
            | PeerFrame::Hello { .. }
            | PeerFrame::HelloAck { .. }
            | PeerFrame::Challenge { .. }
            | PeerFrame::Proof { .. } => {}
            PeerFrame::Token(_) | PeerFrame::Data(_) | PeerFrame::Wake { .. } => {
                self.on_ring_frame(now, from, frame, out)
            }
            join @ PeerFrame::Join { member, .. } => {
                self.forgive(member);
                self.on_join(now, from, join, out)
            }
            PeerFrame::Leave { member } => {
                log::debug!("{} ignores a leave from {}", self.config.me.id, member)
            }
            PeerFrame::Prepare { ballot, last_primary } => {
                self.on_prepare(now, from, ballot, last_primary, out)
            }
            PeerFrame::Promise(promise) => self.on_promise(now, from, *promise, out),
            PeerFrame::Nack { ballot, promised, last_primary } => {
                self.on_nack(now, from, ballot, promised, last_primary, out)
            }
            PeerFrame::Accept { ballot, proposal } => self.on_accept(now, from, ballot, proposal, out),
            PeerFrame::Accepted { ballot, member } => self.on_accepted(now, ballot, member, out),
            PeerFrame::Commit { ballot, proposal } => self.on_commit(now, ballot, proposal, out),
            fetch @ PeerFrame::Fetch { .. } => self.on_fetch(now, from, fetch, out),
            PeerFrame::Retransmit { ballot, messages } => {
                self.on_retransmit(now, from, ballot, messages, out)
            }
            chunk @ PeerFrame::SnapshotChunk { .. } => self.on_snapshot_chunk(now, from, chunk, out),
            PeerFrame::SnapshotAck { ballot, seq, offset } => {
                self.on_snapshot_ack(now, from, ballot, seq, offset, out)
            }
        }
    }

    /// Token, data and wake frames: handled in the installed view, kept for a view not yet
    /// installed here, dropped for an old one.
    fn on_ring_frame(&mut self, now: Time, from: NodeId, frame: PeerFrame, out: &mut Vec<Output>) {
        let view = match &frame {
            PeerFrame::Token(t) => t.view,
            PeerFrame::Data(d) => d.view,
            PeerFrame::Wake { view, .. } => *view,
            _ => return,
        };
        let current = self.membership.is_operational() && view == self.ring.view;
        if !current {
            if view > self.membership.last_primary {
                self.keep_early(from, frame);
            }
            return;
        }
        match frame {
            PeerFrame::Token(token) => self.on_token(now, from, token, out),
            PeerFrame::Data(data) => self.on_data(now, from, data, out),
            PeerFrame::Wake { view, hops_left } => self.on_wake(now, from, view, hops_left, out),
            _ => {}
        }
    }

    /// Queues a message this member submits on its own behalf (a vote), whatever the queue's
    /// length: the open proposals bound them. Its commit and rejection carry no tag.
    fn submit_own(&mut self, now: Time, payload: Payload, out: &mut Vec<Output>) {
        self.next_counter += 1;
        let id = MsgId {
            origin: self.config.me.id,
            incarnation: self.config.me.incarnation,
            counter: self.next_counter,
        };
        self.queue.push(Pending { tag: OWN_TAG, id, attempt: 0, payload });
        if self.membership.is_operational() {
            self.on_queue_grew(now, out);
        }
    }

    fn on_submit(&mut self, now: Time, tag: u64, payload: Payload, out: &mut Vec<Output>) {
        if self.membership.leaving.is_some() || matches!(self.membership.phase, Phase::Left) {
            out.push(Output::Rejected { tag, reason: RejectReason::ShuttingDown });
            return;
        }
        if self.config.is_witness() {
            // A witness orders nothing (docs/PROTOCOL.md §5.7): certainly not ordered, retry
            // at a member that holds state.
            out.push(Output::Rejected { tag, reason: RejectReason::Excluded });
            return;
        }
        if payload.len() > self.config.payload_bytes_max {
            out.push(Output::Rejected { tag, reason: RejectReason::TooLarge });
            return;
        }
        if self.removal_loses_quorum(&payload) {
            out.push(Output::Rejected { tag, reason: RejectReason::QuorumLoss });
            return;
        }
        let bytes_full = self.queue.held_bytes() + payload.len() > self.config.queue_bytes_max;
        if self.queue.waiting() >= self.config.queue_max || bytes_full {
            out.push(Output::Rejected { tag, reason: RejectReason::Busy });
            return;
        }
        let payload = self.fill_proposal(payload);
        self.next_counter += 1;
        let id = MsgId {
            origin: self.config.me.id,
            incarnation: self.config.me.incarnation,
            counter: self.next_counter,
        };
        self.queue.push(Pending { tag, id, attempt: 0, payload });
        if self.membership.is_operational() {
            self.on_queue_grew(now, out);
        }
    }

    /// A linearizable read: answered after the token has gone round the ring once since it
    /// arrived (docs/PROTOCOL.md §3, read barrier). Held through a view change like a
    /// submission (§8.1); refused outside a primary view.
    fn on_read(&mut self, now: Time, tag: u64, out: &mut Vec<Output>) {
        let reason = if self.membership.leaving.is_some() || matches!(self.membership.phase, Phase::Left) {
            Some(RejectReason::ShuttingDown)
        } else if self.config.is_witness() || !self.serves_submissions(now) {
            Some(RejectReason::Excluded)
        } else if !self.barriers.has_room() {
            Some(RejectReason::Busy)
        } else {
            None
        };
        if let Some(reason) = reason {
            out.push(Output::Rejected { tag, reason });
            return;
        }
        if self.config.defect == crate::config::Defect::ReadWithoutBarrier {
            out.push(Output::ReadReady { tag, upto: self.log.committed_upto });
            return;
        }
        self.barriers.push(tag);
        if self.membership.is_operational() {
            self.on_queue_grew(now, out);
        }
    }

    /// Delivers in agreed order everything that is contiguous.
    fn deliver_ready(&mut self, out: &mut Vec<Output>) {
        let view = self.ring.view;
        while let Some(message) = self.log.next_deliverable() {
            self.delivered += 1;
            self.delivery_digest =
                DigestLog::extend(self.delivery_digest, message.seq, message.id, &message.payload);
            out.push(Output::Deliver(Delivery { view, message: message.clone() }));
        }
    }

    /// The `DeliverOnArrival` defect: hands a message out before the ones it follows.
    fn deliver_out_of_order(&mut self, message: Message, out: &mut Vec<Output>) {
        self.delivered += 1;
        out.push(Output::Deliver(Delivery { view: self.ring.view, message }));
    }

    /// Answers every queued submission: `unsent` for those never stamped, `OutcomeUnknown` for
    /// those stamped but not seen committed.
    fn fail_queue(&mut self, unsent: RejectReason, out: &mut Vec<Output>) {
        let (waiting, stamped) = self.queue.drain();
        for tag in stamped.into_iter().filter(|&tag| tag != OWN_TAG) {
            out.push(Output::Rejected { tag, reason: RejectReason::OutcomeUnknown });
        }
        for tag in waiting.into_iter().filter(|&tag| tag != OWN_TAG) {
            out.push(Output::Rejected { tag, reason: unsent });
        }
        // A read changes nothing: refused for whatever reason, it may be retried anywhere.
        for tag in self.barriers.take_all() {
            out.push(Output::Rejected { tag, reason: unsent });
        }
    }

    /// Commits everything delivered up to `safe`. A warm member applies only what it must
    /// answer itself (docs/PROTOCOL.md §7); the `Persist`s of the batch come before its commits.
    fn commit_upto(&mut self, safe: Seq, out: &mut Vec<Output>) {
        self.apply_committed(safe, true, out);
    }

    /// Commits the log up to `safe`; `vote`: this member votes on the plug-in proposals among
    /// them (a learner does not: it was in no view of theirs, docs/PROTOCOL.md §5.3, §7.1).
    fn apply_committed(&mut self, safe: Seq, vote: bool, out: &mut Vec<Output>) {
        let mut commits = Vec::new();
        while let Some(message) = self.log.next_committable(safe) {
            let tag = if message.id.origin == self.config.me.id {
                self.queue
                    .on_commit(&message.id, self.config.defect != crate::config::Defect::ResendCommitted)
                    .filter(|&tag| tag != OWN_TAG)
            } else {
                None
            };
            let (seq, id) = (message.seq, message.id);
            let vote = proposal_to_vote_on(&message.payload, self.config.me.id).filter(|_| vote);
            if self.config.durability == Durability::Fsync {
                out.push(Output::Persist(message.clone()));
            }
            let result = self.replica.commit(message, tag.is_some()).unwrap_or_default();
            commits.push(Commit { seq, id, tag, result });
            if let Some((name, view)) = vote {
                self.vote(seq, &name, view, out);
            }
        }
        out.extend(commits.into_iter().map(Output::Commit));
        self.checkpoint_if_due(self.now, out);
    }

    /// Takes a checkpoint if one is due, keeping the log that members catching up from this
    /// one still need (docs/PROTOCOL.md §5.3, "Learning the log").
    fn checkpoint_if_due(&mut self, now: Time, out: &mut Vec<Output>) {
        let idle = self.config.token_timeout * membership::stream::STREAM_IDLE_TIMEOUTS;
        let pin = self.membership.streams.pin(now, idle);
        if let Some(checkpoint) = self.replica.checkpoint_if_due(now, pin) {
            out.push(Output::Checkpoint(checkpoint));
        }
    }
}

#[cfg(test)]
mod tests;
