//! `Replica`: the state machine of one member in its standby role, its last checkpoint and the
//! committed commands after it (guarantee 6 of docs/DESIGN.md §2, docs/PROTOCOL.md §7).
//!
//! A hot member applies every command as it commits (continuous service). A warm member only
//! appends it to the tail after its checkpoint and applies lazily, a slice at a time: once a
//! slice of commands (`APPLY_SLICE_COMMANDS` or `APPLY_SLICE_BYTES`) is waiting, or when it
//! needs a result (its own submission), a checkpoint, a status or a promotion. So whatever
//! makes a warm member catch up applies at most one slice in that step, never its whole tail,
//! and its machine is always the state after a prefix of the history: promotion applies the
//! rest of the slice and serves exactly the state every hot member has. Every member
//! checkpoints every `checkpoint_every` commits or `checkpoint_interval`: a checkpoint is the
//! state after a prefix of the history, and with the tail after it, it is what state transfer
//! and durable storage hold. The replica is pure: it returns checkpoints for the core to
//! output; it never writes.
//!
//! A checkpoint is a frozen view of the machine (O(1): its maps are persistent), so taking one,
//! rolling back to one and installing a donor's cost no time proportional to the state on the
//! protocol thread; the node's storage thread encodes and writes it. What the replica lets go
//! of (a replaced state, an old checkpoint, a tail) is not freed here either: freeing gigabytes
//! takes time proportional to them, so it is handed out as `Discarded` for the driver to free
//! off the protocol thread (docs/PROTOCOL.md §5.1, §7).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use super::universe::Universe;
use super::{Frozen, StateMachine};
use crate::error::DecodeError;
use crate::ids::{NodeId, Seq};
use crate::time::Time;
use crate::wire::Message;

/// The state after a prefix of the history.
#[derive(Clone)]
pub struct Checkpoint {
    /// The last seq the state includes.
    pub seq: Seq,
    /// The machine's state, frozen.
    pub state: Frozen,
}

impl Checkpoint {
    /// The checkpoint of `state` at `seq`.
    pub fn new(seq: Seq, state: Frozen) -> Checkpoint {
        Checkpoint { seq, state }
    }
}

/// Two checkpoints are equal when they name the same prefix and hold states with equal digests.
impl PartialEq for Checkpoint {
    fn eq(&self, other: &Checkpoint) -> bool {
        self.seq == other.seq && self.state.state_digest() == other.state.state_digest()
    }
}

impl Eq for Checkpoint {}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Checkpoint {{ seq: {}, digest: {:016x}, bytes: {} }}",
            self.seq,
            self.state.state_digest(),
            self.state.encoded_bytes()
        )
    }
}

/// Bytes of committed commands a member keeps after its checkpoint before it takes the next one
/// whatever the count: the tail is held in memory and served to members catching up.
pub const TAIL_BYTES_MAX: u64 = 64 << 20;

/// Bytes a member counts for each message it holds beyond its payload (seq, id, attempt, and the
/// container's share), so that a retained log of tiny messages is bounded too.
const MESSAGE_OVERHEAD_BYTES: u64 = 64;

/// The least a member keeps of the committed log before its checkpoint while a catch-up pins it:
/// two checkpoint intervals of the byte trigger (docs/PROTOCOL.md §5.3, "Learning the log").
pub const CATCH_UP_LOG_BYTES_MIN: u64 = 2 * TAIL_BYTES_MAX;

/// Committed commands a warm member leaves unapplied before it applies them, so that no step
/// applies more than this many (docs/PROTOCOL.md §5.1, §7).
pub const APPLY_SLICE_COMMANDS: u64 = 256;
/// Payload bytes of committed commands a warm member leaves unapplied before it applies them.
pub const APPLY_SLICE_BYTES: u64 = 1 << 20;

/// Memory the core no longer needs (a replaced state, an old checkpoint, a tail), handed to the
/// driver to free off the protocol thread: freeing a large state takes time proportional to it
/// (docs/PROTOCOL.md §5.1). Dropping it anywhere is correct; only where it is dropped matters.
#[derive(Default)]
pub struct Discarded(Vec<Box<dyn Send>>);

