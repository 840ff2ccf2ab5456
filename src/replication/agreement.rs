//! Distributed agreement: an operation that takes effect only if every member of the view votes
//! yes; the decision is a function of the ordered history, so every member reaches it at the same
//! point of the order (docs/PROTOCOL.md §7.1; guarantees 1 and 6 of docs/DESIGN.md §2).
//!
//! The one agreed operation built in is loading a plug-in: `Propose { name, view, voters }` is
//! ordered like any command; every voter, when it commits the proposal, asks its own check
//! ("can I load `name`?") and submits `Vote { proposal, voter, view, yes }` as an ordered command.
//! The state decides when a vote is applied: *commit* once every voter voted yes in the proposal's
//! view; *abort* at the first no, or at the first vote cast in another view (the view changed
//! before every vote arrived: at each primary view every member votes in the new view on every
//! open proposal of an older one, so a proposal whose voter failed is aborted, not left open).
//! Whatever is decided first in the order wins, and later votes on it change nothing.
//!
//! Decisions are written to the key `harness/agreement/<proposal seq>` (`pending`, `committed`,
//! `aborted: ...`), so clients read, wait for and watch them like any key; a commit also records
//! the plug-in as loaded on every voter in the plug-in registry, mirrored to the key
//! `harness/plugins/<name>`, at the decision's revision.

use std::collections::BTreeSet;

use imbl::OrdMap;

use super::command::{Action, ActionKind, Command};
use crate::ids::{NodeId, Seq, ViewId};

/// Most proposals open at once; a proposal beyond it is aborted at once.
pub const PROPOSALS_OPEN_MAX: usize = 1024;
/// Most voters of one proposal (every member of a view).
pub const VOTERS_MAX: usize = 4096;
/// The key prefix decisions are written under.
pub const AGREEMENT_PREFIX: &str = "harness/agreement/";
/// A decision key's value while votes are outstanding.
pub const PENDING: &str = "pending";
/// A decision key's value once every voter voted yes.
pub const COMMITTED: &str = "committed";

/// The key the decision on the proposal committed at `seq` is written to.
pub fn decision_key(seq: Seq) -> Vec<u8> {
    format!("{AGREEMENT_PREFIX}{seq}").into_bytes()
}

/// The key a committed agreement mirrors plug-in `name`'s registry entry to: the member ids it
/// is loaded on, ascending, comma separated.
pub fn plugin_key(name: &str) -> Vec<u8> {
    format!("{PLUGIN_PREFIX}{name}").into_bytes()
}

/// The key prefix of the plug-in registry's mirror.
pub const PLUGIN_PREFIX: &str = "harness/plugins/";

/// One open proposal, as the state holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proposal {
    /// The plug-in to load.
    pub(crate) name: String,
    /// The view it was proposed in; a vote cast in another view aborts it.
    pub(crate) view: u64,
    /// Who must vote yes: the proposer's view, ascending.
    pub(crate) voters: BTreeSet<NodeId>,
    /// Who voted yes so far.
    pub(crate) yes: BTreeSet<NodeId>,
}

/// What applying a vote decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// No decision yet (or the vote was about nothing open).
    Open,
    /// Every voter voted yes: load `name` on every voter.
    Commit {
        /// The plug-in.
        name: String,
        /// Where it is now loaded.
        voters: BTreeSet<NodeId>,
    },
    /// Aborted, with the reason written to the decision key.
    Abort(String),
}

/// The open proposals, by the seq their `Propose` committed at (persistent, like every map of the
/// state, so that freezing it copies nothing).
pub(crate) type Proposals = OrdMap<Seq, Proposal>;

/// Applies a vote to the open proposals; a decided proposal is removed. A vote for nothing open
/// (decided, never proposed) is `None`: it changes nothing.
pub(crate) fn apply_vote(
    open: &mut Proposals,
    proposal: Seq,
    voter: NodeId,
    view: u64,
    yes: bool,
) -> Option<Decision> {
    let p = open.get_mut(&proposal)?;
    let decision = if view != p.view {
        Decision::Abort(format!("aborted: the view changed (member {} voted in view {view})", voter.0))
    } else if !p.voters.contains(&voter) {
        return Some(Decision::Open);
    } else if !yes {
        Decision::Abort(format!("aborted: member {} cannot load it", voter.0))
    } else {
        p.yes.insert(voter);
        if p.yes != p.voters {
            return Some(Decision::Open);
        }
        Decision::Commit { name: p.name.clone(), voters: p.voters.clone() }
    };
    open.remove(&proposal);
    Some(decision)
}

/// The plug-in proposal this committed payload is, if `me` must vote on it: `(name, view)`.
/// Cheap for every other payload: only the kind byte is looked at before decoding.
pub fn proposal_to_vote_on(payload: &[u8], me: NodeId) -> Option<(String, u64)> {
    if Command::peek_kind(payload) != Some(ActionKind::Propose) {
        return None;
    }
    match Command::decode(payload).ok()?.action {
        Action::Propose { name, view, voters } if voters.contains(&me) => Some((name, view)),
        _ => None,
    }
}

