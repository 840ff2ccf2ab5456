//! The node runtime and its embedding API: configuration, the two threads, and their channels.
//!
//! `Node::start` binds the listener, starts the event loop thread (`crate::transport`) and the
//! protocol thread (`driver`), which owns the `Core` and nothing else touches it: the embedder
//! talks to it over bounded channels, so there is no lock around protocol state.
//!
//! Slow consumers: deliveries (and commits, when asked for) are never dropped. When the embedder
//! lets a channel fill up, the protocol thread waits for room, so the node stops taking part in the
//! ring; its peers see a silent link after `token_timeout`, exactly as for a paused process. Size
//! the channels with `NodeOptions`. `stop` always ends the wait.
//!
//! `NodeOptions::delivery_log` makes the protocol thread also write every agreed delivery to a
//! file (`delivery_log`), so crashes can be audited from outside the process.

mod delivery_log;
mod driver;
mod notify;
mod watch;

pub use delivery_log::{payload_hash, read_log, LogLine, FLUSH_INTERVAL, FLUSH_LINES};
pub use notify::{NotifyConfig, NotifyTarget};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::auth::Auth;
use crate::budget::ByteBudget;
use crate::checkpoint::{StorageThread, Store};
use crate::config::CoreConfig;
use crate::config::Durability;
use crate::core::Core;
use crate::core::{Commit, CoreStatus, Delivery, RejectReason};
use crate::error::{ConfigError, Error};
use crate::ids::{Member, NodeId};
use crate::replication::{Checkpoint, DvmBuilder, DvmState, StateMachine};
use crate::transport::{self, CounterSnapshot, Counters, Transport, TransportConfig};
use crate::wire::Payload;

/// Most embedder requests (submissions, status queries) queued for the protocol thread.
const REQUESTS_QUEUED_MAX: usize = 4096;
/// The default byte bound of each embedder channel that carries payloads (docs/PROTOCOL.md §2.2).
pub const EMBEDDER_BYTES_MAX_DEFAULT: usize = 8 << 20;
/// How long `status` waits for the protocol thread.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a node needs: the core's settings and where every member listens.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The protocol core's settings.
    pub core: CoreConfig,
    /// The address to listen on for peers and clients.
    pub listen: SocketAddr,
    /// Every member's address, by id, this node's own included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The cluster key, bound to the cluster name: peers and clients must prove it and every
    /// record carries a MAC. `None` runs open, with one warning at start.
    pub auth: Option<Auth>,
}

impl NodeConfig {
    /// Checks the settings against each other; the error names the bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.core.validate()?;
        let me = self.core.me.id;
        let Some(own) = self.peers.get(&me) else {
            return Err(ConfigError::new("peers", format!("has no address for this node ({me})")));
        };
        if self.listen.port() == 0 || self.listen.port() != own.port() {
            let problem = format!("port {} differs from this node's peer entry {own}", self.listen.port());
            return Err(ConfigError::new("listen", problem));
        }
        if let Some(id) = self.core.universe.iter().find(|id| !self.peers.contains_key(id)) {
            return Err(ConfigError::new("peers", format!("has no address for {id}")));
        }
        if let Some(id) = self.peers.keys().find(|id| !self.core.universe.contains(id)) {
            return Err(ConfigError::new("peers", format!("gives an address for {id}, not a member")));
        }
        if let Some((id, addr)) = self.peers.iter().find(|(_, addr)| addr.port() == 0) {
            return Err(ConfigError::new("peers", format!("gives {id} the address {addr} without a port")));
        }
        if self.auth.as_ref().is_some_and(|auth| auth.cluster() != self.core.cluster) {
            return Err(ConfigError::new("cluster", "differs from the cluster name the key was bound to"));
        }
        Ok(())
    }
}

