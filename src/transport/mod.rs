//! The only socket code: one mio event-loop thread that owns the listener, every peer link and
//! every client connection, and does framing only.
//!
//! The loop reads into per-connection buffers, splits frames with `wire::frame_len`, decodes them
//! with `wire::decode` and hands the results to the protocol thread as `Event`s over a bounded
//! crossbeam channel. The protocol thread sends back `Command`s (already encoded bytes, dial,
//! disconnect, shutdown) over another bounded channel and wakes the loop with a `mio::Waker`.
//! The loop never blocks on the protocol thread: when the event channel is full it stops reading
//! sockets, so TCP flow control pushes back on the senders (docs/PROTOCOL.md §2 for links).
//! The listener is bound with SO_REUSEADDR so a restarted node can take its port back while old
//! connections sit in TIME_WAIT.
//!
//! Every connection is authenticated before it carries anything (`handshake`, `crate::auth`), and
//! everything an outsider can make the node hold is bounded: unproven connections
//! (`HANDSHAKES_MAX`, oldest evicted), their frames (`HANDSHAKE_FRAME_BYTES_MAX`), clients
//! (`clients_max`), their requests (`request_bytes_max`), the request bytes waiting for the
//! protocol thread (`CLIENT_BYTES_QUEUED_MAX`, after which clients are not read) and the time a
//! client may hold half a frame (`CLIENT_STALL_TIMEOUT`). Each refusal is counted (`Counters`).

mod closing;
mod conn;
mod counters;
mod event_loop;
mod handshake;
mod pressure;

pub use counters::{CounterSnapshot, Counters, TRAFFIC_CLASSES};
pub use pressure::CLIENTS_UNSENT_BYTES_MAX;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use socket2::{Domain, Protocol, Socket, Type};

use crate::auth::Auth;
use crate::budget::ByteBudget;
use crate::error::Error;
use crate::ids::{Member, NodeId};
use crate::wire::{ClientRequest, PeerFrame};

/// Most client connections one node serves at once; more are closed with a log line.
pub const CLIENTS_MAX: usize = 1024;
/// Most commands the protocol thread may queue for the loop before it waits.
pub const COMMANDS_QUEUED_MAX: usize = 8192;
/// Most bytes of encoded frames the protocol thread may queue for the loop before it waits
/// (docs/PROTOCOL.md §2.2): the loop moves them into the connections' write buffers at once, so
/// this only has to cover one burst of a step, such as a batch sent both ways round the ring.
pub const COMMANDS_BYTES_MAX: usize = 4 << 20;
/// Most events the loop may queue for the protocol thread before it stops reading sockets.
pub const EVENTS_QUEUED_MAX: usize = 8192;
/// Most bytes of decoded frames and requests (`PeerFrame::held_bytes`, `Event::held_bytes`) the
/// loop may queue for the protocol thread before it stops reading sockets, so that TCP pushes
/// back on the senders (docs/PROTOCOL.md §2.2). A larger frame still goes when nothing is queued.
pub const EVENTS_BYTES_MAX: usize = 4 << 20;
/// Pending connections the kernel keeps for the listener.
const LISTEN_BACKLOG: i32 = 1024;
/// An accepted connection that has not completed its handshake within this time is closed.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(3);
/// Most accepted connections still in their handshake; a new one evicts the oldest, so a flood of
/// idle connections cannot keep a real peer or client out for longer than its own handshake.
pub const HANDSHAKES_MAX: usize = 256;
/// Largest frame a connection may send before its handshake is complete (`Hello`, `Proof`).
pub const HANDSHAKE_FRAME_BYTES_MAX: usize = 256;
/// Payload bytes of client requests waiting for the protocol thread, above which the loop stops
/// reading clients until it catches up (TCP then pushes back on them). Half the events' budget,
/// so that clients alone can never keep a peer's frames out.
pub const CLIENT_BYTES_QUEUED_MAX: usize = EVENTS_BYTES_MAX / 2;
/// A client that holds part of a frame this long without completing it is closed.
pub const CLIENT_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Room in a client frame for everything but the payload.
pub const REQUEST_ENVELOPE_BYTES: usize = 64;

