//! `harness-bench`: the figures users choose a control plane by, measured on real `harness node`
//! processes over loopback (docs/DESIGN.md §7): broadcast latency (through the embedding API, in this
//! process), commit latency, throughput, recovery, fairness, the loopback floor, the idle cost,
//! and the cost of authentication (docs/PROTOCOL.md §2.1). Each figure is the median of several repetitions
//! with min and max, because a shared 2-core machine drifts by 10-30% within minutes.
//!
//! The flags only narrow or shorten a run; the modules are named for what they measure and
//! return flat `Record`s, which print as markdown tables and serialise as one JSON array.

mod auth;
mod broadcast;
pub(crate) mod cluster;
mod fairness;
mod flood;
mod floor;
mod idle;
mod large_state;
mod latency;
mod load;
mod plot;
mod recovery;
pub mod report;
mod scale;
mod state;
mod throughput;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::Flags;
use crate::ids::RingMode;
pub use plot::write_plots;
use recovery::Fault;
use report::Record;

/// The text `harness-bench --help` prints.
pub const USAGE: &str = "\
harness-bench: latency, throughput, recovery, fairness, floor and idle cost of real
`harness node` processes on loopback (the `harness` executable next to this one).

Usage: harness-bench [--quick] [--nodes 3,5,7,9] [--ring bi|uni|both] [--json FILE]
                     [--svg-dir DIR] [--figures LIST] [--scale-nodes LIST]
                     [--state-mib N] [--state-nodes LIST]
       harness-bench --help | --version
  --quick          a short smoke run (n = 3, ring bi unless narrowed; few requests)
  --nodes LIST     ring sizes for latency and throughput, each in 2..=16 (default 3,5,7,9);
                   recovery measures those of 3,5,9 listed (or the list itself if none is)
  --ring MODE      bi, uni or both (default both; --quick: bi)
  --json FILE      also write every record as one JSON array of flat objects
  --svg-dir DIR    where the plots go (default target/bench)
  --figures LIST   any of broadcast,latency,throughput,flood,recovery,fairness,floor,idle,
                   auth,checkpoint,promotion,scale,large_state (default all)
  --scale-nodes LIST  ring sizes of the scale figure, each in 3..=1024
                   (default 16,64,128,256; --quick: 16)
  --state-mib N    the state large_state grows to, MiB (default 2048; --quick: 16); a run
                   that would not fit in free memory is halved until it does, and says so
  --state-nodes LIST  only the large_state runs of these member counts (3 and 5; default both)
Errors: one line on stderr, exit code 2.
";

/// Every figure, in the order they run.
pub const FIGURES: [&str; 13] = [
    "floor",
    "broadcast",
    "latency",
    "throughput",
    "flood",
    "recovery",
    "fairness",
    "idle",
    "auth",
    "checkpoint",
    "promotion",
    "scale",
    "large_state",
];

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchArgs {
    /// The short smoke form.
    pub quick: bool,
    /// Ring sizes for latency and throughput.
    pub nodes: Vec<usize>,
    /// Ring modes.
    pub rings: Vec<RingMode>,
    /// Where to write the JSON array.
    pub json: Option<PathBuf>,
    /// Where to write the plots.
    pub svg_dir: PathBuf,
    /// Figures to run.
    pub figures: Vec<&'static str>,
    /// Ring sizes of the scale figure.
    pub scale_nodes: Vec<usize>,
    /// The state the large_state figure grows to, MiB.
    pub state_mib: u64,
    /// The member counts whose large_state runs are measured.
    pub state_nodes: Vec<usize>,
}

