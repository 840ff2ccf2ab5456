//! Short stories about the ring inside one view, driving real `Core`s through a tiny in-test
//! network (every dial succeeds, every frame takes one hop). docs/PROTOCOL.md §3 rules cited per
//! case.

use std::collections::VecDeque;
use std::time::Duration;

use harness::wire::{PeerFrame, Token};
use harness::{Core, CoreConfig, Input, Member, NodeId, Output, RingMode, Time};

const HOP: Duration = Duration::from_micros(100);

/// A ring of `n` cores and the frames in flight, in send order.
struct Ring {
    cores: Vec<Core>,
    wire: VecDeque<(Time, NodeId, NodeId, PeerFrame)>,
    now: Time,
    delivered: Vec<Vec<(u64, NodeId, Vec<u8>)>>,
    committed: Vec<Vec<(u64, NodeId)>>,
    token_frames: u64,
    /// Every token sent, in send order.
    tokens: Vec<Token>,
}

impl Ring {
    fn new(n: u16, mode: RingMode) -> Ring {
        Ring::with(n, mode, |_| {})
    }

    /// A ring whose members' settings `tune` adjusts.
    fn with(n: u16, mode: RingMode, tune: impl Fn(&mut CoreConfig)) -> Ring {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let cores = ids
            .iter()
            .map(|&id| {
                let mut config = CoreConfig::new(Member { id, incarnation: 1 }, ids.clone());
                config.ring_mode = mode;
                config.batch_max = 16;
                tune(&mut config);
                Core::new(config)
            })
            .collect();
        let mut ring = Ring {
            cores,
            wire: VecDeque::new(),
            now: Time::ZERO,
            delivered: vec![Vec::new(); usize::from(n)],
            committed: vec![Vec::new(); usize::from(n)],
            token_frames: 0,
            tokens: Vec::new(),
        };
        for i in 0..usize::from(n) {
            ring.step(i, Input::Tick);
        }
        ring.run_for(Duration::from_millis(50));
        assert!(ring.cores.iter().all(|c| c.status().view.primary), "the first view forms");
        ring
    }

    fn step(&mut self, i: usize, input: Input) {
        let mut out = Vec::new();
        self.cores[i].step(self.now, input, &mut out);
        let me = NodeId(i as u16 + 1);
        for o in out {
            match o {
                Output::Send { to, frame } => {
                    if let PeerFrame::Token(token) = &frame {
                        self.token_frames += 1;
                        self.tokens.push(token.clone());
                    }
                    self.wire.push_back((self.now + HOP, me, to, frame));
                }
                Output::Connect { peer } => {
                    let (a, b) = (self.cores[i].me(), self.cores[usize::from(peer.0) - 1].me());
                    self.step(i, Input::LinkUp { peer: b });
                    self.step(usize::from(peer.0) - 1, Input::LinkUp { peer: a });
                }
                Output::Deliver(d) => {
                    self.delivered[i].push((d.message.seq, d.message.id.origin, d.message.payload.to_vec()))
                }
                Output::Commit(c) => self.committed[i].push((c.seq, c.id.origin)),
                _ => {}
            }
        }
    }

    /// Delivers frames and fires deadlines until `until` passes (bounded by a step count).
    fn run_for(&mut self, span: Duration) {
        let until = self.now + span;
        for _ in 0..5_000_000 {
            let frame_at = self.wire.front().map_or(Time::NEVER, |f| f.0);
            let (i, deadline) = self
                .cores
                .iter()
                .map(Core::next_deadline)
                .enumerate()
                .min_by_key(|&(i, t)| (t, i))
                .expect("at least one core");
            let next = frame_at.min(deadline);
            if next > until {
                self.now = until;
                return;
            }
            self.now = next.max(self.now);
            if deadline < frame_at {
                self.step(i, Input::Tick);
            } else {
                let (_, from, to, frame) = self.wire.pop_front().expect("peeked");
                self.step(usize::from(to.0) - 1, Input::Frame { from, frame });
            }
        }
        panic!("the ring did not go quiet within the step bound");
    }

    fn submit(&mut self, i: usize, tag: u64, payload: &[u8]) {
        self.step(i, Input::Submit { tag, payload: payload.to_vec().into() });
    }
}

