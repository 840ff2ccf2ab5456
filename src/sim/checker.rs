//! Checks the guarantees of DESIGN.md on every delivery, commit and view change of a run, and
//! once more when the run has settled. The first violation ends the run with its guarantee.
//!
//! Each submission's payload starts with its 8-byte tag, so a delivery names the submission it
//! claims to be and "delivered but never sent" is detectable.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use byteorder::{BigEndian, ByteOrder};

use super::history::History;
use crate::core::{Commit, CoreStatus, Delivery, RejectReason, ViewInfo};
use crate::ids::{Member, MsgId, NodeId, Seq, ViewId};
use crate::replication::agreement::is_vote_from;
use crate::replication::{Checkpoint, Command, DigestLog};

/// The promises of `docs/DESIGN.md §2`, by number, and the core's own assertions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Guarantee {
    /// 1: any two members deliver their common messages in one order.
    AgreedOrder,
    /// 2: a message delivered as safe is held by every member of the view that did not fail.
    SafeDelivery,
    /// 3: members moving together between views delivered the same messages in the first.
    VirtualSynchrony,
    /// 4: no duplicate, no message never sent, self-delivery.
    Integrity,
    /// 5: at most one primary view at a time; commits only in a primary view.
    PrimaryComponent,
    /// 6: one committed sequence; every checkpoint is the state after a prefix of it.
    LinearHistory,
    /// 7: a stable, connected quorum forms a view and commits what is queued; no starvation.
    Liveness,
    /// 8 (docs/PROTOCOL.md §5.4): every acknowledged commit is held by at least `W` members of
    /// the configuration when it is acknowledged.
    WriteQuorum,
    /// Not a guarantee: an `assert!` inside the core failed (a broken invariant is a finding
    /// like any other, and the seed replays it).
    CoreAssertion,
}

impl Guarantee {
    /// The guarantee's number in `docs/DESIGN.md §2` (8: the write quorum of docs/PROTOCOL.md
    /// §5.4), or 0 for a core assertion.
    pub fn number(self) -> u8 {
        match self {
            Guarantee::AgreedOrder => 1,
            Guarantee::SafeDelivery => 2,
            Guarantee::VirtualSynchrony => 3,
            Guarantee::Integrity => 4,
            Guarantee::PrimaryComponent => 5,
            Guarantee::LinearHistory => 6,
            Guarantee::Liveness => 7,
            Guarantee::WriteQuorum => 8,
            Guarantee::CoreAssertion => 0,
        }
    }

    /// The guarantee's name.
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::AgreedOrder => "agreed total order",
            Guarantee::SafeDelivery => "safe delivery",
            Guarantee::VirtualSynchrony => "virtual synchrony",
            Guarantee::Integrity => "integrity",
            Guarantee::PrimaryComponent => "primary component",
            Guarantee::LinearHistory => "linear history",
            Guarantee::Liveness => "liveness",
            Guarantee::WriteQuorum => "write quorum",
            Guarantee::CoreAssertion => "core assertion",
        }
    }
}

/// A broken guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which promise broke.
    pub guarantee: Guarantee,
    /// What exactly went wrong.
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(guarantee: Guarantee, detail: String) -> Violation {
        Violation { guarantee, detail }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.guarantee {
            Guarantee::CoreAssertion => write!(f, "core assertion failed: {}", self.detail),
            g => write!(f, "guarantee {} ({}) violated: {}", g.number(), g.name(), self.detail),
        }
    }
}

/// What the checker remembers about one incarnation.
#[derive(Debug, Default)]
struct Incarnation {
    last_key: Option<(ViewId, Seq)>,
    delivered: HashSet<MsgId>,
    last_commit: Option<Seq>,
    view: Option<ViewId>,
    views: Vec<ViewId>,
    /// Deliveries in the current view: count and digest (for virtual synchrony).
    view_count: u64,
    view_digest: u64,
}

