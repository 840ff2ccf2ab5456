//! Learning the log: after a catch-up stream, the joiner fetches the committed log after the
//! checkpoint from its donor, outside the view, until it is near the head; only then does it ask
//! to be let in (docs/PROTOCOL.md §5.3, "Learning the log"). Guarantee 7: a member restarted at
//! gigabytes of state while writes go on needs only a few messages inside its admission's view
//! change, however long its stream took. Guarantee 6: what it learns is the committed prefix of
//! the one history, applied in seq order.
//!
//! The learner asks with a zero-ballot `Fetch { after }`; the donor answers with one zero-ballot
//! `Retransmit` of at most `LEARN_MESSAGES_MAX` messages and `LEARN_BYTES_MAX` payload bytes from
//! its committed log, so neither side's step is longer than one batch. A reply well short of
//! both limits means the donor had little more: the learner is near the head. The donor pins its
//! log after each learner's last request (bounded in bytes, `Replica::retained_bytes_max`); a
//! learner that asks for a log the donor no longer holds is streamed the donor's newer checkpoint.

use super::Phase;
use crate::core::{Core, Output};
use crate::ids::{Ballot, NodeId, Seq};
use crate::time::Time;
use crate::wire::{Message, PeerFrame};

/// Messages in one reply to a learner.
const LEARN_MESSAGES_MAX: usize = 1024;
/// Payload bytes in one reply to a learner (beyond its first message): a quarter of a frame.
const LEARN_BYTES_MAX: usize = crate::wire::FRAME_BYTES_MAX / 4;
/// A reply with fewer messages than this (and under half the byte limit) means the learner is
/// near the donor's head: what it still lacks is fetched inside its admission's view change.
const NEAR_HEAD_MESSAGES: usize = 64;
/// Token timeouts a learner waits for a reply before asking again, and (doubled) before it stops
/// learning and asks to join with what it has.
const LEARN_STALL_TIMEOUTS: u32 = 2;

/// A joiner learning the log after the checkpoint it caught up to.
#[derive(Debug)]
pub(in crate::core) struct Learning {
    donor: NodeId,
    /// When the last request went out, if its reply has not come.
    asked_at: Option<Time>,
    /// When the donor last answered.
    answered_at: Time,
    near_head: bool,
    /// Messages and payload bytes learned so far, and since when, for the log line.
    learned: (u64, u64),
    started_at: Time,
}

impl Learning {
    /// Whether the last reply showed the donor's head within reach.
    pub(in crate::core) fn near_head(&self) -> bool {
        self.near_head
    }
}

impl Core {
    /// A catch-up stream from `donor` ended: learn the log after it.
    pub(in crate::core) fn start_learning(&mut self, now: Time, donor: NodeId, out: &mut Vec<Output>) {
        self.membership.streams.learning = Some(Learning {
            donor,
            asked_at: None,
            answered_at: now,
            near_head: false,
            learned: (0, 0),
            started_at: now,
        });
        self.ask_to_learn(now, out);
        // Every member hears that this one is still catching up, so no join timer lets it in yet.
        self.on_join_interval(now, out);
    }

    /// Asks the donor for the log after what this member holds.
    fn ask_to_learn(&mut self, now: Time, out: &mut Vec<Output>) {
        if matches!(self.membership.phase, Phase::Joining { .. }) {
            // Back from a view change that did not let it in (a forced one that formed nothing).
            self.drop_unchosen_fetch();
        }
        let after = self.log.received_upto;
        let Some(learning) = self.membership.streams.learning.as_mut() else { return };
        if !self.links.is_up(learning.donor) {
            self.links.want(learning.donor, now, out);
            return;
        }
        learning.asked_at = Some(now);
        let fetch = PeerFrame::Fetch { ballot: Ballot::default(), after, upto: Seq::MAX, snapshot: false };
        self.links.send(learning.donor, fetch, now, out);
    }

