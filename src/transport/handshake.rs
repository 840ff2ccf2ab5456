//! Link and client handshakes: dialling a peer, the four handshake frames on either end, telling
//! clients from peers, and the one-link-per-pair rule (docs/PROTOCOL.md §2).
//!
//! ```text
//! dialler                                  acceptor
//!   Hello { cluster, mode, from, to, nonce_d } ->
//!                               <- Challenge { from, mode, nonce_a }
//!   Proof { proof_d } ->                        checks proof_d, applies the one-link rule
//!                               <- HelloAck { proof_a }      (link up at the acceptor)
//!   checks proof_a (link up at the dialler)
//! ```
//! Proofs and session keys are `crate::auth`'s; on an open node the proofs are zero and not
//! checked. A client dials like a peer with node id 0 and becomes a client connection instead of
//! a link. An open node also takes a client whose first frame is a request, as before keys.
//!
//! Nothing an unproven connection says changes any link: the one-link-per-pair rule runs only
//! once the dialler's proof has been checked, so a stranger cannot close a real link by claiming
//! a peer's id. When both ends dial at once, the connection dialled by the lower id survives.
//! Both ends apply the rule to the same facts, so they keep the same connection and no frame is
//! ever sent on the one that is closed: the acceptor decides before it sends `HelloAck`, and the
//! dialler only after it has received one. The lower id never closes the higher id's crossing
//! dial: it parks it unanswered until its own dial is decided, and the higher id closes it
//! itself when the lower id's dial reaches it. So a dial that the other end closes or resets
//! always means that end is gone, and is reported at once (docs/PROTOCOL.md §2).

use std::time::Instant;

use mio::{Interest, Token};

use super::closing::Why;
use super::conn::{Conn, Role};
use super::counters::Counters;
use super::event_loop::EventLoop;
use super::{ClientId, Event};
use crate::auth::{self, Side, Transcript};
use crate::ids::{Member, NodeId};
use crate::wire::{self, AuthMode, Frame, Nonce, PeerFrame, Proof};

/// Whether a new link to a peer replaces the existing one; each is (member, dialler).
///
/// A new incarnation means the peer restarted and the old link is dead. A second link dialled by
/// the same end means that end gave the first up. Otherwise two dials crossed, and the one dialled
/// by the lower id survives.
pub(super) fn replaces(new: (Member, NodeId), old: (Member, NodeId)) -> bool {
    new.0.incarnation != old.0.incarnation || new.1 == old.1 || new.1 < old.1
}

/// The node id a client uses in `Hello`: no member has it.
pub const CLIENT_ID: NodeId = NodeId(0);

/// Why a handshake failed, for the counters.
enum Failure {
    /// The other end's proof does not match the key.
    WrongKey,
    /// Anything else: cluster, mode, ids, an unexpected frame.
    Refused,
}

impl EventLoop {
    /// This node's mode.
    fn mode(&self) -> AuthMode {
        auth::mode_of(self.config.auth.as_ref())
    }

    /// The proof of `side` over `transcript`; zero on an open node.
    fn proof(&self, side: Side, transcript: &Transcript) -> Proof {
        self.config.auth.as_ref().map_or([0; 32], |auth| auth.proof(side, transcript))
    }

    /// Whether `proof` is `side`'s; always on an open node.
    fn proof_holds(&self, side: Side, transcript: &Transcript, proof: &Proof) -> bool {
        self.config.auth.as_ref().is_none_or(|auth| auth.verify(side, transcript, proof))
    }

