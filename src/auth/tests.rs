//! The handshake and records against test vectors: the primitives against their RFCs, and our
//! constructions against values computed independently of this crate (Python's `hmac`,
//! `hashlib` and `cryptography` packages, from the formulas in `auth` and `record`'s docs).

use super::*;
use crate::error::DecodeError;
use crate::ids::NodeId;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
}

fn counting(first: u8) -> [u8; 32] {
    std::array::from_fn(|i| first + i as u8)
}

/// The test key 00 01 .. 1f for cluster "harness".
fn test_auth(encrypt: bool) -> Auth {
    Auth::new(&ClusterKey::from_bytes(counting(0)), "harness", encrypt)
}

fn transcript(mode: AuthMode) -> Transcript {
    Transcript {
        mode,
        cluster: cluster_hash("harness"),
        dialer: Member { id: NodeId(2), incarnation: 7 },
        acceptor: Member { id: NodeId(1), incarnation: 6 },
        dialer_nonce: counting(0x40),
        acceptor_nonce: counting(0x80),
    }
}

#[test]
fn hmac_sha256_matches_rfc_4231() {
    // RFC 4231, test case 2.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
    mac.update(b"what do ya want for nothing?");
    assert_eq!(
        mac.finalize().into_bytes().to_vec(),
        unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
}

#[test]
fn chacha20_poly1305_matches_rfc_8439() {
    // RFC 8439 §2.8.2.
    let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
    let nonce = unhex("070000004041424344454647");
    let aad = unhex("50515253c0c1c2c3c4c5c6c7");
    let mut text = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
    let aead = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key));
    let tag =
        aead.encrypt_in_place_detached(chacha20poly1305::Nonce::from_slice(&nonce), &aad, &mut text).unwrap();
    assert_eq!(&text[..16], &unhex("d31a8d34648e60db7b86afbc53ef7ec2")[..]);
    assert_eq!(tag.to_vec(), unhex("1ae10b594f09e26a7e902ecbd0600691"));
}

#[test]
fn the_cluster_hash_is_fnv1a_of_the_name() {
    assert_eq!(cluster_hash("harness"), 0x211f_cbba_fe53_31ab);
}

#[test]
fn the_transcript_has_one_fixed_layout() {
    let bytes = transcript(AuthMode::Mac).bytes();
    let mut expected = unhex("01 211fcbbafe5331ab 0002 0000000000000007 0001 0000000000000006");
    expected.extend(counting(0x40));
    expected.extend(counting(0x80));
    assert_eq!(bytes.to_vec(), expected);
}

#[test]
fn handshake_proofs_match_the_vectors() {
    let auth = test_auth(false);
    let t = transcript(AuthMode::Mac);
    let dialer = unhex("1aa2a64a4abb47aa03b07c45d987c047226041b459d0abe5aa8cd57c0e81e5da");
    let acceptor = unhex("61fde101caedf3d68c0bf81e3cd812ea1706a1fe4377598a9ad0e838aa2d3994");
    assert_eq!(auth.proof(Side::Dialer, &t).to_vec(), dialer);
    assert_eq!(auth.proof(Side::Acceptor, &t).to_vec(), acceptor);
    assert!(auth.verify(Side::Dialer, &t, &auth.proof(Side::Dialer, &t)));
    // A proof is never valid for the other side (no reflection), another transcript, another
    // key or another cluster name.
    assert!(!auth.verify(Side::Acceptor, &t, &auth.proof(Side::Dialer, &t)));
    let mut other = t;
    other.acceptor_nonce[31] ^= 1;
    assert!(!auth.verify(Side::Dialer, &other, &auth.proof(Side::Dialer, &t)));
    let mut other = t;
    other.dialer.incarnation += 1;
    assert!(!auth.verify(Side::Dialer, &other, &auth.proof(Side::Dialer, &t)));
    let wrong_key = Auth::new(&ClusterKey::from_bytes(counting(1)), "harness", false);
    assert!(!wrong_key.verify(Side::Dialer, &t, &auth.proof(Side::Dialer, &t)));
    let wrong_name = Auth::new(&ClusterKey::from_bytes(counting(0)), "harness2", false);
    assert!(!wrong_name.verify(Side::Dialer, &t, &auth.proof(Side::Dialer, &t)));
    // The mode is part of the transcript: a downgrade changes every proof.
    let encrypted = transcript(AuthMode::Encrypt);
    assert_eq!(
        test_auth(true).proof(Side::Dialer, &encrypted).to_vec(),
        unhex("603d7f3b16a304606c2eb519b0d18974657cbd082f4c4cfc24036920c20c720e")
    );
}

