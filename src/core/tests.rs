//! The core's step on arbitrary decoded frames (issue #7): a property test that runs three real
//! cores over an in-memory network and, among their genuine frames, hands them random frames of
//! every kind, genuine frames with fields mutated at the byte level, replays, frames from unknown
//! ids, and random link events, submissions, leaves and ticks. No input may panic a core. A peer
//! holding the key that sends nonsense is a Byzantine member, outside the failure model, so only
//! the absence of panics (asserts included) is checked here; the simulator checks the guarantees
//! under the faults the model has.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::wire::arbitrary::{mutate, random_frame, seal};
use crate::wire::{decode, encode_peer, Frame};

/// Seeds of the property test; each runs `STEPS` inputs.
const SEEDS: u64 = 600;
const STEPS: usize = 5_000;
/// Frames in flight at most; older ones are dropped, as a broken link would.
const WIRE_MAX: usize = 10_000;

fn member(id: u16) -> Member {
    Member { id: NodeId(id), incarnation: 1 }
}

/// Re-encodes `frame` with a few body bytes changed, cut or added; returns it if it still
/// decodes.
fn mutated(rng: &mut Rng, frame: &PeerFrame) -> Option<PeerFrame> {
    let mut bytes = Vec::new();
    encode_peer(frame, &mut bytes);
    // Envelope: 4 bytes of length, version, kind; 4 of checksum at the end.
    let mut body = bytes[6..bytes.len() - 4].to_vec();
    mutate(rng, &mut body);
    match decode(&seal(bytes[4], bytes[5], &body)) {
        Ok(Frame::Peer(frame)) => Some(frame),
        _ => None,
    }
}

/// A random peer frame of any kind (client frames are drawn again).
fn random_peer_frame(rng: &mut Rng) -> PeerFrame {
    // Bounded: most kinds are peer frames, so a redraw is rare.
    for _ in 0..1000 {
        if let Frame::Peer(frame) = random_frame(rng) {
            return frame;
        }
    }
    PeerFrame::Heartbeat
}

/// Frames in flight: (receiver's index, sender, frame).
type Wire = VecDeque<(usize, NodeId, PeerFrame)>;

/// Steps one core and puts its sends on the wire (sends to unknown ids are dropped); a connect
/// succeeds at once, as if every member were reachable.
fn step_core(cores: &mut [Core], at: usize, now: Time, input: Input, out: &mut Vec<Output>, wire: &mut Wire) {
    let ids: Vec<NodeId> = cores.iter().map(|core| core.me().id).collect();
    let core = &mut cores[at];
    core.step(now, input, out);
    let mut link_events = Vec::new();
    for output in out.drain(..) {
        match output {
            Output::Send { to, frame } => {
                if let Some(index) = ids.iter().position(|id| *id == to) {
                    wire.push_back((index, ids[at], frame));
                }
            }
            Output::Connect { peer } if ids.contains(&peer) => {
                link_events.push(Input::LinkUp { peer: member(peer.0) })
            }
            Output::Connect { peer } | Output::Disconnect { peer } => {
                link_events.push(Input::LinkDown { peer })
            }
            _ => {}
        }
    }
    for input in link_events {
        core.step(now, input, out);
        out.clear();
    }
}

/// One run: three cores, genuine traffic and garbage, `STEPS` inputs.
fn run(seed: u64) {
    let mut rng = Rng::new(seed);
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let mut cores: Vec<Core> = ids
        .iter()
        .map(|&id| {
            let mut config = CoreConfig::new(member(id.0), ids.to_vec());
            config.token_timeout = Duration::from_millis(100);
            config.idle_hold = Duration::from_millis(20);
            config.bootstrap_wait = Duration::from_millis(200);
            config.seed = seed * 10 + u64::from(id.0);
            Core::new(config)
        })
        .collect();
    let mut wire = Wire::new();
    let mut seen: Vec<PeerFrame> = Vec::new();
    let mut now = Time::ZERO;
    let mut out = Vec::new();
    let mut tag = 0;
    // Garbage per thousand inputs of each kind: little, so the cores reach deep states between
    // the blows, or much, so they are hit in every state.
    let garbage = [5, 30, 120][(seed % 3) as usize];
    for step in 0..STEPS {
        let at = rng.below(3) as usize;
        let roll = rng.below(1000);
        let input = if roll < garbage {
            // A random frame from a member, a stranger, or id 0.
            let from = match rng.below(10) {
                0 => NodeId(0),
                1 => NodeId(rng.range(4, 65_535) as u16),
                _ => ids[rng.below(3) as usize],
            };
            Input::Frame { from, frame: random_peer_frame(&mut rng) }
        } else if roll < 2 * garbage && !seen.is_empty() {
            // A genuine frame seen earlier, replayed as it was or mutated, to anyone.
            let frame = seen[rng.below(seen.len() as u64) as usize].clone();
            let frame = match rng.chance(1, 2) {
                true => mutated(&mut rng, &frame).unwrap_or(frame),
                false => frame,
            };
            Input::Frame { from: ids[rng.below(3) as usize], frame }
        } else if roll < 2 * garbage + garbage / 5 {
            let id = match rng.chance(1, 10) {
                true => NodeId(rng.range(4, 100) as u16),
                false => ids[rng.below(3) as usize],
            };
            if rng.chance(1, 2) {
                let incarnation = if rng.chance(1, 4) { rng.next_u64() } else { 1 };
                Input::LinkUp { peer: Member { id, incarnation } }
            } else {
                Input::LinkDown { peer: id }
            }
        } else if roll == 999 && seed.is_multiple_of(5) {
            Input::Leave
        } else if roll < 700 {
            let Some((to, from, frame)) = wire.pop_front() else { continue };
            if seen.len() < 256 && rng.chance(1, 8) {
                seen.push(frame.clone());
            }
            let frame = match rng.below(1000) < garbage {
                true => mutated(&mut rng, &frame).unwrap_or(frame),
                false => frame,
            };
            step_core(&mut cores, to, now, Input::Frame { from, frame }, &mut out, &mut wire);
            continue;
        } else if roll < 850 {
            tag += 1;
            let len = rng.below(64) as usize;
            Input::Submit { tag, payload: Arc::from(vec![step as u8; len]) }
        } else {
            let deadline = cores[at].next_deadline();
            let jump = Time(Duration::from_millis(rng.below(50)).as_nanos() as u64);
            now = if deadline > now && deadline.0 - now.0 < jump.0 { deadline } else { Time(now.0 + jump.0) };
            Input::Tick
        };
        step_core(&mut cores, at, now, input, &mut out, &mut wire);
        while wire.len() > WIRE_MAX {
            wire.pop_front();
        }
    }
    if std::env::var_os("CORE_FUZZ_DEBUG").is_some() {
        for core in &cores {
            let status = core.status();
            eprintln!(
                "seed {seed} {}: view {} primary {} committed {} delivered {} now {:?}",
                status.member,
                status.view.view,
                status.view.primary,
                status.committed_upto,
                status.delivered,
                now
            );
        }
    }
}

#[test]
fn arbitrary_frames_never_panic_a_core() {
    for seed in 0..SEEDS {
        let result = std::panic::catch_unwind(|| run(seed));
        assert!(result.is_ok(), "seed {seed} panicked a core");
    }
}
