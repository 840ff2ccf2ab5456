//! The reference history of a run for guarantee 6: the committed messages in seq order applied
//! to a reference DVM state, so that every checkpoint a member outputs can be compared with the
//! state after the same prefix, and durable restarts can be checked to lose nothing acknowledged.

use std::collections::HashMap;

use super::checker::{Guarantee, Violation};
use crate::ids::{Member, MsgId, Seq};
use crate::replication::{Checkpoint, DvmState, StateMachine};
use crate::wire::{Message, Payload};

/// The committed history as the checker saw it.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// Payloads of delivered messages, until they commit.
    payloads: HashMap<MsgId, Payload>,
    /// The committed messages, seq `i + 1` at index `i`.
    committed: Vec<(MsgId, Payload)>,
    /// The digest of the reference state after each committed seq (index 0: the empty state).
    digests: Vec<u64>,
    reference: DvmState,
    /// Checkpoints checked, over all members.
    pub(crate) checkpoints: u64,
}

impl History {
    fn ensure_started(&mut self) {
        if self.digests.is_empty() {
            self.digests.push(self.reference.digest());
        }
    }

    /// Remembers a delivered message's payload for when it commits.
    pub(crate) fn on_deliver(&mut self, message: &Message) {
        if message.seq as usize > self.committed.len() {
            self.payloads.entry(message.id).or_insert_with(|| message.payload.clone());
        }
    }

    /// Extends the reference by the first commit of `seq` anywhere.
    pub(crate) fn on_commit(&mut self, seq: Seq, id: MsgId) {
        self.ensure_started();
        if seq as usize != self.committed.len() + 1 {
            return;
        }
        // Every committed message was agreed-delivered by the members that ordered it.
        let Some(payload) = self.payloads.remove(&id) else { return };
        self.reference.apply(seq, id, &payload);
        self.digests.push(self.reference.digest());
        self.committed.push((id, payload));
    }

    /// The committed prefix the reference covers.
    pub(crate) fn upto(&self) -> Seq {
        self.committed.len() as Seq
    }

    /// Guarantee 6: a checkpoint is the state after the prefix it names.
    pub(crate) fn check_checkpoint(&mut self, at: Member, checkpoint: &Checkpoint) -> Result<(), Violation> {
        self.ensure_started();
        self.checkpoints += 1;
        // Encoded and decoded like a node's storage does it: the state rebuilt from its records
        // recomputes every incremental digest, so bookkeeping drift shows here too.
        let bytes = crate::replication::encode_all(&*checkpoint.state);
        let mut state = DvmState::default();
        if let Err(e) = state.restore(&bytes) {
            return Err(Violation {
                guarantee: Guarantee::LinearHistory,
                detail: format!("{at}'s checkpoint at {} does not restore: {e}", checkpoint.seq),
            });
        }
        if state.digest() != checkpoint.state.state_digest() {
            return Err(Violation {
                guarantee: Guarantee::LinearHistory,
                detail: format!(
                    "{at}'s checkpoint at {} changed its digest through encoding",
                    checkpoint.seq
                ),
            });
        }
        match self.digests.get(checkpoint.seq as usize) {
            Some(&digest) if digest == state.digest() => Ok(()),
            Some(_) => Err(Violation {
                guarantee: Guarantee::LinearHistory,
                detail: format!("{at}'s checkpoint at {} is not the state after that prefix", checkpoint.seq),
            }),
            None => Err(Violation {
                guarantee: Guarantee::LinearHistory,
                detail: format!(
                    "{at} checkpointed seq {} beyond the committed {}",
                    checkpoint.seq,
                    self.upto()
                ),
            }),
        }
    }

    /// Every member crashed; the durable states reach up to `durable` (none without
    /// durability). The history continues from there: later commits are lost and their seqs will
    /// be stamped again.
    pub(crate) fn on_total_loss(&mut self, durable: Option<Seq>) {
        let keep = durable.unwrap_or(0) as usize;
        self.payloads.clear();
        if keep >= self.committed.len() {
            return;
        }
        self.committed.truncate(keep);
        self.digests.truncate(keep + 1);
        self.reference = DvmState::default();
        for (i, (id, payload)) in self.committed.iter().enumerate() {
            self.reference.apply(i as Seq + 1, *id, payload);
        }
    }
}
