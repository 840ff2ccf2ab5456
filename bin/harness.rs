//! `harness`: run a member (`harness node`), a verified local demo ring (`harness demo`), a
//! client command against a running cluster (`harness put`, `get`, `txn`, `watch`, `status`, ...),
//! or make a cluster key (`harness keygen`).
//!
//! Arguments and setup only: logging, parsing, dispatch and exit codes. The logic lives in
//! `harness::cli`.

use std::process::ExitCode;

use harness::cli::{self, Command};

fn main() -> ExitCode {
    // RUST_LOG picks the level; info shows lifecycle and view changes (STYLE.md, Logging).
    let mut logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if cli::journal::stderr_is_journal() {
        // Under systemd: priority prefixes for the journal, which stamps the time itself.
        logger.format(|out, record| {
            use std::io::Write;
            let priority = cli::journal::syslog_priority(record.level());
            writeln!(out, "<{priority}>{} {}: {}", record.level(), record.target(), record.args())
        });
    } else {
        logger.format_timestamp_millis();
    }
    logger.init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str| std::env::var(name).ok();
    let command = match cli::parse_command(&args, |path| std::fs::read_to_string(path), &env) {
        Ok(command) => command,
        Err(e) => return fail(&e.to_string(), e.exit_code()),
    };
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("{}", cli::version_line("harness"));
            ExitCode::SUCCESS
        }
        Command::Man => {
            print!("{}", cli::manual::man_page());
            ExitCode::SUCCESS
        }
        Command::Completions => {
            print!("{}", cli::manual::bash_completion());
            ExitCode::SUCCESS
        }
        Command::Node(node) => match cli::run_node(&node) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string(), e.exit_code()),
        },
        Command::Keygen(path) => {
            let written = harness::auth::ClusterKey::generate().and_then(|key| {
                key.write_new(&path)?;
                Ok(key.fingerprint())
            });
            match written {
                Ok(fingerprint) => {
                    println!(
                        "wrote a new cluster key to {} (fingerprint {fingerprint}); copy it to every member \
                         and client host, readable only by the user that runs harness",
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(problem) => {
                    let error = cli::CliError::bad("key-file", &path.display().to_string(), problem);
                    fail(&error.to_string(), error.exit_code())
                }
            }
        }
        Command::Client(client) => {
            let mut stdin = std::io::stdin().lock();
            let mut stdout = std::io::stdout();
            match cli::run_client(&client, &mut stdin, &mut stdout) {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(failure) => fail(&failure.message, failure.code),
            }
        }
        Command::Demo(demo) => {
            let exe = match std::env::current_exe() {
                Ok(exe) => exe,
                Err(e) => return fail(&format!("cannot find the harness executable: {e}"), 1),
            };
            let report = cli::run_demo(&demo, &exe);
            print!("{}", report.summary());
            if demo.json {
                println!("{}", report.json());
            }
            if report.verified() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Prints the one-line error operators and scripts rely on.
fn fail(problem: &str, code: i32) -> ExitCode {
    eprintln!("harness: {problem}");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
