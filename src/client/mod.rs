//! The synchronous client (docs/PROTOCOL.md §8). `Client` is one TCP connection to one node,
//! over which it broadcasts messages, runs state machine commands, watches keys and asks for
//! status; `ClusterClient` (in `cluster`) fails over between members and gives every write a
//! session so that a retry is applied at most once. `ffi` is the C API over `ClusterClient`.
//!
//! Requests may be pipelined: `send_broadcast` returns at once with the request number and
//! `recv_reply` hands back replies as they come, in whatever order the node commits them.
//! `broadcast` and `status` wait for their own reply and keep any other reply that arrives
//! meanwhile for a later `recv_reply`, so both styles mix on one connection. Every call has a
//! deadline and every buffer a named maximum, so a silent or misbehaving node costs a bounded
//! wait and bounded memory, never a hang.
//!
//! Against a keyed cluster, `connect_with` runs the cluster key's handshake first (`crate::auth`,
//! docs/PROTOCOL.md §2) as a dialler with node id 0, and seals every request and checks every
//! reply from then on; a node that cannot prove the key is refused like one that sends garbage.

pub mod address;
mod cluster;
mod error;
pub mod ffi;
mod session;
pub mod txn_text;
pub mod universe;

pub use cluster::{ClusterClient, ClusterError, ClusterOptions, Watcher};
pub use error::{code_name, ClientError};
pub use session::new_client_id;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::auth::{self, Auth, Inbound, Sealer, Side, Transcript};
use crate::ids::{Member, NodeId, Seq};
use crate::wire::{
    self, AuthMode, ClientReply, ClientRequest, Consistency, Frame, MemberInfo, NodeStatus, Payload,
    PeerFrame, Versions, FRAME_BYTES_MAX,
};

/// Room left in a frame for its envelope and request number; the rest may be payload.
const ENVELOPE_BYTES_MAX: usize = 1024;
/// The largest payload one broadcast may carry.
pub const PAYLOAD_BYTES_MAX: usize = FRAME_BYTES_MAX - ENVELOPE_BYTES_MAX;
/// How much one read asks the socket for.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most replies kept for a later `recv_reply` while waiting for a particular one.
const REPLIES_KEPT_MAX: usize = 1 << 20;
/// How long a send that met a reset looks for the node's reason among the replies already
/// received (it is there or not at all: the node wrote it before closing).
const REFUSAL_READ_TIMEOUT: Duration = Duration::from_millis(200);

/// Why a handshake frame did not come.
enum Refusal {
    /// The node answered with an error in protocol `version`, the highest it speaks if it
    /// refused ours (docs/PROTOCOL.md §2.3).
    Older { version: u8, error: ClientError },
    /// The node closed the connection without a word.
    Closed(ClientError),
    /// Anything else.
    Other(ClientError),
}

impl Refusal {
    fn into_error(self) -> ClientError {
        match self {
            Refusal::Older { error, .. } | Refusal::Closed(error) | Refusal::Other(error) => error,
        }
    }
}

/// A connection to one node.
pub struct Client {
    stream: TcpStream,
    addr: SocketAddr,
    timeout: Duration,
    /// The protocol version this connection sends in, chosen by its handshake.
    version: u8,
    /// The versions this client speaks.
    versions: Versions,
    /// Received bytes: never more than one maximal frame, one record and one read chunk,
    /// because `frame_len` and `Opener::record_len` refuse longer announcements.
    inbox: Inbound,
    /// Reused read buffer.
    scratch: Vec<u8>,
    /// Reused encoding buffer.
    outbox: Vec<u8>,
    /// Seals requests once a keyed handshake is done.
    sealer: Option<Sealer>,
    /// Reused buffer for sealed records.
    sealed: Vec<u8>,
    /// Replies that arrived while `broadcast` or `status` waited for another one.
    kept: VecDeque<ClientReply>,
    next_request: u64,
    /// Requests sent whose reply has not been handed to the caller yet.
    in_flight: usize,
    /// The request number of the watch this connection carries, if any.
    watch: Option<u64>,
}

