//! What goes into `Core::step` and what comes out: the sans-IO boundary between the protocol and
//! its drivers (the node's protocol thread and the simulator).

use crate::ids::NodeId;
use crate::ids::{Member, MsgId, Seq, ViewId};
use crate::replication::{Checkpoint, Discarded, Universe};
use crate::wire::{Message, Payload, PeerFrame};

/// Something that happened to a member.
#[derive(Debug)]
pub enum Input {
    /// A frame arrived over the up link to `from`.
    Frame {
        /// The peer at the other end of the link.
        from: NodeId,
        /// The decoded frame.
        frame: PeerFrame,
    },
    /// A link to `peer` completed its handshake.
    LinkUp {
        /// The member at the other end.
        peer: Member,
    },
    /// The link to `peer` closed, broke or could not be established.
    LinkDown {
        /// The peer.
        peer: NodeId,
    },
    /// The application submits a message; `tag` comes back with its commit or rejection.
    Submit {
        /// The driver's correlation number; never sent on the wire.
        tag: u64,
        /// The bytes to order.
        payload: Payload,
    },
    /// A linearizable read waits for a read barrier (docs/PROTOCOL.md §3, read barrier); `tag`
    /// comes back with `Output::ReadReady` or `Output::Rejected`.
    Read {
        /// The driver's correlation number.
        tag: u64,
    },
    /// Nothing happened, but a deadline may have passed.
    Tick,
    /// Leave the group cleanly.
    Leave,
    /// An operator asks this member to form a primary although a quorum is gone
    /// (docs/PROTOCOL.md §5.8); `tag` comes back with `Output::Forced`.
    Force {
        /// The driver's correlation number.
        tag: u64,
        /// Whether to go ahead; otherwise only report what would be done.
        confirm: bool,
    },
}

/// Something the driver must do, in the order given.
#[derive(Debug)]
pub enum Output {
    /// Send a frame over the up link to `to`.
    Send {
        /// The peer.
        to: NodeId,
        /// The frame.
        frame: PeerFrame,
    },
    /// Establish a link to `peer` (the driver reports `LinkUp` or `LinkDown`).
    Connect {
        /// The peer.
        peer: NodeId,
    },
    /// Close the link to `peer` (the driver reports `LinkDown`).
    Disconnect {
        /// The peer.
        peer: NodeId,
    },
    /// A message in agreed order.
    Deliver(Delivery),
    /// A message is committed: safe at every member, applied to the state machine.
    Commit(Commit),
    /// The read barrier of `Input::Read` passed: this member's committed state now includes every
    /// commit acknowledged anywhere before the read arrived (docs/PROTOCOL.md §3, read barrier).
    /// The driver answers the read from the state before it steps the core again.
    ReadReady {
        /// The input's tag.
        tag: u64,
        /// The committed prefix the read may be answered from.
        upto: Seq,
    },
    /// A submission or read was refused.
    Rejected {
        /// The submission's tag.
        tag: u64,
        /// Why.
        reason: RejectReason,
    },
    /// A view was installed.
    ViewChange(ViewInfo),
    /// The member left the group after `Input::Leave`; the driver may stop.
    Left,
    /// Write this committed message to the command log (`Durability::Fsync` only). Every
    /// `Persist` of a step comes before the `Commit`s it belongs to: the driver syncs the log
    /// before it acknowledges them.
    Persist(Message),
    /// A new checkpoint: the state after every commit up to `seq`. The driver stores it (and
    /// may drop the logged commands up to it).
    Checkpoint(Checkpoint),
    /// The state was replaced by a donor's checkpoint (a join or restart): the driver stores it
    /// in place of every older durable file, which belong to a history this member left.
    Restored(Checkpoint),
    /// Memory the core let go of (a replaced state, an old checkpoint): the driver frees it
    /// off the protocol thread, since freeing a large state takes time proportional to it
    /// (docs/PROTOCOL.md §5.1). Dropping it anywhere is correct.
    Discard(Discarded),
    /// The universe changed (a committed change, or a restored checkpoint): the driver dials
    /// and accepts members at these addresses from now on (docs/PROTOCOL.md §5.9).
    Universe(Universe),
    /// The outcome of `Input::Force`.
    Forced {
        /// The input's tag.
        tag: u64,
        /// What happened.
        outcome: ForceOutcome,
    },
}

