//! The watch hub: the node's recent change history and the client watches streaming from it
//! (docs/PROTOCOL.md §8.3).
//!
//! The protocol thread feeds it the state machine's journal after every step, so events reach
//! watchers in commit order, exactly once per watch. The history is bounded (`HISTORY_EVENTS_MAX`,
//! `HISTORY_BYTES_MAX`); older revisions are compacted whole, and a watch from a compacted revision
//! is refused with `Compacted` rather than silently skipping changes. A restore from a snapshot
//! breaks the history: every watch is ended with `NoQuorum` ("watch again"), which makes the client
//! resume at another member.

use std::collections::VecDeque;

use crate::replication::StateChange;
use crate::transport::ClientId;
use crate::wire::{ClientReply, ErrorCode, Payload, WatchEvent, WatchKind};

/// Most events kept for watches that start in the past.
pub const HISTORY_EVENTS_MAX: usize = 32_768;
/// Most bytes the history holds: its events' keys and values plus `EVENT_OVERHEAD_BYTES` each
/// (docs/PROTOCOL.md §2.2). A member journals every change it applies, whoever watches, so this is
/// memory every member spends; 4 MiB keeps the last 250 or so changes of 16 KiB values, and
/// `HISTORY_EVENTS_MAX` small ones.
pub const HISTORY_BYTES_MAX: usize = 4 << 20;
/// What one event costs beyond its key and value: the event itself and two shared buffers.
const EVENT_OVERHEAD_BYTES: usize = 96;
/// Most key and value bytes sent in one `Events` frame (one larger event goes alone).
const BATCH_BYTES_MAX: usize = 1 << 20;
/// Most watches one node serves.
pub const WATCHES_MAX: usize = 4096;

struct Watch {
    client: ClientId,
    request: u64,
    prefix: Payload,
    /// The first revision this watch wants.
    from: u64,
}

/// Recent history and active watches.
pub(super) struct WatchHub {
    history: VecDeque<WatchEvent>,
    history_bytes: usize,
    /// Every change after this revision is in `history`.
    complete_after: u64,
    /// The state machine's revision after the last step.
    revision: u64,
    watches: Vec<Watch>,
}

fn event_bytes(event: &WatchEvent) -> usize {
    event.key.len() + event.value.len()
}

/// What an event held in the history costs.
fn held_bytes(event: &WatchEvent) -> usize {
    event_bytes(event) + EVENT_OVERHEAD_BYTES
}

/// Replies carrying `events` for `request`, each under `BATCH_BYTES_MAX`; at least one reply.
fn batches(request: u64, revision: u64, events: Vec<WatchEvent>) -> Vec<ClientReply> {
    let mut replies = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for event in events {
        if !batch.is_empty() && bytes + event_bytes(&event) > BATCH_BYTES_MAX {
            replies.push(ClientReply::Events { request, revision, events: std::mem::take(&mut batch) });
            bytes = 0;
        }
        bytes += event_bytes(&event);
        batch.push(event);
    }
    if !batch.is_empty() || replies.is_empty() {
        replies.push(ClientReply::Events { request, revision, events: batch });
    }
    replies
}

impl WatchHub {
    /// A hub whose history starts at `revision`.
    pub(super) fn new(revision: u64) -> WatchHub {
        WatchHub {
            history: VecDeque::new(),
            history_bytes: 0,
            complete_after: revision,
            revision,
            watches: Vec::new(),
        }
    }

    /// Starts a watch; returns the replies to send (the first confirms it) or the refusal.
    pub(super) fn watch(
        &mut self,
        client: ClientId,
        request: u64,
        prefix: Payload,
        from: u64,
    ) -> Result<Vec<ClientReply>, (ErrorCode, String)> {
        if self.watches.len() >= WATCHES_MAX {
            return Err((ErrorCode::Busy, format!("this member already serves {WATCHES_MAX} watches")));
        }
        let from = if from == 0 { self.revision + 1 } else { from };
        if from <= self.complete_after {
            return Err((
                ErrorCode::Compacted,
                format!(
                    "revision {from} is compacted here; this member holds the changes after revision {}",
                    self.complete_after
                ),
            ));
        }
        let replay: Vec<WatchEvent> = self
            .history
            .iter()
            .filter(|event| event.revision >= from && event.key.starts_with(&prefix))
            .cloned()
            .collect();
        self.watches.push(Watch { client, request, prefix, from });
        Ok(batches(request, self.revision, replay))
    }

