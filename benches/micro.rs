//! Micro-benchmarks of the hot paths, in seconds rather than the minutes of `make bench`: frame
//! encoding and decoding, record sealing, the core's steps for a ring of three driven in
//! memory, and the state machine's apply, digest and snapshot.
//!
//! `cargo bench` runs them all; `cargo bench -- codec` runs those whose name contains `codec`.
//! Each figure is the median of several timed rounds, in time per operation; compare two builds
//! in one sitting, never against a number written down elsewhere.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use harness::auth::Sealer;
use harness::replication::{Action, Command, DvmState, Session, StateMachine};
use harness::wire::{decode, encode_peer, Data, Message, PeerFrame};
use harness::{Core, CoreConfig, Input, Member, MsgId, NodeId, Output, Time, ViewId};

/// Timed rounds per benchmark; the median is reported.
const ROUNDS: usize = 7;
/// How long one round should take, roughly: the iteration count is calibrated to it.
const ROUND_TARGET: Duration = Duration::from_millis(100);
/// Payload bytes submitted at once by the ring benchmarks: a quarter of the default submit queue.
const SUBMIT_WAVE_BYTES: usize = 2 << 20;

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    println!("| benchmark | per operation | operations/s |");
    println!("|---|---|---|");
    for (name, bench) in benches() {
        if wanted(name) {
            report(name, bench);
        }
    }
}

type Bench = Box<dyn FnMut(u64)>;

fn benches() -> Vec<(&'static str, Bench)> {
    vec![
        ("codec: encode a data frame of 64 x 64 B", encode_data(64, 64)),
        ("codec: decode a data frame of 64 x 64 B", decode_data(64, 64)),
        ("codec: encode a data frame of 4 x 16 KiB", encode_data(4, 16 << 10)),
        ("codec: decode a data frame of 4 x 16 KiB", decode_data(4, 16 << 10)),
        ("auth: seal a 16 KiB record (MAC)", seal(false, 16 << 10)),
        ("auth: seal a 16 KiB record (encrypt)", seal(true, 16 << 10)),
        ("core: ring of 3, one 64 B message committed everywhere", ring_commit(64)),
        ("core: ring of 3, one 1 KiB message committed everywhere", ring_commit(1 << 10)),
        ("state: apply one 64 B put", state_apply(64)),
        ("state: apply one 16 KiB put", state_apply(16 << 10)),
        ("state: digest of 10,000 keys", state_digest(10_000)),
        ("state: snapshot of 10,000 keys of 1 KiB", state_snapshot(10_000, 1 << 10)),
    ]
}

/// Calibrates the iteration count to `ROUND_TARGET`, then prints the median of `ROUNDS`.
fn report(name: &str, mut bench: Bench) {
    let mut iterations = 1u64;
    loop {
        let started = Instant::now();
        bench(iterations);
        let took = started.elapsed();
        if took >= ROUND_TARGET / 4 || iterations >= 1 << 30 {
            let scale = ROUND_TARGET.as_secs_f64() / took.as_secs_f64().max(1e-9);
            iterations = ((iterations as f64 * scale) as u64).max(1);
            break;
        }
        iterations *= 4;
    }
    let mut per_op: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            bench(iterations);
            started.elapsed().as_secs_f64() / iterations as f64
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    let median = per_op[ROUNDS / 2];
    println!("| {name} | {} | {:.0} |", human(median), 1.0 / median);
}

fn human(seconds: f64) -> String {
    if seconds >= 1e-3 {
        format!("{:.2} ms", seconds * 1e3)
    } else if seconds >= 1e-6 {
        format!("{:.2} us", seconds * 1e6)
    } else {
        format!("{:.1} ns", seconds * 1e9)
    }
}

fn data_frame(count: usize, bytes: usize) -> PeerFrame {
    let messages = (0..count as u64)
        .map(|i| Message {
            seq: i + 1,
            id: MsgId { origin: NodeId(1), incarnation: 1, counter: i + 1 },
            attempt: 0,
            payload: vec![0x5a; bytes].into(),
        })
        .collect();
    PeerFrame::Data(Data { view: ViewId(3), hops_left: 1, messages })
}

fn encode_data(count: usize, bytes: usize) -> Bench {
    let frame = data_frame(count, bytes);
    let mut out = Vec::new();
    Box::new(move |n| {
        for _ in 0..n {
            out.clear();
            encode_peer(black_box(&frame), &mut out);
        }
        black_box(&out);
    })
}

fn decode_data(count: usize, bytes: usize) -> Bench {
    let mut encoded = Vec::new();
    encode_peer(&data_frame(count, bytes), &mut encoded);
    Box::new(move |n| {
        for _ in 0..n {
            black_box(decode(black_box(&encoded)).is_ok());
        }
    })
}

fn seal(encrypt: bool, bytes: usize) -> Bench {
    let mut sealer = Sealer::new(encrypt, &[7; 32]);
    let plain = vec![0x33; bytes];
    let mut out = Vec::with_capacity(bytes + 64);
    Box::new(move |n| {
        for _ in 0..n {
            out.clear();
            sealer.seal(black_box(&plain), &mut out);
        }
        black_box(&out);
    })
}

/// Something the in-memory network hands a core.
enum Event {
    Frame { from: NodeId, to: NodeId, frame: Box<PeerFrame> },
    LinkUp { at: NodeId, peer: NodeId },
}

