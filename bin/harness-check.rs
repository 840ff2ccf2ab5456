//! `harness-check`: linearizability runs against real `harness node` processes.
//!
//! Arguments and setup only; the logic lives in `harness::check`.
//! - `client`: one recording client process (prints its history on stdout);
//! - `run`: members on loopback, client processes and a nemesis, then the verdict;
//! - `verify FILE`: checks a recorded history.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use harness::check::run::{ClientSettings, RunOptions};
use harness::check::workload::Workload;
use harness::check::{self, nemesis::Kinds, Verdict};

const USAGE: &str = "\
harness-check: linearizability of the key-value state under faults (docs/PROTOCOL.md §8.1)

Usage:
  harness-check run [--nodes 5] [--clients 5] [--keys 3] [--seconds 10] [--faults processes]
                    [--token-timeout-ms 300] [--seed 1] [--stale-reads] [--history FILE]
      start members on loopback, client processes and a nemesis; print the summary as JSON
      and the verdict. --faults: none, processes (kill,pause,restart) or a list of them.
      Exit 0 linearizable, 1 not linearizable or undecided, 2 bad usage or a failed run.
  harness-check verify FILE
      check a recorded history (one operation a line, as clients print them)
  harness-check client --cluster ADDR,... --client N [--keys 3] [--duration-ms 5000]
                    [--seed 1] [--request-timeout-ms 1000] [--op-deadline-ms 5000]
                    [--think-ms 2] [--stale-reads]
      one recording client: prints one history line per operation
  harness-check --help | --version
";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("verify") => verify(&args[1..]),
        Some("client") => client(&args[1..]),
        Some("--version" | "-V" | "version") => {
            println!("{}", harness::cli::version_line("harness-check"));
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err((2, format!("unknown command {other:?} (try --help)"))),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err((code, problem)) => {
            eprintln!("harness-check: {problem}");
            ExitCode::from(code)
        }
    }
}

/// The crate's one flag walker (`harness::cli::Flags`) with this binary's error shape.
struct Flags(harness::cli::Flags);

impl Flags {
    fn walk(
        program: &str,
        args: &[String],
        valued: &[&'static str],
        switches: &[&'static str],
    ) -> Result<Flags, (u8, String)> {
        harness::cli::Flags::walk(program, args, valued, switches).map(Flags).map_err(|e| (2, e.to_string()))
    }

    fn switch(&self, name: &str) -> bool {
        self.0.switch(name)
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.0.value(name)
    }

    fn number(&self, name: &'static str, default: u64) -> Result<u64, (u8, String)> {
        Ok(self.0.number(name, 0, u64::MAX).map_err(|e| (2, e.to_string()))?.unwrap_or(default))
    }
}

fn client(args: &[String]) -> Result<u8, (u8, String)> {
    let valued = [
        "cluster",
        "client",
        "keys",
        "duration-ms",
        "seed",
        "request-timeout-ms",
        "op-deadline-ms",
        "think-ms",
    ];
    let flags = Flags::walk("harness-check client", args, &valued, &["stale-reads"])?;
    let addrs: Vec<SocketAddr> = flags
        .text("cluster")
        .ok_or((2, "--cluster is required".to_string()))?
        .split(',')
        .map(|a| a.trim().parse().map_err(|_| (2, format!("--cluster: {a:?} is not HOST:PORT"))))
        .collect::<Result<_, _>>()?;
    let client = flags.number("client", 0)?;
    if client == 0 {
        return Err((2, "--client N (1 or more) is required".into()));
    }
    let workload = Workload {
        client,
        addrs,
        keys: flags.number("keys", 3)?.max(1),
        duration: Duration::from_millis(flags.number("duration-ms", 5000)?),
        seed: flags.number("seed", 1)?,
        stale_reads: flags.switch("stale-reads"),
        request_timeout: Duration::from_millis(flags.number("request-timeout-ms", 1000)?.max(1)),
        op_deadline: Duration::from_millis(flags.number("op-deadline-ms", 5000)?.max(1)),
        think: Duration::from_millis(flags.number("think-ms", 2)?),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    check::workload::run(&workload, &mut out).map_err(|e| (1, e))?;
    Ok(0)
}

fn verify(args: &[String]) -> Result<u8, (u8, String)> {
    let [path] = args else { return Err((2, "verify takes one history file".into())) };
    let text = std::fs::read_to_string(path).map_err(|e| (2, format!("cannot read {path}: {e}")))?;
    let history = check::history::parse(&text).map_err(|e| (2, e.to_string()))?;
    let counts = check::counts(&history);
    let verdict = check::check(&history, check::BUDGET_DEFAULT);
    let json = harness::json::Object::new()
        .uint("ops", counts.ops as u64)
        .uint("completed", counts.completed as u64)
        .uint("indeterminate", counts.indeterminate as u64)
        .uint("keys", counts.keys as u64)
        .str("verdict", verdict.word());
    println!("{}", json.finish());
    println!("{verdict}");
    Ok(if verdict == Verdict::Linearizable { 0 } else { 1 })
}

fn run(args: &[String]) -> Result<u8, (u8, String)> {
    let valued = ["nodes", "clients", "keys", "seconds", "faults", "token-timeout-ms", "seed", "history"];
    let flags = Flags::walk("harness-check run", args, &valued, &["stale-reads"])?;
    let me = std::env::current_exe().map_err(|e| (2, format!("cannot find this executable: {e}")))?;
    let harness = me.with_file_name("harness");
    if !harness.is_file() {
        return Err((2, format!("{} not found; build it with `cargo build --release`", harness.display())));
    }
    let kinds: Kinds = flags.text("faults").unwrap_or("processes").parse().map_err(|e| (2, e))?;
    let nodes = usize::try_from(flags.number("nodes", 5)?).unwrap_or(5);
    if !(3..=16).contains(&nodes) {
        return Err((2, format!("--nodes must be 3..=16, not {nodes}")));
    }
    let token_timeout = Duration::from_millis(flags.number("token-timeout-ms", 300)?.max(10));
    let seconds = flags.number("seconds", 10)?.max(1);
    let options = RunOptions {
        harness,
        harness_check: me,
        nodes,
        clients: ClientSettings {
            clients: usize::try_from(flags.number("clients", 5)?).unwrap_or(5).max(1),
            keys: flags.number("keys", 3)?.max(1),
            duration: Duration::from_secs(seconds),
            seed: flags.number("seed", 1)?,
            stale_reads: flags.switch("stale-reads"),
            request_timeout: token_timeout * 3,
            op_deadline: token_timeout * 15,
            think: Duration::from_millis(2),
        },
        token_timeout,
        seed: flags.number("seed", 1)?,
        kinds,
        history_out: flags.text("history").map(PathBuf::from),
    };
    let summary = check::run::run(&options).map_err(|e| (2, e))?;
    println!("{}", summary.json());
    println!("{}", summary.verdict);
    Ok(if summary.verdict == Verdict::Linearizable { 0 } else { 1 })
}
