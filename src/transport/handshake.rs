//! Link handshakes: dialling a peer, answering `Hello`, taking `HelloAck`, telling clients from
//! peers, and the one-link-per-pair rule (docs/PROTOCOL.md §2).
//!
//! When both ends dial at once, the connection dialled by the lower id survives. Both ends apply
//! the rule to the same facts, so they keep the same connection and no frame is ever sent on the
//! one that is closed: the loser is closed during its handshake, before it carries anything.

use std::time::Instant;

use mio::{Interest, Token};

use super::closing::Why;
use super::conn::{Conn, Role};
use super::event_loop::EventLoop;
use super::{ClientId, Event};
use crate::core::frame_name;
use crate::ids::{Member, NodeId};
use crate::wire::{self, Frame, PeerFrame};

/// Whether a new link to a peer replaces the existing one; each is (member, dialler).
///
/// A new incarnation means the peer restarted and the old link is dead. A second link dialled by
/// the same end means that end gave the first up. Otherwise two dials crossed, and the one dialled
/// by the lower id survives.
pub(super) fn replaces(new: (Member, NodeId), old: (Member, NodeId)) -> bool {
    new.0.incarnation != old.0.incarnation || new.1 == old.1 || new.1 < old.1
}

impl EventLoop {
    /// Dials `peer` unless a link or a dial to it exists; failures become `LinkDown`.
    pub(super) fn dial(&mut self, peer: NodeId) {
        let me = self.config.me;
        let Some(&addr) = self.config.peers.get(&peer).filter(|_| peer != me.id) else {
            log::warn!("{} transport: asked to dial {peer}, which is not a configured peer", me.id);
            return self.emit(Event::LinkDown { peer });
        };
        let slot = self.slots.entry(peer).or_default();
        if slot.link.is_some() || slot.dial.is_some() || slot.awaiting.is_some() {
            // The link is up (its LinkUp is on its way), a dial is already running, or the
            // peer's crossing dial is expected (`Slot::awaiting`).
            return;
        }
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
        let mut conn = Conn::new(stream, addr, Role::Dialing { peer, deadline, connected: false });
        let mut hello = Vec::new();
        wire::encode_peer(&PeerFrame::Hello { cluster: self.config.cluster, from: me, to: peer }, &mut hello);
        conn.queue(&hello);
        match self.add(conn, Interest::READABLE | Interest::WRITABLE) {
            Ok(token) => {
                log::debug!("{} transport: dialling {peer} at {addr}", me.id);
                self.slots.entry(peer).or_default().dial = Some(token);
            }
            Err(e) => {
                log::warn!("{} transport: cannot register a dial to {peer} at {addr}: {e}", me.id);
                self.emit(Event::LinkDown { peer });
            }
        }
    }

    /// The first frame of an accepted connection: a peer's `Hello` or a client's request.
    pub(super) fn on_first_frame(&mut self, token: Token, frame: Frame) {
        match frame {
            Frame::Peer(PeerFrame::Hello { cluster, from, to }) => self.on_hello(token, cluster, from, to),
            Frame::Request(request) => {
                if self.clients.len() >= self.config.clients_max {
                    let why = format!("{} clients already connected", self.clients.len());
                    return self.close(token, Why::Failed(why));
                }
                let id = ClientId(self.next_client);
                self.next_client += 1;
                let Some(conn) = self.conns.get_mut(&token) else { return };
                conn.role = Role::Client { id };
                log::debug!("{} transport: client {} connected from {}", self.config.me.id, id.0, conn.addr);
                self.clients.insert(id, token);
                self.emit(Event::Request { client: id, request });
            }
            Frame::Peer(other) => {
                let why = format!("first frame is {}, not hello", frame_name(&other));
                self.close(token, Why::Failed(why));
            }
            Frame::Reply(_) => self.close(token, Why::Failed("first frame is a client reply".into())),
        }
    }

    fn on_hello(&mut self, token: Token, cluster: u64, from: Member, to: NodeId) {
        let me = self.config.me;
        if cluster != self.config.cluster {
            let why = format!("hello for cluster {cluster:#x}, this is {:#x}", self.config.cluster);
            return self.close(token, Why::Failed(why));
        }
        if to != me.id {
            return self.close(token, Why::Failed(format!("hello for {to}, this is {}", me.id)));
        }
        if from.id == me.id || !self.config.peers.contains_key(&from.id) {
            return self.close(token, Why::Failed(format!("hello from {from}, not a configured peer")));
        }
        let slot = self.slots.entry(from.id).or_default();
        let (link, dial) = (slot.link, slot.dial);
        if let Some(old) = link {
            if !self.survives(token, (from, from.id), old) {
                return;
            }
        }
        if let Some(dial) = dial {
            // Both ends dialled: the dial of the lower id survives.
            if from.id < me.id {
                self.close(dial, Why::Duplicate);
            } else {
                return self.close(token, Why::Duplicate);
            }
        }
        let Some(conn) = self.conns.get_mut(&token) else { return };
        conn.role = Role::Peer { member: from, dialled_by: from.id };
        log::info!("{} transport: link to {from} up (accepted from {})", me.id, conn.addr);
        let mut ack = Vec::new();
        wire::encode_peer(&PeerFrame::HelloAck { from: me }, &mut ack);
        self.queue(token, &ack);
        let slot = self.slots.entry(from.id).or_default();
        slot.link = Some(token);
        slot.awaiting = None;
        self.emit(Event::LinkUp { peer: from });
    }

    /// The first frame on a dial must be the `HelloAck` of the peer dialled.
    pub(super) fn on_hello_ack(&mut self, token: Token, peer: NodeId, frame: Frame) {
        let from = match frame {
            Frame::Peer(PeerFrame::HelloAck { from }) if from.id == peer => from,
            _ => return self.close(token, Why::Failed(format!("expected the hello-ack of {peer}"))),
        };
        let me = self.config.me.id;
        let slot = self.slots.entry(peer).or_default();
        if slot.dial == Some(token) {
            slot.dial = None;
        }
        if let Some(old) = slot.link {
            if !self.survives(token, (from, me), old) {
                return;
            }
        }
        let Some(conn) = self.conns.get_mut(&token) else { return };
        conn.role = Role::Peer { member: from, dialled_by: me };
        log::info!("{me} transport: link to {from} up (dialled {})", conn.addr);
        let slot = self.slots.entry(peer).or_default();
        slot.link = Some(token);
        slot.awaiting = None;
        self.emit(Event::LinkUp { peer: from });
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
