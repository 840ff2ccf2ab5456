//! Random frame values for the property tests of the codec and the core (test builds only): every
//! kind, nested `Option`s and vectors, multi-byte text. Numbers are mostly small so that counts
//! and seqs look like real ones, and sometimes any 64 bits so that every byte of a field is
//! exercised. Also byte-level mutation, and sealing any bytes as a frame the checksum accepts.

use std::sync::Arc;

use super::bytes::put_u32;
use super::codec::{Frame, FrameKind};
use super::frame::{
    AuthMode, ClientReply, ClientRequest, Consistency, Data, ErrorCode, MemberInfo, Message, NodeStatus,
    Payload, PeerFrame, Promise, Proposal, Quorum, StandbyRole, Token, WatchEvent, WatchKind,
};
use crate::ids::{Ballot, Member, MsgId, NodeId, ViewId, Voter};
use crate::rng::Rng;

/// Mostly small numbers, so counts and seqs look plausible, sometimes any 64 bits.
fn number(rng: &mut Rng) -> u64 {
    if rng.chance(1, 2) {
        rng.below(300)
    } else {
        rng.next_u64()
    }
}

fn random_payload(rng: &mut Rng, bytes_max: u64) -> Payload {
    let len = rng.below(bytes_max + 1);
    Arc::from((0..len).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>())
}

fn random_32(rng: &mut Rng) -> [u8; 32] {
    std::array::from_fn(|_| rng.next_u64() as u8)
}

fn random_mode(rng: &mut Rng) -> AuthMode {
    [AuthMode::Open, AuthMode::Mac, AuthMode::Encrypt][rng.below(3) as usize]
}

fn random_member(rng: &mut Rng) -> Member {
    Member { id: NodeId(number(rng) as u16), incarnation: number(rng) }
}

fn random_members(rng: &mut Rng) -> Vec<Member> {
    (0..rng.below(6)).map(|_| random_member(rng)).collect()
}

fn random_ballot(rng: &mut Rng) -> Ballot {
    Ballot { round: number(rng), node: NodeId(number(rng) as u16) }
}

pub(crate) fn random_message(rng: &mut Rng, payload_bytes_max: u64) -> Message {
    Message {
        seq: number(rng),
        id: MsgId { origin: NodeId(number(rng) as u16), incarnation: number(rng), counter: number(rng) },
        attempt: number(rng) as u16,
        payload: random_payload(rng, payload_bytes_max),
    }
}

fn random_messages(rng: &mut Rng) -> Vec<Message> {
    (0..rng.below(5)).map(|_| random_message(rng, 40)).collect()
}

fn random_quorum(rng: &mut Rng) -> Quorum {
    Quorum {
        electorate: (0..rng.below(5))
            .map(|_| Voter { id: NodeId(number(rng) as u16), boot: number(rng) })
            .collect(),
        expected: number(rng) as u16,
        min_replicas: number(rng) as u16,
    }
}

fn random_proposal(rng: &mut Rng) -> Proposal {
    Proposal {
        view: ViewId(number(rng)),
        prev: ViewId(number(rng)),
        cut: number(rng),
        ring: random_members(rng),
        donor: NodeId(number(rng) as u16),
        quorum: random_quorum(rng),
    }
}

pub(crate) fn random_promise(rng: &mut Rng) -> Promise {
    Promise {
        ballot: random_ballot(rng),
        member: random_member(rng),
        boot: number(rng),
        last_primary: ViewId(number(rng)),
        last_primary_members: random_members(rng),
        quorum: random_quorum(rng),
        holds_log: rng.chance(1, 2),
        accepted: rng.chance(1, 2).then(|| (random_ballot(rng), random_proposal(rng))),
        received_upto: number(rng),
        committed_upto: number(rng),
        unreachable: (0..rng.below(4)).map(|_| NodeId(number(rng) as u16)).collect(),
        leaving: rng.chance(1, 2),
    }
}

fn random_text(rng: &mut Rng) -> String {
    const PIECES: [&str; 6] = ["a", "busy", " ", "é", "€", "\u{1f600}"];
    (0..rng.below(8)).map(|_| PIECES[rng.below(PIECES.len() as u64) as usize]).collect()
}

/// A version range that holds this build's highest version, as every frame `random_frame`
/// makes is encoded in it.
fn random_versions(rng: &mut Rng) -> crate::wire::Versions {
    let min = 1 + rng.below(u64::from(crate::wire::VERSION)) as u8;
    crate::wire::Versions { min, max: crate::wire::VERSION + rng.below(3) as u8 }
}

