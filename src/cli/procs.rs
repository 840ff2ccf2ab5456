//! The demo's child processes: `harness node` started with the arguments of its id, killed and
//! restarted with the same ones, and stopped by pid whatever way the demo ends
//! (`crate::procs::ProcessGroup` does the signalling).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ids::NodeId;
use crate::procs::{Ended, ProcessGroup};

/// Every node the demo started; dropping it stops those still running.
pub struct Children {
    group: ProcessGroup<NodeId>,
    /// The exe, arguments and stderr file of each node started, for `restart` and reports.
    started: BTreeMap<NodeId, (PathBuf, Vec<String>, PathBuf)>,
}

impl Children {
    /// No children yet; `grace` is how long a child may take to exit after SIGTERM.
    pub fn new(grace: Duration) -> Children {
        Children { group: ProcessGroup::new(grace), started: BTreeMap::new() }
    }

    /// Starts `exe args` as node `id`, its stderr to `log`, with `RUST_LOG=warn`.
    pub fn spawn(&mut self, exe: &Path, id: NodeId, args: &[String], log: &Path) -> io::Result<()> {
        let mut command = Command::new(exe);
        command
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log)?);
        self.group.spawn(id, command)?;
        self.started.insert(id, (exe.to_path_buf(), args.to_vec(), log.to_path_buf()));
        Ok(())
    }

    /// Kills node `id` with SIGKILL and reaps it. Returns the exe and arguments it ran with,
    /// for `restart`.
    pub fn kill(&mut self, id: NodeId) -> io::Result<(PathBuf, Vec<String>)> {
        self.group.kill(id)?;
        let (exe, args, _) = self.started.get(&id).cloned().ok_or_else(|| io::Error::other("not started"))?;
        Ok((exe, args))
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
        let (id, status) = self.group.first_exited()?;
        let log = self.started.get(&id).map(|(_, _, log)| log.clone()).unwrap_or_default();
        Some((id, status.map_or_else(|e| e, |s| s.to_string()), log))
    }

    /// Stops every child: SIGTERM, the grace period, then SIGKILL. Returns how each ended;
    /// afterwards the guard holds nothing.
    pub fn stop_all(&mut self) -> Vec<Ended<NodeId>> {
        self.group.stop_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
