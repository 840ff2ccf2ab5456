//! Running the client commands against a cluster and printing their results: text for people,
//! `--json` for scripts, errors as one line on stderr with an exit code that says what happened.
//!
//! Exit codes: 0 done, 1 other failure, 2 bad command line, 3 not found, 4 guard failed,
//! 5 no quorum, 6 unreachable.

use std::io::{Read as _, Write};
use std::net::SocketAddr;

use super::client_args::{ClientArgs, ClientOp, MemberOp, ValueSource};
use super::table::{member_rows, render_json_rows, render_table, report_rows, MemberRow};
use crate::client::txn_text::TxnText;
use crate::client::{ClusterClient, ClusterError, ClusterOptions};
use crate::config::PAYLOAD_BYTES_MAX_DEFAULT;
use crate::ids::NodeId;
use crate::json::{self, Object};
use crate::replication::agreement::COMMITTED;
use crate::replication::command::VALUE_BYTES_MAX;
use crate::replication::{Action, Command, Session};
use crate::replication::{Entry, Outcome, Read};
use crate::replication::{MemberChange, Universe};
use crate::wire::{Consistency, NodeStatus, WatchKind};

/// Something failed that is not one of the codes below.
pub const EXIT_FAILED: i32 = 1;
/// The key does not exist.
pub const EXIT_NOT_FOUND: i32 = 3;
/// A transaction guard failed (its else branch ran).
pub const EXIT_GUARD_FAILED: i32 = 4;
/// The cluster has no primary view.
pub const EXIT_NO_QUORUM: i32 = 5;
/// No member answered.
pub const EXIT_UNREACHABLE: i32 = 6;
/// No primary view: too few members are connected for the write quorum (docs/PROTOCOL.md §5.2).
pub const EXIT_NOT_ENOUGH_REPLICAS: i32 = 7;

/// A failed client command: the exit code and the one line for stderr.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    /// The process exit code.
    pub code: i32,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }
}

