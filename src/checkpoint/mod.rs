//! Durable state (docs/PROTOCOL.md §7): the format of checkpoint and log files (pure) and the file store of
//! `--data-dir`, the only module that touches files for it, and the storage thread that does so.
//! The core only outputs checkpoints and commands to persist; the node's driver hands them to the
//! storage thread.

mod format;
mod store;
mod writer;

pub use store::{CheckpointFile, CheckpointWrite, Loaded, Store};
pub use writer::{Done, Job, StorageThread};
