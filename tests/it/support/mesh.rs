//! A ring of real `harness node` processes whose peer links all run through fault-injecting
//! proxies (tests/it/support/proxy.rs), plus a submitter per node that keeps broadcasting and records
//! every acknowledgement, and the end-of-story checks the link-fault tests share.
//!
//! Every node dials peers at the addresses of its own `--peers` list (docs/PROTOCOL.md §2), so
//! node `a`'s list names `b` by the address of proxy `(a, b)`, whose target is `b`'s listen
//! address. The pair `{a, b}` thus has two proxies, one per dialing side; a fault on "the link"
//! is set on both, since either connection may be the one that survives.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use harness::client::{Client, ClientError};
use harness::procs::ProcessGroup;
use harness::wire::{ClientReply, ErrorCode, NodeStatus};

use crate::common::{free_ports, wait_until, HARNESS, STOP_GRACE};
use crate::proxy::{Dir, Mode, Proxy};

/// Broadcasts one submitter keeps in flight; small, so a view change has little to redo.
const SUBMIT_WINDOW: usize = 16;
/// How long a submitter waits for one reply before looking at its stop flag again.
const REPLY_WAIT: Duration = Duration::from_millis(100);

/// Five (or `count`) nodes with proxied links.
pub struct Mesh {
    /// Member `i + 1` listens on `addrs[i]`.
    pub addrs: Vec<SocketAddr>,
    /// Proxy `(dialer, target)`: how `dialer` reaches `target`.
    proxies: BTreeMap<(u16, u16), Proxy>,
    children: ProcessGroup<u16>,
    token_timeout: Duration,
    log_dir: PathBuf,
    /// Starts of each node, so a restart appends to a fresh log file.
    starts: BTreeMap<u16, u32>,
}

