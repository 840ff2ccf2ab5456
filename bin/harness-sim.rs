//! `harness-sim`: the deterministic simulator. Arguments and setup only; logic in `harness::sim`.

use std::process::exit;
use std::time::Duration;

use harness::sim::{self, SimOptions};
use harness::RingMode;

const USAGE: &str = "usage:
  harness-sim --seed S [--trace] [options]        run one seed; --trace prints every event
  harness-sim --seeds A..B [--json] [options]     run a campaign over seeds A (inclusive) to B (exclusive)
  harness-sim cost [--nodes 4,8,...] [--ring bi|uni] [--json]   measure the cost table
  harness-sim --help | --version
options:
  --nodes N            members (default 5)
  --messages M         messages each member submits (default 100)
  --faults PROFILE     none, all, or a comma list of: crash, restart, multi-crash, cascade, link,
                       partition, partial, one-way, delay, pause, join, cold-start, glitch (default none)
  --ring bi|uni        ring mode (default bi)
  --hot H              hot members per view (default 2); the others are warm standbys
  --checkpoint-every N commits between checkpoints (default 16), each checked against the history
  --commands-percent P submissions that are DVM commands, mostly transactions (default 50)
  --durability D       memory, checkpoint or fsync: what restarted members get back (default memory)
  --min-replicas W     the write quorum (default a majority of the members less the witnesses)
  --witnesses K        the K highest ids are witnesses: they vote and hold no state (default 0)
  --quorum MODE        configuration or dynamic: who chooses a primary's successor (default configuration)
  --state-bytes B      member 1 first writes B bytes of state (e.g. 512KiB, 4MiB) in 64 KiB
                       values, so checkpoints and transfers are large; links carry 1 GiB/s and
                       disks write 256 MiB/s, so their size costs simulated time
  --no-live-exclusion  a violation if a live member is ever excluded (use with faults that
                       never cut a live member off: crash, restart, join)
  --defect NAME        a deliberately broken core, to show the checker catches it: no-replica-floor";

fn fail(message: &str) -> ! {
    eprintln!("harness-sim: {message}");
    exit(2);
}

fn value<'a>(args: &'a [String], i: &mut usize, flag: &str) -> &'a str {
    *i += 1;
    args.get(*i).map(String::as_str).unwrap_or_else(|| fail(&format!("{flag} needs a value")))
}

fn number<T: std::str::FromStr>(text: &str, flag: &str) -> T {
    text.parse().unwrap_or_else(|_| fail(&format!("bad {flag} {text:?}: not a number")))
}

