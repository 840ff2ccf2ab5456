//! The arguments of the client commands (`put`, `get`, `del`, `range`, `txn`, `watch`, `status`,
//! `members`, `leave`, `force-primary`), parsed by pure functions.
//!
//! Positional arguments (keys, values, prefixes) and flags mix freely; `--` ends the flags, so
//! a key may start with dashes. `--cluster` takes the members' addresses as `HOST:PORT,...` or
//! exactly as `--peers` (`ID=HOST:PORT,...`); without it `HARNESS_CLUSTER` is read.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::CliError;
use super::flags::{parse_number, walk};
use crate::auth::{Auth, ClusterKey};
use crate::client::address::parse_cluster;
use crate::client::txn_text::{parse_guard, parse_op, TxnText};

/// The environment variable read when `--cluster` is not given.
pub const CLUSTER_VARIABLE: &str = "HARNESS_CLUSTER";
/// The default bound on one client operation, failovers included.
const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// What a client command was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientArgs {
    /// The members to try, in order.
    pub cluster: Vec<SocketAddr>,
    /// Print JSON instead of text.
    pub json: bool,
    /// Serve reads from the answering member's local state.
    pub stale: bool,
    /// Bounds the whole operation.
    pub timeout: Duration,
    /// `--session ID:N`: the client id and request number of a write, to retry one exactly once.
    pub session: Option<(u64, u64)>,
    /// `--key-file`, loaded and checked: the cluster key to prove, or `None` for an open cluster.
    pub key: Option<ClusterKey>,
    /// `--encrypt`: the cluster encrypts its frames.
    pub encrypt: bool,
    /// `--cluster-name`: the name the key is bound to (the members' `--cluster-name`).
    pub cluster_name: String,
    /// `--protocol-version N`: the protocol versions spoken, up to N (docs/PROTOCOL.md §2.3).
    pub versions: crate::wire::Versions,
    /// The operation.
    pub op: ClientOp,
}

/// The operation of a client command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// `put KEY VALUE`, `put KEY --file FILE` or `put KEY -` (the value from stdin).
    Put {
        /// The key.
        key: String,
        /// Where the value comes from.
        value: ValueSource,
    },
    /// `get KEY`.
    Get {
        /// The key.
        key: String,
    },
    /// `del KEY`.
    Delete {
        /// The key.
        key: String,
    },
    /// `range PREFIX [--limit N]`.
    Range {
        /// The prefix.
        prefix: String,
        /// Most entries (0: the node's maximum).
        limit: u32,
    },
    /// `txn [--if G]... [--then OP]... [--else OP]...`; `None` reads the text from stdin.
    Txn(Option<TxnText>),
    /// `watch PREFIX [--from REV] [--count N]`.
    Watch {
        /// The prefix.
        prefix: String,
        /// The first revision (0: from now on).
        from: u64,
        /// Stop after this many events.
        count: Option<u64>,
    },
    /// `status [--each]`.
    Status {
        /// Ask every member for its own status instead of one member for its report.
        each: bool,
    },
    /// `members [--each]`.
    Members {
        /// As for `status`.
        each: bool,
    },
    /// `metrics [--each]`: the Prometheus text of one member, or of every member.
    Metrics {
        /// Ask every member instead of the first that answers.
        each: bool,
    },
    /// `leave`: the (single) member in `--cluster` leaves the group.
    Leave,
    /// `plugin load NAME`: load a plug-in on every member by distributed agreement.
    PluginLoad {
        /// The plug-in.
        name: String,
    },
    /// `member add [ID] HOST:PORT`, `member remove ID`, `member update ID HOST:PORT`: one
    /// change of the universe (docs/PROTOCOL.md §5.9).
    Member {
        /// What to change; an added member's id is chosen when `None`.
        change: MemberOp,
        /// The member's address, resolved to `IP:PORT` (add and update).
        address: Option<SocketAddr>,
    },
    /// `force-primary [--yes]`: the (single) member in `--cluster` forms a primary although a
    /// quorum is gone (docs/PROTOCOL.md §5.8); without `--yes` a dry run.
    ForcePrimary {
        /// Whether to go ahead.
        confirm: bool,
    },
}

/// A membership change as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberOp {
    /// `add`, with the id if one was given.
    Add(Option<u16>),
    /// `remove ID`.
    Remove(u16),
    /// `update ID`.
    Update(u16),
}

/// Where `harness put` takes its value from: the command line holds at most 128 KiB per
/// argument on Linux, so larger values come from a file or stdin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueSource {
    /// The argument itself.
    Argument(String),
    /// `--file FILE`.
    File(std::path::PathBuf),
    /// `-`: standard input, to its end.
    Stdin,
}

