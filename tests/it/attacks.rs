//! Attacks on a keyed 3-node cluster of real processes while it runs a workload (issue #7): a
//! client without the key, with a wrong key, a peer impersonator, a replayed handshake, replayed,
//! reordered and bit-flipped records, oversized lengths, random bytes, half a frame then
//! silence, and thousands of idle connections. The workload must complete with one history at
//! every node, nothing forged may be delivered, every bad connection must be closed (and logged
//! with its address), and no node's memory may grow without bound (RSS before and after).
//!
//! The attacker's keyed sessions are spoken by hand with `harness::auth`, so the test can
//! capture, replay and damage the exact bytes a real client sends (docs/PROTOCOL.md §2).

use crate::common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{submit, use_client_auth, wait_for_total, wait_until, Nodes};
use harness::auth::{fresh_nonce, Auth, ClusterKey, Inbound, Sealer, Side, Transcript};
use harness::client::{Client, ClientError};
use harness::node::{payload_hash, read_log};
use harness::wire::{encode_peer, encode_request, AuthMode, ClientReply, ClientRequest, Frame, PeerFrame};
use harness::{Member, NodeId, RingMode};

const DEADLINE: Duration = Duration::from_secs(180);
/// Messages each node submits before the attacks (to warm up) and during them.
const WARM_UP: u64 = 1000;
const WORKLOAD: u64 = 3000;
/// Idle connections opened at once against one node.
const IDLE_CONNECTIONS: usize = 2000;
/// How much a node's resident memory may grow across the attacks.
const RSS_GROWTH_MAX_KIB: u64 = 64 << 10;

/// A hand-spoken keyed client session: its socket, its input and its sealer.
struct Session {
    stream: TcpStream,
    inbound: Inbound,
    sealer: Sealer,
    /// The plain bytes of its `Hello` and `Proof`, for replaying the handshake.
    handshake: Vec<u8>,
}

/// Writes bytes, ignoring a connection the node already closed.
fn write(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes);
}

