//! The protocol thread: the only owner of `Core`. It turns events, embedder requests and client
//! requests into `Input`s and executes the `Output`s of every step in order.
//!
//! Loop: wait on the channels until `core.next_deadline()`; step once per queued input (a bounded
//! batch), then `Tick` if a deadline passed; frames become encoded `Command`s for the event loop,
//! which is woken once per batch (STYLE.md, "Protocol thread").

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender, TrySendError};

mod clients;
mod metrics;
mod versions;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;

use super::delivery_log::DeliveryLog;
use super::notify::Notifier;
use super::watch::WatchHub;
use super::{Rejection, Request};
use crate::budget::{ByteBudget, FifoBytes};
use crate::checkpoint::{Done, Job, StorageThread};
use crate::core::{Commit, Core, Delivery, ForceOutcome, Input, Output, RejectReason};
use crate::error::Error;
use crate::ids::{Member, NodeId};
use crate::time::Time;
use crate::transport::{self, Command, Counters, Event, LoopHandle};
use crate::wire::{self, ClientReply, ErrorCode};
use clients::{Pending, RotationRate};
use versions::ConnVersions;

/// Inputs stepped per batch before the loop is woken and deadlines are checked.
const INPUTS_PER_BATCH: usize = 1024;
/// The longest wait for input, even with no deadline pending.
const IDLE_WAIT_MAX: Duration = Duration::from_secs(1);
/// How often a protocol thread waiting for an embedder to take bytes looks again.
const EMBEDDER_POLL: Duration = Duration::from_millis(1);
/// Bounds on the clean leave at shutdown.
const LEAVE_STEPS_MAX: usize = 100_000;
const LEAVE_WAIT_MAX: Duration = Duration::from_millis(50);

/// What the protocol thread is given at start.
pub(super) struct Channels {
    /// How this thread waits for input before it blocks on the channels.
    pub(super) idle: crate::idle::IdleStrategy,
    /// The highest protocol version this member speaks (docs/PROTOCOL.md §2.3).
    pub(super) version: u8,
    pub(super) core: Core,
    pub(super) io: LoopHandle,
    pub(super) events: Receiver<Event>,
    /// The events' byte budget: each event's `held_bytes` is given back as it is taken.
    pub(super) events_budget: Arc<ByteBudget>,
    /// The embedder's submissions' byte budget, given back likewise.
    pub(super) requests_budget: Arc<ByteBudget>,
    pub(super) requests: Receiver<Request>,
    pub(super) stop: Receiver<()>,
    pub(super) deliveries: Sender<Delivery>,
    /// Most payload bytes queued in `deliveries` (`NodeOptions::deliveries_bytes_max`).
    pub(super) deliveries_bytes_max: usize,
    /// Whether deliveries go to `deliveries` (the sender is kept either way: its drop tells the
    /// embedder that the node stopped).
    pub(super) hand_over_deliveries: bool,
    pub(super) commits: Option<Sender<Commit>>,
    /// Most result bytes queued in `commits` (`NodeOptions::commits_bytes_max`).
    pub(super) commits_bytes_max: usize,
    pub(super) rejections: Option<Sender<Rejection>>,
    pub(super) tags: Arc<AtomicU64>,
    pub(super) delivery_log: Option<DeliveryLog>,
    pub(super) counters: Arc<Counters>,
    /// The largest payload a submission may carry (the core's `payload_bytes_max`), named when
    /// a larger one is refused.
    pub(super) payload_bytes_max: usize,
    /// The storage thread: it writes the durable files with `--durability checkpoint|fsync`,
    /// and frees what the core discards in every mode (docs/PROTOCOL.md §5.1).
    pub(super) storage: Option<StorageThread>,
    /// `--durability checkpoint|fsync`: checkpoints go to the storage thread's files.
    pub(super) durable: bool,
    /// `--durability fsync`: commits are acknowledged only once the storage thread synced them.
    pub(super) fsync: bool,
    /// Every member's address, for `Members` requests.
    pub(super) peers: BTreeMap<NodeId, SocketAddr>,
    /// Set when a client's `Leave` request stopped the node, so its embedder exits cleanly.
    pub(super) left_by_request: Arc<AtomicBool>,
    /// systemd's readiness and watchdog notifications (README "Running under systemd").
    pub(super) notify: Notifier,
}