    /// Whether no watch is running.
    pub(super) fn is_idle(&self) -> bool {
        self.watches.is_empty()
    }

    /// Ends every watch of a closed connection.
    pub(super) fn forget(&mut self, client: ClientId) {
        self.watches.retain(|watch| watch.client != client);
    }

    /// Records the changes of one step (the state is now at `revision`) and returns the replies
    /// for the watches they concern.
    pub(super) fn on_changes(
        &mut self,
        changes: Vec<StateChange>,
        revision: u64,
    ) -> Vec<(ClientId, ClientReply)> {
        self.revision = revision;
        if changes.is_empty() {
            return Vec::new();
        }
        let mut per_watch: Vec<Vec<WatchEvent>> = self.watches.iter().map(|_| Vec::new()).collect();
        let mut ended = Vec::new();
        for change in changes {
            match change {
                StateChange::Key { revision, key, value } => {
                    let kind = if value.is_some() { WatchKind::Put } else { WatchKind::Delete };
                    let event = WatchEvent {
                        revision,
                        kind,
                        key: key.into(),
                        value: value.unwrap_or_default().into(),
                    };
                    for (watch, events) in self.watches.iter().zip(&mut per_watch) {
                        if event.revision >= watch.from && event.key.starts_with(&watch.prefix) {
                            events.push(event.clone());
                        }
                    }
                    self.remember(event);
                }
                StateChange::Reset { revision } => {
                    self.history.clear();
                    self.history_bytes = 0;
                    self.complete_after = revision;
                    ended.extend(self.watches.drain(..).map(|watch| (watch.client, watch.request)));
                    per_watch.clear();
                }
            }
        }
        let mut replies: Vec<(ClientId, ClientReply)> = ended
            .into_iter()
            .map(|(client, request)| {
                let message =
                    "this member restored its state from a snapshot; watch again elsewhere".to_string();
                (client, ClientReply::Error { request, code: ErrorCode::NoQuorum, message })
            })
            .collect();
        for (watch, events) in self.watches.iter().zip(per_watch) {
            if !events.is_empty() {
                replies.extend(
                    batches(watch.request, revision, events).into_iter().map(|reply| (watch.client, reply)),
                );
            }
        }
        replies
    }

