//! Streaming a checkpoint to a member that lacks the state, one chunk per acknowledgement
//! (docs/PROTOCOL.md §5.3, "Catching up"). Guarantees 6 and 7: the joiner ends with exactly the
//! donor's checkpoint, and neither side ever takes a step longer than one chunk.
//!
//! The donor pins the frozen checkpoint it streams (O(1): the state is persistent), encodes one
//! piece of at most `CHUNK_BYTES` per step from a cursor, and sends the next only when the
//! receiver acknowledged the last, so the stream is paced by the slower of the two and by the
//! link, and the donor's ring work interleaves with it. The receiver decodes each chunk into a
//! new state as it arrives; installing the finished state is O(1).
//!
//! Two uses: a *catch-up* (ballot zero) that a member of the primary streams to a joining member
//! before it is let in, while the ring keeps running; and the transfer inside a view change
//! (§5.3's `Need::Snapshot`), bound to the view change's ballot. A catch-up is outside the
//! membership protocol, so a view change of the ring does not interrupt it; a link that breaks
//! mid-stream resumes where it stopped, since the donor keeps the session and its pinned
//! checkpoint until the stream ends or goes idle.

use std::collections::{BTreeMap, VecDeque};

use crate::core::ring::message_log::MessageLog;
use crate::core::{Core, Output, TransferStats};
use crate::ids::{Ballot, NodeId, Seq};
use crate::replication::{Builder, Checkpoint, Cursor};
use crate::time::Time;
use crate::wire::PeerFrame;

/// Bytes encoded into one chunk (one record may run past it).
const CHUNK_BYTES: usize = 1 << 20;
/// Bytes a donor has sent and not yet seen acknowledged, per stream: enough chunks in flight
/// that the link, the donor's encoding and the receiver's decoding overlap instead of taking
/// turns (one chunk in flight waited a round trip per chunk).
const WINDOW_BYTES: u64 = 4 << 20;
/// Chunks a donor encodes in one step, so that a step stays short while the window fills.
const CHUNKS_PER_STEP_MAX: usize = 2;
/// The largest snapshot a member accepts.
const SNAPSHOT_BYTES_MAX: u64 = 1 << 36;
/// Streams a donor serves at once; a new one evicts the longest idle.
const STREAMS_MAX: usize = 4;
/// Token timeouts after which a stream nobody acknowledges is dropped (and its checkpoint
/// unpinned), and after which a learner that stopped asking pins the log no longer.
pub(in crate::core) const STREAM_IDLE_TIMEOUTS: u32 = 8;
/// Token timeouts after which a receiver gives up on a stream that stopped, and half of it
/// after which it asks again for what it lacks (a chunk lost with a link).
const STREAM_STALL_TIMEOUTS: u32 = 4;

/// A stream this member serves.
#[derive(Debug)]
pub(in crate::core) struct Outgoing {
    /// Zero for a catch-up; the view change's ballot otherwise.
    ballot: Ballot,
    checkpoint: Checkpoint,
    cursor: Cursor,
    /// Bytes sent so far: the offset of the next chunk.
    sent: u64,
    /// Bytes the receiver acknowledged.
    acked: u64,
    total: u64,
    /// After the last chunk of an in-view stream: the messages `(seq, then_upto]` follow.
    then_upto: Seq,
    active_at: Time,
    /// The chunks sent and not yet acknowledged (at most `WINDOW_BYTES` and one chunk), sent
    /// again from the acknowledged offset if the receiver lost them with a link.
    in_flight: VecDeque<PeerFrame>,
}

/// A stream this member receives.
pub(in crate::core) struct Incoming {
    pub(in crate::core) from: NodeId,
    pub(in crate::core) ballot: Ballot,
    seq: Seq,
    total: u64,
    received: u64,
    builder: Box<dyn Builder>,
    pub(in crate::core) active_at: Time,
    started_at: Time,
    /// The offset this member last asked the donor to send from after a gap, so that the
    /// chunks behind a lost one ask once, not once each.
    asked: Option<u64>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Incoming {{ from: {}, seq: {}, received: {}/{} }}",
            self.from, self.seq, self.received, self.total
        )
    }
}

/// The streams of one member.
#[derive(Debug, Default)]
pub(in crate::core) struct Streams {
    outgoing: BTreeMap<NodeId, Outgoing>,
    pub(in crate::core) incoming: Option<Incoming>,
    /// The seq of the state this incarnation caught up to from a member of the primary (0:
    /// none): the log after it is all it still needs.
    pub(in crate::core) caught_up: Seq,
    /// The last snapshot received whole.
    pub(in crate::core) last_received: Option<TransferStats>,
    /// After a catch-up: the committed log after it, being fetched from the donor.
    pub(in crate::core) learning: Option<super::learn::Learning>,
    /// Members fetching the log from this one as learners: the seq each last asked after, and
    /// when (at most `STREAMS_MAX`, the longest idle evicted).
    pub(in crate::core) learners: BTreeMap<NodeId, (Seq, Time)>,
}

