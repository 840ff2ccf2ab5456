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

/// The wire format version every frame carries; a frame of another version is rejected.
pub const VERSION: u8 = 1;

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
    encode_frame(out, peer_kind(frame), |out| put_peer(out, frame));
}

/// Appends one whole client request frame to `out`.
///
/// # Panics
/// If the frame would exceed `FRAME_BYTES_MAX` (see `encode_peer`).
pub fn encode_request(request: &ClientRequest, out: &mut Vec<u8>) {
    encode_frame(out, request_kind(request), |out| put_request(out, request));
}

/// Appends one whole client reply frame to `out`. An error message longer than 65535 bytes is
/// cut at a character boundary.
///
/// # Panics
/// If the frame would exceed `FRAME_BYTES_MAX` (see `encode_peer`).
pub fn encode_reply(reply: &ClientReply, out: &mut Vec<u8>) {
    encode_frame(out, reply_kind(reply), |out| put_reply(out, reply));
}

/// Writes the envelope around the body that `body` appends.
fn encode_frame(out: &mut Vec<u8>, kind: FrameKind, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    // The length is known only once the body is written; patched below.
    out.extend_from_slice(&[0; LENGTH_BYTES]);
    out.push(VERSION);
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

/// Decodes one complete frame as returned by `frame_len` (prefix included).
pub fn decode(frame: &[u8]) -> Result<Frame, DecodeError> {
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
    if version != VERSION {
        return Err(invalid("version", format!("version {version} is not the supported {VERSION}")));
    }
    let kind_byte = r.u8("kind")?;
    let kind = FrameKind::from_byte(kind_byte)
        .ok_or_else(|| invalid("kind", format!("unknown frame kind {kind_byte}")))?;
    let decoded = get_body(kind, &mut r)?;
    // Every value has exactly one encoding; bytes the body did not account for mean the
    // sender and receiver disagree about the layout.
    if r.remaining() > 0 {
        return Err(DecodeError::TrailingBytes { count: r.remaining() });
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;
    use crate::ids::{Ballot, Member, MsgId, NodeId, ViewId, Voter};
    use crate::rng::Rng;
    use crate::wire::arbitrary::{mutate, random_frame, random_message, random_promise, seal};
    use crate::wire::frame::{
        AuthMode, Consistency, Data, ErrorCode, MemberInfo, Message, NodeStatus, Promise, Proposal, Quorum,
        StandbyRole, Token, WatchEvent, WatchKind,
    };

    fn encode(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        match frame {
            Frame::Peer(frame) => encode_peer(frame, &mut out),
            Frame::Request(request) => encode_request(request, &mut out),
            Frame::Reply(reply) => encode_reply(reply, &mut out),
        }
        out
    }

    /// Hex digits with whitespace between fields, as the golden literals are written.
    fn unhex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        assert!(digits.len().is_multiple_of(2), "odd number of hex digits in {text:?}");
        digits
            .chunks(2)
            .map(|pair| {
                let pair = std::str::from_utf8(pair).expect("hex literal is ASCII");
                u8::from_str_radix(pair, 16).expect("hex literal holds hex digits")
            })
            .collect()
    }

    /// 32 bytes counting up from `first`, as nonces and proofs in the goldens.
    fn counting(first: u8) -> [u8; 32] {
        std::array::from_fn(|i| first + i as u8)
    }

    fn member1() -> Member {
        Member { id: NodeId(1), incarnation: 6 }
    }

    fn member2() -> Member {
        Member { id: NodeId(2), incarnation: 7 }
    }

    fn ballot() -> Ballot {
        Ballot { round: 3, node: NodeId(1) }
    }

    fn message1() -> Message {
        Message {
            seq: 0x10,
            id: MsgId { origin: NodeId(2), incarnation: 7, counter: 1 },
            attempt: 0,
            payload: Arc::from(&b"hi"[..]),
        }
    }

    fn message2() -> Message {
        Message {
            seq: 0x11,
            id: MsgId { origin: NodeId(3), incarnation: 8, counter: 4 },
            attempt: 1,
            payload: Arc::from(&b""[..]),
        }
    }

    fn proposal() -> Proposal {
        Proposal {
            view: ViewId(5),
            prev: ViewId(4),
            cut: 0x20,
            ring: vec![member2(), member1()],
            donor: NodeId(1),
            quorum: quorum(),
        }
    }

    fn quorum() -> Quorum {
        Quorum {
            electorate: vec![Voter { id: NodeId(1), boot: 6 }, Voter { id: NodeId(2), boot: 7 }],
            expected: 3,
            min_replicas: 2,
        }
    }

    fn error(code: ErrorCode, message: &str) -> Frame {
        Frame::Reply(ClientReply::Error { request: 0x2c, code, message: message.to_owned() })
    }

    /// Every frame kind (both `Promise` shapes, every `ErrorCode`) with its exact bytes, written
    /// field by field: `length version kind body.. checksum`. A change to the format must fail
    /// here on purpose; the checksums were computed independently of this crate (zlib).
    fn goldens() -> Vec<(&'static str, Frame, &'static str)> {
        vec![
            (
                "hello",
                Frame::Peer(PeerFrame::Hello {
                    cluster: 0x0123_4567_89ab_cdef,
                    mode: AuthMode::Mac,
                    from: member2(),
                    to: NodeId(3),
                    nonce: counting(0x00),
                }),
                "0000003b 01 01  0123456789abcdef  01  0002 0000000000000007  0003
                 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f  00b20f2b",
            ),
            (
                "hello_ack",
                Frame::Peer(PeerFrame::HelloAck { proof: counting(0x20) }),
                "00000026 01 02  202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f  e7ba4fb4",
            ),
            ("heartbeat", Frame::Peer(PeerFrame::Heartbeat), "00000006 01 03  c1cb7204"),
            (
                "token",
                Frame::Peer(PeerFrame::Token(Token {
                    view: ViewId(5),
                    rotation: 9,
                    next_seq: 0x10,
                    received: vec![4, 6],
                    backlog: vec![0, 2],
                    quiet: 1,
                })),
                "00000042 01 04  0000000000000005 0000000000000009 0000000000000010
                 00000002 0000000000000004 0000000000000006  00000002 00000000 00000002
                 00000001  584b2d56",
            ),
            (
                "data",
                Frame::Peer(PeerFrame::Data(Data {
                    view: ViewId(5),
                    hops_left: 2,
                    messages: vec![message1(), message2()],
                })),
                "00000056 01 05  0000000000000005 0002 00000002
                 0000000000000010 0002 0000000000000007 0000000000000001 0000 00000002 6869
                 0000000000000011 0003 0000000000000008 0000000000000004 0001 00000000  4b8e379e",
            ),
            (
                "wake",
                Frame::Peer(PeerFrame::Wake { view: ViewId(5), hops_left: 2 }),
                "00000010 01 06  0000000000000005 0002  e000e384",
            ),
            (
                "join",
                Frame::Peer(PeerFrame::Join {
                    member: member2(),
                    last_primary: ViewId(4),
                    caught_up: 0x20,
                    catching_up: true,
                }),
                "00000021 01 07  0002 0000000000000007  0000000000000004  0000000000000020 01  73561a14",
            ),
            (
                "leave",
                Frame::Peer(PeerFrame::Leave { member: member2() }),
                "00000010 01 08  0002 0000000000000007  ea21d660",
            ),
            (
                "prepare",
                Frame::Peer(PeerFrame::Prepare { ballot: ballot(), last_primary: ViewId(4) }),
                "00000018 01 09  0000000000000003 0001  0000000000000004  3d058b4d",
            ),
            (
                "promise_with_accepted_proposal",
                Frame::Peer(PeerFrame::Promise(Box::new(Promise {
                    ballot: ballot(),
                    member: member2(),
                    boot: 7,
                    last_primary: ViewId(4),
                    last_primary_members: vec![member1(), member2()],
                    quorum: quorum(),
                    holds_log: true,
                    accepted: Some((ballot(), proposal())),
                    received_upto: 0x20,
                    committed_upto: 0x1e,
                    unreachable: vec![NodeId(3)],
                    leaving: false,
                }))),
                "000000cf 01 0a  0000000000000003 0001  0002 0000000000000007  0000000000000007
                 0000000000000004  00000002 0001 0000000000000006 0002 0000000000000007
                 00000002 0001 0000000000000006 0002 0000000000000007 0003 0002  01
                 01 0000000000000003 0001
                    0000000000000005 0000000000000004 0000000000000020
                    00000002 0002 0000000000000007 0001 0000000000000006  0001
                    00000002 0001 0000000000000006 0002 0000000000000007 0003 0002
                 0000000000000020 000000000000001e  00000001 0003  00  c8264e99",
            ),
            (
                "promise_fresh",
                Frame::Peer(PeerFrame::Promise(Box::new(Promise {
                    ballot: ballot(),
                    member: Member { id: NodeId(3), incarnation: 9 },
                    boot: 9,
                    last_primary: ViewId(0),
                    last_primary_members: vec![],
                    quorum: Quorum::default(),
                    holds_log: false,
                    accepted: None,
                    received_upto: 0,
                    committed_upto: 0,
                    unreachable: vec![],
                    leaving: true,
                }))),
                "0000004d 01 0a  0000000000000003 0001  0003 0000000000000009  0000000000000009
                 0000000000000000  00000000  00000000 0000 0000  00  00
                 0000000000000000 0000000000000000  00000000  01  69a8b7f2",
            ),
            (
                "nack",
                Frame::Peer(PeerFrame::Nack {
                    ballot: ballot(),
                    promised: Ballot { round: 4, node: NodeId(2) },
                    last_primary: ViewId(4),
                }),
                "00000022 01 0b  0000000000000003 0001  0000000000000004 0002  0000000000000004  020eeed5",
            ),
            (
                "accept",
                Frame::Peer(PeerFrame::Accept { ballot: ballot(), proposal: proposal() }),
                "0000005e 01 0c  0000000000000003 0001
                 0000000000000005 0000000000000004 0000000000000020
                 00000002 0002 0000000000000007 0001 0000000000000006  0001
                 00000002 0001 0000000000000006 0002 0000000000000007 0003 0002  c66ee9cc",
            ),
            (
                "accepted",
                Frame::Peer(PeerFrame::Accepted { ballot: ballot(), member: member2() }),
                "0000001a 01 0d  0000000000000003 0001  0002 0000000000000007  db065558",
            ),
            (
                "commit",
                Frame::Peer(PeerFrame::Commit { ballot: ballot(), proposal: proposal() }),
                "0000005e 01 0e  0000000000000003 0001
                 0000000000000005 0000000000000004 0000000000000020
                 00000002 0002 0000000000000007 0001 0000000000000006  0001
                 00000002 0001 0000000000000006 0002 0000000000000007 0003 0002  0e1632dc",
            ),
            (
                "fetch",
                Frame::Peer(PeerFrame::Fetch { ballot: ballot(), after: 0x10, upto: 0x20, snapshot: true }),
                "00000021 01 0f  0000000000000003 0001  0000000000000010 0000000000000020  01  e423694e",
            ),
            (
                "retransmit",
                Frame::Peer(PeerFrame::Retransmit { ballot: ballot(), messages: vec![message1()] }),
                "00000036 01 10  0000000000000003 0001  00000001
                 0000000000000010 0002 0000000000000007 0000000000000001 0000 00000002 6869  02621b6c",
            ),
            (
                "snapshot_chunk",
                Frame::Peer(PeerFrame::SnapshotChunk {
                    ballot: ballot(),
                    seq: 0x20,
                    offset: 0x100,
                    total: 0x103,
                    bytes: Arc::from(&[0xaa, 0xbb, 0xcc][..]),
                }),
                "0000002f 01 11  0000000000000003 0001  0000000000000020 0000000000000100
                 0000000000000103  00000003 aabbcc  22f4ee93",
            ),
            (
                "snapshot_ack",
                Frame::Peer(PeerFrame::SnapshotAck { ballot: ballot(), seq: 0x20, offset: 0x100 }),
                "00000020 01 14  0000000000000003 0001  0000000000000020 0000000000000100  01eab4ec",
            ),
            (
                "challenge",
                Frame::Peer(PeerFrame::Challenge {
                    from: member1(),
                    mode: AuthMode::Encrypt,
                    nonce: counting(0x40),
                }),
                "00000031 01 12  0001 0000000000000006  02
                 404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f  aeabdb86",
            ),
            (
                "proof",
                Frame::Peer(PeerFrame::Proof { proof: counting(0x60) }),
                "00000026 01 13  606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f  c7832c27",
            ),
            (
                "broadcast",
                Frame::Request(ClientRequest::Broadcast { request: 0x2a, payload: Arc::from(&b"abc"[..]) }),
                "00000015 01 40  000000000000002a  00000003 616263  d05185a4",
            ),
            (
                "status_request",
                Frame::Request(ClientRequest::Status { request: 0x2b }),
                "0000000e 01 41  000000000000002b  691ded4c",
            ),
            (
                "committed",
                Frame::Reply(ClientReply::Committed { request: 0x2a, seq: 0x21 }),
                "00000016 01 60  000000000000002a 0000000000000021  a01a36c1",
            ),
            (
                "status_reply",
                Frame::Reply(ClientReply::Status {
                    request: 0x2b,
                    status: NodeStatus {
                        member: member2(),
                        view: ViewId(5),
                        primary: true,
                        ring: vec![member1(), member2()],
                        delivered: 0x30,
                        committed_upto: 0x21,
                        state_digest: 0x1122_3344_5566_7788,
                        delivery_digest: 0x99aa_bbcc_ddee_ff00,
                        rotations: 0x0c,
                        revision: 0x0d,
                        rotation_millihertz: 4000,
                        role: StandbyRole::Hot,
                        last_checkpoint: 0x20,
                        replicas: 2,
                        configured: 3,
                        min_replicas: 2,
                        max_step_us: 0x3e8,
                        state_bytes: 0x0010_0000,
                    },
                }),
                "00000090 01 61  000000000000002b  0002 0000000000000007  0000000000000005  01
                 00000002 0001 0000000000000006 0002 0000000000000007
                 0000000000000030 0000000000000021 1122334455667788 99aabbccddeeff00
                 000000000000000c  000000000000000d 0000000000000fa0 02 0000000000000020
                 0002 0003 0002  00000000000003e8 0000000000100000  46ed8509",
            ),
            (
                "execute",
                Frame::Request(ClientRequest::Execute {
                    request: 0x2d,
                    consistency: Consistency::Linearizable,
                    command: Arc::from(&[1, 2, 3][..]),
                }),
                "00000016 01 42  000000000000002d 01 00000003 010203  066f1f14",
            ),
            (
                "watch",
                Frame::Request(ClientRequest::Watch {
                    request: 0x2e,
                    prefix: Arc::from(&b"k/"[..]),
                    from: 7,
                }),
                "0000001c 01 43  000000000000002e 00000002 6b2f 0000000000000007  863a3776",
            ),
            (
                "members_request",
                Frame::Request(ClientRequest::Members { request: 0x2f }),
                "0000000e 01 44  000000000000002f  24e76c1a",
            ),
            (
                "leave_request",
                Frame::Request(ClientRequest::Leave { request: 0x30 }),
                "0000000e 01 45  0000000000000030  be9475ac",
            ),
            (
                "force_primary",
                Frame::Request(ClientRequest::ForcePrimary { request: 0x31, confirm: true }),
                "0000000f 01 46  0000000000000031  01  88f72eef",
            ),
            (
                "forced",
                Frame::Reply(ClientReply::Forced { request: 0x31, formed: true, report: "ok".into() }),
                "00000013 01 67  0000000000000031  01  0002 6f6b  4eff1b88",
            ),
            (
                "executed",
                Frame::Reply(ClientReply::Executed {
                    request: 0x2d,
                    seq: 0x21,
                    outcome: Arc::from(&[3, 0, 0, 0, 0, 0, 0, 1, 2][..]),
                }),
                "00000023 01 63  000000000000002d 0000000000000021 00000009 030000000000000102  c2e572fb",
            ),
            (
                "events",
                Frame::Reply(ClientReply::Events {
                    request: 0x2e,
                    revision: 9,
                    events: vec![
                        WatchEvent {
                            revision: 8,
                            kind: WatchKind::Put,
                            key: Arc::from(&b"k/a"[..]),
                            value: Arc::from(&b"1"[..]),
                        },
                        WatchEvent {
                            revision: 9,
                            kind: WatchKind::Delete,
                            key: Arc::from(&b"k/b"[..]),
                            value: Arc::from(&b""[..]),
                        },
                    ],
                }),
                "00000043 01 64  000000000000002e 0000000000000009 00000002
                 0000000000000008 01 00000003 6b2f61 00000001 31
                 0000000000000009 02 00000003 6b2f62 00000000  a1a32b06",
            ),
            (
                "members_reply",
                Frame::Reply(ClientReply::Members {
                    request: 0x2f,
                    members: vec![
                        MemberInfo { id: NodeId(1), addr: "127.0.0.1:7101".into(), incarnation: 6 },
                        MemberInfo { id: NodeId(2), addr: "127.0.0.1:7102".into(), incarnation: 0 },
                    ],
                }),
                "00000046 01 65  000000000000002f 00000002
                 0001 000e 3132372e302e302e313a37313031 0000000000000006
                 0002 000e 3132372e302e302e313a37313032 0000000000000000  27be29d3",
            ),
            (
                "leaving",
                Frame::Reply(ClientReply::Leaving { request: 0x30 }),
                "0000000e 01 66  0000000000000030  05e8cbca",
            ),
            (
                "error_busy",
                error(ErrorCode::Busy, "full"),
                "00000015 01 62  000000000000002c  01  0004 66756c6c  ccbd43cb",
            ),
            (
                "error_no_quorum",
                error(ErrorCode::NoQuorum, ""),
                "00000011 01 62  000000000000002c  02  0000  ffeba978",
            ),
            (
                "error_bad_request",
                error(ErrorCode::BadRequest, "é"),
                "00000013 01 62  000000000000002c  03  0002 c3a9  780c67b9",
            ),
            (
                "error_shutting_down",
                error(ErrorCode::ShuttingDown, "bye"),
                "00000014 01 62  000000000000002c  04  0003 627965  a124d880",
            ),
            (
                "error_outcome_unknown",
                error(ErrorCode::OutcomeUnknown, "unknown"),
                "00000018 01 62  000000000000002c  05  0007 756e6b6e6f776e  25aa9bf2",
            ),
            (
                "error_compacted",
                error(ErrorCode::Compacted, ""),
                "00000011 01 62  000000000000002c  06  0000  f8e201a4",
            ),
            (
                "error_not_enough_replicas",
                error(ErrorCode::NotEnoughReplicas, ""),
                "00000011 01 62  000000000000002c  07  0000  f9206b93",
            ),
            (
                "error_refused",
                error(ErrorCode::Refused, "no"),
                "00000013 01 62  000000000000002c  08  0002 6e6f  6672f389",
            ),
        ]
    }

    /// The golden bytes of case `name`.
    fn golden_bytes(name: &str) -> Vec<u8> {
        let (_, _, hex) = goldens().into_iter().find(|(case, _, _)| *case == name).expect("a golden case");
        unhex(hex)
    }

    /// The body of golden case `name`: what lies between the kind byte and the checksum.
    fn golden_body(name: &str) -> Vec<u8> {
        let bytes = golden_bytes(name);
        bytes[LENGTH_BYTES + 2..bytes.len() - CHECKSUM_BYTES].to_vec()
    }

    #[test]
    fn golden_bytes_for_every_frame_kind_and_error_code() {
        let mut kinds = BTreeSet::new();
        let mut codes = Vec::new();
        for (name, frame, hex) in goldens() {
            let expected = unhex(hex);
            assert_eq!(encode(&frame), expected, "encoding of {name}");
            assert_eq!(frame_len(&expected), Ok(Some(expected.len())), "frame_len of {name}");
            assert_eq!(decode(&expected).as_ref(), Ok(&frame), "decoding of {name}");
            kinds.insert(expected[LENGTH_BYTES + 1]);
            if let Frame::Reply(ClientReply::Error { code, .. }) = frame {
                codes.push(code);
            }
        }
        let all: BTreeSet<u8> = FrameKind::ALL.iter().map(|kind| *kind as u8).collect();
        assert_eq!(kinds, all, "every frame kind has a golden case");
        assert_eq!(
            codes,
            [
                ErrorCode::Busy,
                ErrorCode::NoQuorum,
                ErrorCode::BadRequest,
                ErrorCode::ShuttingDown,
                ErrorCode::OutcomeUnknown,
                ErrorCode::Compacted,
                ErrorCode::NotEnoughReplicas,
                ErrorCode::Refused
            ]
        );
    }

    #[test]
    fn kind_bytes_follow_the_peer_frame_order_then_requests_then_replies() {
        let bytes: Vec<u8> = FrameKind::ALL.iter().map(|kind| *kind as u8).collect();
        let mut expected: Vec<u8> = (1..=20).collect();
        expected.extend([64, 65, 66, 67, 68, 69, 70, 96, 97, 98, 99, 100, 101, 102, 103]);
        assert_eq!(bytes, expected);
        for byte in 0..=u8::MAX {
            assert_eq!(
                FrameKind::from_byte(byte).map(|kind| kind as u8),
                expected.contains(&byte).then_some(byte)
            );
        }
    }

    #[test]
    fn checksum_is_the_standard_crc32() {
        // The check value of CRC-32/ISO-HDLC, as zlib and Ethernet compute it.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn non_trivial_frames_round_trip() {
        let mut rng = Rng::new(11);
        let messages: Vec<Message> = (0..100).map(|_| random_message(&mut rng, 300)).collect();
        let token = Token {
            view: ViewId(u64::MAX),
            rotation: 1 << 40,
            next_seq: u64::MAX - 1,
            received: (0..16).map(|p| p * 1000).collect(),
            backlog: (0..16).map(|p| p as u32 * 7).collect(),
            quiet: u32::MAX,
        };
        let frames = [
            Frame::Peer(PeerFrame::Data(Data {
                view: ViewId(9),
                hops_left: u16::MAX,
                messages: messages.clone(),
            })),
            Frame::Peer(PeerFrame::Retransmit { ballot: ballot(), messages }),
            Frame::Peer(PeerFrame::Token(token)),
            Frame::Peer(PeerFrame::SnapshotChunk {
                ballot: Ballot { round: u64::MAX, node: NodeId(u16::MAX) },
                seq: 1 << 33,
                offset: 1 << 20,
                total: 1 << 21,
                bytes: Arc::from(vec![0x5a; 64 << 10]),
            }),
            Frame::Peer(PeerFrame::Promise(Box::new(Promise {
                accepted: None,
                unreachable: (1..=40).map(NodeId).collect(),
                ..random_promise(&mut rng)
            }))),
            Frame::Peer(PeerFrame::Promise(Box::new(Promise {
                accepted: Some((
                    ballot(),
                    Proposal {
                        ring: (1..=64)
                            .map(|id| Member { id: NodeId(id), incarnation: u64::from(id) })
                            .collect(),
                        ..proposal()
                    },
                )),
                ..random_promise(&mut rng)
            }))),
            error(ErrorCode::NoQuorum, "no primary view: 2 of 5 members reachable — retry ✓"),
        ];
        for frame in frames {
            let bytes = encode(&frame);
            assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
            assert_eq!(decode(&bytes), Ok(frame));
        }
    }

    #[test]
    fn random_frames_round_trip() {
        let mut rng = Rng::new(12);
        for _ in 0..2_000 {
            let frame = random_frame(&mut rng);
            let bytes = encode(&frame);
            assert_eq!(decode(&bytes).as_ref(), Ok(&frame), "{bytes:02x?}");
        }
    }

    #[test]
    fn long_error_message_is_cut_at_a_char_boundary() {
        let message = "€".repeat(30_000); // 90,000 bytes of three-byte characters
        let bytes = encode(&error(ErrorCode::BadRequest, &message));
        let Ok(Frame::Reply(ClientReply::Error { message: cut, .. })) = decode(&bytes) else {
            panic!("the cut frame decodes");
        };
        assert_eq!(cut.len(), 65_535);
        assert!(message.starts_with(&cut));
    }

    #[test]
    fn encode_appends_so_frame_len_can_split_a_stream() {
        let frames: Vec<Frame> = goldens().into_iter().map(|(_, frame, _)| frame).collect();
        let mut stream = vec![0xee]; // a byte already in the buffer is kept
        for frame in &frames {
            match frame {
                Frame::Peer(frame) => encode_peer(frame, &mut stream),
                Frame::Request(request) => encode_request(request, &mut stream),
                Frame::Reply(reply) => encode_reply(reply, &mut stream),
            }
        }
        assert_eq!(stream[0], 0xee);
        let mut rest = &stream[1..];
        for frame in &frames {
            let len = frame_len(rest).expect("valid prefix").expect("whole frame present");
            assert_eq!(decode(&rest[..len]).as_ref(), Ok(frame));
            rest = &rest[len..];
        }
        assert_eq!(frame_len(rest), Ok(None));
    }

    #[test]
    fn frame_len_rejects_an_announced_length_before_the_bytes_arrive() {
        assert_eq!(frame_len(&[]), Ok(None));
        assert_eq!(frame_len(&[0, 0, 0]), Ok(None));
        let max = (FRAME_BYTES_MAX - LENGTH_BYTES) as u32;
        assert_eq!(frame_len(&max.to_be_bytes()), Ok(None));
        assert_eq!(
            frame_len(&(max + 1).to_be_bytes()),
            Err(DecodeError::TooLarge { length: FRAME_BYTES_MAX as u64 + 1, max: FRAME_BYTES_MAX as u64 })
        );
        assert_eq!(
            frame_len(&u32::MAX.to_be_bytes()),
            Err(DecodeError::TooLarge { length: u64::from(u32::MAX) + 4, max: FRAME_BYTES_MAX as u64 })
        );
        for length in 0..LENGTH_MIN as u32 {
            assert!(matches!(
                frame_len(&length.to_be_bytes()),
                Err(DecodeError::Invalid { field: "length", .. })
            ));
            assert!(matches!(
                decode(&length.to_be_bytes()),
                Err(DecodeError::Invalid { field: "length", .. })
            ));
        }
        assert_eq!(frame_len(&(LENGTH_MIN as u32).to_be_bytes()), Ok(None));
    }

    #[test]
    fn largest_frame_round_trips() {
        // Envelope 10 bytes, request 8, payload length 4.
        let payload = vec![7; FRAME_BYTES_MAX - 22];
        let frame = Frame::Request(ClientRequest::Broadcast { request: 1, payload: Arc::from(payload) });
        let bytes = encode(&frame);
        assert_eq!(bytes.len(), FRAME_BYTES_MAX);
        assert_eq!(decode(&bytes), Ok(frame));
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn encoding_a_frame_over_the_maximum_is_a_bug() {
        let payload = vec![7; FRAME_BYTES_MAX - 21];
        encode(&Frame::Request(ClientRequest::Broadcast { request: 1, payload: Arc::from(payload) }));
    }

    #[test]
    fn envelope_errors_name_what_is_wrong() {
        let heartbeat = golden_bytes("heartbeat");
        assert_eq!(decode(&heartbeat[..2]), Err(DecodeError::Truncated { field: "length" }));
        assert_eq!(decode(&heartbeat[..7]), Err(DecodeError::Truncated { field: "frame" }));
        let mut longer = heartbeat.clone();
        longer.extend([0, 0, 0]);
        assert_eq!(decode(&longer), Err(DecodeError::TrailingBytes { count: 3 }));
        let mut corrupt = heartbeat.clone();
        corrupt[9] ^= 0x80;
        assert_eq!(decode(&corrupt), Err(DecodeError::Checksum));
        for version in [0, 2, 255] {
            assert!(matches!(
                decode(&seal(version, FrameKind::Heartbeat as u8, &[])),
                Err(DecodeError::Invalid { field: "version", .. })
            ));
        }
        for kind in [0, 21, 63, 71, 95, 104, 255] {
            assert!(matches!(
                decode(&seal(VERSION, kind, &[])),
                Err(DecodeError::Invalid { field: "kind", .. })
            ));
        }
    }

    #[test]
    fn body_errors_name_the_field() {
        let mut body = golden_body("fetch");
        body.push(0);
        assert_eq!(
            decode(&seal(VERSION, FrameKind::Fetch as u8, &body)),
            Err(DecodeError::TrailingBytes { count: 1 })
        );

        let mut body = golden_body("fetch");
        *body.last_mut().expect("fetch has a body") = 2;
        assert!(matches!(
            decode(&seal(VERSION, FrameKind::Fetch as u8, &body)),
            Err(DecodeError::Invalid { field: "fetch.snapshot", .. })
        ));

        let body = golden_body("hello");
        assert_eq!(
            decode(&seal(VERSION, FrameKind::Hello as u8, &body[..body.len() - 1])),
            Err(DecodeError::Truncated { field: "hello.nonce" })
        );

        let mut body = golden_body("promise_fresh");
        body[49] = 2; // the tag of `accepted`, after ballot, member, boot, last_primary, members, quorum
                      // and holds_log
        assert!(matches!(
            decode(&seal(VERSION, FrameKind::Promise as u8, &body)),
            Err(DecodeError::Invalid { field: "promise.accepted", .. })
        ));

        for code in [0, 9, 255] {
            let mut body = golden_body("error_busy");
            body[8] = code;
            assert!(matches!(
                decode(&seal(VERSION, FrameKind::Error as u8, &body)),
                Err(DecodeError::Invalid { field: "error.code", .. })
            ));
        }

        let mut body = golden_body("error_bad_request");
        body[12] = 0x28; // "é" becomes 0xc3 0x28: not UTF-8
        assert!(matches!(
            decode(&seal(VERSION, FrameKind::Error as u8, &body)),
            Err(DecodeError::Invalid { field: "error.message", .. })
        ));
    }

    #[test]
    fn token_vectors_must_have_one_entry_per_ring_position() {
        // The golden token with its backlog cut to one entry (count 1, entry 0).
        let mut body = golden_body("token");
        let backlog_at = 24 + 4 + 16;
        body.splice(backlog_at..backlog_at + 12, [0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(matches!(
            decode(&seal(VERSION, FrameKind::Token as u8, &body)),
            Err(DecodeError::Invalid { field: "token.backlog", .. })
        ));
    }

    #[test]
    fn huge_counts_are_rejected_without_allocating() {
        // A Data frame announcing 2^32 - 1 messages, and a payload announcing 4 GiB.
        let mut body = golden_body("data");
        body[10..14].copy_from_slice(&[0xff; 4]);
        assert_eq!(
            decode(&seal(VERSION, FrameKind::Data as u8, &body)),
            Err(DecodeError::Truncated { field: "data.messages" })
        );
        let mut body = golden_body("broadcast");
        body[8..12].copy_from_slice(&[0xff; 4]);
        assert_eq!(
            decode(&seal(VERSION, FrameKind::Broadcast as u8, &body)),
            Err(DecodeError::Truncated { field: "broadcast.payload" })
        );
    }

    /// Any frame the decoder accepts has exactly one encoding: re-encoding gives the same bytes.
    fn check_canonical(bytes: &[u8]) -> bool {
        match decode(bytes) {
            Ok(frame) => {
                assert_eq!(encode(&frame), bytes, "accepted bytes are not canonical: {frame:?}");
                true
            }
            Err(_) => false,
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng::new(1);
        for i in 0..20_000 {
            let len = rng.below(512) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            // Half of the inputs announce their own length, so the checksum check is reached.
            if i % 2 == 0 && len >= LENGTH_BYTES {
                bytes[..LENGTH_BYTES].copy_from_slice(&((len - LENGTH_BYTES) as u32).to_be_bytes());
            }
            if let Ok(Some(total)) = frame_len(&bytes) {
                assert!(total <= bytes.len());
            }
            check_canonical(&bytes);
        }
    }

    #[test]
    fn every_truncation_of_every_golden_frame_is_incomplete() {
        for (name, _, hex) in goldens() {
            let bytes = unhex(hex);
            for end in 0..bytes.len() {
                let prefix = &bytes[..end];
                assert_eq!(frame_len(prefix), Ok(None), "{name} cut at {end}");
                assert!(matches!(decode(prefix), Err(DecodeError::Truncated { .. })), "{name} cut at {end}");
            }
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut frames: Vec<Vec<u8>> = goldens().iter().map(|(_, _, hex)| unhex(hex)).collect();
        let mut rng = Rng::new(3);
        frames.extend((0..300).map(|_| encode(&random_frame(&mut rng))));
        for (index, bytes) in frames.iter().enumerate() {
            // All bits of the golden frames; a sample of the longer random ones.
            let bits: Vec<usize> = if index < goldens().len() {
                (0..bytes.len() * 8).collect()
            } else {
                (0..64).map(|_| rng.below(bytes.len() as u64 * 8) as usize).collect()
            };
            for bit in bits {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let result = decode(&flipped);
                if bit / 8 >= LENGTH_BYTES {
                    assert_eq!(result, Err(DecodeError::Checksum), "frame {index} bit {bit}");
                } else {
                    // A damaged prefix announces another length: the frame is then too long,
                    // too short or has bytes left over, never valid.
                    assert!(result.is_err(), "frame {index} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn garbage_bodies_behind_a_valid_checksum_never_panic() {
        let mut rng = Rng::new(4);
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..20_000 {
            let version = if rng.chance(1, 50) { rng.next_u64() as u8 } else { VERSION };
            let (kind, body) = if rng.chance(1, 3) {
                let kind = if rng.chance(1, 10) {
                    rng.next_u64() as u8
                } else {
                    FrameKind::ALL[rng.below(FrameKind::ALL.len() as u64) as usize] as u8
                };
                let len = rng.below(256) as usize;
                (kind, (0..len).map(|_| rng.next_u64() as u8).collect())
            } else {
                // A valid body with a few bytes changed, cut or added reaches deeper fields.
                let bytes = encode(&random_frame(&mut rng));
                let mut body = bytes[LENGTH_BYTES + 2..bytes.len() - CHECKSUM_BYTES].to_vec();
                mutate(&mut rng, &mut body);
                (bytes[LENGTH_BYTES + 1], body)
            };
            if check_canonical(&seal(version, kind, &body)) {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        assert!(accepted > 100 && rejected > 100, "accepted {accepted}, rejected {rejected}");
    }
}
