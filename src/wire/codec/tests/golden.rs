//! Golden bytes: one frame of every kind and every error code in protocol version 1, and the
//! frames whose layout version 2 changed, written out byte by byte, so an accidental change of
//! the wire format fails here (docs/PROTOCOL.md §2, §2.3).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::ids::{Ballot, Member, MsgId, NodeId, ViewId, Voter};
use crate::wire::frame::{
    AuthMode, Consistency, Data, ErrorCode, MemberInfo, Message, NodeStatus, Promise, Proposal, Quorum,
    StandbyRole, Token, WatchEvent, WatchKind,
};

/// `frame` in this build's highest protocol version.
pub(super) fn encode(frame: &Frame) -> Vec<u8> {
    encode_in(VERSION, frame)
}

/// `frame` in protocol `version`.
pub(super) fn encode_in(version: u8, frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    match frame {
        Frame::Peer(frame) => encode_peer_in(version, frame, &mut out),
        Frame::Request(request) => encode_request_in(version, request, &mut out),
        Frame::Reply(reply) => encode_reply_in(version, reply, &mut out),
    }
    out
}

/// Hex digits with whitespace between fields, as the golden literals are written.
pub(super) fn unhex(text: &str) -> Vec<u8> {
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
pub(super) fn counting(first: u8) -> [u8; 32] {
    std::array::from_fn(|i| first + i as u8)
}

pub(super) fn member1() -> Member {
    Member { id: NodeId(1), incarnation: 6 }
}

pub(super) fn member2() -> Member {
    Member { id: NodeId(2), incarnation: 7 }
}

pub(super) fn ballot() -> Ballot {
    Ballot { round: 3, node: NodeId(1) }
}

pub(super) fn message1() -> Message {
    Message {
        seq: 0x10,
        id: MsgId { origin: NodeId(2), incarnation: 7, counter: 1 },
        attempt: 0,
        payload: Arc::from(&b"hi"[..]),
    }
}

pub(super) fn message2() -> Message {
    Message {
        seq: 0x11,
        id: MsgId { origin: NodeId(3), incarnation: 8, counter: 4 },
        attempt: 1,
        payload: Arc::from(&b""[..]),
    }
}

pub(super) fn proposal() -> Proposal {
    Proposal {
        view: ViewId(5),
        prev: ViewId(4),
        cut: 0x20,
        ring: vec![member2(), member1()],
        donor: NodeId(1),
        quorum: quorum(),
    }
}

pub(super) fn quorum() -> Quorum {
    Quorum {
        electorate: vec![Voter { id: NodeId(1), boot: 6 }, Voter { id: NodeId(2), boot: 7 }],
        expected: 3,
        min_replicas: 2,
    }
}

pub(super) fn error(code: ErrorCode, message: &str) -> Frame {
    Frame::Reply(ClientReply::Error { request: 0x2c, code, message: message.to_owned() })
}

/// Every frame kind (both `Promise` shapes, every `ErrorCode`) with its exact bytes, written
/// field by field: `length version kind body.. checksum`. A change to the format must fail
/// here on purpose; the checksums were computed independently of this crate (zlib).
pub(super) fn goldens() -> Vec<(&'static str, Frame, &'static str)> {
    vec![
        (
            "hello",
            Frame::Peer(PeerFrame::Hello {
                cluster: 0x0123_4567_89ab_cdef,
                mode: AuthMode::Mac,
                from: member2(),
                to: NodeId(3),
                nonce: counting(0x00),
                versions: Versions::LEGACY,
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
                window_bytes: 0x4000,
            })),
            "0000004a 01 04  0000000000000005 0000000000000009 0000000000000010
             00000002 0000000000000004 0000000000000006  00000002 00000000 00000002
             00000001 0000000000004000  c5844cd4",
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
                versions: Versions::LEGACY,
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
                status: golden_status(),
            }),
            "000000a4 01 61  000000000000002b  0002 0000000000000007  0000000000000005  01
             00000002 0001 0000000000000006 0002 0000000000000007
             0000000000000030 0000000000000021 1122334455667788 99aabbccddeeff00
             000000000000000c  000000000000000d 0000000000000fa0 02 0000000000000020
             0002 0003 0002  00000000000003e8 0000000000100000 00000002 0000000000000011 0000000000000012  8fb5a7e8",
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
            Frame::Request(ClientRequest::Watch { request: 0x2e, prefix: Arc::from(&b"k/"[..]), from: 7 }),
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
                    MemberInfo {
                        id: NodeId(1),
                        addr: "127.0.0.1:7101".into(),
                        incarnation: 6,
                        role: StandbyRole::Hot,
                        received_upto: 0x21,
                    },
                    MemberInfo {
                        id: NodeId(2),
                        addr: "127.0.0.1:7102".into(),
                        incarnation: 0,
                        role: StandbyRole::None,
                        received_upto: 0,
                    },
                ],
            }),
            "00000058 01 65  000000000000002f 00000002
             0001 000e 3132372e302e302e313a37313031 0000000000000006 02 0000000000000021
             0002 000e 3132372e302e302e313a37313032 0000000000000000 01 0000000000000000  a0c309d8",
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
/// The frames whose layout differs in protocol version 2, in version 2 (docs/PROTOCOL.md §2.3):
/// `Hello` and `Challenge` carry their sender's range, the status reply the software version
/// and the metrics. The checksums were computed with zlib.
pub(super) fn goldens_v2() -> Vec<(&'static str, Frame, &'static str)> {
    vec![
        (
            "hello",
            Frame::Peer(PeerFrame::Hello {
                cluster: 0x0123_4567_89ab_cdef,
                mode: AuthMode::Mac,
                from: member2(),
                to: NodeId(3),
                nonce: counting(0x00),
                versions: Versions { min: 1, max: 2 },
            }),
            "0000003d 02 01  0123456789abcdef  01  0002 0000000000000007  0003
             000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f  01 02  79fcd474",
        ),
        (
            "challenge",
            Frame::Peer(PeerFrame::Challenge {
                from: member1(),
                mode: AuthMode::Encrypt,
                nonce: counting(0x40),
                versions: Versions { min: 1, max: 2 },
            }),
            "00000033 02 12  0001 0000000000000006  02
             404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f  01 02  719fc507",
        ),
        (
            "status_reply",
            Frame::Reply(ClientReply::Status {
                request: 0x2b,
                status: NodeStatus {
                    version: "0.1.0".into(),
                    metrics: vec![crate::metrics::Sample::labelled("q", "c", 3)],
                    ..golden_status()
                },
            }),
            "000000bd 02 61  000000000000002b  0002 0000000000000007  0000000000000005  01
             00000002 0001 0000000000000006 0002 0000000000000007
             0000000000000030 0000000000000021 1122334455667788 99aabbccddeeff00
             000000000000000c  000000000000000d 0000000000000fa0 02 0000000000000020
             0002 0003 0002  00000000000003e8 0000000000100000 00000002 0000000000000011 0000000000000012 0005 302e312e30
             00000001 0001 71 0001 63 0000000000000003  88d269b5",
        ),
    ]
}

