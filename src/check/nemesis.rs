//! The nemesis: a seeded schedule of faults for a linearizability run, and the interface whoever
//! owns the member processes implements to apply them (loopback processes in `check::run`,
//! network namespaces in the tests).
//!
//! Faults come one episode at a time and touch at most a minority, so a majority stays up and
//! the history keeps growing: kill -9 (restarted at the episode's end), pause (SIGSTOP, then
//! SIGCONT), restart (kill -9 and start again at once), a 3|2 partition, a bridge (one member
//! sees both sides, the sides do not see each other) and a flapping link. Every schedule ends
//! with everything healed, well before the clients stop.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::rng::Rng;

/// A kind of fault the nemesis may draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// kill -9 of a member, started again after a while.
    Kill,
    /// SIGSTOP of a member past the token timeout, then SIGCONT.
    Pause,
    /// kill -9 of a member and an immediate start.
    Restart,
    /// The members split into a majority and a minority side.
    Partition,
    /// One member sees both sides; the sides do not see each other.
    Bridge,
    /// One link goes down and up again, several times.
    Flap,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Restart,
        FaultKind::Partition,
        FaultKind::Bridge,
        FaultKind::Flap,
    ];

    /// The name on the command line and in summaries.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Restart => "restart",
            FaultKind::Partition => "partition",
            FaultKind::Bridge => "bridge",
            FaultKind::Flap => "flap",
        }
    }

    /// Whether it needs control of the network (namespaces), not only of processes.
    pub fn needs_network(self) -> bool {
        matches!(self, FaultKind::Partition | FaultKind::Bridge | FaultKind::Flap)
    }
}

/// A list of fault kinds, as given on the command line (`kill,pause`, `processes`, `all`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kinds(pub Vec<FaultKind>);

impl FromStr for Kinds {
    type Err = String;
    fn from_str(text: &str) -> Result<Kinds, String> {
        let mut kinds = Vec::new();
        for name in text.split(',').map(str::trim) {
            let found: Vec<FaultKind> = match name {
                "all" => FaultKind::ALL.to_vec(),
                "processes" => FaultKind::ALL.iter().copied().filter(|k| !k.needs_network()).collect(),
                "none" => Vec::new(),
                _ => vec![FaultKind::ALL.iter().copied().find(|k| k.name() == name).ok_or_else(|| {
                    let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                    format!("unknown fault {name:?}: use none, all, processes or some of {}", names.join(","))
                })?],
            };
            kinds.extend(found);
        }
        kinds.sort();
        kinds.dedup();
        Ok(Kinds(kinds))
    }
}

impl fmt::Display for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|k| k.name()).collect();
        write!(f, "{}", if names.is_empty() { "none".to_string() } else { names.join(",") })
    }
}

/// One change to the world; members are 0-based indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// kill -9.
    Kill(usize),
    /// Start a member that is not running (a new incarnation).
    Start(usize),
    /// SIGSTOP.
    Stop(usize),
    /// SIGCONT.
    Cont(usize),
    /// Cut every link between the two sides.
    Split(Vec<usize>, Vec<usize>),
    /// Cut one link.
    Cut(usize, usize),
    /// Restore one link.
    Mend(usize, usize),
    /// Restore every link.
    HealNetwork,
}

/// What applies actions: the owner of the member processes (and of the network, if it can).
pub trait Target {
    /// Applies one action.
    fn apply(&mut self, action: &Action) -> Result<(), String>;
}

/// The actions of one run, each at its offset from the start, in time order, and the kind of
/// every episode (for the summary).
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    /// (offset, action).
    pub actions: Vec<(Duration, Action)>,
    /// The episodes' kinds, in order.
    pub episodes: Vec<FaultKind>,
}

