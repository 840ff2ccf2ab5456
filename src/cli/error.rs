//! `CliError`: a bad command line or a node that cannot start, as one line naming the flag.
//!
//! The binary prints `harness: <error>` to stderr and exits with `EXIT_USAGE`, so scripts
//! and operators see exactly one line that says which flag to fix.

use std::fmt;

use crate::error::{ConfigError, Error};

/// The exit code of every command-line or start-up error.
pub const EXIT_USAGE: i32 = 2;

/// What is wrong with the command line, or why the node could not start.
#[derive(Debug)]
pub enum CliError {
    /// No command was given.
    MissingCommand,
    /// The first argument is not a command.
    UnknownCommand {
        /// What was given.
        command: String,
    },
    /// A flag the command does not know.
    UnknownFlag {
        /// The program and command, e.g. `harness node` or `harness-sim`.
        program: String,
        /// The flag as given.
        flag: String,
    },
    /// An argument that is not a flag.
    Stray {
        /// The argument.
        argument: String,
    },
    /// A flag that needs a value came last or before another flag.
    MissingValue {
        /// The flag.
        flag: &'static str,
    },
    /// A flag given twice.
    Repeated {
        /// The flag.
        flag: &'static str,
    },
    /// A flag whose value is not acceptable.
    BadValue {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why it is not acceptable.
        problem: String,
    },
    /// A required flag is missing.
    Required {
        /// What must be given, e.g. "--peers or --hostfile".
        flags: &'static str,
    },
    /// A flag that only works together with another.
    Needs {
        /// The flag given.
        flag: &'static str,
        /// What it needs, e.g. "--key-file".
        needs: &'static str,
    },
    /// Two flags that exclude each other.
    Conflict {
        /// The first flag.
        first: &'static str,
        /// The second flag.
        second: &'static str,
    },
    /// A flag spelled the old way, which now means something else or has a new name.
    Renamed {
        /// The old spelling, without dashes.
        old: &'static str,
        /// What to write instead, without the leading dashes.
        new: &'static str,
    },
    /// A line of `--config FILE` that is wrong, or sets a flag to a wrong value.
    InConfig {
        /// The file, as given.
        file: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// `--slurm` could not derive the membership from the job's environment.
    Slurm(String),
    /// A setting rejected by the configuration's own validation.
    Config(ConfigError),
    /// The node did not start (e.g. its address is in use).
    Start(Error),
    /// The running node failed or could not stop cleanly.
    Runtime(Error),
}

impl CliError {
    /// The process exit code: `EXIT_USAGE` for the command line and start-up, 1 for a node
    /// that failed while running.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Runtime(_) => 1,
            _ => EXIT_USAGE,
        }
    }

    /// A bad value of `flag`.
    pub fn bad(flag: &'static str, value: &str, problem: impl Into<String>) -> CliError {
        CliError::BadValue { flag, value: value.to_string(), problem: problem.into() }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::MissingCommand => write!(f, "no command given (try --help)"),
            CliError::UnknownCommand { command } => write!(f, "unknown command {command:?} (try --help)"),
            CliError::UnknownFlag { program, flag } => {
                write!(f, "unknown flag {flag} for `{program}` (try --help)")
            }
            CliError::Stray { argument } => {
                write!(f, "unexpected argument {argument:?} (flags start with --)")
            }
            CliError::MissingValue { flag } => write!(f, "--{flag} needs a value"),
            CliError::Repeated { flag } => write!(f, "--{flag} is given twice"),
            CliError::BadValue { flag, value, problem } => write!(f, "bad --{flag} {value:?}: {problem}"),
            CliError::Required { flags } => write!(f, "{flags} is required"),
            CliError::Needs { flag, needs } => write!(f, "--{flag} needs {needs}"),
            CliError::Conflict { first, second } => write!(f, "--{first} and --{second} exclude each other"),
            CliError::Renamed { old, new } => {
                write!(f, "--{old} is not a flag of `harness node`: name the cluster with --{new}")
            }
            CliError::InConfig { file, line, problem } => write!(f, "{file} line {line}: {problem}"),
            CliError::Slurm(problem) => write!(f, "--slurm: {problem}"),
            CliError::Config(e) => e.fmt(f),
            CliError::Start(e) => write!(f, "cannot start: {e}"),
            CliError::Runtime(e) => write!(f, "node failed: {e}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Config(e) => Some(e),
            CliError::Start(e) | CliError::Runtime(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> CliError {
        CliError::Config(e)
    }
}