impl Discarded {
    /// Adds something to free.
    pub(crate) fn push(&mut self, item: impl Send + 'static) {
        self.0.push(Box::new(item));
    }

    /// Whether there is nothing to free.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Discarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Discarded({} items)", self.0.len())
    }
}

/// When checkpoints are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many commits since the last checkpoint.
    pub every_commits: u64,
    /// Or once this long has passed since the last one, if anything committed.
    pub interval: Duration,
    /// Or once the commands since the last one hold this many payload bytes.
    pub tail_bytes_max: u64,
}

/// What a promotion did, for the log and the measurements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// The last seq the warm member had applied.
    pub applied: Seq,
    /// Commands it applied to serve the whole committed prefix (at most one slice).
    pub replayed: u64,
}

/// The hot members of a view: the `hot` lowest ids among its members. Lowest ids, not ring
/// positions, so that a view change that only reorders the ring (a new coordinator) moves no role.
pub fn hot_members(members: &[NodeId], hot: usize) -> Vec<NodeId> {
    let mut ids = members.to_vec();
    ids.sort();
    ids.dedup();
    ids.truncate(hot.max(1));
    ids
}

/// One member's machine, role, checkpoint and tail.
pub(crate) struct Replica {
    machine: Box<dyn StateMachine>,
    hot: bool,
    checkpoint: Checkpoint,
    /// Committed messages after the checkpoint, contiguous in seq order.
    tail: Vec<Message>,
    /// Their payload bytes.
    tail_bytes: u64,
    /// Committed messages before the checkpoint still held, contiguous and ending at it: the
    /// tail of the checkpoint before, so that a member that caught up to that one can still be
    /// given the log after it, and while a catch-up pins it, everything after the pinned seq
    /// within `retained_bytes_max` (docs/PROTOCOL.md §5.3).
    retained: VecDeque<Message>,
    /// Their bytes, each message counted with `MESSAGE_OVERHEAD_BYTES`.
    retained_bytes: u64,
    /// The machine holds the state after this seq (at least the checkpoint's).
    applied: Seq,
    /// Payload bytes of the tail's commands after `applied`.
    unapplied_bytes: u64,
    /// What was let go of since the core last took it.
    discarded: Discarded,
    policy: CheckpointPolicy,
    checkpoint_at: Time,
    /// The empty state, to forget the history with.
    empty: Frozen,
    /// The universe after the last commit held (docs/PROTOCOL.md §5.9), tracked from every
    /// commit whether or not the machine applied it yet.
    universe: Universe,
    /// Whether `universe` changed since the core last took it.
    universe_changed: bool,
}

impl Replica {
    /// A replica whose history is empty. It starts hot, so that a lone member serves at once;
    /// the first view sets its role.
    pub(crate) fn new(machine: Box<dyn StateMachine>, policy: CheckpointPolicy) -> Replica {
        let empty = machine.freeze();
        Replica {
            machine,
            hot: true,
            checkpoint: Checkpoint::new(0, empty.clone()),
            tail: Vec::new(),
            tail_bytes: 0,
            retained: VecDeque::new(),
            retained_bytes: 0,
            applied: 0,
            unapplied_bytes: 0,
            discarded: Discarded::default(),
            policy,
            checkpoint_at: Time::ZERO,
            empty,
            universe: Universe::default(),
            universe_changed: false,
        }
    }

    /// The universe as of the last commit this replica holds.
    pub(crate) fn universe(&self) -> &Universe {
        &self.universe
    }

    /// Starts from a universe that was never committed here: the seed list of a brand-new
    /// cluster, or what a joiner was told by a member.
    pub(crate) fn seed_universe(&mut self, universe: Universe) {
        self.universe = universe;
    }

    /// The universe, if it changed since the last call.
    pub(crate) fn take_universe_change(&mut self) -> Option<Universe> {
        std::mem::take(&mut self.universe_changed).then(|| self.universe.clone())
    }