/// Parses a client command's arguments (after the command name); `env` reads `HARNESS_CLUSTER`.
pub fn parse_client_args(
    command: &'static str,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ClientArgs, CliError> {
    let mut valued = vec!["cluster", "timeout", "key-file", "cluster-name", "protocol-version"];
    let mut switches = vec!["json", "encrypt"];
    match command {
        "put" => valued.extend(["session", "file"]),
        "del" => valued.push("session"),
        "get" => switches.push("stale"),
        "range" => {
            valued.push("limit");
            switches.push("stale");
        }
        "txn" => valued.push("session"),
        "watch" => valued.extend(["from", "count"]),
        "status" | "members" | "metrics" => switches.push("each"),
        "force-primary" => switches.push("yes"),
        _ => {}
    }
    let (positional, flags, clauses) = split_arguments(args, &valued)?;
    let given = walk(command, &flags, &valued, &switches)?;
    let value = |flag: &str| given.iter().find(|g| g.flag == flag).and_then(|g| g.value.as_deref());
    let switch = |flag: &str| given.iter().any(|g| g.flag == flag);

    let cluster = match value("cluster").map(str::to_string).or_else(|| env(CLUSTER_VARIABLE)) {
        Some(list) => parse_cluster(&list).map_err(|problem| CliError::bad("cluster", &list, problem))?,
        None => return Err(CliError::Required { flags: "--cluster (or HARNESS_CLUSTER)" }),
    };
    let timeout = match value("timeout") {
        Some(text) => Duration::from_millis(parse_number("timeout", text, 100, 3_600_000)?),
        None => TIMEOUT_DEFAULT,
    };
    let session = match value("session") {
        Some(text) => Some(parse_session(text)?),
        None => None,
    };
    let expect = |names: &[&str]| -> Result<Vec<String>, CliError> {
        if positional.len() != names.len() {
            let wanted = if names.is_empty() { "no arguments".to_string() } else { names.join(" ") };
            return Err(CliError::bad(
                "arguments",
                &positional.join(" "),
                format!("`harness {command}` takes {wanted}"),
            ));
        }
        Ok(positional.clone())
    };
    if command != "txn" && !clauses.is_empty() {
        return Err(CliError::UnknownFlag {
            program: format!("harness {command}"),
            flag: "--if/--then/--else".into(),
        });
    }
    let op = match command {
        "put" => match value("file") {
            Some("") => return Err(CliError::bad("file", "", "must not be empty")),
            Some(path) => {
                let key = expect(&["KEY"]).map_err(|_| {
                    CliError::bad(
                        "arguments",
                        &positional.join(" "),
                        "`harness put KEY --file FILE` takes no VALUE",
                    )
                })?;
                ClientOp::Put { key: key[0].clone(), value: ValueSource::File(path.into()) }
            }
            None => {
                let [key, value] =
                    <[String; 2]>::try_from(expect(&["KEY", "VALUE (or - for stdin, or --file FILE)"])?)
                        .expect("two checked");
                let value = if value == "-" { ValueSource::Stdin } else { ValueSource::Argument(value) };
                ClientOp::Put { key, value }
            }
        },
        "get" => ClientOp::Get { key: expect(&["KEY"])?.remove(0) },
        "del" => ClientOp::Delete { key: expect(&["KEY"])?.remove(0) },
        "range" => {
            let limit = match value("limit") {
                Some(text) => parse_number("limit", text, 1, u64::from(u32::MAX))? as u32,
                None => 0,
            };
            ClientOp::Range { prefix: expect(&["PREFIX"])?.remove(0), limit }
        }
        "txn" => {
            expect(&[])?;
            ClientOp::Txn(if clauses.is_empty() { None } else { Some(txn_from_clauses(&clauses)?) })
        }
        "watch" => {
            let from = value("from").map(|text| parse_number("from", text, 1, u64::MAX)).transpose()?;
            let count = value("count").map(|text| parse_number("count", text, 1, u64::MAX)).transpose()?;
            ClientOp::Watch { prefix: expect(&["PREFIX"])?.remove(0), from: from.unwrap_or(0), count }
        }
        "status" => {
            expect(&[])?;
            ClientOp::Status { each: switch("each") }
        }
        "metrics" => {
            expect(&[])?;
            ClientOp::Metrics { each: switch("each") }
        }
        "plugin" => {
            let mut words = expect(&["load", "NAME"])?;
            if words[0] != "load" {
                return Err(CliError::bad(
                    "arguments",
                    &words[0],
                    "the plugin command is `plugin load NAME`",
                ));
            }
            ClientOp::PluginLoad { name: words.remove(1) }
        }
        "member" => parse_member(&positional)?,
        "members" => {
            expect(&[])?;
            ClientOp::Members { each: switch("each") }
        }
        "leave" => {
            expect(&[])?;
            if cluster.len() != 1 {
                return Err(CliError::bad(
                    "cluster",
                    value("cluster").unwrap_or(""),
                    "`harness leave` takes the address of exactly the member that should leave",
                ));
            }
            ClientOp::Leave
        }
        "force-primary" => {
            expect(&[])?;
            if cluster.len() != 1 {
                return Err(CliError::bad(
                    "cluster",
                    value("cluster").unwrap_or(""),
                    "`harness force-primary` takes the address of exactly the member to form it",
                ));
            }
            ClientOp::ForcePrimary { confirm: switch("yes") }
        }
        other => return Err(CliError::UnknownCommand { command: other.to_string() }),
    };
    let key = value("key-file").map(super::args::load_key).transpose()?;
    let encrypt = switch("encrypt");
    if encrypt && key.is_none() {
        return Err(CliError::Needs { flag: "encrypt", needs: "--key-file" });
    }
    let cluster_name = match value("cluster-name") {
        Some("") => return Err(CliError::bad("cluster-name", "", "must not be empty")),
        Some(name) => name.to_string(),
        None => crate::client::address::DEFAULT_CLUSTER.to_string(),
    };
    let versions = super::args::parse_protocol_version(value("protocol-version"))?;
    let (json, stale) = (switch("json"), switch("stale"));
    Ok(ClientArgs { cluster, json, stale, timeout, session, key, encrypt, cluster_name, versions, op })
}

