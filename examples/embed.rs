//! Embedding Harness in a Rust program: three members of one ring run in this process, each
//! through the embedding API (`harness::Node`). Every member submits messages; every member
//! receives all of them in one agreed order; then a `ClusterClient` writes and reads the
//! replicated state through the same members, as any other process could.
//!
//! `cargo run --release --example embed` (it uses free loopback ports and stops by itself).

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use harness::client::{ClusterClient, ClusterOptions};
use harness::wire::Consistency;
use harness::{CoreConfig, Member, Node, NodeConfig, NodeId, NodeOptions};

const MEMBERS: u16 = 3;
const MESSAGES_EACH: usize = 5;
const WAIT: Duration = Duration::from_secs(20);

fn main() -> Result<(), Box<dyn Error>> {
    let addrs = harness::procs::free_loopback_ports(usize::from(MEMBERS))?;
    let peers: BTreeMap<NodeId, SocketAddr> = (1..=MEMBERS).map(NodeId).zip(addrs.iter().copied()).collect();
    let universe: Vec<NodeId> = peers.keys().copied().collect();

    // One `Node` per member: each owns an event loop thread and a protocol thread.
    let mut nodes = Vec::new();
    for (&id, &listen) in &peers {
        let core = CoreConfig::new(Member { id, incarnation: 1 }, universe.clone());
        let config = NodeConfig { core, listen, peers: peers.clone(), auth: None };
        nodes.push(Node::start_with(config, NodeOptions::default())?);
    }

    // Every member submits; the token orders all submissions into one history.
    for (i, node) in nodes.iter().enumerate() {
        for n in 0..MESSAGES_EACH {
            node.submit(format!("member {} message {n}", i + 1).into_bytes())?;
        }
    }

    // Every member delivers every message, and all in the same order.
    let total = nodes.len() * MESSAGES_EACH;
    let mut orders = Vec::new();
    for node in &nodes {
        let mut order = Vec::new();
        while order.len() < total {
            let delivery = node.deliveries().recv_timeout(WAIT)?;
            order.push((
                delivery.message.seq,
                String::from_utf8_lossy(&delivery.message.payload).into_owned(),
            ));
        }
        orders.push(order);
    }
    assert!(orders.iter().all(|order| *order == orders[0]), "one agreed order at every member");
    for (seq, text) in &orders[0] {
        println!("seq {seq:>2}: {text}");
    }

    // The replicated state, through any member, with failover between them.
    let mut client = ClusterClient::new(&addrs, ClusterOptions::default())?;
    client.put(b"jobs/42", b"queued")?;
    let (entry, revision) = client.get(b"jobs/42", Consistency::Linearizable)?;
    let value = entry.map(|e| String::from_utf8_lossy(&e.value).into_owned());
    println!("jobs/42 = {value:?} at revision {revision}");
    assert_eq!(value.as_deref(), Some("queued"));

    for node in nodes {
        node.stop()?;
    }
    println!("{MEMBERS} members delivered {total} messages in one order; stopped cleanly");
    Ok(())
}
