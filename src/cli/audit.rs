//! The audit of a run: delivery logs against what the submitters know they sent.
//!
//! It checks the promises of docs/PROTOCOL.md §5.4 from outside the processes, after crashes:
//! members that ran throughout wrote identical logs covering seqs 1..=n (one total order,
//! virtual synchrony); every acknowledged attempt is in them exactly once, at the acknowledged
//! seq (nothing acknowledged is lost); an attempt a node refused is in no log (a refusal means
//! "not committed"); no log holds a payload twice (no member delivers one submission twice);
//! nothing appears that was never sent; a restarted or cut-off member's lines are lines of the
//! history, except a tail above a view's cut (`check_partial_log`).

use std::collections::{BTreeMap, BTreeSet};

use super::workload::{Outcome, Submissions};
use crate::ids::{NodeId, Seq, ViewId};
use crate::node::LogLine;

/// Most problems of one kind reported; the rest are counted.
const EXAMPLES_MAX: usize = 5;

/// One node's delivery log and its part in the run.
#[derive(Clone, Debug)]
pub struct NodeLog {
    /// The node.
    pub id: NodeId,
    /// Whether it ran from start to end (never killed); only such logs hold the whole history.
    pub survivor: bool,
    /// Its lines.
    pub lines: Vec<LogLine>,
}

/// What the audit found.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// Broken promises; empty means verified.
    pub problems: Vec<String>,
    /// Facts worth reporting that break nothing.
    pub notes: Vec<String>,
    /// History lines of attempts a node refused (each also a problem), so a test can tell
    /// exactly whose refusals were wrong.
    pub refused_but_ordered: Vec<LogLine>,
}

/// Which attempt a payload hash belongs to.
#[derive(Clone, Copy, Debug)]
struct Sent {
    origin: NodeId,
    index: usize,
    attempt: usize,
    outcome: Outcome,
}

/// Audits `logs` against `submissions`.
pub fn audit(submissions: &[Submissions], logs: &[NodeLog]) -> Findings {
    let mut findings = Findings::default();
    let mut sent: BTreeMap<u64, Sent> = BTreeMap::new();
    for s in submissions {
        for (index, attempts) in s.attempts.iter().enumerate() {
            let acks = attempts.iter().filter(|a| matches!(a.outcome, Outcome::Acked { .. })).count();
            if acks != 1 {
                findings.problems.push(format!("{} message {index} acknowledged {acks} times", s.origin));
            }
            for (attempt, a) in attempts.iter().enumerate() {
                let entry = Sent { origin: s.origin, index, attempt, outcome: a.outcome };
                if sent.insert(a.payload_hash, entry).is_some() {
                    findings.problems.push(format!("payload hash {:016x} sent twice", a.payload_hash));
                }
            }
        }
    }
    let Some(reference) = logs.iter().find(|l| l.survivor) else {
        findings.problems.push("no node ran throughout, so no log holds the whole history".to_string());
        return findings;
    };
    for log in logs {
        if !log.survivor {
            continue;
        }
        check_one_log(log, &sent, &mut findings.problems);
        if log.lines != reference.lines {
            let at = log.lines.iter().zip(&reference.lines).position(|(a, b)| a != b);
            let at = at.unwrap_or(log.lines.len().min(reference.lines.len()));
            findings.problems.push(format!(
                "{}'s delivery log differs from {}'s at line {} ({} and {} lines)",
                log.id,
                reference.id,
                at + 1,
                log.lines.len(),
                reference.lines.len()
            ));
        }
    }
    check_history(reference, &sent, &mut findings);
    findings.refused_but_ordered = reference
        .lines
        .iter()
        .filter(|l| sent.get(&l.payload_hash).is_some_and(|s| matches!(s.outcome, Outcome::Refused(_))))
        .copied()
        .collect();
    for log in logs.iter().filter(|l| !l.survivor) {
        check_partial_log(log, reference, &sent, &mut findings);
    }
    findings
}