pub(super) fn golden_bytes(name: &str) -> Vec<u8> {
    let (_, _, hex) = goldens().into_iter().find(|(case, _, _)| *case == name).expect("a golden case");
    unhex(hex)
}

/// The body of golden case `name`: what lies between the kind byte and the checksum.
pub(super) fn golden_body(name: &str) -> Vec<u8> {
    let bytes = golden_bytes(name);
    bytes[LENGTH_BYTES + 2..bytes.len() - CHECKSUM_BYTES].to_vec()
}

#[test]
fn golden_bytes_for_every_frame_kind_and_error_code() {
    let mut kinds = BTreeSet::new();
    let mut codes = Vec::new();
    for (name, frame, hex) in goldens() {
        let expected = unhex(hex);
        assert_eq!(encode_in(1, &frame), expected, "encoding of {name}");
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
fn golden_bytes_of_version_2() {
    for (name, frame, hex) in goldens_v2() {
        let expected = unhex(hex);
        assert_eq!(encode_in(2, &frame), expected, "encoding of {name} in version 2");
        assert_eq!(decode_within(&expected, Versions::ALL), Ok((2, frame)), "decoding of {name}");
        // A build of version 1 only refuses it, naming both (docs/PROTOCOL.md §2.3).
        assert_eq!(
            decode_within(&expected, Versions::LEGACY),
            Err(DecodeError::Version { theirs: 2, ours: Versions::LEGACY })
        );
    }
}

#[test]
fn version_2_changes_only_hello_challenge_and_the_status_reply() {
    let changed: Vec<&str> = goldens_v2().into_iter().map(|(name, _, _)| name).collect();
    for (name, frame, hex) in goldens() {
        let v1 = unhex(hex);
        let v2 = encode_in(2, &frame);
        if changed.contains(&name) {
            assert_ne!(v1.len(), v2.len(), "{name} has a version-2 layout");
            continue;
        }
        // The same body; only the version byte and so the checksum differ.
        assert_eq!(v1.len(), v2.len(), "{name}");
        assert_eq!(v2[LENGTH_BYTES], 2);
        assert_eq!(
            v1[LENGTH_BYTES + 1..v1.len() - CHECKSUM_BYTES],
            v2[LENGTH_BYTES + 1..v2.len() - CHECKSUM_BYTES]
        );
        assert_eq!(decode_within(&v2, Versions::ALL), Ok((2, frame)), "{name}");
    }
}

/// The status both versions' golden replies carry; version 1 has no software version or metrics.
fn golden_status() -> NodeStatus {
    NodeStatus {
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
        links_up: 2,
        links_dialled: 0x11,
        links_accepted: 0x12,
        version: String::new(),
        metrics: Vec::new(),
    }
}
