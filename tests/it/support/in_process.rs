//! Helpers shared by the node tests: free ports, cluster configs, bounded waits.

#![allow(dead_code)] // Each test file uses a different subset.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use harness::{CoreConfig, Delivery, Member, Node, NodeConfig, NodeId};

/// The cluster hash every test node uses.
pub const CLUSTER: u64 = 0x7e57;

/// Sets up logging once per test binary (`RUST_LOG=debug` to see it).
pub fn init() {
    crate::common::init_logging();
}

/// `n` loopback ports never handed out before in this binary (`crate::common::free_ports`).
pub fn free_ports(n: usize) -> Vec<u16> {
    crate::common::free_ports(n).iter().map(|addr| addr.port()).collect()
}

/// Configs for members 1..=n listening on `ports`.
pub fn configs(ports: &[u16]) -> Vec<NodeConfig> {
    let peers: BTreeMap<NodeId, SocketAddr> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| (NodeId(i as u16 + 1), SocketAddr::from(([127, 0, 0, 1], *port))))
        .collect();
    let universe: Vec<NodeId> = peers.keys().copied().collect();
    peers
        .iter()
        .map(|(&id, &listen)| {
            let mut core = CoreConfig::new(Member { id, incarnation: 1 }, universe.clone());
            core.cluster = CLUSTER;
            NodeConfig { core, listen, peers: peers.clone(), auth: None }
        })
        .collect()
}

/// Starts a node on `config`.
pub fn start(config: NodeConfig) -> Node {
    Node::start(config).expect("node starts")
}

/// Takes `count` deliveries from `node`, failing after `deadline`.
pub fn take_deliveries(node: &Node, count: usize, deadline: Duration) -> Vec<Delivery> {
    let until = Instant::now() + deadline;
    let mut got = Vec::with_capacity(count);
    // Bounded by `count` and by the deadline.
    while got.len() < count {
        let left = until.saturating_duration_since(Instant::now());
        match node.deliveries().recv_timeout(left) {
            Ok(delivery) => got.push(delivery),
            Err(e) => panic!("{}: {} of {count} deliveries before {e}", node.member(), got.len()),
        }
    }
    got
}

/// The (seq, origin, payload) history of some deliveries.
pub fn history(deliveries: &[Delivery]) -> Vec<(u64, NodeId, Vec<u8>)> {
    deliveries.iter().map(|d| (d.message.seq, d.message.id.origin, d.message.payload.to_vec())).collect()
}
