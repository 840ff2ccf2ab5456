//! A rolling upgrade between adjacent protocol versions (docs/PROTOCOL.md §2.3): a ring of three
//! members of version 1 (`--protocol-version 1`, which makes this build speak only what a build
//! of version 1 spoke) is upgraded one member at a time while clients write, and no
//! acknowledged write is lost; links between an old and a new member run version 1, links
//! between new members version 2; an old client still reads an upgraded member's status.

use std::time::Duration;

use harness::client::Client;
use harness::wire::Versions;
use harness::RingMode;

use crate::common::Nodes;
use crate::mesh::{check_converged_at, status_at, wait_settled_at, Submitters};

const SETTLE: Duration = Duration::from_secs(30);

/// The lines of member `id`'s log that report a link up, from byte `from` on.
fn link_lines(nodes: &Nodes, id: u16, from: usize) -> Vec<String> {
    let log = std::fs::read_to_string(nodes.log(id)).unwrap_or_default();
    log.get(from..)
        .unwrap_or("")
        .lines()
        .filter(|line| line.contains("transport: link to"))
        .map(str::to_string)
        .collect()
}

fn log_len(nodes: &Nodes, id: u16) -> usize {
    std::fs::metadata(nodes.log(id)).map_or(0, |m| m.len() as usize)
}

#[test]
fn a_ring_of_version_1_is_upgraded_member_by_member_while_clients_write() {
    let mut nodes = Nodes::new("upgrade", 3, RingMode::Bidirectional);
    nodes.rust_log = Some("info");
    for id in 1..=3 {
        nodes.member_flags.insert(id, vec!["--protocol-version".into(), "1".into()]);
        nodes.start(id);
    }
    let addrs: Vec<_> = (1..=3).map(|id| nodes.addr(id)).collect();
    let writers = Submitters::start(&[(1, addrs[0]), (2, addrs[1]), (3, addrs[2])]);
    wait_settled_at(&addrs, 0, SETTLE);
    // An old member answers a client of this build in version 1: no software version.
    assert_eq!(status_at(addrs[0]).expect("n1 answers").version, "");

    let mut acks_before = 0;
    for id in 1..=3u16 {
        // Writes were acknowledged since the last step: the cluster serves throughout.
        crate::common::wait_until("writes acknowledged", Duration::from_millis(50), 1000, SETTLE, || {
            writers.acks().len() > acks_before
        });
        let log_from = log_len(&nodes, id);
        nodes.stop(id);
        nodes.member_flags.remove(&id);
        nodes.start(id);
        let committed = status_at(addrs[usize::from(id % 3)]).map_or(0, |s| s.committed_upto);
        wait_settled_at(&addrs, committed, SETTLE);
        acks_before = writers.acks().len();

        // The upgraded member's links: version 1 to the members not yet upgraded, 2 to the rest.
        crate::common::wait_until(
            "the restarted member's links",
            Duration::from_millis(50),
            1000,
            SETTLE,
            || link_lines(&nodes, id, log_from).len() >= 2,
        );
        for line in link_lines(&nodes, id, log_from) {
            let peer: u16 =
                line.split("link to n").nth(1).and_then(|rest| rest[..1].parse().ok()).unwrap_or(0);
            let expected = if peer > id { 1 } else { 2 };
            assert!(line.contains(&format!("protocol version {expected})")), "n{id}: {line}");
        }
        let upgraded = status_at(addrs[usize::from(id) - 1]).expect("the upgraded member answers");
        assert_eq!(upgraded.version, env!("CARGO_PKG_VERSION"), "n{id} answers this client in version 2");
        assert!(!upgraded.metrics.is_empty());
    }
    let acks = writers.stop();
    assert!(acks.len() > acks_before, "writes acknowledged after the last upgrade");
    let statuses = check_converged_at(&addrs, &acks, SETTLE);
    assert!(statuses.windows(2).all(|pair| pair[0].state_digest == pair[1].state_digest));

    // A client of version 1 still reads an upgraded member's status, in version 1.
    let mut old = Client::connect_speaking(addrs[1], Duration::from_secs(5), None, Versions::LEGACY).unwrap();
    assert_eq!(old.protocol_version(), 1);
    let status = old.status().expect("an old client's status");
    assert_eq!((status.member.id.0, status.version.as_str(), status.metrics.len()), (2, "", 0));
    assert_eq!(status.state_digest, statuses[1].state_digest);
}
