//! The cost table of DESIGN.md, measured: message steps (O) and messages sent (C) per operation.
//!
//! A fault-free ring of n members with one constant hop latency and no jitter forms its first
//! view and runs until its token parks; then one message is submitted at the member holding the
//! token, and every frame from then on is counted. O is the time to each milestone divided by the
//! hop latency; C counts the frames sent until then (data copies and token passes). Then a member
//! in the middle of the ring crashes: the *view change* row is the hops until every survivor
//! installed the view without it and the frames sent meanwhile, with the connections opened (a
//! handshake takes one hop here) counted beside them (docs/PROTOCOL.md §4).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

use crate::config::CoreConfig;
use crate::core::{Core, Input, Output};
use crate::ids::{Member, NodeId, RingMode};
use crate::time::Time;
use crate::wire::PeerFrame;

/// One measured row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostRow {
    /// Members.
    pub nodes: usize,
    /// Ring mode.
    pub ring: RingMode,
    /// Reliable broadcast: every member holds the message.
    pub reliable: (u64, u64),
    /// Atomic broadcast: every member delivered it in agreed order.
    pub atomic: (u64, u64),
    /// Distributed agreement: the sender knows every member holds it (its commit).
    pub agreement: (u64, u64),
    /// Transaction control: every member committed it.
    pub transaction: (u64, u64),
    /// A member crashes: every survivor installed the view without it (rings of three or more).
    pub view_change: Option<(u64, u64)>,
    /// Connections opened during that view change.
    pub view_change_dials: u64,
}

/// The seed's figures for an operation: (O, C) as functions of n.
pub fn seed_figures(ring: RingMode, n: u64) -> [(u64, u64); 4] {
    match ring {
        RingMode::Bidirectional => [(n, 2 * n), (n, 2 * n), (n + n / 2, 3 * n), (2 * n, 4 * n)],
        RingMode::Unidirectional => [(2 * n, 2 * n), (2 * n, 2 * n), (3 * n, 3 * n), (4 * n, 4 * n)],
    }
}

const HOP: Duration = Duration::from_millis(1);

enum Event {
    Frame { from: NodeId, to: NodeId, frame: Box<PeerFrame> },
    LinkUp { at: NodeId, peer: NodeId },
    LinkDown { at: NodeId, peer: NodeId },
}

