//! Helpers shared by the process tests: loopback ports, a guard that stops every `harness node`
//! it started by pid (and can kill -9, pause and resume one), bounded waits, a pipelined
//! submitter and status polling.
//!
//! Each test binary uses a subset of these, hence the `dead_code` allowance below.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use harness::auth::Auth;
use harness::client::{Client, ClientError};
use harness::wire::{ClientReply, ErrorCode, NodeStatus};
use harness::{NodeId, RingMode};

/// The binary under test.
pub const HARNESS: &str = env!("CARGO_BIN_EXE_harness");
/// How long a stopping node may take before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Broadcasts one submitter keeps outstanding.
pub const WINDOW: usize = 256;

/// The credentials every client of these helpers proves, once a test binary sets them.
static CLIENT_AUTH: OnceLock<Auth> = OnceLock::new();

/// Makes every client these helpers open prove `auth` (for a test binary whose nodes all run
/// with one cluster key); the first call sets it, later calls must pass the same key.
pub fn use_client_auth(auth: Auth) {
    let set = CLIENT_AUTH.get_or_init(|| auth.clone());
    assert_eq!(set.fingerprint(), auth.fingerprint(), "one cluster key per test binary");
}

/// A client connection with the binary's credentials, if any.
pub fn client(addr: SocketAddr, timeout: Duration) -> Result<Client, ClientError> {
    Client::connect_with(addr, timeout, CLIENT_AUTH.get())
}

/// Sets up logging once per test binary (STYLE.md, Logging).
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = env_logger::builder().is_test(true).try_init();
    });
}

/// `count` distinct loopback addresses whose ports were free a moment ago.
///
/// They come from below the kernel's ephemeral range, so that between this check and the node's
/// own bind no outgoing connection or `bind(:0)` (a proxy, a client) can take them; each test
/// binary starts at its own offset so that binaries running side by side rarely meet.
pub fn free_ports(count: usize) -> Vec<SocketAddr> {
    const LOW: u16 = 10_000;
    // Tests of one binary run in parallel threads: a port is handed out once per binary, or two
    // tests would both think it theirs and one node would fail to bind.
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let high = ephemeral_low().saturating_sub(1).max(LOW + 1000);
    let span = u32::from(high - LOW);
    let start = std::process::id().wrapping_mul(7919) % span;
    let mut listeners = Vec::with_capacity(count);
    for step in 0..span {
        if listeners.len() == count {
            break;
        }
        let port = LOW + ((start + step) % span) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            handed_out.insert(port);
            listeners.push(listener);
        }
    }
    assert_eq!(listeners.len(), count, "no {count} free ports below the ephemeral range");
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

/// The first port of the kernel's ephemeral range (Linux), or the IANA default elsewhere.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(49_152)
}