/// A member that crashed, restarted or was cut off holds part of the history: every line at a
/// (view, seq) of the history must be the history's line. The one exception is the tail of a
/// view above its cut, which a member cut off from the primary may have agreed-delivered before
/// its incarnation ended (§5.4); such lines must lie above everything the history has in that
/// view, and are counted, not checked as ordered.
fn check_partial_log(
    log: &NodeLog,
    reference: &NodeLog,
    sent: &BTreeMap<u64, Sent>,
    findings: &mut Findings,
) {
    let at: BTreeMap<(ViewId, Seq), &LogLine> =
        reference.lines.iter().map(|l| ((l.view, l.seq), l)).collect();
    let mut last_in_view: BTreeMap<ViewId, Seq> = BTreeMap::new();
    for line in &reference.lines {
        last_in_view.insert(line.view, line.seq);
    }
    let mut ordered = Vec::new();
    let mut contradicting = Vec::new();
    let mut discarded = Vec::new();
    for line in &log.lines {
        match at.get(&(line.view, line.seq)) {
            Some(expected) if *expected == line => ordered.push(*line),
            Some(_) => contradicting.push(line),
            None if last_in_view.get(&line.view).is_some_and(|last| line.seq > *last) => {
                discarded.push(*line)
            }
            None => contradicting.push(line),
        }
    }
    report(
        &mut findings.problems,
        &contradicting,
        &format!("{}'s delivery log contradicts {}'s history", log.id, reference.id),
    );
    check_one_log(&NodeLog { id: log.id, survivor: false, lines: ordered }, sent, &mut findings.problems);
    let unknown: Vec<&LogLine> = discarded.iter().filter(|l| !sent.contains_key(&l.payload_hash)).collect();
    report(&mut findings.problems, &unknown, &format!("{} delivered payloads never sent", log.id));
    if !discarded.is_empty() {
        findings.notes.push(format!(
            "{} agreed-delivered {} messages above the cut of a view it was then cut off from",
            log.id,
            discarded.len()
        ));
    }
}

/// Within one log: no payload twice, nothing never sent, nothing refused.
fn check_one_log(log: &NodeLog, sent: &BTreeMap<u64, Sent>, problems: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    let twice: Vec<&LogLine> = log.lines.iter().filter(|l| !seen.insert(l.payload_hash)).collect();
    report(problems, &twice, &format!("{} delivered a payload twice", log.id));
    let unknown: Vec<&LogLine> = log.lines.iter().filter(|l| !sent.contains_key(&l.payload_hash)).collect();
    report(problems, &unknown, &format!("{} delivered payloads never sent", log.id));
    let refused: Vec<&LogLine> = log
        .lines
        .iter()
        .filter(|l| sent.get(&l.payload_hash).is_some_and(|s| matches!(s.outcome, Outcome::Refused(_))))
        .collect();
    report(problems, &refused, &format!("{} delivered attempts that a node refused", log.id));
}

/// The whole history: seqs 1..=n in order, every acknowledged attempt at its seq.
fn check_history(reference: &NodeLog, sent: &BTreeMap<u64, Sent>, findings: &mut Findings) {
    if let Some((i, line)) = reference.lines.iter().enumerate().find(|(i, l)| l.seq != *i as u64 + 1) {
        findings.problems.push(format!(
            "{}'s line {} has seq {}, not {}",
            reference.id,
            i + 1,
            line.seq,
            i + 1
        ));
    }
    let at: BTreeMap<u64, &LogLine> = reference.lines.iter().map(|l| (l.payload_hash, l)).collect();
    let mut missing = Vec::new();
    let mut misplaced = Vec::new();
    for (hash, s) in sent {
        if let Outcome::Acked { seq, .. } = s.outcome {
            match at.get(hash) {
                None => missing
                    .push(format!("{} message {} attempt {} (seq {seq})", s.origin, s.index, s.attempt)),
                Some(line) if line.seq != seq => misplaced.push(format!(
                    "{} message {} acknowledged at seq {seq}, delivered at {}",
                    s.origin, s.index, line.seq
                )),
                Some(_) => {}
            }
        }
    }
    report(&mut findings.problems, &missing, "acknowledged attempts missing from the history");
    report(&mut findings.problems, &misplaced, "acknowledged attempts at another seq");
    let lost: Vec<u64> = sent.iter().filter(|(_, s)| s.outcome == Outcome::Lost).map(|(h, _)| *h).collect();
    let lost_delivered = lost.iter().filter(|hash| at.contains_key(hash)).count();
    if !lost.is_empty() {
        findings.notes.push(format!(
            "{} attempts lost with their node or connection; {lost_delivered} of them were ordered anyway \
             (committed before the crash, acknowledgement lost) and retried as new attempts",
            lost.len()
        ));
    }
}