/// A byte count with an optional KiB/MiB/GiB suffix.
fn bytes(text: &str, flag: &str) -> u64 {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let scale = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => fail(&format!("bad {flag} {text:?}: use a number with B, KiB, MiB or GiB")),
    };
    number::<u64>(digits, flag)
        .checked_mul(scale)
        .unwrap_or_else(|| fail(&format!("bad {flag} {text:?}: too large")))
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("{}", harness::cli::version_line("harness-sim"));
        return;
    }
    let cost = args.first().is_some_and(|a| a == "cost");
    let mut options = SimOptions::default();
    let mut seed = None;
    let mut seeds = None;
    let mut json = false;
    let mut sizes = vec![4, 8, 16, 32, 64, 128, 256];
    let mut i = usize::from(cost);
    while i < args.len() {
        let flag = args[i].as_str();
        match flag {
            "--seed" => seed = Some(number::<u64>(value(&args, &mut i, flag), flag)),
            "--seeds" => {
                let text = value(&args, &mut i, flag);
                let (a, b) = text.split_once("..").unwrap_or_else(|| fail("--seeds takes A..B"));
                let (a, b) = (number::<u64>(a, flag), number::<u64>(b, flag));
                if a >= b {
                    fail("--seeds A..B needs A < B");
                }
                seeds = Some(a..b);
            }
            "--nodes" if cost => {
                sizes = value(&args, &mut i, flag).split(',').map(|s| number::<usize>(s, flag)).collect();
                if sizes.iter().any(|&n| n == 0 || n > 1000) {
                    fail("--nodes must be in 1..=1000");
                }
            }
            "--nodes" => {
                options.nodes = number(value(&args, &mut i, flag), flag);
                if options.nodes == 0 || options.nodes > 256 {
                    fail("--nodes must be in 1..=256");
                }
            }
            "--messages" => options.messages = number(value(&args, &mut i, flag), flag),
            "--faults" => {
                options.profile = value(&args, &mut i, flag).parse().unwrap_or_else(|e: String| fail(&e))
            }
            "--ring" => {
                options.ring_mode =
                    value(&args, &mut i, flag).parse::<RingMode>().unwrap_or_else(|e| fail(&e))
            }
            "--trace" => options.trace = true,
            "--json" => json = true,
            "--hot" => options.hot = number(value(&args, &mut i, flag), flag),
            "--checkpoint-every" => options.checkpoint_every = number(value(&args, &mut i, flag), flag),
            "--commands-percent" => options.commands_percent = number(value(&args, &mut i, flag), flag),
            "--durability" => {
                options.durability = value(&args, &mut i, flag)
                    .parse()
                    .unwrap_or_else(|e: harness::ConfigError| fail(&e.to_string()))
            }
            "--min-replicas" => options.min_replicas = Some(number(value(&args, &mut i, flag), flag)),
            "--witnesses" => options.witnesses = number(value(&args, &mut i, flag), flag),
            "--quorum" => {
                options.quorum_mode = value(&args, &mut i, flag)
                    .parse()
                    .unwrap_or_else(|e: harness::ConfigError| fail(&e.to_string()))
            }
            "--defect" => {
                options.defect = match value(&args, &mut i, flag) {
                    "no-replica-floor" => harness::Defect::NoReplicaFloor,
                    other => fail(&format!("unknown defect {other:?}: no-replica-floor")),
                }
            }
            "--state-bytes" => options.state_bytes = bytes(value(&args, &mut i, flag), flag),
            "--no-live-exclusion" => options.no_live_exclusion = true,
            "--fault-phase-ms" => {
                options.fault_phase = Duration::from_millis(number(value(&args, &mut i, flag), flag))
            }
            "--token-timeout-ms" => {
                options.token_timeout = Duration::from_millis(number(value(&args, &mut i, flag), flag))
            }
            other => fail(&format!("unknown argument {other:?} (see --help)")),
        }
        i += 1;
    }
    if options.witnesses >= options.nodes {
        fail("--witnesses must leave at least one member that holds state");
    }
    if cost {
        let rows = sim::cost_table(&sizes, options.ring_mode);
        if json {
            println!("{}", sim::cost_json(&rows));
        } else {
            print!("{}", sim::cost_markdown(&rows));
        }
        return;
    }
    match (seed, seeds) {
        (Some(seed), None) => {
            let report = sim::run(seed, &options);
            sim::print_violation(&report, &mut std::io::stdout());
            println!(
                "seed {} steps {} deliveries {} commits {} checkpoints {} virtual {} trace-hash {:016x} {}",
                seed,
                report.steps,
                report.deliveries,
                report.commits,
                report.checkpoints,
                report.virtual_time,
                report.trace_hash,
                if report.violation.is_some() { "VIOLATION" } else { "ok" }
            );
            exit(i32::from(report.violation.is_some()));
        }
        (None, Some(range)) => {
            let summary = sim::campaign(range, &options, true);
            if json {
                println!("{}", summary.to_json(&options));
            } else {
                println!(
                    "{} seeds, {} violations, {} steps, {:.1} s ({} nodes, faults {}, ring {})",
                    summary.seeds,
                    summary.violations,
                    summary.steps,
                    summary.seconds,
                    options.nodes,
                    options.profile,
                    options.ring_mode.as_str()
                );
            }
            exit(i32::from(summary.violations > 0));
        }
        _ => fail("give --seed S or --seeds A..B (see --help)"),
    }
}