/// The submissions of a run and the checks over everything the cores output.
#[derive(Debug, Default)]
pub struct Checker {
    submitted: HashMap<u64, NodeId>,
    /// Submissions refused as certainly not ordered, and every tag delivered anywhere.
    refused: HashSet<u64>,
    delivered_tags: HashSet<u64>,
    acked: HashSet<u64>,
    slot: HashMap<(ViewId, Seq), (MsgId, u16)>,
    key_of: HashMap<(MsgId, u16), (ViewId, Seq)>,
    committed: HashMap<Seq, MsgId>,
    committed_at: HashMap<MsgId, Seq>,
    max_commit_in_view: BTreeMap<ViewId, Seq>,
    primaries: BTreeMap<ViewId, Vec<NodeId>>,
    transitions: HashMap<(ViewId, ViewId), (u64, u64)>,
    incarnations: BTreeMap<Member, Incarnation>,
    /// Agreed deliveries seen, over all members.
    pub deliveries: u64,
    /// Commits seen, over all members.
    pub commits: u64,
    history: History,
    /// Members that held each message (delivered or committed it), for the write quorum.
    held: HashMap<(Seq, MsgId), BTreeSet<NodeId>>,
    /// The write quorum `W`, and the witnesses, which never hold anything.
    min_replicas: usize,
    witnesses: BTreeSet<NodeId>,
    /// The highest seq acknowledged to a submitter so far: every acknowledged write is at or
    /// below it, since the history is one sequence (guarantee 6).
    acked_upto: Seq,
    /// Open reads: what each must see, `acked_upto` when it started.
    reads: BTreeMap<u64, Seq>,
    /// Reads answered through the read barrier.
    pub reads_served: u64,
    /// Reads refused.
    pub reads_refused: u64,
}

/// The tag of a submission: a DVM command's client id, or what a raw payload starts with.
pub fn tag_of(payload: &[u8]) -> Option<u64> {
    if let Ok(command) = Command::decode(payload) {
        return Some(command.session.client_id);
    }
    (payload.len() >= 8).then(|| BigEndian::read_u64(&payload[..8]))
}

impl Checker {
    /// A checker of runs whose write quorum is `min_replicas`, with these witnesses.
    pub fn with_write_quorum(min_replicas: usize, witnesses: &[NodeId]) -> Checker {
        Checker { min_replicas, witnesses: witnesses.iter().copied().collect(), ..Checker::default() }
    }

    /// Checks an acknowledgement (guarantee 8, the write quorum, docs/PROTOCOL.md §5.4): at least
    /// `W` members of the configuration hold the message: `holders` hold it now, and members
    /// that delivered or committed it before count even if they crashed since (they held it when
    /// they said so, as a follower's acknowledgement counts in Raft).
    pub fn on_ack(&mut self, at: Member, commit: &Commit, holders: &[NodeId]) -> Result<(), Violation> {
        self.acked_upto = self.acked_upto.max(commit.seq);
        let mut ids = self.held.remove(&(commit.seq, commit.id)).unwrap_or_default();
        ids.extend(holders.iter().copied());
        ids.retain(|id| !self.witnesses.contains(id));
        if ids.len() < self.min_replicas {
            return Err(Violation::new(
                Guarantee::WriteQuorum,
                format!(
                    "{at} acknowledged seq {} ({}) held by {:?} only, fewer than W = {}",
                    commit.seq,
                    commit.id,
                    ids.iter().map(|id| id.0).collect::<Vec<_>>(),
                    self.min_replicas
                ),
            ));
        }
        Ok(())
    }

    /// A linearizable read starts: it must see every write acknowledged so far.
    pub fn on_read(&mut self, tag: u64) {
        self.reads.insert(tag, self.acked_upto);
    }

