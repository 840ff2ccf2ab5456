//! Keyed nodes in one process (docs/PROTOCOL.md §2, issue #7): a keyed ring and its clients work
//! with MACs and with encryption, a member with a wrong key is refused with a log line that says
//! why and never joins, mismatched modes are refused, an overloaded node answers "busy" with
//! bounded memory, and a too large request is refused with an error naming the limit.

use crate::in_process;

use std::time::{Duration, Instant};

use harness::auth::{Auth, ClusterKey};
use harness::client::{Client, ClientError};
use harness::wire::{ClientReply, ErrorCode};
use harness::{Node, NodeConfig};
use in_process::*;

const DEADLINE: Duration = Duration::from_secs(30);
const CLUSTER_NAME: &str = "security-test";

fn key(byte: u8) -> ClusterKey {
    ClusterKey::from_bytes([byte; 32])
}

/// Configs of `n` members that all hold `auth`.
fn keyed(n: usize, auth: &Auth) -> Vec<NodeConfig> {
    let mut configs = configs(&free_ports(n));
    for config in &mut configs {
        config.core.cluster = auth.cluster();
        config.auth = Some(auth.clone());
    }
    configs
}

fn client(node: &Node, auth: Option<&Auth>) -> Result<Client, ClientError> {
    Client::connect_with(node.local_addr(), Duration::from_secs(5), auth)
}

/// Broadcasts through `client` until the ring has formed (no quorum at first), then returns.
fn broadcast_when_ready(client: &mut Client, payload: &[u8]) -> u64 {
    let until = Instant::now() + DEADLINE;
    // Bounded by the deadline.
    loop {
        match client.broadcast(payload) {
            Ok(seq) => return seq,
            Err(e) if Instant::now() < until && matches!(e, ClientError::Rejected { .. }) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("broadcast: {e}"),
        }
    }
}

#[test]
fn a_keyed_ring_and_its_clients_work_with_macs_and_with_encryption() {
    init();
    for encrypt in [false, true] {
        let auth = Auth::new(&key(1), CLUSTER_NAME, encrypt);
        let nodes: Vec<Node> = keyed(3, &auth).into_iter().map(start).collect();
        let mut clients: Vec<Client> = nodes.iter().map(|n| client(n, Some(&auth)).unwrap()).collect();
        let first = broadcast_when_ready(&mut clients[0], b"keyed hello");
        for (i, client) in clients.iter_mut().enumerate() {
            for j in 0..20 {
                client.broadcast(format!("from client {i}, {j}").as_bytes()).unwrap();
            }
        }
        let histories: Vec<_> = nodes.iter().map(|n| history(&take_deliveries(n, 61, DEADLINE))).collect();
        assert!(histories.windows(2).all(|w| w[0] == w[1]), "encrypt {encrypt}: one history");
        assert_eq!(histories[0][0].0, first);
        let status = clients[2].status().unwrap();
        assert!(status.primary && status.ring.len() == 3);
        for node in nodes {
            let counters = node.counters();
            assert_eq!((counters.wrong_key, counters.forged, counters.malformed), (0, 0, 0), "{counters}");
            node.stop().unwrap();
        }
    }
}

