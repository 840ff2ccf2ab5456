//! Linearizability of what clients see (docs/PROTOCOL.md §8.1), checked by `harness::check` over
//! histories recorded by real client processes (`harness-check client`) while a nemesis faults
//! real `harness node` processes:
//! - on loopback, a few seconds of kill -9, SIGSTOP/SIGCONT and restarts on five members;
//! - the checker's power: reads served stale but recorded as linearizable are caught;
//! - in network namespaces, a 3|2 partition, a bridge (one member sees both halves, the halves
//!   do not see each other) and a flapping link. Where namespaces cannot be made this test fails
//!   and says why: a run that could not happen never counts as passed.
//!
//! `make soak` runs the long form (`soak_every_nemesis_in_network_namespaces`, ignored here).

use crate::common;
use crate::netns;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::init_logging;
use harness::check::nemesis::{self, Action, Kinds, Schedule, Target};
use harness::check::run::{apply_schedule, tally, ClientSettings, Clients};
use harness::check::{check, counts, Verdict, BUDGET_DEFAULT};
use netns::Hosts;

const CHECK: &str = env!("CARGO_BIN_EXE_harness-check");
const TOKEN_TIMEOUT: Duration = Duration::from_millis(300);
/// Far above a run's length, only so that a hang fails instead of blocking CI.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `harness-check args`, bounded; returns the exit code and stdout.
fn harness_check(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(CHECK)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + RUN_DEADLINE;
    // Bounded by the deadline.
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("harness-check {}:\n{stdout}{}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), stdout)
}

/// The number after `"name":` in the summary line.
fn field(summary: &str, name: &str) -> Option<u64> {
    let key = format!("\"{name}\":");
    let rest = &summary[summary.find(&key)? + key.len()..];
    rest.split([',', '}']).next()?.parse().ok()
}

#[test]
fn kills_pauses_and_restarts_of_five_members_leave_the_history_linearizable() {
    let (seconds, duration) = ("6", Duration::from_secs(6));
    // The first seed whose schedule has a kill and a pause, so both are exercised.
    let kinds: Kinds = "processes".parse().unwrap();
    let seed = (1..100u64)
        .find(|&seed| {
            let episodes = nemesis::schedule(seed, &kinds, 5, duration, TOKEN_TIMEOUT).episodes;
            episodes.contains(&nemesis::FaultKind::Kill) && episodes.contains(&nemesis::FaultKind::Pause)
        })
        .expect("a seed with a kill and a pause");
    let seed = seed.to_string();
    let timeout = TOKEN_TIMEOUT.as_millis().to_string();
    let args = [
        "run",
        "--seconds",
        seconds,
        "--faults",
        "processes",
        "--seed",
        &seed,
        "--token-timeout-ms",
        &timeout,
    ];
    let (code, stdout) = harness_check(&args);
    let summary = stdout.lines().next().unwrap_or_default();
    assert_eq!(code, Some(0), "not linearizable, or the run failed:\n{stdout}");
    assert!(summary.contains("\"verdict\":\"linearizable\""), "{summary}");
    assert!(field(summary, "completed").unwrap_or(0) >= 500, "too few operations to mean much: {summary}");
    assert!(
        field(summary, "kill").unwrap_or(0) >= 1 && field(summary, "pause").unwrap_or(0) >= 1,
        "{summary}"
    );
}

#[test]
fn stale_reads_presented_as_linearizable_are_caught_within_a_bounded_run() {
    // The checker's power on real processes: reads answered from the answering member's state
    // (warm members apply lazily, every member commits a token pass after the writer) miss
    // writes that completed before they were sent.
    let (code, stdout) = harness_check(&["run", "--seconds", "3", "--faults", "none", "--stale-reads"]);
    assert_eq!(code, Some(1), "the broken read path was not caught:\n{stdout}");
    assert!(stdout.contains("NOT linearizable"), "{stdout}");
}

/// Network-namespace hosts as a nemesis target; member `i` is host `i + 1`.
struct Namespaces<'a> {
    hosts: &'a mut Hosts,
    cuts: BTreeSet<(u16, u16)>,
}

