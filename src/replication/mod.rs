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
pub mod universe;
pub(crate) mod workload;

pub use command::{
    Action, ActionKind, Check, Command, Compare, Guard, MemberChange, MemberStatus, Op, Role, Session,
};
pub use digest::DigestLog;
pub use journal::StateChange;
pub use kv::{DvmState, RANGE_BYTES_MAX};
pub use outcome::{Entry, Outcome, Read};
pub use registry::MemberRecord;
pub use replica::{
    hot_members, Checkpoint, CheckpointPolicy, Discarded, Promotion, APPLY_SLICE_BYTES, APPLY_SLICE_COMMANDS,
    TAIL_BYTES_MAX,
};
pub use session::{CLIENTS_MAX, SESSION_OUTCOME_BYTES_MAX};
pub use snapshot::DvmBuilder;
pub use universe::{Universe, UNIVERSE_KEY};

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::error::DecodeError;
use crate::ids::{MsgId, Seq};

/// A deterministic state machine driven by the committed history.
///
/// Nothing here may cost time proportional to the state on the protocol thread
/// (docs/PROTOCOL.md §7): `digest` is kept incrementally, `freeze` and `thaw` are O(1) (the
/// machine's maps are persistent), and encoding a frozen view happens elsewhere, in pieces.
pub trait StateMachine: Send {
    /// Applies the committed message at `seq` and returns its result for the submitter.
    fn apply(&mut self, seq: Seq, id: MsgId, payload: &[u8]) -> Vec<u8>;
    /// A digest of the whole state, equal at members that applied the same history.
    fn digest(&self) -> u64;
    /// A frozen point-in-time view of the state, for checkpoints and state transfer.
    fn freeze(&self) -> Frozen;
    /// Replaces the state with a frozen view of the same kind of machine.
    fn thaw(&mut self, frozen: &Frozen) -> Result<(), DecodeError>;
    /// A builder that decodes this kind of machine's encoding, piece by piece.
    fn builder(&self) -> Box<dyn Builder>;
    /// The DVM state, when this machine is one: the node serves stale reads from it and drains
    /// its change journal for watches.
    fn as_dvm_mut(&mut self) -> Option<&mut DvmState> {
        None
    }
    /// The committed universe this state holds (docs/PROTOCOL.md §5.9), if it holds one: a
    /// state restored from a checkpoint or a donor tells the core who the members are.
    fn universe(&self) -> Option<Universe> {
        None
    }
}

/// A frozen state: immutable and shared by the protocol thread (rollback, state transfer) and
/// the storage thread (encoding a checkpoint), so neither copies it.
pub type Frozen = Arc<dyn Snapshot>;

/// What a frozen state offers.
pub trait Snapshot: Send + Sync + fmt::Debug {
    /// Its digest, equal to the machine's `digest` when it was frozen.
    fn state_digest(&self) -> u64;
    /// How many committed messages it applied: the seq it is the state after, so a snapshot
    /// that names another seq is refused.
    fn applied_count(&self) -> u64;
    /// The length of its canonical encoding, in bytes (kept incrementally: O(1)).
    fn encoded_bytes(&self) -> u64;
    /// Appends the next piece of its canonical encoding from `cursor`: whole records, stopping
    /// once `out` holds at least `bytes_max` bytes. Returns false once the encoding is complete.
    /// Equal states give equal bytes, however the pieces are cut.
    fn encode_piece(&self, cursor: &mut Cursor, out: &mut Vec<u8>, bytes_max: usize) -> bool;
    /// For `thaw`: the concrete state.
    fn as_any(&self) -> &dyn Any;
}

/// Decodes an encoding fed in pieces of any size into a new state.
pub trait Builder: Send {
    /// Decodes what `piece` completes; an error names the bad field.
    fn push(&mut self, piece: &[u8]) -> Result<(), DecodeError>;
    /// The state, if the encoding is complete and nothing follows it.
    fn finish(self: Box<Self>) -> Result<Frozen, DecodeError>;
}

/// Where an encoding stands: a stage and the last key (or client) written in it. Resuming from
/// a cursor writes the same bytes from any frozen copy of the same state (docs/PROTOCOL.md §5.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The section being written (0: not started).
    pub stage: u8,
    /// The last key written in that section, if any.
    pub after: Option<Arc<[u8]>>,
}

/// The whole canonical encoding of a frozen state (tests, small states, the simulator).
pub fn encode_all(frozen: &dyn Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cursor = Cursor::default();
    while frozen.encode_piece(&mut cursor, &mut out, usize::MAX) {}
    out
}

/// Decodes a whole encoding with `builder`.
pub fn decode_all(mut builder: Box<dyn Builder>, bytes: &[u8]) -> Result<Frozen, DecodeError> {
    builder.push(bytes)?;
    builder.finish()
}
