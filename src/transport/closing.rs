//! Closing connections: the log line, and the events the protocol thread must see.
//!
//! A closed link is reported as `LinkDown` only if it was the peer's up link (or a failed dial
//! with no up link), so a connection that lost the one-link-per-pair rule never makes the core
//! think the link went down (docs/PROTOCOL.md §2).

use std::time::Duration;

use mio::Token;

use super::conn::{Conn, Role};
use super::event_loop::EventLoop;
use super::Event;

/// Flush attempts at shutdown, `SHUTDOWN_FLUSH_PAUSE` apart.
const SHUTDOWN_FLUSH_ROUNDS: usize = 20;
const SHUTDOWN_FLUSH_PAUSE: Duration = Duration::from_millis(5);

/// Why a connection is closed; decides the log level and which events are reported.
#[derive(Debug)]
pub(super) enum Why {
    /// The other end closed it.
    Eof,
    /// Something went wrong; logged at warn with the reason.
    Failed(String),
    /// It lost the one-link-per-pair rule (docs/PROTOCOL.md §2).
    Duplicate,
    /// The protocol thread asked for it; the caller reports `LinkDown` itself.
    Disconnect,
    /// The node is stopping; nothing is reported.
    Shutdown,
}

impl EventLoop {
    /// Closes one connection, logs why and reports what the protocol thread must know.
    pub(super) fn close(&mut self, token: Token, why: Why) {
        let Some(mut conn) = self.conns.remove(&token) else { return };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.revisit.remove(&token);
        self.dirty.remove(&token);
        let me = self.config.me.id;
        let what = describe(&conn);
        match &why {
            Why::Failed(reason) => log::warn!("{me} transport: {what}: {reason}; closed"),
            Why::Eof if matches!(conn.role, Role::Peer { .. }) => log::warn!("{me} transport: {what} closed"),
            _ => log::debug!("{me} transport: {what} closed ({why:?})"),
        }
        let report = !matches!(why, Why::Disconnect | Why::Shutdown);
        match conn.role {
            Role::Unknown { .. } => {}
            Role::Dialing { peer, connected, .. } => {
                let crossed = connected && peer < me && matches!(why, Why::Eof);
                let wait = self.config.dial_timeout;
                let slot = self.slots.entry(peer).or_default();
                if slot.dial == Some(token) {
                    slot.dial = None;
                }
                if report && slot.link.is_none() && !matches!(why, Why::Duplicate) {
                    if crossed && slot.awaiting.is_none() {
                        slot.awaiting = Some(std::time::Instant::now() + wait);
                    } else {
                        self.emit(Event::LinkDown { peer });
                    }
                }
            }
            Role::Peer { member, .. } => {
                let slot = self.slots.entry(member.id).or_default();
                if slot.link == Some(token) {
                    slot.link = None;
                    if report {
                        self.emit(Event::LinkDown { peer: member.id });
                    }
                }
            }
            Role::Client { id } => {
                self.clients.remove(&id);
                if report {
                    self.emit(Event::ClientGone { client: id });
                }
            }
        }
    }

    /// Flushes what goes out quickly, then closes everything.
    pub(super) fn shut_down(&mut self) {
        for _ in 0..SHUTDOWN_FLUSH_ROUNDS {
            let unsent: Vec<Token> =
                self.conns.iter().filter(|(_, c)| c.has_unsent()).map(|(&token, _)| token).collect();
            if unsent.is_empty() {
                break;
            }
            for token in unsent {
                self.flush(token);
            }
            std::thread::sleep(SHUTDOWN_FLUSH_PAUSE);
        }
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            self.close(token, Why::Shutdown);
        }
    }
}

/// A connection for log lines: its role, peer or client, and address.
pub(super) fn describe(conn: &Conn) -> String {
    match conn.role {
        Role::Unknown { .. } => format!("connection from {}", conn.addr),
        Role::Dialing { peer, .. } => format!("dial to {peer} at {}", conn.addr),
        Role::Peer { member, .. } => format!("link to {member} at {}", conn.addr),
        Role::Client { id } => format!("client {} at {}", id.0, conn.addr),
    }
}