#[test]
fn mac_records_match_the_vectors_and_number_themselves() {
    let auth = test_auth(false);
    let t = transcript(AuthMode::Mac);
    let (mut sealer, _) = auth.session(Side::Dialer, &t);
    let mut out = Vec::new();
    sealer.seal(b"abc", &mut out);
    assert_eq!(out, unhex("00000013 616263 ffcb0438ccfa620b7f0bfe482d069a07"));
    out.clear();
    sealer.seal(b"abc", &mut out);
    assert_eq!(out, unhex("00000013 616263 505e4a35b3fd660a9c4de694c64ba23e"), "record 1 differs");
}

#[test]
fn encrypted_records_match_the_vectors() {
    let auth = test_auth(true);
    let t = transcript(AuthMode::Encrypt);
    let (mut sealer, _) = auth.session(Side::Dialer, &t);
    let mut out = Vec::new();
    sealer.seal(b"abc", &mut out);
    assert_eq!(out, unhex("00000013 a58f48 b8c97d7b8e875583d2d55a78f34df563"));
    out.clear();
    sealer.seal(b"abc", &mut out);
    assert_eq!(out, unhex("00000013 16f666 f445977342c14ca2a506318f084ebcd4"));
}

/// Records sealed by one side, opened by the other.
fn sealed_pair(encrypt: bool) -> (Sealer, Opener) {
    let auth = test_auth(encrypt);
    let t = transcript(if encrypt { AuthMode::Encrypt } else { AuthMode::Mac });
    let (sealer, _) = auth.session(Side::Dialer, &t);
    let (_, opener) = auth.session(Side::Acceptor, &t);
    (sealer, opener)
}

#[test]
fn records_open_on_the_other_side_only() {
    for encrypt in [false, true] {
        let (mut sealer, mut opener) = sealed_pair(encrypt);
        let mut out = Vec::new();
        sealer.seal(b"first", &mut out);
        let len = Opener::record_len(&out).unwrap().unwrap();
        assert_eq!(len, out.len());
        assert_eq!(opener.open(&mut out).unwrap(), b"first");
        // The dialler's own opener expects the other direction's key.
        let auth = test_auth(encrypt);
        let t = transcript(if encrypt { AuthMode::Encrypt } else { AuthMode::Mac });
        let (_, mut wrong_direction) = auth.session(Side::Dialer, &t);
        let mut again = Vec::new();
        sealer.seal(b"second", &mut again);
        assert_eq!(wrong_direction.open(&mut again.clone()), Err(DecodeError::Forged { record: 0 }));
        assert_eq!(opener.open(&mut again).unwrap(), b"second");
    }
}

#[test]
fn replayed_reordered_altered_or_foreign_records_fail() {
    for encrypt in [false, true] {
        let (mut sealer, mut opener) = sealed_pair(encrypt);
        let records: Vec<Vec<u8>> = (0..3u8)
            .map(|i| {
                let mut out = Vec::new();
                sealer.seal(&[i; 10], &mut out);
                out
            })
            .collect();
        // Reordered: record 1 first.
        assert_eq!(opener.clone().open(&mut records[1].clone()), Err(DecodeError::Forged { record: 0 }));
        // In order, then a replay of record 0 as the fourth.
        assert!(opener.open(&mut records[0].clone()).is_ok());
        assert!(opener.open(&mut records[1].clone()).is_ok());
        assert_eq!(opener.clone().open(&mut records[0].clone()), Err(DecodeError::Forged { record: 2 }));
        // Every single bit flip of record 2 fails.
        for bit in 0..records[2].len() * 8 {
            let mut flipped = records[2].clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(opener.clone().open(&mut flipped).is_err(), "bit {bit}");
        }
        assert_eq!(opener.open(&mut records[2].clone()).unwrap(), &[2; 10]);
        // A record of an earlier session (other nonces) fails in a new one.
        let (_, mut fresh) = sealed_pair(encrypt);
        let auth = test_auth(encrypt);
        let mut t = transcript(if encrypt { AuthMode::Encrypt } else { AuthMode::Mac });
        t.dialer_nonce[0] ^= 0xff;
        let (mut later, _) = auth.session(Side::Dialer, &t);
        let mut from_later = Vec::new();
        later.seal(&[0; 10], &mut from_later);
        assert_eq!(fresh.open(&mut from_later), Err(DecodeError::Forged { record: 0 }));
    }
}