/// How the node hands results to its embedder.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Whether to hand agreed deliveries to the embedder (`Node::deliveries`). An embedder that
    /// only needs commits, or nothing, turns it off: every delivery handed over wakes the thread
    /// that receives it, which on a busy host costs more than the delivery itself.
    pub deliveries: bool,
    /// Capacity of the deliveries channel.
    pub deliveries_max: usize,
    /// Most payload bytes the deliveries channel holds (docs/PROTOCOL.md §2.2); beyond it the
    /// protocol thread waits for the embedder as when the channel is full. One delivery larger
    /// than this still goes when the channel is empty.
    pub deliveries_bytes_max: usize,
    /// Whether to report commits and rejected submissions (`Node::commits`, `Node::rejections`).
    pub commits: bool,
    /// Capacity of each of those channels.
    pub commits_max: usize,
    /// Most result bytes the commits channel holds, likewise.
    pub commits_bytes_max: usize,
    /// Most payload bytes of `Node::submit`s waiting for the protocol thread; beyond it `submit`
    /// waits, as when the request queue is full.
    pub submit_bytes_max: usize,
    /// A file to write one line per agreed delivery to (`LogLine`); created or emptied at start.
    pub delivery_log: Option<PathBuf>,
    /// Where checkpoints and the command log live; needed unless the core's durability is
    /// `Memory` (docs/PROTOCOL.md §7).
    pub data_dir: Option<PathBuf>,
    /// The universe must come from `data_dir` (docs/PROTOCOL.md §5.9): a member added at run
    /// time restarting from its own files, configured with itself alone. A directory whose
    /// durable universe does not name this member is refused before anything starts.
    pub universe_from_data_dir: bool,
    /// How the event loop and the protocol thread wait for work (`harness node --idle`).
    pub idle: crate::idle::IdleStrategy,
    /// systemd's notification socket and watchdog (`NotifyConfig::from_env`); the default sends
    /// nothing, so an embedder is never mistaken for the service unless it asks.
    pub notify: NotifyConfig,
    /// The protocol versions spoken (`--protocol-version`; docs/PROTOCOL.md §2.3).
    pub versions: crate::wire::Versions,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions {
            deliveries: true,
            deliveries_max: 65_536,
            deliveries_bytes_max: EMBEDDER_BYTES_MAX_DEFAULT,
            commits: false,
            commits_max: 65_536,
            commits_bytes_max: EMBEDDER_BYTES_MAX_DEFAULT,
            submit_bytes_max: EMBEDDER_BYTES_MAX_DEFAULT,
            delivery_log: None,
            data_dir: None,
            universe_from_data_dir: false,
            idle: crate::idle::IdleStrategy::DEFAULT,
            notify: NotifyConfig::default(),
            versions: crate::wire::Versions::ALL,
        }
    }
}

/// A submission the core refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The tag `Node::submit` returned.
    pub tag: u64,
    /// Why.
    pub reason: RejectReason,
}

/// What the embedder asks of the protocol thread.
pub(crate) enum Request {
    Submit {
        tag: u64,
        payload: Payload,
    },
    Status(Sender<CoreStatus>),
    Metrics(Sender<Vec<crate::metrics::Sample>>),
    /// Reopen the delivery log at its path (SIGHUP after a rotation); answers whether there is one.
    ReopenDeliveryLog(Sender<bool>),
}

/// Opens the data directory, restores the core from it and starts the storage thread over it;
/// when nothing is to be durable, the storage thread only frees what the core discards.
fn open_store(
    core: &mut Core,
    durability: Durability,
    dir: Option<&Path>,
    universe_from_files: bool,
) -> Result<StorageThread, Error> {
    let name = format!("harness-{}-storage", core.me().id);
    if durability == Durability::Memory {
        return StorageThread::start(None, name);
    }
    let Some(dir) = dir else {
        let problem = format!("is needed with --durability {}", durability.as_str());
        return Err(ConfigError::new("data-dir", problem).into());
    };
    let (store, loaded) = Store::open(dir, &|| Box::new(DvmBuilder::new()))?;
    let me = core.me();
    let checkpoint = loaded.checkpoint.unwrap_or_else(|| Checkpoint::new(0, DvmState::default().freeze()));
    let from = checkpoint.seq;
    let logged = loaded.after.len();
    let upto = core.restore_durable(checkpoint, loaded.after).map_err(|e| {
        Error::io(format!("restore the checkpoint at {from} in {}", dir.display()), std::io::Error::other(e))
    })?;
    if upto > 0 {
        log::info!("{me} node: restored checkpoint {from} and {logged} logged commands: state up to {upto}");
    }
    if universe_from_files {
        // Started with itself alone: only a durable universe that names it says whom to contact.
        let universe = core.universe();
        if universe.epoch == 0 || !universe.members.contains_key(&me.id) {
            let problem = format!(
                "{} holds no universe naming member {} (epoch {}); start it with --join HOST:PORT \
                 (a member added at run time) or --peers",
                dir.display(),
                me.id.0,
                universe.epoch
            );
            return Err(ConfigError::new("data-dir", problem).into());
        }
        log::info!("{me} node: restarting from {}: universe {universe}", dir.display());
    }
    StorageThread::start(Some(store), name)
}