/// A client connection's number, unique for the life of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// What the loop tells the protocol thread.
#[derive(Debug)]
pub enum Event {
    /// A frame arrived over the up link to `from`.
    Peer {
        /// The peer.
        from: NodeId,
        /// The frame.
        frame: PeerFrame,
    },
    /// A link completed its handshake.
    LinkUp {
        /// The member at the other end.
        peer: Member,
        /// The protocol version the handshake chose: frames sent on the link are encoded in it
        /// (docs/PROTOCOL.md §2.3).
        version: u8,
    },
    /// A link closed, broke, or a dial failed.
    LinkDown {
        /// The peer.
        peer: NodeId,
    },
    /// A client sent a request.
    Request {
        /// The connection it came on.
        client: ClientId,
        /// The protocol version the connection chose: its replies are encoded in it.
        version: u8,
        /// The request.
        request: ClientRequest,
    },
    /// A client connection closed; its pending replies can be dropped.
    ClientGone {
        /// The connection.
        client: ClientId,
    },
}

impl Event {
    /// About what the protocol thread holds while this event waits for it: what it counts
    /// against `EVENTS_BYTES_MAX`.
    pub fn held_bytes(&self) -> usize {
        match self {
            Event::Peer { frame, .. } => frame.held_bytes(),
            Event::Request { request, .. } => request.data_bytes() + EVENT_FIXED_BYTES,
            Event::LinkUp { .. } | Event::LinkDown { .. } | Event::ClientGone { .. } => EVENT_FIXED_BYTES,
        }
    }
}

/// What an event costs beyond the bytes it carries.
const EVENT_FIXED_BYTES: usize = 64;

/// What the protocol thread tells the loop.
#[derive(Debug)]
pub enum Command {
    /// Append one or more encoded frames to the link to `to` (dropped if the link is down).
    SendPeer {
        /// The peer.
        to: NodeId,
        /// Encoded frames.
        bytes: Vec<u8>,
    },
    /// Append encoded replies to a client connection (dropped if it has closed).
    SendClient {
        /// The connection.
        client: ClientId,
        /// Encoded frames.
        bytes: Vec<u8>,
    },
    /// Establish a link to `peer`; answered by `Event::LinkUp` or `Event::LinkDown`.
    Connect {
        /// The peer.
        peer: NodeId,
    },
    /// Close the link to `peer`; answered by `Event::LinkDown`.
    Disconnect {
        /// The peer.
        peer: NodeId,
    },
    /// Replace the peer list (a universe change, docs/PROTOCOL.md §5.9): links are dialled and
    /// accepted by it from now on; links up now are left to the core.
    SetPeers {
        /// Every member's address, by id.
        peers: BTreeMap<NodeId, SocketAddr>,
    },
    /// Flush what can be flushed quickly, close everything and end the thread.
    Shutdown,
}

impl Command {
    /// The encoded bytes it carries: what it counts against `COMMANDS_BYTES_MAX`.
    pub fn held_bytes(&self) -> usize {
        match self {
            Command::SendPeer { bytes, .. } | Command::SendClient { bytes, .. } => bytes.len(),
            Command::Connect { .. }
            | Command::Disconnect { .. }
            | Command::SetPeers { .. }
            | Command::Shutdown => 0,
        }
    }
}

/// What the loop needs to know about its node.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This member.
    pub me: Member,
    /// The cluster hash every `Hello` must carry.
    pub cluster: u64,
    /// Every peer's address, by id (this node's own entry is ignored).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// A dial that has not completed its handshake in this time fails (token_timeout / 2).
    pub dial_timeout: Duration,
    /// Most client connections at once.
    pub clients_max: usize,
    /// Largest client frame; a larger one is answered with an error and its connection closed.
    pub request_bytes_max: usize,
    /// The cluster key, bound to the cluster name; `None` runs open.
    pub auth: Option<Auth>,
    /// How the loop waits for work before it blocks in `poll`.
    pub idle: crate::idle::IdleStrategy,
    /// The protocol versions this node speaks (docs/PROTOCOL.md §2.3).
    pub versions: crate::wire::Versions,
}

/// The protocol thread's end of the loop: commands plus the waker.
pub struct LoopHandle {
    commands: Sender<Command>,
    waker: Arc<mio::Waker>,
    /// The bytes of queued commands, against `COMMANDS_BYTES_MAX`; the loop gives them back as
    /// it executes the commands, and closes the budget when it ends.
    budget: Arc<ByteBudget>,
    /// Commands were queued since the last wake-up.
    unwoken: AtomicBool,
    /// Set by the loop while it blocks in `poll`: only then does a command need the waker, a
    /// syscall and a context switch (a running or spinning loop looks at the channel anyway).
    parked: Arc<AtomicBool>,
}

impl Clone for LoopHandle {
    fn clone(&self) -> LoopHandle {
        LoopHandle {
            commands: self.commands.clone(),
            waker: Arc::clone(&self.waker),
            budget: Arc::clone(&self.budget),
            unwoken: AtomicBool::new(self.unwoken.load(Ordering::Relaxed)),
            parked: Arc::clone(&self.parked),
        }
    }
}

