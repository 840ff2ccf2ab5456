//! The body of every frame kind: the fields of each `PeerFrame`, `ClientRequest` and
//! `ClientReply` in declaration order, and the structs they carry.
//!
//! Layout rules (docs in `codec`): integers big-endian at their Rust width, vectors as a u32
//! count and the elements, payloads as a u32 length and the bytes, strings as UTF-8 with a u16
//! length, `Option` and `bool` as one byte 0/1, `ErrorCode` as one byte. Error fields are named
//! `<frame or struct>.<field>`.

use std::sync::Arc;

use super::bytes::{
    invalid, put_bool, put_bytes_u32, put_count, put_str_u16, put_u16, put_u32, put_u64, put_u8, Reader,
};
use super::codec::Versions;
use super::codec::{Frame, FrameKind};
use super::frame::{
    AuthMode, ClientReply, ClientRequest, Consistency, Data, ErrorCode, MemberInfo, Message, Payload,
    PeerFrame, Promise, Proposal, Quorum, StandbyRole, Token, WatchEvent, WatchKind,
};
use super::status::{get_status, put_status};
use crate::error::DecodeError;
use crate::ids::{Ballot, Member, MsgId, NodeId, ViewId, Voter};

/// Encoded sizes of the fixed-size items, used to bound element counts before allocating.
const NODE_ID_BYTES: usize = 2;
const MEMBER_BYTES: usize = 2 + 8;
const VOTER_BYTES: usize = 2 + 8;
const SEQ_BYTES: usize = 8;
const BACKLOG_BYTES: usize = 4;
/// The smallest encoded `Message`: seq, id, attempt and an empty payload.
const MESSAGE_BYTES_MIN: usize = 8 + (2 + 8 + 8) + 2 + 4;
/// The smallest encoded `WatchEvent`: revision, kind, empty key and value.
const WATCH_EVENT_BYTES_MIN: usize = 8 + 1 + 4 + 4;
/// The smallest encoded `MemberInfo`: id, empty address, incarnation.
const MEMBER_INFO_BYTES_MIN: usize = 2 + 2 + 8 + 1 + 8;

/// The kind byte of a peer frame.
pub(crate) fn peer_kind(frame: &PeerFrame) -> FrameKind {
    match frame {
        PeerFrame::Hello { .. } => FrameKind::Hello,
        PeerFrame::HelloAck { .. } => FrameKind::HelloAck,
        PeerFrame::Heartbeat => FrameKind::Heartbeat,
        PeerFrame::Token(_) => FrameKind::Token,
        PeerFrame::Data(_) => FrameKind::Data,
        PeerFrame::Wake { .. } => FrameKind::Wake,
        PeerFrame::Join { .. } => FrameKind::Join,
        PeerFrame::Leave { .. } => FrameKind::Leave,
        PeerFrame::Prepare { .. } => FrameKind::Prepare,
        PeerFrame::Promise(_) => FrameKind::Promise,
        PeerFrame::Nack { .. } => FrameKind::Nack,
        PeerFrame::Accept { .. } => FrameKind::Accept,
        PeerFrame::Accepted { .. } => FrameKind::Accepted,
        PeerFrame::Commit { .. } => FrameKind::Commit,
        PeerFrame::Fetch { .. } => FrameKind::Fetch,
        PeerFrame::Retransmit { .. } => FrameKind::Retransmit,
        PeerFrame::SnapshotChunk { .. } => FrameKind::SnapshotChunk,
        PeerFrame::Challenge { .. } => FrameKind::Challenge,
        PeerFrame::Proof { .. } => FrameKind::Proof,
        PeerFrame::SnapshotAck { .. } => FrameKind::SnapshotAck,
    }
}

