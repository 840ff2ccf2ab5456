//! The `harness` command line as operators meet it: a bad flag or an address in use is one
//! line on stderr naming the flag or address, exit code 2; `--help` and `--version` (of every
//! binary) exit 0; a node stops cleanly on SIGTERM.

use crate::common;

use std::net::TcpListener;
use std::process::Command;

use nix::sys::signal::Signal;
use std::time::Duration;

use common::{run_harness, wait_until, HARNESS};

const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `args`, expects exit code 2 and exactly one stderr line `harness: ...` containing each
/// of `names`.
fn expect_usage_error(args: &[&str], names: &[&str]) {
    let output = run_harness(args, DEADLINE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?} printed {stderr:?}");
    assert!(lines[0].starts_with("harness: "), "{stderr}");
    for name in names {
        assert!(lines[0].contains(name), "{args:?}: {stderr:?} does not name {name}");
    }
}

#[test]
fn bad_flags_are_one_line_naming_the_flag_and_exit_2() {
    let peers = "1=127.0.0.1:7101,2=127.0.0.1:7102";
    expect_usage_error(&[], &["command"]);
    expect_usage_error(&["serve"], &["serve"]);
    expect_usage_error(&["node", "--peers", peers], &["--id"]);
    expect_usage_error(&["node", "--id", "1"], &["--peers", "--hostfile"]);
    expect_usage_error(&["node", "--id", "x", "--peers", peers], &["--id", "\"x\""]);
    expect_usage_error(&["node", "--id", "1", "--peers", peers, "--verbose"], &["--verbose"]);
    expect_usage_error(&["node", "--id", "1", "--peers", peers, "--ring"], &["--ring"]);
    expect_usage_error(&["node", "--id", "1", "--peers", peers, "--ring", "both"], &["--ring"]);
    expect_usage_error(&["node", "--id", "3", "--peers", peers], &["--id", "peer list"]);
    expect_usage_error(
        &["node", "--id", "1", "--peers", "1=127.0.0.1:7101,1=127.0.0.1:7102"],
        &["--peers", "twice"],
    );
    expect_usage_error(&["node", "--id", "1", "--peers", "1=127.0.0.1:nope"], &["--peers", "nope"]);
    expect_usage_error(&["node", "--id", "1", "--peers", peers, "--listen", "127.0.0.1:x"], &["--listen"]);
    expect_usage_error(
        &["node", "--id", "1", "--peers", peers, "--hostfile", "hosts"],
        &["--peers", "--hostfile"],
    );
    expect_usage_error(
        &["node", "--id", "1", "--peers", peers, "--token-timeout", "0"],
        &["--token-timeout"],
    );
    expect_usage_error(
        &["node", "--id", "1", "--peers", peers, "--delivery-log", "/nonexistent/dir/deliveries.log"],
        &["--delivery-log", "/nonexistent/dir/deliveries.log"],
    );
    expect_usage_error(&["demo", "--nodes", "0"], &["--nodes"]);
    expect_usage_error(&["demo", "--nodes", "3", "--kill", "3"], &["--kill"]);
    expect_usage_error(&["demo", "--ring", "uni", "--json=1"], &["--json"]);
}