    /// Appends to the history, compacting whole revisions from the front to stay in bounds.
    fn remember(&mut self, event: WatchEvent) {
        self.history_bytes += held_bytes(&event);
        self.history.push_back(event);
        while self.history.len() > HISTORY_EVENTS_MAX || self.history_bytes > HISTORY_BYTES_MAX {
            let Some(oldest) = self.history.pop_front() else { break };
            self.history_bytes -= held_bytes(&oldest);
            self.complete_after = oldest.revision;
            while self.history.front().is_some_and(|event| event.revision == oldest.revision) {
                if let Some(same) = self.history.pop_front() {
                    self.history_bytes -= held_bytes(&same);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(revision: u64, key: &str, value: &str) -> StateChange {
        StateChange::Key { revision, key: key.into(), value: Some(value.into()) }
    }

    fn keys(reply: &ClientReply) -> Vec<(u64, String)> {
        let ClientReply::Events { events, .. } = reply else { panic!("{reply:?}") };
        events.iter().map(|e| (e.revision, String::from_utf8_lossy(&e.key).into_owned())).collect()
    }

    #[test]
    fn a_watch_replays_from_its_revision_then_streams_its_prefix() {
        let mut hub = WatchHub::new(0);
        assert!(hub
            .on_changes(vec![put(1, "a/1", "x"), put(2, "b/1", "y"), put(3, "a/2", "z")], 3)
            .is_empty());
        let first = hub.watch(ClientId(7), 40, Payload::from(&b"a/"[..]), 2).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(keys(&first[0]), [(3, "a/2".to_string())]);
        let now = hub.watch(ClientId(8), 41, Payload::from(&b""[..]), 0).unwrap();
        assert_eq!(keys(&now[0]), [], "from 0 starts after the current revision");

        let deleted = StateChange::Key { revision: 4, key: b"a/1".to_vec(), value: None };
        let replies = hub.on_changes(vec![deleted, put(4, "c", "w")], 4);
        let for7: Vec<_> = replies.iter().filter(|(c, _)| *c == ClientId(7)).collect();
        assert_eq!(keys(&for7[0].1), [(4, "a/1".to_string())]);
        let ClientReply::Events { events, revision, .. } = &for7[0].1 else { unreachable!() };
        assert_eq!((events[0].kind, *revision), (WatchKind::Delete, 4));
        let for8: Vec<_> = replies.iter().filter(|(c, _)| *c == ClientId(8)).collect();
        assert_eq!(keys(&for8[0].1), [(4, "a/1".to_string()), (4, "c".to_string())]);

        hub.forget(ClientId(7));
        let replies = hub.on_changes(vec![put(5, "a/3", "v")], 5);
        assert_eq!(replies.len(), 1, "only the remaining watch hears of it");
    }

    #[test]
    fn compacted_revisions_are_refused_and_a_reset_ends_every_watch() {
        let mut hub = WatchHub::new(10);
        let refused = hub.watch(ClientId(1), 1, Payload::from(&b""[..]), 5).unwrap_err();
        assert_eq!(refused.0, ErrorCode::Compacted);
        assert!(refused.1.contains("after revision 10"), "{}", refused.1);
        let changes: Vec<StateChange> =
            (11..=11 + HISTORY_EVENTS_MAX as u64).map(|r| put(r, "k", "v")).collect();
        hub.on_changes(changes, 11 + HISTORY_EVENTS_MAX as u64);
        assert_eq!(hub.history.len(), HISTORY_EVENTS_MAX);
        assert_eq!(
            hub.watch(ClientId(1), 2, Payload::from(&b""[..]), 11).unwrap_err().0,
            ErrorCode::Compacted
        );
        assert!(hub.watch(ClientId(1), 3, Payload::from(&b""[..]), 12).is_ok());

        let replies = hub.on_changes(vec![StateChange::Reset { revision: 900_000 }], 900_000);
        assert!(matches!(
            replies[..],
            [(ClientId(1), ClientReply::Error { request: 3, code: ErrorCode::NoQuorum, .. })]
        ));
        assert!(hub.watches.is_empty());
    }

    #[test]
    fn the_history_is_bounded_in_bytes_whatever_the_value_sizes() {
        let mut hub = WatchHub::new(0);
        let value = "v".repeat(16 << 10);
        for revision in 1..=2000u64 {
            hub.on_changes(vec![put(revision, "k", &value)], revision);
            assert!(hub.history_bytes <= HISTORY_BYTES_MAX, "{} bytes held", hub.history_bytes);
        }
        let held: usize = hub.history.iter().map(held_bytes).sum();
        assert_eq!(held, hub.history_bytes);
        assert!(hub.history.len() > 200, "only {} events kept", hub.history.len());
        // The oldest revisions were compacted: a watch from them is refused, not cut short.
        let refused = hub.watch(ClientId(1), 1, Payload::from(&b""[..]), 1).unwrap_err();
        assert_eq!(refused.0, ErrorCode::Compacted);
    }

    #[test]
    fn large_replays_are_split_into_bounded_frames() {
        let mut hub = WatchHub::new(0);
        let big = "v".repeat(BATCH_BYTES_MAX / 2);
        hub.on_changes((1..=5).map(|r| put(r, "k", &big)).collect(), 5);
        let replies = hub.watch(ClientId(1), 1, Payload::from(&b""[..]), 1).unwrap();
        assert_eq!(replies.iter().map(|r| keys(r).len()).collect::<Vec<_>>(), [1, 1, 1, 1, 1]);
    }
}