/// The kind byte of a client request.
pub(super) fn request_kind(request: &ClientRequest) -> FrameKind {
    match request {
        ClientRequest::Broadcast { .. } => FrameKind::Broadcast,
        ClientRequest::Status { .. } => FrameKind::StatusRequest,
        ClientRequest::Execute { .. } => FrameKind::Execute,
        ClientRequest::Watch { .. } => FrameKind::Watch,
        ClientRequest::Members { .. } => FrameKind::MembersRequest,
        ClientRequest::Leave { .. } => FrameKind::LeaveRequest,
        ClientRequest::ForcePrimary { .. } => FrameKind::ForcePrimary,
    }
}

/// The kind byte of a client reply.
pub(super) fn reply_kind(reply: &ClientReply) -> FrameKind {
    match reply {
        ClientReply::Committed { .. } => FrameKind::Committed,
        ClientReply::Status { .. } => FrameKind::StatusReply,
        ClientReply::Error { .. } => FrameKind::Error,
        ClientReply::Executed { .. } => FrameKind::Executed,
        ClientReply::Events { .. } => FrameKind::Events,
        ClientReply::Members { .. } => FrameKind::MembersReply,
        ClientReply::Leaving { .. } => FrameKind::Leaving,
        ClientReply::Forced { .. } => FrameKind::Forced,
    }
}

/// Appends the body of a peer frame in protocol `version`.
pub(super) fn put_peer(out: &mut Vec<u8>, version: u8, frame: &PeerFrame) {
    match frame {
        PeerFrame::Hello { cluster, mode, from, to, nonce, versions } => {
            put_u64(out, *cluster);
            put_u8(out, *mode as u8);
            put_member(out, from);
            put_u16(out, to.0);
            out.extend_from_slice(nonce);
            put_versions(out, version, versions);
        }
        PeerFrame::HelloAck { proof } => out.extend_from_slice(proof),
        PeerFrame::Challenge { from, mode, nonce, versions } => {
            put_member(out, from);
            put_u8(out, *mode as u8);
            out.extend_from_slice(nonce);
            put_versions(out, version, versions);
        }
        PeerFrame::Proof { proof } => out.extend_from_slice(proof),
        PeerFrame::Heartbeat => {}
        PeerFrame::Token(token) => put_token(out, token),
        PeerFrame::Data(data) => {
            put_u64(out, data.view.0);
            put_u16(out, data.hops_left);
            put_messages(out, &data.messages);
        }
        PeerFrame::Wake { view, hops_left } => {
            put_u64(out, view.0);
            put_u16(out, *hops_left);
        }
        PeerFrame::Join { member, last_primary, caught_up, catching_up } => {
            put_member(out, member);
            put_u64(out, last_primary.0);
            put_u64(out, *caught_up);
            put_bool(out, *catching_up);
        }
        PeerFrame::SnapshotAck { ballot, seq, offset } => {
            put_ballot(out, ballot);
            put_u64(out, *seq);
            put_u64(out, *offset);
        }
        PeerFrame::Leave { member } => put_member(out, member),
        PeerFrame::Prepare { ballot, last_primary } => {
            put_ballot(out, ballot);
            put_u64(out, last_primary.0);
        }
        PeerFrame::Promise(promise) => put_promise(out, promise),
        PeerFrame::Nack { ballot, promised, last_primary } => {
            put_ballot(out, ballot);
            put_ballot(out, promised);
            put_u64(out, last_primary.0);
        }
        PeerFrame::Accept { ballot, proposal } | PeerFrame::Commit { ballot, proposal } => {
            put_ballot(out, ballot);
            put_proposal(out, proposal);
        }
        PeerFrame::Accepted { ballot, member } => {
            put_ballot(out, ballot);
            put_member(out, member);
        }
        PeerFrame::Fetch { ballot, after, upto, snapshot } => {
            put_ballot(out, ballot);
            put_u64(out, *after);
            put_u64(out, *upto);
            put_bool(out, *snapshot);
        }
        PeerFrame::Retransmit { ballot, messages } => {
            put_ballot(out, ballot);
            put_messages(out, messages);
        }
        PeerFrame::SnapshotChunk { ballot, seq, offset, total, bytes } => {
            put_ballot(out, ballot);
            put_u64(out, *seq);
            put_u64(out, *offset);
            put_u64(out, *total);
            put_bytes_u32(out, bytes);
        }
    }
}

