//! The `harness` command line: which command to run, its flags, and running a node.
//!
//! Parsing is pure (`parse_command`) so every error message is unit-tested; the binary only
//! prints the result. Usage and start-up problems are one line naming the flag, exit code 2.
//! The client commands (`client_args`, `client_cmd`) use `client::ClusterClient` and exit with a
//! code that says what happened (not found, guard failed, no quorum, unreachable).

mod args;
pub mod audit;
mod client_args;
mod client_cmd;
mod config_file;
pub mod demo;
mod error;
mod flags;
pub mod journal;
pub mod manual;
pub mod metrics_http;
mod node;
mod procs;
mod report;
pub mod slurm;
mod table;
pub mod workload;

pub use crate::client::address::{parse_address, parse_cluster, DEFAULT_CLUSTER, DEFAULT_PORT};
pub use args::{
    cluster_hash, load_key, parse_demo_args, parse_hostfile, parse_keygen_args, parse_node_args,
    parse_node_args_with_env, parse_peers, DemoArgs, NodeArgs, QuorumArgs,
};
pub use client_args::{parse_client_args, ClientArgs, ClientOp, ValueSource, CLUSTER_VARIABLE};
pub use client_cmd::{
    put_value_bytes_max, run_client, Failure, EXIT_FAILED, EXIT_GUARD_FAILED, EXIT_NOT_ENOUGH_REPLICAS,
    EXIT_NOT_FOUND, EXIT_NO_QUORUM, EXIT_UNREACHABLE,
};
pub use demo::run_demo;
pub use error::{CliError, EXIT_USAGE};
pub use flags::{parse_number, Flags, Given};
pub use node::run_node;
pub use report::{DemoReport, Kill};

use std::path::Path;

/// The text `harness --help` prints.
pub const USAGE: &str = "\
harness: a fault-tolerant control plane; members form a TCP token ring and deliver every
member's messages in one total order.

Usage:
  harness node --id N (--peers 1=HOST:PORT,2=HOST:PORT,... | --hostfile FILE) [options]
  harness node --slurm [--port 7100] [options]
  harness put KEY VALUE      harness get KEY [--stale]      harness del KEY
  harness put KEY --file FILE | harness put KEY -   (the value from a file, or from stdin)
  harness range PREFIX [--limit N] [--stale]
  harness txn [--if GUARD]... [--then OP]... [--else OP]...   (no clause: read them from stdin)
  harness watch PREFIX [--from REVISION] [--count N]
  harness status [--each]    harness members [--each]       harness leave
  harness member add [ID] HOST:PORT | member remove ID | member update ID HOST:PORT
  harness node --id N --listen HOST:PORT --join HOST:PORT[,...]   (a member added at run time)
  harness node --id N --listen HOST:PORT --data-dir DIR --durability checkpoint|fsync
                             (such a member restarting from its own files)
  harness metrics [--each]   (Prometheus text: one member's counters, or every member's)
  harness plugin load NAME   (every member must be able to load it, or none records it)
  harness force-primary --cluster HOST:PORT [--yes]   (only when a quorum is gone for good)
  harness keygen --key-file FILE
  harness demo [--nodes 5] [--messages 2000] [--ring bi|uni] [--kill 0] [--hot 2] [--json]
  harness man                harness completions bash   (the man page, bash completions)
  harness --help             harness --version (or harness version)