impl Client {
    /// Connects to the node at `addr` of an open cluster; `timeout` bounds the connect and is
    /// the default wait of every later `broadcast`, `status` and send.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client, ClientError> {
        Client::connect_with(addr, timeout, None)
    }

    /// Connects to the node at `addr`, proving the cluster key first when `auth` is given (the
    /// handshake is bounded by `timeout` too).
    pub fn connect_with(
        addr: SocketAddr,
        timeout: Duration,
        auth: Option<&Auth>,
    ) -> Result<Client, ClientError> {
        Client::connect_speaking(addr, timeout, auth, Versions::ALL)
    }

    /// `connect_with` speaking only `versions` (a subset of `Versions::ALL`): the handshake
    /// chooses the highest version the node speaks too (docs/PROTOCOL.md §2.3). A client of
    /// version 1 only does what a build of version 1 did: on an open cluster it sends plain
    /// requests without a handshake.
    pub fn connect_speaking(
        addr: SocketAddr,
        timeout: Duration,
        auth: Option<&Auth>,
        versions: Versions,
    ) -> Result<Client, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut client = Client::open_stream(addr, timeout, versions)?;
        if auth.is_none() && versions.max == 1 {
            client.version = 1;
            return Ok(client);
        }
        let retry = match client.handshake(auth, versions.max, deadline)? {
            None => return Ok(client),
            Some(retry) => retry,
        };
        // The node speaks an older version only: once more in it (docs/PROTOCOL.md §2.3).
        let mut client = Client::open_stream(addr, timeout, versions)?;
        client.version = retry;
        if auth.is_none() && retry == 1 {
            return Ok(client);
        }
        match client.handshake(auth, retry, deadline)? {
            None => Ok(client),
            Some(_) => Err(ClientError::Handshake {
                addr,
                problem: format!("the node refused protocol version {retry} too"),
            }),
        }
    }

    fn open_stream(addr: SocketAddr, timeout: Duration, versions: Versions) -> Result<Client, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|source| ClientError::Connect { addr, source })?;
        let configure = |source| ClientError::Io { addr, action: "configure", source };
        // Requests are small and latency matters more than packet count.
        stream.set_nodelay(true).map_err(configure)?;
        stream.set_write_timeout(Some(timeout)).map_err(configure)?;
        Ok(Client {
            stream,
            addr,
            timeout,
            version: versions.max,
            versions,
            inbox: Inbound::speaking(versions),
            scratch: vec![0; READ_CHUNK_BYTES],
            outbox: Vec::new(),
            sealer: None,
            sealed: Vec::new(),
            kept: VecDeque::new(),
            next_request: 1,
            in_flight: 0,
            watch: None,
        })
    }

    /// The protocol version this connection speaks (docs/PROTOCOL.md §2.3).
    pub fn protocol_version(&self) -> u8 {
        self.version
    }

    /// The handshake as the dialler (docs/PROTOCOL.md §2), its `Hello` in protocol `version`;
    /// on an open cluster with zero proofs. `Ok(Some(v))`: the node refused this version but
    /// speaks `v`, which this client speaks too; dial again in it.
    fn handshake(
        &mut self,
        auth: Option<&Auth>,
        version: u8,
        deadline: Instant,
    ) -> Result<Option<u8>, ClientError> {
        let addr = self.addr;
        let refused = |problem: String| ClientError::Handshake { addr, problem };
        let nonce = auth::fresh_nonce().map_err(refused)?;
        let me = Member { id: NodeId(0), incarnation: 0 };
        let mode = auth.map_or(AuthMode::Open, Auth::mode);
        // An open cluster does not check a client's cluster hash (docs/PROTOCOL.md §2.3).
        let cluster = auth.map_or(0, Auth::cluster);
        self.version = version;
        let versions = self.versions;
        self.write_frame(&PeerFrame::Hello { cluster, mode, from: me, to: NodeId(0), nonce, versions })?;
        let (chosen, acceptor, acceptor_nonce) = match self.read_handshake_frame(deadline, "challenge") {
            Ok((chosen, PeerFrame::Challenge { from, mode: theirs, nonce, .. })) if theirs == mode => {
                (chosen, from, nonce)
            }
            Ok((_, PeerFrame::Challenge { mode: theirs, .. })) => {
                return Err(refused(format!("the node runs {}, this client {}", theirs.name(), mode.name())))
            }
            Ok((_, other)) => {
                return Err(refused(format!("expected a challenge, got {}", other.kind().name())))
            }
            Err(Refusal::Older { version: older, .. })
                if older < version && self.versions.contains(older) =>
            {
                return Ok(Some(older))
            }
            // Closed without a word: how a member of version 1 meets a newer Hello.
            Err(Refusal::Closed(_)) if version > self.versions.min => return Ok(Some(self.versions.min)),
            Err(refusal) => return Err(refusal.into_error()),
        };
        if chosen > version {
            return Err(refused(format!(
                "the node chose protocol version {chosen}, above this client's {version}"
            )));
        }
        self.version = chosen;
        let transcript =
            Transcript { mode, cluster, dialer: me, acceptor, dialer_nonce: nonce, acceptor_nonce };
        let proof = auth.map_or([0; 32], |auth| auth.proof(Side::Dialer, &transcript));
        self.write_frame(&PeerFrame::Proof { proof })?;
        match self.read_handshake_frame(deadline, "hello-ack").map_err(Refusal::into_error)? {
            (_, PeerFrame::HelloAck { proof }) => {
                if auth.is_some_and(|auth| !auth.verify(Side::Acceptor, &transcript, &proof)) {
                    return Err(refused(
                        "the node does not prove this cluster's key (or cluster name)".into(),
                    ));
                }
            }
            (_, other) => return Err(refused(format!("expected a hello-ack, got {}", other.kind().name()))),
        }
        if let Some(auth) = auth {
            let (sealer, opener) = auth.session(Side::Dialer, &transcript);
            self.sealer = Some(sealer);
            self.inbox.start_session(opener);
        }
        Ok(None)
    }

    fn write_frame(&mut self, frame: &PeerFrame) -> Result<(), ClientError> {
        self.outbox.clear();
        wire::encode_peer_in(self.version, frame, &mut self.outbox);
        self.stream.write_all(&self.outbox).map_err(|source| ClientError::Io {
            addr: self.addr,
            action: "send",
            source,
        })
    }

    /// One handshake frame and its protocol version; a node that closes instead refused this
    /// client's hello or proof.
    fn read_handshake_frame(
        &mut self,
        deadline: Instant,
        waiting_for: &'static str,
    ) -> Result<(u8, PeerFrame), Refusal> {
        let addr = self.addr;
        loop {
            match self.inbox.next_versioned_frame(crate::transport::HANDSHAKE_FRAME_BYTES_MAX) {
                Ok(Some((version, Frame::Peer(frame)))) => return Ok((version, frame)),
                Ok(Some((version, Frame::Reply(ClientReply::Error { message, .. })))) => {
                    let problem = format!("the node refused: {message}");
                    return Err(Refusal::Older { version, error: ClientError::Handshake { addr, problem } });
                }
                Ok(Some(_)) => {
                    let what = "client frame in the handshake".into();
                    return Err(Refusal::Other(ClientError::Unexpected { addr, what }));
                }
                Ok(None) => {}
                Err(source) => return Err(Refusal::Other(ClientError::Decode { addr, source })),
            }
            let now = Instant::now();
            if now >= deadline {
                let waited = self.timeout;
                return Err(Refusal::Other(ClientError::Timeout { addr, waiting_for, waited }));
            }
            match self.fill(deadline - now) {
                Err(ClientError::Closed { .. }) => {
                    let problem = format!(
                        "the node closed the connection instead of a {waiting_for}: wrong key, cluster name \
                         or mode (its log says which)"
                    );
                    return Err(Refusal::Closed(ClientError::Handshake { addr, problem }));
                }
                Err(e) => return Err(Refusal::Other(e)),
                Ok(()) => {}
            }
        }
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests sent whose reply has not been returned yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Broadcasts `payload` and waits until it is committed; returns its seq.
    pub fn broadcast(&mut self, payload: &[u8]) -> Result<Seq, ClientError> {
        let request = self.send_broadcast(payload)?;
        match self.wait_for(request, "commit")? {
            ClientReply::Committed { seq, .. } => Ok(seq),
            other => Err(self.refusal_or_unexpected(other)),
        }
    }

    /// The node's status.
    pub fn status(&mut self) -> Result<NodeStatus, ClientError> {
        let request = self.take_request_number();
        self.send(&ClientRequest::Status { request })?;
        match self.wait_for(request, "status")? {
            ClientReply::Status { status, .. } => Ok(status),
            other => Err(self.refusal_or_unexpected(other)),
        }
    }

    /// Runs one encoded state machine command and waits for its outcome: the seq it committed
    /// at (0 for a stale read) and the encoded `replication::Outcome`.
    pub fn execute(
        &mut self,
        consistency: Consistency,
        command: &[u8],
    ) -> Result<(Seq, Payload), ClientError> {
        let request = self.send_execute(consistency, command)?;
        match self.wait_for(request, "outcome")? {
            ClientReply::Executed { seq, outcome, .. } => Ok((seq, outcome)),
            other => Err(self.refusal_or_unexpected(other)),
        }
    }

    /// The configured members and their addresses, as the node knows them.
    pub fn members(&mut self) -> Result<Vec<MemberInfo>, ClientError> {
        let request = self.take_request_number();
        self.send(&ClientRequest::Members { request })?;
        match self.wait_for(request, "member list")? {
            ClientReply::Members { members, .. } => Ok(members),
            other => Err(self.refusal_or_unexpected(other)),
        }
    }

    /// Asks the node to leave the group cleanly and stop; returns once it has started to.
    pub fn leave(&mut self) -> Result<(), ClientError> {
        let request = self.take_request_number();
        self.send(&ClientRequest::Leave { request })?;
        match self.wait_for(request, "leave confirmation")? {
            ClientReply::Leaving { .. } => Ok(()),
            other => Err(self.refusal_or_unexpected(other)),
        }
    }

    /// Asks this member to form a primary from the newest history it can reach although a quorum
    /// is gone (docs/PROTOCOL.md §5.8); without `confirm` it only reports what it would do.
    /// Returns whether a primary was formed and the member's report; a refusal is
    /// `ClientError::Rejected` with `ErrorCode::Refused` and the reason.
    pub fn force_primary(&mut self, confirm: bool) -> Result<(bool, String), ClientError> {
        let request = self.take_request_number();
        self.send(&ClientRequest::ForcePrimary { request, confirm })?;
        match self.wait_for(request, "forced recovery report")? {
            ClientReply::Forced { formed, report, .. } => Ok((formed, report)),
            other => Err(self.refusal_or_unexpected(other)),
        }
    }

    /// Starts a watch of the keys under `prefix` from revision `from` (0: from now on) and waits
    /// for the node to confirm it; returns the confirming batch's revision and any events in it.
    /// Later batches come from `next_events`. A connection carrying a watch is used for nothing
    /// else.
    pub fn start_watch(
        &mut self,
        prefix: &[u8],
        from: u64,
    ) -> Result<(u64, Vec<wire::WatchEvent>), ClientError> {
        let request = self.take_request_number();
        self.send(&ClientRequest::Watch { request, prefix: prefix.into(), from })?;
        match self.wait_for(request, "watch confirmation")? {
            ClientReply::Events { revision, events, .. } => {
                self.watch = Some(request);
                Ok((revision, events))
            }
            other => Err(self.refusal_or_unexpected(other)),
        }
    }

    /// The next batch of a started watch, waiting at most `timeout`: `Ok(None)` if none came.
    pub fn next_events(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(u64, Vec<wire::WatchEvent>)>, ClientError> {
        let addr = self.addr;
        let Some(watch) = self.watch else {
            return Err(ClientError::Unexpected { addr, what: "wait for events: no watch started".into() });
        };
        // The stream never ends, so one reply stays owed for as long as the watch lives.
        self.in_flight += 1;
        let reply = match self.read_reply(Instant::now() + timeout, "events", timeout) {
            Ok(reply) => reply,
            Err(ClientError::Timeout { .. }) => {
                self.in_flight -= 1;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.in_flight -= 1;
        match reply {
            ClientReply::Events { request, revision, events } if request == watch => {
                Ok(Some((revision, events)))
            }
            other => Err(self.refusal_or_unexpected(other)),
        }
    }

    /// Sends a broadcast without waiting; returns the request number its reply will carry.
    pub fn send_broadcast(&mut self, payload: &[u8]) -> Result<u64, ClientError> {
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(ClientError::PayloadTooLarge { bytes: payload.len(), max: PAYLOAD_BYTES_MAX });
        }
        let request = self.take_request_number();
        let sent = self.send(&ClientRequest::Broadcast { request, payload: payload.into() });
        sent.or_else(|e| self.refused_while_sending(request, e))?;
        Ok(request)
    }

    /// Sends one encoded state machine command without waiting; returns the request number its
    /// `ClientReply::Executed` will carry.
    pub fn send_execute(&mut self, consistency: Consistency, command: &[u8]) -> Result<u64, ClientError> {
        if command.len() > PAYLOAD_BYTES_MAX {
            return Err(ClientError::PayloadTooLarge { bytes: command.len(), max: PAYLOAD_BYTES_MAX });
        }
        let request = self.take_request_number();
        let sent = self.send(&ClientRequest::Execute { request, consistency, command: command.into() });
        sent.or_else(|e| self.refused_while_sending(request, e))?;
        Ok(request)
    }

    /// The next reply to any request sent, waiting at most `timeout`. Refusals come back as
    /// `ClientReply::Error` values, since the caller decides whether to retry.
    pub fn recv_reply(&mut self, timeout: Duration) -> Result<ClientReply, ClientError> {
        let reply = match self.kept.pop_front() {
            Some(reply) => reply,
            None => self.read_reply(Instant::now() + timeout, "reply", timeout)?,
        };
        self.in_flight -= 1;
        Ok(reply)
    }

    /// A node that refuses a request as it arrives (too large, docs/PROTOCOL.md §2.2) answers
    /// why and closes, and our write of the rest can meet the reset. Its answer was written
    /// first, so it is among the bytes already received: kept for `recv_reply` when it is there,
    /// and the request counts as sent; otherwise the send's own error stands.
    fn refused_while_sending(&mut self, request: u64, error: ClientError) -> Result<(), ClientError> {
        let reset = matches!(&error, ClientError::Io { source, .. }
            if matches!(source.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe));
        if !reset {
            return Err(error);
        }
        self.in_flight += 1;
        let deadline = Instant::now() + REFUSAL_READ_TIMEOUT;
        while self.kept.len() < REPLIES_KEPT_MAX {
            match self.read_reply(deadline, "the reason for a reset", REFUSAL_READ_TIMEOUT) {
                Ok(reply) => {
                    let refusal = matches!(&reply, ClientReply::Error { request: r, .. } if *r == request);
                    self.kept.push_back(reply);
                    if refusal {
                        return Ok(());
                    }
                }
                Err(_) => break,
            }
        }
        self.in_flight -= 1;
        Err(error)
    }

    fn take_request_number(&mut self) -> u64 {
        let request = self.next_request;
        self.next_request += 1;
        request
    }

    fn send(&mut self, request: &ClientRequest) -> Result<(), ClientError> {
        self.outbox.clear();
        wire::encode_request_in(self.version, request, &mut self.outbox);
        let bytes = match &mut self.sealer {
            Some(sealer) => {
                self.sealed.clear();
                sealer.seal(&self.outbox, &mut self.sealed);
                &self.sealed
            }
            None => &self.outbox,
        };
        match self.stream.write_all(bytes) {
            Ok(()) => {
                self.in_flight += 1;
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // The node stopped reading: its queues are full or it hangs.
                Err(ClientError::Timeout {
                    addr: self.addr,
                    waiting_for: "room to send",
                    waited: self.timeout,
                })
            }
            Err(source) => Err(ClientError::Io { addr: self.addr, action: "send", source }),
        }
    }

    /// Reads replies until the one to `request`, keeping the others for `recv_reply`.
    fn wait_for(&mut self, request: u64, waiting_for: &'static str) -> Result<ClientReply, ClientError> {
        if let Some(index) = self.kept.iter().position(|reply| reply_request(reply) == request) {
            self.in_flight -= 1;
            return Ok(self.kept.remove(index).expect("index found above"));
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let reply = self.read_reply(deadline, waiting_for, self.timeout)?;
            if reply_request(&reply) == request {
                self.in_flight -= 1;
                return Ok(reply);
            }
            if self.kept.len() >= REPLIES_KEPT_MAX {
                return Err(ClientError::Unexpected { addr: self.addr, what: "flood of replies".into() });
            }
            self.kept.push_back(reply);
        }
    }

    /// Reads one reply from the socket; it must answer a request in flight.
    fn read_reply(
        &mut self,
        deadline: Instant,
        waiting_for: &'static str,
        waited: Duration,
    ) -> Result<ClientReply, ClientError> {
        let addr = self.addr;
        if self.in_flight <= self.kept.len() {
            // Nothing is owed to us, so waiting could only time out.
            return Err(ClientError::Unexpected {
                addr,
                what: format!("wait for a {waiting_for}: nothing in flight"),
            });
        }
        loop {
            if let Some(frame) = self
                .inbox
                .next_frame(FRAME_BYTES_MAX)
                .map_err(|source| ClientError::Decode { addr, source })?
            {
                let reply = match frame {
                    Frame::Reply(reply) => reply,
                    Frame::Peer(_) => {
                        return Err(ClientError::Unexpected { addr, what: "peer frame".into() })
                    }
                    Frame::Request(_) => {
                        return Err(ClientError::Unexpected { addr, what: "request".into() })
                    }
                };
                let request = reply_request(&reply);
                if request == 0 || request >= self.next_request {
                    return Err(ClientError::Unexpected {
                        addr,
                        what: format!("reply to request {request}"),
                    });
                }
                return Ok(reply);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout { addr, waiting_for, waited });
            }
            self.fill(deadline - now)?;
        }
    }

    /// Reads what the socket has, waiting at most `wait` (which must not be zero).
    fn fill(&mut self, wait: Duration) -> Result<(), ClientError> {
        let addr = self.addr;
        self.stream.set_read_timeout(Some(wait)).map_err(|source| ClientError::Io {
            addr,
            action: "configure",
            source,
        })?;
        match self.stream.read(&mut self.scratch) {
            Ok(0) => Err(ClientError::Closed { addr }),
            Ok(n) => {
                self.inbox.extend(&self.scratch[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(source) => Err(ClientError::Io { addr, action: "receive", source }),
        }
    }

    fn refusal_or_unexpected(&self, reply: ClientReply) -> ClientError {
        match reply {
            ClientReply::Error { request, code, message } => ClientError::Rejected { request, code, message },
            ClientReply::Committed { request, .. } => {
                ClientError::Unexpected { addr: self.addr, what: format!("commit for request {request}") }
            }
            other => ClientError::Unexpected {
                addr: self.addr,
                what: format!("{} for request {}", reply_name(&other), reply_request(&other)),
            },
        }
    }
}

/// The request a reply answers.
pub fn reply_request(reply: &ClientReply) -> u64 {
    match reply {
        ClientReply::Committed { request, .. }
        | ClientReply::Status { request, .. }
        | ClientReply::Error { request, .. }
        | ClientReply::Executed { request, .. }
        | ClientReply::Events { request, .. }
        | ClientReply::Members { request, .. }
        | ClientReply::Leaving { request }
        | ClientReply::Forced { request, .. } => *request,
    }
}

/// What kind of reply this is, for error messages.
fn reply_name(reply: &ClientReply) -> &'static str {
    match reply {
        ClientReply::Committed { .. } => "commit",
        ClientReply::Status { .. } => "status",
        ClientReply::Error { .. } => "error",
        ClientReply::Executed { .. } => "outcome",
        ClientReply::Events { .. } => "watch events",
        ClientReply::Members { .. } => "member list",
        ClientReply::Leaving { .. } => "leave confirmation",
        ClientReply::Forced { .. } => "forced recovery report",
    }
}

#[cfg(test)]
mod tests;