/// The next frame, or `None` once the node closes the connection or `wait` passes.
fn next_frame(stream: &mut TcpStream, inbound: &mut Inbound, wait: Duration) -> Option<Frame> {
    let until = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    // Bounded by the deadline.
    while Instant::now() < until {
        if let Some(frame) =
            inbound.next_frame(harness::wire::FRAME_BYTES_MAX).expect("the node sends valid frames")
        {
            return Some(frame);
        }
        stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => inbound.extend(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Whether the node closes `stream` within `wait`, sending nothing more.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    // Bounded by the deadline.
    while Instant::now() < until {
        stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => return false,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Runs the client handshake with `auth` by hand; `None` if the node refuses it.
fn handshake(addr: SocketAddr, auth: &Auth) -> Option<Session> {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut inbound = Inbound::default();
    let me = Member { id: NodeId(0), incarnation: 0 };
    let nonce = fresh_nonce().unwrap();
    let mut hello = Vec::new();
    let frame = PeerFrame::Hello {
        cluster: auth.cluster(),
        mode: auth.mode(),
        from: me,
        to: NodeId(0),
        nonce,
        versions: harness::wire::Versions::ALL,
    };
    encode_peer(&frame, &mut hello);
    write(&mut stream, &hello);
    let (acceptor, acceptor_nonce) = match next_frame(&mut stream, &mut inbound, Duration::from_secs(5))? {
        Frame::Peer(PeerFrame::Challenge { from, nonce, .. }) => (from, nonce),
        other => panic!("expected a challenge, got {other:?}"),
    };
    let transcript = Transcript {
        mode: auth.mode(),
        cluster: auth.cluster(),
        dialer: me,
        acceptor,
        dialer_nonce: nonce,
        acceptor_nonce,
    };
    let mut proof = Vec::new();
    encode_peer(&PeerFrame::Proof { proof: auth.proof(Side::Dialer, &transcript) }, &mut proof);
    write(&mut stream, &proof);
    match next_frame(&mut stream, &mut inbound, Duration::from_secs(5))? {
        Frame::Peer(PeerFrame::HelloAck { proof }) => {
            assert!(auth.verify(Side::Acceptor, &transcript, &proof), "the node proves the key")
        }
        other => panic!("expected a hello-ack, got {other:?}"),
    }
    let (sealer, opener) = auth.session(Side::Dialer, &transcript);
    inbound.start_session(opener);
    hello.extend(proof);
    Some(Session { stream, inbound, sealer, handshake: hello })
}

/// The sealed record of one broadcast.
fn sealed_broadcast(session: &mut Session, request: u64, payload: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    encode_request(&ClientRequest::Broadcast { request, payload: payload.into() }, &mut plain);
    let mut record = Vec::new();
    session.sealer.seal(&plain, &mut record);
    record
}

/// A payload no one submits legitimately; it must never be delivered.
fn forged(what: &str) -> Vec<u8> {
    format!("forged-{what}").into_bytes()
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let kib = harness::procs::process_rss_kib(pid);
    assert!(kib > 0, "no VmRSS for pid {pid}");
    kib
}

/// One attack's story for the test output.
fn report(outcome: &mut Vec<String>, what: &str, result: &str) {
    eprintln!("attack: {what}: {result}");
    outcome.push(format!("{what}: {result}"));
}

/// Every attack, against `nodes`; returns the payloads that were forged and the one that was
/// legitimately sent once (and replayed).
fn attack(nodes: &Nodes, auth: &Auth, outcome: &mut Vec<String>) -> (Vec<Vec<u8>>, Vec<u8>) {
    let (n1, n2, n3) = (nodes.addr(1), nodes.addr(2), nodes.addr(3));
    let mut forgeries = Vec::new();

    // A client without the key: its open handshake is refused with an error that says why.
    forgeries.push(forged("no-key"));
    match Client::connect(n1, Duration::from_secs(5)).and_then(|mut open| open.broadcast(&forged("no-key"))) {
        Err(ClientError::Handshake { problem, .. }) if problem.contains("--key-file") => {
            report(outcome, "client without the key", &problem)
        }
        other => panic!("a client without the key got {other:?}"),
    }

    // A client with a wrong key: the node does not accept its proof.
    let wrong = Auth::new(&ClusterKey::generate().unwrap(), "harness", false);
    match Client::connect_with(n2, Duration::from_secs(5), Some(&wrong)) {
        Err(ClientError::Handshake { problem, .. }) => report(outcome, "client with a wrong key", &problem),
        Err(other) => panic!("a wrong-key client got {other}"),
        Ok(_) => panic!("a wrong-key client was accepted"),
    }

    // A peer impersonator: claims to be n2 dialling n1 with a made-up proof.
    let mut fake = TcpStream::connect(n1).unwrap();
    let mut inbound = Inbound::default();
    let member = Member { id: NodeId(2), incarnation: u64::MAX };
    let frame = PeerFrame::Hello {
        cluster: auth.cluster(),
        mode: AuthMode::Mac,
        from: member,
        to: NodeId(1),
        nonce: [7; 32],
        versions: harness::wire::Versions::ALL,
    };
    let mut bytes = Vec::new();
    encode_peer(&frame, &mut bytes);
    write(&mut fake, &bytes);
    assert!(matches!(
        next_frame(&mut fake, &mut inbound, Duration::from_secs(5)),
        Some(Frame::Peer(PeerFrame::Challenge { .. }))
    ));
    bytes.clear();
    encode_peer(&PeerFrame::Proof { proof: [0x5a; 32] }, &mut bytes);
    write(&mut fake, &bytes);
    assert!(
        next_frame(&mut fake, &mut inbound, Duration::from_secs(5)).is_none(),
        "no hello-ack for a fake peer"
    );
    report(
        outcome,
        "peer impersonation (n2, newer incarnation, wrong proof)",
        "closed before any link change",
    );

    // A legitimate session commits one broadcast; its bytes are then replayed.
    let mut session = handshake(n1, auth).expect("a keyed client is accepted");
    let legit = b"attack-replayed-once".to_vec();
    let record = sealed_broadcast(&mut session, 1, &legit);
    write(&mut session.stream, &record);
    match next_frame(&mut session.stream, &mut session.inbound, Duration::from_secs(30)) {
        Some(Frame::Reply(ClientReply::Committed { request: 1, .. })) => {}
        other => panic!("the legitimate broadcast was not committed: {other:?}"),
    }
    // The same record again on the same connection: its number is now 1, not 0.
    write(&mut session.stream, &record);
    assert!(
        closed_within(&mut session.stream, Duration::from_secs(5)),
        "a replayed record closes the connection"
    );
    report(outcome, "captured record replayed on its connection", "closed, delivered once");
    // The same record on a new session: other keys.
    let mut later = handshake(n2, auth).expect("a keyed client is accepted");
    write(&mut later.stream, &record);
    assert!(closed_within(&mut later.stream, Duration::from_secs(5)), "an old record closes a new session");
    report(outcome, "captured record replayed on a new connection", "closed, delivered once");
    // The captured handshake replayed blind: the node's fresh nonce makes the old proof wrong.
    let mut blind = TcpStream::connect(n1).unwrap();
    write(&mut blind, &session.handshake);
    let mut inbound = Inbound::default();
    // The node may close before its challenge goes out, since the proof was already there.
    for _ in 0..2 {
        match next_frame(&mut blind, &mut inbound, Duration::from_secs(5)) {
            None => break,
            Some(Frame::Peer(PeerFrame::Challenge { .. })) => {}
            Some(other) => panic!("a replayed handshake got {other:?}"),
        }
    }
    assert!(closed_within(&mut blind, Duration::from_secs(5)));
    report(outcome, "captured handshake replayed", "proof refused, closed");

    // Bit flips: every part of a record (length, body, tag) is covered.
    for (index, at) in [0usize, 6, 20, 40].into_iter().enumerate() {
        let mut session = handshake(n3, auth).expect("a keyed client is accepted");
        let payload = forged(&format!("flipped-{index}"));
        forgeries.push(payload.clone());
        let mut record = sealed_broadcast(&mut session, 1, &payload);
        let at = at.min(record.len() - 1);
        record[at] ^= 0x10;
        write(&mut session.stream, &record);
        assert!(closed_within(&mut session.stream, Duration::from_secs(5)), "flip at {at}");
    }
    report(outcome, "one bit flipped in a record's length, body or tag", "closed, not delivered");

    // Reordered records: the second sent first.
    let mut session = handshake(n1, auth).expect("a keyed client is accepted");
    forgeries.push(forged("reordered-0"));
    forgeries.push(forged("reordered-1"));
    let first = sealed_broadcast(&mut session, 1, &forged("reordered-0"));
    let second = sealed_broadcast(&mut session, 2, &forged("reordered-1"));
    write(&mut session.stream, &second);
    write(&mut session.stream, &first);
    assert!(closed_within(&mut session.stream, Duration::from_secs(5)));
    report(outcome, "records reordered", "closed, neither delivered");

    // Oversized lengths, before and after the handshake.
    let mut huge = TcpStream::connect(n2).unwrap();
    write(&mut huge, &[0xff, 0xff, 0xff, 0xff, 1, 1]);
    assert!(closed_within(&mut huge, Duration::from_secs(5)));
    let mut session = handshake(n2, auth).expect("a keyed client is accepted");
    write(&mut session.stream, &[0x7f, 0xff, 0xff, 0xff, 0]);
    assert!(closed_within(&mut session.stream, Duration::from_secs(5)));
    report(outcome, "announced lengths of 4 GiB and 2 GiB", "closed before buffering");

    // Random bytes.
    let mut rng = harness::rng::Rng::new(7);
    for addr in [n1, n2, n3] {
        let mut stream = TcpStream::connect(addr).unwrap();
        let bytes: Vec<u8> = (0..64 << 10).map(|_| rng.next_u64() as u8).collect();
        write(&mut stream, &bytes);
        assert!(closed_within(&mut stream, Duration::from_secs(5)));
    }
    report(outcome, "64 KiB of random bytes", "closed");

    // Half a frame, then silence: closed at the handshake deadline.
    let mut half = TcpStream::connect(n3).unwrap();
    let started = Instant::now();
    write(&mut half, &session.handshake[..10]);
    assert!(closed_within(&mut half, Duration::from_secs(8)));
    report(outcome, "half a hello, then silence", &format!("closed after {:.1?}", started.elapsed()));

    // Thousands of idle connections: the oldest unproven ones are evicted, the rest time out,
    // and a real client still gets in meanwhile.
    let mut idle: Vec<TcpStream> = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        match TcpStream::connect(n1) {
            Ok(stream) => idle.push(stream),
            Err(e) => panic!("idle connection {}: {e}", idle.len()),
        }
    }
    let mut status_client = common::client(n1, Duration::from_secs(5)).expect("a keyed client gets in");
    let status = status_client.status().expect("status during the flood");
    assert_eq!(status.member.id, NodeId(1));
    let until = Instant::now() + Duration::from_secs(15);
    let mut still_open = idle.len();
    for stream in &mut idle {
        let left = until.saturating_duration_since(Instant::now());
        if closed_within(stream, left) {
            still_open -= 1;
        }
    }
    assert_eq!(still_open, 0, "every idle connection is closed by the node");
    report(
        outcome,
        &format!("{IDLE_CONNECTIONS} idle connections"),
        "evicted or timed out; a keyed client got in",
    );

    (forgeries, legit)
}

/// A keyed ring of three, not started, and the credentials its clients prove (a fixed test key
/// is no secret).
fn keyed_nodes(name: &str) -> (Nodes, Auth) {
    let nodes = Nodes::new(name, 3, RingMode::Bidirectional);
    let key_file = nodes.dir().join("cluster.key");
    let key = ClusterKey::from_bytes(std::array::from_fn(|i| 0xa0 ^ i as u8));
    key.write_new(&key_file).unwrap();
    let auth = Auth::new(&key, harness::cli::DEFAULT_CLUSTER, false);
    use_client_auth(&nodes.addrs, &auth);
    let mut nodes = nodes;
    nodes.key_file = Some(key_file);
    (nodes, auth)
}

/// Runs `harness args`, bounded; returns the exit code and stdout and stderr.
fn run_cli(args: &[&str]) -> (Option<i32>, String) {
    let output = common::run_harness(args, Duration::from_secs(30));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

#[test]
fn client_commands_prove_the_key_and_are_refused_without_it() {
    common::init_logging();
    let (mut nodes, _) = keyed_nodes("keyed-cli");
    for id in 1..=3 {
        nodes.start(id);
    }
    let addrs = nodes.addrs.clone();
    wait_until("a primary view of three", Duration::from_millis(50), 2000, DEADLINE, || {
        addrs.iter().all(|addr| common::status(*addr).is_some_and(|s| s.primary && s.ring.len() == 3))
    });
    let cluster = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    let key_file = nodes.dir().join("cluster.key");
    let key = key_file.to_str().unwrap();
    let (code, text) = run_cli(&["put", "secured", "yes", "--cluster", &cluster, "--key-file", key]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run_cli(&["get", "secured", "--cluster", &cluster, "--key-file", key]);
    assert_eq!((code, text.trim()), (Some(0), "yes"));
    let (code, text) = run_cli(&["get", "secured", "--cluster", &cluster, "--timeout", "1000"]);
    assert_ne!(code, Some(0), "a client without the key read {text}");
    let (code, text) =
        run_cli(&["get", "secured", "--cluster", &cluster, "--key-file", key, "--cluster-name", "other"]);
    assert_ne!(code, Some(0), "a client of another cluster name read {text}");
    let (code, text) = run_cli(&["get", "secured", "--cluster", &cluster, "--encrypt"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--encrypt needs --key-file"), "{text}");
}

#[test]
fn attacks_on_a_keyed_cluster_change_nothing_the_workload_sees() {
    common::init_logging();
    let (mut nodes, auth) = keyed_nodes("attacks");
    nodes.delivery_logs = true;
    for id in 1..=3 {
        nodes.start(id);
    }
    let addrs = nodes.addrs.clone();
    // Warm up, so memory reaches its working size before it is measured.
    std::thread::scope(|s| {
        for (i, &addr) in addrs.iter().enumerate() {
            s.spawn(move || submit(addr, i as u16 + 1, WARM_UP, DEADLINE));
        }
    });
    wait_for_total(&addrs, 3 * WARM_UP, DEADLINE);
    let before: BTreeMap<u16, u64> = (1..=3).map(|id| (id, rss_kib(nodes.pid(id)))).collect();

    let mut outcome = Vec::new();
    let (forgeries, legit) = std::thread::scope(|s| {
        let workload: Vec<_> = addrs
            .iter()
            .enumerate()
            .map(|(i, &addr)| s.spawn(move || submit(addr, i as u16 + 11, WORKLOAD, DEADLINE)))
            .collect();
        let result = attack(&nodes, &auth, &mut outcome);
        for handle in workload {
            assert_eq!(handle.join().unwrap().len() as u64, WORKLOAD);
        }
        result
    });
    let total = 3 * (WARM_UP + WORKLOAD) + 1;
    let statuses = wait_for_total(&addrs, total, DEADLINE);
    assert!(statuses.windows(2).all(|w| w[0].delivery_digest == w[1].delivery_digest), "{statuses:?}");
    assert!(statuses.windows(2).all(|w| w[0].state_digest == w[1].state_digest));

    // Memory after the attacks, once the closed connections' buffers are gone.
    std::thread::sleep(Duration::from_secs(1));
    for id in 1..=3u16 {
        let after = rss_kib(nodes.pid(id));
        eprintln!("attack: n{id} RSS {} KiB before, {after} KiB after", before[&id]);
        assert!(after <= before[&id] + RSS_GROWTH_MAX_KIB, "n{id} grew from {} to {after} KiB", before[&id]);
    }

    // The delivery logs: one history, the replayed broadcast once, nothing forged.
    let mut logs = Vec::new();
    wait_until(
        "the delivery logs to be flushed",
        Duration::from_millis(100),
        200,
        Duration::from_secs(20),
        || {
            logs = (1..=3).map(|id| read_log(&nodes.delivery_log(id)).unwrap()).collect::<Vec<_>>();
            logs.iter().all(|log| log.len() as u64 == total)
        },
    );
    assert!(logs.windows(2).all(|w| w[0] == w[1]), "every node delivered one history");
    let count =
        |payload: &[u8]| logs[0].iter().filter(|line| line.payload_hash == payload_hash(payload)).count();
    assert_eq!(count(&legit), 1, "the replayed broadcast is delivered exactly once");
    for forgery in &forgeries {
        assert_eq!(count(forgery), 0, "{} was delivered", String::from_utf8_lossy(forgery));
    }

    let stopped = nodes.stop_all();
    assert!(stopped.values().all(|s| s.is_some_and(|s| s.success())), "{stopped:?}");
    let log = std::fs::read_to_string(nodes.log(1)).unwrap();
    for expected in ["wrong key", "fails authentication", "no hello in time", "127.0.0.1:"] {
        assert!(log.contains(expected), "n1's log does not mention {expected:?}");
    }
    eprintln!("attack summary:\n  {}", outcome.join("\n  "));
}