/// Reads the body of a frame of `kind`. One exhaustive match, so a new kind cannot be forgotten.
pub(super) fn get_body(version: u8, kind: FrameKind, r: &mut Reader<'_>) -> Result<Frame, DecodeError> {
    let peer = match kind {
        FrameKind::Hello => PeerFrame::Hello {
            cluster: r.u64("hello.cluster")?,
            mode: get_mode(r, "hello.mode")?,
            from: get_member(r, "hello.from")?,
            to: NodeId(r.u16("hello.to")?),
            nonce: get_32(r, "hello.nonce")?,
            versions: get_versions(r, version, "hello.versions")?,
        },
        FrameKind::HelloAck => PeerFrame::HelloAck { proof: get_32(r, "hello_ack.proof")? },
        FrameKind::Challenge => PeerFrame::Challenge {
            from: get_member(r, "challenge.from")?,
            mode: get_mode(r, "challenge.mode")?,
            nonce: get_32(r, "challenge.nonce")?,
            versions: get_versions(r, version, "challenge.versions")?,
        },
        FrameKind::Proof => PeerFrame::Proof { proof: get_32(r, "proof.proof")? },
        FrameKind::Heartbeat => PeerFrame::Heartbeat,
        FrameKind::Token => PeerFrame::Token(get_token(r)?),
        FrameKind::Data => PeerFrame::Data(Data {
            view: ViewId(r.u64("data.view")?),
            hops_left: r.u16("data.hops_left")?,
            messages: get_messages(r, "data.messages")?,
        }),
        FrameKind::Wake => {
            PeerFrame::Wake { view: ViewId(r.u64("wake.view")?), hops_left: r.u16("wake.hops_left")? }
        }
        FrameKind::Join => PeerFrame::Join {
            member: get_member(r, "join.member")?,
            last_primary: ViewId(r.u64("join.last_primary")?),
            caught_up: r.u64("join.caught_up")?,
            catching_up: r.bool("join.catching_up")?,
        },
        FrameKind::SnapshotAck => PeerFrame::SnapshotAck {
            ballot: get_ballot(r, "snapshot_ack.ballot")?,
            seq: r.u64("snapshot_ack.seq")?,
            offset: r.u64("snapshot_ack.offset")?,
        },
        FrameKind::Leave => PeerFrame::Leave { member: get_member(r, "leave.member")? },
        FrameKind::Prepare => PeerFrame::Prepare {
            ballot: get_ballot(r, "prepare.ballot")?,
            last_primary: ViewId(r.u64("prepare.last_primary")?),
        },
        FrameKind::Promise => PeerFrame::Promise(Box::new(get_promise(r)?)),
        FrameKind::Nack => PeerFrame::Nack {
            ballot: get_ballot(r, "nack.ballot")?,
            promised: get_ballot(r, "nack.promised")?,
            last_primary: ViewId(r.u64("nack.last_primary")?),
        },
        FrameKind::Accept => {
            PeerFrame::Accept { ballot: get_ballot(r, "accept.ballot")?, proposal: get_proposal(r)? }
        }
        FrameKind::Accepted => PeerFrame::Accepted {
            ballot: get_ballot(r, "accepted.ballot")?,
            member: get_member(r, "accepted.member")?,
        },
        FrameKind::Commit => {
            PeerFrame::Commit { ballot: get_ballot(r, "commit.ballot")?, proposal: get_proposal(r)? }
        }
        FrameKind::Fetch => PeerFrame::Fetch {
            ballot: get_ballot(r, "fetch.ballot")?,
            after: r.u64("fetch.after")?,
            upto: r.u64("fetch.upto")?,
            snapshot: r.bool("fetch.snapshot")?,
        },
        FrameKind::Retransmit => PeerFrame::Retransmit {
            ballot: get_ballot(r, "retransmit.ballot")?,
            messages: get_messages(r, "retransmit.messages")?,
        },
        FrameKind::SnapshotChunk => PeerFrame::SnapshotChunk {
            ballot: get_ballot(r, "snapshot_chunk.ballot")?,
            seq: r.u64("snapshot_chunk.seq")?,
            offset: r.u64("snapshot_chunk.offset")?,
            total: r.u64("snapshot_chunk.total")?,
            bytes: get_payload(r, "snapshot_chunk.bytes")?,
        },
        FrameKind::Broadcast => {
            return Ok(Frame::Request(ClientRequest::Broadcast {
                request: r.u64("broadcast.request")?,
                payload: get_payload(r, "broadcast.payload")?,
            }))
        }
        FrameKind::StatusRequest => {
            return Ok(Frame::Request(ClientRequest::Status { request: r.u64("status_request.request")? }))
        }
        FrameKind::Execute => {
            return Ok(Frame::Request(ClientRequest::Execute {
                request: r.u64("execute.request")?,
                consistency: get_consistency(r, "execute.consistency")?,
                command: get_payload(r, "execute.command")?,
            }))
        }
        FrameKind::Watch => {
            return Ok(Frame::Request(ClientRequest::Watch {
                request: r.u64("watch.request")?,
                prefix: get_payload(r, "watch.prefix")?,
                from: r.u64("watch.from")?,
            }))
        }
        FrameKind::MembersRequest => {
            return Ok(Frame::Request(ClientRequest::Members { request: r.u64("members_request.request")? }))
        }
        FrameKind::LeaveRequest => {
            return Ok(Frame::Request(ClientRequest::Leave { request: r.u64("leave_request.request")? }))
        }
        FrameKind::ForcePrimary => {
            return Ok(Frame::Request(ClientRequest::ForcePrimary {
                request: r.u64("force_primary.request")?,
                confirm: r.bool("force_primary.confirm")?,
            }))
        }
        FrameKind::Forced => {
            return Ok(Frame::Reply(ClientReply::Forced {
                request: r.u64("forced.request")?,
                formed: r.bool("forced.formed")?,
                report: r.str_u16("forced.report")?.to_owned(),
            }))
        }
        FrameKind::Executed => {
            return Ok(Frame::Reply(ClientReply::Executed {
                request: r.u64("executed.request")?,
                seq: r.u64("executed.seq")?,
                outcome: get_payload(r, "executed.outcome")?,
            }))
        }
        FrameKind::Events => {
            return Ok(Frame::Reply(ClientReply::Events {
                request: r.u64("events.request")?,
                revision: r.u64("events.revision")?,
                events: get_vec(r, WATCH_EVENT_BYTES_MIN, "events.events", get_watch_event)?,
            }))
        }
        FrameKind::MembersReply => {
            return Ok(Frame::Reply(ClientReply::Members {
                request: r.u64("members_reply.request")?,
                members: get_vec(r, MEMBER_INFO_BYTES_MIN, "members_reply.members", get_member_info)?,
            }))
        }
        FrameKind::Leaving => {
            return Ok(Frame::Reply(ClientReply::Leaving { request: r.u64("leaving.request")? }))
        }
        FrameKind::Committed => {
            return Ok(Frame::Reply(ClientReply::Committed {
                request: r.u64("committed.request")?,
                seq: r.u64("committed.seq")?,
            }))
        }
        FrameKind::StatusReply => {
            return Ok(Frame::Reply(ClientReply::Status {
                request: r.u64("status_reply.request")?,
                status: get_status(r, version)?,
            }))
        }
        FrameKind::Error => {
            return Ok(Frame::Reply(ClientReply::Error {
                request: r.u64("error.request")?,
                code: get_error_code(r, "error.code")?,
                message: r.str_u16("error.message")?.to_owned(),
            }))
        }
    };
    Ok(Frame::Peer(peer))
}

