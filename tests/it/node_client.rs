//! A plain TCP client talks to a node: a broadcast is answered once committed, a status request
//! with the node's status.

use crate::in_process;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::wire::{decode, encode_request, frame_len, ClientReply, ClientRequest, Frame};
use harness::NodeId;
use in_process::*;

/// Reads one whole reply frame, failing after ten seconds.
fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>) -> ClientReply {
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 4096];
    // Bounded by the deadline.
    while Instant::now() < until {
        if let Some(len) = frame_len(buf).expect("a well-formed reply") {
            let frame = decode(&buf[..len]).expect("a decodable reply");
            buf.drain(..len);
            match frame {
                Frame::Reply(reply) => return reply,
                other => panic!("expected a reply, got {other:?}"),
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => panic!("the node closed the client connection"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!("no reply within 10 s");
}

#[test]
fn a_client_broadcast_is_answered_when_committed_and_status_is_reported() {
    init();
    let nodes: Vec<_> = configs(&free_ports(2)).into_iter().map(start).collect();
    let mut stream = TcpStream::connect(nodes[0].local_addr()).unwrap();
    let mut bytes = Vec::new();
    encode_request(
        &ClientRequest::Broadcast { request: 7, payload: b"hello ring".to_vec().into() },
        &mut bytes,
    );
    encode_request(&ClientRequest::Broadcast { request: 8, payload: b"second".to_vec().into() }, &mut bytes);
    stream.write_all(&bytes).unwrap();
    let mut buf = Vec::new();
    let first = read_reply(&mut stream, &mut buf);
    let second = read_reply(&mut stream, &mut buf);
    let (ClientReply::Committed { request: 7, seq: a }, ClientReply::Committed { request: 8, seq: b }) =
        (first.clone(), second.clone())
    else {
        panic!("expected two commits in order, got {first:?} and {second:?}");
    };
    assert!(a >= 1 && b > a);
    // Both members deliver the client's message at the seq the client was told.
    for node in &nodes {
        let delivered = take_deliveries(node, 2, Duration::from_secs(30));
        assert_eq!(delivered[0].message.seq, a);
        assert_eq!(&*delivered[0].message.payload, b"hello ring");
    }

    bytes.clear();
    encode_request(&ClientRequest::Status { request: 9 }, &mut bytes);
    stream.write_all(&bytes).unwrap();
    match read_reply(&mut stream, &mut buf) {
        ClientReply::Status { request: 9, status } => {
            assert_eq!(status.member.id, NodeId(1));
            assert_eq!(status.ring.len(), 2);
            assert!(status.primary);
            assert_eq!(status.delivered, 2);
            assert!(status.committed_upto >= b);
        }
        other => panic!("expected a status reply, got {other:?}"),
    }

    // A client that hangs up with a broadcast pending does not disturb the node.
    let mut quitter = TcpStream::connect(nodes[1].local_addr()).unwrap();
    bytes.clear();
    encode_request(&ClientRequest::Broadcast { request: 1, payload: b"bye".to_vec().into() }, &mut bytes);
    quitter.write_all(&bytes).unwrap();
    drop(quitter);
    for node in &nodes {
        let delivered = take_deliveries(node, 1, Duration::from_secs(30));
        assert_eq!(&*delivered[0].message.payload, b"bye");
    }
    for node in nodes {
        node.stop().unwrap();
    }
}
