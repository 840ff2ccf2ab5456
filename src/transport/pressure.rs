//! The write side's byte bounds (docs/PROTOCOL.md §2.2): what the loop does when the bytes it
//! holds for others to read grow.
//!
//! - A link whose unsent bytes pass `PEER_UNSENT_BYTES_MAX` is *pressed* until they fall below
//!   half of it. While any link is pressed, the loop reads neither the clients nor the other
//!   peers, whose frames are what it would forward or answer onto the pressed link; TCP then
//!   pushes back on them. It keeps reading the pressed link's own peer, whose frames go the other
//!   way round the ring, so two neighbours can never wait on each other. No frame of a live link
//!   is dropped.
//! - Clients are not read either while the protocol thread says its submit queue is full
//!   (`Counters::submit_queue_full`): their requests then wait in TCP, not in this process, and
//!   are not answered busy after crossing the network.
//! - The clients' unsent bytes together are bounded too: above `CLIENTS_UNSENT_BYTES_MAX` no
//!   client is read (their requests are what produce replies), and above twice that the client
//!   with the most unsent bytes is closed as a slow reader, so a crowd of slow watchers cannot
//!   hold more than that between them. One client alone is closed past `CLIENT_UNSENT_BYTES_MAX`.

use std::sync::atomic::Ordering;

use mio::Token;

use super::closing::Why;
use super::conn::{Role, PEER_UNSENT_BYTES_MAX};
use super::counters::Counters;
use super::event_loop::EventLoop;

/// The clients' unsent bytes together above which no client is read; twice this, the slowest
/// reader is closed.
pub const CLIENTS_UNSENT_BYTES_MAX: usize = 8 << 20;

impl EventLoop {
    /// Brings the count of the clients' unsent bytes up to date for the connection `token` after
    /// its buffer changed (or its role became a client's).
    pub(super) fn recount(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let now = if matches!(conn.role, Role::Client { .. }) { conn.unsent_bytes() } else { 0 };
        self.clients_unsent = self.clients_unsent + now - conn.counted_unsent;
        conn.counted_unsent = now;
    }

    /// After the writes of a turn: presses or releases each link, and closes the slowest client
    /// while the clients together hold too much.
    pub(super) fn update_pressure(&mut self) {
        let links: Vec<(crate::ids::NodeId, Token)> =
            self.slots.iter().filter_map(|(&peer, slot)| slot.link.map(|token| (peer, token))).collect();
        for (peer, token) in links {
            let unsent = self.conns.get(&token).map_or(0, |conn| conn.unsent_bytes());
            if unsent > PEER_UNSENT_BYTES_MAX {
                if self.pressed.insert(peer) {
                    Counters::bump(&self.counters.link_pushbacks);
                    log::debug!(
                        "{} transport: {unsent} bytes unsent to {peer}; pushing back",
                        self.config.me.id
                    );
                }
            } else if unsent < PEER_UNSENT_BYTES_MAX / 2 {
                self.pressed.remove(&peer);
            }
        }
        self.pressed.retain(|peer| self.slots.get(peer).is_some_and(|slot| slot.link.is_some()));
        // Bounded: each pass closes one client, and there are finitely many.
        while self.clients_unsent > 2 * CLIENTS_UNSENT_BYTES_MAX {
            let slowest = self
                .conns
                .iter()
                .filter(|(_, conn)| matches!(conn.role, Role::Client { .. }))
                .max_by_key(|(_, conn)| conn.counted_unsent)
                .map(|(&token, _)| token);
            let Some(token) = slowest else { break };
            Counters::bump(&self.counters.slow_readers);
            self.close(
                token,
                Why::Failed("the clients hold too many unsent bytes; this one reads slowest".into()),
            );
        }
    }

    /// Whether the connection in `role` must not be read now (it waits in `throttled`).
    pub(super) fn read_paused(&self, role: &Role) -> bool {
        match role {
            Role::Client { .. } => {
                !self.pressed.is_empty()
                    || self.clients_unsent > CLIENTS_UNSENT_BYTES_MAX
                    || self.client_requests_over_budget()
                    || self.counters.submit_queue_full.load(Ordering::Relaxed)
            }
            Role::Peer { member, .. } => !self.pressed.is_empty() && !self.pressed.contains(&member.id),
            Role::Unknown { .. } | Role::Accepting { .. } | Role::Parked { .. } | Role::Dialing { .. } => {
                false
            }
        }
    }

    /// Puts every throttled connection that may be read again back on the list to read.
    pub(super) fn release_throttled(&mut self) {
        let ready: Vec<Token> = self
            .throttled
            .iter()
            .copied()
            .filter(|token| self.conns.get(token).is_some_and(|conn| !self.read_paused(&conn.role)))
            .collect();
        for token in ready {
            self.throttled.remove(&token);
            self.revisit.insert(token);
        }
    }
}
