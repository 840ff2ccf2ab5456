//! This member's submitted messages: waiting for the token, then in flight until committed.
//!
//! Also the fair-share rule of docs/PROTOCOL.md §3: how many messages one token visit may stamp.

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{MsgId, Seq};
use crate::wire::{Message, Payload};

/// A message waiting for the token.
#[derive(Debug)]
pub(in crate::core) struct Pending {
    pub(in crate::core) tag: u64,
    pub(in crate::core) id: MsgId,
    pub(in crate::core) attempt: u16,
    pub(in crate::core) payload: Payload,
}

/// Own messages, waiting and in flight.
#[derive(Debug, Default)]
pub(in crate::core) struct SubmitQueue {
    waiting: VecDeque<Pending>,
    /// Stamped but not yet committed, kept for sending again after a view change.
    in_flight: BTreeMap<MsgId, Pending>,
    /// Payload bytes of `waiting` and `in_flight` together: the memory this queue holds.
    held_bytes: usize,
}

impl SubmitQueue {
    pub(in crate::core) fn push(&mut self, pending: Pending) {
        self.held_bytes += pending.payload.len();
        self.waiting.push_back(pending);
    }

    /// Payload bytes held, waiting or in flight.
    pub(in crate::core) fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    pub(in crate::core) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Stamped and not yet seen committed.
    pub(in crate::core) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub(in crate::core) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Takes up to `quota` waiting messages, and at most `bytes_max` payload bytes (but always
    /// one), and stamps them from `next_seq` on.
    pub(in crate::core) fn stamp(&mut self, quota: usize, bytes_max: usize, next_seq: Seq) -> Vec<Message> {
        let mut count = 0;
        let mut bytes = 0;
        for pending in self.waiting.iter().take(quota) {
            if count > 0 && bytes + pending.payload.len() > bytes_max {
                break;
            }
            bytes += pending.payload.len();
            count += 1;
        }
        let mut stamped = Vec::with_capacity(count);
        for (i, pending) in self.waiting.drain(..count).enumerate() {
            stamped.push(Message {
                seq: next_seq + i as Seq,
                id: pending.id,
                attempt: pending.attempt,
                payload: pending.payload.clone(),
            });
            self.in_flight.insert(pending.id, pending);
        }
        stamped
    }

    /// The driver's tag of an own message that just committed; `forget` is false only for the
    /// `ResendCommitted` defect, which keeps it to be sent again.
    pub(in crate::core) fn on_commit(&mut self, id: &MsgId, forget: bool) -> Option<u64> {
        if forget {
            let pending = self.in_flight.remove(id)?;
            self.held_bytes -= pending.payload.len();
            Some(pending.tag)
        } else {
            self.in_flight.get(id).map(|p| p.tag)
        }
    }

    /// Queues every stamped but uncommitted message again, first and in submission order, as a
    /// new attempt: its seq fell above a view's cut and was discarded (docs/PROTOCOL.md §5.4).
    pub(in crate::core) fn requeue_in_flight(&mut self) -> usize {
        let count = self.in_flight.len();
        let again = std::mem::take(&mut self.in_flight);
        for (_, mut pending) in again.into_iter().rev() {
            pending.attempt = pending.attempt.saturating_add(1);
            self.waiting.push_front(pending);
        }
        count
    }

    /// Takes every waiting message but those tagged `keep`, returning their tags: none was ever
    /// stamped in a view that may still commit it, so each certainly did not commit.
    pub(in crate::core) fn take_waiting(&mut self, keep: u64) -> Vec<u64> {
        let (kept, taken): (VecDeque<Pending>, VecDeque<Pending>) =
            std::mem::take(&mut self.waiting).into_iter().partition(|p| p.tag == keep);
        self.waiting = kept;
        self.held_bytes -= taken.iter().map(|p| p.payload.len()).sum::<usize>();
        taken.into_iter().map(|p| p.tag).collect()
    }

    /// Whether a message tagged other than `own` waits for the token.
    pub(in crate::core) fn has_waiting_other_than(&self, own: u64) -> bool {
        self.waiting.iter().any(|p| p.tag != own)
    }

    /// Empties the queue (the member is excluded or leaving). Returns the tags never stamped,
    /// which certainly did not commit, and the tags stamped but not seen committed, which may
    /// still commit in the successor view if their seqs fall below its cut (docs/PROTOCOL.md §5.4).
    pub(in crate::core) fn drain(&mut self) -> (Vec<u64>, Vec<u64>) {
        let unsent = self.waiting.drain(..).map(|p| p.tag).collect();
        let stamped = std::mem::take(&mut self.in_flight).into_values().map(|p| p.tag).collect();
        self.held_bytes = 0;
        (unsent, stamped)
    }
}

/// What the ring holds in flight: stamped, not yet known safe everywhere (docs/PROTOCOL.md §3).
#[derive(Clone, Copy, Debug)]
pub(in crate::core) struct InFlight {
    /// Messages: `next_seq - 1 - aru`.
    pub(in crate::core) messages: u64,
    /// Their payload bytes: the token's `window_bytes`.
    pub(in crate::core) bytes: u64,
}

/// What one token visit may stamp: at most `messages` messages and, beyond the first, at most
/// `bytes` payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::core) struct Share {
    pub(in crate::core) messages: usize,
    pub(in crate::core) bytes: usize,
}

