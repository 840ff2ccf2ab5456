//! `harness-sim`: the deterministic simulator. Arguments (through the crate's one flag walker,
//! `harness::cli::Flags`) and setup only; logic in `harness::sim`.

use std::ops::Range;
use std::process::exit;
use std::time::Duration;

use harness::cli::{parse_number, CliError, Flags};
use harness::sim::{self, SimOptions};

const USAGE: &str = "usage:
  harness-sim --seed S [--trace] [options]        run one seed; --trace prints every event
  harness-sim --seeds A..B [--json] [options]     run a campaign over seeds A (inclusive) to B (exclusive)
  harness-sim cost [--nodes 4,8,...] [--ring bi|uni] [--json]   measure the cost table
  harness-sim scale [--nodes 64,256,1024] [--seed S] [--json]    formation, a join and a view change
                       at each size: time, connections opened per member, frames, guarantees
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
  --payload-bytes B    largest raw payload submitted, at least 8 (default 64)
  --window-bytes W     the members' byte window and largest batch (default 8 MiB), at least
                       --payload-bytes; a token carrying W + one payload in flight is a violation
  --min-replicas W     the write quorum (default a majority of the members less the witnesses)
  --witnesses K        the K highest ids are witnesses: they vote and hold no state (default 0)
  --quorum MODE        configuration or dynamic: who chooses a primary's successor (default configuration)
  --state-bytes B      member 1 first writes B bytes of state (e.g. 512KiB, 4MiB) in 64 KiB
                       values, so checkpoints and transfers are large; links carry 1 GiB/s and
                       disks write 256 MiB/s, so their size costs simulated time
  --link-bytes-per-s B bytes per second one direction of a link carries (default 1GiB)
  --no-live-exclusion  a violation if a live member is ever excluded (use with faults that
                       never cut a live member off: crash, restart, join)
  --member-changes     also change the universe during the fault phase: move a member, remove one
                       and add it back, move another (docs/PROTOCOL.md 5.9)
  --reads R            linearizable reads each member makes through the read barrier (default 0),
                       each checked to see every write acknowledged before it started
  --defect NAME        a deliberately broken core, to show the checker catches it: no-replica-floor,
                       read-without-barrier
errors: one line on stderr naming the flag, exit code 2";

/// The flags of a run or a campaign that take a value.
const VALUED: [&str; 21] = [
    "seed",
    "reads",
    "seeds",
    "nodes",
    "messages",
    "faults",
    "ring",
    "hot",
    "checkpoint-every",
    "commands-percent",
    "durability",
    "payload-bytes",
    "window-bytes",
    "min-replicas",
    "witnesses",
    "quorum",
    "defect",
    "state-bytes",
    "link-bytes-per-s",
    "fault-phase-ms",
    "token-timeout-ms",
];

/// What the command line asks for.
struct Args {
    /// `cost`: measure the cost table for these ring sizes instead of running seeds.
    cost: Option<Vec<usize>>,
    /// `scale`: formation, a join and a view change at these ring sizes.
    scale: Option<Vec<usize>>,
    options: SimOptions,
    seed: Option<u64>,
    seeds: Option<Range<u64>>,
    json: bool,
}