#[test]
fn long_streams_are_cut_into_bounded_records() {
    let (mut sealer, mut opener) = sealed_pair(false);
    let plain: Vec<u8> = (0..RECORD_BODY_BYTES_MAX * 2 + 5).map(|i| i as u8).collect();
    let mut out = Vec::new();
    sealer.seal(&plain, &mut out);
    let mut opened = Vec::new();
    let mut rest = &mut out[..];
    while !rest.is_empty() {
        let len = Opener::record_len(rest).unwrap().unwrap();
        assert!(len <= 4 + RECORD_BODY_BYTES_MAX + RECORD_TAG_BYTES);
        let (record, tail) = rest.split_at_mut(len);
        opened.extend_from_slice(opener.open(record).unwrap());
        rest = tail;
    }
    assert_eq!(opened, plain);
}

#[test]
fn record_lengths_are_checked_before_buffering() {
    assert_eq!(Opener::record_len(&[0, 0, 0]), Ok(None));
    assert!(matches!(
        Opener::record_len(&[0, 0, 0, 16]),
        Err(DecodeError::Invalid { field: "record.length", .. })
    ));
    assert_eq!(Opener::record_len(&[0, 0, 0, 17]), Ok(None));
    let too_long = ((RECORD_BODY_BYTES_MAX + RECORD_TAG_BYTES + 1) as u32).to_be_bytes();
    let invalid = |bytes: &[u8]| {
        matches!(Opener::record_len(bytes), Err(DecodeError::Invalid { field: "record.length", .. }))
    };
    assert!(invalid(&too_long));
    assert!(invalid(&u32::MAX.to_be_bytes()));
}

#[test]
fn random_records_never_panic_and_never_open() {
    // The record decoder's property test: random lengths and bytes, and sealed records cut,
    // grown or mutated, are rejected or incomplete, never a panic, never accepted.
    let mut rng = crate::rng::Rng::new(77);
    for encrypt in [false, true] {
        let (mut sealer, opener) = sealed_pair(encrypt);
        let mut genuine = Vec::new();
        sealer.seal(b"the genuine record", &mut genuine);
        for i in 0..10_000 {
            let mut bytes: Vec<u8> = if i % 2 == 0 {
                (0..rng.below(80)).map(|_| rng.next_u64() as u8).collect()
            } else {
                let mut bytes = genuine.clone();
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= (rng.below(255) + 1) as u8;
                if rng.chance(1, 4) {
                    bytes.truncate(rng.below(bytes.len() as u64) as usize);
                }
                bytes
            };
            if i % 4 == 0 && bytes.len() >= 4 {
                let len = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&len.to_be_bytes());
            }
            if let Ok(Some(len)) = Opener::record_len(&bytes) {
                assert!(opener.clone().open(&mut bytes[..len]).is_err(), "case {i}");
            }
        }
    }
}

#[test]
fn inbound_switches_from_frames_to_records_at_the_session_start() {
    use crate::wire::{encode_peer, PeerFrame};
    let (mut sealer, opener) = sealed_pair(false);
    let mut stream = Vec::new();
    encode_peer(&PeerFrame::Proof { proof: [9; 32] }, &mut stream);
    let mut frames = Vec::new();
    encode_peer(&PeerFrame::Heartbeat, &mut frames);
    encode_peer(&PeerFrame::Wake { view: crate::ids::ViewId(3), hops_left: 1 }, &mut frames);
    // The two frames split across three records, arriving byte by byte.
    let third = frames.len() / 3;
    sealer.seal(&frames[..third], &mut stream);
    sealer.seal(&frames[third..2 * third], &mut stream);
    sealer.seal(&frames[2 * third..], &mut stream);
    let mut inbound = Inbound::default();
    let mut got = Vec::new();
    let mut opener = Some(opener);
    for byte in stream {
        inbound.extend(&[byte]);
        while let Some(frame) = inbound.next_frame(1024).unwrap() {
            if got.is_empty() {
                inbound.start_session(opener.take().unwrap());
            }
            got.push(frame);
        }
    }
    assert_eq!(got.len(), 3);
    assert!(!inbound.has_partial());
}
