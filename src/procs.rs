//! Child processes of the demo, the benchmarks and the tests: free loopback ports, and one guard
//! that signals, kills and stops every process it started by pid, whatever way the caller ends.
//!
//! Stopping resumes a paused child, sends SIGTERM so a node leaves cleanly, waits a grace period
//! and only then falls back to SIGKILL. A pid is signalled only while `try_wait` says the child
//! has not been reaped, so the pid cannot belong to another process yet. Signals go through
//! `nix` (already in the tree for `ctrlc`), not a spawned `kill`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How often a stopping child is checked for exit.
const EXIT_POLL: Duration = Duration::from_millis(20);
/// Most checks while waiting out a grace period.
const EXIT_POLLS_MAX: u32 = 10_000;
/// The lowest port `free_loopback_ports` hands out: below it live well-known services.
const PORT_LOW: u16 = 10_000;

/// `count` distinct loopback addresses whose ports were free a moment ago and were never handed
/// out before by this process.
///
/// The ports come from below the kernel's ephemeral range, so between this check and a node's
/// own bind no outgoing connection or `bind(:0)` (a proxy, a client) can take them. Every caller
/// in a process shares one registry, because threads running side by side (the tests) would
/// otherwise hand out one port twice and two rings would dial into each other; each process
/// starts at its own offset, so processes running side by side rarely meet.
pub fn free_loopback_ports(count: usize) -> io::Result<Vec<SocketAddr>> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let high = ephemeral_low().saturating_sub(1).max(PORT_LOW + 1000);
    let span = u32::from(high - PORT_LOW);
    let start = std::process::id().wrapping_mul(7919) % span;
    let mut listeners = Vec::with_capacity(count);
    for step in 0..span {
        if listeners.len() == count {
            break;
        }
        let port = PORT_LOW + ((start + step) % span) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            handed_out.insert(port);
            listeners.push(listener);
        }
    }
    if listeners.len() < count {
        let problem = format!("no {count} free loopback ports below the ephemeral range");
        return Err(io::Error::new(io::ErrorKind::AddrNotAvailable, problem));
    }
    listeners.iter().map(TcpListener::local_addr).collect()
}

/// The first port of the kernel's ephemeral range (Linux), or the IANA default elsewhere.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(49_152)
}

/// How a child ended.
#[derive(Debug)]
pub struct Ended<K> {
    /// The child's key.
    pub key: K,
    /// Its exit status, or why none could be obtained.
    pub status: Result<ExitStatus, String>,
    /// Whether it needed SIGKILL after the grace period.
    pub killed: bool,
}

/// Every child a caller started, by key (a node id, a host number); dropping it stops those
/// still running.
pub struct ProcessGroup<K: Ord + Copy + Display> {
    children: BTreeMap<K, Child>,
    /// Children stopped with SIGSTOP: resumed before SIGTERM, which they could not act on.
    paused: BTreeSet<K>,
    grace: Duration,
}

impl<K: Ord + Copy + Display> ProcessGroup<K> {
    /// No children yet; `grace` is how long a child may take to exit after SIGTERM.
    pub fn new(grace: Duration) -> ProcessGroup<K> {
        ProcessGroup { children: BTreeMap::new(), paused: BTreeSet::new(), grace }
    }

    /// Starts `command` as the child `key`.
    pub fn spawn(&mut self, key: K, mut command: Command) -> io::Result<()> {
        if self.children.contains_key(&key) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{key} is already running")));
        }
        let child = command.spawn()?;
        self.children.insert(key, child);
        Ok(())
    }

    /// Whether `key` was started and not yet killed or stopped (it may have exited on its own).
    pub fn contains(&self, key: K) -> bool {
        self.children.contains_key(&key)
    }

    /// The keys of the children started and not yet killed or stopped.
    pub fn keys(&self) -> Vec<K> {
        self.children.keys().copied().collect()
    }

    /// The pid of `key` while it runs (started, not exited).
    pub fn pid(&mut self, key: K) -> Option<u32> {
        let child = self.children.get_mut(&key)?;
        matches!(child.try_wait(), Ok(None)).then(|| child.id())
    }

    /// Sends `signal` to `key` by its pid; an error if it is not running.
    pub fn signal(&mut self, key: K, signal: Signal) -> io::Result<()> {
        let pid = self.pid(key).ok_or_else(|| not_running(key))?;
        send(pid, signal)?;
        match signal {
            Signal::SIGSTOP => {
                self.paused.insert(key);
            }
            Signal::SIGCONT => {
                self.paused.remove(&key);
            }
            _ => {}
        }
        Ok(())
    }

    /// Pauses `key` with SIGSTOP.
    pub fn pause(&mut self, key: K) -> io::Result<()> {
        self.signal(key, Signal::SIGSTOP)
    }

    /// Resumes `key` with SIGCONT.
    pub fn resume(&mut self, key: K) -> io::Result<()> {
        self.signal(key, Signal::SIGCONT)
    }

    /// Kills `key` with SIGKILL and reaps it; `spawn` may start it again.
    pub fn kill(&mut self, key: K) -> io::Result<ExitStatus> {
        let mut child = self.children.remove(&key).ok_or_else(|| not_running(key))?;
        self.paused.remove(&key);
        // An already exited child is reaped below without being signalled.
        if let Ok(None) = child.try_wait() {
            child.kill()?;
        }
        child.wait()
    }

    /// The first child that has exited on its own, with its status, if any did. It stays in the
    /// group (its status is kept) until killed or stopped.
    pub fn first_exited(&mut self) -> Option<(K, Result<ExitStatus, String>)> {
        self.children.iter_mut().find_map(|(&key, child)| match child.try_wait() {
            Ok(Some(status)) => Some((key, Ok(status))),
            Ok(None) => None,
            Err(e) => Some((key, Err(e.to_string()))),
        })
    }

    /// Stops every child: SIGCONT for a paused one, SIGTERM, the grace period, then SIGKILL.
    /// Returns how each ended; afterwards the group holds nothing.
    pub fn stop_all(&mut self) -> Vec<Ended<K>> {
        for key in std::mem::take(&mut self.paused) {
            if let Some(pid) = self.pid(key) {
                let _ = send(pid, Signal::SIGCONT);
            }
        }
        for key in self.keys() {
            if let Some(pid) = self.pid(key) {
                // A failure is left to the fallback below, which the child cannot refuse.
                let _ = send(pid, Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + self.grace;
        let mut ended: BTreeMap<K, Result<ExitStatus, String>> = BTreeMap::new();
        for _ in 0..EXIT_POLLS_MAX {
            for (&key, child) in &mut self.children {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        ended.entry(key).or_insert(Ok(status));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        ended.entry(key).or_insert(Err(e.to_string()));
                    }
                }
            }
            if ended.len() == self.children.len() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(EXIT_POLL);
        }
        let mut result = Vec::new();
        for (key, mut child) in std::mem::take(&mut self.children) {
            result.push(match ended.remove(&key) {
                Some(status) => Ended { key, status, killed: false },
                None => {
                    let _ = child.kill();
                    let status = child.wait().map_err(|e| e.to_string());
                    Ended { key, status, killed: true }
                }
            });
        }
        result
    }
}

