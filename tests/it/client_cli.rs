//! The client commands and the C API against a real 3-node cluster on loopback
//! (docs/PROTOCOL.md §8): put/get/del/range/txn/watch/status/members in both output forms, the
//! exit codes that distinguish not found and guard failed, a write retried after its member was
//! killed that is not applied twice, and the C example compiled with `cc` and run.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{init_logging, wait_until, Nodes, HARNESS};
use harness::RingMode;

const DEADLINE: Duration = Duration::from_secs(30);

/// A 3-node ring, started and primary with all three members.
fn cluster(name: &str) -> Nodes {
    init_logging();
    let mut nodes = Nodes::new(name, 3, RingMode::Bidirectional);
    nodes.token_timeout = Some(Duration::from_millis(400));
    for id in 1..=3 {
        nodes.start(id);
    }
    let addrs = nodes.addrs.clone();
    wait_until("a primary view of three", Duration::from_millis(50), 2000, DEADLINE, || {
        addrs.iter().all(|addr| common::status(*addr).is_some_and(|s| s.primary && s.ring.len() == 3))
    });
    nodes
}

/// A 3-node ring whose members run with `--key-file key --encrypt`, started and primary with
/// all three members (asked through `harness status` with the key).
fn encrypted_cluster(name: &str, key: &Path) -> Nodes {
    init_logging();
    let mut nodes = Nodes::new(name, 3, RingMode::Bidirectional);
    nodes.token_timeout = Some(Duration::from_millis(400));
    nodes.key_file = Some(key.to_path_buf());
    nodes.flags.push("--encrypt".to_string());
    for id in 1..=3 {
        nodes.start(id);
    }
    let key = key.display().to_string();
    wait_until("a keyed primary view of three", Duration::from_millis(50), 400, DEADLINE, || {
        nodes.addrs.iter().all(|addr| {
            let args = ["status", "--json", "--key-file", &key, "--encrypt", "--cluster", &addr.to_string()];
            let status = String::from_utf8_lossy(&common::run_harness(&args, DEADLINE).stdout).into_owned();
            status.contains("\"primary\":true") && status.matches("\"reachable\":true").count() == 3
        })
    });
    nodes
}

fn cluster_list(nodes: &Nodes) -> String {
    nodes.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")
}

/// Runs `harness args` with `--cluster` from `HARNESS_CLUSTER`, feeding `stdin`; bounded.
fn client(nodes: &Nodes, args: &[&str], stdin: &str) -> Output {
    let cluster = cluster_list(nodes);
    common::run_harness_with(args, &[("HARNESS_CLUSTER", &cluster)], stdin, DEADLINE)
}

/// Runs a client command and expects `code`; returns its stdout.
fn expect(nodes: &Nodes, args: &[&str], stdin: &str, code: i32) -> String {
    let output = client(nodes, args, stdin);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "harness {args:?}: stdout {stdout:?} stderr {stderr:?}");
    stdout
}

