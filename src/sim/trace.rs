//! The event trace of a run: a hash over every event (same seed, same hash), the last events for a
//! violation report, and the full text with `--trace`.

use std::collections::VecDeque;

use crate::hash::fnv1a;
use crate::ids::NodeId;
use crate::time::Time;

/// How many recent events a violation report shows.
pub const RECENT_MAX: usize = 40;

#[derive(Clone, Debug)]
struct Line {
    time: Time,
    node: NodeId,
    kind: &'static str,
    a: u64,
    b: u64,
}

impl Line {
    fn render(&self) -> String {
        format!("{} {} {} {} {}", self.time, self.node, self.kind, self.a, self.b)
    }
}

/// Records events cheaply; renders text only when asked.
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    recent: VecDeque<Line>,
    print: bool,
    /// Events recorded.
    pub events: u64,
}

impl Trace {
    /// A trace that prints every event to stdout when `print` is set.
    pub fn new(print: bool) -> Trace {
        Trace { hash: 0xcbf2_9ce4_8422_2325, recent: VecDeque::with_capacity(RECENT_MAX), print, events: 0 }
    }

    /// Records one event: at `time`, at `node`, of `kind`, with two numbers that identify it.
    pub fn record(&mut self, time: Time, node: NodeId, kind: &'static str, a: u64, b: u64) {
        self.events += 1;
        let mut bytes = [0u8; 26];
        bytes[0..8].copy_from_slice(&time.0.to_be_bytes());
        bytes[8..10].copy_from_slice(&node.0.to_be_bytes());
        bytes[10..18].copy_from_slice(&a.to_be_bytes());
        bytes[18..26].copy_from_slice(&b.to_be_bytes());
        self.hash = fnv1a(fnv1a(self.hash, kind.as_bytes()), &bytes);
        let line = Line { time, node, kind, a, b };
        if self.print {
            println!("{}", line.render());
        }
        if self.recent.len() == RECENT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(line);
    }

    /// The hash over every event so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The last events, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.recent.iter().map(Line::render).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_events_give_equal_hashes_and_order_matters() {
        let mut a = Trace::new(false);
        let mut b = Trace::new(false);
        let mut c = Trace::new(false);
        a.record(Time(1), NodeId(1), "x", 1, 2);
        a.record(Time(2), NodeId(2), "y", 3, 4);
        b.record(Time(1), NodeId(1), "x", 1, 2);
        b.record(Time(2), NodeId(2), "y", 3, 4);
        c.record(Time(2), NodeId(2), "y", 3, 4);
        c.record(Time(1), NodeId(1), "x", 1, 2);
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.recent().len(), 2);
    }
}