    /// A read's barrier passed at `at`, which answers it from its state up to `upto`
    /// (docs/PROTOCOL.md §3, read barrier): that state must include every write acknowledged
    /// before the read started, or the read returns an older value (guarantee 6).
    pub fn on_read_ready(&mut self, at: Member, tag: u64, upto: Seq) -> Result<(), Violation> {
        let Some(needed) = self.reads.remove(&tag) else {
            return Err(Violation::new(Guarantee::Integrity, format!("{at} answered read {tag} twice")));
        };
        if upto < needed {
            return Err(Violation::new(
                Guarantee::LinearHistory,
                format!("{at} answered read {tag} from commits up to {upto}, but seq {needed} was acknowledged before it started"),
            ));
        }
        self.reads_served += 1;
        Ok(())
    }

    /// A read was refused (its member left the primary view, or a view change lasted too long).
    pub fn on_read_refused(&mut self, tag: u64) {
        if self.reads.remove(&tag).is_some() {
            self.reads_refused += 1;
        }
    }

    fn record_held(&mut self, at: Member, seq: Seq, id: MsgId) {
        if self.min_replicas > 1 {
            self.held.entry((seq, id)).or_default().insert(at.id);
        }
    }

    /// Every member is down at once. The history goes on after the furthest durable state
    /// (`durable`); without durability it ends here and the next first view starts a new one.
    /// Views start over either way, so the slot checks do. Returns the seqs committed and lost.
    pub fn on_total_loss(&mut self, durable: Option<Seq>) -> Seq {
        let keep = durable.unwrap_or(0);
        let lost = self.history.upto().saturating_sub(keep);
        self.history.on_total_loss(durable);
        self.slot.clear();
        self.key_of.clear();
        self.committed.retain(|&seq, _| seq <= keep);
        self.committed_at.retain(|_, seq| *seq <= keep);
        self.max_commit_in_view.clear();
        self.primaries.clear();
        self.transitions.clear();
        self.held.clear();
        // Writes acknowledged after the durable state are lost with it (docs/PROTOCOL.md §5.4,
        // durability): a read can see only what the history still holds.
        self.acked_upto = self.acked_upto.min(keep);
        for needed in self.reads.values_mut() {
            *needed = (*needed).min(keep);
        }
        lost
    }

    /// Checks a checkpoint a member took or was given (guarantee 6).
    pub fn on_checkpoint(&mut self, at: Member, checkpoint: &Checkpoint) -> Result<(), Violation> {
        self.history.check_checkpoint(at, checkpoint)
    }

    /// Checks a checkpoint a member installed from a donor: its commits go on after it. A member
    /// that learned the log after one catch-up and is then given a newer checkpoint skips ahead
    /// (docs/PROTOCOL.md §5.3); one given an older state than it committed would lose history.
    pub fn on_restore(&mut self, at: Member, checkpoint: &Checkpoint) -> Result<(), Violation> {
        self.history.check_checkpoint(at, checkpoint)?;
        let inc = self.incarnations.entry(at).or_default();
        if inc.last_commit.is_some_and(|last| last > checkpoint.seq) {
            return Err(Violation::new(
                Guarantee::LinearHistory,
                format!("{at} restored checkpoint {} after committing {:?}", checkpoint.seq, inc.last_commit),
            ));
        }
        inc.last_commit = inc.last_commit.map(|_| checkpoint.seq);
        Ok(())
    }

    /// Checkpoints checked so far.
    pub fn checkpoints(&self) -> u64 {
        self.history.checkpoints
    }

    /// Records a submission of `tag` at `origin`.
    pub fn on_submit(&mut self, tag: u64, origin: NodeId) {
        self.submitted.insert(tag, origin);
    }

    /// Checks a refusal: a submission refused as never ordered must never be delivered
    /// (guarantee 4: a client that retries it would see it twice). `OutcomeUnknown` is exempt.
    pub fn on_reject(&mut self, at: Member, tag: u64, reason: RejectReason) -> Result<(), Violation> {
        if reason == RejectReason::OutcomeUnknown {
            return Ok(());
        }
        if self.delivered_tags.contains(&tag) {
            return Err(Violation::new(
                Guarantee::Integrity,
                format!("{at} refused tag {tag} ({reason:?}), which was ordered"),
            ));
        }
        self.refused.insert(tag);
        Ok(())
    }

