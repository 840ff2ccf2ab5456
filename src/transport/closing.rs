//! Closing connections: the log line, and the events the protocol thread must see.
//!
//! A closed link is reported as `LinkDown` only if it was the peer's up link (or a failed dial
//! with no up link), so a connection that lost the one-link-per-pair rule never makes the core
//! think the link went down (docs/PROTOCOL.md §2).

use std::time::{Duration, Instant};

use mio::Token;

use super::conn::{Conn, Role};
use super::event_loop::EventLoop;
use super::Event;

/// Flush attempts at shutdown, `SHUTDOWN_FLUSH_PAUSE` apart.
const SHUTDOWN_FLUSH_ROUNDS: usize = 20;
const SHUTDOWN_FLUSH_PAUSE: Duration = Duration::from_millis(5);
/// Log lines about unproven connections per `LOG_WINDOW`; the rest are counted and summed up.
const LOG_LINES_PER_WINDOW: u32 = 10;
const LOG_WINDOW: Duration = Duration::from_secs(1);

/// A rate limit for log lines that an outsider can cause, so that a flood of bad connections
/// cannot flood the log: each is still counted (`Counters`), and the number left out is logged.
#[derive(Debug, Default)]
pub(super) struct LogLimit {
    window_start: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

impl LogLimit {
    /// Whether one more line may be logged now; logs how many were left out in the window before.
    pub(super) fn allow(&mut self, now: Instant, me: crate::ids::NodeId) -> bool {
        let expired = self.window_start.is_none_or(|start| now >= start + LOG_WINDOW);
        if expired {
            if self.suppressed > 0 {
                log::warn!(
                    "{me} transport: {} more lines about unproven connections left out (see the counters)",
                    self.suppressed
                );
            }
            *self = LogLimit { window_start: Some(now), lines: 0, suppressed: 0 };
        }
        if self.lines < LOG_LINES_PER_WINDOW {
            self.lines += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// Why a connection is closed; decides the log level and which events are reported.
#[derive(Debug)]
pub(super) enum Why {
    /// The other end closed it.
    Eof,
    /// Something went wrong; logged at warn with the reason.
    Failed(String),
    /// It lost the one-link-per-pair rule (docs/PROTOCOL.md §2).
    Duplicate,
    /// It was the oldest unproven connection when a new one needed its place.
    Evicted,
    /// The protocol thread asked for it; the caller reports `LinkDown` itself.
    Disconnect,
    /// The node is stopping; nothing is reported.
    Shutdown,
}

impl EventLoop {
    /// Closes one connection, logs why and reports what the protocol thread must know.
    pub(super) fn close(&mut self, token: Token, why: Why) {
        let Some(mut conn) = self.conns.remove(&token) else { return };
        self.clients_unsent -= conn.counted_unsent;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.revisit.remove(&token);
        self.dirty.remove(&token);
        self.unproven.remove(&token);
        self.throttled.remove(&token);
        let me = self.config.me.id;
        let what = describe(&conn);
        match &why {
            // An outsider can cause these at will: one line per connection, at a limited rate.
            Why::Failed(_) | Why::Evicted if conn.role.is_unproven() => {
                let reason = match &why {
                    Why::Failed(reason) => reason.as_str(),
                    _ => "evicted by a newer unproven connection",
                };
                if self.unproven_log.allow(Instant::now(), me) {
                    log::warn!("{me} transport: {what}: {reason}; closed");
                }
            }
            Why::Failed(reason) => log::warn!("{me} transport: {what}: {reason}; closed"),
            Why::Eof if matches!(conn.role, Role::Peer { .. }) => log::warn!("{me} transport: {what} closed"),
            _ => log::debug!("{me} transport: {what} closed ({why:?})"),
        }
        let report = !matches!(why, Why::Disconnect | Why::Shutdown);
        match conn.role {
            Role::Unknown { .. } | Role::Accepting { .. } => {}
            Role::Parked { transcript, .. } => {
                let slot = self.slots.entry(transcript.dialer.id).or_default();
                if slot.parked == Some(token) {
                    slot.parked = None;
                }
            }
            Role::Dialing { peer, transcript: None, connected: true, version, .. }
                if matches!(why, Why::Eof) && version > self.config.versions.min =>
            {
                // Closed before its Challenge without a word: how an acceptor of version 1 meets
                // a newer Hello. Once more in our lowest version (docs/PROTOCOL.md §2.3).
                let slot = self.slots.entry(peer).or_default();
                if slot.dial == Some(token) {
                    slot.dial = None;
                }
                log::debug!(
                    "{me} transport: dial to {peer} closed before its challenge; once more in version {}",
                    self.config.versions.min
                );
                self.dial_in(peer, self.config.versions.min);
            }
            Role::Dialing { peer, .. } => {
                let slot = self.slots.entry(peer).or_default();
                if slot.dial == Some(token) {
                    slot.dial = None;
                }
                if report && slot.link.is_none() && !matches!(why, Why::Duplicate) {
                    // A dial is closed by the other end only when that end cannot take it: a
                    // crossing dial of a higher id is parked, never closed (docs/PROTOCOL.md §2).
                    // So a refused, reset or closed dial means the peer is gone: say so at once.
                    match slot.parked.take() {
                        Some(parked) => self.unpark(parked),
                        None => self.emit(Event::LinkDown { peer }),
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
        Role::Accepting { transcript, .. } if transcript.dialer.id.0 == 0 => {
            format!("client handshake from {}", conn.addr)
        }
        Role::Accepting { transcript, .. } => {
            format!("handshake from {} claiming {}", conn.addr, transcript.dialer)
        }
        Role::Parked { transcript, .. } => {
            format!("crossed dial from {} at {}", transcript.dialer, conn.addr)
        }
        Role::Dialing { peer, .. } => format!("dial to {peer} at {}", conn.addr),
        Role::Peer { member, .. } => format!("link to {member} at {}", conn.addr),
        Role::Client { id } => format!("client {} at {}", id.0, conn.addr),
    }
}