    /// Starts sealing and opening records on `token` if this node has a key.
    fn start_session(&mut self, token: Token, side: Side, transcript: &Transcript) {
        let Some(auth) = &self.config.auth else { return };
        let session = auth.session(side, transcript);
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.start_session(session);
        }
    }

    fn fail(&mut self, token: Token, failure: Failure, why: String) {
        let counter = match failure {
            Failure::WrongKey => &self.counters.wrong_key,
            Failure::Refused => &self.counters.handshakes_failed,
        };
        Counters::bump(counter);
        self.close(token, Why::Failed(why));
    }

    /// Dials `peer` unless a link or a dial to it exists; failures become `LinkDown`.
    pub(super) fn dial(&mut self, peer: NodeId) {
        self.dial_in(peer, self.config.versions.max);
    }

    /// `dial` with a `Hello` of protocol `version` (docs/PROTOCOL.md §2.3).
    pub(super) fn dial_in(&mut self, peer: NodeId, version: u8) {
        let me = self.config.me;
        let Some(&addr) = self.config.peers.get(&peer).filter(|_| peer != me.id) else {
            log::warn!("{} transport: asked to dial {peer}, which is not a configured peer", me.id);
            return self.emit(Event::LinkDown { peer });
        };
        let slot = self.slots.entry(peer).or_default();
        if slot.link.is_some() || slot.dial.is_some() {
            // The link is up (its LinkUp is on its way) or a dial is already running.
            return;
        }
        let nonce = match auth::fresh_nonce() {
            Ok(nonce) => nonce,
            Err(e) => {
                log::error!("{} transport: cannot dial {peer}: {e}", me.id);
                return self.emit(Event::LinkDown { peer });
            }
        };
        Counters::bump(&self.counters.dialled);
        let stream = match mio::net::TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!("{} transport: dial to {peer} at {addr} failed: {e}", me.id);
                return self.emit(Event::LinkDown { peer });
            }
        };
        if let Err(e) = super::conn::tune(&stream) {
            log::debug!("{} transport: socket options for {addr}: {e}", me.id);
        }
        let deadline = Instant::now() + self.config.dial_timeout;
        let role = Role::Dialing { peer, deadline, connected: false, nonce, transcript: None, version };
        let mut conn = Conn::new(stream, addr, role, self.config.versions);
        conn.version = version;
        let mut hello = Vec::new();
        let cluster = self.config.cluster;
        let versions = self.config.versions;
        let frame = PeerFrame::Hello { cluster, mode: self.mode(), from: me, to: peer, nonce, versions };
        wire::encode_peer_in(version, &frame, &mut hello);
        conn.queue(&hello);
        match self.add(conn, Interest::READABLE | Interest::WRITABLE) {
            Ok(token) => {
                log::debug!("{} transport: dialling {peer} at {addr} in protocol version {version}", me.id);
                self.slots.entry(peer).or_default().dial = Some(token);
            }
            Err(e) => {
                log::warn!("{} transport: cannot register a dial to {peer} at {addr}: {e}", me.id);
                self.emit(Event::LinkDown { peer });
            }
        }
    }

    /// The first frame of an accepted connection: a `Hello`, or on an open node a client's
    /// request.
    pub(super) fn on_first_frame(&mut self, token: Token, version: u8, frame: Frame) {
        if let Some(conn) = self.conns.get_mut(&token) {
            // Answers go in the version the other end used until its handshake says more.
            conn.version = version;
        }
        match frame {
            Frame::Peer(hello @ PeerFrame::Hello { .. }) => self.on_hello(token, version, hello),
            Frame::Request(request) if self.config.auth.is_none() => {
                if self.clients.len() >= self.config.clients_max {
                    let why = format!("{} clients already connected", self.clients.len());
                    return self.fail(token, Failure::Refused, why);
                }
                // A client without a handshake (one of version 1): it is answered in the
                // version of its requests (docs/PROTOCOL.md §2.3).
                let Some(id) = self.become_client(token) else { return };
                self.emit(Event::Request { client: id, version, request });
            }
            Frame::Request(request) => {
                // Tell the client why, so its operator does not have to read this node's log.
                let number = request.number();
                let message = "this cluster requires its key: give the client --key-file".to_string();
                self.refuse_client(token, number, message);
                self.fail(token, Failure::Refused, "a client request without the key's handshake".into());
            }
            Frame::Peer(other) => {
                let why = format!("first frame is {}, not hello", other.kind().name());
                self.fail(token, Failure::Refused, why);
            }
            Frame::Reply(_) => self.fail(token, Failure::Refused, "first frame is a client reply".into()),
        }
    }

    /// Turns a proven (or open) connection into a client connection.
    fn become_client(&mut self, token: Token) -> Option<ClientId> {
        let id = ClientId(self.next_client);
        self.next_client += 1;
        let conn = self.conns.get_mut(&token)?;
        conn.role = Role::Client { id };
        log::debug!("{} transport: client {} connected from {}", self.config.me.id, id.0, conn.addr);
        self.unproven.remove(&token);
        self.clients.insert(id, token);
        Some(id)
    }

    /// A `Hello` of protocol `version`: answered with a `Challenge` in the highest version both
    /// ends speak (docs/PROTOCOL.md §2.3).
    fn on_hello(&mut self, token: Token, version: u8, hello: PeerFrame) {
        let PeerFrame::Hello { cluster, mode, from, to, nonce, versions } = hello else { return };
        let me = self.config.me;
        let ours = self.config.versions;
        // The Hello's own version is in both ranges (it was decoded here, and a Hello's range
        // holds its version), so they always meet; a dialler this member cannot reach at all
        // was refused by its frame's version byte instead (docs/PROTOCOL.md §2.3).
        let chosen = ours.highest_common(versions).unwrap_or(version);
        // An open cluster's clients do not know its name; the hash binds only a key (§2.1).
        let open_client = from.id == CLIENT_ID && mode == AuthMode::Open;
        if cluster != self.config.cluster && !open_client {
            let why = format!("hello for cluster {cluster:#x}, this is {:#x}", self.config.cluster);
            return self.fail(token, Failure::Refused, why);
        }
        if mode != self.mode() {
            if from.id == CLIENT_ID && mode == AuthMode::Open {
                let message = "this cluster requires its key: give the client --key-file".to_string();
                self.refuse_client(token, 0, message);
            }
            let why = format!("the other end runs {}, this node runs {}", mode.name(), self.mode().name());
            return self.fail(token, Failure::Refused, why);
        }
        if from.id == CLIENT_ID {
            if to != CLIENT_ID && to != me.id {
                return self.fail(
                    token,
                    Failure::Refused,
                    format!("client hello for {to}, this is {}", me.id),
                );
            }
            if self.clients.len() >= self.config.clients_max {
                let why = format!("{} clients already connected", self.clients.len());
                return self.fail(token, Failure::Refused, why);
            }
        } else {
            if to != me.id {
                return self.fail(token, Failure::Refused, format!("hello for {to}, this is {}", me.id));
            }
            if from.id == me.id || !self.config.peers.contains_key(&from.id) {
                let why = format!("hello from {from}, not a configured peer");
                return self.fail(token, Failure::Refused, why);
            }
        }
        let acceptor_nonce = match auth::fresh_nonce() {
            Ok(nonce) => nonce,
            Err(e) => return self.fail(token, Failure::Refused, e),
        };
        let transcript =
            Transcript { mode, cluster, dialer: from, acceptor: me, dialer_nonce: nonce, acceptor_nonce };
        let mut challenge = Vec::new();
        let frame = PeerFrame::Challenge { from: me, mode, nonce: acceptor_nonce, versions: ours };
        wire::encode_peer_in(chosen, &frame, &mut challenge);
        self.queue(token, &challenge);
        let Some(conn) = self.conns.get_mut(&token) else { return };
        if chosen != version {
            log::debug!(
                "{} transport: {} speaks versions {versions}: protocol version {chosen}",
                me.id,
                conn.addr
            );
        }
        conn.version = chosen;
        let Role::Unknown { deadline } = conn.role else { return };
        conn.role = Role::Accepting { deadline, transcript };
    }

    /// The dialler's `Proof`: checked, then the connection becomes a client or a link.
    pub(super) fn on_proof(&mut self, token: Token, transcript: Transcript, frame: Frame) {
        let from = transcript.dialer;
        let proof = match frame {
            Frame::Peer(PeerFrame::Proof { proof }) => proof,
            Frame::Peer(other) => {
                let why = format!("expected a proof, got {}", other.kind().name());
                return self.fail(token, Failure::Refused, why);
            }
            _ => return self.fail(token, Failure::Refused, "expected a proof, got a client frame".into()),
        };
        if !self.proof_holds(Side::Dialer, &transcript, &proof) {
            let who = if from.id == CLIENT_ID { "the client".to_string() } else { format!("{from}") };
            let why = format!("wrong key: {who} does not prove this cluster's key (or cluster name)");
            return self.fail(token, Failure::WrongKey, why);
        }
        let mut ack = Vec::new();
        let ack_frame = PeerFrame::HelloAck { proof: self.proof(Side::Acceptor, &transcript) };
        wire::encode_peer_in(self.version_of(token), &ack_frame, &mut ack);
        if from.id == CLIENT_ID {
            if self.clients.len() >= self.config.clients_max {
                let why = format!("{} clients already connected", self.clients.len());
                return self.fail(token, Failure::Refused, why);
            }
            self.queue(token, &ack);
            self.start_session(token, Side::Acceptor, &transcript);
            self.become_client(token);
            return;
        }
        let me = self.config.me;
        let slot = self.slots.entry(from.id).or_default();
        let (link, dial, parked) = (slot.link, slot.dial, slot.parked.take());
        if let Some(parked) = parked {
            // The same end dialled again: it gave the parked dial up.
            self.close(parked, Why::Duplicate);
        }
        if let Some(old) = link {
            if !self.survives(token, (from, from.id), old) {
                return;
            }
        }
        if let Some(dial) = dial {
            // Both ends dialled: the dial of the lower id survives (docs/PROTOCOL.md §2).
            if from.id < me.id {
                self.close(dial, Why::Duplicate);
            } else {
                // Ours should win, and the peer closes its own dial when ours reaches it. Closing
                // its dial here instead would look to it like a crash of this member; so it waits
                // unanswered until ours is up (then it is closed) or has failed (then it is the
                // link).
                self.unproven.remove(&token);
                let Some(conn) = self.conns.get_mut(&token) else { return };
                let Role::Accepting { deadline, .. } = conn.role else { return };
                conn.role = Role::Parked { deadline, transcript };
                log::debug!("{} transport: crossed dial from {from} parked", me.id);
                self.slots.entry(from.id).or_default().parked = Some(token);
                return;
            }
        }
        self.accept_link(token, transcript);
    }

    /// Answers a proven dial of a peer with `HelloAck` and makes it the link.
    fn accept_link(&mut self, token: Token, transcript: Transcript) {
        let (me, from) = (self.config.me, transcript.dialer);
        let mut ack = Vec::new();
        let version = self.version_of(token);
        wire::encode_peer_in(
            version,
            &PeerFrame::HelloAck { proof: self.proof(Side::Acceptor, &transcript) },
            &mut ack,
        );
        self.queue(token, &ack);
        self.start_session(token, Side::Acceptor, &transcript);
        self.unproven.remove(&token);
        let Some(conn) = self.conns.get_mut(&token) else { return };
        conn.role = Role::Peer { member: from, dialled_by: from.id };
        Counters::bump(&self.counters.links_accepted);
        log::info!(
            "{} transport: link to {from} up (accepted from {}, protocol version {version})",
            me.id,
            conn.addr
        );
        self.slots.entry(from.id).or_default().link = Some(token);
        self.emit(Event::LinkUp { peer: from, version });
    }

    /// Our dial that crossed the parked one failed: the parked one becomes the link.
    pub(super) fn unpark(&mut self, token: Token) {
        let Some(Role::Parked { transcript, .. }) = self.conns.get(&token).map(|c| c.role) else { return };
        log::debug!(
            "{} transport: our dial to {} failed; taking its crossed dial",
            self.config.me.id,
            transcript.dialer
        );
        self.accept_link(token, transcript);
    }

    /// A frame on a dial: first the `Challenge` of the peer dialled, answered with `Proof`, then
    /// its `HelloAck`, after which the link is up. `(sent, version)`: the protocol version of our
    /// `Hello` and of `frame`.
    pub(super) fn on_dial_frame(
        &mut self,
        token: Token,
        peer: NodeId,
        nonce: Nonce,
        transcript: Option<Transcript>,
        (sent, version): (u8, u8),
        frame: Frame,
    ) {
        let me = self.config.me;
        match (transcript, frame) {
            (None, Frame::Peer(PeerFrame::Challenge { .. })) if version > sent => {
                let why = format!("{peer} chose protocol version {version}, higher than our hello's {sent}");
                self.fail(token, Failure::Refused, why)
            }
            (None, Frame::Reply(wire::ClientReply::Error { message, .. })) => {
                if version < sent && self.config.versions.contains(version) {
                    // It speaks an older version at most, which we speak too (§2.3).
                    log::info!(
                        "{} transport: {peer} speaks protocol version {version}; dialling again in it",
                        me.id
                    );
                    return self.dial_again(token, peer, version);
                }
                self.fail(token, Failure::Refused, format!("{peer} refused: {message}"))
            }
            (None, Frame::Peer(PeerFrame::Challenge { from, mode, nonce: acceptor_nonce, .. })) => {
                if from.id != peer {
                    let why = format!("dialled {peer}, but {from} answered");
                    return self.fail(token, Failure::Refused, why);
                }
                if mode != self.mode() {
                    let why = format!("{peer} runs {}, this node runs {}", mode.name(), self.mode().name());
                    return self.fail(token, Failure::Refused, why);
                }
                let cluster = self.config.cluster;
                let transcript = Transcript {
                    mode,
                    cluster,
                    dialer: me,
                    acceptor: from,
                    dialer_nonce: nonce,
                    acceptor_nonce,
                };
                let mut proof = Vec::new();
                wire::encode_peer_in(
                    version,
                    &PeerFrame::Proof { proof: self.proof(Side::Dialer, &transcript) },
                    &mut proof,
                );
                self.queue(token, &proof);
                if let Some(conn) = self.conns.get_mut(&token) {
                    // The acceptor's choice is the connection's version (§2.3).
                    conn.version = version;
                    if let Role::Dialing { transcript: slot, .. } = &mut conn.role {
                        *slot = Some(transcript);
                    }
                }
            }
            (Some(transcript), Frame::Peer(PeerFrame::HelloAck { proof })) => {
                if !self.proof_holds(Side::Acceptor, &transcript, &proof) {
                    let why = format!(
                        "wrong key: {} does not prove this cluster's key (or cluster name)",
                        transcript.acceptor
                    );
                    return self.fail(token, Failure::WrongKey, why);
                }
                self.start_session(token, Side::Dialer, &transcript);
                self.on_link_proven(token, peer, transcript.acceptor);
            }
            (stage, frame) => {
                let expected = if stage.is_none() { "challenge" } else { "hello-ack" };
                let got = match &frame {
                    Frame::Peer(frame) => frame.kind().name(),
                    _ => "a client frame",
                };
                self.fail(token, Failure::Refused, format!("expected the {expected} of {peer}, got {got}"));
            }
        }
    }

    /// A dial whose peer has proven itself becomes the link, unless the link rule keeps another.
    fn on_link_proven(&mut self, token: Token, peer: NodeId, from: Member) {
        let me = self.config.me.id;
        let slot = self.slots.entry(peer).or_default();
        if slot.dial == Some(token) {
            slot.dial = None;
        }
        if let Some(parked) = slot.parked.take() {
            // Ours won the crossing; the peer has closed its dial already, or will.
            self.close(parked, Why::Duplicate);
        }
        if let Some(old) = self.slots.get(&peer).and_then(|slot| slot.link) {
            if !self.survives(token, (from, me), old) {
                return;
            }
        }
        let Some(conn) = self.conns.get_mut(&token) else { return };
        conn.role = Role::Peer { member: from, dialled_by: me };
        let version = conn.version;
        log::info!("{me} transport: link to {from} up (dialled {}, protocol version {version})", conn.addr);
        self.slots.entry(peer).or_default().link = Some(token);
        self.emit(Event::LinkUp { peer: from, version });
    }

    /// The protocol version this end sends on `token`.
    fn version_of(&self, token: Token) -> u8 {
        self.conns.get(&token).map_or(self.config.versions.max, |conn| conn.version)
    }

    /// Replaces the dial `token` to `peer` by one whose `Hello` is of protocol `version`, without
    /// telling the core: it sees one `LinkUp` or `LinkDown` per dial (docs/PROTOCOL.md §2.3).
    pub(super) fn dial_again(&mut self, token: Token, peer: NodeId, version: u8) {
        let slot = self.slots.entry(peer).or_default();
        if slot.dial == Some(token) {
            slot.dial = None;
        }
        self.close(token, Why::Disconnect);
        self.dial_in(peer, version);
    }

    /// Applies `replaces` between the new connection and the up link `old`, closing the loser;
    /// returns whether the new one survives.
    fn survives(&mut self, new_token: Token, new: (Member, NodeId), old: Token) -> bool {
        let old_facts = match self.conns.get(&old).map(|c| c.role) {
            Some(Role::Peer { member, dialled_by }) => (member, dialled_by),
            _ => return true,
        };
        if replaces(new, old_facts) {
            self.close(old, Why::Failed("replaced by a newer link".into()));
            true
        } else {
            self.close(new_token, Why::Duplicate);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u16, incarnation: u64) -> Member {
        Member { id: NodeId(id), incarnation }
    }

    #[test]
    fn crossed_dials_keep_the_one_dialled_by_the_lower_id() {
        // Seen from n2: an up link dialled by n1 (lower) and a late hello on n2's own dial.
        let old = (m(1, 7), NodeId(1));
        assert!(!replaces((m(1, 7), NodeId(2)), old));
        // Seen from n1: its own dial is up, a crossed hello from n2 arrives.
        assert!(!replaces((m(2, 7), NodeId(2)), (m(2, 7), NodeId(1))));
        // The reverse: the up link was dialled by the higher id.
        assert!(replaces((m(2, 7), NodeId(1)), (m(2, 7), NodeId(2))));
    }

    #[test]
    fn a_restarted_or_redialling_peer_replaces_its_old_link() {
        assert!(replaces((m(2, 8), NodeId(2)), (m(2, 7), NodeId(1))));
        assert!(replaces((m(2, 7), NodeId(2)), (m(2, 7), NodeId(2))));
    }
}