#[test]
fn a_member_with_a_wrong_key_is_refused_and_never_joins() {
    init();
    let auth = Auth::new(&key(1), CLUSTER_NAME, false);
    let mut configs = keyed(3, &auth);
    configs[2].auth = Some(Auth::new(&key(2), CLUSTER_NAME, false));
    let nodes: Vec<Node> = configs.into_iter().map(start).collect();
    let mut good = client(&nodes[0], Some(&auth)).unwrap();
    broadcast_when_ready(&mut good, b"two of three");
    let deadline = Instant::now() + DEADLINE;
    // Bounded by the deadline: both sides keep dialling, each attempt is refused and counted.
    while nodes.iter().any(|n| n.counters().wrong_key == 0) {
        assert!(Instant::now() < deadline, "every node sees a wrong-key handshake");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = good.status().unwrap();
    assert_eq!(status.ring.len(), 2, "the wrong-key member is not in the view: {status:?}");
    // Its own clients (holding its key) cannot get anything committed: it has no quorum.
    let wrong = Auth::new(&key(2), CLUSTER_NAME, false);
    let mut outsider = client(&nodes[2], Some(&wrong)).unwrap();
    assert!(!outsider.status().unwrap().primary);
    // A client of the real cluster name but another name's key is refused too.
    match client(&nodes[0], Some(&Auth::new(&key(1), "another-cluster", false))) {
        Err(ClientError::Handshake { problem, .. }) => assert!(problem.contains("closed"), "{problem}"),
        other => panic!("a client of another cluster name got {:?}", other.map(|_| "a connection")),
    }
    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
fn open_and_keyed_or_mac_and_encrypted_ends_refuse_each_other() {
    init();
    let mac = Auth::new(&key(1), CLUSTER_NAME, false);
    let nodes: Vec<Node> = keyed(1, &mac).into_iter().map(start).collect();
    let encrypted = Auth::new(&key(1), CLUSTER_NAME, true);
    assert!(matches!(client(&nodes[0], Some(&encrypted)), Err(ClientError::Handshake { .. })));
    // Its open handshake is refused with the reason (docs/PROTOCOL.md §2.3).
    match client(&nodes[0], None).and_then(|mut open| open.status()) {
        Err(ClientError::Handshake { problem, .. }) => assert!(problem.contains("--key-file"), "{problem}"),
        other => panic!("an open client of a keyed node got {other:?}"),
    }
    // The node counts each refusal as it closes the connection, just after its reply went out.
    let until = Instant::now() + DEADLINE;
    while nodes[0].counters().handshakes_failed < 2 {
        assert!(Instant::now() < until, "{}", nodes[0].counters());
        std::thread::sleep(Duration::from_millis(10));
    }
    nodes.into_iter().for_each(|n| n.stop().unwrap());

    // And a keyed client of an open node.
    let open_nodes: Vec<Node> = configs(&free_ports(1)).into_iter().map(start).collect();
    assert!(matches!(client(&open_nodes[0], Some(&mac)), Err(ClientError::Handshake { .. })));
    open_nodes.into_iter().for_each(|n| n.stop().unwrap());
}

#[test]
fn an_overloaded_node_answers_busy_and_its_queue_stays_bounded() {
    init();
    // One message per token visit, 64 KiB payloads and room for three of them: a client
    // pipelining 2000 must meet "busy".
    let mut configs = configs(&free_ports(2));
    for config in &mut configs {
        config.core.batch_max = 1;
        config.core.window_max = 1;
        config.core.payload_bytes_max = 64 << 10;
        config.core.queue_bytes_max = 3 * (64 << 10);
    }
    let nodes: Vec<Node> = configs.into_iter().map(start).collect();
    let node = &nodes[0];
    let mut client = client(node, None).unwrap();
    broadcast_when_ready(&mut client, b"ready");
    // The embedders take their deliveries meanwhile: their channels are bounded in bytes
    // (8 MiB, 128 of these payloads), and a member whose embedder stops taking them stops too.
    // Each counts them up to a last broadcast sent once the flood is answered.
    let drains: Vec<_> = nodes
        .iter()
        .map(|node| {
            let deliveries = node.deliveries().clone();
            std::thread::spawn(move || {
                let mut taken = 0usize;
                // Bounded by the count of broadcasts and by the deadline.
                loop {
                    match deliveries.recv_timeout(2 * DEADLINE) {
                        Ok(delivery) if &delivery.message.payload[..] == b"last" => return taken,
                        Ok(_) => taken += 1,
                        Err(e) => panic!("{taken} deliveries, then {e}"),
                    }
                }
            })
        })
        .collect();
    let payload = vec![0x42; 64 << 10];
    let sent = 2000;
    for _ in 0..sent {
        client.send_broadcast(&payload).unwrap();
    }
    let (mut committed, mut busy) = (0, 0);
    for _ in 0..sent {
        match client.recv_reply(DEADLINE).unwrap() {
            ClientReply::Committed { .. } => committed += 1,
            ClientReply::Error { code: ErrorCode::Busy, message, .. } => {
                assert!(message.contains("retry"), "{message}");
                busy += 1
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!("overload: {committed} committed, {busy} busy of {sent}");
    assert!(busy > 0 && committed > 0, "{committed} committed, {busy} busy");
    assert_eq!(node.counters().busy_replies, busy);
    // Every member delivers "ready" and each committed broadcast, then the last one.
    client.broadcast(b"last").unwrap();
    for drain in drains {
        assert_eq!(drain.join().unwrap(), committed as usize + 1);
    }
    nodes.into_iter().for_each(|n| n.stop().unwrap());
}

#[test]
fn a_request_over_the_size_limit_is_refused_naming_the_limit() {
    init();
    let auth = Auth::new(&key(3), CLUSTER_NAME, false);
    let node = start(keyed(1, &auth).remove(0));
    let mut client = client(&node, Some(&auth)).unwrap();
    broadcast_when_ready(&mut client, b"small");
    // One byte over the default payload maximum (1 MiB) fits the request limit (payload plus
    // envelope), so the protocol thread refuses it, naming the maximum; the link stays up.
    let request = client.send_broadcast(&vec![1; (1 << 20) + 1]).unwrap();
    match client.recv_reply(DEADLINE) {
        Ok(ClientReply::Error { request: answered, code: ErrorCode::BadRequest, message }) => {
            assert_eq!(answered, request);
            assert_eq!(message, "the payload exceeds this node's maximum of 1048576 bytes");
        }
        other => panic!("a payload one byte too large got {other:?}"),
    }
    // The client library allows up to one frame: the event loop refuses this one as it arrives.
    let request = client.send_broadcast(&vec![1; 2 << 20]).unwrap();
    match client.recv_reply(DEADLINE) {
        Ok(ClientReply::Error { request: answered, code: ErrorCode::BadRequest, message }) => {
            assert_eq!(answered, request);
            assert!(message.contains("exceeds this node's maximum"), "{message}");
            assert!(message.ends_with("(a payload of at most 1048576 bytes)"), "{message}");
        }
        other => panic!("an oversized request got {other:?}"),
    }
    assert_eq!(node.counters().too_large, 1);
    node.stop().unwrap();
}
