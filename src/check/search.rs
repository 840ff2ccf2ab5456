//! The linearizability search of one key's history: Wing & Gong's backtracking over the
//! operations that may take effect next, with Lowe's memoisation of (linearized set, register
//! state) so that no configuration is explored twice (as in porcupine and Knossos).
//!
//! The call and return events, sorted by time (a call before a return at the same time: they
//! overlap), form a doubly linked list. The search walks it from the front: a call whose
//! operation the register can apply now is linearized (taken out of the list with its return,
//! pushed on a stack) and the walk restarts; a return reached means its operation should have
//! been linearized already, so the last choice is undone. The history is linearizable when the
//! list empties, and not when a return is reached with nothing left to undo. An indeterminate
//! operation's return is at infinity: it may be linearized anywhere after its call, last of all
//! (which is the same as never, since nothing observes it afterwards).

use std::collections::{BTreeMap, HashSet};

use super::history::{Call, Operation, Ret};

/// A register value, interned.
type Value = u32;
/// The register: a value, or missing.
type State = Option<Value>;

/// An operation with interned values.
#[derive(Clone, Copy, Debug)]
enum Step {
    Put(Value),
    Get(State),
    /// A delete; `Some(existed)` when its outcome is known.
    Delete(Option<bool>),
    /// Compare-and-set; the outcome is `Some(None)` for success, `Some(Some(found))` for a failed
    /// comparison, `None` when unknown.
    Cas {
        expected: State,
        new: Value,
        outcome: Option<Option<State>>,
    },
    /// A write whose outcome is unknown: put.
    MaybePut(Value),
}

/// Applies `step` to `state`; `None` if the register cannot have produced its result.
fn apply(state: State, step: Step) -> Option<State> {
    match step {
        Step::Put(v) | Step::MaybePut(v) => Some(Some(v)),
        Step::Get(seen) => (seen == state).then_some(state),
        Step::Delete(None) => Some(None),
        Step::Delete(Some(existed)) => (existed == state.is_some()).then_some(None),
        Step::Cas { expected, new, outcome } => match outcome {
            None => Some(if state == expected { Some(new) } else { state }),
            Some(None) => (state == expected).then_some(Some(new)),
            Some(Some(found)) => (state != expected && found == state).then_some(state),
        },
    }
}

/// How one key's search ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    /// Some order of the operations is legal and respects real time.
    Linearizable,
    /// None is: the longest legal prefix found, and the operation that could not follow it.
    NotLinearizable {
        /// Operations of the longest linearized prefix, in order (indexes into the key's ops).
        prefix: Vec<usize>,
        /// The operation whose return was reached without it being linearizable.
        stuck: usize,
    },
    /// The step budget ran out first.
    Unknown,
}

struct Events {
    /// (time, 0 call | 1 return, op).
    list: Vec<(u64, u8, usize)>,
    prev: Vec<usize>,
    next: Vec<usize>,
    /// For each call event, its return event.
    matching: Vec<usize>,
}

/// The sentinel before the first event and after the last.
const HEAD: usize = 0;

impl Events {
    fn new(ops: &[Operation]) -> Events {
        let mut list: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            list.push((op.call_ns, 0, i));
            list.push((op.return_ns.unwrap_or(u64::MAX), 1, i));
        }
        list.sort();
        // Index 0 is the sentinel; event k is at k + 1.
        let count = list.len() + 1;
        let mut call_event = vec![0; ops.len()];
        let mut return_event = vec![0; ops.len()];
        for (k, &(_, kind, op)) in list.iter().enumerate() {
            if kind == 0 {
                call_event[op] = k + 1;
            } else {
                return_event[op] = k + 1;
            }
        }
        let mut matching = vec![0; count];
        for op in 0..ops.len() {
            matching[call_event[op]] = return_event[op];
        }
        Events {
            list,
            prev: (0..count).map(|k| if k == 0 { count - 1 } else { k - 1 }).collect(),
            next: (0..count).map(|k| (k + 1) % count).collect(),
            matching,
        }
    }

    fn op(&self, event: usize) -> usize {
        self.list[event - 1].2
    }

    fn is_call(&self, event: usize) -> bool {
        self.list[event - 1].1 == 0
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        self.prev[n] = e;
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.matching[call]);
    }

    /// Puts them back, in the reverse order.
    fn unlift(&mut self, call: usize) {
        self.relink(self.matching[call]);
        self.relink(call);
    }
}

