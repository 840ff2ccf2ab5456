//! Recovery transfer: what a participant lacks of a proposal's prefix, fetched from the donor
//! (docs/PROTOCOL.md §5.3). A member of the previous view fetches the messages it lacks up to the
//! cut; a joiner fetches the donor's last checkpoint and the committed messages after it (its
//! tail), then the rest of the prefix: never the whole history (docs/PROTOCOL.md §7).

use crate::core::ring::message_log::MessageLog;
use crate::core::{Core, Output};
use crate::ids::{Ballot, NodeId, Seq};
use crate::replication::Checkpoint;
use crate::time::Time;
use crate::wire::{Message, PeerFrame};

/// Messages per `Retransmit` frame.
const RETRANSMIT_BATCH_MAX: usize = 256;
/// The largest state snapshot a joiner accepts.
const SNAPSHOT_BYTES_MAX: u64 = 1 << 32;
/// Bytes per snapshot chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// What a participant must fetch before it may accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::core) enum Need {
    Nothing,
    Log,
    Snapshot,
}

/// Progress of one participant's fetch.
#[derive(Debug)]
pub(in crate::core) struct Transfer {
    need: Need,
    cut: Seq,
    donor: NodeId,
    requested: bool,
    snapshot: Vec<u8>,
    restored: bool,
    /// Fetches that arrived before this member held the prefix itself.
    pub(in crate::core) deferred: Vec<(NodeId, PeerFrame)>,
}

impl Transfer {
    pub(in crate::core) fn new(need: Need, cut: Seq, donor: NodeId) -> Transfer {
        Transfer {
            need,
            cut,
            donor,
            requested: false,
            snapshot: Vec::new(),
            restored: false,
            deferred: Vec::new(),
        }
    }

    /// Whether the participant now holds the whole prefix up to the cut.
    pub(in crate::core) fn done(&self, log: &MessageLog) -> bool {
        match self.need {
            Need::Nothing => true,
            Need::Log => log.received_upto >= self.cut,
            Need::Snapshot => self.restored && log.received_upto >= self.cut,
        }
    }
}

impl Core {
    /// Sends the fetch once the donor link is up.
    pub(in crate::core) fn request_transfer(&mut self, now: Time, out: &mut Vec<Output>) {
        let me = self.config.me.id;
        let after = self.log.received_upto;
        let source = self.membership.coordination.as_ref().and_then(|c| c.source());
        let super::Phase::Accepting { ballot, transfer, .. } = &mut self.membership.phase else { return };
        if transfer.need == Need::Nothing || transfer.requested {
            return;
        }
        // The donor itself fetches from the coordinator's chosen source.
        let from = if transfer.donor == me { source.filter(|&s| s != me) } else { Some(transfer.donor) };
        let Some(from) = from else { return };
        if !self.links.is_up(from) {
            self.links.want(from, now, out);
            return;
        }
        transfer.requested = true;
        let frame = PeerFrame::Fetch {
            ballot: *ballot,
            after: if transfer.need == Need::Log { after } else { 0 },
            upto: transfer.cut,
            snapshot: transfer.need == Need::Snapshot,
        };
        self.links.send(from, frame, now, out);
    }

