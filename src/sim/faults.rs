//! Fault profiles and the schedule one seed draws from them.
//!
//! Every fault is switchable by profile and drawn from the seed, so a seed replays exactly.
//! Faults happen in a fault phase; at its end everything heals (blocks lifted, paused nodes
//! resumed, crashed nodes restarted) and the liveness phase begins.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::ids::NodeId;
use crate::rng::Rng;
use crate::time::Time;

/// A kind of fault a run may draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// A member crashes and stays down until the heal.
    Crash,
    /// A member crashes and restarts soon after as a new incarnation.
    Restart,
    /// Several members (a minority) crash at once.
    MultiCrash,
    /// A member crashes, and another while the first is being recovered.
    Cascade,
    /// One link breaks (both ends see it close).
    LinkBreak,
    /// The members split into a majority and a minority side, then heal.
    Partition,
    /// One link goes silent in both directions while both ends reach everyone else.
    Partial,
    /// One direction of one link drops everything.
    OneWay,
    /// Latency and jitter rise for a while.
    Delay,
    /// A member is paused (SIGSTOP) past the timeout, then resumed.
    Pause,
    /// A member starts late and joins.
    Join,
    /// Every member crashes and all restart.
    ColdStart,
    /// The links of two members to a third flap (close again and again) while clients write,
    /// then one of the three crashes: the glitch-then-crash of docs/PROTOCOL.md §5.4.
    Glitch,
}

impl FaultKind {
    /// Every kind, for the `all` profile.
    pub const ALL: [FaultKind; 13] = [
        FaultKind::Crash,
        FaultKind::Restart,
        FaultKind::MultiCrash,
        FaultKind::Cascade,
        FaultKind::LinkBreak,
        FaultKind::Partition,
        FaultKind::Partial,
        FaultKind::OneWay,
        FaultKind::Delay,
        FaultKind::Pause,
        FaultKind::Join,
        FaultKind::ColdStart,
        FaultKind::Glitch,
    ];

    /// Whether every member keeps its incarnation and state through this fault.
    pub fn keeps_state(self) -> bool {
        !matches!(
            self,
            FaultKind::Crash
                | FaultKind::Restart
                | FaultKind::MultiCrash
                | FaultKind::Cascade
                | FaultKind::ColdStart
                | FaultKind::Glitch
        )
    }

    /// The profile name of this kind.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Restart => "restart",
            FaultKind::MultiCrash => "multi-crash",
            FaultKind::Cascade => "cascade",
            FaultKind::LinkBreak => "link",
            FaultKind::Partition => "partition",
            FaultKind::Partial => "partial",
            FaultKind::OneWay => "one-way",
            FaultKind::Delay => "delay",
            FaultKind::Pause => "pause",
            FaultKind::Join => "join",
            FaultKind::ColdStart => "cold-start",
            FaultKind::Glitch => "glitch",
        }
    }
}

/// Which faults a run may draw: none, one kind, or all kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The kinds to draw from; empty for the fault-free profile.
    pub kinds: Vec<FaultKind>,
}

