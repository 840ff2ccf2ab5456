//! Membership changes in the simulator (docs/PROTOCOL.md §5.9): a run with `member_changes`
//! submits a fixed sequence of universe changes (an address change, the removal of a member,
//! its re-addition, another address change) at random members and times of the fault phase,
//! interleaved with whatever faults the seed draws (crashes of the member being removed or of a
//! coordinator mid-change included). Each change names its epoch, so one that arrives before its
//! predecessor committed is refused and the rest of the sequence with it; after the heal the whole
//! sequence is submitted again a few times (changes already made are refused by their epoch), so
//! every run ends with every member back in the universe and the usual end checks apply.
//! A removed member commits its removal and leaves (`Output::Left`); the simulator stops it and
//! starts it again a little later as a new process, which joins once it is added back.

use super::{witness_ids, Cluster, Event};
use crate::ids::NodeId;
use crate::replication::{Action, Command, MemberChange, Session, Universe};
use crate::sim::faults::FaultAction;
use crate::time::Time;

/// How often the sequence is submitted again after the heal, and how far apart.
const RESUBMIT_ROUNDS: u64 = 4;

impl Cluster<'_> {
    /// The sequence of changes of this run, in epoch order.
    fn member_change_actions(&mut self) -> Vec<Action> {
        let witnesses = witness_ids(self.options);
        let data: Vec<NodeId> =
            self.nodes.iter().map(|n| n.id).filter(|id| !witnesses.contains(id)).collect();
        let pick = |rng: &mut crate::rng::Rng| data[rng.below(data.len() as u64) as usize];
        let moved = pick(&mut self.rng);
        let removed = pick(&mut self.rng);
        let moved_again = pick(&mut self.rng);
        let seed = Universe {
            epoch: 0,
            members: self.nodes.iter().map(|n| (n.id, format!("sim-{}", n.id.0))).collect(),
        };
        let changes = [
            (MemberChange::Update(moved), Some(format!("sim-{}-moved", moved.0))),
            (MemberChange::Remove(removed), None),
            (MemberChange::Add(removed), Some(format!("sim-{}-back", removed.0))),
            (MemberChange::Update(moved_again), Some(format!("sim-{}-again", moved_again.0))),
        ];
        let mut universe = seed;
        let mut commands = Vec::new();
        for (change, address) in changes {
            let Ok(next) = universe.with_change(change, address.as_deref()) else { continue };
            let members = next.members.iter().map(|(id, a)| (*id, a.clone())).collect();
            let action = Action::Universe { epoch: next.epoch, change, members };
            commands.push(action);
            universe = next;
        }
        commands
    }

    /// Schedules the sequence in the fault phase and again after the heal.
    pub(super) fn schedule_member_changes(&mut self, tag: &mut u64) {
        let actions = self.member_change_actions();
        // The checker names a command's submission by its client id (the run's tag).
        let command = |action: &Action, tag: u64| {
            Command { session: Session { client_id: tag, request: 1 }, action: action.clone() }.encode()
        };
        let witnesses = witness_ids(self.options);
        let data: Vec<NodeId> =
            self.nodes.iter().map(|n| n.id).filter(|id| !witnesses.contains(id)).collect();
        let window = u64::try_from(self.options.fault_phase.as_nanos()).unwrap_or(u64::MAX) * 9 / 10;
        let mut times: Vec<u64> = actions.iter().map(|_| self.rng.below(window.max(1))).collect();
        times.sort_unstable();
        for (action, at) in actions.iter().zip(times) {
            *tag += 1;
            let node = data[self.rng.below(data.len() as u64) as usize];
            self.schedule(Time(at), Event::Submit { node, tag: *tag, payload: command(action, *tag) });
        }
        // Each round through another member, as an operator's client fails over: a round sent to
        // the removed member only (not in a primary view until it is added back) could never
        // add it back.
        let healed = Time::ZERO + self.options.fault_phase;
        let first = self.rng.below(data.len() as u64) as usize;
        for round in 1..=RESUBMIT_ROUNDS {
            let at = healed + self.options.token_timeout * (10 * round as u32);
            let node = data[(first + round as usize) % data.len()];
            for action in &actions {
                *tag += 1;
                self.schedule(at, Event::Submit { node, tag: *tag, payload: command(action, *tag) });
            }
        }
    }

    /// A member that left (it was removed) stops, and starts again as a new process a little
    /// later: it joins once the sequence adds it back.
    pub(super) fn on_left(&mut self, id: NodeId) -> Result<(), crate::sim::checker::Violation> {
        self.crash(id)?;
        let at = self.now + self.options.token_timeout * 2;
        self.schedule(at, Event::Fault(FaultAction::Start(id)));
        Ok(())
    }
}