/// A running member: an event loop thread and a protocol thread.
///
/// A ring of one, embedded: start it, submit a message, receive it in agreed order and see it
/// committed (`examples/embed.rs` runs a ring of three).
///
/// ```
/// use std::collections::BTreeMap;
/// use std::time::Duration;
/// use harness::{CoreConfig, Member, Node, NodeConfig, NodeId, NodeOptions};
///
/// let addr = harness::procs::free_loopback_ports(1)?[0];
/// let me = Member { id: NodeId(1), incarnation: 1 };
/// let config = NodeConfig {
///     core: CoreConfig::new(me, vec![NodeId(1)]),
///     listen: addr,
///     peers: BTreeMap::from([(NodeId(1), addr)]),
///     auth: None,
/// };
/// let node = Node::start_with(config, NodeOptions { commits: true, ..NodeOptions::default() })?;
/// let tag = node.submit(b"hello".to_vec())?;
/// let delivery = node.deliveries().recv_timeout(Duration::from_secs(10))?;
/// assert_eq!(&delivery.message.payload[..], b"hello");
/// let commit = node.commits().recv_timeout(Duration::from_secs(10))?;
/// assert_eq!((commit.tag, commit.seq), (Some(tag), delivery.message.seq));
/// node.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Node {
    me: Member,
    local_addr: SocketAddr,
    requests: Option<Sender<Request>>,
    /// Payload bytes of submissions not yet taken by the protocol thread.
    requests_budget: Arc<ByteBudget>,
    /// Dropped to tell the protocol thread to leave and stop; nothing is ever sent on it.
    stop: Option<Sender<()>>,
    deliveries: Receiver<Delivery>,
    commits: Receiver<Commit>,
    rejections: Receiver<Rejection>,
    tags: Arc<AtomicU64>,
    protocol: Option<JoinHandle<()>>,
    io: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    left_by_request: Arc<AtomicBool>,
}

impl Node {
    /// Starts a node with the default options (commits not reported).
    pub fn start(config: NodeConfig) -> Result<Node, Error> {
        Node::start_with(config, NodeOptions::default())
    }