    /// Checks one agreed delivery (guarantees 1 and 4).
    pub fn on_deliver(&mut self, at: Member, delivery: &Delivery) -> Result<(), Violation> {
        self.deliveries += 1;
        let m = &delivery.message;
        self.history.on_deliver(m);
        self.record_held(at, m.seq, m.id);
        let key = (delivery.view, m.seq);
        // A member's own vote (§7.1) is no client submission: it has no tag to account for, and
        // the slot and duplicate checks below still cover it.
        if !is_vote_from(&m.payload, m.id.origin) {
            self.check_submission(at, m)?;
        }
        match self.slot.insert(key, (m.id, m.attempt)) {
            Some(other) if other != (m.id, m.attempt) => {
                return Err(Violation::new(
                    Guarantee::AgreedOrder,
                    format!(
                        "{at} delivered {} at {}/{}, where {} was delivered",
                        m.id, key.0, key.1, other.0
                    ),
                ));
            }
            _ => {}
        }
        if let Some(&first) = self.key_of.get(&(m.id, m.attempt)) {
            if first != key {
                return Err(Violation::new(
                    Guarantee::AgreedOrder,
                    format!(
                        "{at} delivered {} at {}/{}, elsewhere at {}/{}",
                        m.id, key.0, key.1, first.0, first.1
                    ),
                ));
            }
        } else {
            self.key_of.insert((m.id, m.attempt), key);
        }
        let inc = self.incarnations.entry(at).or_default();
        if inc.last_key.is_some_and(|last| key <= last) {
            return Err(Violation::new(
                Guarantee::AgreedOrder,
                format!("{at} delivered {}/{} after {:?}: out of order", key.0, key.1, inc.last_key),
            ));
        }
        inc.last_key = Some(key);
        if !inc.delivered.insert(m.id) {
            return Err(Violation::new(Guarantee::Integrity, format!("{at} delivered {} twice", m.id)));
        }
        inc.view_count += 1;
        inc.view_digest = DigestLog::extend(inc.view_digest, m.seq, m.id, &m.payload);
        Ok(())
    }

    /// Checks that a delivered message is a submission that was sent and not refused (4).
    fn check_submission(&mut self, at: Member, m: &crate::wire::Message) -> Result<(), Violation> {
        let Some(tag) = tag_of(&m.payload) else {
            return Err(Violation::new(
                Guarantee::Integrity,
                format!("{at} delivered {} whose payload is no submission", m.id),
            ));
        };
        if self.refused.contains(&tag) {
            return Err(Violation::new(
                Guarantee::Integrity,
                format!("{at} delivered {} (tag {tag}), which was refused", m.id),
            ));
        }
        self.delivered_tags.insert(tag);
        match self.submitted.get(&tag) {
            Some(&origin) if origin == m.id.origin => Ok(()),
            _ => Err(Violation::new(
                Guarantee::Integrity,
                format!("{at} delivered {} (tag {tag}) that was never sent", m.id),
            )),
        }
    }

    /// Checks one commit (guarantees 4 and 6).
    pub fn on_commit(&mut self, at: Member, view: ViewId, commit: &Commit) -> Result<(), Violation> {
        self.commits += 1;
        if commit.tag.is_none() {
            self.record_held(at, commit.seq, commit.id);
        }
        match self.committed.get(&commit.seq) {
            Some(&id) if id != commit.id => {
                return Err(Violation::new(
                    Guarantee::LinearHistory,
                    format!("{at} committed {} at seq {}, where {} was committed", commit.id, commit.seq, id),
                ));
            }
            Some(_) => {}
            None => {
                if let Some(&other) = self.committed_at.get(&commit.id) {
                    return Err(Violation::new(
                        Guarantee::Integrity,
                        format!("{} committed twice, at seq {other} and {}", commit.id, commit.seq),
                    ));
                }
                self.committed.insert(commit.seq, commit.id);
                self.committed_at.insert(commit.id, commit.seq);
                self.history.on_commit(commit.seq, commit.id);
            }
        }
        let inc = self.incarnations.entry(at).or_default();
        if let Some(last) = inc.last_commit {
            if commit.seq != last + 1 {
                return Err(Violation::new(
                    Guarantee::LinearHistory,
                    format!("{at} committed seq {} after {last}: a gap", commit.seq),
                ));
            }
        }
        inc.last_commit = Some(commit.seq);
        let max = self.max_commit_in_view.entry(view).or_default();
        *max = (*max).max(commit.seq);
        if let Some(tag) = commit.tag {
            if commit.id.origin != at.id {
                return Err(Violation::new(
                    Guarantee::Integrity,
                    format!("{at} got the acknowledgement of {}", commit.id),
                ));
            }
            if !self.acked.insert(tag) {
                return Err(Violation::new(
                    Guarantee::Integrity,
                    format!("{at} acknowledged tag {tag} twice"),
                ));
            }
        }
        Ok(())
    }

