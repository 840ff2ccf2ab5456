//! The frames peers and clients exchange, as Rust values. Encoding is in `codec`.
//!
//! Every frame kind here has a one-byte tag on the wire (`FrameKind`) and a golden byte test.

use std::sync::Arc;

use super::codec::Versions;
use crate::ids::{Ballot, Member, MsgId, NodeId, Seq, ViewId, Voter};

/// Opaque application bytes, cheap to clone while a batch is forwarded round the ring.
pub type Payload = Arc<[u8]>;

/// One ordered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its place in the primary history.
    pub seq: Seq,
    /// Who sent it, stable across re-sends.
    pub id: MsgId,
    /// How many times its origin queued it again after a view change (0 the first time).
    pub attempt: u16,
    /// The application's bytes.
    pub payload: Payload,
}

/// The control token of one view (docs/PROTOCOL.md §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The view this token belongs to.
    pub view: ViewId,
    /// Full rotations completed, counted at the first ring position.
    pub rotation: u64,
    /// The next seq the holder may stamp.
    pub next_seq: Seq,
    /// Per ring position: that member's `received_upto` at its last visit.
    pub received: Vec<Seq>,
    /// Per ring position: that member's queue length at its last visit.
    pub backlog: Vec<u32>,
    /// Consecutive rotations in which nothing was stamped and everything was safe.
    pub quiet: u32,
    /// Payload bytes of the messages stamped in this view and not yet safe everywhere (seqs
    /// above the minimum of `received`): the byte window in use (docs/PROTOCOL.md §3).
    pub window_bytes: u64,
}

/// A stamped batch travelling round the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data {
    /// The view the messages were stamped in.
    pub view: ViewId,
    /// How many more members this copy is for, including the receiver.
    pub hops_left: u16,
    /// The messages, in seq order.
    pub messages: Vec<Message>,
}

/// Who votes on the successor of a primary view, how many votes that takes, and how many
/// members the view must keep (docs/PROTOCOL.md §5.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quorum {
    /// The processes whose promises and accepts count, at most one per id, by id.
    pub electorate: Vec<Voter>,
    /// The votes expected: a quorum is `expected / 2 + 1` of the electorate.
    pub expected: u16,
    /// The write quorum of the view: its ring, and the successor's, hold at least this many.
    pub min_replicas: u16,
}

impl Quorum {
    /// How many votes make a quorum.
    pub fn needed(&self) -> usize {
        usize::from(self.expected) / 2 + 1
    }

    /// Whether `voter` is one of the processes that vote.
    pub fn names(&self, voter: Voter) -> bool {
        self.electorate.contains(&voter)
    }
}

/// A proposed successor view (docs/PROTOCOL.md §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The new view's id: the previous primary's plus one (a new epoch after a forced recovery).
    pub view: ViewId,
    /// The previous primary view, whose electorate chooses this one.
    pub prev: ViewId,
    /// The last seq of the previous view that belongs to the history.
    pub cut: Seq,
    /// The new view's members in ring order.
    pub ring: Vec<Member>,
    /// A member that holds every message up to the cut and serves fetches.
    pub donor: NodeId,
    /// Who chooses the new view's successor, and its write quorum.
    pub quorum: Quorum,
}

/// What a participant tells the coordinator when it promises a ballot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promise {
    /// The ballot promised.
    pub ballot: Ballot,
    /// Who promises.
    pub member: Member,
    /// The incarnation its process started with: with `member.id`, the process that votes.
    pub boot: u64,
    /// Its last installed primary view (0: none).
    pub last_primary: ViewId,
    /// That view's members.
    pub last_primary_members: Vec<Member>,
    /// That view's quorum: who votes on its successor.
    pub quorum: Quorum,
    /// Whether it still holds that view's log as one of its members.
    pub holds_log: bool,
    /// The last proposal its process accepted (for the successor of the view it names), if any.
    pub accepted: Option<(Ballot, Proposal)>,
    /// Its contiguous received prefix.
    pub received_upto: Seq,
    /// Its committed prefix.
    pub committed_upto: Seq,
    /// Members it cannot use a link to.
    pub unreachable: Vec<NodeId>,
    /// Whether it is leaving the group.
    pub leaving: bool,
}

