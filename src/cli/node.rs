//! `harness node`: run one member until Ctrl-C or SIGTERM, then leave cleanly.
//!
//! The signal handler only sends on a channel (it runs on ctrlc's own thread and must not touch
//! the node); this thread waits on that channel and on the node's end. Deliveries are not handed
//! to this thread: nothing here uses them, and waking it for each one cost the ring a context
//! switch per message at every member (the count is read from the node's status at the end).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::select;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::args::NodeArgs;
use super::error::CliError;
use super::metrics_http::{MetricsServer, POLL_INTERVAL};
use crate::client::universe::id_at;
use crate::client::{ClusterClient, ClusterError, ClusterOptions};
use crate::error::Error;
use crate::ids::NodeId;
use crate::node::{Node, NodeOptions, NotifyConfig};
use crate::replication::{MemberChange, Universe};

/// The plug-ins in `dir`: the names of its files, read once at start (docs/PROTOCOL.md §7.1).
fn plugins_in(dir: &std::path::Path) -> Result<Vec<String>, CliError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| CliError::bad("plugin-dir", &shown, e.to_string()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CliError::bad("plugin-dir", &shown, e.to_string()))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file() || t.is_symlink());
        if let (true, Some(name)) = (is_file, entry.file_name().to_str()) {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Runs the member described by `args` until a termination signal arrives.
pub fn run_node(args: &NodeArgs) -> Result<(), CliError> {
    let slurm_joiner = slurm_running_cluster(args);
    let args = slurm_joiner.as_ref().unwrap_or(args);
    let joined = if args.join.is_empty() { None } else { Some(learn_universe(args)?) };
    let args = joined.as_ref().map_or(args, |(joined, _)| joined);
    let mut config = args.node_config(incarnation())?;
    if let Some((_, universe)) = &joined {
        config.core.universe_epoch = universe.epoch;
        config.core.addresses = universe.members.clone();
    }
    if let Some(dir) = &args.state.plugin_dir {
        config.core.plugins.extend(plugins_in(dir)?);
    }
    // Before any thread starts, so that every thread inherits SIGHUP blocked and only the
    // waiting thread below takes it (ctrlc's handler would read it as a stop).
    let hup_rx = wait_for_hangups()?;
    // Installed before the node starts, so an early SIGTERM still stops it cleanly.
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        // A second signal while stopping finds the channel full; one is enough.
        let _ = stop_tx.try_send(());
    })
    .map_err(|e| CliError::Start(Error::io("install the signal handler", std::io::Error::other(e))))?;

    // Bound before the node starts, so a taken port is refused before the member joins.
    let metrics =
        match args.listen_metrics {
            Some(addr) => Some(MetricsServer::bind(addr).map_err(|e| {
                CliError::Start(Error::io(format!("listen for metrics scrapes on {addr}"), e))
            })?),
            None => None,
        };
    let options = NodeOptions {
        deliveries: false,
        delivery_log: args.delivery_log.clone(),
        data_dir: args.state.data_dir.clone(),
        universe_from_data_dir: args.from_data_dir,
        idle: args.idle,
        versions: args.versions,
        notify: NotifyConfig::from_env(&|name| std::env::var(name).ok(), std::process::id()),
        ..NodeOptions::default()
    };
    let node = Node::start_with(config, options).map_err(|e| match e {
        // The runtime's own validation names a flag too; say so without "cannot start".
        Error::Config(e) => CliError::Config(e),
        other => CliError::Start(other),
    })?;
    log::info!(
        "{} listening on {}: {} members, ring {}, cluster {}",
        args.id,
        node.local_addr(),
        args.peers.len(),
        args.ring.as_str(),
        args.cluster_name
    );
    if let Some(server) = &metrics {
        log::info!(
            "{} serving metrics on http://{}/metrics",
            args.id,
            server.local_addr().map_err(|e| CliError::Start(Error::io("read the metrics address", e)))?
        );
    }
    let id = args.id.0;
    let render = || {
        let samples = node.metrics().map_err(|e| format!("no metrics: {e}"))?;
        Ok(crate::metrics::render_prometheus(&[(id, &samples)]))
    };
    // Without a metrics endpoint the wait needs no timeout; with one, it polls for scrapes.
    let poll = if metrics.is_some() { POLL_INTERVAL } else { Duration::from_secs(3600) };
    // Bounded by the signal or the node's end; the deliveries channel yields nothing else.
    let outcome = loop {
        if let Some(server) = &metrics {
            server.serve_pending(&render);
        }
        select! {
            recv(stop_rx) -> _ => break Ok(()),
            recv(hup_rx) -> _ => match node.reopen_delivery_log() {
                Ok(true) => {}
                Ok(false) => log::info!("{} SIGHUP: no --delivery-log to reopen; nothing else is reloaded", args.id),
                Err(e) => log::warn!("{} SIGHUP: cannot reopen the delivery log: {e}", args.id),
            },
            recv(node.deliveries()) -> delivery => match delivery {
                Ok(_) => {}
                // The runtime dropped its sender: a client asked it to leave, or it ended
                // without being asked to.
                Err(_) if node.left_by_request() => break Ok(()),
                Err(_) => break Err(CliError::Runtime(Error::Stopped)),
            },
            default(poll) => {}
        }
    };
    match node.status() {
        Ok(status) => log::info!("{} stopping after {} deliveries", args.id, status.delivered),
        Err(_) => log::info!("{} stopping", args.id),
    }
    node.stop().map_err(CliError::Runtime)?;
    outcome
}