    /// Whether this member applies every command as it commits.
    pub(crate) fn is_hot(&self) -> bool {
        self.hot
    }

    /// The last seq the machine applied.
    pub(crate) fn applied(&self) -> Seq {
        self.applied
    }

    /// The last committed seq this replica holds (applied or in the tail).
    pub(crate) fn committed(&self) -> Seq {
        self.checkpoint.seq + self.tail.len() as u64
    }

    pub(crate) fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    pub(crate) fn machine_mut(&mut self) -> &mut dyn StateMachine {
        self.machine.as_mut()
    }

    pub(crate) fn digest(&self) -> u64 {
        self.machine.digest()
    }

    /// The bytes of the applied state's encoding.
    pub(crate) fn state_bytes(&self) -> u64 {
        self.machine.freeze().encoded_bytes()
    }

    /// The first seq after which this replica holds every committed message.
    pub(crate) fn retained_from(&self) -> Seq {
        self.retained.front().map_or(self.checkpoint.seq, |m| m.seq - 1)
    }

    /// Committed messages in `(after, upto]` held in the tail (or retained before it), at most
    /// `count_max`.
    pub(crate) fn tail_range(&self, after: Seq, upto: Seq, count_max: usize) -> Vec<Message> {
        if after < self.checkpoint.seq && after >= self.retained_from() {
            let skip = (after - self.retained_from()) as usize;
            let held = self.retained.range(skip..);
            let mut messages: Vec<Message> =
                held.take_while(|m| m.seq <= upto).take(count_max).cloned().collect();
            let more = count_max - messages.len();
            if more > 0 && upto > self.checkpoint.seq {
                messages.extend(self.tail_range(self.checkpoint.seq, upto, more));
            }
            return messages;
        }
        let first = after.max(self.checkpoint.seq) - self.checkpoint.seq;
        let last = upto.min(self.committed()).saturating_sub(self.checkpoint.seq);
        if first >= last {
            return Vec::new();
        }
        self.tail[first as usize..last as usize].iter().take(count_max).cloned().collect()
    }

    /// Records the committed `message` (the next seq) and returns the machine's result when this
    /// member applied it: always when hot, and when warm only if `want_result`. A warm member
    /// applies what waits once it is a whole slice, so no catch-up ever applies more.
    pub(crate) fn commit(&mut self, message: Message, want_result: bool) -> Option<Vec<u8>> {
        assert_eq!(message.seq, self.committed() + 1, "commits reach the replica in seq order");
        if let Some(next) = self.universe.after(&message.payload) {
            self.universe = next;
            self.universe_changed = true;
        }
        self.tail_bytes += message.payload.len() as u64;
        self.unapplied_bytes += message.payload.len() as u64;
        self.tail.push(message);
        if self.hot || want_result {
            return self.catch_up();
        }
        let waiting = self.committed() - self.applied;
        if waiting >= APPLY_SLICE_COMMANDS || self.unapplied_bytes >= APPLY_SLICE_BYTES {
            self.catch_up();
        }
        None
    }

    /// Applies the tail up to the last commit (at a warm member, at most one slice and the
    /// commits of the current step); returns the last result if anything was applied.
    pub(crate) fn catch_up(&mut self) -> Option<Vec<u8>> {
        let mut result = None;
        let from = (self.applied - self.checkpoint.seq) as usize;
        for message in &self.tail[from..] {
            result = Some(self.machine.apply(message.seq, message.id, &message.payload));
            self.applied = message.seq;
        }
        self.unapplied_bytes = 0;
        result
    }

    /// Sets the role. A warm member becoming hot applies what it has not yet applied: its
    /// machine is the state after a prefix of the history (it applies nothing else, in order),
    /// so no rollback to the checkpoint is needed, and the rest is at most one slice.
    pub(crate) fn set_hot(&mut self, hot: bool) -> Option<Promotion> {
        let promoted = hot && !self.hot;
        self.hot = hot;
        if !promoted {
            return None;
        }
        let applied = self.applied;
        self.catch_up();
        Some(Promotion { applied, replayed: self.applied - applied })
    }