/// Interns the values of one key's operations and turns each into a `Step`.
fn steps(ops: &[Operation]) -> Vec<Step> {
    let mut ids: BTreeMap<String, Value> = BTreeMap::new();
    let mut intern = |v: &Option<String>| -> State {
        v.as_deref().map(|v| {
            let next = ids.len() as Value;
            *ids.entry(v.to_string()).or_insert(next)
        })
    };
    ops.iter()
        .map(|op| match (&op.call, &op.ret) {
            (Call::Put { value }, Ret::Unknown) => Step::MaybePut(intern(&Some(value.clone())).unwrap_or(0)),
            (Call::Put { value }, _) => Step::Put(intern(&Some(value.clone())).unwrap_or(0)),
            (Call::Get, Ret::Value(v)) => Step::Get(intern(v)),
            // Reads without a result constrain nothing; `check` leaves them out before this.
            (Call::Get, _) => Step::Get(None),
            (Call::Delete, Ret::Ok) => Step::Delete(Some(true)),
            (Call::Delete, Ret::NotFound) => Step::Delete(Some(false)),
            (Call::Delete, _) => Step::Delete(None),
            (Call::Cas { expected, new }, ret) => {
                let expected = intern(expected);
                let new = intern(&Some(new.clone())).unwrap_or(0);
                let outcome = match ret {
                    Ret::Ok => Some(None),
                    Ret::Failed(found) => Some(Some(intern(found))),
                    _ => None,
                };
                Step::Cas { expected, new, outcome }
            }
        })
        .collect()
}

