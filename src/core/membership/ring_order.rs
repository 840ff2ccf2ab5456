//! Ring order for a new view: a cycle through the candidates that uses no link a candidate
//! reported unusable (docs/PROTOCOL.md §5.5). A Hamiltonian cycle by bounded backtracking; when
//! none exists, the candidate with the most unusable links is left out and the search repeats,
//! but never below the write quorum: a ring that keeps `W` members and may flap beats one that
//! can commit nothing.

use std::collections::BTreeSet;

use crate::ids::NodeId;

/// Most search steps per attempt; the graphs are nearly complete, so this is rarely approached.
const SEARCH_STEPS_MAX: usize = 20_000;

/// Orders `candidates` (`first` among them) into a ring whose consecutive members (and last to
/// first) are not in `bad`, starting at `first` unless it had to be left out. Leaves out members
/// only while more than `floor` remain; `keep_first` never leaves out `first` (the behaviour
/// before the write quorum, kept for `Defect::NoReplicaFloor`). Returns the ring and who was
/// left out.
pub(in crate::core) fn ring_order(
    first: NodeId,
    candidates: &[NodeId],
    bad: &BTreeSet<(NodeId, NodeId)>,
    floor: usize,
    keep_first: bool,
) -> (Vec<NodeId>, Vec<NodeId>) {
    let usable = |a: NodeId, b: NodeId| !bad.contains(&(a, b)) && !bad.contains(&(b, a));
    let mut pool: Vec<NodeId> = candidates.to_vec();
    pool.sort();
    pool.dedup();
    let all = pool.clone();
    let start =
        |pool: &[NodeId]| if pool.contains(&first) { first } else { pool.first().copied().unwrap_or(first) };
    let mut dropped = Vec::new();
    loop {
        if let Some(ring) = search(start(&pool), &pool, &usable) {
            return (ring, dropped);
        }
        if pool.len() <= floor.max(1) {
            // No ring of `floor` members avoids the unusable links: use every candidate anyway.
            let first = start(&all);
            let ring = std::iter::once(first).chain(all.iter().copied().filter(|&c| c != first)).collect();
            return (ring, Vec::new());
        }
        // Leave out the member with the most unusable links (ties: the highest id).
        let worst = pool
            .iter()
            .copied()
            .filter(|&c| !keep_first || c != first)
            .max_by_key(|&c| (pool.iter().filter(|&&o| o != c && !usable(c, o)).count(), c));
        match worst {
            Some(w) => {
                pool.retain(|&c| c != w);
                dropped.push(w);
            }
            None => return (vec![first], dropped),
        }
    }
}

fn search(first: NodeId, pool: &[NodeId], usable: &dyn Fn(NodeId, NodeId) -> bool) -> Option<Vec<NodeId>> {
    if pool.len() <= 2 {
        // One member, or two sharing one link (usable both ways or not at all).
        let ring: Vec<NodeId> =
            std::iter::once(first).chain(pool.iter().copied().filter(|&c| c != first)).collect();
        return (ring.len() < 2 || usable(ring[0], ring[1])).then_some(ring);
    }
    let rest: Vec<NodeId> = pool.iter().copied().filter(|&c| c != first).collect();
    let mut path = vec![first];
    let mut used = vec![false; rest.len()];
    let mut steps = 0;
    extend(&mut path, &rest, &mut used, usable, &mut steps).then_some(path)
}

fn extend(
    path: &mut Vec<NodeId>,
    rest: &[NodeId],
    used: &mut [bool],
    usable: &dyn Fn(NodeId, NodeId) -> bool,
    steps: &mut usize,
) -> bool {
    *steps += 1;
    if *steps > SEARCH_STEPS_MAX {
        return false;
    }
    let last = *path.last().expect("path starts with the first member");
    if path.len() == rest.len() + 1 {
        return usable(last, path[0]);
    }
    for i in 0..rest.len() {
        if !used[i] && usable(last, rest[i]) {
            used[i] = true;
            path.push(rest[i]);
            if extend(path, rest, used, usable, steps) {
                return true;
            }
            path.pop();
            used[i] = false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u16]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn without_bad_links_the_ring_is_in_id_order() {
        let (ring, dropped) = ring_order(NodeId(1), &ids(&[1, 2, 3, 4, 5]), &BTreeSet::new(), 3, false);
        assert_eq!(ring, ids(&[1, 2, 3, 4, 5]));
        assert!(dropped.is_empty());
    }

    #[test]
    fn one_cut_link_is_routed_around_without_dropping_anyone() {
        let bad: BTreeSet<_> = [(NodeId(2), NodeId(3))].into_iter().collect();
        let (ring, dropped) = ring_order(NodeId(1), &ids(&[1, 2, 3, 4, 5]), &bad, 3, false);
        assert!(dropped.is_empty());
        assert_eq!(ring.len(), 5);
        for i in 0..5 {
            let (a, b) = (ring[i], ring[(i + 1) % 5]);
            assert!(!bad.contains(&(a, b)) && !bad.contains(&(b, a)), "{ring:?}");
        }
    }

    #[test]
    fn three_members_with_one_cut_link_drop_one_of_its_ends() {
        let bad: BTreeSet<_> = [(NodeId(2), NodeId(3))].into_iter().collect();
        let (ring, dropped) = ring_order(NodeId(1), &ids(&[1, 2, 3]), &bad, 2, false);
        assert_eq!(ring, ids(&[1, 2]));
        assert_eq!(dropped, ids(&[3]));
    }

    #[test]
    fn a_coordinator_whose_links_fail_leaves_itself_out_rather_than_its_peers() {
        // §5.5: both links of member 1 fail; {2, 3} keeps the write quorum of two.
        let bad: BTreeSet<_> = [(NodeId(1), NodeId(2)), (NodeId(1), NodeId(3))].into_iter().collect();
        let (ring, dropped) = ring_order(NodeId(1), &ids(&[1, 2, 3]), &bad, 2, false);
        assert_eq!(ring, ids(&[2, 3]));
        assert_eq!(dropped, ids(&[1]));
        // Before the write quorum the coordinator kept itself and ended alone.
        let (ring, _) = ring_order(NodeId(1), &ids(&[1, 2, 3]), &bad, 1, true);
        assert_eq!(ring, ids(&[1]));
    }

    #[test]
    fn no_ring_of_the_write_quorum_avoids_the_bad_links_so_all_are_kept() {
        let bad: BTreeSet<_> =
            [(NodeId(1), NodeId(2)), (NodeId(1), NodeId(3)), (NodeId(2), NodeId(3))].into_iter().collect();
        let (ring, dropped) = ring_order(NodeId(2), &ids(&[1, 2, 3]), &bad, 2, false);
        assert_eq!(ring, ids(&[2, 1, 3]));
        assert!(dropped.is_empty());
    }
}
