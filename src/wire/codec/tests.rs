//! Tests of the frame codec: round trips, envelope and body errors, and that no input, however
//! damaged, makes it panic (docs/PROTOCOL.md §2.2).

mod golden;

use std::sync::Arc;

use super::*;
use crate::ids::{Ballot, Member, NodeId, ViewId};
use crate::rng::Rng;
use crate::wire::arbitrary::{mutate, random_frame, random_message, random_promise, seal};
use crate::wire::frame::{Data, ErrorCode, Message, Promise, Proposal, Token};
use golden::{ballot, encode, error, golden_body, golden_bytes, goldens, proposal, unhex};

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
        window_bytes: 8 << 20,
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
                    ring: (1..=64).map(|id| Member { id: NodeId(id), incarnation: u64::from(id) }).collect(),
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
            // The goldens are of version 1 (the version-2 round trip is in `golden`).
            Frame::Peer(frame) => encode_peer_in(1, frame, &mut stream),
            Frame::Request(request) => encode_request_in(1, request, &mut stream),
            Frame::Reply(reply) => encode_reply_in(1, reply, &mut stream),
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
        assert!(matches!(decode(&length.to_be_bytes()), Err(DecodeError::Invalid { field: "length", .. })));
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
    for version in [0, VERSION + 1, 255] {
        assert!(matches!(
            decode(&seal(version, FrameKind::Heartbeat as u8, &[])),
            Err(DecodeError::Version { theirs, ours: Versions::ALL }) if theirs == version
        ));
    }
    assert!(decode(&seal(VERSION_MIN, FrameKind::Heartbeat as u8, &[])).is_ok());
    for kind in [0, 21, 63, 71, 95, 104, 255] {
        assert!(matches!(decode(&seal(VERSION, kind, &[])), Err(DecodeError::Invalid { field: "kind", .. })));
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