/// Fills in a proposal submitted without voters (a client's): the submitting member's view and
/// its members. Returns `None` for every other payload, which is submitted unchanged.
pub fn fill_proposal(payload: &[u8], view: ViewId, members: &[NodeId]) -> Option<Vec<u8>> {
    if Command::peek_kind(payload) != Some(ActionKind::Propose) {
        return None;
    }
    let mut command = Command::decode(payload).ok()?;
    match &mut command.action {
        Action::Propose { view: v, voters, .. } if voters.is_empty() => {
            *v = view.0;
            let mut ids = members.to_vec();
            ids.sort();
            ids.dedup();
            *voters = ids;
        }
        _ => return None,
    }
    Some(command.encode())
}

/// A member's vote, as the command it submits (no client session: members vote once per
/// proposal and view, and a repeated vote changes nothing).
pub fn vote_command(proposal: Seq, voter: NodeId, view: u64, yes: bool) -> Vec<u8> {
    Command { session: Default::default(), action: Action::Vote { proposal, voter, view, yes } }.encode()
}

/// Whether a payload is a member's vote cast by `origin` (the simulator's checker tells member
/// submissions from client ones by this).
pub fn is_vote_from(payload: &[u8], origin: NodeId) -> bool {
    Command::peek_kind(payload) == Some(ActionKind::Vote)
        && matches!(Command::decode(payload), Ok(Command { action: Action::Vote { voter, .. }, .. }) if voter == origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(voters: &[u16], view: u64) -> Proposals {
        let voters: BTreeSet<NodeId> = voters.iter().map(|&id| NodeId(id)).collect();
        let p = Proposal { name: "odls".into(), view, voters, yes: BTreeSet::new() };
        OrdMap::unit(7, p)
    }

    #[test]
    fn every_voter_yes_in_the_proposals_view_commits() {
        let mut proposals = open(&[1, 2, 3], 4);
        assert_eq!(apply_vote(&mut proposals, 7, NodeId(2), 4, true), Some(Decision::Open));
        assert_eq!(apply_vote(&mut proposals, 7, NodeId(2), 4, true), Some(Decision::Open), "repeat");
        assert_eq!(apply_vote(&mut proposals, 7, NodeId(9), 4, true), Some(Decision::Open), "no voter");
        assert_eq!(apply_vote(&mut proposals, 7, NodeId(1), 4, true), Some(Decision::Open));
        let voters = [1, 2, 3].map(NodeId).into_iter().collect();
        assert_eq!(
            apply_vote(&mut proposals, 7, NodeId(3), 4, true),
            Some(Decision::Commit { name: "odls".into(), voters })
        );
        assert!(proposals.is_empty());
        assert_eq!(apply_vote(&mut proposals, 7, NodeId(3), 4, false), None, "decided: nothing changes");
    }

    #[test]
    fn one_no_aborts_and_so_does_a_vote_from_another_view() {
        let mut proposals = open(&[1, 2, 3], 4);
        apply_vote(&mut proposals, 7, NodeId(1), 4, true);
        let no = apply_vote(&mut proposals, 7, NodeId(3), 4, false);
        assert_eq!(no, Some(Decision::Abort("aborted: member 3 cannot load it".into())));
        let mut proposals = open(&[1, 2, 3], 4);
        apply_vote(&mut proposals, 7, NodeId(1), 4, true);
        apply_vote(&mut proposals, 7, NodeId(2), 4, true);
        // Even a non-voter's vote from a later view aborts: the view changed before member 3 voted.
        let late = apply_vote(&mut proposals, 7, NodeId(5), 5, true);
        assert!(matches!(late, Some(Decision::Abort(reason)) if reason.contains("view changed")));
        assert!(proposals.is_empty());
    }

    #[test]
    fn proposals_are_filled_with_the_submitters_view_and_votes_recognised_only_from_their_voter() {
        let bare = Command {
            session: Default::default(),
            action: Action::Propose { name: "odls".into(), view: 0, voters: vec![] },
        };
        let filled = fill_proposal(&bare.encode(), ViewId(6), &[NodeId(3), NodeId(1), NodeId(2)]).unwrap();
        assert_eq!(
            Command::decode(&filled).unwrap().action,
            Action::Propose { name: "odls".into(), view: 6, voters: vec![NodeId(1), NodeId(2), NodeId(3)] }
        );
        assert_eq!(fill_proposal(&filled, ViewId(7), &[NodeId(1)]), None, "already filled");
        assert_eq!(proposal_to_vote_on(&filled, NodeId(2)), Some(("odls".into(), 6)));
        assert_eq!(proposal_to_vote_on(&filled, NodeId(4)), None, "not a voter");
        assert_eq!(proposal_to_vote_on(b"raw broadcast payload", NodeId(2)), None);
        let vote = vote_command(11, NodeId(2), 6, true);
        assert!(is_vote_from(&vote, NodeId(2)));
        assert!(!is_vote_from(&vote, NodeId(3)));
        assert!(!is_vote_from(&filled, NodeId(2)));
    }

    mod state {
        use super::super::*;
        use crate::ids::MsgId;
        use crate::replication::{DvmState, Outcome, Read, StateMachine};

        /// Applies `action` at `seq` as submitted by member `origin`.
        fn apply(state: &mut DvmState, seq: Seq, origin: u16, action: Action) -> Outcome {
            let id = MsgId { origin: NodeId(origin), incarnation: 1, counter: seq };
            let payload = Command { session: Default::default(), action }.encode();
            Outcome::decode(&state.apply(seq, id, &payload)).unwrap()
        }

        fn decision(state: &DvmState, seq: Seq) -> String {
            String::from_utf8(state.get(&decision_key(seq)).unwrap().value).unwrap()
        }

        fn propose(state: &mut DvmState, seq: Seq) -> Outcome {
            let voters = vec![NodeId(1), NodeId(2), NodeId(3)];
            apply(state, seq, 1, Action::Propose { name: "odls".into(), view: 4, voters })
        }

        fn vote(state: &mut DvmState, seq: Seq, proposal: Seq, voter: u16, view: u64, yes: bool) -> Outcome {
            apply(state, seq, voter, Action::Vote { proposal, voter: NodeId(voter), view, yes })
        }

        #[test]
        fn all_yes_loads_the_plugin_on_every_voter_at_one_revision() {
            let mut state = DvmState::default();
            let Outcome::Ok { revision, reads, .. } = propose(&mut state, 10) else {
                panic!("proposal refused")
            };
            assert_eq!(revision, 1);
            assert!(
                matches!(&reads[..], [Read::Get(Some(e))] if e.key == decision_key(10) && e.value == b"pending")
            );
            vote(&mut state, 11, 10, 1, 4, true);
            vote(&mut state, 12, 10, 3, 4, true);
            assert_eq!(decision(&state, 10), PENDING);
            assert!(state.plugin_members("odls").is_empty(), "nothing loads before the last vote");
            let snapshot = state.snapshot();
            vote(&mut state, 13, 10, 2, 4, true);
            assert_eq!(decision(&state, 10), COMMITTED);
            assert_eq!(state.plugin_members("odls"), [1, 2, 3].map(NodeId).into());
            assert_eq!(state.revision(), 2);
            assert_eq!(state.get(&plugin_key("odls")).unwrap().value, b"1,2,3");
            assert!(state.open_proposals().is_empty());
            // A member restored from the snapshot with the proposal open decides the same way.
            let mut restored = DvmState::default();
            restored.restore(&snapshot).unwrap();
            assert_eq!(restored.open_proposals(), vec![(10, 4)]);
            vote(&mut restored, 13, 10, 2, 4, true);
            assert_eq!(restored.digest(), state.digest());
        }

        #[test]
        fn one_member_that_cannot_load_aborts_at_every_member_and_late_votes_change_nothing() {
            let mut state = DvmState::default();
            propose(&mut state, 10);
            vote(&mut state, 11, 10, 1, 4, true);
            vote(&mut state, 12, 10, 2, 4, false);
            assert_eq!(decision(&state, 10), "aborted: member 2 cannot load it");
            let digest = state.digest();
            assert_eq!(vote(&mut state, 13, 10, 3, 4, true), Outcome::NotFound { revision: 2 });
            assert!(state.plugin_members("odls").is_empty());
            // Only the history chain moved.
            assert_eq!(state.revision(), 2);
            assert_ne!(state.digest(), digest);
        }

        #[test]
        fn a_vote_from_a_new_view_aborts_and_a_forged_vote_is_refused() {
            let mut state = DvmState::default();
            propose(&mut state, 10);
            vote(&mut state, 11, 10, 1, 4, true);
            let forged = apply(
                &mut state,
                12,
                1,
                Action::Vote { proposal: 10, voter: NodeId(2), view: 4, yes: false },
            );
            assert!(matches!(forged, Outcome::BadCommand { .. }), "member 1 cannot vote for member 2");
            assert_eq!(decision(&state, 10), PENDING);
            vote(&mut state, 13, 10, 2, 5, false);
            assert!(decision(&state, 10).contains("the view changed"), "{}", decision(&state, 10));
            let bare = Action::Propose { name: "odls".into(), view: 0, voters: vec![] };
            assert!(matches!(apply(&mut state, 14, 1, bare), Outcome::BadCommand { .. }));
        }
    }
}