    /// Every join interval while learning: asks again after a lost reply, keeps the position
    /// fresh once near the head (which keeps the donor's pin), and stops learning when the donor
    /// is gone, asking to join with what it has.
    pub(in crate::core) fn check_learning(&mut self, now: Time, out: &mut Vec<Output>) {
        let stall = self.config.token_timeout * LEARN_STALL_TIMEOUTS;
        let Some(learning) = self.membership.streams.learning.as_mut() else { return };
        if now >= learning.answered_at + stall * 2 && !learning.near_head {
            log::warn!(
                "{} check_learning: {} stopped answering; asking to join at {}",
                self.config.me.id,
                learning.donor,
                self.log.received_upto
            );
            learning.near_head = true;
            return;
        }
        let lost = learning.asked_at.is_some_and(|at| now >= at + stall);
        if learning.asked_at.is_none() || lost {
            self.ask_to_learn(now, out);
        }
    }

    /// Serves a learner's `Fetch` from this member's committed log (docs/PROTOCOL.md §5.3).
    pub(in crate::core) fn serve_learner(
        &mut self,
        now: Time,
        from: NodeId,
        after: Seq,
        out: &mut Vec<Output>,
    ) {
        if after < self.replica.retained_from() {
            // The log after `after` is gone here (the pin lapsed past its byte bound, or this
            // member restarted): a newer checkpoint is streamed instead.
            log::info!(
                "{} serve_learner: {} wants the log after {} but it starts at {} here; streaming the checkpoint",
                self.config.me.id,
                from,
                after,
                self.replica.retained_from()
            );
            self.membership.streams.learners.remove(&from);
            self.start_stream(now, from, Ballot::default(), 0, out);
            return;
        }
        let mut messages = self.replica.tail_range(after, self.replica.committed(), LEARN_MESSAGES_MAX);
        messages.truncate(super::transfer::fitting(&messages, LEARN_BYTES_MAX));
        self.membership.streams.note_learner(from, after, now);
        self.links.send(from, PeerFrame::Retransmit { ballot: Ballot::default(), messages }, now, out);
    }

    /// Applies a batch of the committed log from the donor, without delivering it (this member
    /// delivers only what its views carry), and asks for more until near the head.
    pub(in crate::core) fn on_learned(
        &mut self,
        now: Time,
        from: NodeId,
        messages: Vec<Message>,
        out: &mut Vec<Output>,
    ) {
        let joining = matches!(self.membership.phase, Phase::Joining { .. }) && !self.membership.holds_log;
        let Some(learning) = self.membership.streams.learning.as_mut().filter(|l| l.donor == from && joining)
        else {
            return;
        };
        let before = self.log.received_upto;
        let count = messages.len();
        let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
        if count > 0 && messages[0].seq > before + 1 {
            // Not the continuation of what is held (a reply to an older request): ignored.
            return;
        }
        learning.asked_at = None;
        learning.answered_at = now;
        let was_near = learning.near_head;
        // Once near, it stays near: a member that flipped back to catching up would undo the
        // join it just asked for, and what it lacks by then is fetched in the view change.
        let short = count < NEAR_HEAD_MESSAGES && bytes < LEARN_BYTES_MAX / 2;
        learning.near_head |= short;
        for message in messages.into_iter().filter(|m| m.seq > before) {
            self.log.insert(message);
        }
        let upto = self.log.received_upto;
        self.log.skip_delivery_upto(upto);
        self.apply_committed(upto, false, out);
        let Some(learning) = self.membership.streams.learning.as_mut() else { return };
        learning.learned.0 += upto - before;
        learning.learned.1 += bytes as u64;
        let (learned, took, near_head) =
            (learning.learned, now.since(learning.started_at), learning.near_head);
        self.membership.streams.caught_up = upto;
        if !short {
            self.ask_to_learn(now, out);
        }
        if near_head && !was_near {
            log::info!(
                "{} on_learned: learned up to {} from {} ({} messages, {} bytes in {:?}); asking to join",
                self.config.me.id,
                upto,
                from,
                learned.0,
                learned.1,
                took
            );
            self.on_join_interval(now, out);
        }
    }
}