    /// Serves a `Fetch` from this member's log (and state, for a snapshot).
    pub(in crate::core) fn on_fetch(
        &mut self,
        now: Time,
        from: NodeId,
        fetch: PeerFrame,
        out: &mut Vec<Output>,
    ) {
        let PeerFrame::Fetch { ballot, after, upto, snapshot } = fetch else { return };
        if let super::Phase::Accepting { transfer, .. } = &mut self.membership.phase {
            if !transfer.done(&self.log) {
                // This donor is still fetching the prefix itself: answer once it holds it. One
                // fetch per member is kept (its latest), so the list is bounded by the universe
                // and every participant of a large view is answered: a fixed cap of 256 left the
                // others of a 1024-member view waiting until they were excluded.
                let fetch = PeerFrame::Fetch { ballot, after, upto, snapshot };
                if let Some(kept) = transfer.deferred.iter_mut().find(|(id, _)| *id == from) {
                    kept.1 = fetch;
                } else if transfer.deferred.len() < self.config.universe.len() {
                    transfer.deferred.push((from, fetch));
                }
                return;
            }
        }
        let mut after = after;
        if snapshot {
            let checkpoint = self.replica.checkpoint();
            let (seq, bytes) = (checkpoint.seq, checkpoint.bytes.clone());
            let total = bytes.len() as u64;
            let mut offset = 0usize;
            loop {
                let end = (offset + SNAPSHOT_CHUNK_BYTES).min(bytes.len());
                let chunk = PeerFrame::SnapshotChunk {
                    ballot,
                    seq,
                    offset: offset as u64,
                    total,
                    bytes: bytes[offset..end].to_vec().into(),
                };
                self.links.send(from, chunk, now, out);
                offset = end;
                if offset >= bytes.len() {
                    break;
                }
            }
            after = seq;
        } else if after < self.replica.checkpoint().seq {
            log::error!(
                "{} on_fetch: {} wants messages after {} but the checkpoint here is at {}",
                self.config.me.id,
                from,
                after,
                self.replica.checkpoint().seq
            );
            return;
        }
        while after < upto {
            let messages = if after < self.replica.committed() {
                self.replica.tail_range(after, upto, RETRANSMIT_BATCH_MAX)
            } else {
                self.log.range(after, upto, RETRANSMIT_BATCH_MAX)
            };
            let Some(last) = messages.last().map(|m| m.seq) else { break };
            self.links.send(from, PeerFrame::Retransmit { ballot, messages }, now, out);
            after = last;
        }
    }

    /// Collects a `SnapshotChunk`; restores the state once the snapshot is whole.
    pub(in crate::core) fn on_snapshot_chunk(&mut self, now: Time, chunk: PeerFrame, out: &mut Vec<Output>) {
        let PeerFrame::SnapshotChunk { ballot, seq, offset, total, bytes } = chunk else { return };
        let super::Phase::Accepting { ballot: b, transfer, .. } = &mut self.membership.phase else { return };
        if *b != ballot || transfer.need != Need::Snapshot || transfer.restored {
            return;
        }
        if total > SNAPSHOT_BYTES_MAX {
            log::warn!(
                "{} on_snapshot_chunk: a snapshot of {} bytes exceeds the maximum",
                self.config.me.id,
                total
            );
            return;
        }
        if offset != transfer.snapshot.len() as u64 || offset.saturating_add(bytes.len() as u64) > total {
            log::warn!(
                "{} on_snapshot_chunk: chunk at {} does not follow {}",
                self.config.me.id,
                offset,
                transfer.snapshot.len()
            );
            return;
        }
        transfer.snapshot.extend_from_slice(&bytes);
        if (transfer.snapshot.len() as u64) < total {
            return;
        }
        let snapshot = std::mem::take(&mut transfer.snapshot);
        let checkpoint = Checkpoint { seq, bytes: snapshot };
        match self.replica.restore(checkpoint.clone(), now) {
            Ok(()) => {
                out.push(Output::Restored(checkpoint));
                if let super::Phase::Accepting { transfer, .. } = &mut self.membership.phase {
                    transfer.restored = true;
                }
                self.log = MessageLog::starting_after(seq);
                self.check_accept_done(now, out);
            }
            Err(e) => {
                log::error!(
                    "{} on_snapshot_chunk: snapshot at {} does not restore: {}",
                    self.config.me.id,
                    seq,
                    e
                );
            }
        }
    }

    pub(in crate::core) fn on_retransmit(
        &mut self,
        now: Time,
        ballot: Ballot,
        messages: Vec<Message>,
        out: &mut Vec<Output>,
    ) {
        let super::Phase::Accepting { ballot: b, transfer, .. } = &self.membership.phase else { return };
        if *b != ballot || (transfer.need == Need::Snapshot && !transfer.restored) {
            return;
        }
        let cut = transfer.cut;
        for message in messages.into_iter().filter(|m| m.seq <= cut) {
            self.log.insert(message);
        }
        self.check_accept_done(now, out);
    }
}