impl Streams {
    /// Whether a catch-up is being received, or the log after it is still far behind the head.
    pub(in crate::core) fn catching_up(&self) -> bool {
        self.incoming.as_ref().is_some_and(|i| i.ballot == Ballot::default())
            || self.learning.as_ref().is_some_and(|l| !l.near_head())
    }

    /// The lowest seq after which a member catching up from this one still needs the committed
    /// log: the checkpoint of a catch-up stream, or where a learner last asked; streams and
    /// learners idle for `idle` pin nothing.
    pub(in crate::core) fn pin(&self, now: Time, idle: std::time::Duration) -> Option<Seq> {
        let streams = (self.outgoing.values())
            .filter(|s| s.ballot == Ballot::default() && now < s.active_at + idle)
            .map(|s| s.checkpoint.seq);
        let learners = (self.learners.values()).filter(|(_, at)| now < *at + idle).map(|(after, _)| *after);
        streams.chain(learners).min()
    }

    /// Records that `learner` asked for the log after `after`.
    pub(in crate::core) fn note_learner(&mut self, learner: NodeId, after: Seq, now: Time) {
        if !self.learners.contains_key(&learner) && self.learners.len() >= STREAMS_MAX {
            if let Some(idle) = self.learners.iter().min_by_key(|(_, (_, at))| *at).map(|(id, _)| *id) {
                self.learners.remove(&idle);
            }
        }
        self.learners.insert(learner, (after, now));
    }
}

impl Core {
    /// While joining: gives up on a catch-up that stopped, and asks again for a chunk that may
    /// have been lost with its link.
    pub(in crate::core) fn check_catch_up(&mut self, now: Time, out: &mut Vec<Output>) {
        let timeout = self.config.token_timeout;
        let Some(i) = self.membership.streams.incoming.as_mut() else { return };
        if now >= i.active_at + timeout * STREAM_STALL_TIMEOUTS {
            log::warn!(
                "{} check_catch_up: the stream from {} stopped; giving it up",
                self.config.me.id,
                i.from
            );
            self.drop_incoming();
        } else if now >= i.active_at + timeout * (STREAM_STALL_TIMEOUTS / 2) && self.links.is_up(i.from) {
            let ack = PeerFrame::SnapshotAck { ballot: i.ballot, seq: i.seq, offset: i.received };
            i.asked = Some(i.received);
            let from = i.from;
            self.links.send(from, ack, now, out);
        }
    }

    /// Gives up the stream being received; what it decoded so far is freed off the protocol
    /// thread (it may be most of a large state).
    pub(in crate::core) fn drop_incoming(&mut self) {
        if let Some(incoming) = self.membership.streams.incoming.take() {
            self.replica.discard(incoming.builder);
        }
    }

    /// Stops serving `to`; the pinned checkpoint it held is freed off the protocol thread.
    fn drop_outgoing(&mut self, to: NodeId) {
        if let Some(stream) = self.membership.streams.outgoing.remove(&to) {
            self.replica.discard(stream.checkpoint);
        }
    }

    /// Starts (or, for the same checkpoint, keeps) a stream of this member's last checkpoint to
    /// `to`; for an in-view stream, `then_upto` is the cut whose messages follow it.
    pub(in crate::core) fn start_stream(
        &mut self,
        now: Time,
        to: NodeId,
        ballot: Ballot,
        then_upto: Seq,
        out: &mut Vec<Output>,
    ) {
        if let Some(s) = self.membership.streams.outgoing.get_mut(&to) {
            // The receiver resumes an unfinished stream with an acknowledgement of what it holds.
            s.ballot = ballot;
            s.then_upto = then_upto;
            s.active_at = now;
            return;
        }
        // A receiver that went quiet (it failed, or caught up elsewhere) frees its checkpoint.
        let idle = self.config.token_timeout * STREAM_IDLE_TIMEOUTS;
        let quiet: Vec<NodeId> = (self.membership.streams.outgoing.iter())
            .filter(|(_, s)| now >= s.active_at + idle)
            .map(|(id, _)| *id)
            .collect();
        for id in quiet {
            self.drop_outgoing(id);
        }
        if self.membership.streams.outgoing.len() >= STREAMS_MAX {
            let outgoing = &self.membership.streams.outgoing;
            if let Some(idle) = outgoing.iter().min_by_key(|(_, s)| s.active_at).map(|(id, _)| *id) {
                self.drop_outgoing(idle);
            }
        }
        let checkpoint = self.replica.checkpoint().clone();
        let total = checkpoint.state.encoded_bytes();
        log::info!(
            "{} start_stream: checkpoint {} ({} bytes) to {} ({})",
            self.config.me.id,
            checkpoint.seq,
            total,
            to,
            if ballot == Ballot::default() { "catch-up" } else { "view change" }
        );
        let stream = Outgoing {
            ballot,
            checkpoint,
            cursor: Cursor::default(),
            sent: 0,
            acked: 0,
            total,
            then_upto,
            active_at: now,
            in_flight: VecDeque::new(),
        };
        self.membership.streams.outgoing.insert(to, stream);
        self.send_chunks(now, to, out);
    }

