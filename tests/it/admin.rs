//! What a cluster admin relies on, against real processes on loopback: the metrics text is the
//! Prometheus exposition format and its counters move with traffic (`harness metrics`, the
//! `--listen-metrics` endpoint, `status --json`); systemd's notify socket (one the test binds)
//! receives READY=1, a watchdog ping and STOPPING=1; a config file's values apply, the command
//! line wins, and a bad line is refused naming the file and the line; the Grafana dashboard in
//! docs/ queries only families the catalog has.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_harness, wait_until, Nodes, HARNESS};
use harness::RingMode;
use nix::sys::signal::Signal;

const DEADLINE: Duration = Duration::from_secs(30);

/// One sample line of the exposition format.
#[derive(Debug)]
struct Line {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses `text` strictly as the Prometheus text exposition format 0.0.4: `# HELP` and `# TYPE`
/// once per family and before its samples, metric and label names of `[a-zA-Z_:][a-zA-Z0-9_:]*`,
/// quoted label values with only `\\`, `\"` and `\n` escapes, a float value, one line each.
fn parse_exposition(text: &str) -> Vec<Line> {
    let valid = |name: &str| {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: Vec<String> = Vec::new();
    let mut lines = Vec::new();
    assert!(text.ends_with('\n'), "the text ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(valid(name), "HELP of a bad name: {line}");
            assert!(!helped.contains(&name.to_string()), "HELP twice: {line}");
            helped.push(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(valid(name), "TYPE of a bad name: {line}");
            assert!(["counter", "gauge", "untyped", "summary", "histogram"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice: {line}");
            assert!(!lines.iter().any(|l: &Line| l.name == name), "TYPE after samples: {line}");
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
        let (name, rest) = match line.find('{') {
            Some(at) => (&line[..at], &line[at..]),
            None => line.split_once(' ').unwrap(),
        };
        assert!(valid(name), "bad metric name in {line:?}");
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let mut key = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' if key.is_empty() => {
                        end = Some(i + 1);
                        break;
                    }
                    ',' if key.is_empty() => {}
                    '=' => {
                        assert!(valid(&key) && !key.starts_with("__"), "bad label name {key:?} in {line}");
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "unquoted value in {line}");
                        let mut value = String::new();
                        loop {
                            match chars.next().map(|(_, c)| c) {
                                Some('"') => break,
                                Some('\\') => match chars.next().map(|(_, c)| c) {
                                    Some('\\') => value.push('\\'),
                                    Some('"') => value.push('"'),
                                    Some('n') => value.push('\n'),
                                    other => panic!("bad escape {other:?} in {line}"),
                                },
                                Some(c) => value.push(c),
                                None => panic!("unterminated label value in {line}"),
                            }
                        }
                        assert!(
                            labels.insert(std::mem::take(&mut key), value).is_none(),
                            "label twice: {line}"
                        );
                    }
                    c => key.push(c),
                }
            }
            rest = &inner[end.unwrap_or_else(|| panic!("unclosed labels in {line}"))..];
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("no space before the value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let family = typed.get(name).unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        assert!(helped.iter().any(|h| h == name), "sample without HELP: {line}");
        if family == "counter" {
            assert!(value >= 0.0, "negative counter: {line}");
        }
        lines.push(Line { name: name.to_string(), labels, value });
    }
    lines
}

/// The value of `name` for `member` (and `label`, when given), which must be there.
fn value_of(lines: &[Line], name: &str, member: u16, label: Option<(&str, &str)>) -> f64 {
    lines
        .iter()
        .find(|l| {
            l.name == name
                && l.labels.get("member") == Some(&member.to_string())
                && label.is_none_or(|(k, v)| l.labels.get(k).map(String::as_str) == Some(v))
        })
        .unwrap_or_else(|| panic!("no {name} for member {member}"))
        .value
}

/// `harness metrics` with `args` against `cluster`; its stdout.
fn metrics(cluster: &str, args: &[&str]) -> String {
    let mut all = vec!["metrics", "--cluster", cluster];
    all.extend_from_slice(args);
    let output = run_harness(&all, DEADLINE);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// `GET path` from the HTTP endpoint at `addr`: the whole answer.
fn http_get(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn metrics_are_prometheus_text_and_move_with_traffic() {
    common::init_logging();
    let mut nodes = Nodes::new("admin-metrics", 3, RingMode::Bidirectional);
    nodes.token_timeout = Some(Duration::from_millis(400));
    let scrape = common::free_ports(1)[0];
    nodes.member_flags.insert(1, vec!["--listen-metrics".into(), scrape.to_string()]);
    for id in 1..=3 {
        nodes.start(id);
    }
    let cluster: Vec<String> = nodes.addrs.iter().map(|a| a.to_string()).collect();
    let cluster = cluster.join(",");
    wait_until("a primary view of 3", Duration::from_millis(100), 1000, DEADLINE, || {
        nodes.addrs.iter().all(|a| common::status(*a).is_some_and(|s| s.primary && s.ring.len() == 3))
    });

    let before = parse_exposition(&metrics(&cluster, &["--each"]));
    for member in 1..=3 {
        assert_eq!(value_of(&before, "harness_primary", member, None), 1.0);
        assert_eq!(value_of(&before, "harness_replicas", member, None), 3.0);
        assert!(value_of(&before, "harness_resident_memory_bytes", member, None) > 0.0);
    }
    let installs: f64 = before
        .iter()
        .filter(|l| l.name == "harness_view_changes_total" && l.labels["member"] == "1")
        .map(|l| l.value)
        .sum();
    assert!(installs >= 1.0, "the first view counts");

    let delivered_before = value_of(&before, "harness_delivered_total", 2, None);
    common::submit(nodes.addr(2), 2, 200, DEADLINE);
    common::wait_for_total(&nodes.addrs, delivered_before as u64 + 200, DEADLINE);
    let one = parse_exposition(&metrics(&nodes.addr(2).to_string(), &[]));
    assert!(one.iter().all(|l| l.labels["member"] == "2"), "without --each, the member that answers");
    assert_eq!(value_of(&one, "harness_delivered_total", 2, None), delivered_before + 200.0);
    assert!(
        value_of(&one, "harness_token_rotations_total", 2, None)
            > value_of(&before, "harness_token_rotations_total", 2, None)
    );
    assert!(value_of(&one, "harness_committed_seq", 2, None) >= 200.0);
    // Member 2 sent the 200 payloads of 64 bytes round the ring and read them from its client
    // (counted as handshake bytes while an open node's client is not yet known to be one: its
    // first read may hold many requests); from its peers it read only tokens.
    let from_client = |lines: &[Line]| {
        ["clients", "handshakes"]
            .iter()
            .map(|link| value_of(lines, "harness_read_bytes_total", 2, Some(("link", link))))
            .sum::<f64>()
    };
    assert!(from_client(&one) >= from_client(&before) + 200.0 * 64.0);
    for (family, link, least) in
        [("harness_written_bytes_total", "peers", 200.0 * 64.0), ("harness_read_bytes_total", "peers", 1.0)]
    {
        let was = value_of(&before, family, 2, Some(("link", link)));
        let now = value_of(&one, family, 2, Some(("link", link)));
        assert!(now >= was + least, "{family} {link}: {was} then {now}");
    }
    // And by neighbour: member 2's two links carried the payloads out between them.
    let by_peer = |lines: &[Line], peer: &str| {
        let family = "harness_link_written_bytes_total";
        lines
            .iter()
            .any(|l| l.name == family && l.labels.get("peer").map(String::as_str) == Some(peer))
            .then(|| value_of(lines, family, 2, Some(("peer", peer))))
    };
    let (mut sent, mut read) = (0.0, 0.0);
    for peer in ["1", "3"] {
        let now = by_peer(&one, peer).unwrap_or_else(|| panic!("no bytes to peer {peer}"));
        sent += now - by_peer(&before, peer).unwrap_or(0.0);
        read += value_of(&one, "harness_link_read_bytes_total", 2, Some(("peer", peer)));
    }
    // From its neighbours it read at least the tokens.
    assert!(sent >= 200.0 * 64.0 && read > 0.0, "{sent} bytes to the neighbours, {read} from them");
    // A client refused for a frame that does not decode is counted by its cause.
    let malformed_before = value_of(&one, "harness_refused_total", 2, Some(("cause", "malformed")));
    let mut junk = TcpStream::connect(nodes.addr(2)).unwrap();
    junk.write_all(&[0, 0, 0, 9, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    wait_until("the malformed frame to be counted", Duration::from_millis(50), 400, DEADLINE, || {
        let now = parse_exposition(&metrics(&nodes.addr(2).to_string(), &[]));
        value_of(&now, "harness_refused_total", 2, Some(("cause", "malformed"))) > malformed_before
    });

    // The same text over HTTP from member 1, and nothing else.
    let reply = http_get(scrape, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK") && head.contains("text/plain; version=0.0.4"), "{head}");
    let scraped = parse_exposition(body);
    assert!(scraped.iter().all(|l| l.labels["member"] == "1"));
    assert_eq!(value_of(&scraped, "harness_delivered_total", 1, None), delivered_before + 200.0);
    assert!(http_get(scrape, "GET /debug HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http_get(scrape, "DELETE /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));

    // status --json carries the same counters.
    let output = run_harness(&["status", "--cluster", &cluster, "--each", "--json"], DEADLINE);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let member = &json["members"][1]["metrics"];
    assert_eq!(member["delivered_total"].as_f64(), Some(delivered_before + 200.0), "{member}");
    assert!(member["refused_total"]["malformed"].as_u64().unwrap() >= 1, "{member}");
    assert!(member["queue_bytes"]["submit"].is_u64(), "{member}");
    assert!(member["max_step_seconds"].is_f64() || member["max_step_seconds"].is_u64(), "{member}");
}

/// Starts a lone member with `env` and `extra` flags; returns the child and its address.
fn lone_node(env: &[(&str, &str)], extra: &[&str]) -> (std::process::Child, SocketAddr) {
    let addr = common::free_ports(1)[0];
    let child = Command::new(HARNESS)
        .args(["node", "--id", "1", "--peers", &format!("1={addr}")])
        .args(extra)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, addr)
}

#[test]
fn the_notify_socket_receives_ready_watchdog_and_stopping() {
    let dir = std::env::temp_dir().join(format!("harness-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let (mut child, _) =
        lone_node(&[("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "200000")], &[]);
    let mut seen: Vec<String> = Vec::new();
    let receive_until = |what: &str, seen: &mut Vec<String>| {
        let give_up = Instant::now() + DEADLINE;
        for _ in 0..10_000 {
            if seen.iter().any(|m| m.lines().any(|l| l == what)) {
                return;
            }
            assert!(Instant::now() < give_up, "no {what} in {seen:?}");
            let mut buffer = [0u8; 4096];
            if let Ok(n) = socket.recv(&mut buffer) {
                seen.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
            }
        }
        panic!("no {what} in {seen:?}");
    };
    receive_until("READY=1", &mut seen);
    let ready = seen.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(ready.contains("STATUS=view ") && ready.contains(" primary"), "{ready}");
    assert_eq!(seen.iter().filter(|m| m.contains("READY=1")).count(), 1);
    receive_until("WATCHDOG=1", &mut seen);
    harness::procs::signal_child(&mut child, Signal::SIGTERM).unwrap();
    receive_until("STOPPING=1", &mut seen);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_config_file_applies_the_command_line_wins_and_a_bad_line_is_named() {
    let dir = std::env::temp_dir().join(format!("harness-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let addr = common::free_ports(1)[0];
    let from_file = dir.join("from-file.log");
    let from_flag = dir.join("from-flag.log");
    let conf = dir.join("harness.conf");
    std::fs::write(
        &conf,
        format!(
            "# a lone member\nid = 1\npeers = 1={addr}\ncluster-name = \"lab one\"\n\
             delivery-log = {}\ntoken-timeout = 300  # ms\n",
            from_file.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(HARNESS)
        .args(["node", "--config", conf.to_str().unwrap(), "--delivery-log", from_flag.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the configured member to be primary", Duration::from_millis(50), 1000, DEADLINE, || {
        common::status(addr).is_some_and(|s| s.primary)
    });
    common::submit(addr, 1, 5, DEADLINE);
    harness::procs::signal_child(&mut child, Signal::SIGTERM).unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("cluster lab one"), "the file's cluster name applies: {log}");
    assert_eq!(std::fs::read_to_string(&from_flag).unwrap().lines().count(), 5, "the flag wins");
    assert!(!from_file.exists(), "the file's delivery log is overridden");

    std::fs::write(&conf, format!("id = 1\npeers = 1={addr}\n\nhot = many\n")).unwrap();
    let output = run_harness(&["node", "--config", conf.to_str().unwrap()], DEADLINE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("harness: {} line 4: bad --hot \"many\": must be a number in 1..=65535", conf.display())
    );
    std::fs::write(&conf, "id = 1\nlisten 127.0.0.1:1\n").unwrap();
    let output = run_harness(&["node", "--config", conf.to_str().unwrap()], DEADLINE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!("harness: {} line 2: \"listen 127.0.0.1:1\" is not KEY = VALUE", conf.display())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A well-formed frame of protocol `version`: a status request (kind 0x41) numbered 7.
fn frame_of_version(version: u8) -> Vec<u8> {
    let mut covered = vec![version, 0x41];
    covered.extend_from_slice(&7u64.to_be_bytes());
    let mut frame = ((covered.len() + 4) as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&covered);
    frame.extend_from_slice(&crc32fast::hash(&covered).to_be_bytes());
    frame
}

#[test]
fn a_client_or_member_of_another_protocol_version_is_refused_naming_both_versions() {
    // Versions 1 to 2 (docs/PROTOCOL.md §2.3); 3 is outside the range.
    let ours = harness::wire::Versions::ALL;
    let theirs = ours.max + 1;
    let expected = |theirs: u8, ours: harness::wire::Versions| {
        format!(
            "protocol version {theirs} is not supported: this member or client (harness {}) speaks protocol versions {ours}",
            env!("CARGO_PKG_VERSION")
        )
    };
    // A newer client reaches this member: it answers in its own version, naming both, and closes.
    let (mut child, addr) = lone_node(&[], &[]);
    wait_until("the member to listen", Duration::from_millis(20), 1000, DEADLINE, || {
        TcpStream::connect(addr).is_ok()
    });
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(&frame_of_version(theirs)).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let total = harness::wire::frame_len(&reply).unwrap().expect("a whole reply before the close");
    match harness::wire::decode(&reply[..total]).unwrap() {
        harness::wire::Frame::Reply(harness::wire::ClientReply::Error { message, .. }) => {
            assert_eq!(message, expected(theirs, ours))
        }
        other => panic!("not an error reply: {other:?}"),
    }
    harness::procs::signal_child(&mut child, Signal::SIGTERM).unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("refused 127.0.0.1:") && log.contains(&expected(theirs, ours)), "{log}");

    // A member of another version answers this client: the client's error names both versions.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        // Bounded: the client tries a few times within its --timeout.
        for _ in 0..20 {
            let Ok((mut conn, _)) = listener.accept() else { return };
            let _ = conn.write_all(&frame_of_version(theirs));
            std::thread::sleep(Duration::from_millis(50));
            if conn.peer_addr().is_err() {
                return;
            }
        }
    });
    let output = run_harness(&["status", "--cluster", &fake.to_string(), "--timeout", "1500"], DEADLINE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0));
    assert!(stderr.contains(&expected(theirs, ours)), "{stderr}");
    drop(server);
}

#[test]
fn the_grafana_dashboard_queries_only_families_of_the_catalog() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{path}");
    let mut queried = 0;
    for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        let expr = target["expr"].as_str().unwrap();
        for (at, _) in expr.match_indices(harness::metrics::PREFIX) {
            let name: String =
                expr[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let family = &name[harness::metrics::PREFIX.len()..];
            assert!(harness::metrics::find(family).is_some(), "{expr}: {name} is not in the catalog");
            queried += 1;
        }
    }
    assert!(queried >= 10);
}

/// `count` puts of keys `prefix-i` through the member at `addr`.
fn puts(addr: SocketAddr, prefix: &str, count: usize) {
    for i in 0..count {
        let key = format!("{prefix}-{i}");
        let output = run_harness(&["put", &key, "v", "--cluster", &addr.to_string()], DEADLINE);
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    }
}

/// The delivery log's lines at `path` once it holds `count`: it is flushed every 100 ms.
fn lines_of(path: &std::path::Path, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    wait_until("the delivery log's lines", Duration::from_millis(20), 1000, DEADLINE, || {
        lines = std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect();
        lines.len() >= count
    });
    lines
}

#[test]
fn sighup_reopens_the_delivery_log_after_a_rename_and_the_member_stays() {
    let dir = std::env::temp_dir().join(format!("harness-test-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("deliveries.log");
    let (mut child, addr) = lone_node(&[], &["--delivery-log", log.to_str().unwrap()]);
    puts(addr, "before", 3);
    let before = lines_of(&log, 3);
    // logrotate's way without copytruncate: rename, then SIGHUP; the member writes a new file.
    let rotated = dir.join("deliveries.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    harness::procs::signal_child(&mut child, Signal::SIGHUP).unwrap();
    // The reopen is asynchronous: a put may still land in the renamed file before it.
    wait_until("the new delivery log", Duration::from_millis(20), 1000, DEADLINE, || {
        puts(addr, "probe", 1);
        log.exists()
    });
    puts(addr, "after", 3);
    assert!(matches!(child.try_wait(), Ok(None)), "SIGHUP stopped the member");
    let after = lines_of(&log, 3);
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.lines().count() >= before.len() && old.starts_with(&before.join("\n")), "{old}");
    // Every delivery is in exactly one of the two files, the seqs of the new one after the old.
    let seq = |line: &str| line.split(' ').nth(1).and_then(|s| s.parse::<u64>().ok()).unwrap();
    let old_last = old.lines().map(seq).max().unwrap();
    assert!(after.iter().all(|line| seq(line) > old_last), "{after:?} after {old_last}");
    harness::procs::signal_child(&mut child, Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
    std::fs::remove_dir_all(&dir).unwrap();
}
