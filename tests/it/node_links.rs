//! The one-link-per-pair rule against a scripted peer (PROTOCOL.md §2): when both ends dial at
//! once, the connection dialled by the lower id survives, at whichever end the node is; the
//! higher id's dial is parked, never closed while the lower id's dial is undecided, so a dial the
//! other end closes always means a failure. The nodes run open, so the script's proofs are zero;
//! the rule runs once the dialler's proof is in.

use crate::in_process;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use harness::wire::{decode, encode_peer, frame_len, AuthMode, Frame, PeerFrame};
use harness::{Member, Node, NodeId};
use in_process::*;

/// A two-member cluster where the node is `node_id` and the other member is played by the test,
/// listening on `scripted`.
fn node_against_script(node_id: u16, scripted: &TcpListener) -> Node {
    let own = free_ports(1)[0];
    let script = scripted.local_addr().unwrap().port();
    let ports = if node_id == 1 { [own, script] } else { [script, own] };
    start(configs(&ports).remove(usize::from(node_id - 1)))
}

fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    // Bounded by the deadline.
    while Instant::now() < until {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    panic!("the node did not dial within 10 s");
}

/// The next frame on `stream`, or `None` once the node closes it.
fn read_frame(stream: &mut TcpStream) -> Option<PeerFrame> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1];
    // One byte at a time so nothing after the first frame is consumed; bounded by the frame cap.
    for _ in 0..harness::wire::FRAME_BYTES_MAX {
        if let Some(len) = frame_len(&buf).unwrap() {
            match decode(&buf[..len]).unwrap() {
                Frame::Peer(frame) => return Some(frame),
                other => panic!("expected a peer frame, got {other:?}"),
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(_) => buf.push(chunk[0]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!("frame too long");
}

fn send(stream: &mut TcpStream, frame: PeerFrame) {
    let mut bytes = Vec::new();
    encode_peer(&frame, &mut bytes);
    stream.write_all(&bytes).unwrap();
}

fn member(id: u16) -> Member {
    Member { id: NodeId(id), incarnation: 1 }
}

/// Dials the node as `from` and sends `Hello`; the node answers with its `Challenge`.
fn hello(stream: &mut TcpStream, from: u16, to: u16) {
    let mode = AuthMode::Open;
    send(
        stream,
        PeerFrame::Hello {
            cluster: CLUSTER,
            mode,
            from: member(from),
            to: NodeId(to),
            nonce: [1; 32],
            versions: harness::wire::Versions::ALL,
        },
    );
    match read_frame(stream) {
        Some(PeerFrame::Challenge { from, mode: AuthMode::Open, .. }) => assert_eq!(from.id, NodeId(to)),
        other => panic!("expected the node's challenge, got {other:?}"),
    }
}

#[test]
fn crossed_dials_keep_the_lower_ids_dial_when_the_node_is_higher() {
    init();
    let script = TcpListener::bind("127.0.0.1:0").unwrap();
    let node = node_against_script(2, &script);
    let mut nodes_dial = accept(&script);
    assert!(matches!(read_frame(&mut nodes_dial), Some(PeerFrame::Hello { to: NodeId(1), .. })));
    // While the node's dial waits for our HelloAck, member 1 dials too: its dial wins.
    let mut our_dial = TcpStream::connect(node.local_addr()).unwrap();
    hello(&mut our_dial, 1, 2);
    send(&mut our_dial, PeerFrame::Proof { proof: [0; 32] });
    match read_frame(&mut our_dial) {
        Some(PeerFrame::HelloAck { .. }) => {}
        other => panic!("expected the node's hello-ack, got {other:?}"),
    }
    assert_eq!(read_frame(&mut nodes_dial), None, "the node closes its own, losing dial");
    node.stop().unwrap();
}

#[test]
fn crossed_dials_keep_the_lower_ids_dial_when_the_node_is_lower() {
    init();
    let script = TcpListener::bind("127.0.0.1:0").unwrap();
    let node = node_against_script(1, &script);
    let mut nodes_dial = accept(&script);
    assert!(matches!(read_frame(&mut nodes_dial), Some(PeerFrame::Hello { to: NodeId(2), .. })));
    // Member 2 dials while the node's dial is pending: the node's dial wins. The node parks ours
    // unanswered rather than closing it, so that member 2 never reads a closed dial as a crash.
    let mut our_dial = TcpStream::connect(node.local_addr()).unwrap();
    hello(&mut our_dial, 2, 1);
    send(&mut our_dial, PeerFrame::Proof { proof: [0; 32] });
    // Completing the node's dial brings the link up: the fresh node asks to join on it.
    send(
        &mut nodes_dial,
        PeerFrame::Challenge {
            from: member(2),
            mode: AuthMode::Open,
            nonce: [2; 32],
            versions: harness::wire::Versions::ALL,
        },
    );
    assert!(matches!(read_frame(&mut nodes_dial), Some(PeerFrame::Proof { .. })));
    send(&mut nodes_dial, PeerFrame::HelloAck { proof: [0; 32] });
    match read_frame(&mut nodes_dial) {
        Some(PeerFrame::Join { .. } | PeerFrame::Heartbeat) => {}
        other => panic!("expected traffic on the surviving link, got {other:?}"),
    }
    // Only now is our parked dial closed, unanswered.
    assert_eq!(read_frame(&mut our_dial), None, "the node closes the higher id's dial once its own is up");
    node.stop().unwrap();
}

#[test]
fn a_parked_crossed_dial_becomes_the_link_when_the_lower_ids_own_dial_fails() {
    init();
    let script = TcpListener::bind("127.0.0.1:0").unwrap();
    let node = node_against_script(1, &script);
    let nodes_dial = accept(&script);
    // Member 2 dials while the node's dial is pending: parked.
    let mut our_dial = TcpStream::connect(node.local_addr()).unwrap();
    hello(&mut our_dial, 2, 1);
    send(&mut our_dial, PeerFrame::Proof { proof: [0; 32] });
    // The node's own dial fails (here: closed by us before its handshake): our dial is the link.
    drop(nodes_dial);
    match read_frame(&mut our_dial) {
        Some(PeerFrame::HelloAck { .. }) => {}
        other => panic!("expected the node to answer the parked dial, got {other:?}"),
    }
    match read_frame(&mut our_dial) {
        Some(PeerFrame::Join { .. } | PeerFrame::Heartbeat) => {}
        other => panic!("expected traffic on the link, got {other:?}"),
    }
    node.stop().unwrap();
}

#[test]
fn a_dial_closed_by_the_lower_id_is_a_failure_at_once_not_a_crossing() {
    // A crashing member's listener may complete a TCP handshake and then reset it. The higher id
    // used to take that for a crossed dial and wait half a token timeout before reporting the
    // link down; now a closed dial is a failed one, so the node redials after its short backoff.
    // With a token timeout of 60 s the old wait (30 s) would outlast this test's deadline.
    init();
    let script = TcpListener::bind("127.0.0.1:0").unwrap();
    let own = free_ports(1)[0];
    let ports = [script.local_addr().unwrap().port(), own];
    let mut config = configs(&ports).remove(1);
    config.core.token_timeout = Duration::from_secs(60);
    let node = start(config);
    let mut first = accept(&script);
    assert!(matches!(read_frame(&mut first), Some(PeerFrame::Hello { to: NodeId(1), .. })));
    drop(first);
    let mut second = accept(&script);
    assert!(matches!(read_frame(&mut second), Some(PeerFrame::Hello { to: NodeId(1), .. })));
    node.stop().unwrap();
}