/// A random value of a random kind (every kind equally likely).
pub(crate) fn random_frame(rng: &mut Rng) -> Frame {
    let kind = FrameKind::ALL[rng.below(FrameKind::ALL.len() as u64) as usize];
    let peer = match kind {
        FrameKind::Hello => PeerFrame::Hello {
            cluster: number(rng),
            mode: random_mode(rng),
            from: random_member(rng),
            to: NodeId(number(rng) as u16),
            nonce: random_32(rng),
            versions: random_versions(rng),
        },
        FrameKind::HelloAck => PeerFrame::HelloAck { proof: random_32(rng) },
        FrameKind::Challenge => PeerFrame::Challenge {
            from: random_member(rng),
            mode: random_mode(rng),
            nonce: random_32(rng),
            versions: random_versions(rng),
        },
        FrameKind::Proof => PeerFrame::Proof { proof: random_32(rng) },
        FrameKind::Heartbeat => PeerFrame::Heartbeat,
        FrameKind::Token => {
            let positions = rng.below(8);
            PeerFrame::Token(Token {
                view: ViewId(number(rng)),
                rotation: number(rng),
                next_seq: number(rng),
                received: (0..positions).map(|_| number(rng)).collect(),
                backlog: (0..positions).map(|_| number(rng) as u32).collect(),
                quiet: number(rng) as u32,
                window_bytes: number(rng),
            })
        }
        FrameKind::Data => PeerFrame::Data(Data {
            view: ViewId(number(rng)),
            hops_left: number(rng) as u16,
            messages: random_messages(rng),
        }),
        FrameKind::Wake => PeerFrame::Wake { view: ViewId(number(rng)), hops_left: number(rng) as u16 },
        FrameKind::Join => PeerFrame::Join {
            member: random_member(rng),
            last_primary: ViewId(number(rng)),
            caught_up: number(rng),
            catching_up: rng.below(2) == 1,
        },
        FrameKind::SnapshotAck => {
            PeerFrame::SnapshotAck { ballot: random_ballot(rng), seq: number(rng), offset: number(rng) }
        }
        FrameKind::Leave => PeerFrame::Leave { member: random_member(rng) },
        FrameKind::Prepare => {
            PeerFrame::Prepare { ballot: random_ballot(rng), last_primary: ViewId(number(rng)) }
        }
        FrameKind::Promise => PeerFrame::Promise(Box::new(random_promise(rng))),
        FrameKind::Nack => PeerFrame::Nack {
            ballot: random_ballot(rng),
            promised: random_ballot(rng),
            last_primary: ViewId(number(rng)),
        },
        FrameKind::Accept => PeerFrame::Accept { ballot: random_ballot(rng), proposal: random_proposal(rng) },
        FrameKind::Accepted => PeerFrame::Accepted { ballot: random_ballot(rng), member: random_member(rng) },
        FrameKind::Commit => PeerFrame::Commit { ballot: random_ballot(rng), proposal: random_proposal(rng) },
        FrameKind::Fetch => PeerFrame::Fetch {
            ballot: random_ballot(rng),
            after: number(rng),
            upto: number(rng),
            snapshot: rng.chance(1, 2),
        },
        FrameKind::Retransmit => {
            PeerFrame::Retransmit { ballot: random_ballot(rng), messages: random_messages(rng) }
        }
        FrameKind::SnapshotChunk => PeerFrame::SnapshotChunk {
            ballot: random_ballot(rng),
            seq: number(rng),
            offset: number(rng),
            total: number(rng),
            bytes: random_payload(rng, 100),
        },
        FrameKind::Broadcast => {
            return Frame::Request(ClientRequest::Broadcast {
                request: number(rng),
                payload: random_payload(rng, 100),
            })
        }
        FrameKind::StatusRequest => return Frame::Request(ClientRequest::Status { request: number(rng) }),
        FrameKind::Committed => {
            return Frame::Reply(ClientReply::Committed { request: number(rng), seq: number(rng) })
        }
        FrameKind::StatusReply => {
            return Frame::Reply(ClientReply::Status {
                request: number(rng),
                status: NodeStatus {
                    member: random_member(rng),
                    view: ViewId(number(rng)),
                    primary: rng.chance(1, 2),
                    ring: random_members(rng),
                    delivered: number(rng),
                    committed_upto: number(rng),
                    state_digest: number(rng),
                    delivery_digest: number(rng),
                    rotations: number(rng),
                    revision: number(rng),
                    rotation_millihertz: number(rng),
                    role: [StandbyRole::None, StandbyRole::Hot, StandbyRole::Warm, StandbyRole::Witness]
                        [rng.below(4) as usize],
                    last_checkpoint: number(rng),
                    replicas: number(rng) as u16,
                    configured: number(rng) as u16,
                    min_replicas: number(rng) as u16,
                    max_step_us: number(rng),
                    state_bytes: number(rng),
                    links_up: number(rng) as u32,
                    links_dialled: number(rng),
                    links_accepted: number(rng),
                    version: format!("0.{}.{}", number(rng) % 100, number(rng) % 100),
                    metrics: (0..rng.below(4))
                        .map(|i| crate::metrics::Sample {
                            name: format!("m{i}"),
                            label: if rng.chance(1, 2) {
                                String::new()
                            } else {
                                format!("l{}", number(rng) % 10)
                            },
                            value: number(rng),
                        })
                        .collect(),
                },
            })
        }
        FrameKind::Error => {
            const CODES: [ErrorCode; 8] = [
                ErrorCode::Busy,
                ErrorCode::NoQuorum,
                ErrorCode::BadRequest,
                ErrorCode::ShuttingDown,
                ErrorCode::OutcomeUnknown,
                ErrorCode::Compacted,
                ErrorCode::NotEnoughReplicas,
                ErrorCode::Refused,
            ];
            return Frame::Reply(ClientReply::Error {
                request: number(rng),
                code: CODES[rng.below(CODES.len() as u64) as usize],
                message: random_text(rng),
            });
        }
        FrameKind::Execute => {
            return Frame::Request(ClientRequest::Execute {
                request: number(rng),
                consistency: if rng.chance(1, 2) { Consistency::Linearizable } else { Consistency::Stale },
                command: random_payload(rng, 100),
            })
        }
        FrameKind::Watch => {
            return Frame::Request(ClientRequest::Watch {
                request: number(rng),
                prefix: random_payload(rng, 20),
                from: number(rng),
            })
        }
        FrameKind::MembersRequest => return Frame::Request(ClientRequest::Members { request: number(rng) }),
        FrameKind::LeaveRequest => return Frame::Request(ClientRequest::Leave { request: number(rng) }),
        FrameKind::Executed => {
            return Frame::Reply(ClientReply::Executed {
                request: number(rng),
                seq: number(rng),
                outcome: random_payload(rng, 100),
            })
        }
        FrameKind::Events => {
            let events = (0..rng.below(4))
                .map(|_| WatchEvent {
                    revision: number(rng),
                    kind: if rng.chance(1, 2) { WatchKind::Put } else { WatchKind::Delete },
                    key: random_payload(rng, 20),
                    value: random_payload(rng, 40),
                })
                .collect();
            return Frame::Reply(ClientReply::Events { request: number(rng), revision: number(rng), events });
        }
        FrameKind::MembersReply => {
            let members = (0..rng.below(5))
                .map(|_| MemberInfo {
                    id: NodeId(number(rng) as u16),
                    addr: random_text(rng),
                    incarnation: number(rng),
                    role: [StandbyRole::None, StandbyRole::Hot, StandbyRole::Warm][rng.below(3) as usize],
                    received_upto: number(rng),
                })
                .collect();
            return Frame::Reply(ClientReply::Members { request: number(rng), members });
        }
        FrameKind::Leaving => return Frame::Reply(ClientReply::Leaving { request: number(rng) }),
        FrameKind::ForcePrimary => {
            return Frame::Request(ClientRequest::ForcePrimary {
                request: number(rng),
                confirm: rng.chance(1, 2),
            })
        }
        FrameKind::Forced => {
            return Frame::Reply(ClientReply::Forced {
                request: number(rng),
                formed: rng.chance(1, 2),
                report: random_text(rng),
            })
        }
    };
    Frame::Peer(peer)
}

/// A frame with a correct length prefix and checksum around arbitrary version, kind and body, so
/// that tests reach the body parser.
pub(crate) fn seal(version: u8, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut covered = vec![version, kind];
    covered.extend_from_slice(body);
    let mut out = Vec::new();
    put_u32(&mut out, (covered.len() + 4) as u32);
    out.extend_from_slice(&covered);
    put_u32(&mut out, crc32fast::hash(&covered));
    out
}

/// Changes, flips, cuts or inserts one to three bytes of `body`.
pub(crate) fn mutate(rng: &mut Rng, body: &mut Vec<u8>) {
    for _ in 0..rng.range(1, 3) {
        match rng.below(4) {
            0 if !body.is_empty() => {
                let at = rng.below(body.len() as u64) as usize;
                body[at] = rng.next_u64() as u8;
            }
            1 if !body.is_empty() => {
                let at = rng.below(body.len() as u64) as usize;
                body[at] ^= 1 << rng.below(8);
            }
            2 => body.truncate(rng.below(body.len() as u64 + 1) as usize),
            _ => {
                let at = rng.below(body.len() as u64 + 1) as usize;
                body.insert(at, rng.next_u64() as u8);
            }
        }
    }
}