/// A handshake nonce: 32 bytes from the operating system's random generator, new for every
/// connection.
pub type Nonce = [u8; 32];

/// A handshake proof: HMAC-SHA-256 under the cluster key over the handshake's transcript
/// (`crate::auth`); all zero on an open cluster.
pub type Proof = [u8; 32];

/// How a connection is protected; both ends must run the same mode.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// No cluster key: nothing is proven and records are plain frames.
    Open = 0,
    /// Both ends prove the cluster key; every record carries a MAC.
    Mac = 1,
    /// As `Mac`, and records are encrypted (ChaCha20-Poly1305).
    Encrypt = 2,
}

impl AuthMode {
    /// The mode whose byte is `byte`, if any.
    pub fn from_byte(byte: u8) -> Option<AuthMode> {
        [AuthMode::Open, AuthMode::Mac, AuthMode::Encrypt].into_iter().find(|mode| *mode as u8 == byte)
    }

    /// The mode as operators name it.
    pub fn name(self) -> &'static str {
        match self {
            AuthMode::Open => "open (no cluster key)",
            AuthMode::Mac => "keyed",
            AuthMode::Encrypt => "keyed and encrypted",
        }
    }
}

/// A frame between two peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerFrame {
    /// Opens a link or a client connection: who I am, whom I expect, and my fresh nonce
    /// (handshake step 1 of 4, docs/PROTOCOL.md §2).
    Hello {
        /// Hash of the cluster name; links between different clusters are refused.
        cluster: u64,
        /// How the dialler protects the connection; a different mode is refused.
        mode: AuthMode,
        /// The dialling member; node id 0 for a client.
        from: Member,
        /// The id the dialler expects to reach; 0 for a client, which takes any member.
        to: NodeId,
        /// The dialler's fresh nonce.
        nonce: Nonce,
        /// The protocol versions the dialler speaks (docs/PROTOCOL.md §2.3); a version-1
        /// `Hello` carries none and means version 1 only.
        versions: Versions,
    },
    /// Accepts the link: the acceptor's proof that it holds the key (step 4 of 4).
    HelloAck {
        /// The acceptor's proof over the transcript.
        proof: Proof,
    },
    /// Keeps an otherwise idle link alive.
    Heartbeat,
    /// The control token.
    Token(Token),
    /// Ordered messages.
    Data(Data),
    /// Asks the parked token to move (docs/PROTOCOL.md §3, idle ring).
    Wake {
        /// The view whose token is wanted.
        view: ViewId,
        /// How many more members this request may pass.
        hops_left: u16,
    },
    /// Asks a member of the primary view to let the sender in.
    Join {
        /// The member that wants to join.
        member: Member,
        /// Its last primary view (0: none).
        last_primary: ViewId,
        /// The seq of the state it caught up to from a member of the primary (0: none), so it
        /// is let in with only the log after it to fetch (docs/PROTOCOL.md §5.3).
        caught_up: Seq,
        /// Whether a member of the primary is streaming it a checkpoint now: it is not to be let
        /// in before that ends.
        catching_up: bool,
    },
    /// Asks for the sender's removal from the view.
    Leave {
        /// The leaving member.
        member: Member,
    },
    /// Starts choosing a successor view.
    Prepare {
        /// The coordinator's ballot.
        ballot: Ballot,
        /// The coordinator's last primary view.
        last_primary: ViewId,
    },
    /// Promises a ballot (boxed: the largest peer frame by far).
    Promise(Box<Promise>),
    /// Refuses a ballot.
    Nack {
        /// The refused ballot.
        ballot: Ballot,
        /// The highest ballot the sender has promised.
        promised: Ballot,
        /// The sender's last primary view.
        last_primary: ViewId,
    },
    /// Asks the acceptors to accept a proposal.
    Accept {
        /// The coordinator's ballot.
        ballot: Ballot,
        /// The proposed view.
        proposal: Proposal,
    },
    /// Reports that the proposal of `ballot` is accepted and its prefix is held.
    Accepted {
        /// The accepted ballot.
        ballot: Ballot,
        /// Who accepted.
        member: Member,
    },
    /// The proposal of `ballot` is chosen: install it.
    Commit {
        /// The chosen ballot.
        ballot: Ballot,
        /// The chosen view.
        proposal: Proposal,
    },
    /// Asks the donor for messages `(after, upto]`, and a snapshot first if `snapshot`.
    Fetch {
        /// The ballot the fetch serves.
        ballot: Ballot,
        /// Fetch messages after this seq.
        after: Seq,
        /// Up to and including this seq.
        upto: Seq,
        /// Whether a state snapshot is needed first.
        snapshot: bool,
    },
    /// Messages sent in answer to `Fetch`.
    Retransmit {
        /// The ballot the fetch served.
        ballot: Ballot,
        /// The messages, in seq order.
        messages: Vec<Message>,
    },
    /// One piece of a state snapshot sent in answer to `Fetch`.
    SnapshotChunk {
        /// The ballot the fetch served.
        ballot: Ballot,
        /// The snapshot is the state after this seq.
        seq: Seq,
        /// Byte offset of this chunk.
        offset: u64,
        /// Total snapshot length.
        total: u64,
        /// The chunk.
        bytes: Payload,
    },
    /// Answers `Hello`: the acceptor and its fresh nonce (step 2 of 4).
    Challenge {
        /// The accepting member.
        from: Member,
        /// The acceptor's mode.
        mode: AuthMode,
        /// The acceptor's fresh nonce.
        nonce: Nonce,
        /// The protocol versions the acceptor speaks; the frame's own version is the one it
        /// chose for the connection (docs/PROTOCOL.md §2.3).
        versions: Versions,
    },
    /// The dialler's proof that it holds the key (step 3 of 4).
    Proof {
        /// The dialler's proof over the transcript.
        proof: Proof,
    },
    /// Acknowledges the snapshot chunks of `seq` before `offset` and asks for the next one: the
    /// donor sends a chunk only when the previous one was taken in (docs/PROTOCOL.md §5.3).
    SnapshotAck {
        /// The ballot of the transfer (zero: a catch-up outside any view change).
        ballot: Ballot,
        /// The snapshot's seq.
        seq: Seq,
        /// The bytes received so far: where the next chunk starts.
        offset: u64,
    },
}