impl LoopHandle {
    /// Queues a command without waking the loop; wakes it first if the queue is full in count
    /// or in bytes, so the loop drains it while this thread waits. Returns false when the loop
    /// has ended.
    pub fn send(&self, command: Command) -> bool {
        let bytes = command.held_bytes();
        if !self.budget.try_take(bytes) {
            self.wake();
            // Bounded: the loop gives bytes back every turn, and closes the budget when it ends.
            self.budget.take(bytes, || {
                self.wake();
                false
            });
        }
        self.unwoken.store(true, Ordering::Relaxed);
        let sent = match self.commands.try_send(command) {
            Ok(()) => true,
            Err(TrySendError::Disconnected(_)) => false,
            Err(TrySendError::Full(command)) => {
                self.wake();
                self.commands.send(command).is_ok()
            }
        };
        if !sent {
            self.budget.give(bytes);
        }
        sent
    }

    /// Wakes the loop so it drains the commands queued since the last wake-up; a loop that is
    /// not parked in `poll` will see them without being woken.
    pub fn wake(&self) {
        self.unwoken.store(false, Ordering::Relaxed);
        // Pairs with the loop's fence between setting `parked` and looking at the channel: either
        // the loop sees the commands or this thread sees it parked.
        std::sync::atomic::fence(Ordering::SeqCst);
        if !self.parked.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.waker.wake() {
            log::error!("transport: cannot wake the event loop: {e}");
        }
    }

    /// Wakes the loop only if commands were queued since the last wake-up: an idle member's
    /// timer steps then cost the loop thread nothing.
    pub fn wake_if_sent(&self) {
        if self.unwoken.load(Ordering::Relaxed) {
            self.wake();
        }
    }
}

/// A running event loop.
pub struct Transport {
    /// Where commands go.
    pub handle: LoopHandle,
    /// Where events come from.
    pub events: Receiver<Event>,
    /// The loop thread.
    pub thread: JoinHandle<()>,
    /// What the loop refused or cut short.
    pub counters: Arc<Counters>,
    /// The bytes of queued events, against `EVENTS_BYTES_MAX`: the receiver gives back each
    /// event's `held_bytes` when it takes it.
    pub events_budget: Arc<ByteBudget>,
}

impl Transport {
    /// Starts the loop thread on an already bound listener.
    pub fn start(config: TransportConfig, listener: TcpListener) -> Result<Transport, Error> {
        let (events_tx, events) = crossbeam_channel::bounded(EVENTS_QUEUED_MAX);
        let (commands, commands_rx) = crossbeam_channel::bounded(COMMANDS_QUEUED_MAX);
        let me = config.me.id;
        let counters = Arc::new(Counters::default());
        let budgets = event_loop::Budgets {
            events: Arc::new(ByteBudget::new(EVENTS_BYTES_MAX)),
            commands: Arc::new(ByteBudget::new(COMMANDS_BYTES_MAX)),
        };
        let events_budget = Arc::clone(&budgets.events);
        let budget = Arc::clone(&budgets.commands);
        let event_loop = event_loop::EventLoop::new(
            config,
            listener,
            events_tx,
            commands_rx,
            Arc::clone(&counters),
            budgets,
        )?;
        let waker = event_loop.waker();
        let parked = event_loop.parked();
        let thread = std::thread::Builder::new()
            .name(format!("harness-{me}-io"))
            .spawn(move || event_loop.run())
            .map_err(|e| Error::io("spawn the event loop thread", e))?;
        Ok(Transport {
            handle: LoopHandle { commands, waker, budget, unwoken: AtomicBool::new(false), parked },
            events,
            thread,
            counters,
            events_budget,
        })
    }
}

/// Binds the node's listener; an error names the address.
pub fn bind_listener(addr: SocketAddr) -> Result<TcpListener, Error> {
    let context = |what: &str| format!("{what} {addr}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| Error::io(context("create a socket for"), e))?;
    // A restarted node must be able to bind its port while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true).map_err(|e| Error::io(context("set SO_REUSEADDR on"), e))?;
    socket.bind(&addr.into()).map_err(|e| Error::io(context("bind"), e))?;
    socket.listen(LISTEN_BACKLOG).map_err(|e| Error::io(context("listen on"), e))?;
    socket.set_nonblocking(true).map_err(|e| Error::io(context("set non-blocking on"), e))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_a_used_address_names_it() {
        let first = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        // SO_REUSEADDR does not allow two listeners on one port.
        let err = bind_listener(addr).unwrap_err();
        assert!(err.to_string().starts_with(&format!("bind {addr}:")), "{err}");
    }
}
