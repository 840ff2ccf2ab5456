//! The replicated state: what committed messages are applied to (guarantee 6).
//!
//! A `StateMachine` is deterministic by contract: the same commits in the same order give the
//! same state and the same digest at every member. Two machines are built in: `DigestLog` (a raw
//! broadcast group: a hash chain over the history) and `DvmState` (the DVM's key-value namespace,
//! member registry and plug-in registry, driven by `Command`s and answering with `Outcome`s).

pub mod agreement;
pub mod command;
mod digest;
mod encoding;
mod journal;
mod kv;
mod outcome;
mod registry;
pub(crate) mod replica;
mod session;
mod snapshot;
pub(crate) mod workload;

pub use command::{Action, ActionKind, Check, Command, Compare, Guard, MemberStatus, Op, Role, Session};
pub use digest::DigestLog;
pub use journal::StateChange;
pub use kv::{DvmState, RANGE_BYTES_MAX};
pub use outcome::{Entry, Outcome, Read};
pub use registry::MemberRecord;
pub use replica::{hot_members, Checkpoint, CheckpointPolicy, Promotion};
pub use session::{CLIENTS_MAX, SESSION_OUTCOME_BYTES_MAX};

use crate::error::DecodeError;
use crate::ids::{MsgId, Seq};

/// A deterministic state machine driven by the committed history.
pub trait StateMachine: Send {
    /// Applies the committed message at `seq` and returns its result for the submitter.
    fn apply(&mut self, seq: Seq, id: MsgId, payload: &[u8]) -> Vec<u8>;
    /// A digest of the whole state, equal at members that applied the same history.
    fn digest(&self) -> u64;
    /// The state as bytes, for checkpoints and state transfer.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot taken by `snapshot`.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DecodeError>;
    /// The DVM state, when this machine is one: the node serves stale reads from it and drains
    /// its change journal for watches.
    fn as_dvm_mut(&mut self) -> Option<&mut DvmState> {
        None
    }
}
