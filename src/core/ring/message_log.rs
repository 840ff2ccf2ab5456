//! The message log of one member: received, agreed-delivered and committed prefixes.
//!
//! Serves guarantees 1 and 4: messages leave the log in seq order without gaps, and a seq that is
//! already held or already committed is filtered, never delivered twice.

use std::collections::BTreeMap;

use crate::ids::Seq;
use crate::wire::Message;

/// Messages received but not yet committed, keyed by seq.
#[derive(Debug, Default)]
pub(in crate::core) struct MessageLog {
    messages: BTreeMap<Seq, Message>,
    /// Every seq up to here is held (or already committed).
    pub(in crate::core) received_upto: Seq,
    /// Every seq up to here was delivered in agreed order.
    pub(in crate::core) delivered_upto: Seq,
    /// Every seq up to here was committed and left the log.
    pub(in crate::core) committed_upto: Seq,
}

impl MessageLog {
    /// A log whose history starts after `seq`.
    pub(in crate::core) fn starting_after(seq: Seq) -> MessageLog {
        MessageLog { messages: BTreeMap::new(), received_upto: seq, delivered_upto: seq, committed_upto: seq }
    }

    /// Stores a message; returns false for a duplicate or an already committed seq.
    pub(in crate::core) fn insert(&mut self, message: Message) -> bool {
        let seq = message.seq;
        if seq <= self.committed_upto || self.messages.contains_key(&seq) {
            return false;
        }
        self.messages.insert(seq, message);
        while self.messages.contains_key(&(self.received_upto + 1)) {
            self.received_upto += 1;
        }
        self.assert_prefixes();
        true
    }

    /// The invariant every change keeps: the three prefixes are nested and nothing committed is
    /// still held. A core that breaks it panics, and the simulator replays the seed.
    fn assert_prefixes(&self) {
        assert!(
            self.committed_upto <= self.delivered_upto && self.delivered_upto <= self.received_upto,
            "message log prefixes out of order: committed {} delivered {} received {}",
            self.committed_upto,
            self.delivered_upto,
            self.received_upto
        );
        if let Some((&lowest, _)) = self.messages.first_key_value() {
            assert!(lowest > self.committed_upto, "seq {lowest} held after commit {}", self.committed_upto);
        }
    }

    /// The next message to deliver in agreed order, if it is here.
    pub(in crate::core) fn next_deliverable(&mut self) -> Option<&Message> {
        if self.delivered_upto >= self.received_upto {
            return None;
        }
        self.delivered_upto += 1;
        let message = self.messages.get(&self.delivered_upto);
        assert!(message.is_some(), "seq {} is within the received prefix but not held", self.delivered_upto);
        message
    }

    /// Drops every message above `seq` (they fell above a view's cut).
    pub(in crate::core) fn truncate_above(&mut self, seq: Seq) {
        self.messages.retain(|&s, _| s <= seq);
        self.received_upto = self.received_upto.min(seq).max(self.committed_upto);
        self.delivered_upto = self.delivered_upto.min(self.received_upto);
        self.assert_prefixes();
    }

    /// Marks everything up to `seq` as delivered without handing it out: a joiner applies the
    /// history before its first view but delivers only what comes after it.
    pub(in crate::core) fn skip_delivery_upto(&mut self, seq: Seq) {
        self.delivered_upto = self.delivered_upto.max(seq.min(self.received_upto));
        self.assert_prefixes();
    }

    /// Payload bytes of the held messages in `(after, upto]`.
    pub(in crate::core) fn payload_bytes(&self, after: Seq, upto: Seq) -> u64 {
        self.messages.range(after + 1..=upto).map(|(_, m)| m.payload.len() as u64).sum()
    }

    /// The message held at `seq`, if any.
    pub(in crate::core) fn get(&self, seq: Seq) -> Option<&Message> {
        self.messages.get(&seq)
    }

    /// Held messages in `(after, upto]`, in order, at most `count_max` of them.
    pub(in crate::core) fn range(&self, after: Seq, upto: Seq, count_max: usize) -> Vec<Message> {
        self.messages.range(after + 1..=upto).take(count_max).map(|(_, m)| m.clone()).collect()
    }

    /// Removes and returns the next message to commit, if it is delivered and `<= safe`.
    pub(in crate::core) fn next_committable(&mut self, safe: Seq) -> Option<Message> {
        let next = self.committed_upto + 1;
        if next > safe || next > self.delivered_upto {
            return None;
        }
        self.committed_upto = next;
        let message = self.messages.remove(&next);
        self.assert_prefixes();
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MsgId, NodeId};

    fn message(seq: Seq) -> Message {
        Message {
            seq,
            id: MsgId { origin: NodeId(1), incarnation: 1, counter: seq },
            attempt: 0,
            payload: vec![seq as u8].into(),
        }
    }

    #[test]
    fn delivers_in_order_without_gaps_and_filters_duplicates() {
        let mut log = MessageLog::default();
        assert!(log.insert(message(2)));
        assert_eq!(log.received_upto, 0);
        assert!(log.next_deliverable().is_none(), "seq 1 is missing");
        assert!(log.insert(message(1)));
        assert!(!log.insert(message(1)), "a duplicate is filtered");
        assert_eq!(log.received_upto, 2);
        assert_eq!(log.next_deliverable().map(|m| m.seq), Some(1));
        assert_eq!(log.next_deliverable().map(|m| m.seq), Some(2));
        assert!(log.next_deliverable().is_none());
        assert_eq!(log.next_committable(1).map(|m| m.seq), Some(1));
        assert!(log.next_committable(1).is_none(), "seq 2 is not safe yet");
        assert!(!log.insert(message(1)), "a committed seq is filtered");
    }
}
