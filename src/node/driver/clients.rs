//! The protocol thread's side of the client protocol (docs/PROTOCOL.md §8): requests become
//! submissions to the ring, local reads, watches or reports, and commits become replies.
//!
//! Writes and linearizable reads are ordered through the ring: the command is submitted like any
//! message and answered with the state machine's outcome when it commits, so a read sees every
//! write committed before it was sent. A member in a view change of a primary view holds them
//! until the next view installs (bounded by the core, docs/PROTOCOL.md §8.1); a member outside
//! a primary view refuses them at once with `NoQuorum` (the client fails over) instead of
//! queueing them until it rejoins. Stale reads are served from this member's state without the
//! ring. Linearizable reads (get and range without guards) wait for a read barrier instead of
//! being ordered: the token goes round the ring once, then this member's state answers
//! (docs/PROTOCOL.md §3, read barrier; §8.1).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Driver;
use crate::core::{Commit, Input};
use crate::ids::NodeId;
use crate::replication::{Action, Command, Op, Outcome};
use crate::transport::ClientId;
use crate::wire::{
    self, ClientReply, ClientRequest, Consistency, ErrorCode, MemberInfo, NodeStatus, Payload, StandbyRole,
};

/// How a pending submission is answered when it commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// A raw broadcast: `Committed`.
    Broadcast,
    /// A state machine command: `Executed` with its outcome.
    Execute,
    /// A forced recovery: `Forced` with the report, or `Error` when refused.
    Force,
    /// A linearizable read waiting for its read barrier: `Executed` from this member's state
    /// once the barrier passed (docs/PROTOCOL.md §3, read barrier).
    Read(Box<Command>),
}

/// A client submission waiting for its commit.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    pub(super) client: ClientId,
    pub(super) request: u64,
    pub(super) answer: Answer,
}

/// The window over which the token rotation rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Samples are taken at most this often.
const RATE_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// Token rotations per second over the last `RATE_WINDOW`, for status reports.
#[derive(Default)]
pub(super) struct RotationRate {
    samples: VecDeque<(Instant, u64)>,
}

impl RotationRate {
    /// Records the rotations seen by `now`.
    pub(super) fn sample(&mut self, now: Instant, rotations: u64) {
        // The count restarts with every view; samples from before are not comparable.
        if self.samples.back().is_some_and(|(_, last)| rotations < *last) {
            self.samples.clear();
        }
        if self.samples.back().is_some_and(|(at, _)| now.duration_since(*at) < RATE_SAMPLE_INTERVAL) {
            return;
        }
        self.samples.push_back((now, rotations));
        while self.samples.len() > 2
            && self.samples.front().is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Rotations per second in thousandths; 0 until two samples exist.
    pub(super) fn millihertz(&self) -> u64 {
        let (Some((first_at, first)), Some((last_at, last))) = (self.samples.front(), self.samples.back())
        else {
            return 0;
        };
        let elapsed = last_at.duration_since(*first_at).as_millis() as u64;
        if elapsed == 0 {
            return 0;
        }
        last.saturating_sub(*first).saturating_mul(1_000_000) / elapsed
    }
}

impl Driver {
    pub(super) fn on_client_request(&mut self, client: ClientId, request: ClientRequest) {
        match request {
            ClientRequest::Broadcast { request, payload } => {
                self.submit(Pending { client, request, answer: Answer::Broadcast }, payload)
            }
            ClientRequest::Status { request } => {
                let status = self.node_status();
                self.reply(client, &ClientReply::Status { request, status });
            }
            ClientRequest::Execute { request, consistency, command } => {
                self.on_execute(client, request, consistency, command)
            }
            ClientRequest::Watch { request, prefix, from } => match self
                .watches
                .watch(client, request, prefix, from)
            {
                Ok(replies) => replies.iter().for_each(|reply| self.reply(client, reply)),
                Err((code, message)) => self.reply(client, &ClientReply::Error { request, code, message }),
            },
            ClientRequest::Members { request } => {
                let members = self.member_infos();
                self.reply(client, &ClientReply::Members { request, members });
            }
            ClientRequest::ForcePrimary { request, confirm } => {
                log::warn!("{} protocol: a client asks for a forced primary (confirm {confirm})", self.me);
                let tag = self.c.tags.fetch_add(1, Ordering::Relaxed);
                self.pending.insert(tag, Pending { client, request, answer: Answer::Force });
                self.step(Input::Force { tag, confirm });
            }
            ClientRequest::Leave { request } => {
                log::info!("{} protocol: a client asked this member to leave", self.me);
                self.reply(client, &ClientReply::Leaving { request });
                self.c.left_by_request.store(true, Ordering::Relaxed);
                self.stopping = true;
            }
        }
    }

