//! TEMPORARY stand-in for the real codec (being written on branch `wire`); replaced at merge time.
//!
//! It exists only so that the transport and node code compile and can be tested against the agreed
//! API: `encode_peer`, `encode_request`, `encode_reply`, `frame_len`, `decode`, `Frame`,
//! `FRAME_BYTES_MAX`. Its byte layout (a 4-byte big-endian length, then a private tagged body) is
//! NOT the protocol's wire format; nothing outside this file may depend on it.

use std::sync::Arc;

use byteorder::{BigEndian, ByteOrder};

use super::frame::*;
use crate::error::DecodeError;
use crate::ids::{Ballot, Member, MsgId, NodeId, ViewId};

/// The largest frame, length prefix included.
pub const FRAME_BYTES_MAX: usize = 16 << 20;

/// Any decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Between peers.
    Peer(PeerFrame),
    /// From a client.
    Request(ClientRequest),
    /// To a client.
    Reply(ClientReply),
}

/// Appends one whole peer frame to `out`.
pub fn encode_peer(frame: &PeerFrame, out: &mut Vec<u8>) {
    framed(out, |w| {
        w.push(0);
        peer(w, frame)
    });
}

/// Appends one whole client request to `out`.
pub fn encode_request(request: &ClientRequest, out: &mut Vec<u8>) {
    framed(out, |w| match request {
        ClientRequest::Broadcast { request, payload } => {
            w.push(1);
            u64_(w, *request);
            bytes(w, payload);
        }
        ClientRequest::Status { request } => {
            w.push(2);
            u64_(w, *request);
        }
    });
}

/// Appends one whole client reply to `out`.
pub fn encode_reply(reply: &ClientReply, out: &mut Vec<u8>) {
    framed(out, |w| match reply {
        ClientReply::Committed { request, seq } => {
            w.push(3);
            u64_(w, *request);
            u64_(w, *seq);
        }
        ClientReply::Status { request, status: s } => {
            w.push(4);
            u64_(w, *request);
            member(w, s.member);
            u64_(w, s.view.0);
            w.push(s.primary as u8);
            members(w, &s.ring);
            for v in [s.delivered, s.committed_upto, s.state_digest, s.delivery_digest, s.rotations] {
                u64_(w, v);
            }
        }
        ClientReply::Error { request, code, message } => {
            w.push(5);
            u64_(w, *request);
            w.push(*code as u8);
            bytes(w, message.as_bytes());
        }
    });
}

/// The total length of the first complete frame in `buf`, or `None` if more bytes are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let total = BigEndian::read_u32(buf) as usize + 4;
    if total > FRAME_BYTES_MAX {
        return Err(DecodeError::TooLarge { length: total as u64, max: FRAME_BYTES_MAX as u64 });
    }
    Ok(if buf.len() >= total { Some(total) } else { None })
}

/// Decodes one complete frame.
pub fn decode(frame: &[u8]) -> Result<Frame, DecodeError> {
    let mut r = Reader { buf: frame, at: 4 };
    if frame.len() < 4 || frame_len(frame)? != Some(frame.len()) {
        return Err(DecodeError::Truncated { field: "length" });
    }
    let decoded = match r.u8("kind")? {
        0 => Frame::Peer(r.peer()?),
        1 => Frame::Request(ClientRequest::Broadcast { request: r.u64()?, payload: r.bytes()?.into() }),
        2 => Frame::Request(ClientRequest::Status { request: r.u64()? }),
        3 => Frame::Reply(ClientReply::Committed { request: r.u64()?, seq: r.u64()? }),
        4 => {
            let request = r.u64()?;
            let status = NodeStatus {
                member: r.member()?,
                view: ViewId(r.u64()?),
                primary: r.u8("primary")? != 0,
                ring: r.members()?,
                delivered: r.u64()?,
                committed_upto: r.u64()?,
                state_digest: r.u64()?,
                delivery_digest: r.u64()?,
                rotations: r.u64()?,
            };
            Frame::Reply(ClientReply::Status { request, status })
        }
        5 => {
            let request = r.u64()?;
            let code = match r.u8("code")? {
                0 => ErrorCode::Busy,
                1 => ErrorCode::NoQuorum,
                2 => ErrorCode::BadRequest,
                _ => ErrorCode::ShuttingDown,
            };
            let message = String::from_utf8_lossy(&r.bytes()?).into_owned();
            Frame::Reply(ClientReply::Error { request, code, message })
        }
        k => return Err(DecodeError::Invalid { field: "kind", reason: format!("unknown kind {k}") }),
    };
    if r.at != frame.len() {
        return Err(DecodeError::TrailingBytes { count: frame.len() - r.at });
    }
    Ok(decoded)
}

fn framed(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - start - 4) as u32;
    BigEndian::write_u32(&mut out[start..start + 4], len);
}

fn u64_(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_be_bytes());
}

fn bytes(w: &mut Vec<u8>, b: &[u8]) {
    u64_(w, b.len() as u64);
    w.extend_from_slice(b);
}

