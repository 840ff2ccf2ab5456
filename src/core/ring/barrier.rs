//! Read barriers: linearizable reads answered from this member's state once the token has gone
//! round the ring of its view after the read arrived, without ordering a command
//! (docs/PROTOCOL.md §3, read barrier). In the spirit of etcd's ReadIndex, with the ring's
//! rotation in place of a leader's heartbeat round.

/// At most this many reads wait for the token at one member; more are refused as busy (the
/// client's reads are small, but every queue has a maximum).
pub(in crate::core) const BARRIERS_MAX: usize = 65_536;

/// Reads waiting for the token, by the driver's tag.
#[derive(Debug, Default)]
pub(in crate::core) struct ReadBarriers {
    /// Arrived since the token last left this member: waiting for its next visit.
    waiting: Vec<u64>,
    /// Present at the last visit in this view: answered at the next one, when the token has
    /// been round every member since they arrived.
    armed: Vec<u64>,
}

impl ReadBarriers {
    /// Whether another read fits.
    pub(in crate::core) fn has_room(&self) -> bool {
        self.waiting.len() + self.armed.len() < BARRIERS_MAX
    }

    pub(in crate::core) fn push(&mut self, tag: u64) {
        self.waiting.push(tag);
    }

    pub(in crate::core) fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.armed.is_empty()
    }

    /// The token visits this member: the reads armed at its last visit are due now, and the
    /// ones that arrived since are armed for the next.
    pub(in crate::core) fn on_visit(&mut self) -> Vec<u64> {
        let due = std::mem::take(&mut self.armed);
        self.armed = std::mem::take(&mut self.waiting);
        due
    }

    /// A new view was installed: a rotation counts only within one view, so the armed reads
    /// wait again from the new view's first visit (docs/PROTOCOL.md §3, read barrier).
    pub(in crate::core) fn on_install(&mut self) {
        let mut armed = std::mem::take(&mut self.armed);
        armed.append(&mut self.waiting);
        self.waiting = armed;
    }

    /// Every read, to be refused.
    pub(in crate::core) fn take_all(&mut self) -> Vec<u64> {
        let mut all = std::mem::take(&mut self.armed);
        all.append(&mut self.waiting);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_due_at_the_second_visit_after_it_arrived() {
        let mut barriers = ReadBarriers::default();
        barriers.push(1);
        assert!(barriers.on_visit().is_empty(), "the first visit only arms it");
        barriers.push(2);
        assert_eq!(barriers.on_visit(), vec![1]);
        assert_eq!(barriers.on_visit(), vec![2]);
        assert!(barriers.is_empty());
    }

    #[test]
    fn a_new_view_starts_the_armed_reads_again() {
        let mut barriers = ReadBarriers::default();
        barriers.push(1);
        barriers.on_visit();
        barriers.push(2);
        barriers.on_install();
        assert!(barriers.on_visit().is_empty(), "no read is due at the new view's first visit");
        assert_eq!(barriers.on_visit(), vec![1, 2]);
        barriers.push(3);
        assert_eq!(barriers.take_all(), vec![3]);
    }
}
