//! A linearizability run on loopback: start the members, start the recording client processes,
//! apply the nemesis schedule to the member processes, collect every client's history, check
//! it, and summarise (operations, faults, verdict). `harness-check run` and `make soak` use it;
//! the network-namespace test drives `Clients` and the schedule against its own hosts.
//!
//! Loopback has no network to cut, so this runner applies process faults only (kill, pause,
//! restart); partitions, bridges and flapping links need namespaces (tests/netns).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::history::{self, Operation};
use super::nemesis::{self, Action, FaultKind, Kinds, Target};
use super::{check, counts, Counts, Verdict, BUDGET_DEFAULT};
use crate::bench::cluster::Cluster;
use crate::ids::RingMode;
use crate::json::Object;

/// The recording clients' settings.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Client processes.
    pub clients: usize,
    /// Keys they share.
    pub keys: u64,
    /// How long they call operations.
    pub duration: Duration,
    /// Seeds their choices (client `i` uses `seed + i`).
    pub seed: u64,
    /// Reads served stale but recorded as linearizable: the broken read path.
    pub stale_reads: bool,
    /// Bounds one request to one member.
    pub request_timeout: Duration,
    /// Bounds one operation; after it the outcome is unknown.
    pub op_deadline: Duration,
    /// Pause between a client's operations.
    pub think: Duration,
}

/// Running client processes, each writing its history to a file (a pipe would fill and stall
/// the client until the end of the run).
pub struct Clients {
    children: Vec<(Child, PathBuf)>,
    deadline: Instant,
}

impl Clients {
    /// Starts `settings.clients` processes of `exe client` against `addrs` (each starting at a
    /// different member).
    pub fn spawn(
        exe: &std::path::Path,
        addrs: &[SocketAddr],
        settings: &ClientSettings,
    ) -> Result<Clients, String> {
        let mut clients = Clients {
            children: Vec::new(),
            deadline: Instant::now() + settings.duration + settings.op_deadline + Duration::from_secs(10),
        };
        let dir = std::env::temp_dir().join(format!("harness-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        for i in 0..settings.clients {
            let path = dir.join(format!("client-{}.history", i + 1));
            let file = std::fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
            let mut order: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            order.rotate_left(i % addrs.len().max(1));
            let ms = |d: Duration| d.as_millis().to_string();
            let mut command = Command::new(exe);
            command
                .arg("client")
                .args(["--cluster", &order.join(",")])
                .args(["--client", &(i + 1).to_string(), "--keys", &settings.keys.to_string()])
                .args([
                    "--duration-ms",
                    &ms(settings.duration),
                    "--seed",
                    &(settings.seed + i as u64).to_string(),
                ])
                .args(["--request-timeout-ms", &ms(settings.request_timeout)])
                .args(["--op-deadline-ms", &ms(settings.op_deadline), "--think-ms", &ms(settings.think)]);
            if settings.stale_reads {
                command.arg("--stale-reads");
            }
            let child = command
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::from(file))
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("start {} client: {e}", exe.display()))?;
            clients.children.push((child, path));
        }
        Ok(clients)
    }

    /// Waits for every client (killing one past the deadline) and merges their histories.
    pub fn collect(self) -> Result<Vec<Operation>, String> {
        let mut history = Vec::new();
        let mut problems = Vec::new();
        for (i, (mut child, path)) in self.children.into_iter().enumerate() {
            // Bounded by the deadline; a client past it is killed and its history kept.
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < self.deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                problems.push(format!("client {} did not finish in time", i + 1));
            }
            let output = child.wait_with_output().map_err(|e| format!("client {}: {e}", i + 1))?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                problems.push(format!("client {} failed ({}): {}", i + 1, output.status, stderr.trim()));
            }
            let text = std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
            history.extend(history::parse(&text).map_err(|e| format!("client {}: {e}", i + 1))?);
            let _ = std::fs::remove_file(&path);
        }
        if problems.is_empty() {
            Ok(history)
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Applies `schedule` to `target`, each action at its offset from `start`; returns how many
/// actions were applied.
pub fn apply_schedule(
    schedule: &nemesis::Schedule,
    target: &mut impl Target,
    start: Instant,
) -> Result<usize, String> {
    for (at, action) in &schedule.actions {
        let due = start + *at;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        target.apply(action)?;
    }
    Ok(schedule.actions.len())
}

/// What a whole run does.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The `harness` executable (members).
    pub harness: PathBuf,
    /// The `harness-check` executable (client processes).
    pub harness_check: PathBuf,
    /// Members.
    pub nodes: usize,
    /// The clients.
    pub clients: ClientSettings,
    /// The members' token timeout.
    pub token_timeout: Duration,
    /// Seeds the nemesis.
    pub seed: u64,
    /// The faults to draw.
    pub kinds: Kinds,
    /// Where to write the merged history, if anywhere.
    pub history_out: Option<PathBuf>,
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Members.
    pub nodes: usize,
    /// Operation counts.
    pub counts: Counts,
    /// Fault episodes by kind.
    pub episodes: Vec<(FaultKind, usize)>,
    /// Nemesis actions applied.
    pub actions: usize,
    /// The checker's verdict.
    pub verdict: Verdict,
    /// Wall time of the run and of the check.
    pub run_seconds: f64,
    /// Time the check took.
    pub check_seconds: f64,
}

