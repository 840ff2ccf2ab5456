//! The `harness` command line: which command to run, its flags, and running a node.
//!
//! Parsing is pure (`parse_command`) so every error message is unit-tested; the binary only
//! prints the result. Usage and start-up problems are one line naming the flag, exit code 2.

mod args;
pub mod audit;
pub mod demo;
mod error;
mod flags;
mod node;
mod procs;
mod report;
pub mod workload;

pub use args::{
    cluster_hash, load_key, parse_demo_args, parse_hostfile, parse_keygen_args, parse_node_args, parse_peers,
    DemoArgs, NodeArgs, DEFAULT_CLUSTER,
};
pub use demo::run_demo;
pub use error::{CliError, EXIT_USAGE};
pub use flags::{parse_address, DEFAULT_PORT};
pub use node::run_node;
pub use report::{DemoReport, Kill};

use std::path::Path;

/// The text `harness --help` prints.
pub const USAGE: &str = "\
harness: a fault-tolerant control plane; members form a TCP token ring and deliver every
member's messages in one total order.

Usage:
  harness node --id N (--peers 1=HOST:PORT,2=HOST:PORT,... | --hostfile FILE) [options]
  harness demo [--nodes 5] [--messages 2000] [--ring bi|uni] [--kill 0] [--json]
  harness keygen --key-file FILE
  harness --help

harness node: run one member until Ctrl-C or SIGTERM.
  --id N               this member's id, 1..=65535
  --peers LIST         every member as ID=HOST:PORT, comma separated, this one included
  --hostfile FILE      instead of --peers: one HOST[:PORT] a line (port 7100 if omitted);
                       the first host line is id 1, '#' starts a comment
  --listen HOST:PORT   address to listen on (default: this id's entry in the peer list)
  --ring bi|uni        messages travel both ways round the ring (bi, default) or one way
  --token-timeout MS   silence after which a neighbour counts as gone (default 1000)
  --cluster NAME       nodes of different clusters refuse each other (default harness)
  --delivery-log FILE  write one line per agreed delivery, replacing FILE at start:
                       view seq origin incarnation counter payload_fnv64hex
  --key-file FILE      the cluster key (32 bytes, mode 600, from harness keygen): peers and
                       clients must prove it, every frame carries a MAC. Without it the node
                       runs open and says so
  --encrypt            with --key-file: also encrypt every frame (ChaCha20-Poly1305); every
                       member and client must agree

harness keygen: write a new random cluster key to --key-file FILE (mode 600, never
overwriting); copy it to every member and client host.

harness demo: start --nodes local node processes on free loopback ports, submit --messages
from each node concurrently, check every node delivered all of them in the same order, stop
the processes. --kill N kills N random members with kill -9 during the run and restarts each
about a second later; their clients resubmit elsewhere, and the nodes' delivery logs are
audited. Exits 0 only if verified; --json prints one JSON summary last.

Logging: RUST_LOG=error|warn|info|debug|trace (default info).
Errors: one line on stderr naming the flag, exit code 2.
";

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Print `USAGE`.
    Help,
    /// Run one member.
    Node(NodeArgs),
    /// Run the local demo.
    Demo(DemoArgs),
    /// Write a new cluster key to this file.
    Keygen(std::path::PathBuf),
}

/// Parses the arguments after the program name; `read_file` reads a hostfile.
pub fn parse_command(
    args: &[String],
    read_file: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Command, CliError> {
    let Some((command, rest)) = args.split_first() else {
        return Err(CliError::MissingCommand);
    };
    // `--help` anywhere wins, so `harness node --id 1 --help` shows usage instead of an error.
    if args.iter().any(|a| a == "--help" || a == "-h") || command == "help" {
        return Ok(Command::Help);
    }
    match command.as_str() {
        "node" => Ok(Command::Node(parse_node_args(rest, read_file)?)),
        "demo" => Ok(Command::Demo(parse_demo_args(rest)?)),
        "keygen" => Ok(Command::Keygen(parse_keygen_args(rest)?)),
        other => Err(CliError::UnknownCommand { command: other.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Command, CliError> {
        let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
        parse_command(&args, |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)))
    }

    #[test]
    fn commands_dispatch_and_help_wins() {
        assert_eq!(parse("--help").unwrap(), Command::Help);
        assert_eq!(parse("node --id 1 --help").unwrap(), Command::Help);
        assert!(matches!(parse("demo --nodes 2").unwrap(), Command::Demo(DemoArgs { nodes: 2, .. })));
        assert!(matches!(parse("node --id 1 --peers 1=127.0.0.1:7101").unwrap(), Command::Node(_)));
        assert_eq!(parse("").unwrap_err().to_string(), "no command given (try --help)");
        assert_eq!(parse("serve").unwrap_err().to_string(), "unknown command \"serve\" (try --help)");
    }

    #[test]
    fn usage_mentions_every_flag() {
        for flag in [
            "--id",
            "--peers",
            "--hostfile",
            "--listen",
            "--ring",
            "--token-timeout",
            "--cluster",
            "--delivery-log",
            "--key-file",
            "--encrypt",
            "keygen",
        ] {
            assert!(USAGE.contains(flag), "{flag}");
        }
        for flag in ["--nodes", "--messages", "--kill", "--json"] {
            assert!(USAGE.contains(flag), "{flag}");
        }
    }
}
