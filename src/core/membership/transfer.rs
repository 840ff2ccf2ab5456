//! Recovery transfer: what a participant lacks of a proposal's prefix, fetched from the donor
//! (docs/PROTOCOL.md §5.3). A member of the previous view fetches the messages it lacks up to the
//! cut; a member that caught up to a checkpoint before it was let in fetches the log after it; a
//! joiner without state has the donor's last checkpoint streamed to it (`stream`) and then the
//! committed messages after it: never the whole history (docs/PROTOCOL.md §7).

use crate::core::ring::message_log::MessageLog;
use crate::core::{Core, Output};
use crate::ids::{Ballot, NodeId, Seq};
use crate::time::Time;
use crate::wire::{Message, PeerFrame};

/// Messages per `Retransmit` frame.
const RETRANSMIT_BATCH_MAX: usize = 256;
/// Payload bytes per `Retransmit` frame (beyond its first message): 256 large messages would
/// not fit in one frame (`FRAME_BYTES_MAX`), and a frame that does not fit cannot be sent.
const RETRANSMIT_BYTES_MAX: usize = crate::wire::FRAME_BYTES_MAX / 4;

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
    restored: bool,
    /// Fetches that arrived before this member held the prefix itself.
    pub(in crate::core) deferred: Vec<(NodeId, PeerFrame)>,
}

impl Transfer {
    pub(in crate::core) fn new(need: Need, cut: Seq, donor: NodeId) -> Transfer {
        Transfer { need, cut, donor, requested: false, restored: false, deferred: Vec::new() }
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
        if ballot == Ballot::default() && !snapshot {
            self.serve_learner(now, from, after, out);
            return;
        }
        if snapshot {
            // Streamed one chunk per acknowledgement; the messages after it follow the last.
            self.start_stream(now, from, ballot, upto, out);
            return;
        }
        if after < self.replica.retained_from() {
            // The log after `after` is gone here (the member caught up to an older checkpoint
            // than this one keeps the tail of): it gets this member's checkpoint instead.
            log::info!(
                "{} on_fetch: {} wants messages after {} but the tail here starts at {}; streaming the checkpoint",
                self.config.me.id,
                from,
                after,
                self.replica.retained_from()
            );
            self.start_stream(now, from, ballot, upto, out);
            return;
        }
        self.send_committed(now, from, ballot, after, upto, out);
    }

    /// Sends `from` the messages `(after, upto]` this member holds (its tail after its checkpoint,
    /// then its log) in `Retransmit` frames of at most `RETRANSMIT_BATCH_MAX` messages and
    /// `RETRANSMIT_BYTES_MAX` payload bytes.
    pub(in crate::core) fn send_committed(
        &mut self,
        now: Time,
        to: NodeId,
        ballot: Ballot,
        mut after: Seq,
        upto: Seq,
        out: &mut Vec<Output>,
    ) {
        while after < upto {
            let mut messages = if after < self.replica.committed() {
                self.replica.tail_range(after, upto, RETRANSMIT_BATCH_MAX)
            } else {
                self.log.range(after, upto, RETRANSMIT_BATCH_MAX)
            };
            messages.truncate(fitting(&messages, RETRANSMIT_BYTES_MAX));
            let Some(last) = messages.last().map(|m| m.seq) else { break };
            self.links.send(to, PeerFrame::Retransmit { ballot, messages }, now, out);
            after = last;
        }
    }

    /// Whether a snapshot chunk of `ballot` is what this participant's transfer needs: it has
    /// no state of the previous view (a blank participant, or one whose log the donor no
    /// longer holds).
    pub(in crate::core) fn wants_view_change_snapshot(&mut self, ballot: Ballot) -> bool {
        let member_of_prev = self.membership.holds_log;
        let super::Phase::Accepting { ballot: b, transfer, proposal, .. } = &mut self.membership.phase else {
            return false;
        };
        if *b != ballot
            || transfer.restored
            || (member_of_prev && self.membership.last_primary == proposal.prev)
        {
            return false;
        }
        if transfer.need == Need::Log {
            // The donor could not serve the log after the caught-up checkpoint.
            transfer.need = Need::Snapshot;
        }
        transfer.need == Need::Snapshot
    }

    /// A view change's snapshot is installed: fetch-and-accept goes on with the messages after it.
    pub(in crate::core) fn on_view_change_snapshot(&mut self, now: Time, out: &mut Vec<Output>) {
        if let super::Phase::Accepting { transfer, .. } = &mut self.membership.phase {
            transfer.restored = true;
        }
        self.check_accept_done(now, out);
    }

    pub(in crate::core) fn on_retransmit(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        messages: Vec<Message>,
        out: &mut Vec<Output>,
    ) {
        if ballot == Ballot::default() {
            self.on_learned(now, from, messages, out);
            return;
        }
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

/// How many of `messages` one frame takes: at least one, then as many as fit in `bytes_max`
/// payload bytes.
pub(super) fn fitting(messages: &[Message], bytes_max: usize) -> usize {
    let mut bytes = 0;
    let fit = messages.iter().take_while(|m| {
        bytes += m.payload.len();
        bytes <= bytes_max
    });
    fit.count().max(1).min(messages.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MsgId;

    #[test]
    fn a_log_fetch_is_done_once_the_cut_is_received() {
        let mut log = MessageLog::starting_after(10);
        let t = Transfer::new(Need::Log, 12, NodeId(1));
        assert!(!t.done(&log));
        log.received_upto = 12;
        assert!(t.done(&log));
    }

    fn message(seq: Seq, bytes: usize) -> Message {
        let id = MsgId { origin: NodeId(1), incarnation: 1, counter: seq };
        Message { seq, id, attempt: 0, payload: vec![0; bytes].into() }
    }

    /// 256 messages of 96 KiB (24 MiB) once made a `Retransmit` frame larger than a frame may
    /// be, and the donor's protocol thread panicked encoding it.
    #[test]
    fn a_retransmit_batch_fits_in_a_frame_whatever_its_messages_weigh() {
        let big: Vec<Message> = (1..=256).map(|seq| message(seq, 96 << 10)).collect();
        let n = fitting(&big, RETRANSMIT_BYTES_MAX);
        assert_eq!(n, RETRANSMIT_BYTES_MAX / (96 << 10));
        let frame = PeerFrame::Retransmit { ballot: Ballot::default(), messages: big[..n].to_vec() };
        let mut encoded = Vec::new();
        crate::wire::encode_peer(&frame, &mut encoded);
        assert!(encoded.len() <= crate::wire::FRAME_BYTES_MAX, "{} bytes", encoded.len());
        let small: Vec<Message> = (1..=256).map(|seq| message(seq, 100)).collect();
        assert_eq!(fitting(&small, RETRANSMIT_BYTES_MAX), 256, "small messages: the count bounds");
        let huge = [message(1, RETRANSMIT_BYTES_MAX + 1)];
        assert_eq!(fitting(&huge, RETRANSMIT_BYTES_MAX), 1, "one message always goes");
        assert_eq!(fitting(&[], RETRANSMIT_BYTES_MAX), 0);
    }
}
