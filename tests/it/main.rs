//! Every integration test of the crate, in one binary: one link step instead of one per file, and
//! one port registry and process guard for all of them (`support`). Each module is a story about
//! one part of the system; `cargo test --release --test it <module>::` runs one of them.

mod support;
use support::{common, in_process, mesh, netns, proxy};

mod admin;
mod agreement_processes;
mod attacks;
mod bench_smoke;
mod cli;
mod client_cli;
mod failover_processes;
mod fault_processes;
mod hold_core;
mod json_output;
mod large_state_processes;
mod leave_processes;
mod linearizability;
mod link_faults;
mod members_processes;
mod memory_processes;
mod node_client;
mod node_links;
mod node_ring;
mod node_security;
mod partition_netns;
mod proxy_selftest;
mod quorum_processes;
mod read_processes;
mod ring_core;
mod ring_processes;
mod scale_processes;
mod sim;
mod sim_reads;
mod state_processes;
mod upgrade;