    /// Hands `item` out with what the replica discards, to be freed off the protocol thread.
    pub(crate) fn discard(&mut self, item: impl Send + 'static) {
        self.discarded.push(item);
    }

    /// What was let go of since the last call, to be freed off the protocol thread.
    pub(crate) fn take_discarded(&mut self) -> Option<Discarded> {
        if self.discarded.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.discarded))
        }
    }

    /// Takes a checkpoint if one is due at `now`; the caller outputs it. `pin`: the lowest seq
    /// after which a member catching up from this one still needs the log, if any.
    pub(crate) fn checkpoint_if_due(&mut self, now: Time, pin: Option<Seq>) -> Option<Checkpoint> {
        let since = self.tail.len() as u64;
        let due = since >= self.policy.every_commits.max(1)
            || self.tail_bytes >= self.policy.tail_bytes_max
            || (since > 0 && now >= self.checkpoint_at + self.policy.interval);
        if !due {
            return None;
        }
        self.catch_up();
        let old =
            std::mem::replace(&mut self.checkpoint, Checkpoint::new(self.applied, self.machine.freeze()));
        // What only the old checkpoint holds (every page written since) is freed elsewhere.
        self.discarded.push(old.state);
        for message in std::mem::take(&mut self.tail) {
            self.retained_bytes += held_bytes(&message);
            self.retained.push_back(message);
        }
        self.tail_bytes = 0;
        self.trim_retained(old.seq, pin);
        self.checkpoint_at = now;
        Some(self.checkpoint.clone())
    }

    /// Drops retained messages that neither the interval before the last checkpoint (those after
    /// `previous`) nor a catch-up's pin needs, and those the pin needs beyond
    /// `retained_bytes_max`. At most one interval's worth is dropped per checkpoint unless a pin
    /// lapsed, and the messages are freed off the protocol thread.
    fn trim_retained(&mut self, previous: Seq, pin: Option<Seq>) {
        let keep_after = pin.map_or(previous, |pin| pin.min(previous));
        let bytes_max = self.retained_bytes_max();
        let mut dropped = Vec::new();
        while let Some(front) = self.retained.front() {
            let needed = front.seq > previous || (front.seq > keep_after && self.retained_bytes <= bytes_max);
            if needed {
                break;
            }
            self.retained_bytes -= held_bytes(front);
            dropped.extend(self.retained.pop_front());
        }
        if !dropped.is_empty() {
            self.discarded.push(dropped);
        }
    }

    /// How many bytes of log a catch-up may pin before the checkpoint: half the state, and at
    /// least `CATCH_UP_LOG_BYTES_MIN` (docs/PROTOCOL.md §5.3, "Learning the log").
    pub(crate) fn retained_bytes_max(&self) -> u64 {
        (self.checkpoint.state.encoded_bytes() / 2).max(CATCH_UP_LOG_BYTES_MIN)
    }

    /// When a time-based checkpoint is next due.
    pub(crate) fn next_deadline(&self) -> Time {
        if self.tail.is_empty() {
            Time::NEVER
        } else {
            self.checkpoint_at + self.policy.interval
        }
    }

    /// Replaces everything with a checkpoint from a donor or from disk. The machine is restored
    /// first, so a checkpoint that does not restore changes nothing. The state it replaces is
    /// discarded, not freed here (it may be gigabytes).
    pub(crate) fn restore(&mut self, checkpoint: Checkpoint, now: Time) -> Result<(), DecodeError> {
        // A frozen copy keeps the old state alive past `thaw`, so that it is freed elsewhere.
        let old = self.machine.freeze();
        self.machine.thaw(&checkpoint.state)?;
        self.discarded.push(old);
        // Epochs grow along the one history, so the newer of the two is kept: a state from before
        // a change this member already knows of (or from before the first change) leaves it, and
        // the commits after the state re-apply nothing older (their epochs are refused).
        if let Some(universe) = self.machine.universe().filter(|u| u.epoch > self.universe.epoch) {
            self.universe = universe;
            self.universe_changed = true;
        }
        self.applied = checkpoint.seq;
        self.unapplied_bytes = 0;
        let old = std::mem::replace(&mut self.checkpoint, checkpoint);
        self.discarded.push(old.state);
        self.discarded.push(std::mem::take(&mut self.tail));
        self.discarded.push(std::mem::take(&mut self.retained));
        self.tail_bytes = 0;
        self.retained_bytes = 0;
        self.checkpoint_at = now;
        Ok(())
    }

    /// A builder for this machine's encoding (a state transfer decodes into it chunk by chunk).
    pub(crate) fn builder(&self) -> Box<dyn super::Builder> {
        self.machine.builder()
    }

    /// Forgets the history: the member rejoins as a new incarnation and will be given one.
    pub(crate) fn reset(&mut self, now: Time) {
        let empty = Checkpoint::new(0, self.empty.clone());
        if let Err(e) = self.restore(empty, now) {
            panic!("the machine's own empty snapshot does not restore: {e}");
        }
    }
}