/// A request from a client to the node it is connected to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientRequest {
    /// Broadcast `payload` in total order; answered once it is committed.
    Broadcast {
        /// Client-chosen request number, echoed in the reply.
        request: u64,
        /// The bytes to order.
        payload: Payload,
    },
    /// Ask for the node's status.
    Status {
        /// Client-chosen request number, echoed in the reply.
        request: u64,
    },
    /// Run one state machine command (put, get, delete, range, transaction); answered with
    /// `ClientReply::Executed` (docs/PROTOCOL.md §8).
    Execute {
        /// Client-chosen request number, echoed in the reply.
        request: u64,
        /// Whether a read may be served from the node's local state.
        consistency: Consistency,
        /// An encoded `replication::Command`, which carries the client session.
        command: Payload,
    },
    /// Stream the committed changes of keys under `prefix`, from revision `from` on.
    Watch {
        /// Client-chosen request number, echoed in every `ClientReply::Events`.
        request: u64,
        /// The key prefix (empty: every key).
        prefix: Payload,
        /// The first revision wanted; 0 means the changes after the current revision.
        from: u64,
    },
    /// Ask for the configured members and their addresses.
    Members {
        /// Client-chosen request number, echoed in the reply.
        request: u64,
    },
    /// Ask the node to leave the group cleanly and stop.
    Leave {
        /// Client-chosen request number, echoed in the reply.
        request: u64,
    },
    /// Ask the node to form a primary from the newest history it can reach although a quorum
    /// is gone (docs/PROTOCOL.md §5.8); without `confirm` it only reports what it would do.
    ForcePrimary {
        /// Client-chosen request number, echoed in the reply.
        request: u64,
        /// Whether to go ahead; otherwise a dry run.
        confirm: bool,
    },
}