impl Namespaces<'_> {
    fn cut(&mut self, a: usize, b: usize, cut: bool) -> Result<(), String> {
        let (a, b) = (a as u16 + 1, b as u16 + 1);
        let pair = (a.min(b), a.max(b));
        if cut == self.cuts.contains(&pair) {
            return Ok(());
        }
        self.hosts.set_pair_cut(pair.0, pair.1, cut)?;
        if cut {
            self.cuts.insert(pair);
        } else {
            self.cuts.remove(&pair);
        }
        Ok(())
    }
}

impl Target for Namespaces<'_> {
    fn apply(&mut self, action: &Action) -> Result<(), String> {
        eprintln!("nemesis: {action:?}");
        match action {
            Action::Kill(i) => self.hosts.kill(*i as u16 + 1),
            Action::Start(i) => {
                self.hosts.start(*i as u16 + 1, TOKEN_TIMEOUT);
                Ok(())
            }
            Action::Stop(i) => self.hosts.set_paused(*i as u16 + 1, true),
            Action::Cont(i) => self.hosts.set_paused(*i as u16 + 1, false),
            Action::Split(left, right) => {
                for &a in left {
                    for &b in right {
                        self.cut(a, b, true)?;
                    }
                }
                Ok(())
            }
            Action::Cut(a, b) => self.cut(*a, *b, true),
            Action::Mend(a, b) => self.cut(*a, *b, false),
            Action::HealNetwork => {
                for (a, b) in std::mem::take(&mut self.cuts) {
                    self.hosts.set_pair_cut(a, b, false)?;
                }
                Ok(())
            }
        }
    }
}

/// Five namespace hosts, client processes for `duration` and `schedule`; returns the verdict
/// after printing a summary.
fn netns_run(tag: &str, subnet: u8, duration: Duration, schedule: &Schedule) -> Verdict {
    init_logging();
    if let Some(why) = netns::unavailable(tag) {
        panic!("NOT RUN: this test needs network namespaces (root and iproute2): {why}");
    }
    let mut hosts = Hosts::create(tag, subnet, 5)
        .unwrap_or_else(|why| panic!("NOT RUN: cannot build the test network: {why}"));
    for i in 1..=5 {
        hosts.start(i, TOKEN_TIMEOUT);
    }
    let addrs: Vec<_> = hosts.endpoints().into_iter().map(|(_, addr)| addr).collect();
    common::wait_until(
        "the five-member ring",
        Duration::from_millis(50),
        10_000,
        Duration::from_secs(20),
        || addrs.iter().all(|&a| common::status(a).is_some_and(|s| s.primary && s.ring.len() == 5)),
    );
    let view_at = |addrs: &[std::net::SocketAddr]| {
        addrs.iter().filter_map(|&a| common::status(a)).map(|s| s.view.0).max().unwrap_or(0)
    };
    let first_view = view_at(&addrs);
    let settings = ClientSettings {
        clients: 5,
        keys: 3,
        duration,
        seed: 11,
        stale_reads: false,
        request_timeout: TOKEN_TIMEOUT * 3,
        op_deadline: TOKEN_TIMEOUT * 15,
        think: Duration::from_millis(2),
    };
    let clients = Clients::spawn(std::path::Path::new(CHECK), &addrs, &settings).unwrap();
    let mut target = Namespaces { hosts: &mut hosts, cuts: BTreeSet::new() };
    let applied = apply_schedule(schedule, &mut target, Instant::now());
    let healed = target.apply(&Action::HealNetwork);
    let history = clients.collect().unwrap();
    let applied = applied.unwrap();
    healed.unwrap();
    let c = counts(&history);
    let views = view_at(&addrs) - first_view;
    let verdict = check(&history, BUDGET_DEFAULT);
    eprintln!(
        "{tag}: {} operations ({} completed, {} indeterminate writes) on {} keys, faults {:?}, {applied} nemesis \
         actions, {views} view changes: {verdict}",
        c.ops,
        c.completed,
        c.indeterminate,
        c.keys,
        tally(&schedule.episodes)
    );
    assert!(c.completed >= 300, "{tag}: too few operations to mean much: {c:?}");
    // The faults must have bitten: each episode costs at least one view change.
    assert!(views >= schedule.episodes.len() as u64, "{tag}: only {views} view changes");
    verdict
}