    /// Checks one installed view (guarantees 3 and 5).
    pub fn on_view(&mut self, at: Member, view: &ViewInfo) -> Result<(), Violation> {
        let inc = self.incarnations.entry(at).or_default();
        if inc.view.is_some_and(|v| v >= view.view) {
            return Err(Violation::new(
                Guarantee::PrimaryComponent,
                format!("{at} installed {} after {:?}", view.view, inc.view),
            ));
        }
        if let Some(previous) = inc.view {
            let moved = (inc.view_count, inc.view_digest);
            match self.transitions.insert((previous, view.view), moved) {
                Some(other) if other != moved => {
                    return Err(Violation::new(
                        Guarantee::VirtualSynchrony,
                        format!(
                            "{at} moved {previous}->{} after {} deliveries, another member after {}",
                            view.view, moved.0, other.0
                        ),
                    ));
                }
                _ => {}
            }
        }
        inc.view = Some(view.view);
        inc.views.push(view.view);
        inc.view_count = 0;
        inc.view_digest = 0;
        if view.primary {
            let ids: Vec<NodeId> = view.ring.iter().map(|m| m.id).collect();
            match self.primaries.get(&view.view) {
                Some(existing) if *existing != ids => {
                    return Err(Violation::new(
                        Guarantee::PrimaryComponent,
                        format!("two primary views {}: {:?} and {:?}", view.view, existing, ids),
                    ));
                }
                Some(_) => {}
                None => {
                    self.primaries.insert(view.view, ids);
                }
            }
        }
        Ok(())
    }