impl ClientArgs {
    /// The credentials to prove: the key bound to the cluster name.
    pub fn auth(&self) -> Option<Auth> {
        self.key.as_ref().map(|key| Auth::new(key, &self.cluster_name, self.encrypt))
    }
}

/// One `--if`, `--then` or `--else` clause, in command-line order.
type Clause = (&'static str, String);

/// A command line taken apart: positional arguments, flags with their values, clauses.
type Split = (Vec<String>, Vec<String>, Vec<Clause>);

/// Separates positional arguments, flags (with their values) and transaction clauses.
fn split_arguments(args: &[String], valued: &[&'static str]) -> Result<Split, CliError> {
    let (mut positional, mut flags, mut clauses) = (Vec::new(), Vec::new(), Vec::new());
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            positional.extend(rest.by_ref().cloned());
            break;
        }
        let Some(body) = arg.strip_prefix("--") else {
            positional.push(arg.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        if let Some(clause) = ["if", "then", "else"].into_iter().find(|c| *c == name) {
            let value = match inline {
                Some(value) => value,
                None => rest.next().cloned().ok_or(CliError::MissingValue { flag: clause })?,
            };
            clauses.push((clause, value));
            continue;
        }
        flags.push(arg.clone());
        if inline.is_none() && valued.contains(&name) {
            if let Some(value) = rest.next() {
                flags.push(value.clone());
            }
        }
    }
    Ok((positional, flags, clauses))
}

fn txn_from_clauses(clauses: &[Clause]) -> Result<TxnText, CliError> {
    let mut txn = TxnText::default();
    for (clause, text) in clauses {
        let flag: &'static str = clause;
        match flag {
            "if" => txn.guards.push(parse_guard(text).map_err(|problem| CliError::bad(flag, text, problem))?),
            "then" => txn.then.push(parse_op(text).map_err(|problem| CliError::bad(flag, text, problem))?),
            _ => txn.otherwise.push(parse_op(text).map_err(|problem| CliError::bad(flag, text, problem))?),
        }
    }
    Ok(txn)
}

/// `member add [ID] HOST:PORT | remove ID | update ID HOST:PORT`.
fn parse_member(words: &[String]) -> Result<ClientOp, CliError> {
    let usage = || {
        CliError::bad(
            "arguments",
            &words.join(" "),
            "the member command is `member add [ID] HOST:PORT`, `member remove ID` or `member update ID HOST:PORT`",
        )
    };
    let id = |text: &str| parse_number("id", text, 1, u64::from(u16::MAX)).map(|id| id as u16);
    let address = |text: &str| {
        crate::client::address::parse_address(text, crate::client::address::DEFAULT_PORT)
            .map_err(|problem| CliError::bad("address", text, problem))
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let (change, address) = match words.as_slice() {
        ["add", addr] => (MemberOp::Add(None), Some(address(addr)?)),
        ["add", n, addr] => (MemberOp::Add(Some(id(n)?)), Some(address(addr)?)),
        ["remove", n] => (MemberOp::Remove(id(n)?), None),
        ["update", n, addr] => (MemberOp::Update(id(n)?), Some(address(addr)?)),
        _ => return Err(usage()),
    };
    Ok(ClientOp::Member { change, address })
}

fn parse_session(text: &str) -> Result<(u64, u64), CliError> {
    let problem = || CliError::bad("session", text, "must be CLIENT_ID:REQUEST, two numbers from 1");
    let (client, request) = text.split_once(':').ok_or_else(problem)?;
    match (client.parse::<u64>(), request.parse::<u64>()) {
        (Ok(client), Ok(request)) if client > 0 && request > 0 => Ok((client, request)),
        _ => Err(problem()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::{Check, Guard, Op};

    fn parse(command: &'static str, args: &str) -> Result<ClientArgs, CliError> {
        let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
        parse_client_args(command, &args, &|name| {
            (name == CLUSTER_VARIABLE).then(|| "127.0.0.1:7101,127.0.0.1:7102".to_string())
        })
    }

    #[test]
    fn keys_values_and_flags_mix() {
        let args = parse("put", "k --json v --cluster 1=127.0.0.1:7201,2=127.0.0.1:7202").unwrap();
        assert_eq!(args.op, ClientOp::Put { key: "k".into(), value: ValueSource::Argument("v".into()) });
        assert!(args.json);
        assert_eq!(args.cluster, ["127.0.0.1:7201".parse().unwrap(), "127.0.0.1:7202".parse().unwrap()]);
        let args = parse("get", "--stale k").unwrap();
        assert!(args.stale);
        assert_eq!(args.cluster.len(), 2, "HARNESS_CLUSTER is used without --cluster");
        assert_eq!(parse("get", "-- --odd").unwrap().op, ClientOp::Get { key: "--odd".into() });
        let args = parse("watch", "jobs/ --from 5 --count 2 --timeout 500").unwrap();
        assert_eq!(args.op, ClientOp::Watch { prefix: "jobs/".into(), from: 5, count: Some(2) });
        assert_eq!(args.timeout, Duration::from_millis(500));
        assert_eq!(parse("put", "k v --session 7:3").unwrap().session, Some((7, 3)));
    }

    #[test]
    fn a_put_value_comes_from_the_argument_a_file_or_stdin() {
        let value = |args| match parse("put", args).unwrap().op {
            ClientOp::Put { value, .. } => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value("k v"), ValueSource::Argument("v".into()));
        assert_eq!(value("k --file /tmp/v.bin"), ValueSource::File("/tmp/v.bin".into()));
        assert_eq!(value("k --file=/tmp/v.bin"), ValueSource::File("/tmp/v.bin".into()));
        assert_eq!(value("k -"), ValueSource::Stdin);
        assert_eq!(value("-- --k -"), ValueSource::Stdin);
    }

    #[test]
    fn txn_clauses_come_from_flags_or_stdin() {
        let args: Vec<String> =
            ["--if", "k = a b", "--then", "put k c", "--else=get k"].iter().map(|s| s.to_string()).collect();
        let parsed = parse_client_args("txn", &args, &|_| Some("127.0.0.1:7101".into())).unwrap();
        let ClientOp::Txn(Some(txn)) = parsed.op else { panic!("{parsed:?}") };
        assert_eq!(txn.guards, [Guard { key: b"k".to_vec(), check: Check::ValueEquals(b"a b".to_vec()) }]);
        assert_eq!(txn.then, [Op::Put { key: b"k".to_vec(), value: b"c".to_vec() }]);
        assert_eq!(txn.otherwise, [Op::Get { key: b"k".to_vec() }]);
        assert_eq!(parse("txn", "").unwrap().op, ClientOp::Txn(None));
    }

    #[test]
    fn problems_name_the_flag_or_the_arguments() {
        let check = |command, args, expected: &str| {
            assert_eq!(parse(command, args).unwrap_err().to_string(), expected, "{command} {args}");
        };
        check(
            "put",
            "k",
            "bad --arguments \"k\": `harness put` takes KEY VALUE (or - for stdin, or --file FILE)",
        );
        check("put", "k v --file f", "bad --arguments \"k v\": `harness put KEY --file FILE` takes no VALUE");
        check("status", "extra", "bad --arguments \"extra\": `harness status` takes no arguments");
        check(
            "get",
            "k --cluster 127.0.0.1:x",
            "bad --cluster \"127.0.0.1:x\": \"127.0.0.1:x\": port \"x\" is not a number in 1..=65535",
        );
        check("put", "k v --session 7", "bad --session \"7\": must be CLIENT_ID:REQUEST, two numbers from 1");
        check("get", "k --limit 3", "unknown flag --limit for `harness get` (try --help)");
        check("put", "k v --if x", "unknown flag --if/--then/--else for `harness put` (try --help)");
        check(
            "leave",
            "",
            "bad --cluster \"\": `harness leave` takes the address of exactly the member that should leave",
        );
        let missing = parse_client_args("get", &["k".to_string()], &|_| None).unwrap_err();
        assert_eq!(missing.to_string(), "--cluster (or HARNESS_CLUSTER) is required");
    }
}