    /// Starts a node. The listener is bound and the delivery log created first, so an address in
    /// use is an `Error::Io` naming the address (and leaves an existing log alone), a bad log path
    /// an `Error::Config` naming `delivery-log`, and in both cases no thread is started.
    pub fn start_with(config: NodeConfig, options: NodeOptions) -> Result<Node, Error> {
        config.validate()?;
        // The listener first: a node whose address is taken must not empty its old delivery log.
        let listener = transport::bind_listener(config.listen)?;
        let delivery_log =
            options.delivery_log.as_deref().map(delivery_log::DeliveryLog::create).transpose()?;
        let mut core = Core::with_machine(config.core.clone(), Box::new(DvmState::default()));
        let storage = open_store(
            &mut core,
            config.core.durability,
            options.data_dir.as_deref(),
            options.universe_from_data_dir,
        )?;
        let local_addr = listener.local_addr().map_err(|e| Error::io("read the listener's address", e))?;
        let me = config.core.me;
        let transport = Transport::start(
            TransportConfig {
                me,
                cluster: config.core.cluster,
                peers: config.peers.clone(),
                dial_timeout: config.core.token_timeout / 2,
                clients_max: transport::CLIENTS_MAX,
                request_bytes_max: config.core.payload_bytes_max + transport::REQUEST_ENVELOPE_BYTES,
                auth: config.auth.clone(),
                idle: options.idle,
                versions: options.versions,
            },
            listener,
        )?;
        match &config.auth {
            Some(auth) => log::info!(
                "{me} node: cluster key {}; peers and clients must prove it, records are {}",
                auth.fingerprint(),
                if auth.mode() == crate::wire::AuthMode::Encrypt { "encrypted" } else { "MACed" }
            ),
            None => log::warn!(
                "{me} node: running open without --key-file: anyone who can reach {local_addr} can join, \
                 inject or replay frames"
            ),
        }
        let counters = Arc::clone(&transport.counters);
        let (requests, requests_rx) = crossbeam_channel::bounded(REQUESTS_QUEUED_MAX);
        let requests_budget = Arc::new(ByteBudget::new(options.submit_bytes_max));
        let (stop, stop_rx) = crossbeam_channel::bounded(1);
        // A bounded channel allocates (and touches) its slots up front: a few MiB at the default
        // capacities, spent only where the embedder asked for the channel.
        let deliveries_max = if options.deliveries { options.deliveries_max.max(1) } else { 1 };
        let commits_max = if options.commits { options.commits_max.max(1) } else { 1 };
        let (deliveries_tx, deliveries) = crossbeam_channel::bounded(deliveries_max);
        let (commits_tx, commits) = crossbeam_channel::bounded(commits_max);
        let (rejections_tx, rejections) = crossbeam_channel::bounded(commits_max);
        let tags = Arc::new(AtomicU64::new(1));
        let left_by_request = Arc::new(AtomicBool::new(false));
        let driver = driver::Driver::new(driver::Channels {
            idle: options.idle,
            version: options.versions.max,
            core,
            io: transport.handle,
            events: transport.events,
            events_budget: transport.events_budget,
            requests_budget: Arc::clone(&requests_budget),
            requests: requests_rx,
            stop: stop_rx,
            deliveries: deliveries_tx,
            deliveries_bytes_max: options.deliveries_bytes_max,
            hand_over_deliveries: options.deliveries,
            commits: options.commits.then_some(commits_tx),
            commits_bytes_max: options.commits_bytes_max,
            rejections: options.commits.then_some(rejections_tx),
            tags: Arc::clone(&tags),
            delivery_log,
            counters: Arc::clone(&counters),
            payload_bytes_max: config.core.payload_bytes_max,
            storage: Some(storage),
            durable: config.core.durability != Durability::Memory,
            fsync: config.core.durability == Durability::Fsync,
            peers: config.peers.clone(),
            left_by_request: Arc::clone(&left_by_request),
            notify: notify::Notifier::new(&options.notify),
        });
        let protocol = std::thread::Builder::new()
            .name(format!("harness-{}-protocol", me.id))
            .spawn(move || driver.run());
        let protocol = match protocol {
            Ok(handle) => handle,
            Err(e) => {
                // The loop ends by itself once the driver, and with it the command channel, is gone.
                let _ = transport.thread.join();
                return Err(Error::io("spawn the protocol thread", e));
            }
        };
        log::info!("{} node: started on {local_addr}", me);
        Ok(Node {
            me,
            local_addr,
            requests: Some(requests),
            requests_budget,
            stop: Some(stop),
            deliveries,
            commits,
            rejections,
            tags,
            protocol: Some(protocol),
            io: Some(transport.thread),
            counters,
            left_by_request,
        })
    }

    /// Submits a message for total ordering; returns the tag its `Commit` or `Rejection` carries.
    /// Waits while the protocol thread's request queue is full, in count or in bytes
    /// (`NodeOptions::submit_bytes_max`).
    pub fn submit(&self, payload: Vec<u8>) -> Result<u64, Error> {
        let tag = self.tags.fetch_add(1, Ordering::Relaxed);
        let requests = self.requests.as_ref().ok_or(Error::Stopped)?;
        let bytes = payload.len();
        // Bounded: the protocol thread gives bytes back as it takes submissions, and closes the
        // budget when it stops.
        self.requests_budget.take(bytes, || false);
        if requests.send(Request::Submit { tag, payload: payload.into() }).is_err() {
            self.requests_budget.give(bytes);
            return Err(Error::Stopped);
        }
        Ok(tag)
    }

    /// Agreed deliveries, in order, every message once, when `NodeOptions::deliveries` is set;
    /// otherwise a channel that yields nothing and disconnects when the node stops.
    pub fn deliveries(&self) -> &Receiver<Delivery> {
        &self.deliveries
    }

    /// Commits, in seq order, when `NodeOptions::commits` was set; otherwise a channel that
    /// never yields anything.
    pub fn commits(&self) -> &Receiver<Commit> {
        &self.commits
    }

    /// Refused submissions, when `NodeOptions::commits` was set.
    pub fn rejections(&self) -> &Receiver<Rejection> {
        &self.rejections
    }

