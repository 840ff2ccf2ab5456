//! The change journal: every key written or removed by the commands applied since the node last
//! drained it, for watches (docs/PROTOCOL.md §8.3).
//!
//! It is node-local bookkeeping, not replicated state: it is off unless the node turns it on, it
//! is in no snapshot or digest, and the node drains it after every step, so it holds at most one
//! step's changes. A restore from a snapshot cannot say which keys changed, so it is recorded as a
//! `Reset` at the restored revision: a watch cannot be continued across it at this member.

/// One journalled change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateChange {
    /// `key` was set to `value` (or removed, `None`) at `revision`.
    Key {
        /// The revision of the command that made the change.
        revision: u64,
        /// The key.
        key: Vec<u8>,
        /// The new value; `None` if the key was removed.
        value: Option<Vec<u8>>,
    },
    /// The state was replaced by a snapshot taken at `revision`.
    Reset {
        /// The snapshot's revision.
        revision: u64,
    },
}

/// The journal of a `DvmState`, on when `Some`.
pub(crate) type Journal = Option<Vec<StateChange>>;