    fn on_execute(&mut self, client: ClientId, request: u64, consistency: Consistency, bytes: Payload) {
        let command = match Command::decode(&bytes) {
            Ok(command) => command,
            Err(e) => {
                let message = format!("not a valid command: {e}");
                return self
                    .reply(client, &ClientReply::Error { request, code: ErrorCode::BadRequest, message });
            }
        };
        if matches!(command.action, Action::Vote { .. }) {
            let message = "votes are cast by members, not clients".to_string();
            return self.reply(client, &ClientReply::Error { request, code: ErrorCode::BadRequest, message });
        }
        if self.c.core.is_witness() {
            // A witness orders nothing and holds no state (docs/PROTOCOL.md §5.7).
            let message = "this member is a witness: it holds no state; use another member".to_string();
            return self.reply(client, &ClientReply::Error { request, code: ErrorCode::NoQuorum, message });
        }
        if consistency == Consistency::Stale {
            let reply = match self.read_locally(&command) {
                Ok(outcome) => ClientReply::Executed { request, seq: 0, outcome: outcome.encode().into() },
                Err(message) => ClientReply::Error { request, code: ErrorCode::BadRequest, message },
            };
            return self.reply(client, &reply);
        }
        if !self.c.core.serves_submissions(self.now()) {
            // docs/PROTOCOL.md §8.1: refused at once, with why the last attempt made no primary.
            let (code, message) = match self.c.core.shortfall() {
                Some(Err(replicas)) => (ErrorCode::NotEnoughReplicas, replicas),
                Some(Ok(quorum)) => (
                    ErrorCode::NoQuorum,
                    format!("this member is not in a primary view ({quorum}); try another member"),
                ),
                None => {
                    (ErrorCode::NoQuorum, "this member is not in a primary view; try another member".into())
                }
            };
            return self.reply(client, &ClientReply::Error { request, code, message });
        }
        if !self.c.fsync && read_only(&command).is_ok() {
            // With `--durability fsync` a read must not see a commit before it is synced, so it
            // is ordered after it instead (its own acknowledgement waits for the sync).
            let tag = self.c.tags.fetch_add(1, Ordering::Relaxed);
            self.pending.insert(tag, Pending { client, request, answer: Answer::Read(Box::new(command)) });
            return self.step(Input::Read { tag });
        }
        self.submit(Pending { client, request, answer: Answer::Execute }, bytes);
    }

    /// The read barrier of a pending read passed: answers it from this member's state, which
    /// holds every commit acknowledged before the read arrived (docs/PROTOCOL.md §3). A warm
    /// member that cannot apply its tail in one slice orders the read instead, so no step is
    /// longer than a slice (§5.1).
    pub(super) fn on_read_ready(&mut self, tag: u64, upto: crate::ids::Seq) {
        let Some(Pending { client, request, answer: Answer::Read(command) }) = self.pending.remove(&tag)
        else {
            return;
        };
        let reply = match self.read_locally(&command) {
            Ok(_) if self.c.core.applied_upto() < upto => {
                // Ordered after this step's outputs, so they keep their order.
                let pending = Pending { client, request, answer: Answer::Execute };
                return self.reads_to_order.push((pending, command.encode().into()));
            }
            Ok(outcome) => ClientReply::Executed { request, seq: upto, outcome: outcome.encode().into() },
            Err(message) => ClientReply::Error { request, code: ErrorCode::BadRequest, message },
        };
        self.reply(client, &reply);
    }

    /// Serves a read-only command (a transaction of get and range ops, without guards) from this
    /// member's state.
    fn read_locally(&mut self, command: &Command) -> Result<Outcome, String> {
        let then = read_only(command)?;
        let Some(state) = self.c.core.machine_mut().as_dvm_mut() else {
            return Err("this node runs no key-value state".into());
        };
        let reads = then
            .iter()
            .map(|op| match op {
                Op::Get { key } => crate::replication::Read::Get(state.get(key)),
                Op::Range { prefix, limit } => state.range(prefix, *limit),
                Op::Put { .. } | Op::Delete { .. } => unreachable!("checked read-only above"),
            })
            .collect();
        Ok(Outcome::Ok { revision: state.revision(), deleted: 0, reads })
    }

    pub(super) fn submit(&mut self, pending: Pending, payload: Payload) {
        let tag = self.c.tags.fetch_add(1, Ordering::Relaxed);
        self.pending.insert(tag, pending);
        self.step(Input::Submit { tag, payload });
    }

    pub(super) fn on_committed(&mut self, pending: Pending, commit: &Commit) {
        let Pending { client, request, answer } = pending;
        let reply = match answer {
            // A read is answered at its barrier; it never commits.
            Answer::Read(_) => return,
            Answer::Broadcast => ClientReply::Committed { request, seq: commit.seq },
            Answer::Execute => {
                ClientReply::Executed { request, seq: commit.seq, outcome: commit.result.clone().into() }
            }
            Answer::Force => return,
        };
        self.reply(client, &reply);
    }

    /// Hands the changes of the last step to the watches and their history.
    pub(super) fn stream_changes(&mut self) {
        // A warm standby applies commands only when it must; with nobody watching it need not
        // catch up now. Its journal is drained all the same: the changes it applied on its own
        // (at a checkpoint, or for its own submitter's result) would otherwise pile up in the
        // journal for as long as nobody watches (docs/PROTOCOL.md §2.2, the watch history).
        let machine = if self.c.core.is_hot() || !self.watches.is_idle() {
            self.c.core.machine_mut()
        } else {
            self.c.core.machine_as_applied()
        };
        let Some(state) = machine.as_dvm_mut() else { return };
        let changes = state.take_changes();
        let revision = state.revision();
        for (client, reply) in self.watches.on_changes(changes, revision) {
            self.reply(client, &reply);
        }
    }