    /// A snapshot of the core's state.
    pub fn status(&self) -> Result<CoreStatus, Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let requests = self.requests.as_ref().ok_or(Error::Stopped)?;
        requests.send(Request::Status(tx)).map_err(|_| Error::Stopped)?;
        match rx.recv_timeout(STATUS_TIMEOUT) {
            Ok(status) => Ok(status),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(Error::Stopped),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                Err(Error::io("wait for the protocol thread's status", std::io::ErrorKind::TimedOut.into()))
            }
        }
    }

    /// This member's metrics (`crate::metrics`), as `harness metrics` shows them.
    pub fn metrics(&self) -> Result<Vec<crate::metrics::Sample>, Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let requests = self.requests.as_ref().ok_or(Error::Stopped)?;
        requests.send(Request::Metrics(tx)).map_err(|_| Error::Stopped)?;
        rx.recv_timeout(STATUS_TIMEOUT).map_err(|e| match e {
            crossbeam_channel::RecvTimeoutError::Disconnected => Error::Stopped,
            crossbeam_channel::RecvTimeoutError::Timeout => {
                Error::io("wait for the protocol thread's metrics", std::io::ErrorKind::TimedOut.into())
            }
        })
    }

    /// Closes the delivery log and opens its path again, appending (a new file after logrotate
    /// renamed the old one; docs/PROTOCOL.md §2.2). `Ok(false)`: the node writes none.
    pub fn reopen_delivery_log(&self) -> Result<bool, Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let requests = self.requests.as_ref().ok_or(Error::Stopped)?;
        requests.send(Request::ReopenDeliveryLog(tx)).map_err(|_| Error::Stopped)?;
        rx.recv_timeout(STATUS_TIMEOUT).map_err(|e| match e {
            crossbeam_channel::RecvTimeoutError::Disconnected => Error::Stopped,
            crossbeam_channel::RecvTimeoutError::Timeout => Error::io(
                "wait for the protocol thread to reopen the delivery log",
                std::io::ErrorKind::TimedOut.into(),
            ),
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the node stopped because a client asked it to leave (`harness leave`).
    pub fn left_by_request(&self) -> bool {
        self.left_by_request.load(Ordering::Relaxed)
    }

    /// This member.
    pub fn member(&self) -> Member {
        self.me
    }

    /// What the transport has refused or cut short so far (transport::Counters).
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// Leaves the group cleanly, stops both threads and waits for them.
    pub fn stop(mut self) -> Result<(), Error> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<(), Error> {
        self.requests = None;
        // Dropping the only sender disconnects the stop channel, which the protocol thread
        // watches even while it waits for room in a full embedder channel.
        self.stop = None;
        let mut result = Ok(());
        for (name, handle) in [("protocol", self.protocol.take()), ("event loop", self.io.take())] {
            if let Some(handle) = handle {
                if handle.join().is_err() {
                    log::error!("{} node: the {name} thread panicked", self.me);
                    result = Err(Error::Stopped);
                }
            }
        }
        log::info!("{} node: stopped; transport counters: {}", self.me, self.counters.snapshot());
        result
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.protocol.is_some() || self.io.is_some() {
            let _ = self.shut_down();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NodeConfig {
        let peers: BTreeMap<NodeId, SocketAddr> =
            (1..=3u16).map(|id| (NodeId(id), SocketAddr::from(([127, 0, 0, 1], 7100 + id)))).collect();
        let core = CoreConfig::new(Member { id: NodeId(2), incarnation: 1 }, peers.keys().copied().collect());
        NodeConfig { core, listen: SocketAddr::from(([0, 0, 0, 0], 7102)), peers, auth: None }
    }

    #[test]
    fn validate_names_the_bad_setting() {
        assert_eq!(config().validate(), Ok(()));
        let mut wrong_port = config();
        wrong_port.listen.set_port(7101);
        assert_eq!(wrong_port.validate().unwrap_err().setting, "listen");
        let mut missing = config();
        missing.peers.remove(&NodeId(3));
        assert_eq!(missing.validate().unwrap_err().to_string(), "bad --peers: has no address for n3");
        let mut stranger = config();
        stranger.peers.insert(NodeId(9), SocketAddr::from(([127, 0, 0, 1], 7109)));
        assert_eq!(stranger.validate().unwrap_err().setting, "peers");
        let mut no_own = config();
        no_own.peers.remove(&NodeId(2));
        assert_eq!(no_own.validate().unwrap_err().setting, "peers");
        let mut bad_core = config();
        bad_core.core.batch_max = 0;
        assert_eq!(bad_core.validate().unwrap_err().setting, "batch-max");
    }
}
