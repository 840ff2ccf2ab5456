//! Harness: a fault-tolerant, peer-to-peer control plane for HPC clusters.
//!
//! Members form a TCP ring; every member can submit messages; the control token orders them into
//! one history that every member delivers in the same order (docs/PROTOCOL.md).
//!
//! ```text
//!            peers, clients (TCP)
//!                   |
//!     +-------------v--------------+   decoded frames    +-------------------------+
//!     | event loop thread (mio)    | ------------------> | protocol thread         |
//!     | listener, neighbour links, |   (crossbeam)       | owns Core: token, seqs, |
//!     | client connections;        | <------------------ | views, fair share,      |
//!     | framing only               |  frames + mio Waker | state machine           |
//!     +----------------------------+                     +-------------------------+
//! ```
//!
//! `Core` is sans-IO: drive it with `step(now, input, &mut outputs)` and `next_deadline()`.
//! The node runtime and the deterministic simulator drive the same code.

pub mod auth;
pub mod bench;
mod budget;
pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod config;
pub mod core;
pub mod error;
pub mod hash;
pub mod idle;
pub mod ids;
pub mod json;
pub mod metrics;
pub mod node;
pub mod procs;
pub mod replication;
pub mod rng;
pub mod sim;
pub mod time;
pub mod transport;
pub mod wire;

pub use crate::config::{CoreConfig, Defect, Durability, QuorumMode};
pub use crate::core::{Commit, Core, CoreStatus, Delivery, Input, Output, RejectReason, ViewInfo};
pub use crate::error::{ConfigError, DecodeError, Error};
pub use crate::ids::{Ballot, Member, MsgId, NodeId, RingMode, Seq, ViewId, Voter};
pub use crate::node::{Node, NodeConfig, NodeOptions, Rejection};
pub use crate::time::Time;