/// Three cores joined by an in-memory network that delivers every frame at once, in order.
struct Ring {
    cores: Vec<Core>,
    queue: VecDeque<Event>,
    now: Time,
    commits: u64,
    /// Submissions answered busy: a measurement with any would not be one of commits.
    rejected: u64,
    out: Vec<Output>,
}

impl Ring {
    fn new() -> Ring {
        let universe: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let cores = universe
            .iter()
            .map(|&id| {
                let mut config = CoreConfig::new(Member { id, incarnation: 1 }, universe.clone());
                // No timeout may fire inside a measurement: the network never loses anything.
                config.token_timeout = Duration::from_secs(3600);
                config.idle_hold = Duration::from_secs(600);
                Core::new(config)
            })
            .collect();
        let mut ring =
            Ring { cores, queue: VecDeque::new(), now: Time::ZERO, commits: 0, rejected: 0, out: Vec::new() };
        for i in 0..3 {
            ring.step(i, Input::Tick);
        }
        // Bounded: three members form their first view within a few virtual seconds.
        for _ in 0..100_000 {
            if ring.cores.iter().all(Core::is_primary) {
                return ring;
            }
            ring.run(Duration::from_millis(10));
        }
        panic!("a ring of three in memory formed no view");
    }

    fn step(&mut self, index: usize, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        self.cores[index].step(self.now, input, &mut out);
        let me = self.cores[index].me().id;
        for output in out.drain(..) {
            match output {
                Output::Send { to, frame } => {
                    self.queue.push_back(Event::Frame { from: me, to, frame: Box::new(frame) })
                }
                Output::Connect { peer } => {
                    self.queue.push_back(Event::LinkUp { at: me, peer });
                    self.queue.push_back(Event::LinkUp { at: peer, peer: me });
                }
                Output::Commit(_) => self.commits += 1,
                Output::Rejected { .. } => self.rejected += 1,
                _ => {}
            }
        }
        self.out = out;
    }

    /// Delivers queued events and ticks due deadlines for `span` of virtual time.
    fn run(&mut self, span: Duration) {
        let until = self.now + span;
        for _ in 0..1_000_000 {
            match self.queue.pop_front() {
                Some(Event::Frame { from, to, frame }) => {
                    self.step(usize::from(to.0) - 1, Input::Frame { from, frame: *frame });
                    continue;
                }
                Some(Event::LinkUp { at, peer }) => {
                    let peer = self.cores[usize::from(peer.0) - 1].me();
                    self.step(usize::from(at.0) - 1, Input::LinkUp { peer });
                    continue;
                }
                None => {}
            }
            let next = self.cores.iter().map(Core::next_deadline).min().unwrap_or(Time::NEVER);
            if next > until {
                self.now = until;
                return;
            }
            self.now = next.max(self.now);
            for i in 0..3 {
                if self.cores[i].next_deadline() <= self.now {
                    self.step(i, Input::Tick);
                }
            }
        }
    }
}

fn ring_commit(bytes: usize) -> Bench {
    let mut ring = Ring::new();
    let payload: harness::wire::Payload = vec![0x11; bytes].into();
    let mut tag = 0;
    Box::new(move |n| {
        // In waves well inside the submit queue's byte budget, as a client with a window would
        // submit: a larger burst is answered busy, not queued (docs/PROTOCOL.md §2.2).
        let wave = (SUBMIT_WAVE_BYTES / bytes.max(1)).max(1) as u64;
        let mut left = n;
        while left > 0 {
            let count = left.min(wave);
            left -= count;
            let goal = ring.commits + 3 * count;
            for _ in 0..count {
                tag += 1;
                let index = (tag % 3) as usize;
                ring.step(index, Input::Submit { tag, payload: payload.clone() });
            }
            assert_eq!(ring.rejected, 0, "a submission was refused: the wave is too large");
            // Bounded: each round trip of the in-memory ring takes microseconds of virtual time.
            let mut rounds = 0;
            while ring.commits < goal {
                rounds += 1;
                assert!(rounds <= 1_000_000, "the ring committed {} of {goal}", ring.commits);
                ring.run(Duration::from_millis(1));
            }
        }
    })
}

fn put(key: u64, bytes: usize) -> Vec<u8> {
    let action = Action::Put { key: format!("key/{key:08}").into_bytes(), value: vec![0x42; bytes] };
    Command { session: Session::default(), action }.encode()
}

fn filled_state(keys: u64, bytes: usize) -> DvmState {
    let mut state = DvmState::default();
    for key in 0..keys {
        state.apply(key + 1, MsgId { origin: NodeId(1), incarnation: 1, counter: key + 1 }, &put(key, bytes));
    }
    state
}

fn state_apply(bytes: usize) -> Bench {
    let mut state = DvmState::default();
    let payloads: Vec<Vec<u8>> = (0..1024).map(|key| put(key, bytes)).collect();
    let mut seq = 0;
    Box::new(move |n| {
        for _ in 0..n {
            seq += 1;
            let id = MsgId { origin: NodeId(1), incarnation: 1, counter: seq };
            black_box(state.apply(seq, id, &payloads[(seq % 1024) as usize]));
        }
    })
}

fn state_digest(keys: u64) -> Bench {
    let state = filled_state(keys, 64);
    Box::new(move |n| {
        for _ in 0..n {
            black_box(state.digest());
        }
    })
}

fn state_snapshot(keys: u64, bytes: usize) -> Bench {
    let state = filled_state(keys, bytes);
    Box::new(move |n| {
        for _ in 0..n {
            black_box(state.snapshot());
        }
    })
}
