//! TEMPORARY SHIM, discarded at merge in favour of the real node runtime (branch `node`).
//!
//! It has the real `Node`'s signatures and serves clients on its listen port, but orders
//! messages alone: every submission is committed at once with the next seq, as if the node were
//! a ring of one. That is enough to exercise the client, the CLI and a one-node demo.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::config::CoreConfig;
use crate::core::{CoreStatus, Delivery, ViewInfo};
use crate::error::Error;
use crate::ids::{MsgId, NodeId, ViewId};
use crate::replication::DigestLog;
use crate::wire::{self, ClientReply, ClientRequest, Frame, Message, NodeStatus};

/// How to run one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The protocol settings.
    pub core: CoreConfig,
    /// Where to listen for peers and clients.
    pub listen: SocketAddr,
    /// Every member's address, this one included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
}

impl NodeConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), Error> {
        Ok(self.core.validate()?)
    }
}

struct State {
    me: crate::ids::Member,
    next_seq: u64,
    chain: u64,
    deliveries: Sender<Delivery>,
}

/// A running node (shim).
pub struct Node {
    state: Arc<Mutex<State>>,
    deliveries: Receiver<Delivery>,
    local_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: JoinHandle<()>,
}

impl Node {
    /// Binds the listener and starts serving clients.
    pub fn start(config: NodeConfig) -> Result<Node, Error> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen).map_err(|e| Error::io(format!("bind {}", config.listen), e))?;
        let local_addr = listener.local_addr().map_err(|e| Error::io("local address", e))?;
        let (tx, deliveries) = crossbeam_channel::bounded(65_536);
        let state = Arc::new(Mutex::new(State {
            me: config.core.me,
            next_seq: 1,
            chain: DigestLog::default().chain,
            deliveries: tx,
        }));
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (state, stopping) = (state.clone(), stopping.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let state = state.clone();
                        std::thread::spawn(move || serve(stream, state));
                    }
                }
            })
        };
        Ok(Node { state, deliveries, local_addr, stopping, acceptor })
    }

    /// Orders `payload`; returns its submission tag.
    pub fn submit(&self, payload: Vec<u8>) -> Result<u64, Error> {
        Ok(commit(&self.state, &payload))
    }

    /// Agreed deliveries, in order.
    pub fn deliveries(&self) -> &Receiver<Delivery> {
        &self.deliveries
    }

    /// The node's status.
    pub fn status(&self) -> Result<CoreStatus, Error> {
        Ok(status(&self.state))
    }

    /// The bound listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving and joins the acceptor.
    pub fn stop(self) -> Result<(), Error> {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.local_addr);
        let _ = self.acceptor.join();
        Ok(())
    }
}

fn commit(state: &Mutex<State>, payload: &[u8]) -> u64 {
    let mut state = state.lock().unwrap();
    let seq = state.next_seq;
    state.next_seq += 1;
    let id = MsgId { origin: state.me.id, incarnation: state.me.incarnation, counter: seq };
    state.chain = DigestLog::extend(state.chain, seq, id, payload);
    let message = Message { seq, id, attempt: 0, payload: payload.into() };
    let _ = state.deliveries.try_send(Delivery { view: ViewId(1), message });
    seq
}

fn status(state: &Mutex<State>) -> CoreStatus {
    let state = state.lock().unwrap();
    let done = state.next_seq - 1;
    CoreStatus {
        member: state.me,
        view: ViewInfo { view: ViewId(1), ring: vec![state.me], primary: true },
        delivered: done,
        delivery_digest: state.chain,
        committed_upto: done,
        state_digest: state.chain,
        rotations: 0,
        queued: 0,
    }
}

fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65_536];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        while let Ok(Some(len)) = wire::frame_len(&buf) {
            let reply = match wire::decode(&buf[..len]) {
                Ok(Frame::Request(ClientRequest::Broadcast { request, payload })) => {
                    ClientReply::Committed { request, seq: commit(&state, &payload) }
                }
                Ok(Frame::Request(ClientRequest::Status { request })) => {
                    let s = status(&state);
                    let status = NodeStatus {
                        member: s.member,
                        view: s.view.view,
                        primary: true,
                        ring: s.view.ring,
                        delivered: s.delivered,
                        committed_upto: s.committed_upto,
                        state_digest: s.state_digest,
                        delivery_digest: s.delivery_digest,
                        rotations: 0,
                    };
                    ClientReply::Status { request, status }
                }
                _ => return,
            };
            wire::encode_reply(&reply, &mut out);
            buf.drain(..len);
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}