/// Blocks SIGHUP in this thread (and so in every thread started after it) and starts one that
/// takes each SIGHUP with `sigwait` and passes it on: signals are never handled inside a
/// handler, so the node is touched only from the thread that owns it. Called before any other
/// thread exists. The thread waits for as long as the process lives.
fn wait_for_hangups() -> Result<crossbeam_channel::Receiver<()>, CliError> {
    use nix::sys::signal::{SigSet, Signal};
    let mut hangup = SigSet::empty();
    hangup.add(Signal::SIGHUP);
    let failed = |e: nix::Error| CliError::Start(Error::io("block SIGHUP", std::io::Error::from(e)));
    hangup.thread_block().map_err(failed)?;
    // One pending reopen is enough however many signals come.
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("harness-sighup".into())
        .spawn(move || {
            while hangup.wait().is_ok() {
                let _ = tx.try_send(());
            }
        })
        .map_err(|e| CliError::Start(Error::io("start the SIGHUP thread", e)))?;
    Ok(rx)
}

/// `--join`: asks the running cluster for its universe (a linearizable read through any of the
/// given members, with this member's key) and finds this member in it, by `--id` or by its
/// `--listen` address. A member not in the universe is refused here, saying how to add it, unless
/// it adds itself (`--self-add`, docs/PROTOCOL.md §5.9).
fn learn_universe(args: &NodeArgs) -> Result<(NodeArgs, Universe), CliError> {
    let options = ClusterOptions { auth: args.auth(), ..ClusterOptions::default() };
    let shown: Vec<String> = args.join.iter().map(|a| a.to_string()).collect();
    let shown = shown.join(",");
    let refused = |problem: String| CliError::bad("join", &shown, problem);
    let mut cluster = ClusterClient::new(&args.join, options).map_err(|e| refused(e.to_string()))?;
    let listen = args.listen.to_string();
    let (id, universe) = if args.self_add {
        add_self(&mut cluster, args).map_err(refused)?
    } else {
        let universe =
            cluster.universe().map_err(|e| refused(format!("cannot read the cluster's universe: {e}")))?;
        (args.id, universe)
    };
    // A keyed joiner can add itself in the same step.
    let or_self_add = if args.key.is_some() { " (or start this member with --self-add)" } else { "" };
    let id = match id {
        NodeId(0) => id_at(&universe, &listen).ok_or_else(|| {
            refused(format!(
                "no member of the universe (epoch {}) listens at {listen}: add it first with \
                 `harness member add {listen}`{or_self_add}, or give --id",
                universe.epoch
            ))
        })?,
        id => id,
    };
    if !universe.members.contains_key(&id) {
        let ids: Vec<String> = universe.members.keys().map(|id| id.0.to_string()).collect();
        return Err(refused(format!(
            "member {} is not in the cluster's universe (epoch {}: ids {}); add it first with \
             `harness member add {} {listen}`{or_self_add}",
            id.0,
            universe.epoch,
            ids.join(","),
            id.0
        )));
    }
    let mut peers = BTreeMap::new();
    for (&member, addr) in &universe.members {
        let addr = if member == id {
            args.listen
        } else {
            addr.parse::<SocketAddr>()
                .map_err(|_| refused(format!("the universe gives member {member} the address {addr:?}")))?
        };
        peers.insert(member, addr);
    }
    log::info!(
        "{id} joining: universe epoch {} of {} members, learnt from {shown}",
        universe.epoch,
        peers.len()
    );
    let mut joined = args.clone();
    joined.id = id;
    joined.peers = peers;
    Ok((joined, universe))
}

/// How many ids a `--self-add` joiner without `--id` tries: another joiner may take the one it
/// chose first.
const SELF_ADD_ATTEMPTS: usize = 8;