fn member(w: &mut Vec<u8>, m: Member) {
    u64_(w, u64::from(m.id.0));
    u64_(w, m.incarnation);
}

fn members(w: &mut Vec<u8>, ms: &[Member]) {
    u64_(w, ms.len() as u64);
    ms.iter().for_each(|m| member(w, *m));
}

fn ballot(w: &mut Vec<u8>, b: Ballot) {
    u64_(w, b.round);
    u64_(w, u64::from(b.node.0));
}

fn messages(w: &mut Vec<u8>, ms: &[Message]) {
    u64_(w, ms.len() as u64);
    for m in ms {
        for v in [m.seq, u64::from(m.id.origin.0), m.id.incarnation, m.id.counter, u64::from(m.attempt)] {
            u64_(w, v);
        }
        bytes(w, &m.payload);
    }
}

fn proposal(w: &mut Vec<u8>, p: &Proposal) {
    u64_(w, p.view.0);
    u64_(w, p.prev.0);
    members(w, &p.prev_members);
    u64_(w, p.cut);
    members(w, &p.ring);
    u64_(w, u64::from(p.donor.0));
}

fn ids(w: &mut Vec<u8>, ids: &[NodeId]) {
    u64_(w, ids.len() as u64);
    ids.iter().for_each(|id| u64_(w, u64::from(id.0)));
}