/// What a forced recovery did (docs/PROTOCOL.md §5.8); each carries the report for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForceOutcome {
    /// A forced primary view was installed.
    Formed(String),
    /// A dry run: what would be formed and what may be lost.
    DryRun(String),
    /// A quorum answered after all; the view change went on without forcing.
    NotNeeded(String),
    /// Nothing was done, and why (a newer history is reachable, say).
    Refused(String),
}

/// One agreed delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The view it was delivered in.
    pub view: ViewId,
    /// The message.
    pub message: Message,
}

/// One commit.
#[derive(Clone, Debug)]
pub struct Commit {
    /// Its place in the history.
    pub seq: Seq,
    /// The message committed.
    pub id: MsgId,
    /// The driver's tag, when this member submitted it.
    pub tag: Option<u64>,
    /// What the state machine returned; empty at a warm member for a message it did not submit
    /// (it does not apply it yet, docs/PROTOCOL.md §7).
    pub result: Vec<u8>,
}

/// Why a submission was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The submit queue is full.
    Busy,
    /// The payload exceeds the configured maximum.
    TooLarge,
    /// The member is leaving.
    ShuttingDown,
    /// The member was cut off from the primary view before the message committed; it rejoins as a
    /// new incarnation and the submission may be retried.
    Excluded,
    /// The member was in a view change for longer than it holds submissions
    /// (docs/PROTOCOL.md §8.1); the message was never stamped, so it may be retried elsewhere.
    ViewChange,
    /// A removal from the universe that would leave fewer members of the view than a quorum
    /// of the new universe (docs/PROTOCOL.md §5.9, the strict reconfiguration check); never
    /// ordered.
    QuorumLoss,
    /// The member was cut off or left after the message was stamped: the successor view commits
    /// it if its seq fell below that view's cut, and drops it otherwise; this member cannot tell
    /// which. A blind retry may order it twice; exactly-once needs a client session.
    OutcomeUnknown,
}

/// An installed view, as reported to the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewInfo {
    /// The view.
    pub view: ViewId,
    /// Its members in ring order.
    pub ring: Vec<Member>,
    /// Whether it may commit.
    pub primary: bool,
}

/// A snapshot of a member's state for status reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreStatus {
    /// This member.
    pub member: Member,
    /// The installed view.
    pub view: ViewInfo,
    /// Agreed deliveries by this incarnation.
    pub delivered: u64,
    /// Digest of those deliveries.
    pub delivery_digest: u64,
    /// The committed prefix.
    pub committed_upto: Seq,
    /// The state machine's digest (of the state after `applied_upto`).
    pub state_digest: u64,
    /// The last seq applied to the state machine: `committed_upto` at a hot member, possibly
    /// less at a warm one.
    pub applied_upto: Seq,
    /// The seq of the last checkpoint.
    pub checkpoint_seq: Seq,
    /// Whether this member is a hot standby in its view.
    pub hot: bool,
    /// Token visits seen.
    pub rotations: u64,
    /// Own messages waiting for the token.
    pub queued: usize,
    /// Replicas against the write quorum (docs/PROTOCOL.md §5.2).
    pub replicas: Replicas,
}

/// How many members hold the history against how many must (docs/PROTOCOL.md §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replicas {
    /// Members of the view; outside a primary, members the last attempt to form one found
    /// (0: it made none).
    pub in_view: usize,
    /// Members of the configuration that hold state (witnesses excluded).
    pub configured: usize,
    /// The write quorum of the view (outside one, the configured `W`).
    pub needed: usize,
}

/// The last state snapshot a member received whole (docs/PROTOCOL.md §5.3), for status and
/// measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Its bytes.
    pub bytes: u64,
    /// From its first chunk to its last.
    pub took: std::time::Duration,
}
