//! The cost table of DESIGN.md, measured: message steps (O) and messages sent (C) per operation.
//!
//! A fault-free ring of n members with one constant hop latency and no jitter is driven until its
//! token parks; then one message is submitted at the member holding the token, and every frame from
//! then on is counted. O is the time to each milestone divided by the hop latency; C counts the
//! frames sent until then (data copies and token passes, heartbeats excluded).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
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
}

/// The seed's figures for an operation: (O, C) as functions of n.
pub fn seed_figures(ring: RingMode, n: u64) -> [(u64, u64); 4] {
    match ring {
        RingMode::Bidirectional => [(n, 2 * n), (n, 2 * n), (n + n / 2, 3 * n), (2 * n, 4 * n)],
        RingMode::Unidirectional => [(2 * n, 2 * n), (2 * n, 2 * n), (3 * n, 3 * n), (4 * n, 4 * n)],
    }
}

const HOP: Duration = Duration::from_millis(1);

struct Frame {
    from: NodeId,
    to: NodeId,
    frame: PeerFrame,
}

/// Measures one row.
pub fn measure(nodes: usize, ring: RingMode) -> CostRow {
    let ids: Vec<NodeId> = (1..=nodes as u16).map(NodeId).collect();
    let mut cores: Vec<Core> = ids
        .iter()
        .map(|&id| {
            let mut config = CoreConfig::new(Member { id, incarnation: 1 }, ids.clone());
            config.ring_mode = ring;
            // Long timeouts: no heartbeat may land inside the measured window.
            config.token_timeout = Duration::from_secs(3600);
            config.idle_hold = Duration::from_secs(600);
            Core::new(config)
        })
        .collect();
    let mut now = Time::ZERO;
    let mut queue: BinaryHeap<Reverse<(Time, u64)>> = BinaryHeap::new();
    let mut frames: BTreeMap<u64, Frame> = BTreeMap::new();
    let mut order = 0u64;
    let mut out = Vec::new();
    let mut links = Vec::new();
    // Start every member and bring every requested link up at once.
    for core in cores.iter_mut() {
        core.step(now, Input::Tick, &mut out);
        for o in out.drain(..) {
            if let Output::Connect { peer } = o {
                links.push((core.me().id, peer));
            }
        }
    }
    let mut counting = false;
    let mut counts = (0u64, 0u64);
    let mut milestones = Milestones::default();
    let mut pending_links = links;
    let index = |id: NodeId| usize::from(id.0) - 1;
    let mut step_outputs = |core_index: usize,
                            out: &mut Vec<Output>,
                            now: Time,
                            queue: &mut BinaryHeap<Reverse<(Time, u64)>>,
                            frames: &mut BTreeMap<u64, Frame>,
                            counts: &mut (u64, u64),
                            counting: bool,
                            milestones: &mut Milestones| {
        let from = NodeId(core_index as u16 + 1);
        for o in out.drain(..) {
            match o {
                Output::Send { to, frame } => {
                    if counting {
                        match &frame {
                            PeerFrame::Data(_) => counts.0 += 1,
                            PeerFrame::Token(_) => counts.1 += 1,
                            _ => {}
                        }
                    }
                    order += 1;
                    queue.push(Reverse((now + HOP, order)));
                    frames.insert(order, Frame { from, to, frame });
                }
                Output::Deliver(_) if counting => milestones.delivered(now, *counts),
                Output::Commit(c) if counting => milestones.committed(now, *counts, c.tag.is_some()),
                _ => {}
            }
        }
    };
    for (a, b) in pending_links.drain(..) {
        let (ma, mb) = (cores[index(a)].me(), cores[index(b)].me());
        cores[index(a)].step(now, Input::LinkUp { peer: mb }, &mut out);
        step_outputs(index(a), &mut out, now, &mut queue, &mut frames, &mut counts, false, &mut milestones);
        cores[index(b)].step(now, Input::LinkUp { peer: ma }, &mut out);
        step_outputs(index(b), &mut out, now, &mut queue, &mut frames, &mut counts, false, &mut milestones);
    }
    let mut start = Time::ZERO;
    let mut submitted = false;
    for _ in 0..10_000_000u64 {
        let Some(Reverse((time, id))) = queue.pop() else {
            if submitted {
                break;
            }
            // Quiet and parked at the first member: submit there and start counting.
            submitted = true;
            counting = true;
            start = now;
            milestones = Milestones { start, nodes: nodes as u64, ..Milestones::default() };
            cores[0].step(now, Input::Submit { tag: 1, payload: vec![0u8; 8].into() }, &mut out);
            step_outputs(0, &mut out, now, &mut queue, &mut frames, &mut counts, true, &mut milestones);
            continue;
        };
        now = time;
        let frame = frames.remove(&id).expect("every queued id has a frame");
        if counting {
            if let PeerFrame::Data(_) = &frame.frame {
                milestones.received(now, counts);
            }
        }
        let target = index(frame.to);
        cores[target].step(now, Input::Frame { from: frame.from, frame: frame.frame }, &mut out);
        step_outputs(target, &mut out, now, &mut queue, &mut frames, &mut counts, counting, &mut milestones);
        if milestones.commits == nodes as u64 {
            break;
        }
    }
    let _ = start;
    CostRow {
        nodes,
        ring,
        reliable: milestones.reliable,
        atomic: milestones.atomic,
        agreement: milestones.agreement,
        transaction: milestones.transaction,
    }
}

/// Hop counts and frame counts at each milestone of one operation.
#[derive(Default)]
struct Milestones {
    start: Time,
    nodes: u64,
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

    fn frames(counts: (u64, u64)) -> u64 {
        counts.0 + counts.1
    }

    fn received(&mut self, now: Time, counts: (u64, u64)) {
        // The sender holds its message from the start; each data frame reaches one more member.
        self.receipts += 1;
        if self.receipts + 1 == self.nodes {
            self.reliable = (self.hops(now), counts.0);
        }
    }

    fn delivered(&mut self, now: Time, counts: (u64, u64)) {
        self.deliveries += 1;
        if self.deliveries == self.nodes {
            self.atomic = (self.hops(now), counts.0);
            if self.nodes == 1 {
                self.reliable = (0, 0);
            }
        }
    }

    fn committed(&mut self, now: Time, counts: (u64, u64), own: bool) {
        self.commits += 1;
        if own {
            self.agreement = (self.hops(now), Milestones::frames(counts));
        }
        if self.commits == self.nodes {
            self.transaction = (self.hops(now), Milestones::frames(counts));
        }
    }
}