/// The number after `"field":` in a JSON line.
fn json_number(json: &str, field: &str) -> u64 {
    let at = json.find(&format!("\"{field}\":")).unwrap_or_else(|| panic!("no {field} in {json}"));
    let digits: String = json[at + field.len() + 3..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().unwrap_or_else(|_| panic!("{field} in {json} is not a number"))
}

#[test]
fn cli_round_trips_against_a_three_node_cluster() {
    let nodes = cluster("client-cli");
    let put = expect(&nodes, &["put", "app/a", "one"], "", 0);
    assert!(put.starts_with("OK (revision "), "{put}");
    let put = expect(&nodes, &["put", "app/b", "two words", "--json"], "", 0);
    let revision = json_number(&put, "revision");
    assert!(put.starts_with("{\"ok\":true"), "{put}");

    assert_eq!(expect(&nodes, &["get", "app/b"], "", 0), "two words\n");
    let get = expect(&nodes, &["get", "app/b", "--json", "--stale"], "", 0);
    assert!(get.contains("\"key\":\"app/b\",\"value\":\"two words\""), "{get}");
    assert_eq!(json_number(&get, "mod_revision"), revision);
    let missing = client(&nodes, &["get", "app/none"], "");
    assert_eq!(missing.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&missing.stderr), "harness: key \"app/none\" not found\n");
    expect(&nodes, &["del", "app/none"], "", 3);

    assert_eq!(expect(&nodes, &["range", "app/"], "", 0), "app/a one\napp/b two words\n");
    let range = expect(&nodes, &["range", "app/", "--json", "--limit", "1"], "", 0);
    assert!(range.contains("\"more\":true"), "{range}");

    // A compare-and-set from flags: it holds once, then its guard fails (exit 4).
    let cas = ["txn", "--if", "app/a = one", "--then", "put app/a uno", "--else", "get app/a"];
    assert!(expect(&nodes, &cas, "", 0).starts_with("OK: guards held"));
    let failed = expect(&nodes, &cas, "", 4);
    assert!(failed.starts_with("GUARD FAILED") && failed.ends_with("app/a uno\n"), "{failed}");
    // The same from stdin, in JSON.
    let text = "# version check\nif app/a version = 2\nthen del app/b\nthen range app/\n";
    let txn = expect(&nodes, &["txn", "--json"], text, 0);
    assert!(txn.starts_with("{\"succeeded\":true"), "{txn}");
    assert!(txn.contains("\"deleted\":1") && txn.contains("\"value\":\"uno\""), "{txn}");
    expect(&nodes, &["txn"], "when nothing\n", 2);

    // A watch from the next revision sees the following put and delete, in order.
    let next = json_number(&expect(&nodes, &["get", "app/a", "--json"], "", 0), "revision") + 1;
    let watch = Command::new(HARNESS)
        .args(["watch", "app/", "--from", &next.to_string(), "--count", "2", "--json"])
        .args(["--cluster", &cluster_list(&nodes)])
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    expect(&nodes, &["put", "app/c", "three"], "", 0);
    expect(&nodes, &["del", "app/c"], "", 0);
    let mut watch = watch;
    wait_until("the watch to see two events", Duration::from_millis(20), 2000, DEADLINE, || {
        matches!(watch.try_wait(), Ok(Some(_)))
    });
    let events = String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap();
    let lines: Vec<&str> = events.lines().collect();
    assert_eq!(lines.len(), 2, "{events}");
    assert!(lines[0].starts_with("{\"type\":\"put\",\"key\":\"app/c\",\"value\":\"three\""), "{events}");
    assert!(lines[1].starts_with("{\"type\":\"delete\",\"key\":\"app/c\""), "{events}");
    assert_eq!(json_number(lines[0], "revision"), next);

    let status = expect(&nodes, &["status"], "", 0);
    let lines: Vec<&str> = status.lines().collect();
    assert!(lines[0].contains(" primary, ring [") && lines[0].contains("rotations/s"), "{status}");
    assert!(lines[1].starts_with("ID  ADDRESS"), "{status}");
    assert_eq!(lines.len(), 5, "{status}");
    // --hot defaults to 2: the two lowest ids are hot, the third is a warm standby.
    let roles: Vec<bool> = lines[2..].iter().map(|line| line.contains(" hot ")).collect();
    assert_eq!(roles, [true, true, false], "{status}");
    assert!(lines[4].contains(" warm "), "{status}");
    let status = expect(&nodes, &["status", "--json"], "", 0);
    assert!(status.starts_with("{\"view\":") && status.contains("\"primary\":true"), "{status}");
    assert_eq!(json_number(&status, "revision"), next + 1);
    assert_eq!(status.matches("\"role\":\"hot\"").count(), 2, "{status}");
    assert_eq!(status.matches("\"role\":\"warm\"").count(), 1, "{status}");
    assert!(status.contains(&format!("{{\"id\":1,\"addr\":\"{}\"", nodes.addr(1))), "{status}");
    let members = expect(&nodes, &["members", "--json"], "", 0);
    assert!(members.starts_with("{\"members\":[") && members.matches("\"reachable\":true").count() == 3);
}

#[test]
fn values_too_large_for_an_argument_come_from_a_file_or_stdin() {
    let nodes = cluster("client-cli-values");
    // 300 KiB: more than Linux lets one command-line argument hold (128 KiB).
    let value = "v".repeat(300 << 10);
    let file = nodes.dir().join("value.txt");
    std::fs::write(&file, &value).unwrap();
    let file = file.display().to_string();
    assert!(expect(&nodes, &["put", "big/file", "--file", &file], "", 0).starts_with("OK (revision "));
    assert_eq!(expect(&nodes, &["get", "big/file"], "", 0), format!("{value}\n"));
    assert!(expect(&nodes, &["put", "big/stdin", "-"], &value, 0).starts_with("OK (revision "));
    assert_eq!(expect(&nodes, &["get", "big/stdin", "--stale"], "", 0), format!("{value}\n"));

    // Exactly the most a put of this key may carry: accepted by the client and by the node.
    let exact = "e".repeat(harness::cli::put_value_bytes_max("big/exact"));
    let exact_file = nodes.dir().join("exact.txt");
    std::fs::write(&exact_file, &exact).unwrap();
    let exact_file = exact_file.display().to_string();
    assert!(expect(&nodes, &["put", "big/exact", "--file", &exact_file], "", 0).starts_with("OK (revision "));
    assert_eq!(expect(&nodes, &["get", "big/exact"], "", 0).len(), exact.len() + 1);

    // Over the payload maximum (1 MiB with the put's key and header): refused before anything
    // is sent, in one line naming the limit, and nothing is stored.
    let huge = "h".repeat(3 << 19);
    let huge_file = nodes.dir().join("huge.txt");
    std::fs::write(&huge_file, &huge).unwrap();
    for (args, stdin) in [
        (vec!["put", "big/huge", "--file", &huge_file.display().to_string()], ""),
        (vec!["put", "big/huge", "-"], &huge),
    ] {
        let output = client(&nodes, &args, stdin);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("the payload maximum is 1048576 bytes"), "{stderr}");
    }
    expect(&nodes, &["get", "big/huge"], "", 3);

    // A file that cannot be read: one line naming it, exit 1, nothing stored.
    let missing = nodes.dir().join("missing.txt").display().to_string();
    let output = client(&nodes, &["put", "big/missing", "--file", &missing], "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with(&format!("harness: cannot read {missing}: ")), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    expect(&nodes, &["get", "big/missing"], "", 3);
}