/// Parses the arguments after the program name with the crate's one flag walker
/// (`cli::Flags`); `Ok(None)` asks for the usage text.
pub fn parse_args(args: &[String]) -> Result<Option<BenchArgs>, String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(None);
    }
    let valued = ["nodes", "ring", "json", "svg-dir", "figures", "scale-nodes", "state-mib", "state-nodes"];
    let flags = Flags::walk("harness-bench", args, &valued, &["quick"]).map_err(|e| e.to_string())?;
    if let Some(flag) = valued.iter().find(|flag| flags.value(flag) == Some("")) {
        return Err(format!("--{flag} needs a value"));
    }
    let quick = flags.switch("quick");
    let (nodes, ring, json, svg_dir, figures) = (
        flags.value("nodes"),
        flags.value("ring"),
        flags.value("json"),
        flags.value("svg-dir"),
        flags.value("figures"),
    );
    let nodes = match nodes {
        Some(list) => parse_list(list, "--nodes", "sizes in 2..=16", |t| {
            t.parse().ok().filter(|n| (2..=16).contains(n))
        })?,
        None if quick => vec![3],
        None => vec![3, 5, 7, 9],
    };
    let rings = match ring {
        Some("both") => vec![RingMode::Bidirectional, RingMode::Unidirectional],
        Some(text) => {
            vec![text.parse().map_err(|_| format!("bad --ring {text:?}: must be bi, uni or both"))?]
        }
        None if quick => vec![RingMode::Bidirectional],
        None => vec![RingMode::Bidirectional, RingMode::Unidirectional],
    };
    let figures = match figures {
        Some(list) => {
            parse_list(list, "--figures", "figures of --help", |t| FIGURES.iter().copied().find(|f| *f == t))?
        }
        None => FIGURES.to_vec(),
    };
    let scale_nodes = match flags.value("scale-nodes") {
        Some(list) => parse_list(list, "--scale-nodes", "sizes in 3..=1024", |t| {
            t.parse().ok().filter(|n| (3..=1024).contains(n))
        })?,
        None if quick => vec![16],
        None => scale::SIZES.to_vec(),
    };
    let state_mib = match flags.value("state-mib") {
        Some(text) => text
            .parse()
            .ok()
            .filter(|mib| (1..=1 << 20).contains(mib))
            .ok_or_else(|| format!("bad --state-mib {text:?}: must be a number of MiB in 1..=1048576"))?,
        None if quick => 16,
        None => 2048,
    };
    let state_nodes = match flags.value("state-nodes") {
        Some(list) => {
            parse_list(list, "--state-nodes", "3 or 5", |t| t.parse().ok().filter(|n| [3, 5].contains(n)))?
        }
        None => vec![3, 5],
    };
    let svg_dir = PathBuf::from(svg_dir.unwrap_or("target/bench"));
    Ok(Some(BenchArgs {
        quick,
        nodes,
        rings,
        json: json.map(PathBuf::from),
        svg_dir,
        figures,
        scale_nodes,
        state_mib,
        state_nodes,
    }))
}

fn parse_list<T>(
    list: &str,
    flag: &str,
    allowed: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    let bad = |item: &str| format!("bad {flag} {list:?}: {item:?} is not one of the {allowed}");
    list.split(',').map(|item| parse(item.trim()).ok_or_else(|| bad(item.trim()))).collect()
}

/// How long and how often each figure measures.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Repetitions of every figure.
    pub repetitions: usize,
    /// Timed one-outstanding requests per repetition.
    pub latency_requests: usize,
    /// Untimed requests before them.
    pub latency_warmup: usize,
    /// Broadcasts each throughput client keeps outstanding.
    pub window: usize,
    /// Value sizes of the throughput figure.
    pub value_sizes: Vec<usize>,
    /// Load before a measuring window starts.
    pub warmup: Duration,
    /// A throughput measuring window.
    pub measure: Duration,
    /// The token timeout of the recovery rings (also the SIGSTOP detection time).
    pub token_timeout: Duration,
    /// Recovery trials per ring size and fault, the victim going round the members.
    pub recovery_trials: usize,
    /// The ring sizes of the recovery figure.
    pub recovery_sizes: Vec<usize>,
    /// Messages each light member submits in the fairness figure.
    pub fairness_messages: u64,
    /// Longest fairness measuring window.
    pub fairness_deadline: Duration,
    /// Round trips of one floor repetition.
    pub floor_round_trips: usize,
    /// Idle measuring interval.
    pub idle: Duration,
    /// How long a fresh ring may take to form.
    pub ready_deadline: Duration,
}

impl Plan {
    /// The full run: the sizes (>= 5,000 latency requests, 20,000 round trips, 10 s idle).
    pub fn full() -> Plan {
        Plan {
            repetitions: 3,
            latency_requests: 5000,
            latency_warmup: 200,
            window: 256,
            value_sizes: vec![64, 1024, 16 * 1024],
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(2),
            token_timeout: Duration::from_millis(1000),
            recovery_trials: 30,
            recovery_sizes: recovery::SIZES.to_vec(),
            fairness_messages: 50_000,
            fairness_deadline: Duration::from_secs(20),
            floor_round_trips: 20_000,
            idle: Duration::from_secs(10),
            ready_deadline: Duration::from_secs(30),
        }
    }