fn peer(w: &mut Vec<u8>, frame: &PeerFrame) {
    match frame {
        PeerFrame::Hello { cluster, from, to } => {
            w.push(0);
            u64_(w, *cluster);
            member(w, *from);
            u64_(w, u64::from(to.0));
        }
        PeerFrame::HelloAck { from } => {
            w.push(1);
            member(w, *from);
        }
        PeerFrame::Heartbeat => w.push(2),
        PeerFrame::Token(t) => {
            w.push(3);
            for v in [t.view.0, t.rotation, t.next_seq, u64::from(t.quiet)] {
                u64_(w, v);
            }
            u64_(w, t.received.len() as u64);
            t.received.iter().for_each(|v| u64_(w, *v));
            u64_(w, t.backlog.len() as u64);
            t.backlog.iter().for_each(|v| u64_(w, u64::from(*v)));
        }
        PeerFrame::Data(d) => {
            w.push(4);
            u64_(w, d.view.0);
            u64_(w, u64::from(d.hops_left));
            messages(w, &d.messages);
        }
        PeerFrame::Wake { view, hops_left } => {
            w.push(5);
            u64_(w, view.0);
            u64_(w, u64::from(*hops_left));
        }
        PeerFrame::Join { member: m, last_primary } => {
            w.push(6);
            member(w, *m);
            u64_(w, last_primary.0);
        }
        PeerFrame::Leave { member: m } => {
            w.push(7);
            member(w, *m);
        }
        PeerFrame::Prepare { ballot: b, last_primary } => {
            w.push(8);
            ballot(w, *b);
            u64_(w, last_primary.0);
        }
        PeerFrame::Promise(p) => {
            w.push(9);
            ballot(w, p.ballot);
            member(w, p.member);
            u64_(w, p.last_primary.0);
            members(w, &p.last_primary_members);
            w.push(p.holds_log as u8);
            match &p.accepted {
                None => w.push(0),
                Some((b, prop)) => {
                    w.push(1);
                    ballot(w, *b);
                    proposal(w, prop);
                }
            }
            u64_(w, p.received_upto);
            u64_(w, p.committed_upto);
            ids(w, &p.unreachable);
            w.push(p.leaving as u8);
        }
        PeerFrame::Nack { ballot: b, promised, last_primary } => {
            w.push(10);
            ballot(w, *b);
            ballot(w, *promised);
            u64_(w, last_primary.0);
        }
        PeerFrame::Accept { ballot: b, proposal: p } | PeerFrame::Commit { ballot: b, proposal: p } => {
            w.push(if matches!(frame, PeerFrame::Accept { .. }) { 11 } else { 13 });
            ballot(w, *b);
            proposal(w, p);
        }
        PeerFrame::Accepted { ballot: b, member: m } => {
            w.push(12);
            ballot(w, *b);
            member(w, *m);
        }
        PeerFrame::Fetch { ballot: b, after, upto, snapshot } => {
            w.push(14);
            ballot(w, *b);
            u64_(w, *after);
            u64_(w, *upto);
            w.push(*snapshot as u8);
        }
        PeerFrame::Retransmit { ballot: b, messages: ms } => {
            w.push(15);
            ballot(w, *b);
            messages(w, ms);
        }
        PeerFrame::SnapshotChunk { ballot: b, seq, offset, total, bytes: chunk } => {
            w.push(16);
            ballot(w, *b);
            for v in [*seq, *offset, *total] {
                u64_(w, v);
            }
            bytes(w, chunk);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.buf.len());
        let end = end.ok_or(DecodeError::Truncated { field })?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(BigEndian::read_u64(self.take(8, "u64")?))
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.u64()?)
            .map_err(|_| DecodeError::Invalid { field: "u16", reason: "too big".into() })
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.u64()?)
            .map_err(|_| DecodeError::Invalid { field: "u32", reason: "too big".into() })
    }
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u64()? as usize;
        if n > self.buf.len() - self.at {
            return Err(DecodeError::Truncated { field: "list" });
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.len()?;
        Ok(self.take(n, "bytes")?.to_vec())
    }
    fn member(&mut self) -> Result<Member, DecodeError> {
        Ok(Member { id: NodeId(self.u16()?), incarnation: self.u64()? })
    }
    fn members(&mut self) -> Result<Vec<Member>, DecodeError> {
        (0..self.len()?).map(|_| self.member()).collect()
    }
    fn ballot(&mut self) -> Result<Ballot, DecodeError> {
        Ok(Ballot { round: self.u64()?, node: NodeId(self.u16()?) })
    }
    fn messages(&mut self) -> Result<Vec<Message>, DecodeError> {
        (0..self.len()?)
            .map(|_| {
                let seq = self.u64()?;
                let id =
                    MsgId { origin: NodeId(self.u16()?), incarnation: self.u64()?, counter: self.u64()? };
                Ok(Message { seq, id, attempt: self.u16()?, payload: Arc::from(self.bytes()?) })
            })
            .collect()
    }
    fn proposal(&mut self) -> Result<Proposal, DecodeError> {
        Ok(Proposal {
            view: ViewId(self.u64()?),
            prev: ViewId(self.u64()?),
            prev_members: self.members()?,
            cut: self.u64()?,
            ring: self.members()?,
            donor: NodeId(self.u16()?),
        })
    }
    fn peer(&mut self) -> Result<PeerFrame, DecodeError> {
        Ok(match self.u8("peer kind")? {
            0 => PeerFrame::Hello { cluster: self.u64()?, from: self.member()?, to: NodeId(self.u16()?) },
            1 => PeerFrame::HelloAck { from: self.member()? },
            2 => PeerFrame::Heartbeat,
            3 => {
                let (view, rotation, next_seq, quiet) =
                    (ViewId(self.u64()?), self.u64()?, self.u64()?, self.u32()?);
                let received = (0..self.len()?).map(|_| self.u64()).collect::<Result<_, _>>()?;
                let backlog = (0..self.len()?).map(|_| self.u32()).collect::<Result<_, _>>()?;
                PeerFrame::Token(Token { view, rotation, next_seq, received, backlog, quiet })
            }
            4 => PeerFrame::Data(Data {
                view: ViewId(self.u64()?),
                hops_left: self.u16()?,
                messages: self.messages()?,
            }),
            5 => PeerFrame::Wake { view: ViewId(self.u64()?), hops_left: self.u16()? },
            6 => PeerFrame::Join { member: self.member()?, last_primary: ViewId(self.u64()?) },
            7 => PeerFrame::Leave { member: self.member()? },
            8 => PeerFrame::Prepare { ballot: self.ballot()?, last_primary: ViewId(self.u64()?) },
            9 => PeerFrame::Promise(Promise {
                ballot: self.ballot()?,
                member: self.member()?,
                last_primary: ViewId(self.u64()?),
                last_primary_members: self.members()?,
                holds_log: self.u8("holds_log")? != 0,
                accepted: match self.u8("accepted")? {
                    0 => None,
                    _ => Some((self.ballot()?, self.proposal()?)),
                },
                received_upto: self.u64()?,
                committed_upto: self.u64()?,
                unreachable: (0..self.len()?).map(|_| Ok(NodeId(self.u16()?))).collect::<Result<_, _>>()?,
                leaving: self.u8("leaving")? != 0,
            }),
            10 => PeerFrame::Nack {
                ballot: self.ballot()?,
                promised: self.ballot()?,
                last_primary: ViewId(self.u64()?),
            },
            11 => PeerFrame::Accept { ballot: self.ballot()?, proposal: self.proposal()? },
            12 => PeerFrame::Accepted { ballot: self.ballot()?, member: self.member()? },
            13 => PeerFrame::Commit { ballot: self.ballot()?, proposal: self.proposal()? },
            14 => PeerFrame::Fetch {
                ballot: self.ballot()?,
                after: self.u64()?,
                upto: self.u64()?,
                snapshot: self.u8("snapshot")? != 0,
            },
            15 => PeerFrame::Retransmit { ballot: self.ballot()?, messages: self.messages()? },
            16 => PeerFrame::SnapshotChunk {
                ballot: self.ballot()?,
                seq: self.u64()?,
                offset: self.u64()?,
                total: self.u64()?,
                bytes: Arc::from(self.bytes()?),
            },
            k => {
                return Err(DecodeError::Invalid { field: "peer kind", reason: format!("unknown kind {k}") })
            }
        })
    }
}