/// Parses the arguments after the program name with the crate's one flag walker.
fn parse(args: &[String]) -> Result<Args, CliError> {
    let mut options = SimOptions::default();
    if args.first().is_some_and(|a| a == "cost") {
        let flags = Flags::walk("harness-sim cost", &args[1..], &["nodes", "ring"], &["json"])?;
        let sizes = match flags.value("nodes") {
            Some(list) => {
                list.split(',').map(|n| parse_number("nodes", n, 1, 1000).map(|n| n as usize)).collect()
            }
            None => Ok(vec![4, 8, 16, 32, 64, 128, 256]),
        }?;
        if let Some(ring) = flags.parse("ring")? {
            options.ring_mode = ring;
        }
        let json = flags.switch("json");
        return Ok(Args { cost: Some(sizes), scale: None, options, seed: None, seeds: None, json });
    }
    if args.first().is_some_and(|a| a == "scale") {
        let flags = Flags::walk("harness-sim scale", &args[1..], &["nodes", "seed"], &["json"])?;
        let sizes = match flags.value("nodes") {
            Some(list) => {
                list.split(',').map(|n| parse_number("nodes", n, 3, 4096).map(|n| n as usize)).collect()
            }
            None => Ok(vec![64, 256, 1024]),
        }?;
        let seed = flags.number("seed", 0, u64::MAX)?;
        let json = flags.switch("json");
        return Ok(Args { cost: None, scale: Some(sizes), options, seed, seeds: None, json });
    }
    let flags =
        Flags::walk("harness-sim", args, &VALUED, &["trace", "json", "no-live-exclusion", "member-changes"])?;
    let seed = flags.number("seed", 0, u64::MAX)?;
    let seeds = match flags.value("seeds") {
        Some(text) => {
            let (a, b) = text.split_once("..").ok_or_else(|| CliError::bad("seeds", text, "must be A..B"))?;
            let (a, b) = (parse_number("seeds", a, 0, u64::MAX)?, parse_number("seeds", b, 0, u64::MAX)?);
            if a >= b {
                return Err(CliError::bad("seeds", text, "needs A < B"));
            }
            Some(a..b)
        }
        None => None,
    };
    if seed.is_some() && seeds.is_some() {
        return Err(CliError::Conflict { first: "seed", second: "seeds" });
    }
    let size = |n: u64| n as usize;
    options.nodes = flags.number("nodes", 1, 256)?.map_or(options.nodes, size);
    options.messages = flags.number("messages", 0, u64::from(u32::MAX))?.map_or(options.messages, size);
    options.profile = flags.parse("faults")?.unwrap_or(options.profile);
    options.ring_mode = flags.parse("ring")?.unwrap_or(options.ring_mode);
    options.trace = flags.switch("trace");
    options.hot = flags.number("hot", 1, 256)?.map_or(options.hot, size);
    options.checkpoint_every =
        flags.number("checkpoint-every", 1, u64::MAX)?.unwrap_or(options.checkpoint_every);
    options.commands_percent = flags.number("commands-percent", 0, 100)?.unwrap_or(options.commands_percent);
    options.durability = flags.parse("durability")?.unwrap_or(options.durability);
    let payload_max = harness::config::PAYLOAD_BYTES_MAX_DEFAULT as u64;
    options.payload_bytes =
        flags.number("payload-bytes", 8, payload_max)?.map_or(options.payload_bytes, size);
    options.window_bytes =
        flags.number("window-bytes", options.payload_bytes as u64, u64::MAX)?.unwrap_or(options.window_bytes);
    options.min_replicas = flags.number("min-replicas", 1, 256)?.map(size).or(options.min_replicas);
    options.reads = flags.number("reads", 0, 1_000_000)?.map_or(options.reads, size);
    options.witnesses = flags.number("witnesses", 0, 255)?.map_or(options.witnesses, size);
    if options.witnesses >= options.nodes {
        let text = options.witnesses.to_string();
        return Err(CliError::bad("witnesses", &text, "must leave at least one member that holds state"));
    }
    options.quorum_mode = flags.parse("quorum")?.unwrap_or(options.quorum_mode);
    options.defect = match flags.value("defect") {
        Some("no-replica-floor") => harness::Defect::NoReplicaFloor,
        Some("read-without-barrier") => harness::Defect::ReadWithoutBarrier,
        Some(other) => {
            return Err(CliError::bad("defect", other, "one of no-replica-floor, read-without-barrier"))
        }
        None => options.defect,
    };
    if let Some(text) = flags.value("state-bytes") {
        options.state_bytes = bytes("state-bytes", text)?;
    }
    if let Some(text) = flags.value("link-bytes-per-s") {
        options.link_bytes_per_s = bytes("link-bytes-per-s", text)?.max(1);
    }
    options.no_live_exclusion = flags.switch("no-live-exclusion");
    options.member_changes = flags.switch("member-changes");
    let millis = |flag| flags.number(flag, 1, 3_600_000).map(|ms| ms.map(Duration::from_millis));
    options.fault_phase = millis("fault-phase-ms")?.unwrap_or(options.fault_phase);
    options.token_timeout = millis("token-timeout-ms")?.unwrap_or(options.token_timeout);
    Ok(Args { cost: None, scale: None, options, seed, seeds, json: flags.switch("json") })
}

/// `--state-bytes`, `--link-bytes-per-s`: a byte count with an optional KiB/MiB/GiB suffix.
fn bytes(flag: &'static str, text: &str) -> Result<u64, CliError> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let scale = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(CliError::bad(flag, text, "use a number with B, KiB, MiB or GiB")),
    };
    parse_number(flag, digits, 0, u64::MAX)?
        .checked_mul(scale)
        .ok_or_else(|| CliError::bad(flag, text, "is too large"))
}

/// Prints the one-line error scripts rely on and exits with the usage code.
fn fail(problem: &CliError) -> ! {
    eprintln!("harness-sim: {problem}");
    exit(problem.exit_code());
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
    let Args { cost, scale, options, seed, seeds, json } = parse(&args).unwrap_or_else(|e| fail(&e));
    if let Some(sizes) = scale {
        let rows: Vec<sim::ScaleRow> = sizes.iter().map(|&n| sim::scale_run(n, seed.unwrap_or(1))).collect();
        if json {
            println!("{}", sim::scale_json(&rows));
        } else {
            print!("{}", sim::scale_markdown(&rows));
        }
        exit(i32::from(rows.iter().any(|row| row.violation.is_some())));
    }
    if let Some(sizes) = cost {
        let rows = sim::cost_table(&sizes, options.ring_mode);
        if json {
            println!("{}", sim::cost_json(&rows));
        } else {
            print!("{}", sim::cost_markdown(&rows));
        }
        return;
    }
    match (seed, seeds) {
        (Some(seed), _) => {
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
        (_, Some(range)) => {
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
        (None, None) => fail(&CliError::Required { flags: "--seed S or --seeds A..B" }),
    }
}
