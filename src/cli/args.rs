//! The arguments of `harness node` and `harness demo`, parsed by pure functions.
//!
//! The peer list comes from `--peers ID=HOST:PORT,...` or from a hostfile (one `HOST[:PORT]` a
//! line, the first host line being id 1). Every problem is a `CliError` naming the flag, found
//! before anything binds a socket, so a mistyped ring fails at once on every host.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config_file::{flag_of, merge, parse_config};
use super::error::CliError;
use super::flags::{parse_number, walk, Given};
use super::slurm::slurm_membership;
pub use crate::auth::cluster_hash;
use crate::auth::{Auth, ClusterKey};
use crate::client::address::{parse_address, parse_cluster, DEFAULT_CLUSTER, DEFAULT_PORT};
use crate::config::{CoreConfig, Durability, QuorumMode};
use crate::ids::{Member, NodeId, RingMode};
use crate::node::NodeConfig;

/// Most nodes `harness demo` starts on one machine.
pub const DEMO_NODES_MAX: u64 = 64;
/// Most messages each demo node submits.
pub const DEMO_MESSAGES_MAX: u64 = 1_000_000;

/// What `harness node` was asked to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeArgs {
    /// This member's id.
    pub id: NodeId,
    /// Where to listen for peers and clients.
    pub listen: SocketAddr,
    /// Every member's address, this one's included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// How batches travel.
    pub ring: RingMode,
    /// `--token-timeout`, when given.
    pub token_timeout: Option<Duration>,
    /// `--idle`: how the node's threads wait for work (`park`, or spin and yield first).
    pub idle: crate::idle::IdleStrategy,
    /// `--protocol-version N`: the protocol versions spoken, up to N (docs/PROTOCOL.md §2.3).
    pub versions: crate::wire::Versions,
    /// `--cluster-name`: nodes of different clusters refuse each other's links.
    pub cluster_name: String,
    /// `--delivery-log`: where to write one line per agreed delivery.
    pub delivery_log: Option<PathBuf>,
    /// `--listen-metrics`: where to serve the metrics over HTTP.
    pub listen_metrics: Option<SocketAddr>,
    /// `--key-file`, loaded and checked: the cluster key, or `None` to run open.
    pub key: Option<ClusterKey>,
    /// `--encrypt`: seal records with an AEAD, not only a MAC.
    pub encrypt: bool,
    /// Roles, checkpoints and durability.
    pub state: StateArgs,
    /// The write quorum, the quorum mode and the witnesses.
    pub quorum: QuorumArgs,
    /// `--join HOST:PORT,...`: members of a running cluster to learn the universe from
    /// (docs/PROTOCOL.md §5.9); `peers` then holds only this member until they answer, and
    /// `id` is 0 when it is to be found by `listen` in the universe.
    pub join: Vec<SocketAddr>,
    /// Started with neither a peer list nor `--join`, only `--data-dir`: a member added at run
    /// time restarting from its own files, whose durable universe says whom to contact
    /// (docs/PROTOCOL.md §5.9); `peers` then holds only this member until the files are read.
    pub from_data_dir: bool,
    /// `--slurm`: the allocation's other hosts, asked at start whether a cluster already runs
    /// there (a grown allocation, or a restart after changes), in which case this member joins
    /// it through them instead of seeding a new one (docs/PROTOCOL.md §5.9).
    pub slurm_contacts: Vec<SocketAddr>,
    /// `--self-add`: a joiner (`--join` or `--slurm`) that is not in the universe adds itself,
    /// as `harness member add` would; only with the cluster's key (docs/PROTOCOL.md §5.9).
    pub self_add: bool,
}

/// The flags of the quorum rules (docs/PROTOCOL.md §5.2, §5.7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumArgs {
    /// `--min-replicas W`: the write quorum (default a majority less the witnesses).
    pub min_replicas: Option<usize>,
    /// `--quorum configuration|dynamic`.
    pub mode: QuorumMode,
    /// `--witness ID[,ID...]`: members that vote and hold no state.
    pub witnesses: Vec<NodeId>,
}

