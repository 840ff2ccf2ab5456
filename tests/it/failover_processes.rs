//! A kill -9 of any member installs the next view without waiting for a timeout
//! (docs/PROTOCOL.md §2 "Crossed dials", §5.2): rings of five and of three real `harness node`
//! processes with a 1000 ms token timeout; every member, member 1 included, is killed in turn
//! and restarted as a new incarnation before the next one, so later kills meet links with every
//! kind of dial history. For each kill, every survivor's `install: view ... after T (Reason)`
//! line must show the view installed in under token_timeout / 10: no timeout was needed. This
//! is not a timing target (those are in `make bench`): a view change that waits for a timer
//! waits half a token timeout or more, ten times this bound.

use crate::common;

use std::time::{Duration, Instant};

use common::{init_logging, status, wait_until, Nodes};
use harness::RingMode;

const TOKEN_TIMEOUT: Duration = Duration::from_millis(1000);
const VIEW_DEADLINE: Duration = Duration::from_secs(15);

/// The `after` duration of an install line (`... after 1.23ms (LinkClosed)`), as `Duration`'s
/// debug form prints it.
fn install_took(line: &str) -> Option<Duration> {
    let rest = &line[line.find(" after ")? + 7..];
    let text = rest.split_whitespace().next()?;
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let nanos = match unit {
        "ns" => number,
        "µs" => number * 1e3,
        "ms" => number * 1e6,
        "s" => number * 1e9,
        _ => return None,
    };
    Some(Duration::from_nanos(nanos as u64))
}

/// Bytes of member `id`'s log so far.
fn log_len(nodes: &Nodes, id: u16) -> usize {
    std::fs::read(nodes.log(id)).map_or(0, |b| b.len())
}

/// Waits until every member in `ids` reports a primary view of exactly `ids`.
fn wait_for_ring(nodes: &Nodes, ids: &[u16]) {
    wait_until("the ring to form", Duration::from_millis(20), 100_000, VIEW_DEADLINE, || {
        ids.iter().all(|&id| {
            status(nodes.addr(id)).is_some_and(|s| {
                s.primary
                    && s.ring.len() == ids.len()
                    && ids.iter().all(|i| s.ring.iter().any(|m| m.id.0 == *i))
            })
        })
    });
}

/// Kills every member of a ring of `n` in turn; returns each kill's slowest survivor install.
fn kill_each_member_in_turn(name: &str, n: u16) -> Vec<(u16, Duration, String)> {
    init_logging();
    let mut nodes = Nodes::new(name, usize::from(n), RingMode::Bidirectional);
    nodes.token_timeout = Some(TOKEN_TIMEOUT);
    nodes.rust_log = Some("info");
    let all: Vec<u16> = (1..=n).collect();
    for &id in &all {
        nodes.start(id);
    }
    wait_for_ring(&nodes, &all);
    let mut results = Vec::new();
    for victim in 1..=n {
        let survivors: Vec<u16> = all.iter().copied().filter(|&id| id != victim).collect();
        let offsets: Vec<usize> = survivors.iter().map(|&id| log_len(&nodes, id)).collect();
        let killed_at = Instant::now();
        nodes.kill(victim);
        wait_for_ring(&nodes, &survivors);
        let mut slowest = (Duration::ZERO, String::new());
        for (&id, &offset) in survivors.iter().zip(&offsets) {
            let log = std::fs::read(nodes.log(id)).unwrap();
            let text = String::from_utf8_lossy(&log[offset..]);
            let line = text
                .lines()
                .find(|l| l.contains(" install: view ") && l.contains(" primary true "))
                .unwrap_or_else(|| {
                    panic!("{name}: n{id} logged no install after the kill of n{victim}:\n{text}")
                });
            let took = install_took(line).unwrap_or_else(|| panic!("{name}: no duration in {line:?}"));
            if took >= slowest.0 {
                slowest = (took, line.to_string());
            }
        }
        eprintln!(
            "{name}: kill -9 n{victim}: slowest survivor installed the next view after {:?} ({:?} of wall time)",
            slowest.0,
            killed_at.elapsed()
        );
        results.push((victim, slowest.0, slowest.1));
        nodes.start(victim);
        wait_for_ring(&nodes, &all);
    }
    results
}

fn assert_no_timeout_was_needed(name: &str, results: &[(u16, Duration, String)]) {
    for (victim, took, line) in results {
        assert!(
            *took < TOKEN_TIMEOUT / 10,
            "{name}: after the kill of n{victim} a survivor waited {took:?}, a timeout (token timeout \
             {TOKEN_TIMEOUT:?}): {line}"
        );
    }
}

#[test]
fn a_kill_of_any_member_of_five_installs_the_next_view_without_a_timeout() {
    let results = kill_each_member_in_turn("failover-5", 5);
    assert_eq!(results.len(), 5);
    assert_no_timeout_was_needed("failover-5", &results);
}

#[test]
fn a_kill_of_any_member_of_three_installs_the_next_view_without_a_timeout() {
    let results = kill_each_member_in_turn("failover-3", 3);
    assert_eq!(results.len(), 3);
    assert_no_timeout_was_needed("failover-3", &results);
}

#[test]
fn install_lines_parse_in_every_unit() {
    let line = "n5 install: view v2 members [5, 2, 3, 4] primary true cut 0 requeued 0 after 501.031817ms (LinkClosed)";
    assert_eq!(install_took(line), Some(Duration::from_nanos(501_031_817)));
    assert_eq!(install_took("x after 679.089µs (Genesis)"), Some(Duration::from_nanos(679_089)));
    assert_eq!(install_took("x after 1.5s (Retry)"), Some(Duration::from_millis(1500)));
    assert_eq!(install_took("x after 0ns (Retry)"), Some(Duration::ZERO));
    assert_eq!(install_took("no duration here"), None);
}