/// Searches for a linearization of `ops` (all on one key, starting from a missing key), taking at
/// most `budget` steps.
pub fn check_key(ops: &[Operation], budget: u64) -> KeyVerdict {
    if ops.is_empty() {
        return KeyVerdict::Linearizable;
    }
    let steps = steps(ops);
    let mut events = Events::new(ops);
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut longest: Vec<usize> = Vec::new();
    let mut stuck = 0;
    let mut entry = events.next[HEAD];
    for _ in 0..budget {
        if events.next[HEAD] == HEAD {
            return KeyVerdict::Linearizable;
        }
        if events.is_call(entry) {
            let op = events.op(entry);
            let applied = apply(state, steps[op]);
            let mut advanced = false;
            if let Some(after) = applied {
                let mut with = linearized.clone();
                with[op / 64] |= 1 << (op % 64);
                if seen.insert((with.clone(), after)) {
                    stack.push((entry, state));
                    state = after;
                    linearized = with;
                    events.lift(entry);
                    entry = events.next[HEAD];
                    advanced = true;
                }
            }
            if !advanced {
                entry = events.next[entry];
            }
        } else {
            // The operation returning here is not linearized: undo the last choice.
            if stack.len() >= longest.len() {
                longest = stack.iter().map(|&(e, _)| events.op(e)).collect();
                stuck = events.op(entry);
            }
            let Some((call, before)) = stack.pop() else {
                return KeyVerdict::NotLinearizable { prefix: longest, stuck };
            };
            state = before;
            let op = events.op(call);
            linearized[op / 64] &= !(1 << (op % 64));
            events.unlift(call);
            entry = events.next[call];
        }
    }
    KeyVerdict::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::parse;

    fn verdict(text: &str) -> KeyVerdict {
        check_key(&parse(text).unwrap(), 1_000_000)
    }

    #[test]
    fn a_read_of_a_write_that_overlaps_it_is_linearizable() {
        assert_eq!(verdict("1 0 10 put k a -> ok\n2 5 15 get k -> a"), KeyVerdict::Linearizable);
        assert_eq!(verdict("1 0 10 put k a -> ok\n2 5 15 get k -> nil"), KeyVerdict::Linearizable);
    }

    #[test]
    fn a_read_after_a_completed_write_must_see_it() {
        let found = verdict("1 0 10 put k a -> ok\n2 11 15 get k -> nil");
        assert_eq!(found, KeyVerdict::NotLinearizable { prefix: vec![0], stuck: 1 });
    }

    #[test]
    fn values_cannot_go_back_in_time() {
        // Two reads in sequence see b then a, but a was overwritten by b before either began.
        let text = "1 0 10 put k a -> ok\n1 11 20 put k b -> ok\n2 21 30 get k -> b\n2 31 40 get k -> a";
        assert!(matches!(verdict(text), KeyVerdict::NotLinearizable { .. }));
        // With the second put still running, a then b is fine, b then a is not.
        let overlapping =
            "1 0 10 put k a -> ok\n1 11 50 put k b -> ok\n2 21 30 get k -> a\n2 31 40 get k -> b";
        assert_eq!(verdict(overlapping), KeyVerdict::Linearizable);
        let backwards = "1 0 10 put k a -> ok\n1 11 50 put k b -> ok\n2 21 30 get k -> b\n2 31 40 get k -> a";
        assert!(matches!(verdict(backwards), KeyVerdict::NotLinearizable { .. }));
    }

    #[test]
    fn an_indeterminate_write_may_take_effect_late_or_never() {
        // Seen long after the writer gave up: it took effect late.
        assert_eq!(verdict("1 0 inf put k a -> ?\n2 100 110 get k -> a"), KeyVerdict::Linearizable);
        // Never seen: it never took effect.
        assert_eq!(verdict("1 0 inf put k a -> ?\n2 100 110 get k -> nil"), KeyVerdict::Linearizable);
        // But not before its call.
        assert!(matches!(
            verdict("2 0 10 get k -> a\n1 20 inf put k a -> ?"),
            KeyVerdict::NotLinearizable { .. }
        ));
        // And once seen, it stays (no other write could undo it).
        assert!(matches!(
            verdict("1 0 inf put k a -> ?\n2 100 110 get k -> a\n2 120 130 get k -> nil"),
            KeyVerdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn compare_and_set_and_delete_follow_the_register() {
        let text = "\
1 0 10 cas k nil a -> ok
2 11 20 cas k nil b -> fail:a
1 21 30 cas k a c -> ok
2 31 40 del k -> ok
1 41 50 del k -> nf
2 51 60 get k -> nil";
        assert_eq!(verdict(text), KeyVerdict::Linearizable);
        // Two compare-and-sets from missing cannot both succeed.
        let both = "1 0 10 cas k nil a -> ok\n2 0 10 cas k nil b -> ok";
        assert!(matches!(verdict(both), KeyVerdict::NotLinearizable { .. }));
        // A failed compare must report what was there.
        assert!(matches!(
            verdict("1 0 10 put k a -> ok\n2 11 20 cas k b c -> fail:nil"),
            KeyVerdict::NotLinearizable { .. }
        ));
        // An unknown compare-and-set applies only if its comparison held.
        let maybe = "1 0 10 put k a -> ok\n2 11 inf cas k b c -> ?\n1 20 30 get k -> c";
        assert!(matches!(verdict(maybe), KeyVerdict::NotLinearizable { .. }));
    }

    #[test]
    fn the_budget_bounds_the_search() {
        // Many concurrent writes and a read that fits none of them: every order is tried.
        let mut text: String = (0..14).map(|c| format!("{c} 0 100 put k v{c} -> ok\n")).collect();
        text.push_str("99 101 110 get k -> none\n");
        assert_eq!(check_key(&parse(&text).unwrap(), 1000), KeyVerdict::Unknown);
        assert!(matches!(check_key(&parse(&text).unwrap(), 100_000_000), KeyVerdict::NotLinearizable { .. }));
    }
}