    /// Encodes and sends the next chunks of the stream to `to` while its window has room, at
    /// most `CHUNKS_PER_STEP_MAX` (each one bounded piece).
    fn send_chunks(&mut self, now: Time, to: NodeId, out: &mut Vec<Output>) {
        let Some(s) = self.membership.streams.outgoing.get_mut(&to) else { return };
        for _ in 0..CHUNKS_PER_STEP_MAX {
            if s.sent >= s.total || s.sent - s.acked >= WINDOW_BYTES {
                break;
            }
            let mut bytes = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8);
            s.checkpoint.state.encode_piece(&mut s.cursor, &mut bytes, CHUNK_BYTES);
            let chunk = PeerFrame::SnapshotChunk {
                ballot: s.ballot,
                seq: s.checkpoint.seq,
                offset: s.sent,
                total: s.total,
                bytes: bytes.into(),
            };
            s.sent += chunk_len(&chunk);
            s.active_at = now;
            s.in_flight.push_back(chunk.clone());
            self.links.send(to, chunk, now, out);
        }
    }

    /// The receiver holds the stream up to `offset`: move the window on, send what was lost
    /// again, or end the stream.
    pub(in crate::core) fn on_snapshot_ack(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        seq: Seq,
        offset: u64,
        out: &mut Vec<Output>,
    ) {
        let Some(s) = self.membership.streams.outgoing.get_mut(&from) else { return };
        if s.checkpoint.seq != seq || offset > s.sent {
            return;
        }
        s.ballot = ballot;
        s.active_at = now;
        if offset < s.acked {
            // The receiver lost what it had acknowledged (it gave the stream up) and the cursor
            // cannot go back: the stream starts over from this member's checkpoint.
            log::info!(
                "{} on_snapshot_ack: {} holds {} of {}; starting over",
                self.config.me.id,
                from,
                offset,
                s.acked
            );
            let then_upto = s.then_upto;
            self.drop_outgoing(from);
            self.start_stream(now, from, ballot, then_upto, out);
            return;
        }
        if offset == s.acked && offset < s.sent {
            // Asked again for what was acknowledged: the chunks after it were lost with a
            // link. They are all still in flight here, so they go again as they were.
            for chunk in &s.in_flight {
                let PeerFrame::SnapshotChunk { seq, offset, total, bytes, .. } = chunk.clone() else {
                    continue;
                };
                let chunk = PeerFrame::SnapshotChunk { ballot, seq, offset, total, bytes };
                self.links.send(from, chunk, now, out);
            }
            return;
        }
        s.acked = offset;
        while s.in_flight.front().is_some_and(|c| chunk_end(c) <= offset) {
            s.in_flight.pop_front();
        }
        if offset < s.total {
            self.send_chunks(now, from, out);
            return;
        }
        let Some(s) = self.membership.streams.outgoing.remove(&from) else { return };
        log::info!("{} on_snapshot_ack: {} holds checkpoint {}", self.config.me.id, from, seq);
        self.send_committed(now, from, s.ballot, seq, s.then_upto, out);
        self.replica.discard(s.checkpoint);
    }

    /// Takes a chunk in: a catch-up while joining, or the state of a view change's transfer.
    pub(in crate::core) fn on_snapshot_chunk(
        &mut self,
        now: Time,
        from: NodeId,
        chunk: PeerFrame,
        out: &mut Vec<Output>,
    ) {
        let PeerFrame::SnapshotChunk { ballot, seq, offset, total, bytes } = chunk else { return };
        let me = self.config.me.id;
        let wanted = if ballot == Ballot::default() {
            matches!(self.membership.phase, super::Phase::Joining { .. })
                && !self.membership.holds_log
                && self.membership.streams.caught_up < seq
        } else {
            self.wants_view_change_snapshot(ballot)
        };
        if !wanted || total > SNAPSHOT_BYTES_MAX {
            return;
        }
        let streams = &mut self.membership.streams;
        let same =
            streams.incoming.as_ref().is_some_and(|i| i.from == from && i.seq == seq && i.total == total);
        if !same {
            // Another stream is running from a live donor: this one is not wanted.
            let busy = streams.incoming.as_ref().is_some_and(|i| {
                i.from != from
                    && self.links.is_up(i.from)
                    && now < i.active_at + self.config.token_timeout * 4
            });
            if busy || offset != 0 {
                return;
            }
            self.drop_incoming();
            // A newer checkpoint replaces what this member learned after an older one.
            self.membership.streams.learning = None;
            self.membership.streams.incoming = Some(Incoming {
                from,
                ballot,
                seq,
                total,
                received: 0,
                builder: self.replica.builder(),
                active_at: now,
                started_at: now,
                asked: None,
            });
            if ballot == Ballot::default() {
                // Tell every member at once, before their join timers let it in without the state.
                let join = self.join_frame();
                for peer in self.config.universe.clone() {
                    if peer != me && self.links.is_up(peer) {
                        self.links.send(peer, join.clone(), now, out);
                    }
                }
            }
        }
        let streams = &mut self.membership.streams;
        let Some(incoming) = streams.incoming.as_mut() else { return };
        incoming.ballot = ballot;
        if offset < incoming.received {
            // Sent again after a loss, but already held.
            return;
        }
        if offset > incoming.received {
            // A chunk lost with a link: ask again from what is held, once for this gap.
            if incoming.asked != Some(incoming.received) {
                incoming.asked = Some(incoming.received);
                let ack = PeerFrame::SnapshotAck { ballot, seq, offset: incoming.received };
                self.links.send(from, ack, now, out);
            }
            return;
        }
        // Decoded as it arrives: no step holds or parses more than one chunk.
        if let Err(e) = incoming.builder.push(&bytes) {
            log::error!("{me} on_snapshot_chunk: snapshot {seq} from {from} does not decode: {e}");
            self.drop_incoming();
            return;
        }
        incoming.received += bytes.len() as u64;
        incoming.active_at = now;
        let received = incoming.received;
        self.links.send(from, PeerFrame::SnapshotAck { ballot, seq, offset: received }, now, out);
        if received < total {
            return;
        }
        let Some(incoming) = self.membership.streams.incoming.take() else { return };
        let took = now.since(incoming.started_at);
        let state = match incoming.builder.finish() {
            Ok(state) => state,
            Err(e) => {
                log::error!("{me} on_snapshot_chunk: snapshot {seq} from {from} does not decode: {e}");
                return;
            }
        };
        if state.applied_count() != seq {
            log::error!(
                "{me} on_snapshot_chunk: snapshot from {from} names seq {seq} but holds {} commands",
                state.applied_count()
            );
            return;
        }
        let checkpoint = Checkpoint::new(seq, state);
        if let Err(e) = self.replica.restore(checkpoint.clone(), now) {
            log::error!("{me} on_snapshot_chunk: snapshot {seq} from {from} does not restore: {e}");
            return;
        }
        self.log = MessageLog::starting_after(seq);
        out.push(Output::Restored(checkpoint));
        self.membership.streams.last_received = Some(TransferStats { bytes: total, took });
        if ballot == Ballot::default() {
            log::info!(
                "{me} on_snapshot_chunk: caught up to {seq} from {from} ({total} bytes in {took:?}, {:.0} MB/s)",
                total as f64 / took.as_secs_f64().max(1e-9) / 1e6
            );
            self.membership.streams.caught_up = seq;
            // Next the log after `seq`, fetched as a learner before asking to be let in.
            self.start_learning(now, from, out);
        } else {
            if self.membership.streams.caught_up > 0 {
                // Still the primary's committed state: what it fetches next starts here (§5.3).
                self.membership.streams.caught_up = seq;
            }
            self.on_view_change_snapshot(now, out);
        }
    }
}

/// The bytes a chunk frame carries.
fn chunk_len(chunk: &PeerFrame) -> u64 {
    match chunk {
        PeerFrame::SnapshotChunk { bytes, .. } => bytes.len() as u64,
        _ => 0,
    }
}

/// The offset just after a chunk frame's bytes.
fn chunk_end(chunk: &PeerFrame) -> u64 {
    match chunk {
        PeerFrame::SnapshotChunk { offset, bytes, .. } => offset + bytes.len() as u64,
        _ => 0,
    }
}