impl Profile {
    /// The fault-free profile.
    pub fn none() -> Profile {
        Profile { kinds: Vec::new() }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kinds.is_empty() {
            return write!(f, "none");
        }
        if self.kinds.len() == FaultKind::ALL.len() {
            return write!(f, "all");
        }
        let names: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
        write!(f, "{}", names.join(","))
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Profile, String> {
        match s {
            "none" => return Ok(Profile::none()),
            "all" => return Ok(Profile { kinds: FaultKind::ALL.to_vec() }),
            _ => {}
        }
        let mut kinds = Vec::new();
        for name in s.split(',') {
            let kind = FaultKind::ALL.iter().copied().find(|k| k.name() == name).ok_or_else(|| {
                format!("unknown fault {name:?}; use none, all, or a list of: {}", all_names())
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds.sort();
        Ok(Profile { kinds })
    }
}

fn all_names() -> String {
    FaultKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

/// One scheduled change to the simulated world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Kill a member; its links reset.
    Crash(NodeId),
    /// Start (or restart, as a new incarnation) a member.
    Start(NodeId),
    /// Close one link at both ends.
    BreakLink(NodeId, NodeId),
    /// Block every direction between the two sides.
    Partition(Vec<NodeId>),
    /// Block one direction of one link.
    Block(NodeId, NodeId),
    /// Stop processing at a member.
    Pause(NodeId),
    /// Resume a paused member.
    Resume(NodeId),
    /// Change the hop latency and jitter.
    SetDelay(Duration, Duration),
    /// Lift every block, resume and restart every member, restore latency.
    Heal,
}

/// The fault schedule of one seed.
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    /// Actions with their times, in time order.
    pub actions: Vec<(Time, FaultAction)>,
    /// Members not started at time zero.
    pub late: Vec<NodeId>,
    /// The kind drawn, for reports.
    pub kind: Option<FaultKind>,
}

/// Draws one seed's schedule: one fault kind from the profile, placed in the fault phase.
/// `single_copy`: the write quorum is one member, so a view may hold its history on one member
/// alone (two members and a witness). `removed`: how many of `ids` the run may take out of the
/// universe at once (docs/PROTOCOL.md §5.9); the faults that lose state are drawn for a universe
/// that much smaller, since a majority of the smaller universe is all any protocol can count on.
pub fn draw(
    rng: &mut Rng,
    profile: &Profile,
    ids: &[NodeId],
    fault_phase: Duration,
    timeout: Duration,
    single_copy: bool,
    removed: usize,
) -> Schedule {
    let mut schedule = Schedule::default();
    if profile.kinds.is_empty() || ids.len() < 2 {
        return schedule;
    }
    // Two members are a majority only together: without durable state (issue #5), losing either
    // one's state loses the quorum for good, so rings of two draw only faults that keep it. With a
    // write quorum of one, a glitch may leave a view of one member, and its crash then stops the
    // cluster by design until an operator forces a primary (docs/PROTOCOL.md §5.7, §5.8): such
    // runs draw no glitch.
    let kinds: Vec<FaultKind> = if ids.len() < 3 {
        profile.kinds.iter().copied().filter(|k| k.keeps_state()).collect()
    } else if single_copy {
        profile.kinds.iter().copied().filter(|&k| k != FaultKind::Glitch).collect()
    } else {
        profile.kinds.clone()
    };
    if kinds.is_empty() {
        return schedule;
    }
    let kind = kinds[rng.below(kinds.len() as u64) as usize];
    schedule.kind = Some(kind);
    let n = ids.len();
    let minority = (n - 1) / 2;
    // Members whose state crashes may take, at once, without leaving a majority of the smallest
    // universe the run passes through. A removed member is gone from the old electorate as soon
    // as it leaves and counts in the new one only once it is added back and admitted, so with
    // five members and one removal two lost states leave two of four: no quorum, for any
    // protocol that needs a majority of its configuration.
    let losable = (n.saturating_sub(removed + 1) / 2).min(minority);
    let phase = u64::try_from(fault_phase.as_nanos()).unwrap_or(u64::MAX);
    let at = |rng: &mut Rng, lo: u64, hi: u64| {
        Time(phase * lo / 100 + rng.below((phase * (hi - lo) / 100).max(1)))
    };
    let pick = |rng: &mut Rng| ids[rng.below(n as u64) as usize];
    let distinct = |rng: &mut Rng, count: usize| {
        let mut chosen: Vec<NodeId> = Vec::new();
        while chosen.len() < count.min(n) {
            let id = ids[rng.below(n as u64) as usize];
            if !chosen.contains(&id) {
                chosen.push(id);
            }
        }
        chosen
    };
    let a = &mut schedule.actions;
    match kind {
        FaultKind::Crash => a.push((at(rng, 10, 60), FaultAction::Crash(pick(rng)))),
        FaultKind::Restart => {
            let node = pick(rng);
            let t = at(rng, 10, 50);
            a.push((t, FaultAction::Crash(node)));
            a.push((t + timeout / 2 + Duration::from_nanos(rng.below(phase / 4)), FaultAction::Start(node)));
        }
        FaultKind::MultiCrash => {
            let t = at(rng, 10, 60);
            for node in distinct(rng, losable.max(1)) {
                a.push((t, FaultAction::Crash(node)));
            }
        }
        FaultKind::Cascade => {
            let nodes = distinct(rng, losable.clamp(1, 2));
            let t = at(rng, 10, 50);
            a.push((t, FaultAction::Crash(nodes[0])));
            if let Some(&second) = nodes.get(1) {
                // Inside the recovery that the first crash starts.
                let during =
                    Duration::from_nanos(rng.below(u64::try_from(timeout.as_nanos()).unwrap_or(1).max(1)));
                a.push((t + during / 4, FaultAction::Crash(second)));
            }
        }
        FaultKind::LinkBreak => {
            let pair = distinct(rng, 2);
            a.push((at(rng, 10, 80), FaultAction::BreakLink(pair[0], pair[1])));
        }
        FaultKind::Partition => {
            let side = distinct(rng, minority.max(1));
            let t = at(rng, 10, 40);
            a.push((t, FaultAction::Partition(side)));
            a.push((t + timeout * 3, FaultAction::Heal));
        }
        FaultKind::Partial => {
            let pair = distinct(rng, 2);
            let t = at(rng, 10, 50);
            a.push((t, FaultAction::Block(pair[0], pair[1])));
            a.push((t, FaultAction::Block(pair[1], pair[0])));
        }
        FaultKind::OneWay => {
            let pair = distinct(rng, 2);
            a.push((at(rng, 10, 50), FaultAction::Block(pair[0], pair[1])));
        }
        FaultKind::Delay => {
            let t = at(rng, 10, 50);
            let latency = Duration::from_micros(rng.range(500, 5_000));
            let jitter = Duration::from_micros(rng.range(0, 5_000));
            a.push((t, FaultAction::SetDelay(latency, jitter)));
        }
        FaultKind::Pause => {
            let node = pick(rng);
            let t = at(rng, 10, 40);
            a.push((t, FaultAction::Pause(node)));
            a.push((t + timeout * 2, FaultAction::Resume(node)));
        }
        FaultKind::Join => {
            let node = pick(rng);
            schedule.late.push(node);
            a.push((at(rng, 5, 60), FaultAction::Start(node)));
        }
        FaultKind::Glitch => {}
        FaultKind::ColdStart => {
            let t = at(rng, 10, 40);
            for &node in ids {
                a.push((t, FaultAction::Crash(node)));
            }
            for &node in ids {
                a.push((t + timeout, FaultAction::Start(node)));
            }
        }
    }
    if kind == FaultKind::Glitch {
        let three = distinct(rng, 3);
        let (hub, others) = (three[0], &three[1..]);
        let t = at(rng, 10, 40);
        // Flapping: every break is a link failing in use, so each counts as unusable (§5.5).
        for k in 0..4u32 {
            for &other in others {
                a.push((t + timeout * k, FaultAction::BreakLink(hub, other)));
            }
        }
        let victim = three[rng.below(three.len() as u64) as usize];
        a.push((t + timeout * 4 + Duration::from_nanos(rng.below(phase / 8)), FaultAction::Crash(victim)));
    }
    a.push((Time(phase), FaultAction::Heal));
    a.sort_by_key(|(t, _)| *t);
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_print() {
        assert_eq!("none".parse::<Profile>().unwrap(), Profile::none());
        assert_eq!("all".parse::<Profile>().unwrap().to_string(), "all");
        assert_eq!("pause,crash".parse::<Profile>().unwrap().to_string(), "crash,pause");
        assert!("crash,bogus".parse::<Profile>().unwrap_err().contains("bogus"));
    }

    #[test]
    fn a_schedule_is_a_function_of_the_seed_and_ends_healed() {
        let ids: Vec<NodeId> = (1..=5).map(NodeId).collect();
        let profile: Profile = "all".parse().unwrap();
        for seed in 0..200 {
            let one = draw(
                &mut Rng::new(seed),
                &profile,
                &ids,
                Duration::from_secs(3),
                Duration::from_millis(200),
                false,
                0,
            );
            let two = draw(
                &mut Rng::new(seed),
                &profile,
                &ids,
                Duration::from_secs(3),
                Duration::from_millis(200),
                false,
                0,
            );
            assert_eq!(one.actions, two.actions);
            assert!(matches!(one.actions.last(), Some((_, FaultAction::Heal))));
        }
    }
}