/// Appends the body of a client request.
pub(super) fn put_request(out: &mut Vec<u8>, request: &ClientRequest) {
    match request {
        ClientRequest::Broadcast { request, payload } => {
            put_u64(out, *request);
            put_bytes_u32(out, payload);
        }
        ClientRequest::Execute { request, consistency, command } => {
            put_u64(out, *request);
            put_u8(out, consistency_byte(*consistency));
            put_bytes_u32(out, command);
        }
        ClientRequest::Watch { request, prefix, from } => {
            put_u64(out, *request);
            put_bytes_u32(out, prefix);
            put_u64(out, *from);
        }
        ClientRequest::Status { request }
        | ClientRequest::Members { request }
        | ClientRequest::Leave { request } => put_u64(out, *request),
        ClientRequest::ForcePrimary { request, confirm } => {
            put_u64(out, *request);
            put_bool(out, *confirm);
        }
    }
}

/// Appends the body of a client reply in protocol `version`.
pub(super) fn put_reply(out: &mut Vec<u8>, version: u8, reply: &ClientReply) {
    match reply {
        ClientReply::Committed { request, seq } => {
            put_u64(out, *request);
            put_u64(out, *seq);
        }
        ClientReply::Status { request, status } => {
            put_u64(out, *request);
            put_status(out, version, status);
        }
        ClientReply::Error { request, code, message } => {
            put_u64(out, *request);
            put_u8(out, error_code_byte(*code));
            put_str_u16(out, message);
        }
        ClientReply::Executed { request, seq, outcome } => {
            put_u64(out, *request);
            put_u64(out, *seq);
            put_bytes_u32(out, outcome);
        }
        ClientReply::Events { request, revision, events } => {
            put_u64(out, *request);
            put_u64(out, *revision);
            put_count(out, events.len());
            for event in events {
                put_u64(out, event.revision);
                put_u8(out, watch_kind_byte(event.kind));
                put_bytes_u32(out, &event.key);
                put_bytes_u32(out, &event.value);
            }
        }
        ClientReply::Members { request, members } => {
            put_u64(out, *request);
            put_count(out, members.len());
            for member in members {
                put_u16(out, member.id.0);
                put_str_u16(out, &member.addr);
                put_u64(out, member.incarnation);
                put_u8(out, standby_role_byte(member.role));
                put_u64(out, member.received_upto);
            }
        }
        ClientReply::Leaving { request } => put_u64(out, *request),
        ClientReply::Forced { request, formed, report } => {
            put_u64(out, *request);
            put_bool(out, *formed);
            put_str_u16(out, report);
        }
    }
}

