//! What the integration tests share: loopback ports, node processes and their guards, in-process
//! nodes, the fault-injecting TCP proxy, proxied meshes and network-namespace hosts.

pub mod common;
pub mod in_process;
pub mod mesh;
pub mod netns;
pub mod proxy;