/// Parses the quorum flags; the ids must be in `peers`.
fn parse_quorum_args(
    value: &dyn Fn(&str) -> Option<String>,
    peers: &BTreeMap<NodeId, SocketAddr>,
) -> Result<QuorumArgs, CliError> {
    let mut quorum = QuorumArgs::default();
    if let Some(list) = value("witness") {
        for part in list.split(',') {
            let id = NodeId(parse_number("witness", part.trim(), 1, u64::from(u16::MAX))? as u16);
            if !peers.contains_key(&id) {
                return Err(CliError::bad("witness", &list, format!("id {} is not in the peer list", id.0)));
            }
            if quorum.witnesses.contains(&id) {
                return Err(CliError::bad("witness", &list, format!("lists id {} twice", id.0)));
            }
            quorum.witnesses.push(id);
        }
        if quorum.witnesses.len() >= peers.len() {
            return Err(CliError::bad("witness", &list, "leaves no member that holds state"));
        }
    }
    if let Some(text) = value("min-replicas") {
        let data = (peers.len() - quorum.witnesses.len()) as u64;
        quorum.min_replicas = Some(parse_number("min-replicas", &text, 1, data.max(1))? as usize);
    }
    if let Some(text) = value("quorum") {
        quorum.mode =
            text.parse().map_err(|_| CliError::bad("quorum", &text, "must be configuration or dynamic"))?;
    }
    Ok(quorum)
}