    /// The smoke run: every figure, a few seconds in all.
    pub fn quick() -> Plan {
        Plan {
            repetitions: 2,
            latency_requests: 300,
            latency_warmup: 50,
            window: 64,
            value_sizes: vec![64, 1024, 16 * 1024],
            warmup: Duration::from_millis(200),
            measure: Duration::from_millis(400),
            token_timeout: Duration::from_millis(200),
            recovery_trials: 3,
            recovery_sizes: vec![3],
            fairness_messages: 10_000,
            fairness_deadline: Duration::from_secs(5),
            floor_round_trips: 2000,
            idle: Duration::from_secs(1),
            ready_deadline: Duration::from_secs(20),
        }
    }
}

/// Runs every figure asked for with `exe` as the node executable. A figure that fails is
/// reported in the second list and the others still run.
pub fn run(args: &BenchArgs, exe: &Path) -> (Vec<Record>, Vec<String>) {
    let mut plan = if args.quick { Plan::quick() } else { Plan::full() };
    // `--nodes` narrows the recovery sizes too; sizes outside them are measured when asked for.
    let asked: Vec<usize> = plan.recovery_sizes.iter().copied().filter(|n| args.nodes.contains(n)).collect();
    plan.recovery_sizes = if asked.is_empty() { args.nodes.clone() } else { asked };
    let wants = |figure: &str| args.figures.contains(&figure);
    let mut records = Vec::new();
    let mut failures = Vec::new();
    let mut note =
        |what: String, outcome: Result<Vec<Record>, String>, records: &mut Vec<Record>| match outcome {
            Ok(new) => {
                // Each record as it is measured, so a long run that is cut short keeps them.
                for record in &new {
                    eprintln!("harness-bench: {what}: {}", record.json());
                }
                records.extend(new);
            }
            Err(problem) => {
                eprintln!("harness-bench: {what}: FAILED: {problem}");
                failures.push(format!("{what}: {problem}"));
            }
        };
    let mut one_way_us = None;
    if wants("floor") {
        let outcome = floor::measure(plan.floor_round_trips, plan.repetitions);
        one_way_us = outcome.as_ref().ok().map(|(_, one_way)| *one_way);
        note("floor".into(), outcome.map(|(record, _)| vec![record]), &mut records);
    }
    if wants("broadcast") {
        for &ring in &args.rings {
            for &n in &args.nodes {
                let outcome = broadcast::measure(n, ring, &plan).map(|mut records| {
                    let last_p50 = records[0].get("last_p50_us");
                    if let (Some(one_way), Some(p50)) = (one_way_us, last_p50) {
                        records.push(floor::ratio(n, ring, floor::Latency::BroadcastLast, p50, one_way));
                    }
                    records
                });
                note(format!("broadcast n={n} ring {}", ring.as_str()), outcome, &mut records);
            }
        }
    }
    if wants("latency") || wants("throughput") {
        for &ring in &args.rings {
            for &n in &args.nodes {
                let outcome = ring_figures(exe, n, ring, &plan, args, one_way_us);
                note(format!("n={n} ring {}", ring.as_str()), outcome, &mut records);
            }
        }
    }
    let ring = args.rings[0];
    if wants("flood") {
        note("flood".into(), flood::measure(exe, ring, &plan).map(|r| vec![r]), &mut records);
    }
    if wants("recovery") {
        for fault in [Fault::Kill, Fault::Stop] {
            for &n in &plan.recovery_sizes {
                let outcome = recovery::measure(exe, ring, n, fault, &plan).map(|r| vec![r]);
                note(format!("recovery n={n} {}", fault.as_str()), outcome, &mut records);
            }
        }
    }
    if wants("fairness") {
        note("fairness".into(), fairness::measure(exe, ring, &plan).map(|r| vec![r]), &mut records);
    }
    if wants("idle") {
        note("idle".into(), idle::measure(exe, ring, &plan).map(|r| vec![r]), &mut records);
    }
    if wants("auth") {
        note("auth".into(), auth::measure(exe, &plan), &mut records);
    }
    if wants("checkpoint") {
        note("checkpoint".into(), state::checkpoint(plan.repetitions).map(|r| vec![r]), &mut records);
    }
    if wants("promotion") {
        note("promotion".into(), state::promotion(exe, ring, &plan).map(|r| vec![r]), &mut records);
    }
    if wants("scale") {
        // The floor first: measured just after hundreds of members stop, it reads their exit.
        if one_way_us.is_none() {
            one_way_us =
                floor::measure(plan.floor_round_trips, plan.repetitions).ok().map(|(_, one_way)| one_way);
        }
        let mut scale_records = Vec::new();
        for &n in &args.scale_nodes {
            note(
                format!("scale n={n}"),
                scale::measure(exe, n, ring, &plan).map(|r| vec![r]),
                &mut scale_records,
            );
        }
        if let Some(one_way) = one_way_us {
            let growth = scale::growth(&scale_records, one_way);
            scale_records.extend(growth);
        }
        records.extend(scale_records);
    }
    if wants("large_state") {
        let runs = large_state::runs(args.quick, args.state_mib);
        for asked in runs.into_iter().filter(|r| args.state_nodes.contains(&r.nodes)) {
            let run = large_state::fits(asked, large_state::available_mib());
            if run.state_mib < asked.state_mib {
                eprintln!(
                    "harness-bench: large_state n={}: {} MiB of state on every member does not fit in \
                     this machine's free memory; measuring {} MiB",
                    run.nodes, asked.state_mib, run.state_mib
                );
            }
            let what = format!(
                "large_state n={} {} B {} {} MiB",
                run.nodes,
                run.value_bytes,
                run.durability.as_str(),
                run.state_mib
            );
            note(what, large_state::measure(exe, ring, run).map(|r| vec![r]), &mut records);
        }
    }
    (records, failures)
}

