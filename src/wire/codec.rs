//! The byte encoding of every frame: framing (length prefix, version, kind, CRC-32), the kind
//! bytes, and the public encode/decode entry points. The bodies are in `body`.
//!
//! ```text
//! u32 length | u8 version | u8 kind | body | u32 checksum
//! ```
//! `length` counts the bytes after itself; `checksum` is the CRC-32 (IEEE) of version..body. All
//! integers are big-endian. The checksum is verified before anything else is parsed, so a
//! corrupted frame is reported as `Checksum` rather than as whatever field the damage hit; a
//! single flipped bit anywhere after the prefix is always caught (CRC-32 detects every burst
//! shorter than 33 bits). Bytes from the network never panic the decoder and never make it
//! allocate more than the frame holds (rustls `src/msgs/codec.rs`).

use byteorder::{BigEndian, ByteOrder};

use super::body::{get_body, peer_kind, put_peer, put_reply, put_request, reply_kind, request_kind};
use super::bytes::{invalid, put_u32, Reader};
use super::frame::{ClientReply, ClientRequest, PeerFrame};
use crate::error::DecodeError;

/// The highest protocol version this build speaks, and the one its frames carry unless a
/// connection chose an older one in its handshake (docs/PROTOCOL.md §2.3).
pub const VERSION: u8 = 2;
/// The lowest protocol version this build speaks.
pub const VERSION_MIN: u8 = 1;

/// A range of protocol versions, as a handshake carries it (docs/PROTOCOL.md §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Versions {
    /// The lowest version spoken.
    pub min: u8,
    /// The highest version spoken.
    pub max: u8,
}

impl Versions {
    /// Every version this build speaks.
    pub const ALL: Versions = Versions { min: VERSION_MIN, max: VERSION };

    /// What a build of version 1 speaks, and what a version-1 `Hello` or `Challenge` implies.
    pub const LEGACY: Versions = Versions { min: 1, max: 1 };

    /// The versions of this build up to `max` (`--protocol-version`), or why not.
    pub fn up_to(max: u8) -> Result<Versions, String> {
        if (VERSION_MIN..=VERSION).contains(&max) {
            Ok(Versions { min: VERSION_MIN, max })
        } else {
            Err(format!("this build speaks protocol versions {}", Versions::ALL))
        }
    }

    /// Whether `version` is in the range.
    pub fn contains(self, version: u8) -> bool {
        (self.min..=self.max).contains(&version)
    }

    /// The highest version both ranges hold, if any.
    pub fn highest_common(self, other: Versions) -> Option<u8> {
        let (low, high) = (self.min.max(other.min), self.max.min(other.max));
        (low <= high).then_some(high)
    }
}

impl std::fmt::Display for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{} to {}", self.min, self.max)
        }
    }
}

/// The largest frame, length prefix included. Bounds every buffer a link keeps for one frame.
pub const FRAME_BYTES_MAX: usize = 16 << 20;

/// Bytes of the length prefix.
const LENGTH_BYTES: usize = 4;
/// Bytes of the checksum.
const CHECKSUM_BYTES: usize = 4;
/// The smallest value of the length prefix: version, kind, an empty body and the checksum.
const LENGTH_MIN: usize = 1 + 1 + CHECKSUM_BYTES;