/// The flags of the replicated state (docs/PROTOCOL.md §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateArgs {
    /// `--hot H`: hot members per view.
    pub hot: usize,
    /// `--checkpoint-every N[,Ss]`: commits, and seconds, between checkpoints.
    pub checkpoint_every: u64,
    /// The seconds part of `--checkpoint-every`.
    pub checkpoint_interval: Duration,
    /// `--durability memory|checkpoint|fsync`.
    pub durability: Durability,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--plugins LIST`: plug-ins this member can load.
    pub plugins: Vec<String>,
    /// `--plugin-dir DIR`: a directory whose file names are plug-ins it can load.
    pub plugin_dir: Option<PathBuf>,
}

impl Default for StateArgs {
    fn default() -> StateArgs {
        let core = CoreConfig::new(Member { id: NodeId(1), incarnation: 0 }, vec![NodeId(1)]);
        StateArgs {
            hot: core.hot,
            checkpoint_every: core.checkpoint_every,
            checkpoint_interval: core.checkpoint_interval,
            durability: core.durability,
            data_dir: None,
            plugins: Vec::new(),
            plugin_dir: None,
        }
    }
}

/// Parses the state flags out of `value`.
fn parse_state_args(value: &dyn Fn(&str) -> Option<String>) -> Result<StateArgs, CliError> {
    let mut state = StateArgs::default();
    if let Some(text) = value("hot") {
        state.hot = parse_number("hot", &text, 1, u64::from(u16::MAX))? as usize;
    }
    if let Some(text) = value("checkpoint-every") {
        // `N` commits, `Ss` seconds, or both as `N,Ss`.
        for part in text.split(',') {
            match part.strip_suffix('s') {
                Some(seconds) => {
                    state.checkpoint_interval =
                        Duration::from_secs(parse_number("checkpoint-every", seconds, 1, 86_400)?)
                }
                None => state.checkpoint_every = parse_number("checkpoint-every", part, 1, 1 << 40)?,
            }
        }
    }
    if let Some(text) = value("durability") {
        state.durability = text
            .parse()
            .map_err(|_| CliError::bad("durability", &text, "must be memory, checkpoint or fsync"))?;
    }
    state.data_dir = match value("data-dir").as_deref() {
        Some("") => return Err(CliError::bad("data-dir", "", "must not be empty")),
        Some(path) => Some(PathBuf::from(path)),
        None => None,
    };
    if let Some(list) = value("plugins") {
        for name in list.split(',').map(str::trim) {
            if name.is_empty() || name.len() > crate::replication::command::TEXT_BYTES_MAX {
                return Err(CliError::bad("plugins", &list, "names must be 1..=1024 bytes"));
            }
            state.plugins.push(name.to_owned());
        }
    }
    state.plugin_dir = match value("plugin-dir").as_deref() {
        Some("") => return Err(CliError::bad("plugin-dir", "", "must not be empty")),
        Some(path) => Some(PathBuf::from(path)),
        None => None,
    };
    if state.durability != Durability::Memory && state.data_dir.is_none() {
        return Err(CliError::bad("durability", state.durability.as_str(), "needs --data-dir"));
    }
    Ok(state)
}

impl NodeArgs {
    /// The credentials of this node: the key bound to the cluster name.
    pub fn auth(&self) -> Option<Auth> {
        self.key.as_ref().map(|key| Auth::new(key, &self.cluster_name, self.encrypt))
    }

    /// The node's configuration; `incarnation` must be new for every process start.
    pub fn node_config(&self, incarnation: u64) -> Result<NodeConfig, CliError> {
        let me = Member { id: self.id, incarnation };
        let mut core = CoreConfig::new(me, self.peers.keys().copied().collect());
        core.ring_mode = self.ring;
        core.cluster = cluster_hash(&self.cluster_name);
        if let Some(token_timeout) = self.token_timeout {
            core.token_timeout = token_timeout;
            // The idle hold is not a flag; keep it valid for a short token timeout rather than
            // blaming a setting the operator never saw.
            core.idle_hold = core.idle_hold.min(token_timeout / 4);
        }
        core.hot = self.state.hot;
        core.checkpoint_every = self.state.checkpoint_every;
        core.checkpoint_interval = self.state.checkpoint_interval;
        core.durability = self.state.durability;
        core.plugins = self.state.plugins.clone();
        core.min_replicas = self.quorum.min_replicas;
        core.quorum_mode = self.quorum.mode;
        core.witnesses = self.quorum.witnesses.clone();
        core.validate()?;
        Ok(NodeConfig { core, listen: self.listen, peers: self.peers.clone(), auth: self.auth() })
    }
}

/// What `harness demo` was asked to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoArgs {
    /// How many node processes.
    pub nodes: usize,
    /// Messages each node submits.
    pub messages: u64,
    /// How batches travel.
    pub ring: RingMode,
    /// Print one JSON object last.
    pub json: bool,
    /// How many members to kill -9 (and restart) during the run.
    pub kill: usize,
    /// `--hot`: hot members per view, passed to every node.
    pub hot: usize,
}

/// The flags of `harness node` that take a value.
pub const NODE_VALUED: [&str; 24] = [
    "config",
    "protocol-version",
    "listen-metrics",
    "id",
    "idle",
    "listen",
    "peers",
    "hostfile",
    "ring",
    "token-timeout",
    "cluster-name",
    "delivery-log",
    "port",
    "hot",
    "checkpoint-every",
    "durability",
    "data-dir",
    "key-file",
    "plugins",
    "plugin-dir",
    "min-replicas",
    "quorum",
    "witness",
    "join",
];
/// The switches of `harness node`.
pub const NODE_SWITCHES: [&str; 3] = ["slurm", "encrypt", "self-add"];

/// Parses `harness node`'s flags; `read_file` reads the hostfile.
pub fn parse_node_args(
    args: &[String],
    read_file: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<NodeArgs, CliError> {
    parse_node_args_with_env(args, read_file, &|_| None)
}

/// Like `parse_node_args`; `env` reads the Slurm variables for `--slurm`.
pub fn parse_node_args_with_env(
    args: &[String],
    read_file: impl Fn(&Path) -> std::io::Result<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NodeArgs, CliError> {
    // `--cluster` is the client commands' member list; as the name it would be read two ways.
    if args.iter().any(|a| a == "--cluster" || a.starts_with("--cluster=")) {
        return Err(CliError::Renamed { old: "cluster", new: "cluster-name NAME" });
    }
    let given = walk("node", args, &NODE_VALUED, &NODE_SWITCHES)?;
    let Some(path) = given.iter().find(|g| g.flag == "config").and_then(|g| g.value.clone()) else {
        return parse_node_flags(&given, read_file, env);
    };
    // The file's settings under the command line's (README "Config file"); an error caused by a
    // line of the file names the file and the line.
    let text = read_file(Path::new(&path)).map_err(|e| CliError::bad("config", &path, e.to_string()))?;
    let settings = parse_config(&text, &NODE_VALUED, &NODE_SWITCHES)
        .map_err(|(line, problem)| CliError::InConfig { file: path.clone(), line, problem })?;
    let (merged, lines) = merge(given, settings);
    parse_node_flags(&merged, read_file, env).map_err(|error| {
        let line = flag_of(&error)
            .and_then(|flag| merged.iter().position(|g| g.flag == flag))
            .and_then(|at| lines[at]);
        match line {
            Some(line) => CliError::InConfig { file: path.clone(), line, problem: error.to_string() },
            None => error,
        }
    })
}

/// Parses the node's flags, from the command line and a config file.
fn parse_node_flags(
    given: &[Given],
    read_file: impl Fn(&Path) -> std::io::Result<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NodeArgs, CliError> {
    let value = |flag: &str| given.iter().find(|g| g.flag == flag).and_then(|g| g.value.as_deref());
    let slurm = given.iter().any(|g| g.flag == "slurm");
    let self_add = given.iter().any(|g| g.flag == "self-add");

    let (id_text, id, peers) = if slurm {
        for other in ["id", "peers", "hostfile"] {
            if value(other).is_some() {
                return Err(CliError::Conflict { first: "slurm", second: other_flag(other) });
            }
        }
        let port = match value("port") {
            Some(text) => parse_number("port", text, 1, u64::from(u16::MAX))? as u16,
            None => DEFAULT_PORT,
        };
        let (id, peers) = slurm_membership(env, port).map_err(CliError::Slurm)?;
        (id.0.to_string(), id, peers)
    } else {
        if value("port").is_some() {
            return Err(CliError::bad("port", value("port").unwrap_or(""), "is only used with --slurm"));
        }
        if let Some(list) = value("join") {
            return parse_joiner(Some(list), given, read_file, env);
        }
        if value("peers").is_none() && value("hostfile").is_none() && value("data-dir").is_some() {
            return parse_joiner(None, given, read_file, env);
        }
        // Said before "--id is required", which would send a self-adding member the wrong way.
        check_self_add(self_add, false, true)?;
        let id_text = value("id").ok_or(CliError::Required { flags: "--id" })?;
        let id = NodeId(parse_number("id", id_text, 1, u64::from(u16::MAX))? as u16);
        let peers = match (value("peers"), value("hostfile")) {
            (Some(_), Some(_)) => return Err(CliError::Conflict { first: "peers", second: "hostfile" }),
            (None, None) => return Err(CliError::Required { flags: "--peers or --hostfile (or --slurm)" }),
            (Some(list), None) => parse_peers(list)?,
            (None, Some(path)) => {
                let text =
                    read_file(Path::new(path)).map_err(|e| CliError::bad("hostfile", path, e.to_string()))?;
                parse_hostfile(&text).map_err(|problem| CliError::bad("hostfile", path, problem))?
            }
        };
        (id_text.to_string(), id, peers)
    };
    let id_text = id_text.as_str();
    let Some(&own) = peers.get(&id) else {
        let ids: Vec<String> = peers.keys().map(|id| id.0.to_string()).collect();
        return Err(CliError::bad("id", id_text, format!("is not in the peer list (ids {})", ids.join(","))));
    };
    // Without --listen a node listens on its own entry of the peer list.
    let listen = match value("listen") {
        Some(text) => {
            parse_address(text, DEFAULT_PORT).map_err(|problem| CliError::bad("listen", text, problem))?
        }
        None => own,
    };
    let ring = match value("ring") {
        Some(text) => text.parse().map_err(|_| CliError::bad("ring", text, "must be bi or uni"))?,
        None => RingMode::Bidirectional,
    };
    let token_timeout = match value("token-timeout") {
        Some(text) => Some(Duration::from_millis(parse_number("token-timeout", text, 10, 3_600_000)?)),
        None => None,
    };
    let idle = match value("idle") {
        Some(text) => text.parse().map_err(|problem: String| CliError::bad("idle", text, problem))?,
        None => crate::idle::IdleStrategy::DEFAULT,
    };
    let versions = parse_protocol_version(value("protocol-version"))?;
    let cluster_name = match value("cluster-name") {
        Some("") => return Err(CliError::bad("cluster-name", "", "must not be empty")),
        Some(name) => name.to_string(),
        None => DEFAULT_CLUSTER.to_string(),
    };
    let delivery_log = match value("delivery-log") {
        Some("") => return Err(CliError::bad("delivery-log", "", "must not be empty")),
        Some(path) => Some(PathBuf::from(path)),
        None => None,
    };
    let listen_metrics = match value("listen-metrics") {
        Some(text) => {
            Some(text.parse().map_err(|_| CliError::bad("listen-metrics", text, "must be IP:PORT"))?)
        }
        None => None,
    };
    let key = match value("key-file") {
        Some(path) => Some(load_key(path)?),
        None => None,
    };
    let encrypt = given.iter().any(|g| g.flag == "encrypt");
    if encrypt && key.is_none() {
        return Err(CliError::Needs { flag: "encrypt", needs: "--key-file" });
    }
    check_self_add(self_add, slurm, key.is_some())?;
    let state = parse_state_args(&|flag| value(flag).map(str::to_string))?;
    let quorum = parse_quorum_args(&|flag| value(flag).map(str::to_string), &peers)?;
    let slurm_contacts = match slurm {
        true => peers.iter().filter(|(p, _)| **p != id).map(|(_, a)| *a).collect(),
        false => Vec::new(),
    };
    Ok(NodeArgs {
        id,
        listen,
        peers,
        ring,
        token_timeout,
        idle,
        versions,
        cluster_name,
        delivery_log,
        listen_metrics,
        key,
        encrypt,
        state,
        quorum,
        join: Vec::new(),
        from_data_dir: false,
        slurm_contacts,
        self_add,
    })
}

/// `harness node --join LIST --listen HOST:PORT [--id N]`: a member added at run time, which
/// learns the universe from the running cluster when it starts; with `list` `None`,
/// `harness node --id N --listen HOST:PORT --data-dir DIR`: such a member restarting from its
/// own files, whose durable universe says whom to contact (docs/PROTOCOL.md §5.9).
fn parse_joiner(
    list: Option<&str>,
    given: &[super::flags::Given],
    read_file: impl Fn(&Path) -> std::io::Result<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NodeArgs, CliError> {
    let value = |flag: &str| given.iter().find(|g| g.flag == flag).and_then(|g| g.value.as_deref());
    for other in ["peers", "hostfile"] {
        if value(other).is_some() {
            return Err(CliError::Conflict { first: "join", second: other_flag(other) });
        }
    }
    let join = match list {
        Some(list) => parse_cluster(list).map_err(|problem| CliError::bad("join", list, problem))?,
        None => Vec::new(),
    };
    let needed = if list.is_some() {
        "--listen (with --join)"
    } else {
        "--listen (with --data-dir and no --peers, --hostfile or --join)"
    };
    let listen_text = value("listen").ok_or(CliError::Required { flags: needed })?;
    let listen = parse_address(listen_text, DEFAULT_PORT)
        .map_err(|problem| CliError::bad("listen", listen_text, problem))?;
    let id = match value("id") {
        Some(text) => NodeId(parse_number("id", text, 1, u64::from(u16::MAX))? as u16),
        None if list.is_some() => NodeId(0),
        None => {
            return Err(CliError::Required {
                flags: "--id (with --data-dir and no --peers, --hostfile or --join)",
            })
        }
    };
    // The rest as for a listed member, over a peer list of this member alone (replaced by the
    // universe at start).
    let mut args: Vec<String> = Vec::new();
    let self_add = given.iter().any(|g| g.flag == "self-add");
    check_self_add(self_add, list.is_some(), true)?;
    for g in given.iter().filter(|g| !["join", "listen", "id", "self-add"].contains(&g.flag)) {
        args.push(format!("--{}", g.flag));
        if let Some(v) = &g.value {
            args.push(v.clone());
        }
    }
    let own = if id.0 == 0 { 1 } else { id.0 };
    args.extend(["--id".into(), own.to_string(), "--peers".into(), format!("{own}={listen}")]);
    let mut parsed = parse_node_args_with_env(&args, read_file, env)?;
    parsed.id = id;
    parsed.peers = BTreeMap::from([(id, listen)]);
    parsed.listen = listen;
    parsed.join = join;
    parsed.from_data_dir = list.is_none();
    check_self_add(self_add, true, parsed.key.is_some())?;
    parsed.self_add = self_add;
    if parsed.from_data_dir && parsed.state.durability == Durability::Memory {
        let problem = "keeps nothing to restart from; with --data-dir and no --peers, --hostfile or --join \
                       the member restarts from its files (--durability checkpoint or fsync)";
        return Err(CliError::bad("durability", "memory", problem));
    }
    Ok(parsed)
}

/// `--self-add` adds a joiner, and only the cluster's key entitles it: in an open cluster
/// anyone who reaches a member could make itself one (docs/PROTOCOL.md §5.9).
fn check_self_add(self_add: bool, joiner: bool, keyed: bool) -> Result<(), CliError> {
    if self_add && !joiner {
        return Err(CliError::Needs { flag: "self-add", needs: "--join or --slurm (it adds a joiner)" });
    }
    if self_add && !keyed {
        return Err(CliError::Needs {
            flag: "self-add",
            needs: "--key-file: only the cluster's key entitles a member to add itself; an open \
                    cluster admits members added with `harness member add`",
        });
    }
    Ok(())
}

/// Loads `--key-file`; every problem names the flag and the file.
pub fn load_key(path: &str) -> Result<ClusterKey, CliError> {
    if path.is_empty() {
        return Err(CliError::bad("key-file", path, "must not be empty"));
    }
    ClusterKey::load(Path::new(path)).map_err(|problem| CliError::bad("key-file", path, problem))
}

/// Parses `harness keygen --key-file FILE`: where to write a new key.
pub fn parse_keygen_args(args: &[String]) -> Result<PathBuf, CliError> {
    let given = walk("keygen", args, &["key-file"], &[])?;
    match given.first().and_then(|g| g.value.as_deref()) {
        Some("") => Err(CliError::bad("key-file", "", "must not be empty")),
        Some(path) => Ok(PathBuf::from(path)),
        None => Err(CliError::Required { flags: "--key-file" }),
    }
}

/// The static name of a flag that conflicts with `--slurm`.
fn other_flag(flag: &str) -> &'static str {
    match flag {
        "id" => "id",
        "peers" => "peers",
        _ => "hostfile",
    }
}

/// Parses `--peers 1=HOST:PORT,2=HOST:PORT,...`.
pub fn parse_peers(list: &str) -> Result<BTreeMap<NodeId, SocketAddr>, CliError> {
    let mut peers = BTreeMap::new();
    for entry in list.split(',').map(str::trim) {
        let Some((id_text, addr_text)) = entry.split_once('=') else {
            return Err(CliError::bad("peers", list, format!("entry {entry:?} is not ID=HOST:PORT")));
        };
        let id = match id_text.trim().parse::<u16>() {
            Ok(id) if id >= 1 => NodeId(id),
            _ => {
                return Err(CliError::bad(
                    "peers",
                    list,
                    format!("id {id_text:?} is not a number in 1..=65535"),
                ))
            }
        };
        let addr = parse_address(addr_text, DEFAULT_PORT)
            .map_err(|problem| CliError::bad("peers", list, format!("id {}: {problem}", id.0)))?;
        insert_peer(&mut peers, id, addr).map_err(|problem| CliError::bad("peers", list, problem))?;
    }
    Ok(peers)
}

/// Parses a hostfile: one `HOST[:PORT]` a line (port 7100 when omitted), `#` starts a comment,
/// blank lines are skipped, and the n-th host line is id n.
pub fn parse_hostfile(text: &str) -> Result<BTreeMap<NodeId, SocketAddr>, String> {
    let mut peers = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let host = line.split('#').next().unwrap_or("").trim();
        if host.is_empty() {
            continue;
        }
        let line_number = index + 1;
        let id = u16::try_from(peers.len() + 1).map_err(|_| "lists more than 65535 hosts".to_string())?;
        let addr =
            parse_address(host, DEFAULT_PORT).map_err(|problem| format!("line {line_number}: {problem}"))?;
        insert_peer(&mut peers, NodeId(id), addr)
            .map_err(|problem| format!("line {line_number}: {problem}"))?;
    }
    if peers.is_empty() {
        return Err("lists no hosts".to_string());
    }
    Ok(peers)
}

