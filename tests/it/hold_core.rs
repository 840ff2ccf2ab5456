//! Short stories about submissions during a view change (docs/PROTOCOL.md §8.1), driving real
//! `Core`s through a tiny in-test network where a crashed member's links close and its dials are
//! refused, as the kernel does for a killed process.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use harness::wire::PeerFrame;
use harness::{Core, CoreConfig, Input, Member, NodeId, Output, RejectReason, Time};

const HOP: Duration = Duration::from_micros(100);

/// A ring of cores, some of which may have crashed.
struct Cluster {
    cores: Vec<Core>,
    dead: BTreeSet<usize>,
    wire: VecDeque<(Time, NodeId, NodeId, PeerFrame)>,
    now: Time,
    /// (core, tag, at) of every commit of a tagged submission.
    commits: Vec<(usize, u64, Time)>,
    /// (core, tag, reason, at) of every refusal.
    rejects: Vec<(usize, u64, RejectReason, Time)>,
}

impl Cluster {
    fn new(n: u16) -> Cluster {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let cores = ids
            .iter()
            .map(|&id| Core::new(CoreConfig::new(Member { id, incarnation: 1 }, ids.clone())))
            .collect();
        let mut cluster = Cluster {
            cores,
            dead: BTreeSet::new(),
            wire: VecDeque::new(),
            now: Time::ZERO,
            commits: Vec::new(),
            rejects: Vec::new(),
        };
        for i in 0..usize::from(n) {
            cluster.step(i, Input::Tick);
        }
        cluster.run_for(Duration::from_millis(50));
        assert!(cluster.cores.iter().all(Core::is_primary), "the first view forms");
        cluster
    }

    fn step(&mut self, i: usize, input: Input) {
        if self.dead.contains(&i) {
            return;
        }
        let mut out = Vec::new();
        self.cores[i].step(self.now, input, &mut out);
        let me = NodeId(i as u16 + 1);
        for o in out {
            match o {
                Output::Send { to, frame } => self.wire.push_back((self.now + HOP, me, to, frame)),
                Output::Connect { peer } => {
                    let j = usize::from(peer.0) - 1;
                    if self.dead.contains(&j) {
                        self.step(i, Input::LinkDown { peer });
                    } else {
                        let (a, b) = (self.cores[i].me(), self.cores[j].me());
                        self.step(i, Input::LinkUp { peer: b });
                        self.step(j, Input::LinkUp { peer: a });
                    }
                }
                Output::Commit(c) => {
                    if let Some(tag) = c.tag {
                        self.commits.push((i, tag, self.now));
                    }
                }
                Output::Rejected { tag, reason } => self.rejects.push((i, tag, reason, self.now)),
                _ => {}
            }
        }
    }

    /// Kills member `i`: the others' links to it close, its frames in flight are lost.
    fn crash(&mut self, i: usize) {
        self.dead.insert(i);
        let peer = NodeId(i as u16 + 1);
        self.wire.retain(|(_, from, to, _)| *from != peer && *to != peer);
        for j in 0..self.cores.len() {
            self.step(j, Input::LinkDown { peer });
        }
    }

    /// Delivers frames and fires deadlines until `span` has passed (bounded by a step count).
    fn run_for(&mut self, span: Duration) {
        let until = self.now + span;
        for _ in 0..5_000_000 {
            let frame_at = self.wire.front().map_or(Time::NEVER, |f| f.0);
            let (i, deadline) = (0..self.cores.len())
                .filter(|i| !self.dead.contains(i))
                .map(|i| (i, self.cores[i].next_deadline()))
                .min_by_key(|&(i, t)| (t, i))
                .expect("a live core");
            let next = frame_at.min(deadline);
            if next > until {
                self.now = until;
                return;
            }
            self.now = next.max(self.now);
            if deadline < frame_at {
                self.step(i, Input::Tick);
            } else {
                let (_, from, to, frame) = self.wire.pop_front().expect("peeked");
                self.step(usize::from(to.0) - 1, Input::Frame { from, frame });
            }
        }
        panic!("the cluster did not go quiet within the step bound");
    }

    fn submit(&mut self, i: usize, tag: u64) {
        self.step(i, Input::Submit { tag, payload: format!("m{tag}").into_bytes().into() });
    }
}

#[test]
fn a_write_sent_during_a_view_change_is_held_and_commits_in_the_next_view() {
    // §8.1: every member of the view is in the same change, so the member holds the write
    // instead of refusing it; the next view's first token stamps it.
    let mut cluster = Cluster::new(3);
    cluster.crash(2);
    let member = 0;
    // In a ring of three every member is the crashed one's neighbour: the change has begun.
    assert!(!cluster.cores[member].is_primary());
    assert!(cluster.cores[member].serves_submissions(cluster.now), "held, not refused");
    cluster.submit(member, 7);
    let sent = cluster.now;
    cluster.run_for(Duration::from_millis(50));
    assert!(cluster.cores[member].is_primary(), "the next view installed");
    assert!(cluster.rejects.is_empty(), "{:?}", cluster.rejects);
    let committed = cluster.commits.iter().find(|c| c.1 == 7).expect("the held write committed");
    assert!(
        committed.2.since(sent) < Duration::from_millis(10),
        "committed {:?} after it was sent",
        committed.2.since(sent)
    );
}

#[test]
fn without_a_quorum_a_held_write_is_refused_after_the_view_change_timeout() {
    // §8.1: the hold is bounded by view_change_timeout (2 x token_timeout); the write was never
    // stamped, so it is refused as certainly not ordered, and new ones are refused at once.
    let mut cluster = Cluster::new(3);
    let timeout = CoreConfig::new(Member { id: NodeId(1), incarnation: 1 }, vec![NodeId(1)]).token_timeout;
    cluster.crash(1);
    cluster.crash(2);
    let member = 0;
    let changed_at = cluster.now;
    assert!(!cluster.cores[member].is_primary());
    assert!(cluster.cores[member].serves_submissions(cluster.now));
    cluster.submit(member, 9);
    cluster.run_for(timeout * 2 + Duration::from_millis(100));
    let (_, tag, reason, at) = *cluster.rejects.first().expect("the held write was answered");
    assert_eq!((tag, reason), (9, RejectReason::ViewChange));
    assert!(at.since(changed_at) >= timeout * 2, "refused after {:?}", at.since(changed_at));
    assert!(cluster.commits.is_empty());
    assert!(!cluster.cores[member].serves_submissions(cluster.now), "new writes are refused at once");
}