/// The byte of a consistency level; 0 is unused, like every enum byte here.
fn consistency_byte(consistency: Consistency) -> u8 {
    match consistency {
        Consistency::Linearizable => 1,
        Consistency::Stale => 2,
    }
}

fn get_consistency(r: &mut Reader<'_>, field: &'static str) -> Result<Consistency, DecodeError> {
    match r.u8(field)? {
        1 => Ok(Consistency::Linearizable),
        2 => Ok(Consistency::Stale),
        other => Err(invalid(field, format!("unknown consistency {other}"))),
    }
}

fn watch_kind_byte(kind: WatchKind) -> u8 {
    match kind {
        WatchKind::Put => 1,
        WatchKind::Delete => 2,
    }
}

fn get_watch_event(r: &mut Reader<'_>) -> Result<WatchEvent, DecodeError> {
    let revision = r.u64("event.revision")?;
    let kind = match r.u8("event.kind")? {
        1 => WatchKind::Put,
        2 => WatchKind::Delete,
        other => return Err(invalid("event.kind", format!("unknown event kind {other}"))),
    };
    Ok(WatchEvent {
        revision,
        kind,
        key: get_payload(r, "event.key")?,
        value: get_payload(r, "event.value")?,
    })
}

fn get_member_info(r: &mut Reader<'_>) -> Result<MemberInfo, DecodeError> {
    Ok(MemberInfo {
        id: NodeId(r.u16("member.id")?),
        addr: r.str_u16("member.addr")?.to_owned(),
        incarnation: r.u64("member.incarnation")?,
        role: get_standby_role(r, "member.role")?,
        received_upto: r.u64("member.received_upto")?,
    })
}