impl<K: Ord + Copy + Display> Drop for ProcessGroup<K> {
    fn drop(&mut self) {
        if !self.children.is_empty() {
            self.stop_all();
        }
    }
}

fn not_running(key: impl Display) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{key} is not running"))
}

/// Sends `signal` to `child` by its pid, only while it has not been reaped (so the pid is still
/// its own): for a caller that holds one `Child` outside a group.
pub fn signal_child(child: &mut Child, signal: Signal) -> io::Result<()> {
    match child.try_wait()? {
        None => send(child.id(), signal),
        Some(status) => Err(io::Error::other(format!("pid {} already exited ({status})", child.id()))),
    }
}

fn send(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::other(format!("pid {pid} out of range")))?;
    kill(Pid::from_raw(pid), signal).map_err(io::Error::from)
}

/// CPU seconds `pid` has used so far (every thread, from `/proc/PID/task/*/schedstat`); 0 when
/// unreadable.
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
    proc_status_kib(pid, "VmRSS:")
}

/// `VmHWM` (the peak resident set) of `pid` in KiB; 0 when unreadable.
pub fn process_peak_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleep_30() -> Command {
        let mut command = Command::new("/bin/sleep");
        command.arg("30");
        command
    }

    #[test]
    fn ports_are_distinct_loopback_addresses_never_handed_out_twice() {
        let first = free_loopback_ports(8).unwrap();
        let second = free_loopback_ports(8).unwrap();
        let mut ports: Vec<u16> = first.iter().chain(&second).map(SocketAddr::port).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 16);
        assert!(first.iter().all(|a| a.ip().is_loopback() && a.port() >= PORT_LOW));
    }

    #[test]
    fn children_stop_on_sigterm_and_a_dropped_group_stops_the_rest() {
        let mut group = ProcessGroup::new(Duration::from_secs(5));
        group.spawn(1u16, sleep_30()).unwrap();
        group.spawn(2u16, sleep_30()).unwrap();
        assert!(group.spawn(2u16, sleep_30()).is_err(), "already running");
        assert!(group.first_exited().is_none());
        group.pause(2).unwrap();
        let started = Instant::now();
        let ended = group.stop_all();
        assert!(started.elapsed() < Duration::from_secs(5), "SIGTERM, not the fallback, stopped them");
        assert_eq!(ended.len(), 2);
        assert!(ended.iter().all(|e| !e.killed && e.status.as_ref().is_ok_and(|s| !s.success())));
        // A killed child is reaped at once and may be started again.
        let mut one = ProcessGroup::new(Duration::from_secs(5));
        one.spawn(4u16, sleep_30()).unwrap();
        assert!(one.pid(4).is_some());
        assert!(one.kill(4).is_ok_and(|s| !s.success()));
        assert!(one.kill(4).is_err(), "nothing left to kill");
        assert!(one.signal(4, Signal::SIGTERM).is_err(), "nothing left to signal");
        one.spawn(4u16, sleep_30()).unwrap();
        drop(one);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(20) {
            std::hint::black_box(0u64);
        }
        assert!(process_cpu_seconds(pid) > 0.0);
        assert!(process_rss_kib(pid) > 0);
        assert!(process_peak_rss_kib(pid) >= process_rss_kib(pid));
        assert_eq!(process_rss_kib(u32::MAX), 0, "no such process");
    }
}