harness node: run one member until Ctrl-C or SIGTERM.
  --id N               this member's id, 1..=65535
  --peers LIST         every member as ID=HOST:PORT, comma separated, this one included
  --hostfile FILE      instead of --peers: one HOST[:PORT] a line (port 7100 if omitted);
                       the first host line is id 1, '#' starts a comment
  --slurm              instead of --id and --peers: the id from SLURM_PROCID (or SLURM_NODEID)
                       + 1 and the peers from SLURM_JOB_NODELIST (e.g. node[01-04,07]), every
                       host on --port (7100)
  --join LIST          instead of --peers: HOST:PORT,... of running members; this member
                       (added first with `harness member add`) learns the universe and the
                       state from them; needs --listen, and --id unless its address names it;
                       with --data-dir (and --durability) and neither --peers nor --join, it
                       restarts from its files, whose universe says whom to contact
  --self-add           with --join or --slurm and --key-file: a member not in the universe
                       adds itself (as --id, or the next free id, which it logs) instead of
                       being refused; the cluster's key is what entitles it
  --config FILE        read flags from FILE, one `flag = value` a line (flag without the
                       dashes; switches take true or false; '#' starts a comment); flags on
                       the command line win, and an error names the file and line
  --listen HOST:PORT   address to listen on (default: this id's entry in the peer list)
  --ring bi|uni        messages travel both ways round the ring (bi, default) or one way
  --token-timeout MS   silence after which a neighbour counts as gone (default 1000)
  --idle park|SPIN,YIELD  how the node's two threads wait for work: park at once (default), or
                       spin SPIN then yield YIELD microseconds first (each at most 10000);
                       spinning saves wake-ups and costs CPU (docs/PERFORMANCE.md)
  --protocol-version N speak protocol versions up to N only (default the newest, 2): run
                       the members of a cluster still on version 1 with 1 until all of them
                       are upgraded (README, Versions and upgrading)
  --cluster-name NAME  nodes of different clusters refuse each other (default harness); the
                       old spelling `--cluster NAME` is refused with a hint, since --cluster
                       is the client commands' member list
  --delivery-log FILE  write one line per agreed delivery, replacing FILE at start:
                       view seq origin incarnation counter payload_fnv64hex
  --listen-metrics IP:PORT  also serve `harness metrics`' text for this member over HTTP
                       (GET /metrics only, read-only, bounded) for a Prometheus scrape
  --key-file FILE      the cluster key (32 bytes, mode 600, from harness keygen): peers and
                       clients must prove it, every frame carries a MAC. Without it the node
                       runs open and says so
  --encrypt            with --key-file: also encrypt every frame (ChaCha20-Poly1305); every
                       member and client must agree
  --hot H              members of a view that apply every command at once: the H lowest ids
                       (default 2); the others are warm standbys, promoted when a hot one fails
  --checkpoint-every N[,Ss]  checkpoint after N commits (default 4096) or S seconds (default 10)
  --durability MODE    what a crash of every member may lose: memory (everything, default),
                       checkpoint (the commands after the last checkpoint), fsync (nothing
                       acknowledged: each command is synced to disk before it is acknowledged)
  --data-dir DIR       where checkpoints and the command log are kept (needed unless memory)
  --plugins LIST       plug-ins this member can load (comma separated); it votes yes on
                       `plugin load NAME` exactly for these and for the files in --plugin-dir
  --plugin-dir DIR     every file name in DIR (read at start) is a plug-in it can load
  --min-replicas W     the write quorum: a write is acknowledged only once W members hold it
                       (default a majority of the members less the witnesses; lower is logged
                       as a warning). A view of fewer than W members orders nothing
  --quorum MODE        who chooses a new primary view: configuration (a majority of all the
                       configured members, default) or dynamic (a majority of the last view,
                       never fewer than W members); docs/PROTOCOL.md 5.4 says what each survives
  --witness LIST       ids of the peer list that are witnesses: they vote on views and hold no
                       state (give every member the same list; a witness runs with its own id)

Client commands (put, get, del, range, txn, watch, status, members, leave, plugin,
force-primary) talk to any member and fail over to another:
  --cluster LIST       the members, HOST:PORT,... or as --peers (default: $HARNESS_CLUSTER)
  --json               print JSON (one object; one per line for watch)
  --stale              get/range: read the answering member's state instead of ordering the
                       read through the ring (linearizable, the default)
  --timeout MS         bound on the whole operation, failovers included (default 10000)
  --session ID:N       put/del/txn: client id and request number, to retry a write exactly once
  --key-file FILE      the cluster key of a keyed cluster (as the members' --key-file)
  --encrypt            the cluster runs with --encrypt
  --cluster-name NAME  the members' --cluster-name, which the key is bound to (default harness)
  --protocol-version N speak protocol versions up to N only, as a client of version N did
  txn clauses: --if 'KEY = VALUE' | 'KEY version|mod =|<|> N' | 'KEY exists|missing',
               --then/--else 'put KEY VALUE' | 'del KEY' | 'get KEY' | 'range PREFIX [LIMIT]'
  status and members print a table of every member (id, address, role, view, received, lag)
               from one member's report; --each asks every member (revision, commits, checkpoint);
  metrics prints the Prometheus text exposition format (for node_exporter's textfile
               collector) of the member that answers, or with --each of every member; --json
               prints one object per member; status --json carries the same counters.
  leave asks the one member in --cluster to leave the group and stop.
  force-primary asks the one member in --cluster to form a primary from the newest history it
  can reach when the others are known lost: without --yes it only says what it would do and
  what may be lost; it refuses while a member with a newer history is reachable.
  Exit codes: 0 ok, 1 failed (or refused), 2 bad usage, 3 not found, 4 guard failed,
  5 no quorum, 6 unreachable, 7 not enough replicas (fewer than W members connected).

harness keygen: write a new random cluster key to --key-file FILE (mode 600, never
overwriting); copy it to every member and client host.

harness demo: start --nodes local node processes on free loopback ports, submit --messages
from each node concurrently, check every node delivered all of them in the same order, stop
the processes. --kill N kills N random members with kill -9 during the run and restarts each
about a second later; their clients resubmit elsewhere, and the nodes' delivery logs are
audited. --hot H is passed to every node. Exits 0 only if verified; --json prints one JSON
summary last.

Logging: RUST_LOG=error|warn|info|debug|trace (default info).
Errors: one line on stderr naming the flag, exit code 2.
";

/// `NAME VERSION`: what every binary of the crate prints for `--version`.
pub fn version_line(program: &str) -> String {
    format!("{program} {}", env!("CARGO_PKG_VERSION"))
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Print `USAGE`.
    Help,
    /// Print `harness VERSION`.
    Version,
    /// Print the man page (roff).
    Man,
    /// Print the bash completion script.
    Completions,
    /// Run one member.
    Node(Box<NodeArgs>),
    /// Run the local demo.
    Demo(DemoArgs),
    /// Write a new cluster key to this file.
    Keygen(std::path::PathBuf),
    /// A client command against a running cluster.
    Client(ClientArgs),
}

/// Parses the arguments after the program name; `read_file` reads a hostfile and `env` the
/// environment (Slurm variables, `HARNESS_CLUSTER`).
pub fn parse_command(
    args: &[String],
    read_file: impl Fn(&Path) -> std::io::Result<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, CliError> {
    let Some((command, rest)) = args.split_first() else {
        return Err(CliError::MissingCommand);
    };
    // `--help` anywhere wins, so `harness node --id 1 --help` shows usage instead of an error.
    if args.iter().any(|a| a == "--help" || a == "-h") || command == "help" {
        return Ok(Command::Help);
    }
    if ["--version", "-V", "version"].contains(&command.as_str()) {
        return Ok(Command::Version);
    }
    match command.as_str() {
        "man" if rest.is_empty() => Ok(Command::Man),
        "completions" if rest.len() == 1 && rest[0] == "bash" => Ok(Command::Completions),
        "man" | "completions" => Err(CliError::bad(
            "arguments",
            &rest.join(" "),
            "`harness man` takes no arguments; `harness completions` takes `bash`",
        )),
        "node" => Ok(Command::Node(Box::new(parse_node_args_with_env(rest, read_file, env)?))),
        "demo" => Ok(Command::Demo(parse_demo_args(rest)?)),
        "keygen" => Ok(Command::Keygen(parse_keygen_args(rest)?)),
        "put" => Ok(Command::Client(parse_client_args("put", rest, env)?)),
        "get" => Ok(Command::Client(parse_client_args("get", rest, env)?)),
        "del" => Ok(Command::Client(parse_client_args("del", rest, env)?)),
        "range" => Ok(Command::Client(parse_client_args("range", rest, env)?)),
        "txn" => Ok(Command::Client(parse_client_args("txn", rest, env)?)),
        "watch" => Ok(Command::Client(parse_client_args("watch", rest, env)?)),
        "status" => Ok(Command::Client(parse_client_args("status", rest, env)?)),
        "members" => Ok(Command::Client(parse_client_args("members", rest, env)?)),
        "member" => Ok(Command::Client(parse_client_args("member", rest, env)?)),
        "metrics" => Ok(Command::Client(parse_client_args("metrics", rest, env)?)),
        "leave" => Ok(Command::Client(parse_client_args("leave", rest, env)?)),
        "plugin" => Ok(Command::Client(parse_client_args("plugin", rest, env)?)),
        "force-primary" => Ok(Command::Client(parse_client_args("force-primary", rest, env)?)),
        other => Err(CliError::UnknownCommand { command: other.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Command, CliError> {
        let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
        parse_command(&args, |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)), &|_| None)
    }

    #[test]
    fn commands_dispatch_and_help_wins() {
        assert_eq!(parse("--help").unwrap(), Command::Help);
        assert_eq!(parse("node --id 1 --help").unwrap(), Command::Help);
        assert!(matches!(parse("demo --nodes 2").unwrap(), Command::Demo(DemoArgs { nodes: 2, .. })));
        assert!(matches!(parse("node --id 1 --peers 1=127.0.0.1:7101").unwrap(), Command::Node(_)));
        assert_eq!(parse("").unwrap_err().to_string(), "no command given (try --help)");
        assert_eq!(parse("serve").unwrap_err().to_string(), "unknown command \"serve\" (try --help)");
        for version in ["--version", "-V", "version"] {
            assert_eq!(parse(version).unwrap(), Command::Version, "{version}");
        }
        assert!(USAGE.contains("harness --version"));
        assert_eq!(version_line("harness"), format!("harness {}", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn node_help_is_one_paragraph_with_every_node_flag() {
        let start = USAGE.find("harness node: run one member").unwrap();
        let paragraph = &USAGE[start..start + USAGE[start..].find("\n\n").unwrap()];
        for flag in args::NODE_VALUED.iter().chain(&args::NODE_SWITCHES) {
            assert!(paragraph.contains(&format!("--{flag} ")), "--{flag} is not in:\n{paragraph}");
        }
        let keygen = USAGE.find("harness keygen: write").unwrap();
        let client = USAGE.find("Client commands (").unwrap();
        assert!(keygen > client && client > start, "sections in the order of the usage lines");
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
            "--cluster-name",
            "--delivery-log",
            "--key-file",
            "--encrypt",
            "keygen",
        ] {
            assert!(USAGE.contains(flag), "{flag}");
        }
        for flag in ["--nodes", "--messages", "--kill", "--json", "--slurm", "--port", "--stale", "--session"]
        {
            assert!(USAGE.contains(flag), "{flag}");
        }
    }
}