pub(super) fn standby_role_byte(role: StandbyRole) -> u8 {
    match role {
        StandbyRole::None => 1,
        StandbyRole::Hot => 2,
        StandbyRole::Warm => 3,
        StandbyRole::Witness => 4,
    }
}

pub(super) fn get_standby_role(r: &mut Reader<'_>, field: &'static str) -> Result<StandbyRole, DecodeError> {
    match r.u8(field)? {
        1 => Ok(StandbyRole::None),
        2 => Ok(StandbyRole::Hot),
        3 => Ok(StandbyRole::Warm),
        4 => Ok(StandbyRole::Witness),
        other => Err(invalid(field, format!("unknown role {other}"))),
    }
}

/// The byte of an error code; 0 is left unused so that zeroed bytes are not a valid code.
fn error_code_byte(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::Busy => 1,
        ErrorCode::NoQuorum => 2,
        ErrorCode::BadRequest => 3,
        ErrorCode::ShuttingDown => 4,
        ErrorCode::OutcomeUnknown => 5,
        ErrorCode::Compacted => 6,
        ErrorCode::NotEnoughReplicas => 7,
        ErrorCode::Refused => 8,
    }
}

fn get_error_code(r: &mut Reader<'_>, field: &'static str) -> Result<ErrorCode, DecodeError> {
    match r.u8(field)? {
        1 => Ok(ErrorCode::Busy),
        2 => Ok(ErrorCode::NoQuorum),
        3 => Ok(ErrorCode::BadRequest),
        4 => Ok(ErrorCode::ShuttingDown),
        5 => Ok(ErrorCode::OutcomeUnknown),
        6 => Ok(ErrorCode::Compacted),
        7 => Ok(ErrorCode::NotEnoughReplicas),
        8 => Ok(ErrorCode::Refused),
        other => Err(invalid(field, format!("unknown error code {other}"))),
    }
}

/// Reads a u32 count and that many items. The count was checked against the bytes left
/// (`Reader::count`), so the allocation is bounded by the frame, not by what it claims.
pub(super) fn get_vec<T>(
    r: &mut Reader<'_>,
    item_bytes_min: usize,
    field: &'static str,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let count = r.count(item_bytes_min, field)?;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(item(r)?);
    }
    Ok(items)
}

pub(super) fn put_member(out: &mut Vec<u8>, member: &Member) {
    put_u16(out, member.id.0);
    put_u64(out, member.incarnation);
}

/// A nonce or proof: 32 bytes.
fn get_32(r: &mut Reader<'_>, field: &'static str) -> Result<[u8; 32], DecodeError> {
    Ok(r.take(32, field)?.try_into().expect("take returned 32 bytes"))
}

fn get_mode(r: &mut Reader<'_>, field: &'static str) -> Result<AuthMode, DecodeError> {
    let byte = r.u8(field)?;
    AuthMode::from_byte(byte).ok_or_else(|| invalid(field, format!("unknown mode {byte}")))
}

pub(super) fn get_member(r: &mut Reader<'_>, field: &'static str) -> Result<Member, DecodeError> {
    Ok(Member { id: NodeId(r.u16(field)?), incarnation: r.u64(field)? })
}

pub(super) fn put_members(out: &mut Vec<u8>, members: &[Member]) {
    put_count(out, members.len());
    members.iter().for_each(|member| put_member(out, member));
}