    pub(super) fn reply(&mut self, client: ClientId, reply: &ClientReply) {
        let mut bytes = Vec::new();
        wire::encode_reply_in(self.versions.of_client(client), reply, &mut bytes);
        self.c.io.send(crate::transport::Command::SendClient { client, bytes });
    }

    /// Every configured member as this one sees it: its place and role in the view, and its
    /// received prefix as the token last carried it (docs/PROTOCOL.md §8). Nothing is asked of
    /// the others, so the answer costs the same at 3 members or 256.
    fn member_infos(&self) -> Vec<MemberInfo> {
        let primary = self.c.core.is_primary();
        let progress: BTreeMap<NodeId, (u64, u64)> = if primary {
            self.c.core.ring_progress().into_iter().map(|(m, seq)| (m.id, (m.incarnation, seq))).collect()
        } else {
            BTreeMap::new()
        };
        let hot = self.c.core.hot_ids();
        self.c
            .peers
            .iter()
            .map(|(&id, addr)| {
                let (incarnation, received_upto) = progress.get(&id).copied().unwrap_or((0, 0));
                let role = match (progress.contains_key(&id), hot.contains(&id)) {
                    (false, _) => StandbyRole::None,
                    (true, true) => StandbyRole::Hot,
                    (true, false) => StandbyRole::Warm,
                };
                MemberInfo { id, addr: addr.to_string(), incarnation, role, received_upto }
            })
            .collect()
    }

    /// The wire form of this member's status.
    fn node_status(&mut self) -> NodeStatus {
        // First: a warm member catches up, so the digest is of every commit it holds.
        let revision = self.c.core.machine_mut().as_dvm_mut().map_or(0, |state| state.revision());
        let status = self.c.core.status();
        let metrics = self.metrics(&status);
        let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        NodeStatus {
            member: status.member,
            view: status.view.view,
            primary: status.view.primary,
            role: match (status.view.primary, self.c.core.is_hot()) {
                _ if self.c.core.is_witness() => StandbyRole::Witness,
                (false, _) => StandbyRole::None,
                (true, true) => StandbyRole::Hot,
                (true, false) => StandbyRole::Warm,
            },
            ring: status.view.ring,
            delivered: status.delivered,
            committed_upto: status.committed_upto,
            state_digest: status.state_digest,
            delivery_digest: status.delivery_digest,
            rotations: status.rotations,
            revision,
            rotation_millihertz: self.rotation_rate.millihertz(),
            last_checkpoint: self.c.core.last_checkpoint(),
            replicas: count(status.replicas.in_view),
            configured: count(status.replicas.configured),
            min_replicas: count(status.replicas.needed),
            max_step_us: u64::try_from(self.max_step.as_micros()).unwrap_or(u64::MAX),
            state_bytes: self.c.core.state_bytes(),
            links_up: u32::try_from(self.c.core.link_counts().0).unwrap_or(u32::MAX),
            links_dialled: self.c.counters.dialled.load(Ordering::Relaxed),
            links_accepted: self.c.counters.links_accepted.load(Ordering::Relaxed),
            version: env!("CARGO_PKG_VERSION").into(),
            metrics,
        }
    }
}

/// The ops of a read-only command (a transaction of get and range ops, without guards), which
/// may be answered from a member's state.
fn read_only(command: &Command) -> Result<&[Op], String> {
    let Action::Txn { guards, then, otherwise } = &command.action else {
        return Err("a stale request must be a read (a transaction of get and range ops)".into());
    };
    let reads = then.iter().all(|op| matches!(op, Op::Get { .. } | Op::Range { .. }));
    if !guards.is_empty() || !otherwise.is_empty() || !reads {
        return Err("a stale read takes only get and range ops, without guards".into());
    }
    Ok(then)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotation_rate_is_measured_over_the_window() {
        let mut rate = RotationRate::default();
        let start = Instant::now();
        assert_eq!(rate.millihertz(), 0);
        for tenth in 0..=100u64 {
            // Four rotations per second, sampled every 100 ms.
            rate.sample(start + Duration::from_millis(tenth * 100), tenth * 4 / 10);
        }
        // Samples land every 300 ms, so the window's ends are not whole seconds apart.
        assert!((3800..=4200).contains(&rate.millihertz()), "{}", rate.millihertz());
        assert!(rate.samples.len() <= 22, "old samples are dropped: {}", rate.samples.len());
        // A new view counts from 0 again: the rate restarts instead of reading 0 for a window.
        let later = start + Duration::from_secs(11);
        rate.sample(later, 1);
        rate.sample(later + Duration::from_secs(1), 5);
        assert_eq!(rate.millihertz(), 4000);
    }
}
