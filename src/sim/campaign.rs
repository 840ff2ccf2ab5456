//! Campaigns over seed ranges, with a progress line and a summary, and the cost table printout.

use std::io::Write;
use std::time::Instant;

use super::cost::{measure, seed_figures, CostRow};
use super::{run, RunReport, SimOptions};
use crate::ids::RingMode;
use crate::json::{self, Object};

/// The totals of a campaign.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds with a violation.
    pub violations: u64,
    /// Events over all seeds.
    pub steps: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The failing seeds (the first 100).
    pub failed: Vec<u64>,
}

impl Summary {
    /// The summary as one JSON object.
    pub fn to_json(&self, options: &SimOptions) -> String {
        Object::new()
            .uint("seeds", self.seeds)
            .uint("violations", self.violations)
            .uint("steps", self.steps)
            .fixed("seconds", self.seconds, 3)
            .uint("nodes", options.nodes as u64)
            .str("faults", &options.profile.to_string())
            .str("ring", options.ring_mode.as_str())
            .raw("failed", &json::array(self.failed.iter().map(u64::to_string)))
            .finish()
    }
}

/// Prints one violation: the seed, the guarantee and the events leading to it.
pub fn print_violation(report: &RunReport, out: &mut dyn Write) {
    if let Some(v) = &report.violation {
        let _ = writeln!(out, "seed {}: {}", report.seed, v);
        let _ = writeln!(out, "last events (time node event a b):");
        for line in &report.recent {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out, "replay: harness-sim --seed {} --trace (plus the same options)", report.seed);
    }
}

/// Runs `seeds`, printing a progress line to stderr and every violation to stdout.
pub fn campaign(seeds: std::ops::Range<u64>, options: &SimOptions, progress: bool) -> Summary {
    let started = Instant::now();
    let mut summary = Summary::default();
    let total = seeds.end.saturating_sub(seeds.start);
    let mut last_progress = Instant::now();
    let stdout = std::io::stdout();
    for seed in seeds {
        let report = run(seed, options);
        summary.seeds += 1;
        summary.steps += report.steps;
        if report.violation.is_some() {
            summary.violations += 1;
            if summary.failed.len() < 100 {
                summary.failed.push(seed);
            }
            if summary.violations <= 3 {
                print_violation(&report, &mut stdout.lock());
            }
        }
        if progress && last_progress.elapsed().as_millis() >= 1000 {
            last_progress = Instant::now();
            eprint!(
                "\rseeds {}/{} violations {} steps {} ({:.0} seeds/s)   ",
                summary.seeds,
                total,
                summary.violations,
                summary.steps,
                summary.seeds as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    if progress {
        eprintln!(
            "\rseeds {}/{} violations {} steps {}                ",
            summary.seeds, total, summary.violations, summary.steps
        );
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary
}

/// Measures the cost table for each ring size.
pub fn cost_table(sizes: &[usize], ring: RingMode) -> Vec<CostRow> {
    sizes.iter().map(|&n| measure(n, ring)).collect()
}

/// The table as markdown, measured beside the seed's figures.
pub fn cost_markdown(rows: &[CostRow]) -> String {
    let mut s = String::new();
    s.push_str("| n | ring | reliable O/C (seed) | atomic O/C (seed) | agreement O/C (seed) | transaction O/C (seed) |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for row in rows {
        let seed = seed_figures(row.ring, row.nodes as u64);
        let ours = [row.reliable, row.atomic, row.agreement, row.transaction];
        let cells: Vec<String> =
            ours.iter().zip(seed.iter()).map(|(o, s)| format!("{}/{} ({}/{})", o.0, o.1, s.0, s.1)).collect();
        s.push_str(&format!("| {} | {} | {} |\n", row.nodes, row.ring.as_str(), cells.join(" | ")));
    }
    s
}

/// The table as a JSON array of flat records.
pub fn cost_json(rows: &[CostRow]) -> String {
    let mut records = Vec::new();
    for row in rows {
        let seed = seed_figures(row.ring, row.nodes as u64);
        let ours = [row.reliable, row.atomic, row.agreement, row.transaction];
        for (i, name) in ["reliable_broadcast", "atomic_broadcast", "distributed_agreement", "transaction"]
            .iter()
            .enumerate()
        {
            records.push(
                Object::new()
                    .str("operation", name)
                    .uint("n", row.nodes as u64)
                    .str("ring", row.ring.as_str())
                    .uint("o", ours[i].0)
                    .uint("c", ours[i].1)
                    .uint("seed_o", seed[i].0)
                    .uint("seed_c", seed[i].1)
                    .finish(),
            );
        }
    }
    json::array(records)
}