/// The share of the holder at `position` (docs/PROTOCOL.md §3, fair share and flow control).
///
/// The free part of each window, in messages and in bytes, is divided equally among the
/// backlogged members (`backlog` holds every position's queue length at its last visit), and a
/// batch is further bounded by `batch_max` and `batch_bytes_max`. With any room left in both
/// windows the holder may stamp at least one message, so nobody starves behind large messages;
/// with either window full it stamps nothing.
pub(in crate::core) fn share(
    waiting: usize,
    position: usize,
    backlog: &[u32],
    in_flight: InFlight,
    config: &crate::config::CoreConfig,
) -> Share {
    let nothing = Share { messages: 0, bytes: 0 };
    let free = config.window_max.saturating_sub(in_flight.messages);
    let free_bytes = config.window_bytes_max.saturating_sub(in_flight.bytes);
    if waiting == 0 || free == 0 || free_bytes == 0 {
        return nothing;
    }
    let sharers = backlog.iter().enumerate().filter(|&(i, &b)| i != position && b > 0).count() as u64 + 1;
    let messages = usize::try_from((free / sharers).max(1)).unwrap_or(usize::MAX);
    let bytes = usize::try_from(free_bytes / sharers).unwrap_or(usize::MAX);
    Share { messages: waiting.min(config.batch_max).min(messages), bytes: bytes.min(config.batch_bytes_max) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CoreConfig;
    use crate::ids::{Member, NodeId};

    fn limits(window_max: u64, batch_max: usize, window_bytes_max: u64) -> CoreConfig {
        let me = Member { id: NodeId(1), incarnation: 1 };
        let mut config = CoreConfig::new(me, vec![NodeId(1)]);
        config.window_max = window_max;
        config.batch_max = batch_max;
        config.window_bytes_max = window_bytes_max;
        config.batch_bytes_max = 1 << 20;
        config
    }

    fn messages(messages: u64) -> InFlight {
        InFlight { messages, bytes: 0 }
    }

    #[test]
    fn backlogged_members_share_the_window_equally() {
        let c = limits(4096, 256, 1 << 30);
        let count = |waiting, position, backlog: &[u32], in_flight| {
            share(waiting, position, backlog, in_flight, &c).messages
        };
        // Alone: limited by the batch size.
        assert_eq!(count(1000, 0, &[0, 0, 0], messages(0)), 256);
        // Five backlogged members (this one and four others) share a window of 100 free slots.
        assert_eq!(count(1000, 1, &[5, 0, 9, 9, 9], messages(3996)), 20);
        // A full window stamps nothing; an empty queue stamps nothing.
        assert_eq!(count(10, 0, &[0, 0], messages(4096)), 0);
        assert_eq!(count(0, 0, &[0, 0], messages(0)), 0);
        // Never starved to zero while there is any room.
        assert_eq!(count(10, 0, &[9; 64], messages(4090)), 1);
    }

    #[test]
    fn backlogged_members_share_the_byte_window_equally() {
        let c = limits(4096, 256, 8 << 20);
        let bytes = |in_flight_bytes, backlog: &[u32]| {
            share(1000, 0, backlog, InFlight { messages: 10, bytes: in_flight_bytes }, &c)
        };
        // Alone with an empty window: one batch's bytes.
        assert_eq!(bytes(0, &[0, 0, 0]), Share { messages: 256, bytes: 1 << 20 });
        // Four backlogged members share the 2 MiB left.
        assert_eq!(bytes(6 << 20, &[7, 3, 3, 3]).bytes, 512 << 10);
        // A full byte window stamps nothing, even with message slots free.
        assert_eq!(bytes(8 << 20, &[7, 0, 0]).messages, 0);
        assert_eq!(bytes(9 << 20, &[7, 0, 0]).messages, 0);
        // A sliver of room still lets one message through (`stamp` always takes one).
        assert_eq!(bytes((8 << 20) - 1, &[7, 3, 3]), Share { messages: 256, bytes: 0 });
    }

    #[test]
    fn held_bytes_count_waiting_and_in_flight_payloads_until_commit() {
        let mut q = SubmitQueue::default();
        for counter in 1..=3 {
            let id = MsgId { origin: crate::ids::NodeId(1), incarnation: 1, counter };
            q.push(Pending { tag: counter, id, attempt: 0, payload: vec![0; 100].into() });
        }
        assert_eq!(q.held_bytes(), 300);
        let stamped = q.stamp(2, usize::MAX, 1);
        assert_eq!(q.held_bytes(), 300, "in flight still held");
        q.on_commit(&stamped[0].id, true);
        assert_eq!(q.held_bytes(), 200);
        q.requeue_in_flight();
        assert_eq!(q.held_bytes(), 200);
        q.drain();
        assert_eq!(q.held_bytes(), 0);
    }

    #[test]
    fn stamping_assigns_consecutive_seqs_and_remembers_tags() {
        let mut q = SubmitQueue::default();
        for counter in 1..=3 {
            q.push(Pending {
                tag: counter * 10,
                id: MsgId { origin: crate::ids::NodeId(1), incarnation: 1, counter },
                attempt: 0,
                payload: vec![].into(),
            });
        }
        assert_eq!(q.held_bytes(), 0);
        let stamped = q.stamp(2, usize::MAX, 41);
        assert_eq!(stamped.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![41, 42]);
        assert_eq!(q.waiting(), 1);
        assert_eq!(q.on_commit(&stamped[1].id, true), Some(20));
        assert_eq!(q.on_commit(&stamped[1].id, true), None);
        // A byte budget smaller than one payload still stamps one message.
        assert_eq!(q.stamp(5, 0, 43).len(), 1);
        // Message 1 is still in flight: it goes first again, as a new attempt.
        assert_eq!(q.requeue_in_flight(), 2);
        let again = q.stamp(5, usize::MAX, 50);
        assert_eq!(again.iter().map(|m| (m.id.counter, m.attempt)).collect::<Vec<_>>(), vec![(1, 1), (3, 1)]);
        q.push(Pending {
            tag: 40,
            id: MsgId { origin: crate::ids::NodeId(1), incarnation: 1, counter: 4 },
            attempt: 0,
            payload: vec![].into(),
        });
        // Stamped ones may still commit elsewhere; the waiting one certainly did not.
        assert_eq!(q.drain(), (vec![40], vec![10, 30]));
        assert!(q.is_empty() && q.drain() == (vec![], vec![]));
    }

    #[test]
    fn taking_the_waiting_messages_keeps_the_in_flight_ones_and_the_members_own() {
        let mut q = SubmitQueue::default();
        for (counter, tag) in [(1, 10), (2, u64::MAX), (3, 30), (4, 40)] {
            let id = MsgId { origin: crate::ids::NodeId(1), incarnation: 1, counter };
            q.push(Pending { tag, id, attempt: 0, payload: vec![0; 10].into() });
        }
        q.stamp(1, usize::MAX, 1);
        assert!(q.has_waiting_other_than(u64::MAX));
        assert_eq!(q.take_waiting(u64::MAX), vec![30, 40]);
        assert!(!q.has_waiting_other_than(u64::MAX));
        assert_eq!(q.held_bytes(), 20, "the in-flight message and the member's own stay");
        assert_eq!(q.drain(), (vec![u64::MAX], vec![10]));
        assert!(q.is_empty() && q.drain() == (vec![], vec![]));
    }
}
