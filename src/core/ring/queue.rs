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

/// How many messages the holder at `position` may stamp (docs/PROTOCOL.md §3, fair share).
///
/// `in_flight` counts stamped messages not yet safe everywhere; `backlog` holds every position's
/// queue length at its last visit.
pub(in crate::core) fn quota(
    waiting: usize,
    position: usize,
    backlog: &[u32],
    in_flight: u64,
    window_max: u64,
    batch_max: usize,
) -> usize {
    if waiting == 0 {
        return 0;
    }
    let free = window_max.saturating_sub(in_flight);
    if free == 0 {
        return 0;
    }
    let others = backlog.iter().enumerate().filter(|&(i, &b)| i != position && b > 0).count();
    let share = (free / (others as u64 + 1)).max(1);
    let share = usize::try_from(share).unwrap_or(usize::MAX);
    waiting.min(batch_max).min(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlogged_members_share_the_window_equally() {
        // Alone: limited by the batch size.
        assert_eq!(quota(1000, 0, &[0, 0, 0], 0, 4096, 256), 256);
        // Five backlogged members (this one and four others) share a window of 100 free slots.
        assert_eq!(quota(1000, 1, &[5, 0, 9, 9, 9], 3996, 4096, 256), 20);
        // A full window stamps nothing; an empty queue stamps nothing.
        assert_eq!(quota(10, 0, &[0, 0], 4096, 4096, 256), 0);
        assert_eq!(quota(0, 0, &[0, 0], 0, 4096, 256), 0);
        // Never starved to zero while there is any room.
        assert_eq!(quota(10, 0, &[9; 64], 4090, 4096, 256), 1);
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
