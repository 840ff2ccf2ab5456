//! Ring order for a new view: a cycle through the candidates that uses no link a candidate
//! reported unusable (docs/PROTOCOL.md §5.5). A Hamiltonian cycle by bounded backtracking; when
//! none exists, the candidate with the most unusable links is left out and the search repeats.

use std::collections::BTreeSet;

use crate::ids::NodeId;

/// Most search steps per attempt; the graphs are nearly complete, so this is rarely approached.
const SEARCH_STEPS_MAX: usize = 20_000;

/// Orders `candidates` (sorted, `first` among them) into a ring starting at `first` whose
/// consecutive members (and last to first) are not in `bad`. Returns the ring and who was left out.
pub(in crate::core) fn ring_order(
    first: NodeId,
    candidates: &[NodeId],
    bad: &BTreeSet<(NodeId, NodeId)>,
) -> (Vec<NodeId>, Vec<NodeId>) {
    let usable = |a: NodeId, b: NodeId| !bad.contains(&(a, b)) && !bad.contains(&(b, a));
    let mut pool: Vec<NodeId> = candidates.to_vec();
    pool.sort();
    pool.dedup();
    let mut dropped = Vec::new();
    loop {
        if let Some(ring) = search(first, &pool, &usable) {
            return (ring, dropped);
        }
        // Leave out the member with the most unusable links (ties: the highest id), never `first`.
        let worst = pool
            .iter()
            .copied()
            .filter(|&c| c != first)
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
        let (ring, dropped) = ring_order(NodeId(1), &ids(&[1, 2, 3, 4, 5]), &BTreeSet::new());
        assert_eq!(ring, ids(&[1, 2, 3, 4, 5]));
        assert!(dropped.is_empty());
    }

    #[test]
    fn one_cut_link_is_routed_around_without_dropping_anyone() {
        let bad: BTreeSet<_> = [(NodeId(2), NodeId(3))].into_iter().collect();
        let (ring, dropped) = ring_order(NodeId(1), &ids(&[1, 2, 3, 4, 5]), &bad);
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
        let (ring, dropped) = ring_order(NodeId(1), &ids(&[1, 2, 3]), &bad);
        assert_eq!(ring, ids(&[1, 2]));
        assert_eq!(dropped, ids(&[3]));
    }
}
