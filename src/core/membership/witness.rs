//! Witnesses (docs/PROTOCOL.md §5.7): members of the configuration that vote on views and do
//! nothing else. A witness promises and accepts like any process of an electorate, but is never
//! in a ring, holds no log and no state, and never coordinates; so a pair of members with a
//! witness survives the loss of either member.

use super::Phase;
use crate::core::Core;
use crate::ids::{Member, NodeId, Voter};
use crate::time::Time;
use crate::wire::Proposal;

impl Core {
    /// Whether `id` is a witness of the configuration.
    pub(in crate::core) fn is_witness_id(&self, id: NodeId) -> bool {
        self.config.witnesses.contains(&id)
    }

    /// Whether the electorate of the installed view names this witness's process (a witness
    /// never re-incarnates, so its incarnation is its boot).
    pub(in crate::core) fn witness_named(&self, witness: Member) -> bool {
        self.membership.quorum.names(Voter { id: witness.id, boot: witness.incarnation })
    }

    /// A witness learns a view was chosen: it records the view and who votes on its successor,
    /// to report them in its next promise, and waits for the next `Prepare`.
    pub(in crate::core) fn witness_saw_commit(&mut self, now: Time, proposal: Proposal) {
        log::info!(
            "{} witness: view {} members {:?} chosen",
            self.config.me.id,
            proposal.view,
            proposal.ring.iter().map(|m| m.id.0).collect::<Vec<_>>()
        );
        self.membership.last_primary = proposal.view;
        self.membership.last_primary_members = proposal.ring;
        self.membership.quorum = proposal.quorum;
        self.membership.accepted = None;
        self.membership.coordination = None;
        self.membership.change = None;
        self.membership.phase = Phase::Joining { next_join: now + self.config.token_timeout };
        // Coordinators dial the witness when they need its vote; it keeps no link of its own,
        // or members would close and it would redial them forever.
        self.links.unwant_all_except(&[], now);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::CoreConfig;
    use crate::core::{Core, Input, Output};
    use crate::ids::{Ballot, Member, NodeId, ViewId, Voter};
    use crate::time::Time;
    use crate::wire::{PeerFrame, Proposal, Quorum};

    fn witness() -> Core {
        let universe = vec![NodeId(1), NodeId(2), NodeId(3)];
        let mut config = CoreConfig::new(Member { id: NodeId(3), incarnation: 5 }, universe);
        config.witnesses = vec![NodeId(3)];
        Core::new(config)
    }

    fn up(core: &mut Core, id: u16, out: &mut Vec<Output>) {
        core.step(Time::ZERO, Input::LinkUp { peer: Member { id: NodeId(id), incarnation: 1 } }, out);
    }

    #[test]
    fn a_witness_votes_but_stays_out_of_the_ring_and_never_coordinates() {
        // §5.7: it promises with its process, accepts without fetching, records the view.
        let mut w = witness();
        let mut out = Vec::new();
        up(&mut w, 1, &mut out);
        up(&mut w, 2, &mut out);
        out.clear();
        let ballot = Ballot { round: 1, node: NodeId(1) };
        let prepare = PeerFrame::Prepare { ballot, last_primary: ViewId(0) };
        w.step(Time::ZERO, Input::Frame { from: NodeId(1), frame: prepare }, &mut out);
        let promise = out.iter().find_map(|o| match o {
            Output::Send { frame: PeerFrame::Promise(p), .. } => Some((**p).clone()),
            _ => None,
        });
        let promise = promise.expect("the witness promised");
        assert_eq!((promise.member.id, promise.boot), (NodeId(3), 5));
        out.clear();
        let members =
            vec![Member { id: NodeId(1), incarnation: 1 }, Member { id: NodeId(2), incarnation: 1 }];
        let proposal = Proposal {
            view: ViewId(1),
            prev: ViewId(0),
            cut: 0,
            ring: members,
            donor: NodeId(1),
            quorum: Quorum {
                electorate: vec![Voter { id: NodeId(3), boot: 5 }],
                expected: 3,
                min_replicas: 1,
            },
        };
        let accept = PeerFrame::Accept { ballot, proposal: proposal.clone() };
        w.step(Time::ZERO, Input::Frame { from: NodeId(1), frame: accept }, &mut out);
        assert!(
            out.iter().any(|o| matches!(o, Output::Send { frame: PeerFrame::Accepted { .. }, .. })),
            "the witness accepts at once: {out:?}"
        );
        out.clear();
        let commit = PeerFrame::Commit { ballot, proposal };
        w.step(Time::ZERO, Input::Frame { from: NodeId(1), frame: commit }, &mut out);
        assert!(!w.is_primary());
        assert_eq!(w.last_primary(), ViewId(1));
        assert_eq!(w.me().incarnation, 5, "a witness is not excluded by a view it is not in");
        // Long silence: a data member would coordinate; the witness asks nothing of anyone.
        out.clear();
        let later = Time::ZERO + std::time::Duration::from_secs(60);
        w.step(later, Input::Tick, &mut out);
        assert!(!out.iter().any(|o| matches!(o, Output::Send { frame: PeerFrame::Prepare { .. }, .. })));
    }
}