#[test]
fn hostfile_problems_name_the_hostfile() {
    let dir = std::env::temp_dir().join(format!("harness-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing");
    expect_usage_error(
        &["node", "--id", "1", "--hostfile", missing.to_str().unwrap()],
        &["--hostfile", "missing"],
    );
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "# two hosts\n127.0.0.1:7101\n\n127.0.0.1\n").unwrap();
    expect_usage_error(&["node", "--id", "3", "--hostfile", hosts.to_str().unwrap()], &["--id", "peer list"]);
    std::fs::write(&hosts, "127.0.0.1:7101\n127.0.0.1:7101\n").unwrap();
    expect_usage_error(
        &["node", "--id", "1", "--hostfile", hosts.to_str().unwrap()],
        &["--hostfile", "line 2"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keygen_writes_a_private_key_once_and_bad_key_files_are_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("harness-cli-key-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("cluster.key");
    let key_text = key.to_str().unwrap();
    let output = run_harness(&["keygen", "--key-file", key_text], DEADLINE);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("fingerprint"));
    let metadata = std::fs::metadata(&key).unwrap();
    assert_eq!((metadata.len(), metadata.permissions().mode() & 0o777), (32, 0o600));
    // Never overwritten: that would lock the cluster out.
    expect_usage_error(&["keygen", "--key-file", key_text], &["--key-file", "already exists"]);
    expect_usage_error(&["keygen"], &["--key-file"]);

    let peers = "1=127.0.0.1:7101,2=127.0.0.1:7102";
    let node = |extra: &[&str]| {
        let mut args = vec!["node", "--id", "1", "--peers", peers];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let expect = |extra: &[&str], names: &[&str]| {
        let args = node(extra);
        expect_usage_error(&args.iter().map(String::as_str).collect::<Vec<_>>(), names);
    };
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    expect(&["--key-file", key_text], &["--key-file", "every user", "chmod 600"]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let short = dir.join("short.key");
    std::fs::write(&short, [1u8; 16]).unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    expect(&["--key-file", short.to_str().unwrap()], &["--key-file", "16 bytes", "32"]);
    expect(&["--key-file", dir.join("missing").to_str().unwrap()], &["--key-file", "missing"]);
    expect(&["--encrypt"], &["--encrypt", "--key-file"]);
    expect(&["--encrypt=yes", "--key-file", key_text], &["--encrypt"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_prints_usage_and_exits_0() {
    for args in [&["--help"][..], &["node", "--help"], &["demo", "--nodes", "3", "--help"]] {
        let output = run_harness(args, DEADLINE);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("harness node --id N"), "{stdout}");
        assert!(stdout.contains("--hostfile FILE"), "{stdout}");
    }
}

#[test]
fn every_binary_prints_name_and_version_and_exits_0() {
    let version = env!("CARGO_PKG_VERSION");
    let binaries = [
        ("harness", HARNESS),
        ("harness-sim", env!("CARGO_BIN_EXE_harness-sim")),
        ("harness-bench", env!("CARGO_BIN_EXE_harness-bench")),
        ("harness-check", env!("CARGO_BIN_EXE_harness-check")),
    ];
    for (name, exe) in binaries {
        let output = Command::new(exe).arg("--version").env("RUST_LOG", "off").output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{name} --version");
        assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{name} {version}\n"), "{name}");
        assert!(output.stderr.is_empty(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let output = run_harness(&["version"], DEADLINE);
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("harness {version}\n"));
    let help = run_harness(&["--help"], DEADLINE);
    assert!(String::from_utf8_lossy(&help.stdout).contains("harness --version"));
}

#[test]
fn harness_sim_and_harness_bench_refuse_bad_usage_in_one_line_naming_the_flag() {
    let sim = env!("CARGO_BIN_EXE_harness-sim");
    let bench = env!("CARGO_BIN_EXE_harness-bench");
    for (exe, args, names) in [
        (
            sim,
            &["--seeds", "0..2", "--speed", "3"][..],
            &["harness-sim: ", "unknown flag --speed", "--help"][..],
        ),
        (sim, &["--seed"], &["--seed needs a value"]),
        (sim, &["--seed", "1", "--nodes"], &["--nodes needs a value"]),
        (sim, &["--seed", "x"], &["bad --seed \"x\""]),
        (sim, &["--seed", "1", "--nodes", "0"], &["bad --nodes \"0\"", "1..=256"]),
        (sim, &["--seeds", "5..2"], &["bad --seeds", "A < B"]),
        (sim, &["--seed", "1", "--seeds", "0..2"], &["--seed and --seeds exclude each other"]),
        (sim, &["--seed", "1", "--seed", "2"], &["--seed is given twice"]),
        (sim, &["--seed", "1", "--ring", "round"], &["bad --ring \"round\""]),
        (sim, &["--seed", "1", "--state-bytes", "3 parsecs"], &["bad --state-bytes"]),
        (sim, &["--seed", "1", "--witnesses", "5"], &["bad --witnesses"]),
        (sim, &["cost", "--seed", "1"], &["unknown flag --seed for `harness-sim cost`"]),
        (sim, &["--nodes", "3"], &["--seed S or --seeds A..B is required"]),
        (sim, &["seeds"], &["unexpected argument \"seeds\""]),
        (bench, &["--fast"], &["harness-bench: ", "unknown flag --fast for `harness-bench`"]),
        (bench, &["--nodes", "1"], &["bad --nodes"]),
    ] {
        let output = Command::new(exe).args(args).env("RUST_LOG", "off").output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        for name in names {
            assert!(stderr.contains(name), "{args:?}: {stderr:?} does not say {name:?}");
        }
    }
}

#[test]
fn an_address_in_use_is_named_and_exits_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    expect_usage_error(&["node", "--id", "1", "--peers", &format!("1={addr}")], &[&addr]);
    // The same with the address also given as --listen.
    let peers = format!("1=127.0.0.1:1,2={addr}");
    expect_usage_error(&["node", "--id", "2", "--listen", &addr, "--peers", &peers], &[&addr]);
}

#[test]
fn a_lone_node_stops_cleanly_on_sigterm() {
    // A ring of one: it needs no peer, so this holds for any node runtime.
    let addr = common::free_ports(1)[0];
    let mut child = Command::new(HARNESS)
        .args(["node", "--id", "1", "--peers", &format!("1={addr}")])
        .env("RUST_LOG", "off")
        .spawn()
        .unwrap();
    wait_until("the node to listen", Duration::from_millis(20), 1000, DEADLINE, || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    harness::procs::signal_child(&mut child, Signal::SIGTERM).unwrap();
    let mut status = None;
    wait_until("the node to exit", Duration::from_millis(20), 1000, DEADLINE, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success(), "{status:?}");
}

/// Runs a lone node with `extra` flags at log level warn until it listens, stops it with
/// SIGTERM and returns what it logged.
fn lone_node_log(extra: &[&str]) -> String {
    let addr = common::free_ports(1)[0];
    let mut child = Command::new(HARNESS)
        .args(["node", "--id", "1", "--peers", &format!("1={addr}")])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the node to listen", Duration::from_millis(20), 1000, DEADLINE, || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    harness::procs::signal_child(&mut child, Signal::SIGTERM).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_node_without_a_key_says_once_that_it_runs_open() {
    let open = lone_node_log(&[]);
    let warnings: Vec<&str> = open.lines().filter(|l| l.contains("running open")).collect();
    assert_eq!(warnings.len(), 1, "{open}");
    assert!(warnings[0].contains("WARN") && warnings[0].contains("--key-file"), "{open}");

    let dir = std::env::temp_dir().join(format!("harness-cli-open-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("cluster.key");
    harness::auth::ClusterKey::generate().unwrap().write_new(&key).unwrap();
    let keyed = lone_node_log(&["--key-file", key.to_str().unwrap()]);
    assert!(!keyed.contains("running open"), "{keyed}");
    std::fs::remove_dir_all(&dir).unwrap();
}