fn every_member_delivers_one_order(mode: RingMode) {
    let mut ring = Ring::new(4, mode);
    for round in 0..25u64 {
        for i in 0..4 {
            ring.submit(i, round, format!("m{i}-{round}").as_bytes());
        }
        ring.run_for(HOP * 3);
    }
    ring.run_for(Duration::from_millis(100));
    // §3 agreed delivery: seq order without gaps, the same at every member.
    assert_eq!(ring.delivered[0].len(), 100);
    let seqs: Vec<u64> = ring.delivered[0].iter().map(|d| d.0).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>());
    for i in 1..4 {
        assert_eq!(ring.delivered[i], ring.delivered[0], "member {} differs", i + 1);
    }
    // §3 safe delivery: everything commits once the token has been round.
    assert!(ring.committed.iter().all(|c| c.len() == 100));
}

#[test]
fn every_member_delivers_one_order_bidirectional() {
    every_member_delivers_one_order(RingMode::Bidirectional);
}

#[test]
fn every_member_delivers_one_order_unidirectional() {
    every_member_delivers_one_order(RingMode::Unidirectional);
}

#[test]
fn each_member_delivers_its_own_messages_in_submission_order() {
    let mut ring = Ring::new(3, RingMode::Bidirectional);
    for k in 0..40u64 {
        ring.submit((k % 3) as usize, k, &k.to_be_bytes());
    }
    ring.run_for(Duration::from_millis(100));
    for origin in 1..=3u16 {
        let own: Vec<Vec<u8>> =
            ring.delivered[0].iter().filter(|d| d.1 == NodeId(origin)).map(|d| d.2.clone()).collect();
        let mut sorted = own.clone();
        sorted.sort();
        assert_eq!(own, sorted, "member {origin}'s messages keep their order");
    }
}

#[test]
fn a_quiet_ring_parks_its_token_and_a_submission_wakes_it() {
    let mut ring = Ring::new(5, RingMode::Bidirectional);
    ring.run_for(Duration::from_secs(1));
    // §3 idle ring: parked at the first member, one rotation per idle hold (100 ms).
    let before = ring.token_frames;
    ring.run_for(Duration::from_secs(1));
    let per_second = ring.token_frames - before;
    assert!(per_second <= 5 * 12, "an idle ring passed the token {per_second} times in a second");
    // A member far from the parked token asks for it the short way round; the message is
    // delivered everywhere within a few hops, not after the idle hold.
    let start = ring.now;
    ring.submit(2, 1, b"wake");
    ring.run_for(HOP * 20);
    assert!(
        ring.delivered.iter().all(|d| d.last().is_some_and(|m| m.2 == b"wake")),
        "delivered by {}",
        start
    );
}

#[test]
fn one_message_at_a_time_at_the_first_member_never_waits_for_the_idle_hold() {
    // §3 idle ring: a rotation in which something is stamped is not quiet. A client with one
    // request outstanding at the first member submits again as soon as its commit arrives, when
    // the token's quiet count may already be 1; stamping then must not park the token with the
    // new message in flight (found by harness-bench: every second request took the idle hold).
    let mut ring = Ring::new(3, RingMode::Bidirectional);
    ring.run_for(Duration::from_secs(1));
    for k in 0..10u64 {
        let start = ring.now;
        ring.submit(0, k, &k.to_be_bytes());
        for _ in 0..10_000 {
            if ring.committed[0].len() as u64 == k + 1 {
                break;
            }
            ring.run_for(HOP);
        }
        assert_eq!(ring.committed[0].len() as u64, k + 1, "message {k} committed");
        let hops = (ring.now.0 - start.0) / HOP.as_nanos() as u64;
        assert!(hops <= 20, "message {k} took {hops} hops to commit");
    }
}