/// Adds one problem naming up to `EXAMPLES_MAX` examples, if there are any.
fn report<T: std::fmt::Display>(problems: &mut Vec<String>, items: &[T], what: &str) {
    if items.is_empty() {
        return;
    }
    let examples: Vec<String> = items.iter().take(EXAMPLES_MAX).map(ToString::to_string).collect();
    problems.push(format!("{what}: {} (e.g. {})", items.len(), examples.join("; ")));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::workload::{payload, Attempt};
    use crate::ids::MsgId;
    use crate::node::payload_hash;
    use crate::wire::ErrorCode;

    fn attempt(index: u64, attempt: usize, outcome: Outcome) -> Attempt {
        Attempt { payload_hash: payload_hash(&payload(NodeId(1), index, attempt)), outcome }
    }

    fn line(seq: u64, index: u64, attempt: usize) -> LogLine {
        let id = MsgId { origin: NodeId(1), incarnation: 1, counter: seq };
        LogLine { view: ViewId(1), seq, id, payload_hash: payload_hash(&payload(NodeId(1), index, attempt)) }
    }

    fn run() -> Vec<Submissions> {
        let attempts = vec![
            vec![attempt(0, 0, Outcome::Acked { seq: 1, via: 0 })],
            vec![attempt(1, 0, Outcome::Lost), attempt(1, 1, Outcome::Acked { seq: 3, via: 1 })],
            vec![
                attempt(2, 0, Outcome::Refused(ErrorCode::NoQuorum)),
                attempt(2, 1, Outcome::Acked { seq: 2, via: 1 }),
            ],
        ];
        vec![Submissions { origin: NodeId(1), attempts }]
    }

    fn log(id: u16, survivor: bool, lines: Vec<LogLine>) -> NodeLog {
        NodeLog { id: NodeId(id), survivor, lines }
    }

    #[test]
    fn a_clean_history_passes_and_counts_lost_attempts_ordered_anyway() {
        let history = vec![line(1, 0, 0), line(2, 2, 1), line(3, 1, 1), line(4, 1, 0)];
        let logs = vec![
            log(1, true, history.clone()),
            log(2, true, history.clone()),
            log(3, false, history[2..].to_vec()),
        ];
        let findings = audit(&run(), &logs);
        assert!(findings.problems.is_empty(), "{:?}", findings.problems);
        assert!(findings.notes[0].contains("1 of them were ordered anyway"), "{:?}", findings.notes);
    }

    #[test]
    fn every_broken_promise_is_named() {
        let history = vec![line(1, 0, 0), line(2, 2, 1), line(3, 1, 1)];
        let problems = |logs: Vec<NodeLog>| audit(&run(), &logs).problems.join("\n");
        let mut other = history.clone();
        other.swap(1, 2);
        assert!(problems(vec![log(1, true, history.clone()), log(2, true, other)]).contains("differs"));
        assert!(problems(vec![log(1, true, history[..2].to_vec())]).contains("missing"));
        let mut refused = history.clone();
        refused.push(line(4, 2, 0));
        assert!(problems(vec![log(1, true, refused.clone())]).contains("refused"));
        assert_eq!(audit(&run(), &[log(1, true, refused)]).refused_but_ordered, vec![line(4, 2, 0)]);
        let mut twice = history.clone();
        twice.push(line(4, 0, 0));
        assert!(problems(vec![log(1, true, twice)]).contains("twice"));
        let mut stranger = history.clone();
        stranger.push(line(4, 9, 0));
        assert!(problems(vec![log(1, true, stranger)]).contains("never sent"));
        let mut contradicting = line(2, 0, 0);
        contradicting.payload_hash = history[2].payload_hash;
        assert!(problems(vec![log(1, true, history.clone()), log(2, false, vec![contradicting])])
            .contains("contradicts"));
        // Above the cut of the last view: allowed for a member that was cut off, and counted.
        let findings = audit(
            &run(),
            &[log(1, true, history.clone()), log(2, false, vec![line(1, 0, 0), line(7, 2, 0)])],
        );
        assert!(findings.problems.is_empty(), "{:?}", findings.problems);
        assert!(findings.notes.iter().any(|n| n.contains("n2 agreed-delivered 1 messages above the cut")));
        assert!(problems(vec![log(2, false, history)]).contains("no node ran throughout"));
    }
}
