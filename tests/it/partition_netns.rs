//! Partitions made by the kernel: five `harness node` processes, each in its own network
//! namespace (tests/it/support/netns.rs), fed by a submitter per node.
//!
//! - 3|2: the data veths of hosts 4 and 5 go down. Only the majority keeps a primary view and
//!   commits; the minority reports primary=false and commits nothing (docs/PROTOCOL.md §5.2);
//!   after the heal all five reach one committed_upto and state digest.
//! - One pair cut: hosts a and b, ring neighbours, drop each other's packets (blackhole
//!   routes) while both reach everyone else. A view of all five that avoids the edge forms and
//!   stays (docs/PROTOCOL.md §5.5).
//!
//! Needs root and `ip` (iproute2). Where namespaces cannot be made, each test fails and says why:
//! a test that could not run must never count as passed.

use crate::common;
use crate::mesh;
use crate::netns;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::init_logging;
use mesh::{check_converged_at, status_at, view_changes_at, wait_settled_at, Submitters};
use netns::Hosts;

const NODES: u16 = 5;
const TOKEN_TIMEOUT: Duration = Duration::from_millis(300);
const FORM_DEADLINE: Duration = Duration::from_secs(15);
const REFORM_DEADLINE: Duration = Duration::from_secs(10);
const CONVERGE_DEADLINE: Duration = Duration::from_secs(20);
const WATCH: Duration = Duration::from_secs(3);
const FLAPS_MAX: usize = 2;

/// The hosts with a node each, settled in genesis, and submitters. Fails the test, saying why,
/// where namespaces are unavailable.
fn started(tag: &str, subnet: u8) -> (Hosts, Submitters) {
    init_logging();
    if let Some(why) = netns::unavailable(tag) {
        panic!("NOT RUN: this test needs network namespaces (root and iproute2): {why}");
    }
    let mut hosts = Hosts::create(tag, subnet, NODES)
        .unwrap_or_else(|why| panic!("NOT RUN: cannot build the test network: {why}"));
    for i in 1..=NODES {
        hosts.start(i, TOKEN_TIMEOUT);
    }
    let submitters = Submitters::start(&hosts.endpoints());
    let (view, took) = wait_settled_at(&addrs(&hosts, &[1, 2, 3, 4, 5]), 0, FORM_DEADLINE);
    eprintln!("{tag}: genesis view {view} committing after {took:?}");
    (hosts, submitters)
}

fn addrs(hosts: &Hosts, ids: &[u16]) -> Vec<SocketAddr> {
    ids.iter().map(|&i| hosts.client_addr(i)).collect()
}

fn committed(hosts: &Hosts, id: u16) -> u64 {
    status_at(hosts.client_addr(id)).map_or(0, |s| s.committed_upto)
}

#[test]
fn netns_partition_three_two_only_the_majority_commits_then_all_agree() {
    let (hosts, submitters) = started("pt", 61);
    let (majority, minority) = ([1u16, 2, 3], [4u16, 5]);
    let cut_at = Instant::now();
    for &i in &minority {
        hosts.set_data_link(i, false).unwrap();
    }
    let before = committed(&hosts, 1);
    let (view, took) = wait_settled_at(&addrs(&hosts, &majority), before, REFORM_DEADLINE);
    eprintln!("pt: majority view {view} committing {took:?} after the cut");
    common::wait_until(
        "the minority to report primary=false",
        Duration::from_millis(50),
        400,
        REFORM_DEADLINE,
        || minority.iter().all(|&i| status_at(hosts.client_addr(i)).is_some_and(|s| !s.primary)),
    );
    let minority_out = Instant::now();
    eprintln!("pt: minority non-primary {:?} after the cut", cut_at.elapsed());
    let minority_committed: Vec<u64> = minority.iter().map(|&i| committed(&hosts, i)).collect();
    let majority_before = committed(&hosts, 1);
    std::thread::sleep(Duration::from_secs(2));
    for (k, &i) in minority.iter().enumerate() {
        let s = status_at(hosts.client_addr(i)).expect("a minority node answers on the management net");
        assert!(!s.primary, "n{i} became primary in the minority");
        assert_eq!(s.committed_upto, minority_committed[k], "n{i} committed in the minority");
    }
    let majority_after = committed(&hosts, 1);
    assert!(majority_after > majority_before, "the majority stopped committing");
    let healed_at = Instant::now();
    let minority_acks = submitters
        .acks()
        .iter()
        .filter(|a| minority.contains(&a.node) && a.at > minority_out && a.at < healed_at)
        .count();
    assert_eq!(minority_acks, 0, "the minority acknowledged while it was out");
    eprintln!(
        "pt: majority committed {majority_before} -> {majority_after} in 2 s; minority stuck at {minority_committed:?}"
    );
    for &i in &minority {
        hosts.set_data_link(i, true).unwrap();
    }
    let before = committed(&hosts, 1);
    let (view, took) = wait_settled_at(&addrs(&hosts, &[1, 2, 3, 4, 5]), before, CONVERGE_DEADLINE);
    eprintln!("pt: healed into view {view} of five after {took:?}");
    let acks = submitters.stop();
    let statuses = check_converged_at(&addrs(&hosts, &[1, 2, 3, 4, 5]), &acks, CONVERGE_DEADLINE);
    eprintln!(
        "pt: all five at committed_upto {} with {} acknowledged",
        statuses[0].committed_upto,
        acks.len()
    );
}

#[test]
fn netns_one_cut_link_between_neighbours_gives_a_stable_view() {
    let (hosts, submitters) = started("pc", 62);
    let all = addrs(&hosts, &[1, 2, 3, 4, 5]);
    let first = status_at(all[0]).expect("n1 answers");
    let (a, b) = (first.ring[0].id.0, first.ring[1].id.0);
    let cut_at = Instant::now();
    hosts.set_pair_cut(a, b, true).unwrap();
    let before = committed(&hosts, 1);
    let mut view = first.view.0;
    common::wait_until("a view after the cut", Duration::from_millis(50), 1_000, REFORM_DEADLINE, || {
        view = wait_settled_at(&all, before, REFORM_DEADLINE).0;
        view != first.view.0
    });
    eprintln!("pc: n{a}-n{b} cut; view {view} of five committing after {:?}", cut_at.elapsed());
    let flaps = view_changes_at(&all, WATCH);
    eprintln!("pc: {flaps} view changes in {WATCH:?} with the cut still on");
    assert!(flaps <= FLAPS_MAX, "the ring flapped: {flaps} view changes in {WATCH:?}");
    let ring: Vec<u16> = status_at(all[0]).unwrap().ring.iter().map(|m| m.id.0).collect();
    let edges: Vec<(u16, u16)> = (0..ring.len()).map(|k| (ring[k], ring[(k + 1) % ring.len()])).collect();
    assert!(
        !edges.contains(&(a, b)) && !edges.contains(&(b, a)),
        "the ring {ring:?} still uses the cut link n{a}-n{b}"
    );
    hosts.set_pair_cut(a, b, false).unwrap();
    let acks = submitters.stop();
    let statuses = check_converged_at(&all, &acks, CONVERGE_DEADLINE);
    eprintln!(
        "pc: all five at committed_upto {} with {} acknowledged",
        statuses[0].committed_upto,
        acks.len()
    );
}