#[test]
fn a_heavy_sender_does_not_starve_the_others() {
    let mut ring = Ring::new(3, RingMode::Bidirectional);
    for k in 0..400u64 {
        ring.submit(0, k, b"heavy");
    }
    for k in 0..10u64 {
        ring.submit(1, 1000 + k, b"light");
        ring.submit(2, 2000 + k, b"light");
    }
    ring.run_for(Duration::from_millis(200));
    let order = &ring.committed[0];
    assert_eq!(order.len(), 420);
    // §3 fair share: every backlogged member stamps its share each visit, so the light members'
    // twenty messages commit within the first rotation's batches (batch_max 16 each), not after
    // the heavy member's four hundred.
    let last_light = order.iter().rposition(|c| c.1 != NodeId(1)).expect("light messages committed");
    assert!(last_light < 16 * 3, "the last light message committed at position {last_light}");
}

#[test]
fn the_byte_window_bounds_what_is_in_flight_under_large_messages() {
    // §3 flow control: with 16 KiB messages and a 64 KiB byte window, the token's window_bytes is
    // exactly the payload of seqs (aru, next_seq - 1] and stays under window_bytes_max plus one
    // payload, although the message window (4096) would let all 300 messages fly at once.
    const WINDOW: u64 = 64 << 10;
    const LARGE: usize = 16 << 10;
    let mut ring = Ring::with(3, RingMode::Bidirectional, |config| {
        config.window_bytes_max = WINDOW;
        config.batch_bytes_max = 32 << 10;
        config.payload_bytes_max = LARGE;
    });
    for k in 0..100u64 {
        for i in 0..3 {
            ring.submit(i, k, &vec![i as u8; LARGE]);
        }
    }
    ring.run_for(Duration::from_millis(500));
    assert!(ring.committed.iter().all(|c| c.len() == 300), "everything commits");
    let sizes: std::collections::BTreeMap<u64, u64> =
        ring.delivered[0].iter().map(|d| (d.0, d.2.len() as u64)).collect();
    let mut busiest = 0;
    for pair in ring.tokens.windows(2) {
        // §3 fair share: with all three backlogged, a holder takes at most a third of the free
        // byte window (or one message). The free window before it stamped was at most
        // `WINDOW - (window_bytes after - stamped)`.
        let (before, after) = (&pair[0], &pair[1]);
        if after.rotation < 2 || after.backlog.contains(&0) {
            continue;
        }
        let stamped: u64 = sizes.range(before.next_seq..after.next_seq).map(|(_, len)| len).sum();
        let free_at_most = WINDOW.saturating_sub(after.window_bytes.saturating_sub(stamped));
        assert!(
            stamped <= LARGE as u64 || stamped <= free_at_most / 3,
            "a holder stamped {stamped} bytes of at most {free_at_most} free"
        );
    }
    for token in ring.tokens.iter().filter(|t| t.rotation >= 2) {
        let aru = *token.received.iter().min().expect("three entries");
        let held: u64 = sizes.range(aru + 1..token.next_seq).map(|(_, len)| len).sum();
        assert_eq!(token.window_bytes, held, "window_bytes of a token at next_seq {}", token.next_seq);
        assert!(token.window_bytes < WINDOW + LARGE as u64, "{} bytes in flight", token.window_bytes);
        busiest = busiest.max(token.window_bytes);
    }
    assert!(busiest >= WINDOW / 2, "the window was used: at most {busiest} bytes in flight");
}

#[test]
fn large_messages_do_not_crowd_out_small_ones() {
    // §3 fair share in bytes: member 1 floods 16 KiB messages, the others send a few small ones;
    // each holder takes at most its part of the free byte window, so the small messages commit
    // within the first few batches instead of after the flood.
    let mut ring = Ring::with(3, RingMode::Bidirectional, |config| {
        config.window_bytes_max = 64 << 10;
        config.batch_bytes_max = 64 << 10;
        config.payload_bytes_max = 16 << 10;
    });
    for k in 0..200u64 {
        ring.submit(0, k, &vec![1; 16 << 10]);
    }
    for k in 0..10u64 {
        ring.submit(1, 1000 + k, b"light");
        ring.submit(2, 2000 + k, b"light");
    }
    ring.run_for(Duration::from_millis(500));
    let order = &ring.committed[0];
    assert_eq!(order.len(), 220);
    let last_light = order.iter().rposition(|c| c.1 != NodeId(1)).expect("light messages committed");
    assert!(last_light < 40, "the last light message committed at position {last_light}");
}