/// A minimal driver: every dial succeeds after one hop, every frame takes one hop.
struct Bench {
    cores: Vec<Core>,
    deadlines: Vec<Time>,
    queue: BinaryHeap<Reverse<(Time, u64)>>,
    events: BTreeMap<u64, Event>,
    order: u64,
    now: Time,
    out: Vec<Output>,
    counting: bool,
    milestones: Milestones,
    /// Crashed members, and the up links (lower id first), so a crash closes them.
    crashed: Vec<bool>,
    links: BTreeSet<(NodeId, NodeId)>,
    /// Frames and dials since the crash, and the survivors that installed the view without it.
    frames: u64,
    dials: u64,
    installed: u64,
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl Bench {
    fn push(&mut self, event: Event) {
        self.order += 1;
        self.queue.push(Reverse((self.now + HOP, self.order)));
        self.events.insert(self.order, event);
    }

    fn step(&mut self, index: usize, input: Input) {
        if self.crashed[index] {
            return;
        }
        let mut out = std::mem::take(&mut self.out);
        self.cores[index].step(self.now, input, &mut out);
        self.deadlines[index] = self.cores[index].next_deadline();
        let me = NodeId(index as u16 + 1);
        for o in out.drain(..) {
            match o {
                Output::Send { to, frame } => {
                    self.frames += 1;
                    if self.counting {
                        match &frame {
                            PeerFrame::Data(_) => self.milestones.data_frames += 1,
                            PeerFrame::Token(_) => self.milestones.token_frames += 1,
                            _ => {}
                        }
                    }
                    self.push(Event::Frame { from: me, to, frame: Box::new(frame) });
                }
                Output::Connect { peer } => {
                    self.dials += 1;
                    if self.crashed[usize::from(peer.0) - 1] {
                        self.push(Event::LinkDown { at: me, peer });
                    } else if self.links.insert(pair(me, peer)) {
                        self.push(Event::LinkUp { at: me, peer });
                        self.push(Event::LinkUp { at: peer, peer: me });
                    }
                }
                // Only a link that is up closes (and is removed from the set here).
                Output::Disconnect { peer } if self.links.remove(&pair(me, peer)) => {
                    self.push(Event::LinkDown { at: me, peer });
                    self.push(Event::LinkDown { at: peer, peer: me });
                }
                Output::ViewChange(info) if info.ring.len() + 1 == self.cores.len() => self.installed += 1,
                Output::Deliver(_) if self.counting => self.milestones.delivered(self.now),
                Output::Commit(c) if self.counting => self.milestones.committed(self.now, c.tag.is_some()),
                _ => {}
            }
        }
        self.out = out;
    }

    /// Runs until `done`, or until nothing is left before `until`.
    fn run(&mut self, until: Time, done: &dyn Fn(&Bench) -> bool) {
        for _ in 0..50_000_000u64 {
            if done(self) {
                return;
            }
            let event_time = self.queue.peek().map_or(Time::NEVER, |r| r.0 .0);
            let (index, deadline) = self
                .deadlines
                .iter()
                .copied()
                .enumerate()
                .min_by_key(|&(i, t)| (t, i))
                .unwrap_or((0, Time::NEVER));
            let next = event_time.min(deadline);
            if next > until {
                return;
            }
            self.now = next;
            if deadline < event_time {
                self.step(index, Input::Tick);
                continue;
            }
            let Some(Reverse((_, id))) = self.queue.pop() else { return };
            match self.events.remove(&id).expect("every queued id has an event") {
                Event::Frame { from, to, frame } => {
                    if self.counting && matches!(*frame, PeerFrame::Data(_)) {
                        self.milestones.received(self.now);
                    }
                    self.step(usize::from(to.0) - 1, Input::Frame { from, frame: *frame });
                }
                Event::LinkUp { at, peer } => {
                    let member = self.cores[usize::from(peer.0) - 1].me();
                    self.step(usize::from(at.0) - 1, Input::LinkUp { peer: member });
                }
                Event::LinkDown { at, peer } => self.step(usize::from(at.0) - 1, Input::LinkDown { peer }),
            }
        }
    }
}

/// Measures one row.
pub fn measure(nodes: usize, ring: RingMode) -> CostRow {
    let ids: Vec<NodeId> = (1..=nodes as u16).map(NodeId).collect();
    let cores: Vec<Core> = ids
        .iter()
        .map(|&id| {
            let mut config = CoreConfig::new(Member { id, incarnation: 1 }, ids.clone());
            config.ring_mode = ring;
            // Long timeouts: no heartbeat, park expiry or retry may land inside the measurement.
            config.token_timeout = Duration::from_secs(3600);
            config.idle_hold = Duration::from_secs(600);
            Core::new(config)
        })
        .collect();
    let mut bench = Bench {
        deadlines: vec![Time::ZERO; nodes],
        cores,
        queue: BinaryHeap::new(),
        events: BTreeMap::new(),
        order: 0,
        now: Time::ZERO,
        out: Vec::new(),
        counting: false,
        milestones: Milestones::default(),
        crashed: vec![false; nodes],
        links: BTreeSet::new(),
        frames: 0,
        dials: 0,
        installed: 0,
    };
    // Form the view and let the ring go quiet: everything left is far-off timers.
    let horizon = Time::ZERO + Duration::from_secs(60);
    bench.run(horizon, &|b| b.queue.is_empty() && b.cores.iter().all(|c| c.status().view.primary));
    let start = bench.now;
    let holder = (0..nodes).find(|&i| bench.cores[i].holds_parked_token()).unwrap_or(0);
    bench.counting = true;
    bench.milestones = Milestones { start, nodes: nodes as u64, ..Milestones::default() };
    bench.step(holder, Input::Submit { tag: 1, payload: vec![0u8; 8].into() });
    bench.run(start + Duration::from_secs(30), &|b| b.milestones.commits == nodes as u64);
    let (view_change, view_change_dials) = if nodes >= 3 { bench.crash_one() } else { (None, 0) };
    let m = &bench.milestones;
    CostRow {
        nodes,
        ring,
        reliable: m.reliable,
        atomic: m.atomic,
        agreement: m.agreement,
        transaction: m.transaction,
        view_change,
        view_change_dials,
    }
}

impl Bench {
    /// Lets the ring park again, crashes the member in the middle and counts hops and frames
    /// until every survivor installed the view without it, and the connections opened.
    fn crash_one(&mut self) -> (Option<(u64, u64)>, u64) {
        let nodes = self.cores.len();
        self.counting = false;
        self.run(self.now + Duration::from_secs(60), &|b| b.queue.is_empty());
        let victim = NodeId((nodes / 2) as u16);
        self.crashed[usize::from(victim.0) - 1] = true;
        let closed: Vec<(NodeId, NodeId)> =
            self.links.iter().copied().filter(|&(a, b)| a == victim || b == victim).collect();
        for (a, b) in closed {
            self.links.remove(&(a, b));
            let other = if a == victim { b } else { a };
            self.push(Event::LinkDown { at: other, peer: victim });
        }
        let start = self.now;
        (self.frames, self.dials, self.installed) = (0, 0, 0);
        let survivors = nodes as u64 - 1;
        self.run(start + Duration::from_secs(60), &|b| b.installed == survivors);
        let hops = (self.now.0 - start.0) / u64::try_from(HOP.as_nanos()).unwrap_or(1);
        ((self.installed == survivors).then_some((hops, self.frames)), self.dials)
    }
}

/// Hop counts and frame counts at each milestone of one operation.
#[derive(Default)]
struct Milestones {
    start: Time,
    nodes: u64,
    data_frames: u64,
    token_frames: u64,
    receipts: u64,
    deliveries: u64,
    commits: u64,
    reliable: (u64, u64),
    atomic: (u64, u64),
    agreement: (u64, u64),
    transaction: (u64, u64),
}

impl Milestones {
    fn hops(&self, now: Time) -> u64 {
        (now.0 - self.start.0) / u64::try_from(HOP.as_nanos()).unwrap_or(1)
    }

    fn received(&mut self, now: Time) {
        // The sender holds its message from the start; each data frame reaches one more member.
        self.receipts += 1;
        if self.receipts + 1 == self.nodes {
            self.reliable = (self.hops(now), self.data_frames);
        }
    }

    fn delivered(&mut self, now: Time) {
        self.deliveries += 1;
        if self.deliveries == self.nodes {
            self.atomic = (self.hops(now), self.data_frames);
        }
    }

    fn committed(&mut self, now: Time, own: bool) {
        self.commits += 1;
        let frames = self.data_frames + self.token_frames;
        if own {
            self.agreement = (self.hops(now), frames);
        }
        if self.commits == self.nodes {
            self.transaction = (self.hops(now), frames);
        }
    }
}
