//! A ring of real `harness node` processes on loopback for one measurement: start, wait for
//! the first primary view, signal one member, read each process's CPU time and RSS, and stop
//! every process by pid, also when the measurement fails or panics (the guard's `Drop`).
//! The processes are a `crate::procs::ProcessGroup`, keyed by member index. To study a
//! measurement, `HARNESS_BENCH_NODE_LOG` sets the members' `RUST_LOG` (default `warn`) and
//! `HARNESS_KEEP_LOGS` keeps their logs. `HARNESS_BENCH_IDLE` gives every member `--idle` (the
//! idle strategy, to compare its latency against its CPU cost in one sitting).

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::auth::{Auth, ClusterKey};
use crate::client::Client;
use crate::config::Durability;
use crate::ids::RingMode;
use crate::procs::{
    free_loopback_ports, process_cpu_seconds, process_peak_rss_kib, process_rss_kib, ProcessGroup,
};
use crate::wire::NodeStatus;

/// How long a node may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The same for a durable member: it finishes the checkpoint it is writing before it exits,
/// which takes seconds per GiB of state.
const DURABLE_STOP_GRACE: Duration = Duration::from_secs(90);
/// Clusters started by this process so far, so each has its own directory.
static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// How often a starting ring or a stopping child is checked.
const POLL: Duration = Duration::from_millis(20);
/// Most checks of one wait.
const POLLS_MAX: u32 = 50_000;

/// The log targets a durable ring's members write at info: checkpoints written and state
/// transfers received.
const DURABLE_LOG: &str =
    "harness::node::driver=info,harness::core::membership::stream=info,harness::core::membership::learn=info";

/// How a benchmark ring protects its links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// No key (the default of every figure but `auth`).
    Open,
    /// `--key-file`: handshakes and a MAC on every record.
    Keyed,
    /// `--key-file --encrypt`: records sealed with ChaCha20-Poly1305.
    Encrypted,
}

impl Security {
    /// The name in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Open => "open",
            Security::Keyed => "key (MAC)",
            Security::Encrypted => "key + encrypt",
        }
    }
}

/// Node processes started for one measurement.
pub struct Cluster {
    /// Member `i + 1` listens on `addrs[i]`.
    pub addrs: Vec<SocketAddr>,
    /// The credentials of a keyed ring (`start_secured`), which its clients must prove.
    pub auth: Option<Auth>,
    children: ProcessGroup<usize>,
    log_dir: PathBuf,
    /// The executable and the arguments every member shares, to restart one (`restart`).
    exe: PathBuf,
    shared_args: Vec<String>,
    /// With `--data-dir`: member `i + 1` keeps its files in `data_root/n{i + 1}`.
    data_root: Option<PathBuf>,
    /// The members' `RUST_LOG`.
    log_filter: String,
}

/// `count` free loopback addresses (`crate::procs::free_loopback_ports`).
pub fn loopback_addrs(count: usize) -> Result<Vec<SocketAddr>, String> {
    free_loopback_ports(count).map_err(|e| format!("allocate loopback ports: {e}"))
}

impl Cluster {
    /// Starts `nodes` members of `ring` with `exe node`; `token_timeout` overrides the default.
    pub fn start(
        exe: &Path,
        nodes: usize,
        ring: RingMode,
        token_timeout: Option<Duration>,
    ) -> Result<Cluster, String> {
        Cluster::start_secured(exe, nodes, ring, token_timeout, Security::Open)
    }

    /// Like `start`, with a fresh cluster key when `security` asks for one.
    pub fn start_secured(
        exe: &Path,
        nodes: usize,
        ring: RingMode,
        token_timeout: Option<Duration>,
        security: Security,
    ) -> Result<Cluster, String> {
        Cluster::start_with(exe, nodes, ring, token_timeout, security, None)
    }

    /// Like `start`, each member with its own `--data-dir` and `durability`; the members log
    /// their checkpoints and state transfers (`DURABLE_LOG`) for `log_lines`.
    pub fn start_durable(
        exe: &Path,
        nodes: usize,
        ring: RingMode,
        durability: Durability,
    ) -> Result<Cluster, String> {
        Cluster::start_with(exe, nodes, ring, None, Security::Open, Some(durability))
    }

