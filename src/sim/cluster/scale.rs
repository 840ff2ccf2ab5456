//! Formation, a view change and a join at large n (docs/PROTOCOL.md §4), on the real cores under
//! the simulated network and the checker: `n` fresh members form the first view; a member in the
//! middle of the ring crashes and the others install a view without it; it restarts as a new
//! incarnation and joins the running ring. Between phases the ring idles for a few token timeouts,
//! so the links a phase opened beyond the ring have closed and the next phase starts from a stable
//! view. Each phase's virtual time, the connections each member opened (its dials) and the frames
//! sent are measured; at the end everything settles and the guarantees are checked as after any
//! run. `harness-sim scale` prints the table for n = 64, 256 and 1024.

use std::time::Duration;

use super::{Cluster, Event};
use crate::core::Core;
use crate::ids::NodeId;
use crate::rng::Rng;
use crate::sim::checker::{Guarantee, Violation};
use crate::sim::faults::{FaultAction, Schedule};
use crate::sim::SimOptions;
use crate::time::Time;

/// What one phase cost, from its start until every live member installed the view it leads to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseCost {
    /// Virtual time the phase took.
    pub time: Duration,
    /// Dials started (connections opened) by the member that started the most.
    pub dials_max: u64,
    /// Dials started by all members.
    pub dials_total: u64,
    /// Frames sent, of every kind.
    pub frames: u64,
    /// Frames of joins and view changes (everything but token, data, wake and heartbeat).
    pub membership_frames: u64,
}

/// One ring size's run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleRow {
    /// Members.
    pub nodes: usize,
    /// `n` fresh members form the first view.
    pub formation: PhaseCost,
    /// A member crashes and the others install a view without it.
    pub view_change: PhaseCost,
    /// The crashed member restarts and joins the running ring.
    pub join: PhaseCost,
    /// Peer links up at the member with the most in a stable view (before the crash).
    pub links_max: usize,
    /// The first guarantee broken, if any; a phase that does not finish is a liveness one (7).
    pub violation: Option<Violation>,
}

/// Members that submit one message before each phase after formation.
const SUBMITTERS: u64 = 8;

/// How long one phase may take before it counts as stuck.
const PHASE_MAX: Duration = Duration::from_secs(60);

/// Runs the three phases at `nodes` members from `seed`.
pub fn scale_run(nodes: usize, seed: u64) -> ScaleRow {
    let options = SimOptions {
        nodes,
        // The workload is submitted per phase below: a few messages in flight during each view
        // change, not one per member (whose n × n deliveries would dominate the run).
        messages: 0,
        fault_phase: Duration::from_secs(2),
        step_max: 50_000_000,
        ..SimOptions::default()
    };
    let schedule = Schedule { actions: Vec::new(), late: Vec::new(), kind: None };
    let mut cluster = Cluster::with_schedule(seed, Rng::new(seed), &options, schedule, false);
    let mut row = ScaleRow {
        nodes,
        formation: PhaseCost::default(),
        view_change: PhaseCost::default(),
        join: PhaseCost::default(),
        links_max: 0,
        violation: None,
    };
    if let Err(violation) = cluster.phases(&mut row) {
        row.violation = Some(violation);
    }
    row
}

