//! TEMPORARY SHIM, discarded at merge in favour of the real codec (branch `wire`).
//!
//! It has the real codec's signatures and a simple big-endian encoding of client requests and
//! replies only, so the client and CLI compile and their unit tests run. Peer frames are encoded
//! as an empty body and decode as `Heartbeat`: the shim node never talks to peers.

use byteorder::{BigEndian, ByteOrder};

use crate::error::DecodeError;
use crate::ids::{Member, NodeId, ViewId};
use crate::wire::{ClientReply, ClientRequest, ErrorCode, NodeStatus, PeerFrame};

/// The largest frame, length prefix included.
pub const FRAME_BYTES_MAX: usize = 16 << 20;

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

const KIND_PEER: u8 = 0;
const KIND_BROADCAST: u8 = 1;
const KIND_STATUS_REQUEST: u8 = 2;
const KIND_COMMITTED: u8 = 3;
const KIND_STATUS: u8 = 4;
const KIND_ERROR: u8 = 5;

/// Appends one whole peer frame to `out` (shim: kind only).
pub fn encode_peer(_frame: &PeerFrame, out: &mut Vec<u8>) {
    envelope(out, KIND_PEER, |_| {});
}

/// Appends one whole client request frame to `out`.
pub fn encode_request(request: &ClientRequest, out: &mut Vec<u8>) {
    match request {
        ClientRequest::Broadcast { request, payload } => envelope(out, KIND_BROADCAST, |out| {
            put_u64(out, *request);
            out.extend_from_slice(payload);
        }),
        ClientRequest::Status { request } => envelope(out, KIND_STATUS_REQUEST, |out| put_u64(out, *request)),
    }
}

/// Appends one whole client reply frame to `out`.
pub fn encode_reply(reply: &ClientReply, out: &mut Vec<u8>) {
    match reply {
        ClientReply::Committed { request, seq } => envelope(out, KIND_COMMITTED, |out| {
            put_u64(out, *request);
            put_u64(out, *seq);
        }),
        ClientReply::Status { request, status } => envelope(out, KIND_STATUS, |out| {
            put_u64(out, *request);
            put_u64(out, u64::from(status.member.id.0));
            for value in [
                status.member.incarnation,
                status.view.0,
                u64::from(status.primary),
                status.delivered,
                status.committed_upto,
                status.state_digest,
                status.delivery_digest,
                status.rotations,
            ] {
                put_u64(out, value);
            }
        }),
        ClientReply::Error { request, code, message } => envelope(out, KIND_ERROR, |out| {
            put_u64(out, *request);
            out.push(*code as u8);
            out.extend_from_slice(message.as_bytes());
        }),
    }
}

/// The total length of the first complete frame in `buf`, `None` if more bytes are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buf.get(..4) else { return Ok(None) };
    let total = 4 + BigEndian::read_u32(prefix) as usize;
    if total > FRAME_BYTES_MAX {
        return Err(DecodeError::TooLarge { length: total as u64, max: FRAME_BYTES_MAX as u64 });
    }
    if total < 5 {
        return Err(DecodeError::Invalid { field: "length", reason: "too small".into() });
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Decodes one complete frame as returned by `frame_len`.
pub fn decode(frame: &[u8]) -> Result<Frame, DecodeError> {
    if frame_len(frame)? != Some(frame.len()) {
        return Err(DecodeError::Truncated { field: "frame" });
    }
    let body = &frame[5..];
    let u64_at = |index: usize, field: &'static str| {
        body.get(index * 8..index * 8 + 8).map(BigEndian::read_u64).ok_or(DecodeError::Truncated { field })
    };
    match frame[4] {
        KIND_PEER => Ok(Frame::Peer(PeerFrame::Heartbeat)),
        KIND_BROADCAST => Ok(Frame::Request(ClientRequest::Broadcast {
            request: u64_at(0, "request")?,
            payload: body[8..].into(),
        })),
        KIND_STATUS_REQUEST => Ok(Frame::Request(ClientRequest::Status { request: u64_at(0, "request")? })),
        KIND_COMMITTED => Ok(Frame::Reply(ClientReply::Committed {
            request: u64_at(0, "request")?,
            seq: u64_at(1, "seq")?,
        })),
        KIND_STATUS => {
            let status = NodeStatus {
                member: Member { id: NodeId(u64_at(1, "member")? as u16), incarnation: u64_at(2, "member")? },
                view: ViewId(u64_at(3, "view")?),
                primary: u64_at(4, "primary")? != 0,
                ring: Vec::new(),
                delivered: u64_at(5, "delivered")?,
                committed_upto: u64_at(6, "committed_upto")?,
                state_digest: u64_at(7, "state_digest")?,
                delivery_digest: u64_at(8, "delivery_digest")?,
                rotations: u64_at(9, "rotations")?,
            };
            Ok(Frame::Reply(ClientReply::Status { request: u64_at(0, "request")?, status }))
        }
        KIND_ERROR => {
            let code = match body.get(8) {
                Some(0) => ErrorCode::Busy,
                Some(1) => ErrorCode::NoQuorum,
                Some(2) => ErrorCode::BadRequest,
                Some(3) => ErrorCode::ShuttingDown,
                _ => return Err(DecodeError::Invalid { field: "code", reason: "unknown".into() }),
            };
            let message = String::from_utf8_lossy(&body[9..]).into_owned();
            Ok(Frame::Reply(ClientReply::Error { request: u64_at(0, "request")?, code, message }))
        }
        other => Err(DecodeError::Invalid { field: "kind", reason: format!("unknown kind {other}") }),
    }
}

fn envelope(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    body(out);
    let length = (out.len() - start - 4) as u32;
    BigEndian::write_u32(&mut out[start..start + 4], length);
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}
