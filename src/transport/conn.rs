//! One TCP connection owned by the event loop: its role, its read buffer split into frames and its
//! write buffer flushed until the kernel pushes back.
//!
//! Readiness is only a hint, so reads and writes go on until `WouldBlock` (mio src/poll.rs,
//! "Draining readiness"), each bounded per turn so that one busy peer cannot starve the others.
//!
//! After the handshake a keyed connection carries sealed records (`crate::auth`): incoming bytes
//! are opened record by record (`auth::Inbound`), from which frames are split as before, and outgoing
//! frames collect in `unsealed` until the flush seals them, one record per flush, so a burst of
//! frames costs one MAC. Before the handshake completes, frames are read and written plain.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::{SockRef, TcpKeepalive};

use super::ClientId;
use crate::auth::{Inbound, Opener, Sealer, Transcript};
use crate::error::DecodeError;
use crate::ids::{Member, NodeId};
use crate::wire::{Frame, Nonce, Versions};

/// Bytes asked of the kernel per read call.
pub(super) const READ_CHUNK_BYTES: usize = 64 << 10;
/// Read calls per connection per turn of the loop; the rest waits for the next turn.
const READS_PER_TURN: usize = 16;
/// A link with more than this unsent pushes back (docs/PROTOCOL.md §2.2): the loop stops reading
/// the other peers and the clients, whose frames would add to it, until it is below half. The
/// byte window keeps the ring's own traffic on one link under its 8 MiB, so this is met only
/// when a neighbour reads slower than the ring sends; no frame of a live link is ever dropped.
pub(super) const PEER_UNSENT_BYTES_MAX: usize = 16 << 20;
/// A client that lets this much queue up unread is closed: room for a watch's whole replay of
/// the history and a few maximal replies.
pub(super) const CLIENT_UNSENT_BYTES_MAX: usize = 16 << 20;

/// Spare capacity a link's buffers keep between bursts (`budget::trim_capacity`).
const PEER_SPARE_BYTES_MAX: usize = 4 << 20;
/// Spare capacity any other connection's buffers keep.
const CLIENT_SPARE_BYTES_MAX: usize = 128 << 10;

/// Kernel send and receive buffer size asked for on every stream: a few batches in flight.
const SOCKET_BUFFER_BYTES: usize = 1 << 20;
/// Idle time before the kernel's keepalive probes start.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);

/// What a connection is for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Role {
    /// Accepted; its first frame decides whether it is a peer or a client.
    Unknown {
        /// It is closed if its handshake is not complete by then.
        deadline: Instant,
    },
    /// Accepted, `Hello` answered with `Challenge`: waiting for the dialler's `Proof`.
    Accepting {
        /// It is closed if its handshake is not complete by then.
        deadline: Instant,
        /// What the proofs are computed over; `dialer.id` is 0 for a client.
        transcript: Transcript,
    },
    /// A proven dial of a higher id that crossed a dial of ours (docs/PROTOCOL.md §2): not
    /// answered until ours is decided. Ours normally wins and this one is closed; if ours fails,
    /// this one is answered and becomes the link.
    Parked {
        /// It is closed if nothing decided it by then.
        deadline: Instant,
        /// What the proofs are computed over; `dialer` is the peer.
        transcript: Transcript,
    },
    /// Dialled by this node: waiting for TCP to connect, then for `Challenge`, then `HelloAck`.
    Dialing {
        /// The peer dialled.
        peer: NodeId,
        /// The dial fails if the handshake is not complete by then.
        deadline: Instant,
        /// Whether TCP has connected (the `Hello` is written only then).
        connected: bool,
        /// This end's nonce, sent in `Hello`.
        nonce: Nonce,
        /// Set once `Challenge` arrived and `Proof` was sent; `HelloAck` comes next.
        transcript: Option<Transcript>,
        /// The protocol version of its `Hello`: the highest spoken, or a lower one on the
        /// second try of docs/PROTOCOL.md §2.3.
        version: u8,
    },
    /// An up link.
    Peer {
        /// The member at the other end.
        member: Member,
        /// Which end dialled it, for the one-link-per-pair rule.
        dialled_by: NodeId,
    },
    /// A client connection.
    Client {
        /// Its number.
        id: ClientId,
    },
}

impl Role {
    /// Its index in `counters::TRAFFIC_CLASSES`: a peer link, a client, or still unproven.
    pub(super) fn traffic_class(&self) -> usize {
        match self {
            Role::Peer { .. } => 0,
            Role::Client { .. } => 1,
            _ => 2,
        }
    }
}

/// How a read turn ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReadOutcome {
    /// Got this many bytes; more may be waiting.
    Some(usize),
    /// The socket has nothing more for now.
    Drained,
    /// The other end closed the connection.
    Closed,
}

impl Role {
    /// Whether the other end has not proven who it is yet (it counts against the handshake
    /// limit and is logged at a limited rate when closed).
    pub(super) fn is_unproven(&self) -> bool {
        matches!(self, Role::Unknown { .. } | Role::Accepting { .. })
    }

    /// The handshake deadline, while there is one.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match *self {
            Role::Unknown { deadline }
            | Role::Accepting { deadline, .. }
            | Role::Parked { deadline, .. }
            | Role::Dialing { deadline, .. } => Some(deadline),
            Role::Peer { .. } | Role::Client { .. } => None,
        }
    }
}

