//! Crashes and pauses of real `harness node` processes on loopback, while every node submits
//! through a client that fails over to another node (docs/PROTOCOL.md §5).
//!
//! Each story runs five members with a 300 ms token timeout and delivery logs, injects one
//! fault about 0.7 s into a 2 s workload, lets the ring settle and stops it cleanly. Then the
//! members that were never faulted must have byte-identical delivery logs; every acknowledged
//! message is in them once at its acknowledged seq, no log holds a payload twice, nothing
//! refused or never sent is there, and a faulted member's lines are lines of that history
//! (`harness::cli::audit`). The time from a kill -9 to a survivor's new view is printed.

use crate::common;

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use common::{init_logging, status, time_until, wait_until, Nodes};
use harness::cli::audit::{audit, NodeLog};
use harness::cli::workload::{submit_all, wait_until_settled, Outcome, Settled, Submissions, Workload};
use harness::node::read_log;
use harness::{NodeId, RingMode};

const NODES: u16 = 5;
const TOKEN_TIMEOUT: Duration = Duration::from_millis(300);
/// Per node.
const MESSAGES: u64 = 400;
/// The workload is spread over this long, so the fault meets it running.
const SPREAD: Duration = Duration::from_secs(2);
/// When the fault strikes, after the submitters start.
const FAULT_AT: Duration = Duration::from_millis(700);
const SUBMIT_DEADLINE: Duration = Duration::from_secs(30);
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);
const FORM_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the story: start the ring, submit from every node, call `fault` at `FAULT_AT`, settle,
/// stop and audit. `faulted` are the members `fault` touches; the rest must match exactly.
fn survive(name: &str, faulted: &[u16], fault: impl FnOnce(&mut Nodes)) {
    init_logging();
    let mut nodes = Nodes::new(name, usize::from(NODES), RingMode::Bidirectional);
    nodes.token_timeout = Some(TOKEN_TIMEOUT);
    nodes.delivery_logs = true;
    for id in 1..=NODES {
        nodes.start(id);
    }
    // The fault must hit a formed ring, not the genesis.
    wait_until("the five-member ring", Duration::from_millis(20), 10_000, FORM_DEADLINE, || {
        status(nodes.addr(1)).is_some_and(|s| s.primary && s.ring.len() == usize::from(NODES))
    });
    let work = Workload {
        addrs: nodes.addrs.clone(),
        messages: MESSAGES,
        spread: Some(SPREAD),
        stall: Duration::from_secs(1),
    };
    let deadline = Instant::now() + SUBMIT_DEADLINE;
    let counters: Vec<AtomicU64> = (0..NODES).map(|_| AtomicU64::new(0)).collect();
    let submissions: Vec<Submissions> = std::thread::scope(|scope| {
        let submitters: Vec<_> = counters
            .iter()
            .enumerate()
            .map(|(home, counter)| {
                let work = &work;
                scope.spawn(move || submit_all(work, home, counter, deadline))
            })
            .collect();
        std::thread::sleep(FAULT_AT);
        fault(&mut nodes);
        submitters
            .into_iter()
            .map(|s| s.join().expect("a submitter panicked").expect("submissions"))
            .collect()
    });

    let survivors: Vec<bool> = (1..=NODES).map(|id| !faulted.contains(&id)).collect();
    let acked_max = submissions
        .iter()
        .flat_map(|s| s.attempts.iter().flatten())
        .filter_map(|a| match a.outcome {
            Outcome::Acked { seq, .. } => Some(seq),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let running: Vec<_> = (1..=NODES).filter(|id| status(nodes.addr(*id)).is_some()).collect();
    let addrs: Vec<_> = running.iter().map(|id| nodes.addr(*id)).collect();
    let running_survivors: Vec<bool> = running.iter().map(|id| survivors[usize::from(*id) - 1]).collect();
    let goal = Settled { survivors: &running_survivors, committed_at_least: acked_max };
    let (statuses, settled) = wait_until_settled(&addrs, goal, Instant::now() + SETTLE_DEADLINE);
    assert!(settled, "{name}: no common commit and state digest; last statuses {statuses:#?}");

    for (id, exit) in nodes.stop_all() {
        assert!(exit.is_some_and(|s| s.success()), "{name}: {id} did not stop cleanly ({exit:?})");
    }
    let mut logs = Vec::new();
    for id in 1..=NODES {
        let path = nodes.delivery_log(id);
        let lines = read_log(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        logs.push(NodeLog { id: NodeId(id), survivor: survivors[usize::from(id) - 1], lines });
    }
    let findings = audit(&submissions, &logs);
    assert!(findings.problems.is_empty(), "{name}: {:#?}", findings.problems);
    for note in findings.notes {
        eprintln!("{name}: {note}");
    }
    // The audit compares parsed lines; the files themselves must be equal too.
    let reference = std::fs::read(nodes.delivery_log(1)).unwrap();
    for id in (2..=NODES).filter(|id| survivors[usize::from(*id) - 1]) {
        assert!(
            std::fs::read(nodes.delivery_log(id)).unwrap() == reference,
            "{name}: n{id}'s log differs from n1's"
        );
    }
    eprintln!("{name}: {} messages ordered, survivors' logs identical", logs[0].lines.len());
}

/// Kills `victims` (with `gap` between them) and returns how long a survivor took from the first
/// kill to a view without any of them.
fn kill_and_time(nodes: &mut Nodes, victims: &[u16], gap: Duration) -> Duration {
    let watcher = nodes.addr(1);
    let before = status(watcher).expect("n1 answers").view;
    let killed_at = Instant::now();
    for (i, &victim) in victims.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(gap);
        }
        nodes.kill(victim);
    }
    time_until(watcher, killed_at, Duration::from_secs(10), |s| {
        s.primary && s.view > before && s.ring.iter().all(|m| !victims.contains(&m.id.0))
    })
}

#[test]
fn kill_one_member() {
    survive("kill-one", &[3], |nodes| {
        let took = kill_and_time(nodes, &[3], Duration::ZERO);
        eprintln!("kill-one: kill -9 n3 -> new view at n1 in {took:?} (token timeout {TOKEN_TIMEOUT:?})");
    });
}

#[test]
fn kill_two_members_at_once() {
    survive("kill-two", &[2, 4], |nodes| {
        let took = kill_and_time(nodes, &[2, 4], Duration::ZERO);
        eprintln!("kill-two: kill -9 n2 n4 -> view without both at n1 in {took:?} (token timeout {TOKEN_TIMEOUT:?})");
    });
}

#[test]
fn kill_one_then_a_second_during_the_recovery() {
    survive("kill-cascade", &[2, 5], |nodes| {
        let took = kill_and_time(nodes, &[2, 5], Duration::from_millis(30));
        eprintln!(
            "kill-cascade: kill -9 n2, 30 ms later n5 -> view without both at n1 in {took:?} \
             (token timeout {TOKEN_TIMEOUT:?})"
        );
    });
}

#[test]
fn a_member_paused_past_the_timeout_rejoins_as_a_new_incarnation() {
    survive("pause", &[3], |nodes| {
        let before = status(nodes.addr(3)).expect("n3 answers").member;
        nodes.pause(3);
        std::thread::sleep(TOKEN_TIMEOUT * 3);
        nodes.resume(3);
        let took = time_until(nodes.addr(3), Instant::now(), Duration::from_secs(10), |s| {
            s.primary && s.member.incarnation > before.incarnation && s.ring.contains(&s.member)
        });
        eprintln!("pause: n3 back in the primary view as a new incarnation {took:?} after SIGCONT");
    });
}

#[test]
fn a_killed_member_restarted_with_its_id_catches_up() {
    survive("restart", &[4], |nodes| {
        let took = kill_and_time(nodes, &[4], Duration::ZERO);
        eprintln!("restart: kill -9 n4 -> new view at n1 in {took:?} (token timeout {TOKEN_TIMEOUT:?})");
        std::thread::sleep(Duration::from_millis(300));
        nodes.start(4);
        let took = time_until(nodes.addr(1), Instant::now(), Duration::from_secs(10), |s| {
            s.primary && s.ring.iter().any(|m| m.id == NodeId(4))
        });
        eprintln!("restart: restarted n4 is in n1's view {took:?} after its start");
    });
    // `survive` has already required every running node, n4 included, to reach the same
    // committed_upto and state digest as the others.
}