impl RunSummary {
    /// One JSON line: operations, faults, verdict.
    pub fn json(&self) -> String {
        let faults = self.episodes.iter().fold(Object::new(), |o, (k, n)| o.uint(k.name(), *n as u64));
        Object::new()
            .uint("nodes", self.nodes as u64)
            .uint("ops", self.counts.ops as u64)
            .uint("completed", self.counts.completed as u64)
            .uint("indeterminate", self.counts.indeterminate as u64)
            .uint("failed_reads", self.counts.failed_reads as u64)
            .uint("keys", self.counts.keys as u64)
            .raw("faults", &faults.finish())
            .uint("nemesis_actions", self.actions as u64)
            .str("verdict", self.verdict.word())
            .fixed("run_s", self.run_seconds, 1)
            .fixed("check_s", self.check_seconds, 2)
            .finish()
    }
}

/// Counts episodes by kind, in kind order.
pub fn tally(episodes: &[FaultKind]) -> Vec<(FaultKind, usize)> {
    FaultKind::ALL
        .iter()
        .map(|&k| (k, episodes.iter().filter(|&&e| e == k).count()))
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// Member processes on loopback as a nemesis target.
struct Loopback<'a> {
    cluster: &'a mut Cluster,
}

impl Target for Loopback<'_> {
    fn apply(&mut self, action: &Action) -> Result<(), String> {
        log::info!("nemesis: {action:?}");
        match action {
            Action::Kill(i) => {
                self.cluster.kill(*i);
                Ok(())
            }
            Action::Start(i) => self.cluster.restart(*i),
            Action::Stop(i) => self.cluster.signal(*i, "STOP"),
            Action::Cont(i) => self.cluster.signal(*i, "CONT"),
            Action::Split(..) | Action::Cut(..) | Action::Mend(..) | Action::HealNetwork => Err(
                "network faults need network namespaces (tests/netns); loopback runs kill, pause, restart"
                    .into(),
            ),
        }
    }
}

/// Runs members, clients and nemesis on loopback and checks the history.
pub fn run(options: &RunOptions) -> Result<RunSummary, String> {
    if let Some(kind) = options.kinds.0.iter().find(|k| k.needs_network()) {
        return Err(format!(
            "fault {} needs network namespaces; on loopback use kill,pause,restart",
            kind.name()
        ));
    }
    let started = Instant::now();
    let mut cluster = Cluster::start(
        &options.harness,
        options.nodes,
        RingMode::Bidirectional,
        Some(options.token_timeout),
    )?;
    cluster.wait_ready(Duration::from_secs(30))?;
    let schedule = nemesis::schedule(
        options.seed,
        &options.kinds,
        options.nodes,
        options.clients.duration,
        options.token_timeout,
    );
    let clients = Clients::spawn(&options.harness_check, &cluster.addrs, &options.clients)?;
    let start = Instant::now();
    let applied = apply_schedule(&schedule, &mut Loopback { cluster: &mut cluster }, start);
    // Whatever happened, every member runs again before the clients finish.
    for i in 0..options.nodes {
        let _ = cluster.restart(i);
        let _ = cluster.signal(i, "CONT");
    }
    let history = clients.collect();
    cluster.stop_all();
    let actions = applied?;
    let history = history?;
    if let Some(path) = &options.history_out {
        let text: String = history.iter().map(|op| format!("{op}\n")).collect();
        std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    let run_seconds = started.elapsed().as_secs_f64();
    let checking = Instant::now();
    let verdict = check(&history, BUDGET_DEFAULT);
    Ok(RunSummary {
        nodes: options.nodes,
        counts: counts(&history),
        episodes: tally(&schedule.episodes),
        actions,
        verdict,
        run_seconds,
        check_seconds: checking.elapsed().as_secs_f64(),
    })
}
