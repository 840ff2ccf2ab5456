//! A linearizability checker for the key-value state as clients see it (docs/PROTOCOL.md §8.1):
//! histories recorded by real client processes while a nemesis kills, pauses, restarts and
//! partitions members, checked against a model of one register per key.
//!
//! Linearizability is local (Herlihy & Wing 1990): a history is linearizable exactly when each
//! key's sub-history is, so the search (`search`, Wing & Gong with Lowe's memoisation, as
//! porcupine and Knossos do it) runs key by key. Operations whose outcome the client could not
//! learn count as possibly applied: their return is open-ended.
//!
//! - `history`: operations and their text form (what client processes print);
//! - `search`: the search of one key;
//! - `workload`: the recording client a `harness-check client` process runs;
//! - `nemesis`: a seeded schedule of faults;
//! - `run`: a whole run on loopback processes (`harness-check run`, `make soak`).

pub mod history;
pub mod nemesis;
pub mod run;
mod search;
pub mod workload;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

pub use history::{Call, Operation, Ret};
pub use search::KeyVerdict;

/// Search steps per key by default: enough for hours-long histories of a few clients, and a
/// bound on a pathological one (which then counts as not checked, never as passed).
pub const BUDGET_DEFAULT: u64 = 50_000_000;

/// The outcome of checking a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history is linearizable.
    Linearizable,
    /// This key's is not: the operations of the longest legal prefix and the one that cannot
    /// follow it, printed in the history's text form.
    NotLinearizable {
        /// The key.
        key: String,
        /// The longest legal order found, one operation a line.
        prefix: Vec<String>,
        /// The operation that could not be linearized after it.
        stuck: String,
    },
    /// The search of this key ran out of steps: neither proven nor refuted.
    Unknown {
        /// The key.
        key: String,
    },
}

impl Verdict {
    /// The one-word form for summaries.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable { .. } => "NOT linearizable",
            Verdict::Unknown { .. } => "unknown (search budget exhausted)",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::Unknown { key } => write!(f, "unknown: the search of key {key} ran out of steps"),
            Verdict::NotLinearizable { key, prefix, stuck } => {
                writeln!(f, "NOT linearizable: key {key}")?;
                let shown = prefix.len().saturating_sub(8);
                writeln!(
                    f,
                    "  longest legal order ({} operations; the last {} shown):",
                    prefix.len(),
                    prefix.len() - shown
                )?;
                for op in &prefix[shown..] {
                    writeln!(f, "    {op}")?;
                }
                write!(f, "  cannot be followed by (nor precede): {stuck}")
            }
        }
    }
}

/// Counts of a history, for summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Operations in all.
    pub ops: usize,
    /// Operations with a known result.
    pub completed: usize,
    /// Writes whose outcome is unknown (counted as possibly applied).
    pub indeterminate: usize,
    /// Reads left out because they got no result (they constrain nothing).
    pub failed_reads: usize,
    /// Keys.
    pub keys: usize,
}

/// Counts the operations of `history`.
pub fn counts(history: &[Operation]) -> Counts {
    let mut keys: Vec<&str> = history.iter().map(|op| op.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    Counts {
        ops: history.len(),
        completed: history.iter().filter(|op| !op.indeterminate()).count(),
        indeterminate: history.iter().filter(|op| op.indeterminate() && op.is_write()).count(),
        failed_reads: history.iter().filter(|op| op.indeterminate() && !op.is_write()).count(),
        keys: keys.len(),
    }
}

/// Checks `history` key by key, each search bounded by `budget` steps; the first key that is not
/// linearizable (or not decided) is the verdict.
pub fn check(history: &[Operation], budget: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<Operation>> = BTreeMap::new();
    for op in history {
        // A read without a result constrains nothing.
        if op.indeterminate() && !op.is_write() {
            continue;
        }
        by_key.entry(op.key.as_str()).or_default().push(op.clone());
    }
    let mut undecided = None;
    for (key, ops) in by_key {
        match search::check_key(&ops, budget) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::NotLinearizable { prefix, stuck } => {
                return Verdict::NotLinearizable {
                    key: key.to_string(),
                    prefix: prefix.iter().map(|&i| ops[i].to_string()).collect(),
                    stuck: ops[stuck].to_string(),
                }
            }
            KeyVerdict::Unknown => undecided = undecided.or(Some(key.to_string())),
        }
    }
    match undecided {
        Some(key) => Verdict::Unknown { key },
        None => Verdict::Linearizable,
    }
}