    fn start_with(
        exe: &Path,
        nodes: usize,
        ring: RingMode,
        token_timeout: Option<Duration>,
        security: Security,
        durable: Option<Durability>,
    ) -> Result<Cluster, String> {
        let serial = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log_dir =
            std::env::temp_dir().join(format!("harness-bench-{}-{serial}-{nodes}", std::process::id()));
        std::fs::create_dir_all(&log_dir).map_err(|e| format!("create {}: {e}", log_dir.display()))?;
        let addrs = loopback_addrs(nodes)?;
        let peers: Vec<String> = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
        let mut shared_args =
            vec!["--peers".to_string(), peers.join(","), "--ring".into(), ring.as_str().into()];
        if let Some(timeout) = token_timeout {
            shared_args.extend(["--token-timeout".to_string(), timeout.as_millis().to_string()]);
        }
        if let Ok(idle) = std::env::var("HARNESS_BENCH_IDLE") {
            shared_args.extend(["--idle".to_string(), idle]);
        }
        // The guard exists before the first spawn, so a failed spawn stops the earlier ones.
        let mut cluster = Cluster {
            addrs: addrs.clone(),
            auth: None,
            children: ProcessGroup::new(if durable.is_some() { DURABLE_STOP_GRACE } else { STOP_GRACE }),
            log_dir,
            exe: exe.to_path_buf(),
            shared_args,
            data_root: None,
            log_filter: std::env::var("HARNESS_BENCH_NODE_LOG").unwrap_or_else(|_| "warn".into()),
        };
        if let Some(durability) = durable {
            cluster.data_root = Some(cluster.log_dir.join("data"));
            cluster.shared_args.extend(["--durability".to_string(), durability.as_str().to_string()]);
            // The figures of durable rings read checkpoint and transfer times from the logs.
            cluster.log_filter.push_str(&format!(",{DURABLE_LOG}"));
        }
        if security != Security::Open {
            let path = cluster.log_dir.join("cluster.key");
            let _ = std::fs::remove_file(&path);
            let key = ClusterKey::generate()?;
            key.write_new(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            cluster.shared_args.extend(["--key-file".to_string(), path.display().to_string()]);
            let encrypt = security == Security::Encrypted;
            if encrypt {
                cluster.shared_args.push("--encrypt".to_string());
            }
            cluster.auth = Some(Auth::new(&key, crate::cli::DEFAULT_CLUSTER, encrypt));
        }
        for index in 0..addrs.len() {
            cluster.spawn(index)?;
        }
        Ok(cluster)
    }

    /// Starts member `index` (0-based), appending to its log.
    fn spawn(&mut self, index: usize) -> Result<(), String> {
        let log_path = self.log_dir.join(format!("node-{}.log", index + 1));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("create {}: {e}", log_path.display()))?;
        let mut command = Command::new(&self.exe);
        command
            .args(["node", "--id", &(index + 1).to_string(), "--listen", &self.addrs[index].to_string()])
            .args(&self.shared_args)
            .args(
                self.data_dir(index)
                    .map(|dir| ["--data-dir".into(), dir.display().to_string()])
                    .into_iter()
                    .flatten(),
            )
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.children.spawn(index, command).map_err(|e| format!("start {} node: {e}", self.exe.display()))
    }

    /// Where member `index` keeps its files, on a durable ring.
    pub fn data_dir(&self, index: usize) -> Option<PathBuf> {
        self.data_root.as_ref().map(|root| root.join(format!("n{}", index + 1)))
    }

    /// The lines member `index` has logged so far that contain `text`.
    pub fn log_lines(&self, index: usize, text: &str) -> Vec<String> {
        let path = self.log_dir.join(format!("node-{}.log", index + 1));
        let log = std::fs::read_to_string(path).unwrap_or_default();
        log.lines().filter(|line| line.contains(text)).map(str::to_string).collect()
    }

    /// Starts member `index` again (a new incarnation with the same id) if it is not running.
    pub fn restart(&mut self, index: usize) -> Result<(), String> {
        if self.pid(index).is_some() {
            return Ok(());
        }
        // Reaps an exited child, so the key is free for the new one.
        let _ = self.children.kill(index);
        self.spawn(index)
    }