/// The kind byte of a frame. Peer frames are 1..=19 in the order of `PeerFrame`'s variants,
/// client requests start at 64 and client replies at 96, so the byte alone says who may send it.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrameKind {
    /// `PeerFrame::Hello`.
    Hello = 1,
    /// `PeerFrame::HelloAck`.
    HelloAck = 2,
    /// `PeerFrame::Heartbeat`.
    Heartbeat = 3,
    /// `PeerFrame::Token`.
    Token = 4,
    /// `PeerFrame::Data`.
    Data = 5,
    /// `PeerFrame::Wake`.
    Wake = 6,
    /// `PeerFrame::Join`.
    Join = 7,
    /// `PeerFrame::Leave`.
    Leave = 8,
    /// `PeerFrame::Prepare`.
    Prepare = 9,
    /// `PeerFrame::Promise`.
    Promise = 10,
    /// `PeerFrame::Nack`.
    Nack = 11,
    /// `PeerFrame::Accept`.
    Accept = 12,
    /// `PeerFrame::Accepted`.
    Accepted = 13,
    /// `PeerFrame::Commit`.
    Commit = 14,
    /// `PeerFrame::Fetch`.
    Fetch = 15,
    /// `PeerFrame::Retransmit`.
    Retransmit = 16,
    /// `PeerFrame::SnapshotChunk`.
    SnapshotChunk = 17,
    /// `PeerFrame::Challenge`.
    Challenge = 18,
    /// `PeerFrame::Proof`.
    Proof = 19,
    /// `PeerFrame::SnapshotAck`.
    SnapshotAck = 20,
    /// `ClientRequest::Broadcast`.
    Broadcast = 64,
    /// `ClientRequest::Status`.
    StatusRequest = 65,
    /// `ClientRequest::Execute`.
    Execute = 66,
    /// `ClientRequest::Watch`.
    Watch = 67,
    /// `ClientRequest::Members`.
    MembersRequest = 68,
    /// `ClientRequest::Leave`.
    LeaveRequest = 69,
    /// `ClientRequest::ForcePrimary`.
    ForcePrimary = 70,
    /// `ClientReply::Committed`.
    Committed = 96,
    /// `ClientReply::Status`.
    StatusReply = 97,
    /// `ClientReply::Error`.
    Error = 98,
    /// `ClientReply::Executed`.
    Executed = 99,
    /// `ClientReply::Events`.
    Events = 100,
    /// `ClientReply::Members`.
    MembersReply = 101,
    /// `ClientReply::Leaving`.
    Leaving = 102,
    /// `ClientReply::Forced`.
    Forced = 103,
}

impl FrameKind {
    /// Every kind, in byte order.
    pub const ALL: [FrameKind; 35] = [
        FrameKind::Hello,
        FrameKind::HelloAck,
        FrameKind::Heartbeat,
        FrameKind::Token,
        FrameKind::Data,
        FrameKind::Wake,
        FrameKind::Join,
        FrameKind::Leave,
        FrameKind::Prepare,
        FrameKind::Promise,
        FrameKind::Nack,
        FrameKind::Accept,
        FrameKind::Accepted,
        FrameKind::Commit,
        FrameKind::Fetch,
        FrameKind::Retransmit,
        FrameKind::SnapshotChunk,
        FrameKind::Challenge,
        FrameKind::Proof,
        FrameKind::SnapshotAck,
        FrameKind::Broadcast,
        FrameKind::StatusRequest,
        FrameKind::Execute,
        FrameKind::Watch,
        FrameKind::MembersRequest,
        FrameKind::LeaveRequest,
        FrameKind::ForcePrimary,
        FrameKind::Committed,
        FrameKind::StatusReply,
        FrameKind::Error,
        FrameKind::Executed,
        FrameKind::Events,
        FrameKind::MembersReply,
        FrameKind::Leaving,
        FrameKind::Forced,
    ];

    /// The kind whose byte is `byte`, if any.
    pub fn from_byte(byte: u8) -> Option<FrameKind> {
        FrameKind::ALL.into_iter().find(|kind| *kind as u8 == byte)
    }