/// Draws the schedule of a run of `duration` over `members`: episodes from `kinds` back to back
/// with a quiet gap between them, starting after a quiet second, the last one healed by
/// `duration` minus a margin in which the clients finish against a whole ring.
pub fn schedule(seed: u64, kinds: &Kinds, members: usize, duration: Duration, timeout: Duration) -> Schedule {
    let mut rng = Rng::new(seed);
    let mut schedule = Schedule::default();
    if kinds.0.is_empty() || members < 3 {
        return schedule;
    }
    let span = |rng: &mut Rng, low: Duration, high: Duration| {
        let extra = u64::try_from((high - low).as_nanos()).unwrap_or(0);
        low + Duration::from_nanos(rng.below(extra.max(1)))
    };
    let minority = (members - 1) / 2;
    let last_end = duration.saturating_sub(timeout * 4 + Duration::from_secs(1));
    let mut t = Duration::from_secs(1).min(duration / 4);
    // Bounded by the time line: every episode moves `t` forward by at least one token timeout.
    while t < last_end {
        let kind = kinds.0[rng.below(kinds.0.len() as u64) as usize];
        let length = span(&mut rng, timeout, timeout * 3);
        let end = (t + length).min(last_end);
        let victim = rng.below(members as u64) as usize;
        let a = &mut schedule.actions;
        match kind {
            FaultKind::Kill => {
                a.push((t, Action::Kill(victim)));
                a.push((end, Action::Start(victim)));
            }
            FaultKind::Pause => {
                a.push((t, Action::Stop(victim)));
                a.push((end, Action::Cont(victim)));
            }
            FaultKind::Restart => {
                a.push((t, Action::Kill(victim)));
                a.push((t + Duration::from_millis(10), Action::Start(victim)));
            }
            FaultKind::Partition => {
                let mut order: Vec<usize> = (0..members).collect();
                shuffle(&mut rng, &mut order);
                let (small, large) = order.split_at(minority.max(1));
                a.push((t, Action::Split(small.to_vec(), large.to_vec())));
                a.push((end, Action::HealNetwork));
            }
            FaultKind::Bridge => {
                // One member in the middle; the rest split in two halves that only it joins.
                let mut order: Vec<usize> = (0..members).collect();
                shuffle(&mut rng, &mut order);
                let rest = &order[1..];
                let (left, right) = rest.split_at(rest.len() / 2);
                a.push((t, Action::Split(left.to_vec(), right.to_vec())));
                a.push((end, Action::HealNetwork));
            }
            FaultKind::Flap => {
                let other = (victim + 1 + rng.below(members as u64 - 1) as usize) % members;
                let period = timeout / 2;
                let mut at = t;
                let mut down = false;
                // Bounded by the episode's end.
                while at < end {
                    a.push((at, if down { Action::Mend(victim, other) } else { Action::Cut(victim, other) }));
                    down = !down;
                    at += span(&mut rng, period / 2, period * 2);
                }
                a.push((end, Action::HealNetwork));
            }
        }
        schedule.episodes.push(kind);
        t = end + span(&mut rng, timeout / 2, timeout * 2);
    }
    schedule.actions.sort_by_key(|(at, _)| *at);
    schedule
}

fn shuffle(rng: &mut Rng, items: &mut [usize]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_name_and_group() {
        let all: Kinds = "all".parse().unwrap();
        assert_eq!(all.0, FaultKind::ALL.to_vec());
        let processes: Kinds = "processes".parse().unwrap();
        assert_eq!(processes.to_string(), "kill,pause,restart");
        assert_eq!("pause,kill,pause".parse::<Kinds>().unwrap().to_string(), "kill,pause");
        assert!("kill,fire".parse::<Kinds>().unwrap_err().contains("fire"));
        assert_eq!("none".parse::<Kinds>().unwrap().0, vec![]);
    }

    #[test]
    fn a_schedule_is_seeded_ends_healed_and_faults_a_minority_at_a_time() {
        let kinds: Kinds = "all".parse().unwrap();
        let timeout = Duration::from_millis(300);
        for seed in 0..50 {
            let one = schedule(seed, &kinds, 5, Duration::from_secs(20), timeout);
            let two = schedule(seed, &kinds, 5, Duration::from_secs(20), timeout);
            assert_eq!(one.actions, two.actions);
            assert!(!one.episodes.is_empty());
            let last = one.actions.last().map(|(at, _)| *at).unwrap();
            assert!(last <= Duration::from_secs(20) - timeout * 4, "seed {seed}: last action at {last:?}");
            // Processes faulted and not yet restored never exceed one at a time.
            let mut down = std::collections::BTreeSet::new();
            for (_, action) in &one.actions {
                match action {
                    Action::Kill(i) | Action::Stop(i) => assert!(down.insert(*i) && down.len() <= 2),
                    Action::Start(i) | Action::Cont(i) => {
                        down.remove(i);
                    }
                    Action::Split(a, b) => assert!(a.len().min(b.len()) <= 2 && a.len() + b.len() >= 4),
                    _ => {}
                }
            }
            assert!(down.is_empty(), "seed {seed}: left {down:?} down");
        }
        assert!(schedule(1, &Kinds(vec![]), 5, Duration::from_secs(20), timeout).actions.is_empty());
    }
}
