//! Durable state (issue 5): the format of checkpoint and log files (pure) and the file store of
//! `--data-dir`, the only module that touches files for it. The core only outputs checkpoints
//! and commands to persist; the node's driver hands them to the store.

mod format;
mod store;

pub use store::{CheckpointWrite, Loaded, Store};