/// Latency and throughput on one fresh ring of `n`.
fn ring_figures(
    exe: &Path,
    n: usize,
    ring: RingMode,
    plan: &Plan,
    args: &BenchArgs,
    one_way_us: Option<f64>,
) -> Result<Vec<Record>, String> {
    let mut cluster = cluster::Cluster::start(exe, n, ring, None)?;
    cluster.wait_ready(plan.ready_deadline)?;
    let mut records = Vec::new();
    if args.figures.contains(&"latency") {
        let record = latency::measure(&cluster, ring, plan)?;
        if let (Some(one_way), Some(p50)) = (one_way_us, record.get("p50_us")) {
            records.push(floor::ratio(n, ring, floor::Latency::Commit, p50, one_way));
        }
        records.push(record);
        records.push(latency::measure_gets(&cluster, ring, plan)?);
    }
    if args.figures.contains(&"throughput") {
        for &size in &plan.value_sizes {
            records.push(throughput::measure(&mut cluster, ring, size, plan)?);
        }
    }
    Ok(records)
}

/// Every figure's markdown table under a heading, in run order.
pub fn tables(records: &[Record]) -> String {
    let headings = [
        ("floor", "Loopback floor: TCP ping-pong, TCP_NODELAY, 64 B"),
        ("broadcast_latency", "Broadcast latency (embedding API): submit to agreed delivery at member 1 and at the last member, µs"),
        ("commit_latency", "Commit latency: one client, one put outstanding, µs"),
        ("lget_latency", "Linearizable get latency: one client, one get outstanding (read barrier), µs"),
        ("floor_ratio", "Latency against (message steps x one-way floor)"),
        ("throughput", "Throughput: every member's client submitting puts, committed"),
        ("flood", "Memory under a flood of 16 KiB puts: 3 members, many clients; peak RSS (VmHWM) of the largest member"),
        ("broadcast_throughput", "Broadcast throughput (embedding API): every member broadcasting, agreed deliveries per second at member 1"),
        ("recovery", "Recovery: every member killed (or stopped) in turn under writes, ms from the signal to the new view and longest write gap of any client"),
        ("checkpoint", "Checkpoint of a 100k-key state: bytes, ms to snapshot and to write with fsync"),
        ("promotion", "Promotion: both hot members of 5 killed, ms to the first commit; a warm member's promotion step after a 100k-command tail"),
        ("fairness", "Fairness: member 1 submits 100x more"),
        ("idle_cpu", "Idle 5-member ring, % of one core (all processes)"),
        ("auth_throughput", "Cost of authentication: 3 members, ring bi, committed, without and with a key"),
        ("scale", "Scale: real members on loopback; formation, links, idle CPU and RSS per member, commit latency at member 1, write gap after kill -9 of members 1, n/2 and n"),
        ("scale_growth", "Scale: commit latency growth per added member against the one-way floor"),
        ("large_state", "Large state: growth to the target, then the warm member killed, wiped and restarted under load; probe puts at member 1 (64 B, one outstanding)"),
    ];
    let mut out = String::new();
    for (figure, heading) in headings {
        let table = report::markdown(records, figure);
        if !table.is_empty() {
            out.push_str(&format!("### {heading}\n\n{table}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