/// One connection.
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) addr: SocketAddr,
    pub(super) role: Role,
    /// The protocol version this end sends on it: its highest until the handshake chose
    /// (docs/PROTOCOL.md §2.3).
    pub(super) version: u8,
    /// Input: frames during the handshake, records after it.
    pub(super) inbound: Inbound,
    /// Seals outgoing frames, once the handshake has set a session up.
    sealer: Option<Sealer>,
    /// Frames queued since the last flush, sealed into one record by the next one.
    unsealed: Vec<u8>,
    write: Vec<u8>,
    /// Whether WRITABLE interest is registered (only while bytes remain unsent, or while a dial
    /// waits for TCP to connect).
    pub(super) writable: bool,
    /// Since when part of a frame has waited for the rest (a stalled client is closed).
    pub(super) partial_since: Option<Instant>,
    /// This connection's part of the loop's count of the clients' unsent bytes.
    pub(super) counted_unsent: usize,
}

impl Conn {
    /// A connection that reads frames of `versions` and sends in their highest until its
    /// handshake chooses (docs/PROTOCOL.md §2.3).
    pub(super) fn new(stream: TcpStream, addr: SocketAddr, role: Role, versions: Versions) -> Conn {
        Conn {
            stream,
            addr,
            role,
            version: versions.max,
            inbound: Inbound::speaking(versions),
            sealer: None,
            unsealed: Vec::new(),
            write: Vec::new(),
            writable: false,
            partial_since: None,
            counted_unsent: 0,
        }
    }

    /// Seals everything queued from now on and opens everything read after the frame just
    /// parsed; called right after the handshake's last frame, which itself goes plain.
    pub(super) fn start_session(&mut self, (sealer, opener): (Sealer, Opener)) {
        debug_assert!(self.unsealed.is_empty());
        self.sealer = Some(sealer);
        self.inbound.start_session(opener);
    }

    /// One `read` call into the buffer.
    pub(super) fn read_once(&mut self, scratch: &mut [u8]) -> io::Result<ReadOutcome> {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(n) => {
                    self.inbound.extend(&scratch[..n]);
                    return Ok(ReadOutcome::Some(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Read calls allowed per turn.
    pub(super) fn reads_per_turn() -> usize {
        READS_PER_TURN
    }

    /// The next complete frame of at most `frame_bytes_max` bytes, if any.
    pub(super) fn next_frame(&mut self, frame_bytes_max: usize) -> Result<Option<(u8, Frame)>, DecodeError> {
        let frame = self.inbound.next_versioned_frame(frame_bytes_max);
        if let Ok(None) = frame {
            self.inbound.trim(self.spare_max());
        }
        frame
    }

    /// Spare buffer capacity this connection keeps between bursts: a link's batches come and go
    /// all the time and few links exist, while a node may have a thousand mostly idle clients.
    fn spare_max(&self) -> usize {
        match self.role {
            Role::Peer { .. } => PEER_SPARE_BYTES_MAX,
            _ => CLIENT_SPARE_BYTES_MAX,
        }
    }

    /// Queues encoded frames (sealed at the next flush once a session is up); returns false
    /// when a client's unsent bytes exceed `CLIENT_UNSENT_BYTES_MAX` (a peer's are never refused:
    /// the loop pushes back instead, `PEER_UNSENT_BYTES_MAX`).
    pub(super) fn queue(&mut self, bytes: &[u8]) -> bool {
        if self.sealer.is_some() {
            self.unsealed.extend_from_slice(bytes);
        } else {
            self.write.extend_from_slice(bytes);
        }
        !matches!(self.role, Role::Client { .. }) || self.unsent_bytes() <= CLIENT_UNSENT_BYTES_MAX
    }

    /// Bytes queued and not yet written to the socket.
    pub(super) fn unsent_bytes(&self) -> usize {
        self.write.len() + self.unsealed.len()
    }

    /// Whether bytes wait to be written.
    pub(super) fn has_unsent(&self) -> bool {
        !self.write.is_empty() || !self.unsealed.is_empty()
    }

    /// Writes until the buffer is empty or the kernel pushes back, then keeps WRITABLE interest
    /// registered exactly while bytes remain. Returns the bytes written.
    pub(super) fn flush(&mut self, registry: &Registry, token: Token) -> io::Result<usize> {
        if let Role::Dialing { connected: false, .. } = self.role {
            return Ok(0);
        }
        let spare_max = self.spare_max();
        if let Some(sealer) = &mut self.sealer {
            if !self.unsealed.is_empty() {
                sealer.seal(&self.unsealed, &mut self.write);
                self.unsealed.clear();
                crate::budget::trim_capacity(&mut self.unsealed, spare_max);
            }
        }
        let mut written = 0;
        // Bounded: every pass either writes at least one byte or leaves the loop.
        while written < self.write.len() {
            match self.stream.write(&self.write[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.write.drain(..written);
        crate::budget::trim_capacity(&mut self.write, spare_max);
        self.set_writable(registry, token, self.has_unsent())?;
        Ok(written)
    }

    /// Registers or drops WRITABLE interest.
    pub(super) fn set_writable(&mut self, registry: &Registry, token: Token, on: bool) -> io::Result<()> {
        if on != self.writable {
            let interest = if on { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            registry.reregister(&mut self.stream, token, interest)?;
            self.writable = on;
        }
        Ok(())
    }

    /// Whether a dial's TCP connect has finished: `Ok(true)` connected, `Ok(false)` not yet
    /// (mio src/net/tcp/stream.rs, `connect`).
    pub(super) fn check_connected(&mut self) -> io::Result<bool> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Applies the stream options through socket2; failures are returned so the caller can log and
/// go on. Nagle is off because the token is a small frame whose latency is the ring's latency;
/// keepalive is a backstop only, the core's heartbeats find a silent peer long before.
pub(super) fn tune(stream: &mio::net::TcpStream) -> io::Result<()> {
    let socket = SockRef::from(stream);
    socket.set_nodelay(true)?;
    socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(KEEPALIVE_IDLE))?;
    socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)?;
    Ok(())
}