    /// The checks of a settled run: `live` are the members alive at the end with their status,
    /// `owned` the tags submitted to those members (guarantees 2, 6 and 7).
    pub fn at_end(&self, live: &[CoreStatus], owned: &[(Member, u64)]) -> Result<(), Violation> {
        let Some(first) = live.first() else { return Ok(()) };
        for status in live {
            if !status.view.primary || status.view.view != first.view.view {
                return Err(Violation::new(
                    Guarantee::Liveness,
                    format!(
                        "{} settled in {} (primary {}), {} in {}",
                        status.member, status.view.view, status.view.primary, first.member, first.view.view
                    ),
                ));
            }
            if status.queued > 0 {
                return Err(Violation::new(
                    Guarantee::Liveness,
                    format!("{} still has {} queued", status.member, status.queued),
                ));
            }
            if status.committed_upto != first.committed_upto {
                return Err(Violation::new(
                    Guarantee::Liveness,
                    format!(
                        "{} committed up to {}, {} up to {}",
                        status.member, status.committed_upto, first.member, first.committed_upto
                    ),
                ));
            }
        }
        // Only states that applied the whole committed prefix are comparable: the hot members',
        // and the warm ones' once the run makes them catch up from their checkpoints.
        let applied: Vec<&CoreStatus> = live.iter().filter(|s| s.applied_upto == s.committed_upto).collect();
        for status in &applied {
            if status.state_digest != applied[0].state_digest {
                return Err(Violation::new(
                    Guarantee::LinearHistory,
                    format!(
                        "{} and {} applied up to {} with different state digests",
                        status.member, applied[0].member, status.committed_upto
                    ),
                ));
            }
        }
        for status in live {
            if let Some(inc) = self.incarnations.get(&status.member) {
                for view in &inc.views {
                    if let Some(&max) = self.max_commit_in_view.get(view) {
                        if status.committed_upto < max {
                            return Err(Violation::new(
                                Guarantee::SafeDelivery,
                                format!(
                                    "seq {max} was committed in {view}, but {} of that view has only {}",
                                    status.member, status.committed_upto
                                ),
                            ));
                        }
                    }
                }
            }
        }
        for &(member, tag) in owned {
            if !self.acked.contains(&tag) {
                return Err(Violation::new(
                    Guarantee::Liveness,
                    format!("submission {tag} to {member} was never committed"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Message;

    fn member(id: u16) -> Member {
        Member { id: NodeId(id), incarnation: 1 }
    }

    fn delivery(seq: Seq, origin: u16, counter: u64, tag: u64) -> Delivery {
        let mut payload = vec![0u8; 8];
        BigEndian::write_u64(&mut payload, tag);
        Delivery {
            view: ViewId(1),
            message: Message {
                seq,
                id: MsgId { origin: NodeId(origin), incarnation: 1, counter },
                attempt: 0,
                payload: payload.into(),
            },
        }
    }

    #[test]
    fn two_messages_at_one_seq_break_agreed_order() {
        let mut c = Checker::default();
        c.on_submit(1, NodeId(1));
        c.on_submit(2, NodeId(2));
        c.on_deliver(member(1), &delivery(1, 1, 1, 1)).unwrap();
        let v = c.on_deliver(member(2), &delivery(1, 2, 1, 2)).unwrap_err();
        assert_eq!(v.guarantee, Guarantee::AgreedOrder);
    }

    #[test]
    fn a_duplicate_or_forged_delivery_breaks_integrity() {
        let mut c = Checker::default();
        c.on_submit(1, NodeId(1));
        let forged = c.on_deliver(member(1), &delivery(1, 1, 1, 99)).unwrap_err();
        assert_eq!(forged.guarantee, Guarantee::Integrity);
        let mut c = Checker::default();
        c.on_submit(1, NodeId(1));
        c.on_deliver(member(1), &delivery(1, 1, 1, 1)).unwrap();
        let mut again = delivery(2, 1, 1, 1);
        again.message.attempt = 1;
        assert_eq!(c.on_deliver(member(1), &again).unwrap_err().guarantee, Guarantee::Integrity);
    }

    #[test]
    fn a_refused_submission_must_not_be_ordered() {
        let mut c = Checker::default();
        c.on_submit(1, NodeId(1));
        c.on_submit(2, NodeId(1));
        c.on_reject(member(1), 1, RejectReason::Excluded).unwrap();
        assert_eq!(
            c.on_deliver(member(2), &delivery(1, 1, 1, 1)).unwrap_err().guarantee,
            Guarantee::Integrity
        );
        // Refused after it was ordered: just as wrong. An unknown outcome may go either way.
        let mut c = Checker::default();
        c.on_submit(2, NodeId(1));
        c.on_deliver(member(2), &delivery(1, 1, 2, 2)).unwrap();
        c.on_reject(member(1), 2, RejectReason::OutcomeUnknown).unwrap();
        assert_eq!(
            c.on_reject(member(1), 2, RejectReason::Excluded).unwrap_err().guarantee,
            Guarantee::Integrity
        );
    }

    #[test]
    fn a_gap_in_commits_breaks_linear_history() {
        let mut c = Checker::default();
        let commit = |seq, counter| Commit {
            seq,
            id: MsgId { origin: NodeId(1), incarnation: 1, counter },
            tag: None,
            result: Vec::new(),
        };
        c.on_commit(member(1), ViewId(1), &commit(1, 1)).unwrap();
        assert_eq!(
            c.on_commit(member(1), ViewId(1), &commit(3, 3)).unwrap_err().guarantee,
            Guarantee::LinearHistory
        );
    }
}