    /// Waits until every member reports a primary view holding all of them.
    pub fn wait_ready(&mut self, deadline: Duration) -> Result<(), String> {
        let until = Instant::now() + deadline;
        let n = self.addrs.len();
        let mut clients: Vec<Option<Client>> = self.addrs.iter().map(|_| None).collect();
        for _ in 0..POLLS_MAX {
            let mut ready = 0;
            for (addr, client) in self.addrs.iter().zip(&mut clients) {
                if client.is_none() {
                    *client = Client::connect_with(*addr, Duration::from_secs(1), self.auth.as_ref()).ok();
                }
                match client.as_mut().map(Client::status) {
                    Some(Ok(s)) if s.primary && s.ring.len() == n => ready += 1,
                    Some(Ok(_)) => {}
                    _ => *client = None,
                }
            }
            if ready == n {
                return Ok(());
            }
            if let Some(i) = self.first_exited() {
                return Err(format!("n{} exited while starting; see {}", i + 1, self.log_dir.display()));
            }
            if Instant::now() >= until {
                break;
            }
            std::thread::sleep(POLL);
        }
        Err(format!("{n} nodes did not form one primary view within {deadline:?}"))
    }

    /// Waits until member `index` reports a primary view holding all members; one poll per
    /// `POLL` over one connection, so timing a large ring's formation costs it little.
    pub fn wait_primary_of_all(&mut self, index: usize, deadline: Duration) -> Result<(), String> {
        let until = Instant::now() + deadline;
        let n = self.addrs.len();
        let mut client = None;
        for _ in 0..POLLS_MAX {
            if client.is_none() {
                client =
                    Client::connect_with(self.addrs[index], Duration::from_secs(1), self.auth.as_ref()).ok();
            }
            match client.as_mut().map(Client::status) {
                Some(Ok(s)) if s.primary && s.ring.len() == n => return Ok(()),
                Some(Ok(_)) => {}
                _ => client = None,
            }
            if let Some(i) = self.first_exited() {
                return Err(format!("n{} exited while starting; see {}", i + 1, self.log_dir.display()));
            }
            if Instant::now() >= until {
                break;
            }
            std::thread::sleep(POLL);
        }
        Err(format!("n{} did not show a primary view of all {n} within {deadline:?}", index + 1))
    }

    /// The status of member `index` (0-based) over a fresh connection.
    pub fn status(&self, index: usize) -> Result<NodeStatus, String> {
        let mut client = Client::connect_with(self.addrs[index], Duration::from_secs(2), self.auth.as_ref())
            .map_err(|e| e.to_string())?;
        client.status().map_err(|e| e.to_string())
    }

    /// The pid of member `index` while it runs.
    pub fn pid(&mut self, index: usize) -> Option<u32> {
        self.children.pid(index)
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) to member `index`, if it still runs.
    pub fn signal(&mut self, index: usize, signal: &str) -> Result<(), String> {
        let signal = match signal {
            "STOP" => Signal::SIGSTOP,
            "CONT" => Signal::SIGCONT,
            "TERM" => Signal::SIGTERM,
            other => return Err(format!("no signal {other} for a member")),
        };
        self.children.signal(index, signal).map_err(|e| format!("n{}: {signal}: {e}", index + 1))
    }

    /// SIGKILLs member `index` and reaps it.
    pub fn kill(&mut self, index: usize) {
        let _ = self.children.kill(index);
    }

    /// CPU seconds used so far by every member (0 for a stopped one).
    pub fn cpu_seconds(&mut self) -> Vec<f64> {
        (0..self.addrs.len()).map(|i| self.pid(i).map_or(0.0, process_cpu_seconds)).collect()
    }

    /// Resident memory of every member, in KiB (0 for a stopped one).
    pub fn rss_kib(&mut self) -> Vec<u64> {
        (0..self.addrs.len()).map(|i| self.pid(i).map_or(0, process_rss_kib)).collect()
    }

    /// Peak resident memory (`VmHWM`) of every member since it started, in KiB (0 for a stopped
    /// one).
    pub fn peak_rss_kib(&mut self) -> Vec<u64> {
        (0..self.addrs.len()).map(|i| self.pid(i).map_or(0, process_peak_rss_kib)).collect()
    }

    fn first_exited(&mut self) -> Option<usize> {
        self.children.first_exited().map(|(index, _)| index)
    }

    /// Stops every member: SIGTERM (after SIGCONT, for a paused one), the grace period, then
    /// SIGKILL. Data directories are always removed (they can hold gigabytes); logs are kept if a
    /// member had to be killed.
    pub fn stop_all(&mut self) {
        let mut killed = false;
        for ended in self.children.stop_all() {
            if ended.killed {
                killed = true;
                eprintln!("harness-bench: n{} ignored SIGTERM; killing it", ended.key + 1);
            }
        }
        if let Some(root) = &self.data_root {
            let _ = std::fs::remove_dir_all(root);
        }
        if !killed && std::env::var_os("HARNESS_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