    /// The kind's name, for logs that must not print a frame's contents.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Hello => "hello",
            FrameKind::HelloAck => "hello-ack",
            FrameKind::Heartbeat => "heartbeat",
            FrameKind::Token => "token",
            FrameKind::Data => "data",
            FrameKind::Wake => "wake",
            FrameKind::Join => "join",
            FrameKind::Leave => "leave",
            FrameKind::Prepare => "prepare",
            FrameKind::Promise => "promise",
            FrameKind::Nack => "nack",
            FrameKind::Accept => "accept",
            FrameKind::Accepted => "accepted",
            FrameKind::Commit => "commit",
            FrameKind::Fetch => "fetch",
            FrameKind::Retransmit => "retransmit",
            FrameKind::SnapshotChunk => "snapshot-chunk",
            FrameKind::Challenge => "challenge",
            FrameKind::Proof => "proof",
            FrameKind::SnapshotAck => "snapshot-ack",
            FrameKind::Broadcast => "broadcast",
            FrameKind::StatusRequest => "status-request",
            FrameKind::Execute => "execute",
            FrameKind::Watch => "watch",
            FrameKind::MembersRequest => "members-request",
            FrameKind::LeaveRequest => "leave-request",
            FrameKind::ForcePrimary => "force-primary",
            FrameKind::Committed => "committed",
            FrameKind::StatusReply => "status-reply",
            FrameKind::Error => "error",
            FrameKind::Executed => "executed",
            FrameKind::Events => "events",
            FrameKind::MembersReply => "members-reply",
            FrameKind::Leaving => "leaving",
            FrameKind::Forced => "forced",
        }
    }
}

/// One decoded frame of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A frame between peers.
    Peer(PeerFrame),
    /// A client's request.
    Request(ClientRequest),
    /// A node's reply to a client.
    Reply(ClientReply),
}

/// Appends one whole frame (length prefix .. checksum) to `out`.
///
/// # Panics
/// If the frame would exceed `FRAME_BYTES_MAX`, or a `Token`'s vectors differ in length: the
/// core bounds batches, fetches and payloads, so either is a bug, not an input error.
pub fn encode_peer(frame: &PeerFrame, out: &mut Vec<u8>) {
    encode_peer_in(VERSION, frame, out);
}

/// `encode_peer` in protocol `version` (one this build speaks: `Versions::ALL`).
pub fn encode_peer_in(version: u8, frame: &PeerFrame, out: &mut Vec<u8>) {
    encode_frame(out, version, peer_kind(frame), |out| put_peer(out, version, frame));
}

/// Appends one whole client request frame to `out`.
///
/// # Panics
/// If the frame would exceed `FRAME_BYTES_MAX` (see `encode_peer`).
pub fn encode_request(request: &ClientRequest, out: &mut Vec<u8>) {
    encode_request_in(VERSION, request, out);
}

/// `encode_request` in protocol `version` (one this build speaks).
pub fn encode_request_in(version: u8, request: &ClientRequest, out: &mut Vec<u8>) {
    encode_frame(out, version, request_kind(request), |out| put_request(out, request));
}

/// Appends one whole client reply frame to `out`. An error message longer than 65535 bytes is
/// cut at a character boundary.
///
/// # Panics
/// If the frame would exceed `FRAME_BYTES_MAX` (see `encode_peer`).
pub fn encode_reply(reply: &ClientReply, out: &mut Vec<u8>) {
    encode_reply_in(VERSION, reply, out);
}

/// `encode_reply` in protocol `version` (one this build speaks): a version-1 status reply has
/// neither the software version nor the metrics.
pub fn encode_reply_in(version: u8, reply: &ClientReply, out: &mut Vec<u8>) {
    encode_frame(out, version, reply_kind(reply), |out| put_reply(out, version, reply));
}

/// Writes the envelope around the body that `body` appends.
fn encode_frame(out: &mut Vec<u8>, version: u8, kind: FrameKind, body: impl FnOnce(&mut Vec<u8>)) {
    debug_assert!(Versions::ALL.contains(version), "encoding in protocol version {version}");
    let start = out.len();
    // The length is known only once the body is written; patched below.
    out.extend_from_slice(&[0; LENGTH_BYTES]);
    out.push(version);
    out.push(kind as u8);
    body(out);
    let checksum = crc32fast::hash(&out[start + LENGTH_BYTES..]);
    put_u32(out, checksum);
    let total = out.len() - start;
    assert!(total <= FRAME_BYTES_MAX, "a {kind:?} frame of {total} bytes exceeds {FRAME_BYTES_MAX}");
    BigEndian::write_u32(&mut out[start..start + LENGTH_BYTES], (total - LENGTH_BYTES) as u32);
}

