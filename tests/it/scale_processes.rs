//! A ring of 48 real `harness node` processes on loopback (docs/PROTOCOL.md §4): it forms, commits,
//! loses a member to kill -9 and commits again in the view without it, and every member opens a
//! constant number of peer connections (its status counts the dials since start), not one per
//! member. Counts, not times: the deadlines only bound a stuck run.

use crate::common;

use std::time::Duration;

use common::{status, submit, wait_until, Nodes};
use harness::wire::NodeStatus;
use harness::RingMode;

const NODES: u16 = 48;
/// A fresh member dials its 3 contacts and its successor (§4); a few redials of a contact that
/// was not listening yet, or of a link that crossed, are allowed on top. 48 would be all-pairs.
const DIALS_PER_MEMBER_MAX: u64 = 10;
const DEADLINE: Duration = Duration::from_secs(120);

/// Every running member's status, each asked over a fresh connection.
fn statuses(nodes: &Nodes, ids: &[u16]) -> Vec<NodeStatus> {
    ids.iter()
        .map(|&id| status(nodes.addr(id)).unwrap_or_else(|| panic!("n{id} answers its status")))
        .collect()
}

/// Waits until member `id` reports a primary view of `size` members.
fn wait_for_view(nodes: &Nodes, id: u16, size: usize) {
    wait_until(
        &format!("n{id} in a primary view of {size}"),
        Duration::from_millis(100),
        10_000,
        DEADLINE,
        || status(nodes.addr(id)).is_some_and(|s| s.primary && s.ring.len() == size),
    );
}

#[test]
fn forty_eight_members_form_commit_survive_a_kill_9_and_each_opens_a_constant_number_of_connections() {
    let mut nodes = Nodes::new("scale48", usize::from(NODES), RingMode::Bidirectional);
    nodes.token_timeout = Some(Duration::from_millis(500));
    let all: Vec<u16> = (1..=NODES).collect();
    for &id in &all {
        nodes.start(id);
    }
    wait_for_view(&nodes, 1, usize::from(NODES));
    submit(nodes.addr(1), 1, 20, DEADLINE);
    submit(nodes.addr(40), 40, 20, DEADLINE);
    let formed = statuses(&nodes, &all);
    for (id, s) in all.iter().zip(&formed) {
        assert!(s.primary && s.ring.len() == usize::from(NODES), "n{id}: {s:?}");
        assert!(s.links_dialled <= DIALS_PER_MEMBER_MAX, "n{id} dialled {} peers to form", s.links_dialled);
    }
    let total: u64 = formed.iter().map(|s| s.links_dialled).sum();
    eprintln!(
        "48 members formed: {total} dials in all, at most {} by one member",
        formed.iter().map(|s| s.links_dialled).max().unwrap_or(0)
    );

    let victim = NODES / 2;
    nodes.kill(victim);
    let survivors: Vec<u16> = all.iter().copied().filter(|&id| id != victim).collect();
    wait_for_view(&nodes, 1, usize::from(NODES) - 1);
    submit(nodes.addr(1), 1, 20, DEADLINE);
    submit(nodes.addr(40), 40, 20, DEADLINE);
    let after = statuses(&nodes, &survivors);
    let mut opened = Vec::new();
    for (i, (id, s)) in survivors.iter().zip(&after).enumerate() {
        assert!(s.primary && s.ring.len() == usize::from(NODES) - 1, "n{id}: {s:?}");
        let before = formed[if *id < victim { i } else { i + 1 }].links_dialled;
        opened.push((s.links_dialled - before, *id));
    }
    opened.sort_unstable();
    // One coordinator dials the members it is not linked to (at most n - 2, §4); every other
    // member dials at most its new ring neighbour and a redial or two.
    let (most, coordinator) = opened.pop().unwrap_or((0, 0));
    assert!(most <= u64::from(NODES), "n{coordinator} dialled {most} peers for one view change");
    for (dials, id) in &opened {
        assert!(*dials <= 4, "n{id} dialled {dials} peers for a view change it did not coordinate");
    }
    eprintln!(
        "kill -9 of n{victim}: n{coordinator} dialled {most}, the others {} in all",
        opened.iter().map(|o| o.0).sum::<u64>()
    );
}