impl Mesh {
    /// `count` nodes on fresh loopback ports, every pair proxied; nothing started yet.
    pub fn new(name: &str, count: u16, token_timeout: Duration) -> Mesh {
        let log_dir = std::env::temp_dir().join(format!("harness-mesh-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&log_dir).unwrap();
        let addrs = free_ports(usize::from(count));
        let mut proxies = BTreeMap::new();
        for a in 1..=count {
            for b in (1..=count).filter(|&b| b != a) {
                proxies.insert((a, b), Proxy::start(addrs[usize::from(b) - 1]));
            }
        }
        Mesh {
            addrs,
            proxies,
            children: ProcessGroup::new(STOP_GRACE),
            token_timeout,
            log_dir,
            starts: BTreeMap::new(),
        }
    }

    /// The ids `1..=count`.
    pub fn ids(&self) -> Vec<u16> {
        (1..=self.addrs.len() as u16).collect()
    }

    /// Starts node `id` with its proxied peer list.
    pub fn start(&mut self, id: u16) {
        let peers: Vec<String> = self
            .ids()
            .into_iter()
            .map(|j| {
                let addr =
                    if j == id { self.addrs[usize::from(j) - 1] } else { self.proxies[&(id, j)].addr() };
                format!("{j}={addr}")
            })
            .collect();
        let start = self.starts.entry(id).or_insert(0);
        *start += 1;
        let log = std::fs::File::create(self.log_dir.join(format!("node-{id}-{start}.log"))).unwrap();
        let level = std::env::var("MESH_LOG").unwrap_or_else(|_| "info".into());
        let mut command = Command::new(HARNESS);
        command
            .args(["node", "--id", &id.to_string(), "--listen", &self.addrs[usize::from(id) - 1].to_string()])
            .args(["--peers", &peers.join(",")])
            .args(["--token-timeout", &self.token_timeout.as_millis().to_string()])
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.children.spawn(id, command).unwrap_or_else(|e| panic!("start n{id}: {e}"));
    }

    /// Starts every node.
    pub fn start_all(&mut self) {
        for id in self.ids() {
            self.start(id);
        }
    }

    /// SIGKILL by pid, and reap it.
    pub fn kill9(&mut self, id: u16) {
        self.children.kill(id).unwrap_or_else(|e| panic!("kill -9 n{id}: {e}"));
    }

    /// The proxy `dialer` uses to reach `target`.
    pub fn proxy(&self, dialer: u16, target: u16) -> &Proxy {
        &self.proxies[&(dialer, target)]
    }

    /// Blackholes the link `{a, b}` both ways.
    pub fn blackhole(&self, a: u16, b: u16) {
        self.proxy(a, b).set_both(Mode::Blackhole);
        self.proxy(b, a).set_both(Mode::Blackhole);
    }

    /// Drops everything `from` sends to `to`; `to` → `from` still passes.
    pub fn cut_one_way(&self, from: u16, to: u16) {
        self.proxy(from, to).set_mode(Dir::ToTarget, Mode::Blackhole);
        self.proxy(to, from).set_mode(Dir::ToDialer, Mode::Blackhole);
    }

    /// Closes every live connection of `id` to its peers, on both sides.
    pub fn reset_links_of(&self, id: u16) {
        for ((a, b), proxy) in &self.proxies {
            if *a == id || *b == id {
                proxy.reset();
            }
        }
    }

    /// Every link of the pair `{a, b}` back to pass.
    pub fn heal_link(&self, a: u16, b: u16) {
        self.proxy(a, b).heal();
        self.proxy(b, a).heal();
    }

    /// Every link back to pass.
    pub fn heal_all(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }

    /// `(id, client address)` of every node.
    pub fn endpoints(&self) -> Vec<(u16, SocketAddr)> {
        self.ids().into_iter().map(|id| (id, self.addrs[usize::from(id) - 1])).collect()
    }

    /// The status of node `id`, or `None` if it does not answer within a second.
    pub fn status(&self, id: u16) -> Option<NodeStatus> {
        status_at(self.addrs[usize::from(id) - 1])
    }

    /// Statuses of `ids`, `None` where a node did not answer.
    pub fn statuses(&self, ids: &[u16]) -> Vec<Option<NodeStatus>> {
        ids.iter().map(|&id| self.status(id)).collect()
    }

    /// `wait_settled_at` for the nodes `ids`.
    pub fn wait_settled(&self, ids: &[u16], min_committed: u64, deadline: Duration) -> (u64, Duration) {
        wait_settled_at(&self.pick(ids), min_committed, deadline)
    }

    /// `view_changes_at` for the nodes `ids`.
    pub fn view_changes_over(&self, ids: &[u16], span: Duration) -> usize {
        view_changes_at(&self.pick(ids), span)
    }

    fn pick(&self, ids: &[u16]) -> Vec<SocketAddr> {
        ids.iter().map(|&id| self.addrs[usize::from(id) - 1]).collect()
    }

    /// Where the logs are.
    pub fn log_dir(&self) -> &PathBuf {
        &self.log_dir
    }

    /// SIGTERM every node by pid, then SIGKILL after the grace period.
    pub fn stop_all(&mut self) {
        self.children.stop_all();
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.stop_all();
        if std::thread::panicking() {
            eprintln!("node logs kept in {}", self.log_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
        // The proxies drop after the nodes, joining their threads.
    }
}

/// The status of the node at `addr`, or `None` if it does not answer within a second.
pub fn status_at(addr: SocketAddr) -> Option<NodeStatus> {
    let mut client = Client::connect(addr, Duration::from_secs(1)).ok()?;
    client.status().ok()
}

/// Waits until every node at `addrs` is in the same primary view of exactly `addrs.len()`
/// members and that view commits (committed_upto grows past `min_committed`); returns the view
/// id and how long it took.
pub fn wait_settled_at(addrs: &[SocketAddr], min_committed: u64, deadline: Duration) -> (u64, Duration) {
    let started = Instant::now();
    let mut view = 0;
    wait_until(
        &format!("{addrs:?} to settle in one committing primary view"),
        Duration::from_millis(50),
        10_000,
        deadline,
        || {
            let statuses: Vec<Option<NodeStatus>> = addrs.iter().map(|&a| status_at(a)).collect();
            let Some(first) = statuses[0].as_ref() else { return false };
            view = first.view.0;
            statuses.iter().all(|s| {
                s.as_ref().is_some_and(|s| {
                    s.primary
                        && s.view == first.view
                        && s.ring.len() == addrs.len()
                        && s.committed_upto > min_committed
                })
            })
        },
    );
    (view, started.elapsed())
}

/// Samples the view id of every node at `addrs` for `span`; returns how many distinct new
/// views appeared (the flapping check of docs/PROTOCOL.md §5.5).
pub fn view_changes_at(addrs: &[SocketAddr], span: Duration) -> usize {
    let until = Instant::now() + span;
    let mut last: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    let mut changes = BTreeSet::new();
    for _ in 0..1_000 {
        if Instant::now() >= until {
            break;
        }
        for &addr in addrs {
            if let Some(s) = status_at(addr) {
                if let Some(old) = last.insert(addr, s.view.0) {
                    if old != s.view.0 {
                        changes.insert(s.view.0);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    changes.len()
}

/// One acknowledgement: which node, the seq, and when.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    /// The node the client submitted through.
    pub node: u16,
    /// The committed seq.
    pub seq: u64,
    /// When the reply arrived.
    pub at: Instant,
}

/// Submitters on every node until stopped; see `Submitters::stop`.
pub struct Submitters {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    /// Error replies and connection failures per node.
    errors: Arc<Mutex<BTreeMap<u16, u64>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Submitters {
    /// One submitter per `(id, addr)`.
    pub fn start(nodes: &[(u16, SocketAddr)]) -> Submitters {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(BTreeMap::new()));
        let threads = nodes
            .iter()
            .map(|&(id, addr)| {
                let (stop, acks, errors) = (stop.clone(), acks.clone(), errors.clone());
                std::thread::spawn(move || submit_until_stopped(id, addr, &stop, &acks, &errors))
            })
            .collect();
        Submitters { stop, acks, errors, threads }
    }

    /// Acknowledgements so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.lock().unwrap().clone()
    }

    /// Errors so far for node `id`.
    pub fn errors(&self, id: u16) -> u64 {
        self.errors.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    /// Stops and joins every submitter; returns every acknowledgement.
    pub fn stop(mut self) -> Vec<Ack> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().expect("a submitter panicked");
        }
        self.acks()
    }
}

impl Drop for Submitters {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn submit_until_stopped(
    id: u16,
    addr: SocketAddr,
    stop: &AtomicBool,
    acks: &Mutex<Vec<Ack>>,
    errors: &Mutex<BTreeMap<u16, u64>>,
) {
    let count_error = || *errors.lock().unwrap().entry(id).or_insert(0) += 1;
    let mut client: Option<Client> = None;
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut in_flight: BTreeSet<u64> = BTreeSet::new();
    let mut index = 0u64;
    // Bounded by the stop flag, and by a step count as every loop here is.
    for _ in 0..10_000_000 {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(c) = client.as_mut() else {
            client = Client::connect(addr, Duration::from_millis(500)).ok();
            if client.is_none() {
                count_error();
                std::thread::sleep(Duration::from_millis(50));
            }
            // Request ids are per connection: a new one starts numbering again.
            in_flight.clear();
            acked.clear();
            continue;
        };
        let mut broken = false;
        while in_flight.len() < SUBMIT_WINDOW {
            let mut payload = format!("mesh-n{id}-{index}").into_bytes();
            payload.resize(48, b'.');
            index += 1;
            match c.send_broadcast(&payload) {
                Ok(request) => {
                    in_flight.insert(request);
                }
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if !broken {
            match c.recv_reply(REPLY_WAIT) {
                Ok(ClientReply::Committed { request, seq }) => {
                    assert!(in_flight.remove(&request), "n{id}: a reply to request {request} not in flight");
                    assert!(acked.insert(request), "n{id}: request {request} acknowledged twice");
                    acks.lock().unwrap().push(Ack { node: id, seq, at: Instant::now() });
                }
                Ok(ClientReply::Error {
                    request,
                    code:
                        ErrorCode::Busy
                        | ErrorCode::NoQuorum
                        | ErrorCode::NotEnoughReplicas
                        | ErrorCode::ShuttingDown
                        | ErrorCode::OutcomeUnknown,
                    ..
                }) => {
                    // Not acknowledged (an unknown outcome may still be ordered, once): the
                    // payload is simply not retried (a fresh one follows).
                    in_flight.remove(&request);
                    count_error();
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(other) => panic!("n{id}: unexpected reply {other:?}"),
                Err(ClientError::Timeout { .. }) => {}
                Err(_) => broken = true,
            }
        }
        if broken {
            count_error();
            client = None;
        }
    }
}

/// The ending every story shares: with every link healed, all `ids` reach the same
/// committed_upto and state digest, every acknowledged seq is committed everywhere, and no
/// seq was acknowledged twice. Returns the final statuses.
pub fn check_converged(mesh: &Mesh, ids: &[u16], acks: &[Ack], deadline: Duration) -> Vec<NodeStatus> {
    check_converged_at(&mesh.pick(ids), acks, deadline)
}

/// `check_converged` for the nodes at `addrs`.
pub fn check_converged_at(addrs: &[SocketAddr], acks: &[Ack], deadline: Duration) -> Vec<NodeStatus> {
    let mut last = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "every node to agree on committed_upto and state digest",
            Duration::from_millis(100),
            10_000,
            deadline,
            || {
                last = addrs.iter().map(|&a| status_at(a)).collect();
                let Some(first) = last[0].clone() else { return false };
                last.iter().all(|s| {
                    s.as_ref().is_some_and(|s| {
                        s.primary
                            && s.view == first.view
                            && s.committed_upto == first.committed_upto
                            && s.state_digest == first.state_digest
                    })
                })
            },
        )
    }));
    if let Err(e) = result {
        eprintln!("last statuses: {last:#?}");
        std::panic::resume_unwind(e);
    }
    let statuses: Vec<NodeStatus> = last.into_iter().map(Option::unwrap).collect();
    let mut seqs: Vec<u64> = acks.iter().map(|a| a.seq).collect();
    seqs.sort_unstable();
    let before = seqs.len();
    seqs.dedup();
    assert_eq!(before, seqs.len(), "two acknowledgements name the same seq");
    for s in &statuses {
        assert!(
            acks.len() as u64 <= s.committed_upto,
            "{}: {} acknowledged but only {} committed",
            s.member.id,
            acks.len(),
            s.committed_upto
        );
        if let Some(max) = seqs.last() {
            assert!(
                *max <= s.committed_upto,
                "{}: acked seq {max} above committed {}",
                s.member.id,
                s.committed_upto
            );
        }
    }
    statuses
}
