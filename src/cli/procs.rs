//! The demo's child processes: free loopback ports, spawning `harness node`, and a guard that
//! stops every child it started, by pid, whatever way the demo ends.
//!
//! Stopping sends SIGTERM through `kill PID` so a node leaves cleanly, waits a grace period,
//! and only then falls back to `Child::kill`. A pid is signalled only while `try_wait` says the
//! child has not been reaped, so the pid cannot belong to another process yet.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::ids::NodeId;

/// How often a stopping child is checked for exit.
const EXIT_POLL: Duration = Duration::from_millis(20);
/// Most checks while waiting out a grace period.
const EXIT_POLLS_MAX: u32 = 10_000;

/// `count` distinct loopback addresses whose ports were free a moment ago.
///
/// All listeners are held until every port is chosen so no two are equal; another process may
/// still take one before the node binds it, which the node then reports as "address in use".
pub fn free_loopback_ports(count: usize) -> io::Result<Vec<SocketAddr>> {
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<io::Result<_>>()?;
    listeners.iter().map(TcpListener::local_addr).collect()
}

/// One started node process.
struct Running {
    id: NodeId,
    child: Child,
    log: PathBuf,
    exe: PathBuf,
    args: Vec<String>,
}

/// How a child ended.
#[derive(Debug)]
pub struct Ended {
    /// The node.
    pub id: NodeId,
    /// Its exit status, or why none could be obtained.
    pub status: Result<ExitStatus, String>,
    /// Whether it needed `Child::kill` after the grace period.
    pub killed: bool,
}

/// Every child the demo started; dropping it stops those still running.
pub struct Children {
    running: Vec<Running>,
    grace: Duration,
}

impl Children {
    /// No children yet; `grace` is how long a child may take to exit after SIGTERM.
    pub fn new(grace: Duration) -> Children {
        Children { running: Vec::new(), grace }
    }

    /// Starts `exe args` as node `id`, its stderr to `log`, with `RUST_LOG=warn`.
    pub fn spawn(&mut self, exe: &Path, id: NodeId, args: &[String], log: &Path) -> io::Result<()> {
        if self.running.iter().any(|r| r.id == id) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{id} is already running")));
        }
        let stderr = File::create(log)?;
        let child = Command::new(exe)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        self.running.push(Running {
            id,
            child,
            log: log.to_path_buf(),
            exe: exe.to_path_buf(),
            args: args.to_vec(),
        });
        Ok(())
    }

    /// Kills node `id` with SIGKILL (by its pid, through `Child::kill`) and reaps it. Returns
    /// the exe and arguments it ran with, for `restart`.
    pub fn kill(&mut self, id: NodeId) -> io::Result<(PathBuf, Vec<String>)> {
        let at = self.running.iter().position(|r| r.id == id);
        let at = at.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{id} is not running")))?;
        let mut r = self.running.remove(at);
        // An already exited child is reaped below without being signalled.
        if let Ok(None) = r.child.try_wait() {
            r.child.kill()?;
        }
        r.child.wait()?;
        Ok((r.exe, r.args))
    }

    /// Starts node `id` again with the arguments it had, its stderr to `log`.
    pub fn restart(
        &mut self,
        id: NodeId,
        (exe, args): &(PathBuf, Vec<String>),
        log: &Path,
    ) -> io::Result<()> {
        self.spawn(exe, id, args, log)
    }

    /// The first child that has exited already, with its log file, if any did.
    pub fn first_exited(&mut self) -> Option<(NodeId, String, PathBuf)> {
        self.running.iter_mut().find_map(|r| match r.child.try_wait() {
            Ok(Some(status)) => Some((r.id, status.to_string(), r.log.clone())),
            Ok(None) => None,
            Err(e) => Some((r.id, e.to_string(), r.log.clone())),
        })
    }

    /// Stops every child: SIGTERM, the grace period, then `Child::kill`. Returns how each
    /// ended; afterwards the guard holds nothing.
    pub fn stop_all(&mut self) -> Vec<Ended> {
        for r in &mut self.running {
            if let Ok(None) = r.child.try_wait() {
                terminate(r.child.id());
            }
        }
        let deadline = Instant::now() + self.grace;
        let mut ended: Vec<Option<Ended>> = self.running.iter().map(|_| None).collect();
        for _ in 0..EXIT_POLLS_MAX {
            for (r, slot) in self.running.iter_mut().zip(ended.iter_mut()).filter(|(_, s)| s.is_none()) {
                match r.child.try_wait() {
                    Ok(Some(status)) => *slot = Some(Ended { id: r.id, status: Ok(status), killed: false }),
                    Ok(None) => {}
                    Err(e) => *slot = Some(Ended { id: r.id, status: Err(e.to_string()), killed: false }),
                }
            }
            if ended.iter().all(Option::is_some) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(EXIT_POLL);
        }
        let mut result = Vec::new();
        for (mut r, slot) in self.running.drain(..).zip(ended) {
            result.push(match slot {
                Some(ended) => ended,
                None => {
                    // The grace period is over: the fallback the node cannot refuse.
                    let _ = r.child.kill();
                    let status = r.child.wait().map_err(|e| e.to_string());
                    Ended { id: r.id, status, killed: true }
                }
            });
        }
        result
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if !self.running.is_empty() {
            self.stop_all();
        }
    }
}

/// Sends SIGTERM to `pid` with the `kill` utility (std has no signal API and the crate denies
/// unsafe code). A failure is ignored: the grace period's fallback kills the child anyway.
fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_loopback_addresses() {
        let addrs = free_loopback_ports(8).unwrap();
        let mut ports: Vec<u16> = addrs.iter().map(SocketAddr::port).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 8);
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn children_stop_on_sigterm_and_a_dropped_guard_stops_the_rest() {
        let dir = std::env::temp_dir().join(format!("harness-procs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut children = Children::new(Duration::from_secs(5));
        let sleep = Path::new("/bin/sleep");
        children.spawn(sleep, NodeId(1), &["30".to_string()], &dir.join("1.log")).unwrap();
        children.spawn(sleep, NodeId(2), &["30".to_string()], &dir.join("2.log")).unwrap();
        assert!(children.first_exited().is_none());
        let started = Instant::now();
        let ended = children.stop_all();
        assert!(started.elapsed() < Duration::from_secs(5), "SIGTERM, not the fallback, stopped them");
        assert_eq!(ended.len(), 2);
        assert!(ended.iter().all(|e| !e.killed && e.status.as_ref().is_ok_and(|s| !s.success())));
        // A killed child is reaped at once; restarting it runs the same command again.
        let mut one = Children::new(Duration::from_secs(5));
        one.spawn(sleep, NodeId(4), &["30".to_string()], &dir.join("4.log")).unwrap();
        let command = one.kill(NodeId(4)).unwrap();
        assert_eq!(command.1, vec!["30".to_string()]);
        assert!(one.kill(NodeId(4)).is_err(), "nothing left to kill");
        one.restart(NodeId(4), &command, &dir.join("4b.log")).unwrap();
        assert!(one.restart(NodeId(4), &command, &dir.join("4c.log")).is_err(), "already running");
        assert_eq!(one.stop_all().len(), 1);
        // A guard dropped while a child runs stops it too.
        let mut guard = Children::new(Duration::from_secs(5));
        guard.spawn(sleep, NodeId(3), &["30".to_string()], &dir.join("3.log")).unwrap();
        drop(guard);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
