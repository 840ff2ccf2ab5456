//! Helpers shared by the process tests: loopback ports, a guard that stops every `harness node`
//! it started by pid (and can kill -9, pause and resume one), bounded waits, a pipelined
//! submitter and status polling.
//!
//! Each test binary uses a subset of these, hence the `dead_code` allowance below.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use harness::auth::Auth;
use harness::client::{Client, ClientError};
use harness::procs::ProcessGroup;
use harness::wire::{ClientReply, ErrorCode, NodeStatus};
use harness::{NodeId, RingMode};

/// The binary under test.
pub const HARNESS: &str = env!("CARGO_BIN_EXE_harness");
/// How long a stopping node may take before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Broadcasts one submitter keeps outstanding.
pub const WINDOW: usize = 256;

/// The credentials the clients of these helpers prove, by node address: rings of one test
/// binary run side by side, keyed and open, and their ports are never handed out twice.
static CLIENT_AUTH: Mutex<BTreeMap<SocketAddr, Auth>> = Mutex::new(BTreeMap::new());

/// Makes every client these helpers open to one of `addrs` prove `auth` (a ring whose nodes
/// run with one cluster key).
pub fn use_client_auth(addrs: &[SocketAddr], auth: &Auth) {
    let mut table = CLIENT_AUTH.lock().unwrap_or_else(|e| e.into_inner());
    for addr in addrs {
        table.insert(*addr, auth.clone());
    }
}

/// A client connection with the credentials registered for `addr`, if any.
pub fn client(addr: SocketAddr, timeout: Duration) -> Result<Client, ClientError> {
    let auth = CLIENT_AUTH.lock().unwrap_or_else(|e| e.into_inner()).get(&addr).cloned();
    Client::connect_with(addr, timeout, auth.as_ref())
}

/// Sets up logging once per test binary (STYLE.md, Logging).
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = env_logger::builder().is_test(true).try_init();
    });
}

/// `count` distinct loopback addresses, never handed out before in this test binary
/// (`harness::procs::free_loopback_ports`).
pub fn free_ports(count: usize) -> Vec<SocketAddr> {
    harness::procs::free_loopback_ports(count).unwrap()
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
    // Pipes hold 64 KiB: stdin is written and the output read on their own threads, so a child
    // with a lot to read or print never waits on this one. Dropping stdin after writing closes
    // it, so a child reading it sees the end; a child that stops reading early (a refused value)
    // makes the write fail, which is fine.
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id();
    let mut status = None;
    wait_until(
        &format!("harness {args:?} (pid {pid}) to exit"),
        Duration::from_millis(10),
        100_000,
        deadline,
        || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        },
    );
    writer.join().unwrap();
    Output { status: status.unwrap(), stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
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
    /// The peer list names only the first this many members (the seeds of a cluster that grows
    /// at run time, docs/PROTOCOL.md §5.9); all of them when `None`.
    pub seeds: Option<usize>,
    /// Members started with `--join` and these addresses instead of a peer list.
    pub joining: BTreeMap<u16, Vec<SocketAddr>>,
    /// Members started with neither a peer list nor `--join`: a member added at run time
    /// restarting from its data directory alone (docs/PROTOCOL.md §5.9).
    pub from_files: std::collections::BTreeSet<u16>,
    children: ProcessGroup<u16>,
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
            seeds: None,
            joining: BTreeMap::new(),
            from_files: std::collections::BTreeSet::new(),
            children: ProcessGroup::new(STOP_GRACE),
            log_dir,
        }
    }

    /// Starts member `id` (1-based) with the whole peer list. A restarted member appends to
    /// its stderr log, so one file tells the whole story.
    pub fn start(&mut self, id: u16) {
        let seeds = self.seeds.unwrap_or(self.addrs.len());
        let peers: Vec<String> =
            self.addrs.iter().take(seeds).enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
        let members = match self.joining.get(&id) {
            _ if self.from_files.contains(&id) => Vec::new(),
            Some(join) => {
                let join: Vec<String> = join.iter().map(|a| a.to_string()).collect();
                vec!["--join".to_string(), join.join(",")]
            }
            None => vec!["--peers".to_string(), peers.join(",")],
        };
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
        let mut command = Command::new(HARNESS);
        command
            .args(["node", "--id", &id.to_string(), "--listen", &addr])
            .args(members)
            .args(["--ring", self.ring.as_str()])
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.children.spawn(id, command).unwrap_or_else(|e| panic!("start n{id}: {e}"));
    }

    /// The process id of running member `id`.
    pub fn pid(&mut self, id: u16) -> u32 {
        self.children.pid(id).unwrap_or_else(|| panic!("n{id} is not running"))
    }

    /// Whether member `id` runs (started and not exited; an exited one is reaped here).
    pub fn running(&mut self, id: u16) -> bool {
        self.children.pid(id).is_some()
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

    /// Kills member `id` with SIGKILL by its pid and reaps it; `start` may run it again.
    pub fn kill(&mut self, id: u16) {
        self.children.kill(id).unwrap_or_else(|e| panic!("kill -9 n{id}: {e}"));
    }

    /// Stops member `id` as an operator would, with SIGTERM by its pid (a clean leave), and
    /// reaps it; it is killed if it has not stopped within the grace period. `start` may run it
    /// again.
    pub fn stop(&mut self, id: u16) {
        self.children
            .signal(id, nix::sys::signal::Signal::SIGTERM)
            .unwrap_or_else(|e| panic!("SIGTERM n{id}: {e}"));
        let until = Instant::now() + STOP_GRACE;
        for _ in 0..1000 {
            if !self.running(id) || Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.children.kill(id);
    }

    /// Pauses member `id` with SIGSTOP.
    pub fn pause(&mut self, id: u16) {
        self.children.pause(id).unwrap_or_else(|e| panic!("SIGSTOP n{id}: {e}"));
    }

    /// Resumes member `id` with SIGCONT.
    pub fn resume(&mut self, id: u16) {
        self.children.resume(id).unwrap_or_else(|e| panic!("SIGCONT n{id}: {e}"));
    }

    /// Stops every node: SIGTERM by pid, then SIGKILL after the grace period. Returns each
    /// node's exit status (`None`: it had to be killed).
    pub fn stop_all(&mut self) -> BTreeMap<NodeId, Option<ExitStatus>> {
        let ended = self.children.stop_all();
        ended.into_iter().map(|e| (NodeId(e.key), e.status.ok().filter(|_| !e.killed))).collect()
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
