//! A ring of real `harness node` processes on loopback for one measurement: start, wait for
//! the first primary view, signal one member, read each process's CPU time and RSS, and stop
//! every process by pid, also when the measurement fails or panics (the guard's `Drop`).
//!
//! Signals go through the `kill` utility because std has no signal API and the crate denies
//! unsafe code; a pid is signalled only while `try_wait` says the child is not reaped yet, so
//! it cannot belong to another process.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::auth::{Auth, ClusterKey};
use crate::client::Client;
use crate::ids::RingMode;
use crate::wire::NodeStatus;

/// How long a node may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a starting ring or a stopping child is checked.
const POLL: Duration = Duration::from_millis(20);
/// Most checks of one wait.
const POLLS_MAX: u32 = 50_000;

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
    children: Vec<Option<Child>>,
    log_dir: PathBuf,
    /// The executable and the arguments every member shares, to restart one (`restart`).
    exe: PathBuf,
    shared_args: Vec<String>,
}

/// `count` loopback addresses whose ports the kernel just handed out (and that are free again).
pub fn loopback_addrs(count: usize) -> Result<Vec<SocketAddr>, String> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .map_err(|e| format!("allocate loopback ports: {e}"))?;
    Ok(listeners.iter().filter_map(|l| l.local_addr().ok()).collect())
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
        let log_dir = std::env::temp_dir().join(format!("harness-bench-{}-{nodes}", std::process::id()));
        std::fs::create_dir_all(&log_dir).map_err(|e| format!("create {}: {e}", log_dir.display()))?;
        let addrs = loopback_addrs(nodes)?;
        let peers: Vec<String> = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
        let mut shared_args =
            vec!["--peers".to_string(), peers.join(","), "--ring".into(), ring.as_str().into()];
        if let Some(timeout) = token_timeout {
            shared_args.extend(["--token-timeout".to_string(), timeout.as_millis().to_string()]);
        }
        // The guard exists before the first spawn, so a failed spawn stops the earlier ones.
        let mut cluster = Cluster {
            addrs: addrs.clone(),
            auth: None,
            children: Vec::new(),
            log_dir,
            exe: exe.to_path_buf(),
            shared_args,
        };
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
            let child = cluster.spawn(index)?;
            cluster.children.push(Some(child));
        }
        Ok(cluster)
    }

    /// Starts member `index` (0-based), appending to its log.
    fn spawn(&self, index: usize) -> Result<Child, String> {
        let log_path = self.log_dir.join(format!("node-{}.log", index + 1));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("create {}: {e}", log_path.display()))?;
        Command::new(&self.exe)
            .args(["node", "--id", &(index + 1).to_string(), "--listen", &self.addrs[index].to_string()])
            .args(&self.shared_args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {} node: {e}", self.exe.display()))
    }

    /// Starts member `index` again (a new incarnation with the same id) if it is not running.
    pub fn restart(&mut self, index: usize) -> Result<(), String> {
        if self.pid(index).is_some() {
            return Ok(());
        }
        self.kill(index);
        let child = self.spawn(index)?;
        self.children[index] = Some(child);
        Ok(())
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

    /// The status of member `index` (0-based) over a fresh connection.
    pub fn status(&self, index: usize) -> Result<NodeStatus, String> {
        let mut client = Client::connect_with(self.addrs[index], Duration::from_secs(2), self.auth.as_ref())
            .map_err(|e| e.to_string())?;
        client.status().map_err(|e| e.to_string())
    }

    /// The pid of member `index` while it runs.
    pub fn pid(&mut self, index: usize) -> Option<u32> {
        let child = self.children.get_mut(index)?.as_mut()?;
        matches!(child.try_wait(), Ok(None)).then(|| child.id())
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) to member `index`, if it still runs.
    pub fn signal(&mut self, index: usize, signal: &str) -> Result<(), String> {
        let pid = self.pid(index).ok_or(format!("n{} is not running", index + 1))?;
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("run kill: {e}"))?;
        status.success().then_some(()).ok_or(format!("kill -{signal} {pid} failed: {status}"))
    }

    /// SIGKILLs member `index` and reaps it.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children.get_mut(index).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// CPU seconds used so far by every running member (0 for a stopped one).
    pub fn cpu_seconds(&mut self) -> Vec<f64> {
        (0..self.children.len()).map(|i| self.pid(i).map_or(0.0, process_cpu_seconds)).collect()
    }

    /// Resident memory of every running member, in KiB.
    pub fn rss_kib(&mut self) -> Vec<u64> {
        (0..self.children.len()).map(|i| self.pid(i).map_or(0, process_rss_kib)).collect()
    }

    fn first_exited(&mut self) -> Option<usize> {
        self.children.iter_mut().position(|c| c.as_mut().is_some_and(|c| !matches!(c.try_wait(), Ok(None))))
    }

    /// Stops every member: SIGTERM (after SIGCONT, for a paused one), the grace period, then
    /// SIGKILL. Logs are removed unless a member had to be killed.
    pub fn stop_all(&mut self) {
        for index in 0..self.children.len() {
            let _ = self.signal(index, "CONT");
            let _ = self.signal(index, "TERM");
        }
        let until = Instant::now() + STOP_GRACE;
        for _ in 0..POLLS_MAX {
            if self.first_running().is_none() || Instant::now() >= until {
                break;
            }
            std::thread::sleep(POLL);
        }
        let mut killed = false;
        for index in 0..self.children.len() {
            if self.pid(index).is_some() {
                killed = true;
                eprintln!("harness-bench: n{} ignored SIGTERM; killing it", index + 1);
            }
            self.kill(index);
        }
        if !killed {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }

    fn first_running(&mut self) -> Option<usize> {
        (0..self.children.len()).find(|&i| self.pid(i).is_some())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// CPU time of every thread of `pid`, from each `/proc/PID/task/TID/schedstat` (nanoseconds on
/// the CPU; finer than the 10 ms ticks of `/proc/PID/stat`). 0 when unreadable.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    let mut nanos: u64 = 0;
    for task in tasks.flatten().take(10_000) {
        let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        nanos += text.split_whitespace().next().and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    }
    nanos as f64 / 1e9
}

/// `VmRSS` of `pid` in KiB, from `/proc/PID/status`; 0 when unreadable.
pub fn process_rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        let spin: u64 = (0..2_000_000u64).fold(0, |a, x| a.wrapping_add(x * x));
        assert!(spin > 0);
        assert!(process_cpu_seconds(pid) > 0.0);
        assert!(process_rss_kib(pid) > 0);
        assert_eq!(process_rss_kib(u32::MAX), 0);
    }
}
