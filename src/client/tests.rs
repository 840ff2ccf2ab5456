//! Unit tests of the client against a scripted node on loopback: pipelining, kept replies,
//! refusals, timeouts, a closed connection and garbage bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::Duration;

use super::*;
use crate::ids::{Member, NodeId, ViewId};
use crate::wire::ErrorCode;

const WAIT: Duration = Duration::from_secs(5);

/// A node that answers each batch of requests it reads with `answer(requests)`'s bytes.
fn scripted_node(
    mut answer: impl FnMut(Vec<ClientRequest>) -> Option<Vec<u8>> + Send + 'static,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Bounded: a test never needs more than a few hundred reads.
        for _ in 0..1000 {
            let n = match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut requests = Vec::new();
            while let Some(len) = wire::frame_len(&buf).unwrap() {
                match wire::decode(&buf[..len]).unwrap() {
                    Frame::Request(request) => requests.push(request),
                    // The open handshake every connection of this build starts with.
                    Frame::Peer(PeerFrame::Hello { .. }) => {
                        let from = Member { id: NodeId(2), incarnation: 7 };
                        let versions = Versions::ALL;
                        let challenge =
                            PeerFrame::Challenge { from, mode: AuthMode::Open, nonce: [0; 32], versions };
                        let mut out = Vec::new();
                        wire::encode_peer(&challenge, &mut out);
                        stream.write_all(&out).unwrap();
                    }
                    Frame::Peer(PeerFrame::Proof { .. }) => {
                        let mut out = Vec::new();
                        wire::encode_peer(&PeerFrame::HelloAck { proof: [0; 32] }, &mut out);
                        stream.write_all(&out).unwrap();
                    }
                    other => panic!("client sent {other:?}"),
                }
                buf.drain(..len);
            }
            if requests.is_empty() {
                continue;
            }
            match answer(requests) {
                Some(bytes) => stream.write_all(&bytes).unwrap(),
                None => return,
            }
        }
    });
    (addr, handle)
}

fn reply_bytes(replies: &[ClientReply]) -> Vec<u8> {
    let mut out = Vec::new();
    for reply in replies {
        wire::encode_reply(reply, &mut out);
    }
    out
}

fn status_of(request: u64) -> ClientReply {
    let member = Member { id: NodeId(2), incarnation: 7 };
    let status = NodeStatus {
        member,
        view: ViewId(1),
        primary: true,
        ring: vec![member],
        delivered: 40,
        committed_upto: 40,
        state_digest: 0xfeed,
        delivery_digest: 0xbeef,
        rotations: 3,
        revision: 2,
        rotation_millihertz: 4000,
        role: crate::wire::StandbyRole::Hot,
        last_checkpoint: 0,
        replicas: 1,
        configured: 1,
        min_replicas: 1,
        max_step_us: 0,
        state_bytes: 0,
        links_up: 0,
        links_dialled: 0,
        links_accepted: 0,
        version: "0.1.0".into(),
        metrics: Vec::new(),
    };
    ClientReply::Status { request, status }
}