#[test]
fn netns_partition_bridge_and_flapping_link_leave_the_history_linearizable() {
    use nemesis::FaultKind::{Bridge, Flap, Partition};
    let s = Duration::from_millis;
    let flaps = [(4600, true), (4900, false), (5200, true), (5500, false), (5800, true)];
    let mut actions = vec![
        // 3|2: hosts 4 and 5 lose the others.
        (s(1000), Action::Split(vec![3, 4], vec![0, 1, 2])),
        (s(2000), Action::HealNetwork),
        // A bridge: host 3 sees both halves {1, 2} and {4, 5}, which do not see each other.
        (s(2800), Action::Split(vec![0, 1], vec![3, 4])),
        (s(3800), Action::HealNetwork),
    ];
    actions.extend(
        flaps.iter().map(|&(at, down)| (s(at), if down { Action::Cut(0, 1) } else { Action::Mend(0, 1) })),
    );
    actions.push((s(6100), Action::HealNetwork));
    let schedule = Schedule { actions, episodes: vec![Partition, Bridge, Flap] };
    let verdict = netns_run("lz", 63, Duration::from_secs(8), &schedule);
    assert_eq!(verdict, Verdict::Linearizable, "{verdict}");
}

#[test]
#[ignore = "minutes long: `make soak` runs it"]
fn soak_every_nemesis_in_network_namespaces() {
    let seconds: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(180);
    let duration = Duration::from_secs(seconds);
    let seed: u64 = std::env::var("SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let schedule = nemesis::schedule(seed, &"all".parse().unwrap(), 5, duration, TOKEN_TIMEOUT);
    let verdict = netns_run("sk", 64, duration, &schedule);
    assert_eq!(verdict, Verdict::Linearizable, "{verdict}");
}

#[test]
fn harness_check_refuses_bad_usage_in_one_line_and_verifies_a_history_file() {
    for (args, expected) in [
        (vec!["run", "--nodes", "1"], "--nodes must be 3..=16"),
        (vec!["run", "--faults", "partition"], "needs network namespaces"),
        (vec!["run", "--faults", "fire"], "unknown fault"),
        (vec!["run", "--speed", "3"], "unknown flag --speed"),
        (vec!["client", "--client", "1"], "--cluster is required"),
        (vec!["verify", "/nonexistent/history"], "cannot read"),
        (vec!["launch"], "unknown command"),
    ] {
        let output = Command::new(CHECK).args(&args).stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected) && stderr.trim().lines().count() == 1, "{args:?}: {stderr}");
    }
    let dir = std::env::temp_dir().join(format!("harness-check-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.history");
    std::fs::write(&good, "1 0 10 put k a -> ok\n2 5 20 get k -> a\n2 21 30 cas k a b -> ok\n").unwrap();
    let bad = dir.join("bad.history");
    std::fs::write(&bad, "1 0 10 put k a -> ok\n2 11 20 get k -> nil\n").unwrap();
    let garbled = dir.join("garbled.history");
    std::fs::write(&garbled, "1 0 10 put k a\n").unwrap();
    let verify = |path: &std::path::Path| Command::new(CHECK).arg("verify").arg(path).output().unwrap();
    assert_eq!(verify(&good).status.code(), Some(0));
    let refuted = verify(&bad);
    assert_eq!(refuted.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refuted.stdout).contains("2 11 20 get k -> nil"));
    let garbled = verify(&garbled);
    assert_eq!(garbled.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&garbled.stderr).contains("no ' -> '"));
    std::fs::remove_dir_all(&dir).unwrap();
}