impl ClientRequest {
    /// The client-chosen request number its reply carries.
    pub fn number(&self) -> u64 {
        match self {
            ClientRequest::Broadcast { request, .. }
            | ClientRequest::Status { request }
            | ClientRequest::Execute { request, .. }
            | ClientRequest::Watch { request, .. }
            | ClientRequest::Members { request }
            | ClientRequest::Leave { request }
            | ClientRequest::ForcePrimary { request, .. } => *request,
        }
    }

    /// Bytes of client data it holds (payload, command or prefix): what a node waiting to serve
    /// it keeps in memory beyond the fixed fields.
    pub fn data_bytes(&self) -> usize {
        match self {
            ClientRequest::Broadcast { payload: data, .. }
            | ClientRequest::Execute { command: data, .. }
            | ClientRequest::Watch { prefix: data, .. } => data.len(),
            ClientRequest::Status { .. }
            | ClientRequest::Members { .. }
            | ClientRequest::Leave { .. }
            | ClientRequest::ForcePrimary { .. } => 0,
        }
    }
}

/// How a read request may be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Ordered through the ring: the read sees every write committed before it was sent.
    Linearizable,
    /// Served from the answering member's state, which may lag the primary history.
    Stale,
}

/// One committed change of one key, as a watch streams it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The revision of the change.
    pub revision: u64,
    /// Whether the key was written or removed.
    pub kind: WatchKind,
    /// The key.
    pub key: Payload,
    /// The new value (empty for a removal).
    pub value: Payload,
}

/// What happened to a watched key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchKind {
    /// Created or overwritten.
    Put,
    /// Removed.
    Delete,
}

/// One configured member as a node reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's id.
    pub id: NodeId,
    /// Where it listens for peers and clients, as configured.
    pub addr: String,
    /// Its incarnation in the answering node's view, 0 if it is not in that view.
    pub incarnation: u64,
    /// Its role in that view (`None` if it is not in it).
    pub role: StandbyRole,
    /// Its contiguous received prefix as the answering node last saw it on the token (0 if not
    /// in the view): what the ring already carries, so one member can report every member's lag
    /// (docs/PROTOCOL.md §8).
    pub received_upto: Seq,
}

/// A node's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientReply {
    /// The broadcast of `request` is committed at `seq`.
    Committed {
        /// The request answered.
        request: u64,
        /// Where it is in the history.
        seq: Seq,
    },
    /// The node's status.
    Status {
        /// The request answered.
        request: u64,
        /// The status.
        status: NodeStatus,
    },
    /// The outcome of an `Execute`.
    Executed {
        /// The request answered.
        request: u64,
        /// The seq the command committed at; 0 for a stale read served locally.
        seq: Seq,
        /// An encoded `replication::Outcome`.
        outcome: Payload,
    },
    /// Committed changes for a watch; the first (possibly empty) batch confirms the watch.
    Events {
        /// The watch request.
        request: u64,
        /// The node's revision when the batch was sent: every change up to it has been streamed.
        revision: u64,
        /// The changes, in revision order.
        events: Vec<WatchEvent>,
    },
    /// The configured members.
    Members {
        /// The request answered.
        request: u64,
        /// Every configured member, by id.
        members: Vec<MemberInfo>,
    },
    /// The node has started to leave the group.
    Leaving {
        /// The request answered.
        request: u64,
    },
    /// The forced recovery's report: what was formed (or, in a dry run, would be) and what may
    /// be lost (docs/PROTOCOL.md §5.8).
    Forced {
        /// The request answered.
        request: u64,
        /// Whether a primary was formed (false for a dry run).
        formed: bool,
        /// The report, one line per point.
        report: String,
    },
    /// The request failed.
    Error {
        /// The request answered.
        request: u64,
        /// Why.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
}

/// Why a client request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The node's queues are full; retry later.
    Busy,
    /// The node is not in a primary view.
    NoQuorum,
    /// The request was malformed.
    BadRequest,
    /// The node is shutting down.
    ShuttingDown,
    /// The request was ordered but the node lost its place in the primary view before it saw
    /// the outcome: it may or may not have committed.
    OutcomeUnknown,
    /// A watch asked for revisions the node no longer (or never) held in its change history.
    Compacted,
    /// The node is not in a primary view because too few members are connected for the write
    /// quorum `W` (docs/PROTOCOL.md §5.2); the message says how many.
    NotEnoughReplicas,
    /// The node refused an operator request (a forced recovery that would lose newer history).
    Refused,
}