#[test]
fn broadcast_waits_for_its_commit() {
    let (addr, node) = scripted_node(|requests| {
        let replies: Vec<_> = requests
            .iter()
            .map(|r| match r {
                ClientRequest::Broadcast { request, payload } => {
                    assert_eq!(&payload[..], b"hello");
                    ClientReply::Committed { request: *request, seq: 41 }
                }
                ClientRequest::Status { request } => status_of(*request),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        Some(reply_bytes(&replies))
    });
    let mut client = Client::connect(addr, WAIT).unwrap();
    assert_eq!(client.broadcast(b"hello").unwrap(), 41);
    let status = client.status().unwrap();
    assert_eq!((status.delivered, status.delivery_digest), (40, 0xbeef));
    assert_eq!(client.in_flight(), 0);
    drop(client);
    node.join().unwrap();
}

#[test]
fn pipelined_replies_may_come_in_any_order_and_mix_with_status() {
    // The node answers the broadcasts only once the status request arrives, in reverse order,
    // after the status reply: `status` must keep them for `recv_reply`.
    let mut held = Vec::new();
    let (addr, node) = scripted_node(move |requests| {
        let mut replies = Vec::new();
        for request in requests {
            match request {
                ClientRequest::Broadcast { request, .. } => held.push(request),
                ClientRequest::Status { request } => {
                    replies.push(status_of(request));
                    for (i, held) in held.drain(..).rev().enumerate() {
                        replies.push(ClientReply::Committed { request: held, seq: 100 + i as u64 });
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        Some(reply_bytes(&replies))
    });
    let mut client = Client::connect(addr, WAIT).unwrap();
    let sent: Vec<u64> = (0..3).map(|i| client.send_broadcast(format!("m{i}").as_bytes()).unwrap()).collect();
    assert_eq!(client.in_flight(), 3);
    assert_eq!(client.status().unwrap().member.id, NodeId(2));
    let mut answered = Vec::new();
    for _ in 0..3 {
        match client.recv_reply(WAIT).unwrap() {
            ClientReply::Committed { request, .. } => answered.push(request),
            other => panic!("{other:?}"),
        }
    }
    answered.sort();
    assert_eq!(answered, sent);
    assert_eq!(client.in_flight(), 0);
    drop(client);
    node.join().unwrap();
}

#[test]
fn a_refusal_is_an_error_of_broadcast_and_a_value_of_recv_reply() {
    let (addr, node) = scripted_node(|requests| {
        let replies: Vec<_> = requests
            .iter()
            .map(|r| match r {
                ClientRequest::Broadcast { request, .. } | ClientRequest::Status { request } => {
                    ClientReply::Error {
                        request: *request,
                        code: ErrorCode::Busy,
                        message: "queue full".into(),
                    }
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        Some(reply_bytes(&replies))
    });
    let mut client = Client::connect(addr, WAIT).unwrap();
    let error = client.broadcast(b"x").unwrap_err();
    assert!(error.is_retryable(), "{error}");
    let request = client.send_broadcast(b"y").unwrap();
    match client.recv_reply(WAIT).unwrap() {
        ClientReply::Error { request: r, code: ErrorCode::Busy, .. } => assert_eq!(r, request),
        other => panic!("{other:?}"),
    }
    drop(client);
    node.join().unwrap();
}

#[test]
fn a_silent_node_times_out_and_a_closed_one_is_reported() {
    let (addr, node) = scripted_node(|_| Some(Vec::new()));
    let mut client = Client::connect(addr, Duration::from_millis(200)).unwrap();
    let error = client.broadcast(b"x").unwrap_err();
    assert!(matches!(error, ClientError::Timeout { waiting_for: "commit", .. }), "{error}");
    drop(client);
    node.join().unwrap();

    let (addr, node) = scripted_node(|_| None);
    let mut client = Client::connect(addr, WAIT).unwrap();
    client.send_broadcast(b"x").unwrap();
    let error = client.recv_reply(WAIT).unwrap_err();
    assert!(matches!(error, ClientError::Closed { .. }), "{error}");
    node.join().unwrap();
}

#[test]
fn garbage_and_unsolicited_replies_are_errors_not_panics() {
    let (addr, node) = scripted_node(|_| Some(vec![0xff; 64]));
    let mut client = Client::connect(addr, WAIT).unwrap();
    let error = client.broadcast(b"x").unwrap_err();
    assert!(matches!(error, ClientError::Decode { .. }), "{error}");
    drop(client);
    node.join().unwrap();

    let (addr, node) =
        scripted_node(|_| Some(reply_bytes(&[ClientReply::Committed { request: 99, seq: 1 }])));
    let mut client = Client::connect(addr, WAIT).unwrap();
    let error = client.broadcast(b"x").unwrap_err();
    assert!(matches!(error, ClientError::Unexpected { .. }), "{error}");
    drop(client);
    node.join().unwrap();
}

#[test]
fn nothing_in_flight_and_oversized_payloads_fail_at_once() {
    let (addr, node) = scripted_node(|_| None);
    let mut client = Client::connect(addr, WAIT).unwrap();
    assert!(matches!(client.recv_reply(WAIT), Err(ClientError::Unexpected { .. })));
    let big = vec![0u8; PAYLOAD_BYTES_MAX + 1];
    assert!(matches!(client.send_broadcast(&big), Err(ClientError::PayloadTooLarge { .. })));
    drop(client);
    node.join().unwrap();
}

#[test]
fn connecting_to_a_closed_port_names_the_address() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let error = Client::connect(addr, WAIT).err().expect("nothing listens");
    assert!(error.to_string().starts_with(&format!("connect to {addr}")), "{error}");
}

/// Decodes the command of an `Execute` request.
fn command_of(request: &ClientRequest) -> (u64, crate::replication::Command) {
    match request {
        ClientRequest::Execute { request, command, .. } => {
            (*request, crate::replication::Command::decode(command).expect("a valid command"))
        }
        other => panic!("expected an execute, got {other:?}"),
    }
}

#[test]
fn a_write_is_retried_at_another_member_with_the_same_session() {
    use crate::replication::{Action, Outcome};
    use std::sync::mpsc;
    // The first member takes the request and dies without answering; the second answers.
    let (seen_tx, seen) = mpsc::channel();
    let first_seen = seen_tx.clone();
    let (dying, dying_node) = scripted_node(move |requests| {
        first_seen.send(command_of(&requests[0]).1).unwrap();
        None
    });
    let (healthy, healthy_node) = scripted_node(move |requests| {
        let (request, command) = command_of(&requests[0]);
        seen_tx.send(command).unwrap();
        let outcome = Outcome::Ok { revision: 7, deleted: 0, reads: vec![] }.encode();
        Some(reply_bytes(&[ClientReply::Executed { request, seq: 3, outcome: outcome.into() }]))
    });
    let options =
        ClusterOptions { request_timeout: WAIT, deadline: WAIT * 2, auth: None, ..ClusterOptions::default() };
    let mut cluster = ClusterClient::new(&[dying, healthy], options).unwrap();
    let outcome = cluster.put(b"k", b"v").unwrap();
    assert_eq!(outcome, Outcome::Ok { revision: 7, deleted: 0, reads: vec![] });
    let (first, retry) = (seen.recv().unwrap(), seen.recv().unwrap());
    assert_eq!(first, retry, "the retry repeats the session and the action");
    assert_eq!(first.action, Action::Put { key: b"k".to_vec(), value: b"v".to_vec() });
    assert_eq!(first.session, cluster.session());
    assert_eq!((first.session.request, cluster.connected_to()), (1, Some(healthy)));
    dying_node.join().unwrap();
    drop(cluster);
    healthy_node.join().unwrap();
}

#[test]
fn no_quorum_everywhere_is_reported_as_no_quorum_and_nobody_as_unreachable() {
    let refuse = |requests: Vec<ClientRequest>| {
        let (request, _) = command_of(&requests[0]);
        let message = "minority".to_string();
        Some(reply_bytes(&[ClientReply::Error { request, code: ErrorCode::NoQuorum, message }]))
    };
    let (addr, node) = scripted_node(refuse);
    let options = ClusterOptions {
        request_timeout: WAIT,
        deadline: Duration::from_millis(300),
        auth: None,
        ..ClusterOptions::default()
    };
    let mut cluster = ClusterClient::new(&[addr], options.clone()).unwrap();
    let error = cluster.put(b"k", b"v").unwrap_err();
    assert!(matches!(error, ClusterError::NoQuorum { .. }), "{error}");
    drop(cluster);
    node.join().unwrap();

    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cluster = ClusterClient::new(&[closed], options).unwrap();
    let error = cluster.get(b"k", crate::wire::Consistency::Stale).unwrap_err();
    assert!(matches!(error, ClusterError::Unreachable { .. }), "{error}");
    assert!(matches!(cluster.put(b"", b"v").unwrap_err(), ClusterError::BadRequest { .. }));
}

/// A member of protocol version 1 (docs/PROTOCOL.md §2.3): it refuses the first connection's
/// version-2 hello, by closing it (as builds before the refusal message did) or with an error of
/// version 1, and answers the second connection's plain version-1 status request.
fn member_of_version_1(refuse_with_error: bool) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let read_frame = |stream: &mut std::net::TcpStream| {
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            for _ in 0..100 {
                if let Some(len) = wire::frame_len(&buf).unwrap() {
                    return buf[..len].to_vec();
                }
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "the client closed");
                buf.extend_from_slice(&chunk[..n]);
            }
            panic!("no whole frame in 100 reads");
        };
        let (mut first, _) = listener.accept().unwrap();
        let hello = read_frame(&mut first);
        let refused = wire::decode_within(&hello, Versions::LEGACY).unwrap_err();
        assert_eq!(refused, crate::error::DecodeError::Version { theirs: 2, ours: Versions::LEGACY });
        if refuse_with_error {
            let reply =
                ClientReply::Error { request: 0, code: ErrorCode::BadRequest, message: refused.to_string() };
            let mut out = Vec::new();
            wire::encode_reply_in(1, &reply, &mut out);
            first.write_all(&out).unwrap();
        }
        drop(first);
        let (mut second, _) = listener.accept().unwrap();
        let request = read_frame(&mut second);
        let Ok((1, Frame::Request(ClientRequest::Status { request }))) =
            wire::decode_within(&request, Versions::LEGACY)
        else {
            panic!("expected a version-1 status request, got {request:02x?}");
        };
        let mut out = Vec::new();
        wire::encode_reply_in(1, &status_of(request), &mut out);
        second.write_all(&out).unwrap();
    });
    (addr, handle)
}

#[test]
fn a_member_of_version_1_is_asked_again_in_version_1_whether_it_closes_or_says_why() {
    for refuse_with_error in [false, true] {
        let (addr, node) = member_of_version_1(refuse_with_error);
        let mut client = Client::connect(addr, WAIT).unwrap();
        assert_eq!(client.protocol_version(), 1);
        let status = client.status().unwrap();
        // Version 1 carries neither the software version nor the metrics.
        assert_eq!((status.member.id, status.version.as_str(), status.metrics.len()), (NodeId(2), "", 0));
        node.join().unwrap();
    }
}

#[test]
fn a_client_of_version_1_sends_plain_version_1_requests_and_reads_a_version_1_status() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let node = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut header = [0u8; 6];
        stream.read_exact(&mut header).unwrap();
        // A status request of version 1, the first frame of the connection: no hello.
        assert_eq!(header[4..], [1, wire::FrameKind::StatusRequest as u8]);
        let mut rest = [0u8; 12];
        stream.read_exact(&mut rest).unwrap();
        let mut out = Vec::new();
        wire::encode_reply_in(1, &status_of(1), &mut out);
        stream.write_all(&out).unwrap();
    });
    let mut client = Client::connect_speaking(addr, WAIT, None, Versions::LEGACY).unwrap();
    assert_eq!(client.status().unwrap().state_digest, 0xfeed);
    node.join().unwrap();
}
