//! The core's step on arbitrary decoded frames: the input is a sequence of
//! `u8 sender | u8 action | u16 length | body` items; frame bodies are wrapped in a valid
//! envelope for every kind so the fuzzer reaches the handlers, not the checksum. No input may
//! panic the core.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use harness::wire::{decode, Frame, FrameKind};
use harness::{Core, CoreConfig, Input, Member, NodeId, Time};
use libfuzzer_sys::fuzz_target;

fn envelope(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut covered = vec![1, kind];
    covered.extend_from_slice(body);
    let mut bytes = ((covered.len() + 4) as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&covered);
    bytes.extend_from_slice(&crc32fast_hash(&covered).to_be_bytes());
    bytes
}

/// CRC-32 (IEEE), bit by bit: the fuzz crate does not depend on crc32fast.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fuzz_target!(|data: &[u8]| {
    let ids = vec![NodeId(1), NodeId(2), NodeId(3)];
    let mut config = CoreConfig::new(Member { id: NodeId(1), incarnation: 1 }, ids);
    config.token_timeout = Duration::from_millis(100);
    config.idle_hold = Duration::from_millis(20);
    let mut core = Core::new(config);
    let mut out = Vec::new();
    let mut now = Time::ZERO;
    let mut rest = data;
    // Bounded by the input's length: every item consumes at least four bytes.
    while rest.len() >= 4 {
        let (sender, action) = (rest[0], rest[1]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let body = &rest[4..4 + len];
        rest = &rest[4 + len..];
        let from = NodeId(u16::from(sender % 5));
        let input = match action % 8 {
            0 => Input::LinkUp { peer: Member { id: from, incarnation: u64::from(sender / 5) } },
            1 => Input::LinkDown { peer: from },
            2 => Input::Submit { tag: u64::from(sender), payload: Arc::from(body) },
            3 => {
                now = Time(now.0 + u64::from(sender) * 1_000_000);
                Input::Tick
            }
            _ => {
                let kind = FrameKind::ALL[usize::from(action / 8) % FrameKind::ALL.len()] as u8;
                match decode(&envelope(kind, body)) {
                    Ok(Frame::Peer(frame)) => Input::Frame { from, frame },
                    _ => continue,
                }
            }
        };
        core.step(now, input, &mut out);
        out.clear();
    }
});