/// The bytes a held message counts for.
fn held_bytes(message: &Message) -> u64 {
    message.payload.len() as u64 + MESSAGE_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MsgId;
    use crate::replication::kv::tests::random_command;
    use crate::replication::DvmState;
    use crate::rng::Rng;

    fn messages(count: u64, seed: u64) -> Vec<Message> {
        let mut rng = Rng::new(seed);
        (1..=count)
            .map(|seq| Message {
                seq,
                id: MsgId { origin: NodeId(1), incarnation: 1, counter: seq },
                attempt: 0,
                payload: random_command(&mut rng).encode().into(),
            })
            .collect()
    }

    fn replica(every_commits: u64) -> Replica {
        let policy = CheckpointPolicy {
            every_commits,
            interval: Duration::from_secs(3600),
            tail_bytes_max: TAIL_BYTES_MAX,
        };
        Replica::new(Box::new(DvmState::default()), policy)
    }

    #[test]
    fn a_warm_member_promoted_after_a_checkpoint_has_the_hot_members_state() {
        let (mut hot, mut warm) = (replica(64), replica(64));
        warm.set_hot(false);
        let mut checkpoints = 0;
        for (i, message) in messages(1000, 1).into_iter().enumerate() {
            let mine = i % 7 == 0;
            let hot_result = hot.commit(message.clone(), true).expect("hot applies");
            let warm_result = warm.commit(message, mine);
            if mine {
                assert_eq!(warm_result.as_ref(), Some(&hot_result), "a warm member's own result");
            } else {
                assert_eq!(warm_result, None, "a warm member applies lazily");
            }
            for r in [&mut hot, &mut warm] {
                if let Some(c) = r.checkpoint_if_due(Time::ZERO, None) {
                    assert_eq!(c.seq % 64, 0);
                    checkpoints += 1;
                }
            }
        }
        assert_eq!(checkpoints, 2 * (1000 / 64));
        assert_eq!(warm.checkpoint().seq, hot.checkpoint().seq);
        assert_eq!(warm.checkpoint(), hot.checkpoint(), "checkpoints are the state after one prefix");
        assert!(warm.applied() < 1000, "the warm member did not apply the last commands");
        let applied = warm.applied();
        let promotion = warm.set_hot(true).expect("promoted");
        assert_eq!(promotion, Promotion { applied, replayed: 1000 - applied });
        assert_eq!((warm.applied(), warm.digest()), (hot.applied(), hot.digest()));
        assert_eq!(warm.set_hot(true), None, "promoting a hot member does nothing");
    }

    /// PROTOCOL.md §5.1: whatever makes a warm member catch up (a checkpoint, a status, a
    /// promotion) applies at most one slice, however long its tail has grown.
    #[test]
    fn a_warm_member_applies_its_tail_a_slice_at_a_time_and_never_more_at_once() {
        let mut hot = replica(u64::MAX);
        let mut warm = replica(u64::MAX);
        warm.set_hot(false);
        let all = messages(3000, 5);
        for message in all.iter().cloned() {
            hot.commit(message.clone(), true);
            let before = warm.applied();
            warm.commit(message, false);
            let applied_now = warm.applied() - before;
            assert!(applied_now <= APPLY_SLICE_COMMANDS, "one commit applied {applied_now} commands");
            assert!(warm.committed() - warm.applied() < APPLY_SLICE_COMMANDS, "a slice at most waits");
        }
        assert_eq!(warm.checkpoint().seq, 0, "no checkpoint was due: the tail holds all 3000");
        assert!(warm.applied() >= 3000 - APPLY_SLICE_COMMANDS, "the tail was applied as it grew");
        let promotion = warm.set_hot(true).expect("promoted");
        assert!(promotion.replayed < APPLY_SLICE_COMMANDS, "{promotion:?}");
        assert_eq!((warm.applied(), warm.digest()), (hot.applied(), hot.digest()));
    }

    #[test]
    fn a_warm_member_applies_once_a_slice_of_bytes_waits() {
        let mut warm = replica(u64::MAX);
        warm.set_hot(false);
        let big = |seq: u64| Message {
            seq,
            id: MsgId { origin: NodeId(1), incarnation: 1, counter: seq },
            attempt: 0,
            payload: vec![0; (APPLY_SLICE_BYTES / 4) as usize].into(),
        };
        for seq in 1..=3 {
            warm.commit(big(seq), false);
            assert_eq!(warm.applied(), 0, "three quarters of a slice wait");
        }
        warm.commit(big(4), false);
        assert_eq!(warm.applied(), 4, "a whole slice of bytes is applied");
    }

    #[test]
    fn what_a_replica_lets_go_of_is_discarded_not_freed() {
        let mut r = replica(10);
        assert!(r.take_discarded().is_none());
        for message in messages(25, 6) {
            r.commit(message, true);
            r.checkpoint_if_due(Time::ZERO, None);
        }
        assert!(r.take_discarded().is_some(), "old checkpoints and tails");
        assert!(r.take_discarded().is_none(), "taken once");
        r.reset(Time::ZERO);
        assert!(r.take_discarded().is_some_and(|d| !d.is_empty()), "the state it forgot");
        assert_eq!((r.committed(), r.applied()), (0, 0));
    }

    #[test]
    fn the_tail_serves_every_range_after_the_checkpoint() {
        let mut r = replica(10);
        for message in messages(25, 2) {
            r.commit(message, false);
            r.checkpoint_if_due(Time::ZERO, None);
        }
        assert_eq!((r.checkpoint().seq, r.committed()), (20, 25));
        let seqs = |v: Vec<Message>| v.iter().map(|m| m.seq).collect::<Vec<_>>();
        assert_eq!(seqs(r.tail_range(0, 25, 100)), vec![21, 22, 23, 24, 25]);
        assert_eq!(seqs(r.tail_range(22, 24, 100)), vec![23, 24]);
        assert_eq!(seqs(r.tail_range(21, 30, 2)), vec![22, 23]);
        assert!(r.tail_range(25, 30, 100).is_empty());
        // The tail before the last checkpoint is kept too, for members caught up to it.
        assert_eq!(r.retained_from(), 10);
        assert_eq!(seqs(r.tail_range(12, 23, 100)), (13..=23).collect::<Vec<_>>());
        assert_eq!(seqs(r.tail_range(10, 30, 3)), vec![11, 12, 13]);
    }

    #[test]
    fn a_pin_keeps_the_log_after_it_within_the_byte_bound_and_its_end_frees_it() {
        let mut r = replica(10);
        let all = messages(80, 5);
        for message in all.iter().take(55).cloned() {
            r.commit(message, false);
            r.checkpoint_if_due(Time::ZERO, Some(12));
        }
        assert_eq!(r.checkpoint().seq, 50);
        assert_eq!(r.retained_from(), 12, "everything after the pin is kept");
        let seqs = |v: Vec<Message>| v.iter().map(|m| m.seq).collect::<Vec<_>>();
        assert_eq!(seqs(r.tail_range(12, 55, 100)), (13..=55).collect::<Vec<_>>());
        let held: u64 = all[12..50].iter().map(held_bytes).sum();
        assert_eq!(r.retained_bytes, held);
        // Without the pin, the next checkpoint keeps only the interval before it.
        for message in all.iter().skip(55).take(5).cloned() {
            r.commit(message, false);
            r.checkpoint_if_due(Time::ZERO, None);
        }
        assert_eq!((r.checkpoint().seq, r.retained_from()), (60, 50));
        // A pin past the byte bound does not hold the log: the bound wins.
        let mut small = replica(10);
        for message in all.iter().take(40).cloned() {
            small.commit(message, false);
            small.checkpoint_if_due(Time::ZERO, Some(0));
        }
        assert_eq!(small.retained_from(), 0, "far below the bound, the pin holds everything");
        assert!(small.retained_bytes_max() >= CATCH_UP_LOG_BYTES_MIN);
        // Pretend the held log is just over the bound: the oldest messages go until it is within.
        small.retained_bytes = small.retained_bytes_max() + 1;
        for message in all.iter().skip(40).take(10).cloned() {
            small.commit(message, false);
            small.checkpoint_if_due(Time::ZERO, Some(0));
        }
        assert!(small.retained_from() > 0, "over the bound, the pin does not hold the oldest");
        assert!(small.retained_from() < 40, "only as many go as the bound needs");
        assert!(small.retained_bytes <= small.retained_bytes_max());
    }

    #[test]
    fn a_restored_checkpoint_continues_like_its_donor_and_a_bad_one_changes_nothing() {
        let mut donor = replica(16);
        let all = messages(100, 3);
        for message in all.iter().take(40).cloned() {
            donor.commit(message, true);
            donor.checkpoint_if_due(Time::ZERO, None);
        }
        let mut joiner = replica(16);
        let before = joiner.digest();
        let bad = Checkpoint::new(7, std::sync::Arc::new(crate::replication::DigestLog::default()));
        assert!(joiner.restore(bad, Time::ZERO).is_err(), "another machine's state");
        assert_eq!((joiner.digest(), joiner.committed()), (before, 0));
        joiner.restore(donor.checkpoint().clone(), Time::ZERO).expect("restores");
        for message in donor.tail_range(0, 40, 100).into_iter().chain(all[40..].iter().cloned()) {
            joiner.commit(message, true);
        }
        for message in all[40..].iter().cloned() {
            donor.commit(message, true);
        }
        assert_eq!(joiner.digest(), donor.digest());
    }

    #[test]
    fn time_based_checkpoints_wait_for_a_commit_and_for_the_interval() {
        let policy = CheckpointPolicy {
            every_commits: 1000,
            interval: Duration::from_secs(1),
            tail_bytes_max: TAIL_BYTES_MAX,
        };
        let mut r = Replica::new(Box::new(DvmState::default()), policy);
        assert_eq!(r.next_deadline(), Time::NEVER, "nothing to checkpoint");
        r.commit(messages(1, 4).remove(0), true);
        assert_eq!(r.next_deadline(), Time::ZERO + Duration::from_secs(1));
        assert!(r.checkpoint_if_due(Time::ZERO + Duration::from_millis(999), None).is_none());
        let c = r.checkpoint_if_due(Time::ZERO + Duration::from_secs(1), None).expect("due");
        assert_eq!(c.seq, 1);
        assert_eq!(r.next_deadline(), Time::NEVER);
    }

    #[test]
    fn hot_members_are_the_lowest_ids_whatever_the_ring_order() {
        let ring = [NodeId(4), NodeId(2), NodeId(5), NodeId(1)];
        assert_eq!(hot_members(&ring, 2), vec![NodeId(1), NodeId(2)]);
        assert_eq!(hot_members(&ring, 9), vec![NodeId(1), NodeId(2), NodeId(4), NodeId(5)]);
        assert_eq!(hot_members(&ring, 0), vec![NodeId(1)], "at least one member is hot");
    }
}