pub(super) fn get_members(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<Member>, DecodeError> {
    get_vec(r, MEMBER_BYTES, field, |r| get_member(r, field))
}

fn put_ballot(out: &mut Vec<u8>, ballot: &Ballot) {
    put_u64(out, ballot.round);
    put_u16(out, ballot.node.0);
}

fn get_ballot(r: &mut Reader<'_>, field: &'static str) -> Result<Ballot, DecodeError> {
    Ok(Ballot { round: r.u64(field)?, node: NodeId(r.u16(field)?) })
}

fn get_payload(r: &mut Reader<'_>, field: &'static str) -> Result<Payload, DecodeError> {
    // The length was checked against the bytes present, so this copies at most the frame.
    Ok(Arc::from(r.bytes_u32(field)?))
}

fn put_messages(out: &mut Vec<u8>, messages: &[Message]) {
    put_count(out, messages.len());
    for message in messages {
        put_u64(out, message.seq);
        put_u16(out, message.id.origin.0);
        put_u64(out, message.id.incarnation);
        put_u64(out, message.id.counter);
        put_u16(out, message.attempt);
        put_bytes_u32(out, &message.payload);
    }
}

fn get_messages(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<Message>, DecodeError> {
    get_vec(r, MESSAGE_BYTES_MIN, field, |r| {
        Ok(Message {
            seq: r.u64("message.seq")?,
            id: MsgId {
                origin: NodeId(r.u16("message.id")?),
                incarnation: r.u64("message.id")?,
                counter: r.u64("message.id")?,
            },
            attempt: r.u16("message.attempt")?,
            payload: get_payload(r, "message.payload")?,
        })
    })
}

fn put_token(out: &mut Vec<u8>, token: &Token) {
    // Receivers reject a token whose vectors differ in length, so sending one is a core bug.
    assert_eq!(token.received.len(), token.backlog.len(), "token vectors must have one entry per position");
    put_u64(out, token.view.0);
    put_u64(out, token.rotation);
    put_u64(out, token.next_seq);
    put_count(out, token.received.len());
    token.received.iter().for_each(|&seq| put_u64(out, seq));
    put_count(out, token.backlog.len());
    token.backlog.iter().for_each(|&backlog| put_u32(out, backlog));
    put_u32(out, token.quiet);
    put_u64(out, token.window_bytes);
}

fn get_token(r: &mut Reader<'_>) -> Result<Token, DecodeError> {
    let view = ViewId(r.u64("token.view")?);
    let rotation = r.u64("token.rotation")?;
    let next_seq = r.u64("token.next_seq")?;
    let received = get_vec(r, SEQ_BYTES, "token.received", |r| r.u64("token.received"))?;
    let backlog = get_vec(r, BACKLOG_BYTES, "token.backlog", |r| r.u32("token.backlog"))?;
    // Both vectors have one entry per ring position (docs/PROTOCOL.md §3).
    if backlog.len() != received.len() {
        return Err(invalid(
            "token.backlog",
            format!("{} entries but token.received has {}", backlog.len(), received.len()),
        ));
    }
    let quiet = r.u32("token.quiet")?;
    let window_bytes = r.u64("token.window_bytes")?;
    Ok(Token { view, rotation, next_seq, received, backlog, quiet, window_bytes })
}

fn put_quorum(out: &mut Vec<u8>, quorum: &Quorum) {
    put_count(out, quorum.electorate.len());
    for voter in &quorum.electorate {
        put_u16(out, voter.id.0);
        put_u64(out, voter.boot);
    }
    put_u16(out, quorum.expected);
    put_u16(out, quorum.min_replicas);
}

fn get_quorum(r: &mut Reader<'_>, field: &'static str) -> Result<Quorum, DecodeError> {
    let electorate =
        get_vec(r, VOTER_BYTES, field, |r| Ok(Voter { id: NodeId(r.u16(field)?), boot: r.u64(field)? }))?;
    Ok(Quorum { electorate, expected: r.u16(field)?, min_replicas: r.u16(field)? })
}

fn put_proposal(out: &mut Vec<u8>, proposal: &Proposal) {
    put_u64(out, proposal.view.0);
    put_u64(out, proposal.prev.0);
    put_u64(out, proposal.cut);
    put_members(out, &proposal.ring);
    put_u16(out, proposal.donor.0);
    put_quorum(out, &proposal.quorum);
}

fn get_proposal(r: &mut Reader<'_>) -> Result<Proposal, DecodeError> {
    Ok(Proposal {
        view: ViewId(r.u64("proposal.view")?),
        prev: ViewId(r.u64("proposal.prev")?),
        cut: r.u64("proposal.cut")?,
        ring: get_members(r, "proposal.ring")?,
        donor: NodeId(r.u16("proposal.donor")?),
        quorum: get_quorum(r, "proposal.quorum")?,
    })
}

fn put_promise(out: &mut Vec<u8>, promise: &Promise) {
    put_ballot(out, &promise.ballot);
    put_member(out, &promise.member);
    put_u64(out, promise.boot);
    put_u64(out, promise.last_primary.0);
    put_members(out, &promise.last_primary_members);
    put_quorum(out, &promise.quorum);
    put_bool(out, promise.holds_log);
    match &promise.accepted {
        None => put_u8(out, 0),
        Some((ballot, proposal)) => {
            put_u8(out, 1);
            put_ballot(out, ballot);
            put_proposal(out, proposal);
        }
    }
    put_u64(out, promise.received_upto);
    put_u64(out, promise.committed_upto);
    put_count(out, promise.unreachable.len());
    promise.unreachable.iter().for_each(|node| put_u16(out, node.0));
    put_bool(out, promise.leaving);
}

fn get_promise(r: &mut Reader<'_>) -> Result<Promise, DecodeError> {
    let ballot = get_ballot(r, "promise.ballot")?;
    let member = get_member(r, "promise.member")?;
    let boot = r.u64("promise.boot")?;
    let last_primary = ViewId(r.u64("promise.last_primary")?);
    let last_primary_members = get_members(r, "promise.last_primary_members")?;
    let quorum = get_quorum(r, "promise.quorum")?;
    let holds_log = r.bool("promise.holds_log")?;
    let accepted = if r.option_tag("promise.accepted")? {
        Some((get_ballot(r, "promise.accepted")?, get_proposal(r)?))
    } else {
        None
    };
    let received_upto = r.u64("promise.received_upto")?;
    let committed_upto = r.u64("promise.committed_upto")?;
    let unreachable =
        get_vec(r, NODE_ID_BYTES, "promise.unreachable", |r| r.u16("promise.unreachable").map(NodeId))?;
    let leaving = r.bool("promise.leaving")?;
    Ok(Promise {
        ballot,
        member,
        boot,
        last_primary,
        last_primary_members,
        quorum,
        holds_log,
        accepted,
        received_upto,
        committed_upto,
        unreachable,
        leaving,
    })
}

/// A handshake frame's version range: absent in version 1, which implies version 1 only
/// (docs/PROTOCOL.md §2.3).
fn put_versions(out: &mut Vec<u8>, version: u8, versions: &Versions) {
    if version >= 2 {
        put_u8(out, versions.min);
        put_u8(out, versions.max);
    }
}

fn get_versions(r: &mut Reader<'_>, version: u8, field: &'static str) -> Result<Versions, DecodeError> {
    if version < 2 {
        return Ok(Versions::LEGACY);
    }
    let versions = Versions { min: r.u8(field)?, max: r.u8(field)? };
    if versions.min == 0 || versions.min > versions.max || !versions.contains(version) {
        return Err(invalid(
            field,
            format!("{}..{} with the frame in version {version}", versions.min, versions.max),
        ));
    }
    Ok(versions)
}