impl From<ClusterError> for Failure {
    fn from(error: ClusterError) -> Failure {
        let code = match error {
            ClusterError::Unreachable { .. } => EXIT_UNREACHABLE,
            ClusterError::NoQuorum { .. } => EXIT_NO_QUORUM,
            ClusterError::NotEnoughReplicas { .. } => EXIT_NOT_ENOUGH_REPLICAS,
            ClusterError::BadRequest { .. } => super::EXIT_USAGE,
            ClusterError::Compacted { .. }
            | ClusterError::Protocol { .. }
            | ClusterError::Undecided { .. } => EXIT_FAILED,
        };
        Failure::new(code, error.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        Failure::new(EXIT_FAILED, format!("cannot write the output: {error}"))
    }
}

/// The most a put's value may hold with `key`: the encoded command must fit the payload maximum
/// (`config::PAYLOAD_BYTES_MAX_DEFAULT`, docs/PROTOCOL.md §2.2), and the value the state's own
/// limit.
pub fn put_value_bytes_max(key: &str) -> usize {
    let action = Action::Put { key: key.as_bytes().to_vec(), value: Vec::new() };
    let envelope = Command { session: Session::default(), action }.encode().len();
    PAYLOAD_BYTES_MAX_DEFAULT.saturating_sub(envelope).min(VALUE_BYTES_MAX)
}

/// The refusal of a value of `bytes` (or more) for `key`, before anything is sent.
fn too_large(what: &str, bytes: String, key: &str) -> Failure {
    Failure::new(
        super::EXIT_USAGE,
        format!(
            "{what} of {bytes} bytes is too large: a put of {key:?} carries at most {} bytes of value \
             (the payload maximum is {PAYLOAD_BYTES_MAX_DEFAULT} bytes)",
            put_value_bytes_max(key)
        ),
    )
}

/// Reads a put's value from where `source` says, refusing one over `put_value_bytes_max`
/// before it is sent (and, for a file, before it is read).
fn put_value(key: &str, source: &ValueSource, stdin: &mut dyn std::io::Read) -> Result<Vec<u8>, Failure> {
    let max = put_value_bytes_max(key);
    let value = match source {
        ValueSource::Argument(text) => text.as_bytes().to_vec(),
        ValueSource::File(path) => {
            let shown = path.display();
            let cannot = |e: std::io::Error| Failure::new(EXIT_FAILED, format!("cannot read {shown}: {e}"));
            let file = std::fs::File::open(path).map_err(cannot)?;
            let length = file.metadata().map_err(cannot)?.len();
            if length > max as u64 {
                return Err(too_large(&format!("the value in {shown}"), length.to_string(), key));
            }
            let mut value = Vec::new();
            // One byte beyond the maximum tells a file that grew while being read.
            file.take(max as u64 + 1).read_to_end(&mut value).map_err(cannot)?;
            value
        }
        ValueSource::Stdin => {
            let mut value = Vec::new();
            stdin
                .take(max as u64 + 1)
                .read_to_end(&mut value)
                .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot read stdin: {e}")))?;
            value
        }
    };
    if value.len() > max {
        let where_from =
            if matches!(source, ValueSource::Stdin) { "the value on stdin" } else { "the value" };
        let bytes = if value.len() == max + 1 { format!("more than {max}") } else { value.len().to_string() };
        return Err(too_large(where_from, bytes, key));
    }
    Ok(value)
}

/// Runs a client command, printing results to `out`; `stdin` supplies `txn`'s text when no
/// clause was given on the command line, and `put KEY -`'s value. Returns the exit code of a
/// result that is not an error (0, not found, guard failed), or the failure.
pub fn run_client(
    args: &ClientArgs,
    stdin: &mut dyn std::io::Read,
    out: &mut dyn Write,
) -> Result<i32, Failure> {
    let options = ClusterOptions {
        request_timeout: args.timeout.min(ClusterOptions::default().request_timeout),
        deadline: args.timeout,
        auth: args.auth(),
        versions: args.versions,
    };
    let mut cluster = ClusterClient::new(&args.cluster, options.clone())?;
    if let Some((client_id, request)) = args.session {
        cluster.set_session(client_id, request)?;
    }
    let consistency = if args.stale { Consistency::Stale } else { Consistency::Linearizable };
    match &args.op {
        ClientOp::Put { key, value } => {
            let value = put_value(key, value, stdin)?;
            let outcome = cluster.put(key.as_bytes(), &value)?;
            print_outcome(args.json, key, &outcome, out)
        }
        ClientOp::Delete { key } => {
            let outcome = cluster.delete(key.as_bytes())?;
            print_outcome(args.json, key, &outcome, out)
        }
        ClientOp::Get { key } => {
            let (entry, revision) = cluster.get(key.as_bytes(), consistency)?;
            match entry {
                Some(entry) if args.json => writeln!(out, "{}", entry_json(&entry, Some(revision)))?,
                Some(entry) => writeln!(out, "{}", String::from_utf8_lossy(&entry.value))?,
                None if args.json => {
                    let json = Object::new().str("key", key).bool("found", false).uint("revision", revision);
                    writeln!(out, "{}", json.finish())?;
                    return Ok(EXIT_NOT_FOUND);
                }
                None => return Err(Failure::new(EXIT_NOT_FOUND, format!("key {key:?} not found"))),
            }
            Ok(0)
        }
        ClientOp::Range { prefix, limit } => {
            let (entries, more, revision) = cluster.range(prefix.as_bytes(), *limit, consistency)?;
            if args.json {
                let entries = json::array(entries.iter().map(|e| entry_json(e, None)));
                let json =
                    Object::new().uint("revision", revision).bool("more", more).raw("entries", &entries);
                writeln!(out, "{}", json.finish())?;
            } else {
                for entry in &entries {
                    writeln!(out, "{}", entry_line(entry))?;
                }
                if more {
                    writeln!(out, "(more keys under {prefix:?}; raise --limit)")?;
                }
            }
            Ok(0)
        }
        ClientOp::PluginLoad { name } => {
            let (decision, revision) = cluster.load_plugin(name)?;
            print_decision(args.json, name, &decision, revision, out)
        }
        ClientOp::Txn(text) => {
            let txn = match text {
                Some(txn) => txn.clone(),
                None => {
                    let mut text = String::new();
                    stdin
                        .take(PAYLOAD_BYTES_MAX_DEFAULT as u64)
                        .read_to_string(&mut text)
                        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot read stdin: {e}")))?;
                    TxnText::parse(&text).map_err(|problem| {
                        Failure::new(super::EXIT_USAGE, format!("bad transaction on stdin: {problem}"))
                    })?
                }
            };
            let outcome = cluster.txn(txn.guards, txn.then, txn.otherwise)?;
            print_txn(args.json, &outcome, out)
        }
        ClientOp::Watch { prefix, from, count } => {
            let mut watcher = cluster.watch(prefix.as_bytes(), *from)?;
            let mut seen: u64 = 0;
            // A watch without --count runs until interrupted; each wait is bounded by --timeout
            // only so that a vanished cluster is reported rather than waited on silently.
            while count.is_none_or(|count| seen < count) {
                let Some(event) = watcher.next(args.timeout)? else {
                    continue;
                };
                seen += 1;
                let kind = if event.kind == WatchKind::Put { "put" } else { "delete" };
                if args.json {
                    let json = Object::new()
                        .str("type", kind)
                        .bytes("key", &event.key)
                        .bytes("value", &event.value)
                        .uint("revision", event.revision);
                    writeln!(out, "{}", json.finish())?;
                } else if event.kind == WatchKind::Put {
                    writeln!(
                        out,
                        "PUT {} {} (revision {})",
                        String::from_utf8_lossy(&event.key),
                        String::from_utf8_lossy(&event.value),
                        event.revision
                    )?;
                } else {
                    writeln!(
                        out,
                        "DELETE {} (revision {})",
                        String::from_utf8_lossy(&event.key),
                        event.revision
                    )?;
                }
                out.flush()?;
            }
            Ok(0)
        }
        ClientOp::Status { each } | ClientOp::Members { each } => {
            let rows = if *each {
                gather_rows(&mut cluster, &args.cluster)?
            } else {
                let (members, status) = cluster.view_report()?;
                report_rows(&members, &status)
            };
            let status = matches!(args.op, ClientOp::Status { .. });
            if args.json {
                writeln!(out, "{}", render_json_rows(&rows, status))?;
            } else {
                write!(out, "{}", render_table(&rows, status))?;
            }
            Ok(0)
        }
        ClientOp::Metrics { each } => {
            let statuses: Vec<NodeStatus> = if *each {
                gather_rows(&mut cluster, &args.cluster)?.into_iter().filter_map(|row| row.status).collect()
            } else {
                vec![cluster.view_report()?.1]
            };
            if args.json {
                let members = json::array(statuses.iter().map(|s| {
                    Object::new()
                        .uint("id", u64::from(s.member.id.0))
                        .raw("metrics", &crate::metrics::render_json(&s.metrics))
                        .finish()
                }));
                writeln!(out, "{}", Object::new().raw("members", &members).finish())?;
            } else {
                let members: Vec<(u16, &[crate::metrics::Sample])> =
                    statuses.iter().map(|s| (s.member.id.0, &s.metrics[..])).collect();
                write!(out, "{}", crate::metrics::render_prometheus(&members))?;
            }
            Ok(0)
        }
        ClientOp::Leave => {
            let addr = args.cluster[0];
            let mut client = crate::client::Client::connect_speaking(
                addr,
                options.request_timeout,
                options.auth.as_ref(),
                options.versions,
            )
            .map_err(|e| Failure::new(EXIT_UNREACHABLE, e.to_string()))?;
            client.leave().map_err(|e| Failure::new(EXIT_FAILED, e.to_string()))?;
            if args.json {
                writeln!(out, "{}", Object::new().str("leaving", &addr.to_string()).finish())?;
            } else {
                writeln!(out, "{addr} is leaving the group")?;
            }
            Ok(0)
        }
        ClientOp::Member { change, address } => run_member(&mut cluster, args.json, *change, *address, out),
        ClientOp::ForcePrimary { confirm } => {
            let addr = args.cluster[0];
            // The member waits for every reachable member and then runs a view change.
            let mut client = crate::client::Client::connect_speaking(
                addr,
                args.timeout,
                options.auth.as_ref(),
                options.versions,
            )
            .map_err(|e| Failure::new(EXIT_UNREACHABLE, e.to_string()))?;
            let confirm = *confirm;
            let (formed, report) = client.force_primary(confirm).map_err(|e| match e {
                crate::client::ClientError::Rejected { message, .. } => {
                    Failure::new(EXIT_FAILED, format!("force-primary refused by {addr}: {message}"))
                }
                other => Failure::new(EXIT_FAILED, other.to_string()),
            })?;
            if args.json {
                let json =
                    Object::new().bool("formed", formed).bool("dry_run", !confirm).str("report", &report);
                writeln!(out, "{}", json.finish())?;
            } else {
                writeln!(out, "{report}")?;
                if !confirm {
                    writeln!(out, "(dry run: nothing was changed; add --yes to do it)")?;
                }
            }
            Ok(0)
        }
    }
}

/// Asks some member for the member list, then every member for its status (`--each`: one
/// connection per member, so for small clusters or a closer look).
/// One change of the universe (docs/PROTOCOL.md §5.9); prints the universe it made.
fn run_member(
    cluster: &mut ClusterClient,
    json: bool,
    op: MemberOp,
    address: Option<SocketAddr>,
    out: &mut dyn Write,
) -> Result<i32, Failure> {
    let address = address.map(|a| a.to_string());
    let change = match op {
        MemberOp::Add(Some(id)) => MemberChange::Add(NodeId(id)),
        MemberOp::Add(None) => {
            let universe = cluster.universe()?;
            let id = universe.next_id().ok_or_else(|| Failure::new(EXIT_FAILED, "no member id is left"))?;
            MemberChange::Add(id)
        }
        MemberOp::Remove(id) => MemberChange::Remove(NodeId(id)),
        MemberOp::Update(id) => MemberChange::Update(NodeId(id)),
    };
    let universe = cluster.change_universe(change, address.as_deref())?;
    if json {
        let members = json::array(
            universe
                .members
                .iter()
                .map(|(id, addr)| Object::new().uint("id", u64::from(id.0)).str("address", addr).finish()),
        );
        let (kind, id) = match change {
            MemberChange::Add(id) => ("add", id),
            MemberChange::Remove(id) => ("remove", id),
            MemberChange::Update(id) => ("update", id),
        };
        let line = Object::new()
            .str("change", kind)
            .uint("id", u64::from(id.0))
            .uint("epoch", universe.epoch)
            .raw("members", &members)
            .finish();
        writeln!(out, "{line}")?;
    } else {
        match change {
            MemberChange::Add(id) => {
                let addr = address.unwrap_or_default();
                writeln!(out, "added member {} at {addr} (universe epoch {})", id.0, universe.epoch)?;
                writeln!(
                    out,
                    "start it with: harness node --id {} --listen {addr} --join {}",
                    id.0,
                    join_list(&universe, id)
                )?;
            }
            MemberChange::Remove(id) => {
                writeln!(out, "removed member {} (universe epoch {})", id.0, universe.epoch)?
            }
            MemberChange::Update(id) => writeln!(
                out,
                "member {} now at {} (universe epoch {}); restart it there with its --data-dir",
                id.0,
                address.unwrap_or_default(),
                universe.epoch
            )?,
        }
    }
    Ok(0)
}

/// The other members' addresses, for a joiner's `--join`.
fn join_list(universe: &Universe, except: NodeId) -> String {
    let others: Vec<&str> =
        universe.members.iter().filter(|(id, _)| **id != except).map(|(_, a)| a.as_str()).take(3).collect();
    others.join(",")
}

fn gather_rows(cluster: &mut ClusterClient, given: &[SocketAddr]) -> Result<Vec<MemberRow>, Failure> {
    let members = cluster.members()?;
    let statuses = members
        .iter()
        .map(|member| {
            // A member configured by name is asked at that name; one the node cannot tell us
            // about (it should not happen) falls back to the addresses we were given.
            let addr =
                crate::client::address::parse_address(&member.addr, crate::client::address::DEFAULT_PORT)
                    .ok();
            let addr = addr.or_else(|| given.get(usize::from(member.id.0).saturating_sub(1)).copied());
            addr.and_then(|addr| cluster.status_of(addr).ok())
        })
        .collect();
    Ok(member_rows(&members, statuses))
}

/// Prints a plug-in agreement's decision; an abort exits 1 with its reason.
fn print_decision(
    json: bool,
    name: &str,
    decision: &str,
    revision: u64,
    out: &mut dyn Write,
) -> Result<i32, Failure> {
    let committed = decision == COMMITTED;
    if json {
        let json = Object::new()
            .str("plugin", name)
            .bool("committed", committed)
            .str("decision", decision)
            .uint("revision", revision);
        writeln!(out, "{}", json.finish())?;
    } else if committed {
        writeln!(out, "loaded {name} on every member (revision {revision})")?;
    }
    if committed {
        Ok(0)
    } else if json {
        Ok(EXIT_FAILED)
    } else {
        Err(Failure::new(EXIT_FAILED, format!("plug-in {name} not loaded: {decision}")))
    }
}

fn print_outcome(json: bool, key: &str, outcome: &Outcome, out: &mut dyn Write) -> Result<i32, Failure> {
    match outcome {
        Outcome::Ok { revision, .. } => {
            if json {
                writeln!(out, "{}", Object::new().bool("ok", true).uint("revision", *revision).finish())?;
            } else {
                writeln!(out, "OK (revision {revision})")?;
            }
            Ok(0)
        }
        Outcome::NotFound { revision } if json => {
            let json = Object::new()
                .bool("ok", false)
                .bool("found", false)
                .str("key", key)
                .uint("revision", *revision);
            writeln!(out, "{}", json.finish())?;
            Ok(EXIT_NOT_FOUND)
        }
        Outcome::NotFound { .. } => Err(Failure::new(EXIT_NOT_FOUND, format!("key {key:?} not found"))),
        other => Err(Failure::new(EXIT_FAILED, format!("unexpected outcome {other:?}"))),
    }
}

fn print_txn(json: bool, outcome: &Outcome, out: &mut dyn Write) -> Result<i32, Failure> {
    let (succeeded, revision, deleted, reads) = match outcome {
        Outcome::Ok { revision, deleted, reads } => (true, revision, deleted, reads),
        Outcome::GuardFailed { revision, deleted, reads } => (false, revision, deleted, reads),
        other => return Err(Failure::new(EXIT_FAILED, format!("unexpected outcome {other:?}"))),
    };
    if json {
        let reads = json::array(reads.iter().map(|read| match read {
            Read::Get(Some(entry)) => Object::new().raw("get", &entry_json(entry, None)).finish(),
            Read::Get(None) => Object::new().raw("get", "null").finish(),
            Read::Range { entries, more } => {
                let entries = json::array(entries.iter().map(|e| entry_json(e, None)));
                Object::new().raw("range", &entries).bool("more", *more).finish()
            }
        }));
        let json = Object::new()
            .bool("succeeded", succeeded)
            .uint("revision", *revision)
            .uint("deleted", *deleted)
            .raw("reads", &reads);
        writeln!(out, "{}", json.finish())?;
    } else {
        let branch = if succeeded {
            "OK: guards held, then-branch applied"
        } else {
            "GUARD FAILED: else-branch applied"
        };
        writeln!(out, "{branch} (revision {revision}, {deleted} deleted)")?;
        for read in reads {
            match read {
                Read::Get(Some(entry)) => writeln!(out, "{}", entry_line(entry))?,
                Read::Get(None) => writeln!(out, "(missing)")?,
                Read::Range { entries, more } => {
                    for entry in entries {
                        writeln!(out, "{}", entry_line(entry))?;
                    }
                    if *more {
                        writeln!(out, "(more keys not shown)")?;
                    }
                }
            }
        }
    }
    Ok(if succeeded { 0 } else { EXIT_GUARD_FAILED })
}

/// `KEY VALUE`, as `range` prints one entry.
fn entry_line(entry: &Entry) -> String {
    format!("{} {}", String::from_utf8_lossy(&entry.key), String::from_utf8_lossy(&entry.value))
}

fn entry_json(entry: &Entry, revision: Option<u64>) -> String {
    let json = Object::new()
        .bytes("key", &entry.key)
        .bytes("value", &entry.value)
        .uint("create_revision", entry.create_revision)
        .uint("mod_revision", entry.mod_revision)
        .uint("version", entry.version);
    match revision {
        Some(revision) => json.uint("revision", revision).finish(),
        None => json.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> Entry {
        Entry { key: key.into(), value: value.into(), create_revision: 2, mod_revision: 5, version: 3 }
    }

    fn txn_output(json: bool, outcome: Outcome) -> (String, i32) {
        let mut out = Vec::new();
        let code = print_txn(json, &outcome, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), code)
    }

    #[test]
    fn a_failed_guard_prints_the_else_reads_and_exits_4() {
        let outcome = Outcome::GuardFailed {
            revision: 9,
            deleted: 0,
            reads: vec![Read::Get(Some(entry("lock", "alice"))), Read::Get(None)],
        };
        let (text, code) = txn_output(false, outcome.clone());
        assert_eq!(code, EXIT_GUARD_FAILED);
        assert_eq!(
            text,
            "GUARD FAILED: else-branch applied (revision 9, 0 deleted)\nlock alice\n(missing)\n"
        );
        let (json, _) = txn_output(true, outcome);
        assert_eq!(
            json,
            "{\"succeeded\":false,\"revision\":9,\"deleted\":0,\"reads\":[{\"get\":{\"key\":\"lock\",\
             \"value\":\"alice\",\"create_revision\":2,\"mod_revision\":5,\"version\":3}},{\"get\":null}]}\n"
        );
    }

    #[test]
    fn a_put_value_over_the_payload_maximum_is_refused_naming_the_limit() {
        let max = put_value_bytes_max("k");
        // The payload maximum less the put's envelope for a one-byte key (the README quotes it).
        assert_eq!(max, 1_048_549);
        assert!(put_value_bytes_max(&"k".repeat(1000)) == max - 999);
        let limit = format!(
            "a put of \"k\" carries at most {max} bytes of value (the payload maximum is 1048576 bytes)"
        );

        // Stdin: read to its end up to the maximum, refused one byte beyond it.
        let exact = vec![7u8; max];
        assert_eq!(put_value("k", &ValueSource::Stdin, &mut exact.as_slice()).unwrap(), exact);
        let over = vec![7u8; max + 10];
        let failure = put_value("k", &ValueSource::Stdin, &mut over.as_slice()).unwrap_err();
        assert_eq!(failure.code, super::super::EXIT_USAGE);
        assert_eq!(
            failure.message,
            format!("the value on stdin of more than {max} bytes is too large: {limit}")
        );
        assert!(!failure.message.contains('\n'));

        // A file: refused by its length before it is read; a missing one named with the cause.
        let dir = std::env::temp_dir().join(format!("harness-put-value-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (fits, big) = (dir.join("fits.bin"), dir.join("big.bin"));
        std::fs::write(&fits, &exact).unwrap();
        std::fs::write(&big, &over).unwrap();
        let nothing = &mut std::io::empty();
        assert_eq!(put_value("k", &ValueSource::File(fits.clone()), nothing).unwrap(), exact);
        let failure = put_value("k", &ValueSource::File(big.clone()), nothing).unwrap_err();
        assert_eq!(
            failure.message,
            format!("the value in {} of {} bytes is too large: {limit}", big.display(), max + 10)
        );
        let missing = dir.join("missing.bin");
        let failure = put_value("k", &ValueSource::File(missing.clone()), nothing).unwrap_err();
        assert_eq!(failure.code, EXIT_FAILED);
        assert!(failure.message.starts_with(&format!("cannot read {}: ", missing.display())), "{failure:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn not_found_is_exit_3_and_errors_map_to_their_codes() {
        let mut out = Vec::new();
        let failure = print_outcome(false, "k", &Outcome::NotFound { revision: 1 }, &mut out).unwrap_err();
        assert_eq!(failure, Failure::new(EXIT_NOT_FOUND, "key \"k\" not found"));
        let no_quorum = Failure::from(ClusterError::NoQuorum { message: "minority".into() });
        assert_eq!(no_quorum.code, EXIT_NO_QUORUM);
        let unreachable = Failure::from(ClusterError::Unreachable { attempts: 3, last: None });
        assert_eq!(
            (unreachable.code, unreachable.message.as_str()),
            (EXIT_UNREACHABLE, "no member reachable after 3 attempts")
        );
    }
}