/// Adds a peer, refusing a repeated id or two ids at one address (they could never both bind).
fn insert_peer(peers: &mut BTreeMap<NodeId, SocketAddr>, id: NodeId, addr: SocketAddr) -> Result<(), String> {
    if peers.contains_key(&id) {
        return Err(format!("lists id {} twice", id.0));
    }
    if let Some((other, _)) = peers.iter().find(|(_, a)| **a == addr) {
        return Err(format!("ids {} and {} both have {addr}", other.0, id.0));
    }
    peers.insert(id, addr);
    Ok(())
}

/// Parses `harness demo`'s flags.
pub fn parse_demo_args(args: &[String]) -> Result<DemoArgs, CliError> {
    let given = walk("demo", args, &["nodes", "messages", "ring", "kill", "hot"], &["json"])?;
    let mut demo = DemoArgs {
        nodes: 5,
        messages: 2000,
        ring: RingMode::Bidirectional,
        json: false,
        kill: 0,
        hot: crate::config::HOT_DEFAULT,
    };
    let mut kill_text = None;
    for g in given {
        let text = g.value.as_deref().unwrap_or("");
        match g.flag {
            "nodes" => demo.nodes = parse_number("nodes", text, 1, DEMO_NODES_MAX)? as usize,
            "messages" => demo.messages = parse_number("messages", text, 1, DEMO_MESSAGES_MAX)?,
            "ring" => {
                demo.ring = text.parse().map_err(|_| CliError::bad("ring", text, "must be bi or uni"))?
            }
            "kill" => kill_text = Some(text.to_string()),
            "hot" => demo.hot = parse_number("hot", text, 1, DEMO_NODES_MAX)? as usize,
            _ => demo.json = true,
        }
    }
    // Checked once --nodes is known, whatever the flag order: at least one member must run
    // throughout, since only such members hold the whole history to compare.
    if let Some(text) = kill_text {
        demo.kill = parse_number("kill", &text, 0, demo.nodes as u64 - 1)? as usize;
    }
    Ok(demo)
}

#[cfg(test)]
mod tests;

/// `--protocol-version N` of a member or a client: the versions up to N (default every one this
/// build speaks), so a cluster of an older version can be upgraded (docs/PROTOCOL.md §2.3).
pub fn parse_protocol_version(text: Option<&str>) -> Result<crate::wire::Versions, CliError> {
    let Some(text) = text else { return Ok(crate::wire::Versions::ALL) };
    let max = text.parse::<u8>().map_err(|_| CliError::bad("protocol-version", text, "must be a number"))?;
    crate::wire::Versions::up_to(max).map_err(|problem| CliError::bad("protocol-version", text, problem))
}
