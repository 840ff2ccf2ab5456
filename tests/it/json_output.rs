//! The JSON every command prints, read back with a real parser (serde_json) rather than by
//! searching the text: the client commands against a 3-node ring on loopback (with keys and
//! values that need escaping), `harness demo --json`, `harness-sim --json` (campaign and cost
//! table) and `harness-check verify`. `harness-bench --json` is parsed in `bench_smoke`.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{init_logging, wait_until, Nodes, HARNESS};
use harness::RingMode;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);
const SIM: &str = env!("CARGO_BIN_EXE_harness-sim");
const CHECK: &str = env!("CARGO_BIN_EXE_harness-check");

/// Parses `text` as exactly one JSON value, naming the command on failure.
fn parse(what: &str, text: &str) -> Value {
    serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("{what}: {e} in {text:?}"))
}

/// Runs `exe args` to completion (bounded by the command's own flags) and returns its stdout,
/// expecting exit code `code`.
fn stdout_of(exe: &str, args: &[&str], code: i32) -> String {
    let output = Command::new(exe).args(args).env("RUST_LOG", "off").stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{exe} {args:?}: {stdout} {stderr}");
    stdout
}

#[test]
fn every_client_command_prints_json_a_parser_reads() {
    init_logging();
    let mut nodes = Nodes::new("json-output", 3, RingMode::Bidirectional);
    nodes.token_timeout = Some(Duration::from_millis(400));
    for id in 1..=3 {
        nodes.start(id);
    }
    let addrs = nodes.addrs.clone();
    wait_until("a primary view of three", Duration::from_millis(50), 2000, DEADLINE, || {
        addrs.iter().all(|addr| common::status(*addr).is_some_and(|s| s.primary && s.ring.len() == 3))
    });
    let cluster = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    // The command, then the flags, then its arguments (which may follow `--`).
    let run = |args: &[&str], code: i32| -> Value {
        let mut full = vec![args[0], "--json", "--cluster", &cluster];
        full.extend_from_slice(&args[1..]);
        let output = common::run_harness(&full, DEADLINE);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stdout} {stderr}");
        parse(&format!("harness {args:?}"), &stdout)
    };

    // A key and a value with every character class the escaping must handle.
    let key = "json/\"quoted\" \\ tab\tnew\nline\u{1}é";
    let value = "v\r\u{1f}\u{7f}/end";
    let put = run(&["put", "--", key, value], 0);
    assert_eq!(put["ok"], true);
    let revision = put["revision"].as_u64().unwrap();
    let get = run(&["get", "--", key], 0);
    assert_eq!((get["key"].as_str(), get["value"].as_str()), (Some(key), Some(value)), "{get}");
    assert_eq!((get["mod_revision"].as_u64(), get["version"].as_u64()), (Some(revision), Some(1)));
    assert!(get["revision"].as_u64().unwrap() >= revision);
    let missing = run(&["get", "json/none"], 3);
    assert_eq!((missing["key"].as_str(), missing["found"].as_bool()), (Some("json/none"), Some(false)));
    let deleted = run(&["del", "json/none"], 3);
    assert_eq!((deleted["ok"].as_bool(), deleted["found"].as_bool()), (Some(false), Some(false)));
    run(&["put", "json/plain", "p"], 0);
    let range = run(&["range", "json/", "--limit", "1"], 0);
    assert_eq!(range["more"], true);
    assert_eq!(range["entries"].as_array().unwrap().len(), 1, "{range}");
    assert_eq!(range["entries"][0]["key"].as_str(), Some(key));

    let txn = run(&["txn", "--if", "json/plain = p", "--then", "get json/plain", "--then", "range json/"], 0);
    assert_eq!((txn["succeeded"].as_bool(), txn["deleted"].as_u64()), (Some(true), Some(0)));
    assert_eq!(txn["reads"][0]["get"]["value"], "p");
    assert_eq!(txn["reads"][1]["range"].as_array().unwrap().len(), 2, "{txn}");
    assert_eq!(txn["reads"][1]["more"], false);
    let failed = run(&["txn", "--if", "json/plain = q", "--else", "get json/nothing"], 4);
    assert_eq!((failed["succeeded"].as_bool(), failed["reads"][0]["get"].is_null()), (Some(false), true));

    let plugin = run(&["plugin", "load", "none-has-it"], 1);
    assert_eq!(
        (plugin["plugin"].as_str(), plugin["committed"].as_bool()),
        (Some("none-has-it"), Some(false))
    );
    assert!(plugin["decision"].is_string(), "{plugin}");

    // A watch prints one object a line.
    let from = (run(&["get", "json/plain"], 0)["revision"].as_u64().unwrap() + 1).to_string();
    let watch = Command::new(HARNESS)
        .args(["watch", "json/", "--from", &from, "--count", "2", "--json", "--cluster", &cluster])
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    run(&["put", "--", "json/w\"", "x\ny"], 0);
    run(&["del", "--", "json/w\""], 0);
    let mut watch = watch;
    wait_until("the watch to see two events", Duration::from_millis(20), 2000, DEADLINE, || {
        matches!(watch.try_wait(), Ok(Some(_)))
    });
    let events = String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap();
    let events: Vec<Value> = events.lines().map(|line| parse("watch", line)).collect();
    assert_eq!(events.len(), 2);
    assert_eq!((events[0]["type"].as_str(), events[0]["value"].as_str()), (Some("put"), Some("x\ny")));
    assert_eq!((events[1]["type"].as_str(), events[1]["key"].as_str()), (Some("delete"), Some("json/w\"")));

    let status = run(&["status"], 0);
    assert_eq!(status["primary"], true);
    assert!(status["view"].is_u64() && status["rotation_rate"].is_f64(), "{status}");
    let members = status["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for member in members {
        assert_eq!(member["reachable"], true, "{member}");
        assert!(member["id"].is_u64() && member["addr"].is_string() && member["lag"].is_u64(), "{member}");
    }
    // The answering member reports its software version; the others' come with `--each`.
    let versions: Vec<&str> = members.iter().filter_map(|m| m["version"].as_str()).collect();
    assert_eq!(versions, [env!("CARGO_PKG_VERSION")], "{status}");
    let each = run(&["status", "--each"], 0);
    let versions: Vec<&str> =
        each["members"].as_array().unwrap().iter().filter_map(|m| m["version"].as_str()).collect();
    assert_eq!(versions, [env!("CARGO_PKG_VERSION"); 3], "{each}");
    // `--each` asks every member itself, so a killed one is down at once.
    nodes.kill(3);
    let members = run(&["members", "--each"], 0);
    let down: Vec<&Value> =
        members["members"].as_array().unwrap().iter().filter(|m| m["reachable"] == false).collect();
    assert_eq!(down.len(), 1, "{members}");
    assert_eq!((down[0]["role"].as_str(), down[0]["view"].is_null()), (Some("down"), true));
    assert!(members.get("view").is_none(), "members has no summary fields: {members}");
}