/// An embedder channel whose bytes are bounded.
#[derive(Clone, Copy)]
enum Queued {
    Deliveries,
    Commits,
}

pub(super) struct Driver {
    c: Channels,
    me: Member,
    /// The monotonic epoch that protocol `Time` counts from.
    epoch: Instant,
    /// Client submissions waiting for their commit, by tag.
    pending: BTreeMap<u64, Pending>,
    /// Watches and the change history they start from.
    watches: WatchHub,
    rotation_rate: RotationRate,
    out: Vec<Output>,
    /// Set once the node is told to stop; embedder channels are no longer waited on.
    stopping: bool,
    /// Set when durable state could not be written: nothing is acknowledged any more.
    store_broken: bool,
    /// Payload bytes still queued in the embedder's deliveries and commits channels.
    deliveries_queued: FifoBytes,
    commits_queued: FifoBytes,
    /// Commits waiting for the storage thread to sync them, in seq order (`--durability fsync`).
    awaiting_sync: VecDeque<Commit>,
    /// Whether the step being executed handed commands to the storage thread.
    appended: bool,
    /// The longest protocol step since start (docs/PROTOCOL.md §2: what bounds a step).
    pub(super) max_step: Duration,
    /// Reads whose barrier passed at a warm member that could not catch up in one slice: they
    /// are ordered through the ring once the step's outputs are executed.
    reads_to_order: Vec<(Pending, crate::wire::Payload)>,
    /// How long the last checkpoint took to write (zero: none written yet), for the metrics.
    last_checkpoint_write: Duration,
    /// The protocol version of each up link and each client connection whose handshake chose
    /// one below ours: frames to them are encoded in it (docs/PROTOCOL.md §2.3).
    versions: ConnVersions,
}

impl Driver {
    pub(super) fn new(mut c: Channels) -> Driver {
        let me = c.core.me();
        let revision = match c.core.machine_mut().as_dvm_mut() {
            Some(state) => {
                state.enable_journal();
                state.revision()
            }
            None => 0,
        };
        let versions = ConnVersions::new(c.version);
        Driver {
            c,
            me,
            epoch: Instant::now(),
            pending: BTreeMap::new(),
            watches: WatchHub::new(revision),
            rotation_rate: RotationRate::default(),
            out: Vec::new(),
            stopping: false,
            store_broken: false,
            deliveries_queued: FifoBytes::default(),
            commits_queued: FifoBytes::default(),
            awaiting_sync: VecDeque::new(),
            appended: false,
            max_step: Duration::ZERO,
            reads_to_order: Vec::new(),
            last_checkpoint_write: Duration::ZERO,
            versions,
        }
    }

