//! Real nodes on loopback: three members agree on one history; start order does not matter; a
//! peer that sends garbage or the wrong cluster is dropped without hurting the ring.

use crate::in_process;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::wire::{encode_peer, PeerFrame};
use harness::{Error, Member, Node, NodeId, NodeOptions};
use in_process::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// Submits `count` messages from `node`, tagged with its id, in order.
fn submit_many(node: &Node, count: usize) {
    for i in 0..count {
        node.submit(format!("{}-{i}", node.member().id).into_bytes()).expect("submit");
    }
}

/// Every member delivered the same history, with seqs 1..=n and every submission exactly once,
/// each origin's messages in submission order (PROTOCOL.md §3, agreed delivery).
fn assert_one_history(nodes: &[Node], per_node: usize) {
    let total = per_node * nodes.len();
    let histories: Vec<_> = nodes.iter().map(|n| history(&take_deliveries(n, total, DEADLINE))).collect();
    for (i, h) in histories.iter().enumerate().skip(1) {
        assert!(h == &histories[0], "member {} delivered a different history", i + 1);
    }
    let seqs: Vec<u64> = histories[0].iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
    for node in nodes {
        let id = node.member().id;
        let own: Vec<Vec<u8>> =
            histories[0].iter().filter(|(_, origin, _)| *origin == id).map(|(_, _, p)| p.clone()).collect();
        let expected: Vec<Vec<u8>> = (0..per_node).map(|i| format!("{id}-{i}").into_bytes()).collect();
        assert_eq!(own, expected, "{id}'s messages");
    }
}

#[test]
fn three_members_submitting_at_once_deliver_one_history() {
    init();
    let nodes: Vec<Node> = configs(&free_ports(3)).into_iter().map(start).collect();
    std::thread::scope(|s| {
        for node in &nodes {
            s.spawn(move || submit_many(node, 1500));
        }
    });
    assert_one_history(&nodes, 1500);
    let statuses: Vec<_> = nodes.iter().map(|n| n.status().unwrap()).collect();
    assert!(statuses.iter().all(|s| s.delivered == 4500 && s.delivery_digest == statuses[0].delivery_digest));
    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
fn two_members_started_in_reverse_order_find_each_other() {
    init();
    let mut configs = configs(&free_ports(2));
    let second = start(configs.pop().unwrap());
    // Member 2 dials member 1, is refused, and backs off (PROTOCOL.md §4: any start order).
    std::thread::sleep(Duration::from_millis(400));
    let first = start(configs.pop().unwrap());
    let nodes = vec![first, second];
    for node in &nodes {
        submit_many(node, 300);
    }
    assert_one_history(&nodes, 300);
    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
fn a_used_address_is_an_io_error_naming_it() {
    init();
    let configs = configs(&free_ports(2));
    let node = start(configs[0].clone());
    match Node::start(configs[0].clone()) {
        Err(Error::Io { context, .. }) => {
            assert!(context.contains(&configs[0].listen.to_string()), "{context}")
        }
        Err(other) => panic!("expected an I/O error, got {other}"),
        Ok(_) => panic!("a second node bound the same address"),
    }
    node.stop().unwrap();
}

/// Waits until the node closes `stream`: a read sees end of file or a reset.
fn assert_closed_by_node(mut stream: TcpStream, what: &str) {
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 256];
    // Bounded by the deadline.
    while Instant::now() < until {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => panic!("{what}: the node answered"),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
    panic!("{what}: still open after 10 s");
}

fn hello(cluster: u64, from: u16, to: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    let from = Member { id: NodeId(from), incarnation: 1 };
    let mode = harness::wire::AuthMode::Open;
    let versions = harness::wire::Versions::ALL;
    encode_peer(
        &PeerFrame::Hello { cluster, mode, from, to: NodeId(to), nonce: [0; 32], versions },
        &mut bytes,
    );
    bytes
}

#[test]
fn garbage_and_foreign_peers_are_dropped_without_hurting_the_ring() {
    init();
    let configs = configs(&free_ports(2));
    let addr = configs[0].listen;
    let nodes: Vec<Node> = configs.into_iter().map(start).collect();
    submit_many(&nodes[0], 50);
    let silent = TcpStream::connect(addr).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", vec![0xa5; 512]),
        ("a frame that does not decode", vec![0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]),
        ("a wrong cluster", hello(CLUSTER + 1, 2, 1)),
        ("an unknown member", hello(CLUSTER, 9, 1)),
        ("a hello for another member", hello(CLUSTER, 2, 3)),
    ];
    for (what, bytes) in cases {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(&bytes).unwrap();
        assert_closed_by_node(stream, what);
    }
    assert_closed_by_node(silent, "a connection that never sends a frame");
    submit_many(&nodes[1], 50);
    let histories: Vec<_> = nodes.iter().map(|n| history(&take_deliveries(n, 100, DEADLINE))).collect();
    assert!(histories[0] == histories[1]);
    let payloads: BTreeSet<_> = histories[0].iter().map(|(_, _, p)| p.clone()).collect();
    assert_eq!(payloads.len(), 100);
    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
fn members_started_at_once_keep_one_link_per_pair() {
    init();
    // Started together, every pair dials both ways at once; the dial of the lower id must win on
    // both ends (PROTOCOL.md §2) or the token would be sent on a link the other end closed.
    for round in 0..3 {
        let configs = configs(&free_ports(3));
        let nodes: Vec<Node> = std::thread::scope(|s| {
            let handles: Vec<_> = configs.into_iter().map(|c| s.spawn(move || start(c))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for node in &nodes {
            submit_many(node, 100);
        }
        assert_one_history(&nodes, 100);
        for node in nodes {
            node.stop().unwrap();
        }
        log::info!("round {round} done");
    }
}

#[test]
fn commits_carry_the_tags_submit_returned() {
    init();
    let mut configs = configs(&free_ports(2));
    let options = NodeOptions { commits: true, ..NodeOptions::default() };
    let first = Node::start_with(configs.remove(0), options).unwrap();
    let second = start(configs.remove(0));
    let tags: Vec<u64> = (0..200).map(|i| first.submit(vec![i as u8]).unwrap()).collect();
    let until = Instant::now() + DEADLINE;
    let mut committed = Vec::new();
    // Bounded by the number of submissions and the deadline.
    while committed.len() < tags.len() {
        let left = until.saturating_duration_since(Instant::now());
        let commit = first.commits().recv_timeout(left).expect("a commit before the deadline");
        committed.extend(commit.tag);
    }
    assert_eq!(committed, tags);
    assert!(second.commits().try_recv().is_err(), "commits were not asked for on the second member");
    first.stop().unwrap();
    second.stop().unwrap();
}