/// If `buf` starts with a complete frame, its total length (prefix included); `Ok(None)` if more
/// bytes are needed; `Err(DecodeError::TooLarge)` as soon as the announced length exceeds
/// `FRAME_BYTES_MAX` (or `DecodeError::Invalid` naming "length" if it is too small to be a
/// frame), so a link can drop a bad peer before buffering what it announced.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    frame_len_within(buf, FRAME_BYTES_MAX)
}

/// `frame_len` with a lower maximum than `FRAME_BYTES_MAX` (it is capped at that): a connection
/// that may only send small frames, such as one still in its handshake or a client, is refused
/// as soon as it announces more.
pub fn frame_len_within(buf: &[u8], frame_bytes_max: usize) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buf.get(..LENGTH_BYTES) else {
        return Ok(None);
    };
    let max = frame_bytes_max.min(FRAME_BYTES_MAX) as u64;
    let length = BigEndian::read_u32(prefix);
    // u64 so that the sum cannot overflow on any platform.
    let total = LENGTH_BYTES as u64 + u64::from(length);
    if total > max {
        return Err(DecodeError::TooLarge { length: total, max });
    }
    let total = total as usize;
    if total - LENGTH_BYTES < LENGTH_MIN {
        return Err(invalid("length", format!("{length} bytes cannot hold a frame (at least {LENGTH_MIN})")));
    }
    Ok((buf.len() >= total).then_some(total))
}

/// The request number of a `Broadcast` frame from its first bytes, before the whole frame is
/// there: a node that refuses a request as too large can still name it in its error reply.
pub fn peek_broadcast_request(buf: &[u8]) -> Option<u64> {
    let header = buf.get(..LENGTH_BYTES + 2 + 8)?;
    (header[LENGTH_BYTES + 1] == FrameKind::Broadcast as u8)
        .then(|| BigEndian::read_u64(&header[LENGTH_BYTES + 2..]))
}

/// Decodes one complete frame as returned by `frame_len` (prefix included), of any version this
/// build speaks.
pub fn decode(frame: &[u8]) -> Result<Frame, DecodeError> {
    decode_within(frame, Versions::ALL).map(|(_, frame)| frame)
}

/// Decodes one complete frame of a version in `versions` (a subset of `Versions::ALL`): the
/// frame and the version it was encoded in.
pub fn decode_within(frame: &[u8], versions: Versions) -> Result<(u8, Frame), DecodeError> {
    let total = match frame_len(frame)? {
        Some(total) => total,
        None if frame.len() < LENGTH_BYTES => return Err(DecodeError::Truncated { field: "length" }),
        None => return Err(DecodeError::Truncated { field: "frame" }),
    };
    if frame.len() > total {
        return Err(DecodeError::TrailingBytes { count: frame.len() - total });
    }
    let (covered, checksum) = frame[LENGTH_BYTES..].split_at(total - LENGTH_BYTES - CHECKSUM_BYTES);
    if crc32fast::hash(covered) != BigEndian::read_u32(checksum) {
        return Err(DecodeError::Checksum);
    }

    let mut r = Reader::new(covered);
    let version = r.u8("version")?;
    if !versions.contains(version) {
        return Err(DecodeError::Version { theirs: version, ours: versions });
    }
    let kind_byte = r.u8("kind")?;
    let kind = FrameKind::from_byte(kind_byte)
        .ok_or_else(|| invalid("kind", format!("unknown frame kind {kind_byte}")))?;
    let decoded = get_body(version, kind, &mut r)?;
    // Every value has exactly one encoding; bytes the body did not account for mean the
    // sender and receiver disagree about the layout.
    if r.remaining() > 0 {
        return Err(DecodeError::TrailingBytes { count: r.remaining() });
    }
    Ok((version, decoded))
}

#[cfg(test)]
mod tests;