    fn now(&self) -> Time {
        Time(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    pub(super) fn run(mut self) {
        log::info!("{} protocol: started", self.me);
        self.timed(|d| d.step(Input::Tick));
        self.c.io.wake();
        // Ends on stop, or when the event loop or every request sender is gone.
        while !self.stopping {
            let wait = self.c.core.next_deadline().0.saturating_sub(self.now().0);
            let mut wait = Duration::from_nanos(wait).min(IDLE_WAIT_MAX);
            // Buffered delivery log lines must reach the file within their flush interval even
            // when the ring goes quiet.
            if let Some(flush) = self.c.delivery_log.as_ref().and_then(DeliveryLog::flush_deadline) {
                wait = wait.min(flush.saturating_duration_since(Instant::now()));
            }
            // The watchdog ping comes from this thread, so a hung step stops it.
            if let Some(due) = self.c.notify.on_tick(Instant::now()) {
                wait = wait.min(due.saturating_duration_since(Instant::now()));
            }
            // The idle strategy first: input that comes within it costs no wake-up.
            let deadline = Instant::now() + wait;
            let (events, requests) = (&self.c.events, &self.c.requests);
            let found = self.c.idle.wait_for(deadline, || {
                events.try_recv().ok().map(Ok).or_else(|| requests.try_recv().ok().map(Err))
            });
            let wait = deadline.saturating_duration_since(Instant::now());
            let never = crossbeam_channel::never();
            let done = self.c.storage.as_ref().map(|s| s.done.clone()).unwrap_or(never);
            let first = if found.is_some() {
                found
            } else {
                select! {
                    recv(self.c.events) -> event => match event {
                        Ok(event) => Some(Ok(event)),
                        Err(_) => {
                            log::error!("{} protocol: the event loop has gone; stopping", self.me);
                            break;
                        }
                    },
                    recv(done) -> done => {
                        if let Ok(done) = done {
                            self.on_storage(done);
                        }
                        None
                    }
                    recv(self.c.requests) -> request => match request {
                        Ok(request) => Some(Err(request)),
                        Err(_) => { self.stopping = true; None }
                    },
                    recv(self.c.stop) -> _ => { self.stopping = true; None }
                    default(wait) => None,
                }
            };
            match first {
                Some(Ok(event)) => self.timed(|d| d.on_event(event)),
                Some(Err(request)) => self.timed(|d| d.on_request(request)),
                None => {}
            }
            while let Some(done) = self.c.storage.as_ref().and_then(|s| s.done.try_recv().ok()) {
                self.timed(|d| d.on_storage(done));
            }
            for _ in 1..INPUTS_PER_BATCH {
                if self.stopping {
                    break;
                }
                if let Ok(event) = self.c.events.try_recv() {
                    self.timed(|d| d.on_event(event));
                } else if let Ok(request) = self.c.requests.try_recv() {
                    self.timed(|d| d.on_request(request));
                } else {
                    break;
                }
            }
            if self.now() >= self.c.core.next_deadline() {
                self.timed(|d| d.step(Input::Tick));
            }
            if let Some(log) = &mut self.c.delivery_log {
                log.on_tick(Instant::now());
            }
            let full = self.c.core.submit_queue_nearly_full(transport::CLIENT_BYTES_QUEUED_MAX);
            self.c.counters.submit_queue_full.store(full, std::sync::atomic::Ordering::Relaxed);
            // Not `status()`: that digests the whole state, once per batch.
            self.rotation_rate.sample(Instant::now(), self.c.core.rotations());
            self.c.io.wake_if_sent();
        }
        self.leave();
        if let Some(log) = &mut self.c.delivery_log {
            log.flush();
        }
        // Nothing will take submissions any more: an embedder waiting for room must not.
        self.c.requests_budget.close();
        // Finishes the checkpoint being written and syncs the log before the node stops.
        if let Some(mut storage) = self.c.storage.take() {
            storage.stop();
        }
        self.c.io.send(Command::Shutdown);
        self.c.io.wake();
        log::info!("{} protocol: stopped", self.me);
    }

    /// Leaves the group cleanly (the others install a view without this member at once instead
    /// of waiting for the timeout), bounded by three token timeouts.
    fn leave(&mut self) {
        self.c.notify.on_leave();
        self.step(Input::Leave);
        self.c.io.wake();
        let give_up = Instant::now() + self.c.core.token_timeout() * 3;
        for _ in 0..LEAVE_STEPS_MAX {
            let now = Instant::now();
            if self.c.core.has_left() || now >= give_up {
                break;
            }
            let until_deadline =
                Duration::from_nanos(self.c.core.next_deadline().0.saturating_sub(self.now().0));
            let wait = until_deadline.min(give_up - now).min(LEAVE_WAIT_MAX);
            match self.c.events.recv_timeout(wait) {
                Ok(event) => self.on_event(event),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            if self.now() >= self.c.core.next_deadline() {
                self.step(Input::Tick);
            }
            self.c.io.wake();
        }
        if !self.c.core.has_left() {
            log::warn!("{} protocol: stopping before the others confirmed the leave", self.me);
        }
    }

    /// Handles one input (a core step, a client's status or read, a storage completion) and
    /// times it: nothing in it may take time proportional to the state or a backlog, since
    /// neighbours read a silent member as a dead one (docs/PROTOCOL.md §5.1).
    fn timed(&mut self, handle: impl FnOnce(&mut Driver)) {
        let started = Instant::now();
        handle(self);
        let took = started.elapsed();
        if took > self.max_step {
            self.max_step = took;
        }
        if took > self.c.core.token_timeout() / 4 {
            log::warn!(
                "{} protocol: a step took {:?}, over a quarter of the token timeout {:?}",
                self.me,
                took,
                self.c.core.token_timeout()
            );
        }
    }

    /// One protocol step and its outputs.
    fn step(&mut self, input: Input) {
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.c.core.step(now, input, &mut out);
        for output in out.drain(..) {
            self.execute(output);
        }
        self.out = out;
        if std::mem::take(&mut self.appended) && !self.store_broken {
            self.hand_to_storage(Job::Sync);
        }
        self.stream_changes();
        for (pending, payload) in std::mem::take(&mut self.reads_to_order) {
            self.submit(pending, payload);
        }
    }

    /// Hands a job to the storage thread; a stopped thread means durable state failed.
    fn hand_to_storage(&mut self, job: Job) {
        let Some(storage) = self.c.storage.as_ref() else { return };
        if !storage.send(job) {
            self.store_failed(Error::io(
                "hand work to the storage thread",
                std::io::ErrorKind::BrokenPipe.into(),
            ));
        }
    }

    /// A completion from the storage thread: synced commits are acknowledged now.
    fn on_storage(&mut self, done: Done) {
        match done {
            Done::Synced(upto) => {
                while self.awaiting_sync.front().is_some_and(|c| c.seq <= upto) {
                    if let Some(commit) = self.awaiting_sync.pop_front() {
                        self.acknowledge(commit);
                    }
                }
            }
            Done::Checkpointed { seq, write } => {
                self.last_checkpoint_write = write.took;
                log::info!(
                    "{} protocol: checkpoint at {seq}: {} bytes written in {:?}",
                    self.me,
                    write.bytes,
                    write.took
                )
            }
            Done::Failed(e) => self.store_failed(e),
        }
    }

    fn on_event(&mut self, event: Event) {
        self.c.events_budget.give(event.held_bytes());
        match event {
            Event::Peer { from, frame } => self.step(Input::Frame { from, frame }),
            Event::LinkUp { peer, version } => {
                self.versions.link_up(peer.id, version);
                self.step(Input::LinkUp { peer })
            }
            Event::LinkDown { peer } => self.step(Input::LinkDown { peer }),
            Event::Request { client, version, request } => {
                self.versions.client_request(client, version);
                // The loop counted these bytes as waiting for this thread (its read budget).
                self.c
                    .counters
                    .client_bytes_queued
                    .fetch_sub(request.data_bytes(), std::sync::atomic::Ordering::Relaxed);
                self.on_client_request(client, request)
            }
            Event::ClientGone { client } => {
                self.versions.client_gone(client);
                self.pending.retain(|_, pending| pending.client != client);
                self.watches.forget(client);
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Submit { tag, payload } => {
                self.c.requests_budget.give(payload.len());
                self.step(Input::Submit { tag, payload })
            }
            Request::Status(reply) => {
                // A warm member's digest is only comparable once it applied its tail.
                self.c.core.catch_up();
                let _ = reply.try_send(self.c.core.status());
            }
            Request::Metrics(reply) => {
                let status = self.c.core.status();
                let _ = reply.try_send(self.metrics(&status));
            }
            Request::ReopenDeliveryLog(reply) => {
                if let Some(log) = &mut self.c.delivery_log {
                    log.reopen();
                }
                let _ = reply.try_send(self.c.delivery_log.is_some());
            }
        }
    }

    /// A new universe (docs/PROTOCOL.md §5.9): its addresses replace the peer list that the
    /// event loop dials and accepts, and that `Members` reports. `harness member` stores
    /// resolved `IP:PORT` addresses, so nothing here waits for a name lookup; this member keeps
    /// listening where it started (a changed own address takes effect at its restart).
    fn on_universe(&mut self, universe: &crate::replication::Universe) {
        let own = self.c.peers.get(&self.me.id).copied();
        let mut peers = BTreeMap::new();
        for (&id, addr) in &universe.members {
            match (id == self.me.id, own, addr.parse::<SocketAddr>()) {
                (true, Some(own), _) => {
                    peers.insert(id, own);
                }
                (_, _, Ok(addr)) => {
                    peers.insert(id, addr);
                }
                (_, _, Err(_)) => {
                    log::warn!(
                        "{} protocol: member {id}'s address {addr:?} is not IP:PORT; not dialled",
                        self.me
                    )
                }
            }
        }
        self.c.peers = peers.clone();
        self.c.io.send(Command::SetPeers { peers });
    }

    fn execute(&mut self, output: Output) {
        match output {
            Output::Send { to, frame } => {
                let mut bytes = Vec::new();
                wire::encode_peer_in(self.versions.of_link(to), &frame, &mut bytes);
                self.c.io.send(Command::SendPeer { to, bytes });
            }
            Output::Connect { peer } => {
                self.c.io.send(Command::Connect { peer });
            }
            Output::Disconnect { peer } => {
                self.c.io.send(Command::Disconnect { peer });
            }
            Output::Deliver(delivery) => {
                if let Some(log) = &mut self.c.delivery_log {
                    log.append(&delivery, Instant::now());
                }
                if self.c.hand_over_deliveries {
                    let tx = self.c.deliveries.clone();
                    let bytes = delivery.message.payload.len();
                    self.wait_for_bytes(&tx, Queued::Deliveries, bytes);
                    self.hand_over(&tx, delivery);
                    self.deliveries_queued.sent(bytes);
                }
            }
            Output::Commit(commit) => {
                if self.store_broken {
                    return;
                }
                // Persist before acknowledging: with fsync the storage thread syncs the commands
                // of this step (and of any step before its sync) and then releases them.
                if self.c.fsync && self.c.storage.is_some() {
                    self.awaiting_sync.push_back(commit);
                } else {
                    self.acknowledge(commit);
                }
            }
            Output::Rejected { tag, reason } => {
                if let Some(Pending { client, request, .. }) = self.pending.remove(&tag) {
                    let (code, message) = match reason {
                        RejectReason::Busy => {
                            Counters::bump(&self.c.counters.busy_replies);
                            (ErrorCode::Busy, "the submit queue is full; retry later")
                        }
                        RejectReason::ShuttingDown => (ErrorCode::ShuttingDown, "the node is leaving"),
                        RejectReason::TooLarge => {
                            let max = self.c.payload_bytes_max;
                            let message = format!("the payload exceeds this node's maximum of {max} bytes");
                            self.reply(
                                client,
                                &ClientReply::Error { request, code: ErrorCode::BadRequest, message },
                            );
                            return;
                        }
                        RejectReason::Excluded => {
                            (ErrorCode::NoQuorum, "this member was cut off from the primary view; retry")
                        }
                        RejectReason::ViewChange => (
                            ErrorCode::NoQuorum,
                            "this member's view change did not end in time (never ordered); retry another member",
                        ),
                        RejectReason::QuorumLoss => (
                            ErrorCode::Refused,
                            "the removal would leave fewer members in the view than a quorum of the \
                             new universe; start the missing members (or remove a dead one) first",
                        ),
                        RejectReason::OutcomeUnknown => (
                            ErrorCode::OutcomeUnknown,
                            "this member lost its place in the primary view after ordering the request; \
                             it may or may not have committed",
                        ),
                    };
                    self.reply(client, &ClientReply::Error { request, code, message: message.into() });
                } else if let Some(tx) = self.c.rejections.clone() {
                    self.hand_over(&tx, Rejection { tag, reason });
                } else {
                    log::warn!("{} protocol: submission {tag} rejected: {reason:?}", self.me);
                }
            }
            Output::ReadReady { tag, upto } => self.on_read_ready(tag, upto),
            Output::Left => {
                log::info!("{} protocol: left the group", self.me);
                if !self.c.core.universe().members.contains_key(&self.me.id) {
                    // Removed from the universe (docs/PROTOCOL.md §5.9): nothing will let this
                    // member in again, so it stops as if a client had asked it to leave.
                    log::warn!("{} protocol: removed from the cluster; stopping", self.me);
                    self.c.left_by_request.store(true, std::sync::atomic::Ordering::Relaxed);
                    self.stopping = true;
                }
            }
            Output::Universe(universe) => self.on_universe(&universe),
            Output::Forced { tag, outcome } => {
                if let Some(Pending { client, request, .. }) = self.pending.remove(&tag) {
                    let reply = match outcome {
                        ForceOutcome::Formed(report) => ClientReply::Forced { request, formed: true, report },
                        ForceOutcome::DryRun(report) | ForceOutcome::NotNeeded(report) => {
                            ClientReply::Forced { request, formed: false, report }
                        }
                        ForceOutcome::Refused(message) => {
                            ClientReply::Error { request, code: ErrorCode::Refused, message }
                        }
                    };
                    self.reply(client, &reply);
                }
            }
            Output::Persist(message) => {
                self.appended = true;
                self.hand_to_storage(Job::Append(message));
            }
            Output::Checkpoint(checkpoint) if self.c.durable => {
                self.hand_to_storage(Job::Checkpoint { checkpoint, replaces: false })
            }
            Output::Restored(checkpoint) if self.c.durable => {
                self.hand_to_storage(Job::Checkpoint { checkpoint, replaces: true })
            }
            // Without durability the core keeps its checkpoint; nothing is written.
            Output::Checkpoint(_) | Output::Restored(_) => {}
            Output::Discard(discarded) => self.hand_to_storage(Job::Discard(discarded)),
            Output::ViewChange(view) => {
                let ring: Vec<String> = view.ring.iter().map(|m| m.to_string()).collect();
                log::info!(
                    "{} protocol: view {} installed, ring [{}], primary {}",
                    self.me,
                    view.view,
                    ring.join(" "),
                    view.primary
                );
                let state = if view.primary { "primary" } else { "not primary" };
                let ids: Vec<String> = view.ring.iter().map(|m| m.id.0.to_string()).collect();
                let status = format!("view {} {state}, ring [{}]", view.view, ids.join(" "));
                self.c.notify.on_view(&status, view.primary);
            }
        }
    }

    /// Durable state cannot be written: nothing more may be acknowledged, so the node stops and
    /// says why (the others carry on without it).
    fn store_failed(&mut self, e: Error) {
        log::error!("{} protocol: durable state cannot be written ({e}); stopping", self.me);
        self.c.storage = None;
        self.awaiting_sync.clear();
        self.store_broken = true;
        self.stopping = true;
    }

    /// Acknowledges a commit: the client's reply and the embedder's commit.
    fn acknowledge(&mut self, mut commit: Commit) {
        if let Some(pending) = commit.tag.and_then(|tag| self.pending.remove(&tag)) {
            self.on_committed(pending, &commit);
            // The tag belongs to the client connection, not to the embedder.
            commit.tag = None;
        }
        if let Some(tx) = self.c.commits.clone() {
            let bytes = commit.result.len();
            self.wait_for_bytes(&tx, Queued::Commits, bytes);
            self.hand_over(&tx, commit);
            self.commits_queued.sent(bytes);
        }
    }

    /// Waits until the embedder channel `tx` holds few enough bytes to take `bytes` more
    /// (`NodeOptions::deliveries_bytes_max`, `commits_bytes_max`), under the same slow-consumer
    /// policy as `hand_over`: the node stops taking part until the embedder catches up or stops it.
    fn wait_for_bytes<T>(&mut self, tx: &Sender<T>, which: Queued, bytes: usize) {
        let max = match which {
            Queued::Deliveries => self.c.deliveries_bytes_max,
            Queued::Commits => self.c.commits_bytes_max,
        };
        let mut logged = false;
        // Ends when the embedder has taken enough, or when the node is told to stop.
        while !self.stopping {
            let queued = match which {
                Queued::Deliveries => self.deliveries_queued.queued(tx.len()),
                Queued::Commits => self.commits_queued.queued(tx.len()),
            };
            if queued == 0 || queued + bytes <= max {
                return;
            }
            if !logged {
                // Let what is already queued go out before this thread waits.
                self.c.io.wake();
                log::debug!("{} protocol: an embedder channel holds {queued} bytes; waiting", self.me);
                logged = true;
            }
            select! {
                recv(self.c.stop) -> _ => self.stopping = true,
                default(EMBEDDER_POLL) => {},
            }
        }
    }

    /// Hands an item to an embedder channel, waiting for room (the slow-consumer policy in
    /// `node`'s module doc) unless the node is stopping.
    fn hand_over<T>(&mut self, tx: &Sender<T>, item: T) {
        match tx.try_send(item) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) if self.stopping => {}
            Err(TrySendError::Full(item)) => {
                // Let what is already queued go out before this thread waits.
                self.c.io.wake();
                log::debug!("{} protocol: an embedder channel is full; waiting", self.me);
                select! {
                    send(tx, item) -> _ => {},
                    recv(self.c.stop) -> _ => self.stopping = true,
                }
            }
        }
    }
}
