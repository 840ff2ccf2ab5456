//! Campaigns over seed ranges, with a progress line and a summary, and the cost table printout.

use std::io::Write;
use std::time::Instant;

use super::cluster::{PhaseCost, ScaleRow};
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
    s.push_str("| n | ring | reliable O/C (seed) | atomic O/C (seed) | agreement O/C (seed) | transaction O/C (seed) | view change O/C, connections |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for row in rows {
        let seed = seed_figures(row.ring, row.nodes as u64);
        let ours = [row.reliable, row.atomic, row.agreement, row.transaction];
        let cells: Vec<String> =
            ours.iter().zip(seed.iter()).map(|(o, s)| format!("{}/{} ({}/{})", o.0, o.1, s.0, s.1)).collect();
        let view_change = match row.view_change {
            Some((o, c)) => format!("{o}/{c}, {}", row.view_change_dials),
            None => "-".to_string(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.nodes,
            row.ring.as_str(),
            cells.join(" | "),
            view_change
        ));
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
        if let Some((o, c)) = row.view_change {
            records.push(
                Object::new()
                    .str("operation", "view_change")
                    .uint("n", row.nodes as u64)
                    .str("ring", row.ring.as_str())
                    .uint("o", o)
                    .uint("c", c)
                    .uint("connections", row.view_change_dials)
                    .finish(),
            );
        }
    }
    json::array(records)
}

/// The scale table (docs/PROTOCOL.md §4) as markdown: per ring size and phase, the virtual time,
/// the dials of the member that opened the most and of all, and the frames sent (membership
/// frames in brackets).
pub fn scale_markdown(rows: &[ScaleRow]) -> String {
    let mut s = String::new();
    s.push_str(
        "| n | phase | time (ms) | dials max / total | dials per member | frames (membership) | result |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|\n");
    for row in rows {
        let result = match &row.violation {
            None => format!("ok, {} links at most once stable", row.links_max),
            Some(v) => {
                format!("VIOLATION of {} ({}): {}", v.guarantee.number(), v.guarantee.name(), v.detail)
            }
        };
        for (name, cost) in scale_phases(row) {
            s.push_str(&format!(
                "| {} | {} | {:.1} | {} / {} | {:.2} | {} ({}) | {} |\n",
                row.nodes,
                name,
                cost.time.as_secs_f64() * 1000.0,
                cost.dials_max,
                cost.dials_total,
                cost.dials_total as f64 / row.nodes as f64,
                cost.frames,
                cost.membership_frames,
                result
            ));
        }
    }
    s
}

fn scale_phases(row: &ScaleRow) -> [(&'static str, PhaseCost); 3] {
    [("formation", row.formation), ("view change", row.view_change), ("join", row.join)]
}

/// The scale table as a JSON array of flat records, one per ring size and phase.
pub fn scale_json(rows: &[ScaleRow]) -> String {
    let mut records = Vec::new();
    for row in rows {
        for (name, cost) in scale_phases(row) {
            records.push(
                Object::new()
                    .uint("n", row.nodes as u64)
                    .str("phase", name)
                    .fixed("time_ms", cost.time.as_secs_f64() * 1000.0, 3)
                    .uint("dials_max", cost.dials_max)
                    .uint("dials_total", cost.dials_total)
                    .uint("frames", cost.frames)
                    .uint("membership_frames", cost.membership_frames)
                    .uint("links_max", row.links_max as u64)
                    .opt_uint("violation", row.violation.as_ref().map(|v| u64::from(v.guarantee.number())))
                    .finish(),
            );
        }
    }
    json::array(records)
}