#[test]
fn a_write_retried_after_its_member_is_killed_is_applied_once() {
    let mut nodes = cluster("client-retry");
    // The write goes to member 1 first (the first address), with a fixed session.
    let first = expect(&nodes, &["put", "once", "v", "--session", "77:1", "--json"], "", 0);
    let revision = json_number(&first, "revision");
    nodes.kill(1);
    // The retry of the same session fails over to a live member and is answered from the
    // exactly-once table: same revision, and the key was written once (version 1).
    let retry = expect(&nodes, &["put", "once", "v", "--session", "77:1", "--json"], "", 0);
    assert_eq!(json_number(&retry, "revision"), revision, "{retry}");
    let get = expect(&nodes, &["get", "once", "--json"], "", 0);
    assert_eq!(json_number(&get, "version"), 1, "{get}");
    // The next request of that session is new and applies.
    let next = expect(&nodes, &["put", "once", "w", "--session", "77:2", "--json"], "", 0);
    assert!(json_number(&next, "revision") > revision);
    let status = expect(&nodes, &["status", "--json"], "", 0);
    assert!(status.contains("\"role\":\"down\""), "{status}");
    let unreachable = Command::new(HARNESS)
        .args(["get", "once", "--timeout", "300", "--cluster", &nodes.addr(1).to_string()])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(6));
}

/// Where cargo put the library and the binary.
fn target_dir() -> PathBuf {
    PathBuf::from(HARNESS).parent().unwrap().to_path_buf()
}

/// Compiles examples/c_client.c against libharness.a and runs it with `args`, bounded.
fn run_c_example(name: &str, args: &[&str]) -> Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let program = std::env::temp_dir().join(format!("harness-c-{name}-{}", std::process::id()));
    let library = target_dir().join("libharness.a");
    assert!(
        library.exists(),
        "{} is missing: `make test` builds it with `cargo build --release` first",
        library.display()
    );
    let compiled = Command::new("cc")
        .arg(root.join("examples/c_client.c"))
        .arg("-I")
        .arg(root.join("include"))
        .arg(&library)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&program)
        .output()
        .unwrap();
    assert!(compiled.status.success(), "cc: {}", String::from_utf8_lossy(&compiled.stderr));
    let mut child =
        Command::new(&program).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("the C example to finish", Duration::from_millis(20), 5000, DEADLINE, || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    let output = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&program);
    output
}

/// Asserts that the C example ran every step and exited 0.
fn assert_c_example_passed(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("get: hello from C"), "{stdout}");
    assert!(stdout.contains("txn: guard failed as expected"), "{stdout}");
    assert!(stdout.contains("watch: PUT c/state moved"), "{stdout}");
    assert!(stdout.ends_with("c_client: ok\n"), "{stdout}");
}

#[test]
fn the_c_example_runs_against_the_cluster() {
    let nodes = cluster("client-c");
    assert_c_example_passed(&run_c_example("open", &[&cluster_list(&nodes)]));
}

#[test]
fn the_c_example_proves_the_key_of_an_encrypted_cluster_and_a_wrong_key_is_refused() {
    let dir = std::env::temp_dir().join(format!("harness-test-c-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, wrong) = (dir.join("cluster.key"), dir.join("wrong.key"));
    for file in [&key, &wrong] {
        let _ = std::fs::remove_file(file);
        let made = common::run_harness(&["keygen", "--key-file", &file.display().to_string()], DEADLINE);
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    let nodes = encrypted_cluster("client-c-keyed", &key);
    let list = cluster_list(&nodes);
    let key_arg = key.display().to_string();
    assert_c_example_passed(&run_c_example("keyed", &[&list, &key_arg, "encrypt"]));

    // Another key: every member refuses the handshake, so no request is answered.
    let refused = run_c_example("wrong-key", &[&list, &wrong.display().to_string(), "encrypt"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("c_client: put: "), "{stderr}");
    // A key file others can read is refused before any connection, naming the problem.
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o644)).unwrap();
    let unsafe_key = run_c_example("open-key", &[&list, &wrong.display().to_string()]);
    let stderr = String::from_utf8_lossy(&unsafe_key.stderr);
    assert_eq!(unsafe_key.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("connect: key file") && stderr.contains("chmod 600"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