#[test]
fn demo_sim_and_check_print_json_a_parser_reads() {
    let demo = stdout_of(HARNESS, &["demo", "--nodes", "2", "--messages", "20", "--json"], 0);
    let summary = parse("harness demo --json", demo.lines().last().unwrap());
    assert_eq!((summary["nodes"].as_u64(), summary["verified"].as_bool()), (Some(2), Some(true)));
    assert_eq!(summary["delivered"].as_array().unwrap().len(), 2, "{summary}");
    assert!(summary["digests"][0].is_string() && summary["seconds"].is_f64(), "{summary}");

    let campaign = parse("harness-sim --json", &stdout_of(SIM, &["--seeds", "0..3", "--json"], 0));
    assert_eq!((campaign["seeds"].as_u64(), campaign["violations"].as_u64()), (Some(3), Some(0)));
    assert_eq!(
        (campaign["ring"].as_str(), campaign["failed"].as_array().map(Vec::len)),
        (Some("bi"), Some(0))
    );
    let cost = parse("harness-sim cost --json", &stdout_of(SIM, &["cost", "--nodes", "4", "--json"], 0));
    let rows = cost.as_array().unwrap();
    let broadcasts = rows.iter().filter(|row| row["operation"] != "view_change").count();
    assert_eq!(broadcasts, 4, "one row per operation (and one for the view change): {cost}");
    assert!(rows.iter().all(|row| row["n"] == 4 && row["o"].is_u64() && row["operation"].is_string()));

    let dir = std::env::temp_dir().join(format!("harness-json-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("good.history");
    std::fs::write(&history, "1 0 10 put k a -> ok\n2 5 20 get k -> a\n").unwrap();
    let verify = stdout_of(CHECK, &["verify", history.to_str().unwrap()], 0);
    let verdict = parse("harness-check verify", verify.lines().next().unwrap());
    assert_eq!((verdict["ops"].as_u64(), verdict["verdict"].as_str()), (Some(2), Some("linearizable")));
    std::fs::remove_dir_all(&dir).unwrap();
}