/// Polls `done` every `step` until it holds, at most `steps_max` times and until `deadline`.
pub fn wait_until(
    what: &str,
    step: Duration,
    steps_max: u32,
    deadline: Duration,
    mut done: impl FnMut() -> bool,
) {
    let until = Instant::now() + deadline;
    for _ in 0..steps_max {
        if done() {
            return;
        }
        if Instant::now() >= until {
            break;
        }
        std::thread::sleep(step);
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

/// Runs `harness args` to completion (bounded by `deadline`) with `RUST_LOG=off`, so stderr
/// holds only what the binary prints itself.
pub fn run_harness(args: &[&str], deadline: Duration) -> Output {
    run_harness_with(args, &[], "", deadline)
}

/// `run_harness` with more environment variables and `stdin` written to the child.
pub fn run_harness_with(args: &[&str], env: &[(&str, &str)], stdin: &str, deadline: Duration) -> Output {
    let mut child = Command::new(HARNESS)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Dropping stdin after writing closes it, so a child reading it sees the end.
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let pid = child.id();
    let mut exited = false;
    wait_until(
        &format!("harness {args:?} (pid {pid}) to exit"),
        Duration::from_millis(10),
        100_000,
        deadline,
        || {
            exited = matches!(child.try_wait(), Ok(Some(_)));
            exited
        },
    );
    child.wait_with_output().unwrap()
}

/// Node processes started by a test; dropping the guard stops them all by pid.
pub struct Nodes {
    /// Member `i + 1` listens on `addrs[i]`.
    pub addrs: Vec<SocketAddr>,
    /// The ring mode every member is started with.
    pub ring: RingMode,
    /// `--token-timeout` for every member, when set.
    pub token_timeout: Option<Duration>,
    /// Whether every member writes a delivery log (`delivery_log`).
    pub delivery_logs: bool,
    /// `--key-file` for every member, when set.
    pub key_file: Option<PathBuf>,
    /// More flags for every member (roles, checkpoints).
    pub flags: Vec<String>,
    /// `--durability` for every member, each with its own `data_dir`.
    pub durability: Option<&'static str>,
    /// `RUST_LOG` for the members, when the test reads their logs.
    pub rust_log: Option<&'static str>,
    /// More flags for one member, by id.
    pub member_flags: BTreeMap<u16, Vec<String>>,
    children: BTreeMap<NodeId, Child>,
    /// Members paused with SIGSTOP; resumed before any other signal so they can exit.
    paused: BTreeSet<NodeId>,
    log_dir: PathBuf,
}

impl Nodes {
    /// A ring of `count` members on fresh loopback ports; nothing started yet.
    pub fn new(name: &str, count: usize, ring: RingMode) -> Nodes {
        let log_dir = std::env::temp_dir().join(format!("harness-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&log_dir).unwrap();
        Nodes {
            addrs: free_ports(count),
            ring,
            token_timeout: None,
            delivery_logs: false,
            key_file: None,
            flags: Vec::new(),
            durability: None,
            rust_log: None,
            member_flags: BTreeMap::new(),
            children: BTreeMap::new(),
            paused: BTreeSet::new(),
            log_dir,
        }
    }

    /// Starts member `id` (1-based) with the whole peer list. A restarted member appends to
    /// its stderr log, so one file tells the whole story.
    pub fn start(&mut self, id: u16) {
        let peers: Vec<String> =
            self.addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
        let addr = self.addrs[usize::from(id) - 1].to_string();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log(id)).unwrap();
        let mut extra = Vec::new();
        if let Some(timeout) = self.token_timeout {
            extra.extend(["--token-timeout".to_string(), timeout.as_millis().to_string()]);
        }
        if self.delivery_logs {
            extra.extend(["--delivery-log".to_string(), self.delivery_log(id).display().to_string()]);
        }
        if let Some(key_file) = &self.key_file {
            extra.extend(["--key-file".to_string(), key_file.display().to_string()]);
        }
        extra.extend(self.flags.iter().cloned());
        extra.extend(self.member_flags.get(&id).into_iter().flatten().cloned());
        if let Some(durability) = self.durability {
            extra.extend(["--durability".to_string(), durability.to_string()]);
            extra.extend(["--data-dir".to_string(), self.data_dir(id).display().to_string()]);
        }
        let rust_log = std::env::var("HARNESS_NODE_LOG")
            .ok()
            .or(self.rust_log.map(str::to_string))
            .unwrap_or_else(|| "warn".to_string());
        let child = Command::new(HARNESS)
            .args(["node", "--id", &id.to_string(), "--listen", &addr, "--peers", &peers.join(",")])
            .args(["--ring", self.ring.as_str()])
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        assert!(self.children.insert(NodeId(id), child).is_none(), "n{id} started twice");
    }

    /// The process id of running member `id`.
    pub fn pid(&self, id: u16) -> u32 {
        self.children.get(&NodeId(id)).unwrap_or_else(|| panic!("n{id} is not running")).id()
    }

    /// The directory of this ring's logs, for files a test adds (a key file).
    pub fn dir(&self) -> &PathBuf {
        &self.log_dir
    }

    /// The address of member `id`.
    pub fn addr(&self, id: u16) -> SocketAddr {
        self.addrs[usize::from(id) - 1]
    }

    /// Where member `id` keeps its durable state.
    pub fn data_dir(&self, id: u16) -> PathBuf {
        self.log_dir.join(format!("data-{id}"))
    }

    /// Where member `id` writes its delivery log.
    pub fn delivery_log(&self, id: u16) -> PathBuf {
        self.log_dir.join(format!("deliveries-{id}.log"))
    }

    /// Sends `signal` (a `kill` utility name: KILL, STOP, CONT) to member `id` by its pid.
    fn signal(&mut self, id: u16, signal: &str) {
        let child = self.children.get_mut(&NodeId(id)).unwrap_or_else(|| panic!("n{id} is not running"));
        // Only an unreaped child is signalled, so the pid is still ours.
        assert!(matches!(child.try_wait(), Ok(None)), "n{id} exited before SIG{signal}");
        let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} n{id}");
    }

    /// Kills member `id` with SIGKILL by its pid and reaps it; `start` may run it again.
    pub fn kill(&mut self, id: u16) {
        self.signal(id, "KILL");
        let mut child = self.children.remove(&NodeId(id)).unwrap();
        child.wait().unwrap();
        self.paused.remove(&NodeId(id));
    }

    /// Pauses member `id` with SIGSTOP.
    pub fn pause(&mut self, id: u16) {
        self.signal(id, "STOP");
        self.paused.insert(NodeId(id));
    }

    /// Resumes member `id` with SIGCONT.
    pub fn resume(&mut self, id: u16) {
        self.signal(id, "CONT");
        self.paused.remove(&NodeId(id));
    }

    /// Stops every node: SIGTERM by pid, then `Child::kill` after the grace period. Returns
    /// each node's exit status (`None`: it had to be killed).
    pub fn stop_all(&mut self) -> BTreeMap<NodeId, Option<ExitStatus>> {
        // A paused process cannot act on SIGTERM, and SIGKILL alone would leave it stopped in
        // some kernels' accounting; resume it first.
        for id in std::mem::take(&mut self.paused) {
            if let Some(child) = self.children.get_mut(&id) {
                if let Ok(None) = child.try_wait() {
                    let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
                }
            }
        }
        for child in self.children.values_mut() {
            // Only an unreaped child is signalled, so the pid is still ours.
            if let Ok(None) = child.try_wait() {
                let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            }
        }
        let mut ended = BTreeMap::new();
        let until = Instant::now() + STOP_GRACE;
        for _ in 0..10_000 {
            for (id, child) in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    ended.entry(*id).or_insert(Some(status));
                }
            }
            if ended.len() == self.children.len() || Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (id, mut child) in std::mem::take(&mut self.children) {
            ended.entry(id).or_insert_with(|| {
                // The grace period is over: the fallback the node cannot refuse.
                let _ = child.kill();
                let _ = child.wait();
                None
            });
        }
        ended
    }

    /// Where node `id`'s stderr goes.
    pub fn log(&self, id: u16) -> PathBuf {
        self.log_dir.join(format!("node-{id}.log"))
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop_all();
        // The logs explain a failure; a passing test leaves nothing behind unless
        // HARNESS_KEEP_LOGS is set (with HARNESS_NODE_LOG=debug, to study a timing).
        if std::thread::panicking() || std::env::var_os("HARNESS_KEEP_LOGS").is_some() {
            eprintln!("node logs kept in {}", self.log_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// Connects to a node that may still be starting.
pub fn connect(addr: SocketAddr, deadline: Duration) -> Client {
    let mut client = None;
    wait_until(
        &format!("a client connection to {addr}"),
        Duration::from_millis(50),
        10_000,
        deadline,
        || {
            client = self::client(addr, Duration::from_secs(5)).ok();
            client.is_some()
        },
    );
    client.unwrap()
}

/// Submits `messages` distinct payloads of node `id` with a window of `WINDOW`, asserting each
/// is acknowledged exactly once; returns the seqs.
pub fn submit(addr: SocketAddr, id: u16, messages: u64, deadline: Duration) -> Vec<u64> {
    let until = Instant::now() + deadline;
    let mut client = connect(addr, deadline);
    let mut outstanding: BTreeMap<u64, u64> = BTreeMap::new();
    let mut acknowledged = vec![false; messages as usize];
    let mut retry = Vec::new();
    let mut seqs = Vec::new();
    let mut next = 0;
    for _ in 0..messages * 1000 + 100_000 {
        if seqs.len() as u64 == messages {
            return seqs;
        }
        assert!(Instant::now() < until, "n{id}: {} of {messages} acknowledged in {deadline:?}", seqs.len());
        while outstanding.len() < WINDOW {
            let index = match retry.pop() {
                Some(index) => index,
                None if next < messages => {
                    next += 1;
                    next - 1
                }
                None => break,
            };
            let mut payload = format!("test-n{id}-{index}").into_bytes();
            payload.resize(64, b'.');
            outstanding.insert(client.send_broadcast(&payload).unwrap(), index);
        }
        match client.recv_reply(Duration::from_millis(500)) {
            Ok(ClientReply::Committed { request, seq }) => {
                let index = outstanding.remove(&request).expect("a reply to a request in flight");
                assert!(
                    !std::mem::replace(&mut acknowledged[index as usize], true),
                    "n{id}: {index} acked twice"
                );
                seqs.push(seq);
            }
            // Transient: the queue drains, the ring forms.
            Ok(ClientReply::Error { request, code: ErrorCode::Busy | ErrorCode::NoQuorum, .. }) => {
                retry.push(outstanding.remove(&request).expect("a reply to a request in flight"));
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(other) => panic!("n{id}: unexpected reply {other:?}"),
            Err(ClientError::Timeout { .. }) => {}
            Err(e) => panic!("n{id}: {e}"),
        }
    }
    panic!("n{id}: submit loop exhausted its steps");
}

/// Polls every node until each reports `total` delivered and committed; returns the statuses.
pub fn wait_for_total(addrs: &[SocketAddr], total: u64, deadline: Duration) -> Vec<NodeStatus> {
    let mut statuses: Vec<Option<NodeStatus>> = vec![None; addrs.len()];
    let mut clients: Vec<Option<Client>> = addrs.iter().map(|_| None).collect();
    wait_until(
        &format!("every node to deliver {total}"),
        Duration::from_millis(100),
        10_000,
        deadline,
        || {
            for ((addr, client), status) in addrs.iter().zip(&mut clients).zip(&mut statuses) {
                if client.is_none() {
                    *client = self::client(*addr, Duration::from_secs(1)).ok();
                }
                match client.as_mut().map(Client::status) {
                    Some(Ok(s)) => *status = Some(s),
                    _ => *client = None,
                }
            }
            statuses
                .iter()
                .all(|s| s.as_ref().is_some_and(|s| s.delivered == total && s.committed_upto == total))
        },
    );
    statuses.into_iter().map(Option::unwrap).collect()
}

/// The status of the node at `addr`, asked over a fresh connection; `None` if it does not answer.
pub fn status(addr: SocketAddr) -> Option<NodeStatus> {
    client(addr, Duration::from_secs(1)).ok()?.status().ok()
}

/// Polls the node at `addr` every millisecond until `changed` holds for its status; returns how
/// long that took from `since`. Bounded by a step count and `deadline`.
pub fn time_until(
    addr: SocketAddr,
    since: Instant,
    deadline: Duration,
    mut changed: impl FnMut(&NodeStatus) -> bool,
) -> Duration {
    let mut client = connect(addr, deadline);
    let until = since + deadline;
    for _ in 0..1_000_000 {
        match client.status() {
            Ok(status) if changed(&status) => return since.elapsed(),
            Ok(_) => {}
            Err(_) => client = connect(addr, deadline),
        }
        assert!(Instant::now() < until, "no change at {addr} within {deadline:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("status polling at {addr} exhausted its steps");
}