impl Cluster<'_> {
    fn phases(&mut self, row: &mut ScaleRow) -> Result<(), Violation> {
        let n = self.nodes.len();
        let all: Vec<NodeId> = self.nodes.iter().map(|node| node.id).collect();
        // The members started before the first step: formation counts from nothing.
        let nothing = (vec![0; n], 0, 0);
        row.formation = self.phase("formation", &all, n, nothing, Time::ZERO, |_| {})?;
        self.idle()?;
        row.links_max = self
            .nodes
            .iter()
            .filter_map(|node| node.core.as_ref())
            .map(|core| Core::link_counts(core).0)
            .max()
            .unwrap_or(0);
        let victim = NodeId(n as u16 / 2);
        let survivors: Vec<NodeId> = all.iter().copied().filter(|&id| id != victim).collect();
        let counts = self.counts();
        self.submit_some(1);
        row.view_change = self.phase("view change", &survivors, n - 1, counts, self.now, |c| {
            // A crash reports nothing: the other ends see their links close.
            let _ = c.crash(victim);
        })?;
        self.idle()?;
        let counts = self.counts();
        self.submit_some(1 + SUBMITTERS);
        row.join = self.phase("join", &all, n, counts, self.now, |c| c.start(victim))?;
        self.fault(FaultAction::Heal)?;
        self.healed_at = Some(self.now);
        // Settles and checks every guarantee at the end.
        self.run_loop()
    }

    /// One message from each of `SUBMITTERS` members spread over the ring, now: in flight while
    /// the next phase's view change runs. Tags count up from `first`.
    fn submit_some(&mut self, first: u64) {
        let n = self.nodes.len() as u64;
        for k in 0..SUBMITTERS {
            let node = NodeId((1 + k * n / SUBMITTERS) as u16);
            let tag = first + k;
            let mut payload = tag.to_be_bytes().to_vec();
            payload.extend_from_slice(b"scale");
            self.schedule(self.now, Event::Submit { node, tag, payload });
        }
    }

    /// The dial and frame counters now, a phase's starting point.
    fn counts(&self) -> (Vec<u64>, u64, u64) {
        (self.dials.clone(), self.frames, self.membership_frames)
    }

    /// Lets the ring idle for three token timeouts: links opened beyond the ring close.
    fn idle(&mut self) -> Result<(), Violation> {
        let until = self.now + self.options.token_timeout * 3;
        self.advance_until(until, &|_| None)?;
        self.now = self.now.max(until);
        Ok(())
    }

    /// Starts a phase with `begin` and runs until every member of `members` installed one
    /// primary view of `size` members newer than any they had.
    fn phase(
        &mut self,
        name: &str,
        members: &[NodeId],
        size: usize,
        (dials, frames, membership_frames): (Vec<u64>, u64, u64),
        start: Time,
        begin: impl FnOnce(&mut Cluster<'_>),
    ) -> Result<PhaseCost, Violation> {
        let before: Vec<u64> = self.installed.iter().map(|v| v.map_or(0, |(view, _, _)| view)).collect();
        begin(self);
        let done = |c: &Cluster<'_>| -> Option<Time> {
            let mut view = None;
            let mut latest = start;
            for id in members {
                let index = usize::from(id.0) - 1;
                let (v, len, at) = c.installed[index]?;
                if len != size || v <= before[index] || view.is_some_and(|w| w != v) {
                    return None;
                }
                view = Some(v);
                latest = latest.max(at);
            }
            Some(latest)
        };
        let end = self.advance_until(start + PHASE_MAX, &done)?.ok_or_else(|| {
            Violation::new(
                Guarantee::Liveness,
                format!("{name}: no view of {size} members within {PHASE_MAX:?}"),
            )
        })?;
        let opened: Vec<u64> = self.dials.iter().zip(&dials).map(|(now, then)| now - then).collect();
        Ok(PhaseCost {
            time: Duration::from_nanos(end.0 - start.0),
            dials_max: opened.iter().copied().max().unwrap_or(0),
            dials_total: opened.iter().sum(),
            frames: self.frames - frames,
            membership_frames: self.membership_frames - membership_frames,
        })
    }

    /// Handles events and deadlines until `done` gives a time (returned) or `until` passes.
    fn advance_until(
        &mut self,
        until: Time,
        done: &dyn Fn(&Cluster<'_>) -> Option<Time>,
    ) -> Result<Option<Time>, Violation> {
        let mut checked = None;
        while self.steps < self.options.step_max {
            // Only an install can finish a phase: check again only after one.
            if checked != Some(self.installs) {
                checked = Some(self.installs);
                if let Some(at) = done(self) {
                    return Ok(Some(at));
                }
            }
            let event_time = self.queue.peek().map_or(Time::NEVER, |s| s.0.time);
            let (deadline_node, deadline) = self.next_deadline();
            let next = event_time.min(deadline);
            if next > until {
                return Ok(None);
            }
            self.steps += 1;
            self.now = next;
            if deadline < event_time {
                self.step(deadline_node, crate::core::Input::Tick)?;
                continue;
            }
            let Some(std::cmp::Reverse(scheduled)) = self.queue.pop() else { return Ok(None) };
            self.handle(scheduled.event)?;
        }
        Ok(None)
    }
}