/// `--self-add`: makes sure the universe names this member, adding it as `harness member add`
/// would (as `--id`, or as the next free id when none is given); returns its id and a universe
/// that names it. The cluster's key, which the first read proves, is what entitles it.
fn add_self(cluster: &mut ClusterClient, args: &NodeArgs) -> Result<(NodeId, Universe), String> {
    let address = advertised(args)?.to_string();
    // A taken port found now, before the member is added, not after.
    std::net::TcpListener::bind(args.listen)
        .map_err(|e| format!("cannot listen at {}: {e}; nothing was added", args.listen))?;
    let slurm = !args.slurm_contacts.is_empty();
    for _ in 0..SELF_ADD_ATTEMPTS {
        let universe = cluster.universe().map_err(|e| format!("cannot read the cluster's universe: {e}"))?;
        if let Some(listed) = id_at(&universe, &address) {
            if args.id != NodeId(0) && args.id != listed {
                return Err(format!("{address} is member {} of the universe, not {}", listed.0, args.id.0));
            }
            return Ok((listed, universe));
        }
        let chosen = match universe.members.get(&args.id) {
            Some(elsewhere) if !slurm => {
                return Err(format!(
                    "member {} is already in the universe, at {elsewhere}; give another --id, or none",
                    args.id.0
                ))
            }
            // A Slurm id is the task's rank, which a grown allocation may give another host.
            Some(_) => NodeId(0),
            None => args.id,
        };
        let chosen = match chosen {
            NodeId(0) => universe.next_id().ok_or("no member id is left to add this member as")?,
            id => id,
        };
        match cluster.change_universe(MemberChange::Add(chosen), Some(&address)) {
            Ok(universe) => {
                log::info!("{chosen} added itself at {address} (universe epoch {})", universe.epoch);
                return Ok((chosen, universe));
            }
            Err(ClusterError::BadRequest { reason }) => {
                // Another joiner took the id chosen here first: choose again.
                let now =
                    cluster.universe().map_err(|e| format!("cannot read the cluster's universe: {e}"))?;
                if !now.members.contains_key(&chosen) {
                    return Err(format!("cannot add member {} at {address}: {reason}", chosen.0));
                }
            }
            Err(e) => {
                return Err(format!(
                    "cannot add member {} at {address}: {e} (if the change was ordered all the \
                     same, `harness members` lists it and `harness member remove {}` takes it out)",
                    chosen.0, chosen.0
                ))
            }
        }
    }
    Err(format!("{SELF_ADD_ATTEMPTS} other joiners took the id chosen here first; try again, or give --id"))
}

/// The address the others are to dial this member at: `--listen`, or for a Slurm task listening
/// on every interface its entry in the allocation's list.
fn advertised(args: &NodeArgs) -> Result<SocketAddr, String> {
    let own = args.peers.get(&args.id).copied().filter(|a| !a.ip().is_unspecified());
    match own {
        _ if !args.listen.ip().is_unspecified() => Ok(args.listen),
        Some(own) if !args.slurm_contacts.is_empty() => Ok(own),
        _ => Err(format!(
            "--self-add puts this member's address in the universe for the others to dial, and {} \
             is not one they can dial: give --listen the address they reach it at",
            args.listen
        )),
    }
}

/// How long a `--slurm` member asks the allocation's other hosts for a running cluster before
/// it seeds a new one: in a brand-new allocation nobody listens yet and every dial is refused at
/// once, so this bounds only hosts that are up but not yet primary.
const SLURM_PROBE_DEADLINE: Duration = Duration::from_secs(1);

/// `--slurm`: when a cluster already runs on the allocation's other hosts and its universe has
/// changed since the seed list or does not name this member (a grown allocation), this member
/// joins it through them like `--join` (docs/PROTOCOL.md §5.9); otherwise `None`, and it starts
/// from the allocation's list as before. A member not in the universe is then refused, saying
/// how to add it.
fn slurm_running_cluster(args: &NodeArgs) -> Option<NodeArgs> {
    if args.slurm_contacts.is_empty() {
        return None;
    }
    let options = ClusterOptions {
        request_timeout: SLURM_PROBE_DEADLINE / 2,
        deadline: SLURM_PROBE_DEADLINE,
        auth: args.auth(),
        versions: args.versions,
    };
    let universe = ClusterClient::new(&args.slurm_contacts, options).ok()?.universe().ok()?;
    if universe.epoch == 0 && universe.members.contains_key(&args.id) {
        return None;
    }
    log::info!(
        "{} slurm: a cluster runs on the allocation (universe epoch {}); joining it",
        args.id,
        universe.epoch
    );
    Some(NodeArgs { join: args.slurm_contacts.clone(), ..args.clone() })
}

/// A new incarnation for every process start: microseconds since the Unix epoch, so a
/// restarted member's incarnation is larger than its last one (docs/PROTOCOL.md §1).
fn incarnation() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incarnations_grow_between_starts() {
        let first = incarnation();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(incarnation() > first);
    }
}