/// A node's view of itself, for `status` and for the demo's verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node.
    pub member: Member,
    /// The installed view (0: none).
    pub view: ViewId,
    /// Whether that view is primary.
    pub primary: bool,
    /// The view's members in ring order.
    pub ring: Vec<Member>,
    /// Messages delivered in agreed order by this incarnation.
    pub delivered: u64,
    /// The committed prefix of the history.
    pub committed_upto: Seq,
    /// Digest of the committed history (the state machine's digest).
    pub state_digest: u64,
    /// Digest of this incarnation's agreed deliveries.
    pub delivery_digest: u64,
    /// Token rotations seen.
    pub rotations: u64,
    /// The state machine's revision (changing commands applied).
    pub revision: u64,
    /// Token rotations per second over the last few seconds, in thousandths.
    pub rotation_millihertz: u64,
    /// This member's standby role.
    pub role: StandbyRole,
    /// The seq of this member's last checkpoint, 0 if it has taken none.
    pub last_checkpoint: Seq,
    /// Replicas: members in the view, or outside a primary those found by the last attempt to
    /// form one (0 when it made none).
    pub replicas: u16,
    /// Members of the configuration that hold state (witnesses excluded).
    pub configured: u16,
    /// The write quorum `W` the view keeps (the configured one outside a view).
    pub min_replicas: u16,
    /// The longest protocol step since the member started, in microseconds: what its
    /// neighbours' failure detectors must tolerate (docs/PROTOCOL.md §5.1).
    pub max_step_us: u64,
    /// The bytes of its replicated state's canonical encoding (what a checkpoint writes).
    pub state_bytes: u64,
    /// Peer links up now (its ring neighbours in a stable view, docs/PROTOCOL.md §4).
    pub links_up: u32,
    /// Peer connections this process has dialled since it started.
    pub links_dialled: u64,
    /// Peer links other members dialled to it that completed their handshake.
    pub links_accepted: u64,
    /// The member's software version (`harness --version`), so a rolling upgrade shows who runs what.
    pub version: String,
    /// Its counters and gauges (`crate::metrics`; at most `metrics::SAMPLES_MAX`), as
    /// `harness metrics` prints them.
    pub metrics: Vec<crate::metrics::Sample>,
}

/// A member's standby role as reported in its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StandbyRole {
    /// Not in a view: applies nothing.
    None,
    /// Applies every commit as it happens.
    Hot,
    /// Holds checkpoints and the log after them.
    Warm,
    /// Votes on views and holds no state (docs/PROTOCOL.md §5.7).
    Witness,
}

/// What a frame costs in memory beyond its variable parts: a generous flat allowance for the
/// fixed fields, vectors of ids and the allocations that hold them.
const FRAME_FIXED_BYTES: usize = 256;
/// What one message of a `Data` or `Retransmit` costs beyond its payload.
const MESSAGE_FIXED_BYTES: usize = 64;

impl PeerFrame {
    /// The frame's kind (its byte on the wire and its name in logs).
    pub fn kind(&self) -> super::FrameKind {
        super::body::peer_kind(self)
    }

    /// About what a member holds while this frame waits to be handled: its payloads and chunks
    /// in full, the rest as a flat allowance (docs/PROTOCOL.md §2.2, the channels' byte caps).
    pub fn held_bytes(&self) -> usize {
        let messages = |messages: &[Message]| {
            messages.iter().map(|m| m.payload.len() + MESSAGE_FIXED_BYTES).sum::<usize>()
        };
        FRAME_FIXED_BYTES
            + match self {
                PeerFrame::Data(data) => messages(&data.messages),
                PeerFrame::Retransmit { messages: m, .. } => messages(m),
                PeerFrame::SnapshotChunk { bytes, .. } => bytes.len(),
                PeerFrame::Token(token) => token.received.len() * 12,
                _ => 0,
            }
    }
}
