//! Distributed agreement between real `harness node` processes (docs/PROTOCOL.md §7.1):
//! three members, one of which cannot load a plug-in. Loading that plug-in aborts at every
//! member and leaves the plug-in registry unchanged; loading one every member can load commits
//! and is in every member's registry. The members are stopped by pid (the `Nodes` guard).

use crate::common;

use std::process::Output;
use std::time::Duration;

use common::{init_logging, wait_until, Nodes};
use harness::RingMode;

const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `harness args` against `cluster`; bounded by `DEADLINE`.
fn client(cluster: &str, args: &[&str]) -> Output {
    let args: Vec<&str> = args.iter().copied().chain(["--cluster", cluster]).collect();
    common::run_harness(&args, DEADLINE)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

#[test]
fn a_plugin_one_member_cannot_load_aborts_everywhere_and_one_all_can_load_is_loaded_everywhere() {
    init_logging();
    let mut nodes = Nodes::new("agreement", 3, RingMode::Bidirectional);
    nodes.token_timeout = Some(Duration::from_millis(400));
    for id in [1, 2] {
        nodes.member_flags.insert(id, vec!["--plugins".into(), "odls,ras".into()]);
    }
    // Member 3 finds its plug-ins in a directory: it has odls, not ras.
    let dir = nodes.data_dir(3).with_file_name("plugins-3");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("odls"), b"").unwrap();
    nodes.member_flags.insert(3, vec!["--plugin-dir".into(), dir.display().to_string()]);
    for id in 1..=3 {
        nodes.start(id);
    }
    let addrs = nodes.addrs.clone();
    wait_until("a primary view of three", Duration::from_millis(50), 2000, DEADLINE, || {
        addrs.iter().all(|addr| common::status(*addr).is_some_and(|s| s.primary && s.ring.len() == 3))
    });
    let all: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let all = all.join(",");

    // Through member 3, which cannot load it: every member votes, member 3 votes no.
    let refused = client(&addrs[2].to_string(), &["plugin", "load", "ras", "--json"]);
    let stdout = text(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{stdout} {}", text(&refused.stderr));
    assert!(stdout.contains("\"committed\":false"), "{stdout}");
    assert!(stdout.contains("aborted: member 3 cannot load it"), "{stdout}");

    let loaded = client(&all, &["plugin", "load", "odls"]);
    let stdout = text(&loaded.stdout);
    assert_eq!(loaded.status.code(), Some(0), "{stdout} {}", text(&loaded.stderr));
    assert!(stdout.starts_with("loaded odls on every member (revision "), "{stdout}");

    // Every member, warm member 3 included, holds the same decisions and registry: read each
    // member's own state (stale reads), which reaches the decision once it has committed it.
    for addr in &addrs {
        let one = addr.to_string();
        let mut decisions = String::new();
        wait_until(
            &format!("{addr} to hold both decisions"),
            Duration::from_millis(20),
            1000,
            DEADLINE,
            || {
                let out = client(&one, &["range", "harness/agreement/", "--stale"]);
                decisions = text(&out.stdout);
                decisions.lines().count() == 2
            },
        );
        // `KEY VALUE` lines; keys order by text, not by seq, so look for each decision.
        let values: Vec<&str> = decisions.lines().filter_map(|l| l.split_once(' ').map(|(_, v)| v)).collect();
        assert!(values.contains(&"aborted: member 3 cannot load it"), "{addr}: {decisions}");
        assert!(values.contains(&"committed"), "{addr}: {decisions}");
        let placed = client(&one, &["get", "harness/plugins/odls", "--stale"]);
        assert_eq!(text(&placed.stdout), "1,2,3", "{addr}: {}", text(&placed.stderr));
        let absent = client(&one, &["get", "harness/plugins/ras", "--stale"]);
        assert_eq!(absent.status.code(), Some(3), "{addr}: ras is in no registry");
    }
    nodes.stop_all();
}
