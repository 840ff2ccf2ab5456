//! `harness-bench`: measure real `harness node` processes on loopback (docs/DESIGN.md §7).
//!
//! Arguments and setup only: parsing, finding the `harness` executable next to this one,
//! printing the tables, writing the JSON and plots, and exit codes. The logic lives in
//! `harness::bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use harness::bench;

fn main() -> ExitCode {
    // Errors only by default: tearing down the in-process rings of the broadcast figure makes
    // every member warn that its links closed, which is expected and would bury the tables.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("{}", harness::cli::version_line("harness-bench"));
        return ExitCode::SUCCESS;
    }
    let args = match bench::parse_args(&args) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{}", bench::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(problem) => return fail(&problem, 2),
    };
    let exe = match harness_exe() {
        Ok(exe) => exe,
        Err(problem) => return fail(&problem, 1),
    };
    let (records, failures) = bench::run(&args, &exe);
    print!("{}", bench::tables(&records));
    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, bench::report::json_array(&records)) {
            return fail(&format!("cannot write {}: {e}", path.display()), 1);
        }
        println!("JSON: {}", path.display());
    }
    match bench::write_plots(&records, &args.svg_dir) {
        Ok(files) => {
            for file in files {
                println!("plot: {}", file.display());
            }
        }
        Err(problem) => return fail(&problem, 1),
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        fail(&format!("{} figure(s) failed: {}", failures.len(), failures.join("; ")), 1)
    }
}

/// The `harness` executable beside this one: both come out of the same `cargo build`.
fn harness_exe() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let exe = me.with_file_name("harness");
    if exe.is_file() {
        Ok(exe)
    } else {
        Err(format!("{} not found; build it with `cargo build --release`", exe.display()))
    }
}

/// Prints the one-line error scripts rely on.
fn fail(problem: &str, code: u8) -> ExitCode {
    eprintln!("harness-bench: {problem}");
    ExitCode::from(code)
}
