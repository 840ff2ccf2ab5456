//! Growing, shrinking and re-addressing a running cluster of real `harness node` processes
//! (docs/PROTOCOL.md §5.9), while clients write:
//! - three seeds grow to seven, one `harness member add` and one `harness node --join` at a
//!   time; a seed is killed with kill -9 while the sixth member's admission is under way;
//! - the dead member and three live ones are removed (a live one commits its own removal, leaves
//!   cleanly and stops), back to three;
//! - a member added at run time is moved to a new port (`harness member update`) and restarted
//!   there from its data directory alone (no `--join`, no peer list); it rejoins and ends at the
//!   others' digest;
//! - every acknowledged write is committed at the end and the three members hold one digest;
//! - all three are killed and restarted from their files: they come back as that universe.
//!
//! A member whose id is not in the universe, one with the wrong key, and one restarted from files
//! that name no universe with it cannot join and are told why; with the cluster's key a new member
//! adds itself (`--self-add`), and without one it may not.
//!
//! `--slurm` tasks of an allocation that grows join the running ring; one never added is refused.
//!
//! Token timeout 300 ms; bounds are multiples of it with slack for two shared cores.

use crate::common;
use crate::mesh;

use std::net::SocketAddr;
use std::time::Duration;

use common::{free_ports, init_logging, run_harness, wait_until, Nodes, HARNESS, STOP_GRACE};
use harness::procs::ProcessGroup;
use harness::RingMode;
use mesh::{check_converged_at, status_at, wait_settled_at, Submitters};
use std::process::{Command, Stdio};

const TOKEN_TIMEOUT: Duration = Duration::from_millis(300);
/// Genesis, an admission or a removal, with slack.
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);
/// Everything back together at the end.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(30);
/// One `harness member` command.
const COMMAND_DEADLINE: Duration = Duration::from_secs(20);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn cluster_list(addrs: &[SocketAddr]) -> String {
    addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")
}

/// Runs `harness member ...` against `addrs` and returns its stdout; it must succeed.
fn member(addrs: &[SocketAddr], words: &[&str]) -> String {
    let cluster = cluster_list(addrs);
    let mut args = vec!["member"];
    args.extend_from_slice(words);
    args.extend(["--cluster", &cluster, "--timeout", "15000"]);
    let out = run_harness(&args, COMMAND_DEADLINE);
    assert!(
        out.status.success(),
        "harness member {words:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The highest committed prefix among `addrs` that answer.
fn max_committed(addrs: &[SocketAddr]) -> u64 {
    addrs.iter().filter_map(|&a| status_at(a)).map(|s| s.committed_upto).max().unwrap_or(0)
}

/// Waits until the members at `addrs` form one committing primary view of exactly them.
fn settle(addrs: &[SocketAddr], what: &str) {
    let (view, took) = wait_settled_at(addrs, max_committed(addrs), SETTLE_DEADLINE);
    eprintln!("members: {what}: view {view} of {} committing after {took:?}", addrs.len());
}

#[test]
fn a_cluster_grows_to_seven_loses_a_member_shrinks_to_three_and_moves_one_keeping_every_write() {
    init_logging();
    let mut nodes = Nodes::new("members", 7, RingMode::Bidirectional);
    nodes.token_timeout = Some(TOKEN_TIMEOUT);
    nodes.seeds = Some(3);
    nodes.durability = Some("checkpoint");
    nodes.flags = vec!["--checkpoint-every".into(), "200,1s".into()];
    let addr = |nodes: &Nodes, id: u16| nodes.addr(id);
    for id in 1..=3 {
        nodes.start(id);
    }
    let seeds: Vec<SocketAddr> = (1..=3).map(|id| addr(&nodes, id)).collect();
    // Clients write through the seeds from now to the end (n3's stream ends with its kill).
    let submitters = Submitters::start(&[(1, seeds[0]), (2, seeds[1]), (3, seeds[2])]);
    settle(&seeds, "genesis");

    let mut live: Vec<u16> = vec![1, 2, 3];
    for id in 4..=7u16 {
        let contacts: Vec<SocketAddr> = live.iter().map(|&m| addr(&nodes, m)).collect();
        let said = member(&contacts, &["add", &id.to_string(), &addr(&nodes, id).to_string()]);
        assert!(said.contains(&format!("added member {id}")), "member add said: {said}");
        if id == 4 {
            // Added, not yet started: `harness members` shows the change in progress (§5.9).
            let cluster = cluster_list(&contacts);
            let pending = format!("{{\"id\":{id},\"change\":\"joining\"}}");
            wait_until("members to show n4 joining", Duration::from_millis(50), 100, SETTLE_DEADLINE, || {
                let out = run_harness(&["members", "--json", "--cluster", &cluster], COMMAND_DEADLINE);
                out.status.success() && text(&out.stdout).contains(&pending)
            });
        }
        nodes.joining.insert(id, contacts.clone());
        nodes.start(id);
        if id == 6 {
            // kill -9 during a change: n6 is in the universe and asking to be let in.
            eprintln!("members: kill -9 n3 while n6 joins");
            nodes.kill(3);
            live.retain(|&m| m != 3);
        }
        live.push(id);
        let addrs: Vec<SocketAddr> = live.iter().map(|&m| addr(&nodes, m)).collect();
        settle(&addrs, &format!("n{id} admitted"));
    }
    assert_eq!(live, vec![1, 2, 4, 5, 6, 7]);

    // Shrink: the dead member, then three live ones, each leaving by itself once its removal
    // commits (docs/PROTOCOL.md §5.9).
    let contacts =
        |live: &[u16], nodes: &Nodes| -> Vec<SocketAddr> { live.iter().map(|&m| nodes.addr(m)).collect() };
    member(&contacts(&live, &nodes), &["remove", "3"]);
    for id in [7u16, 6, 5] {
        let said = member(&contacts(&live, &nodes), &["remove", &id.to_string()]);
        assert!(said.contains(&format!("removed member {id}")), "member remove said: {said}");
        live.retain(|&m| m != id);
        settle(&contacts(&live, &nodes), &format!("n{id} removed"));
        wait_until(
            &format!("removed n{id} to stop by itself"),
            Duration::from_millis(100),
            400,
            SETTLE_DEADLINE,
            || !nodes.running(id),
        );
    }
    assert_eq!(live, vec![1, 2, 4]);

    // Move n4 to a new port: the universe records it, and n4 (added at run time) restarts
    // there from its data directory alone, with neither --join nor a peer list: its durable
    // universe says whom to contact, and it rejoins through the others.
    let new_addr = free_ports(1)[0];
    member(&contacts(&live, &nodes), &["update", "4", &new_addr.to_string()]);
    nodes.kill(4);
    nodes.addrs[3] = new_addr;
    nodes.joining.remove(&4);
    nodes.from_files.insert(4);
    nodes.start(4);
    settle(&contacts(&live, &nodes), "n4 back at its new port from its own files");

    let acks = submitters.stop();
    let final_addrs = contacts(&live, &nodes);
    let statuses = check_converged_at(&final_addrs, &acks, CONVERGE_DEADLINE);
    for s in &statuses {
        assert_eq!(s.ring.len(), 3, "{}: the view should hold the three members left", s.member.id);
    }
    assert!(acks.iter().any(|a| a.node == 3), "no write was acknowledged through n3 before its kill");
    eprintln!(
        "members: {} acknowledged writes held by n1, n2 and n4 at digest {:#x}",
        acks.len(),
        statuses[0].state_digest
    );
    // `harness members` lists exactly the universe left.
    let cluster = cluster_list(&final_addrs);
    let out = run_harness(&["members", "--cluster", &cluster], COMMAND_DEADLINE);
    assert!(out.status.success(), "members failed: {}", text(&out.stderr));
    let printed = text(&out.stdout);
    let mut listed: Vec<&str> = printed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|word| word.parse::<u16>().is_ok())
        .collect();
    // The answering member's row comes first.
    listed.sort_unstable();
    assert_eq!(listed, ["1", "2", "4"], "members printed:\n{}", text(&out.stdout));
    assert!(text(&out.stdout).contains(&new_addr.to_string()), "members printed:\n{}", text(&out.stdout));
    assert!(printed.contains("no change in progress"), "members printed:\n{printed}");

    // A full-cluster restart after the changes starts from the newest universe (§5.9): n1 and n2
    // still have the seed list of n1..n3 on their command lines and n4 none, yet all three come
    // back as the universe of n1, n2 and n4 at its new port, with every write. Killed once each
    // has checkpointed everything it committed, so `checkpoint` durability keeps it all.
    wait_until(
        "a checkpoint of everything committed",
        Duration::from_millis(100),
        300,
        SETTLE_DEADLINE,
        || {
            final_addrs
                .iter()
                .all(|&a| status_at(a).is_some_and(|s| s.last_checkpoint == statuses[0].committed_upto))
        },
    );
    for id in [1, 2, 4] {
        nodes.kill(id);
    }
    eprintln!("members: kill -9 n1, n2 and n4; restarting all three from their files");
    for id in [1, 2, 4] {
        nodes.start(id);
    }
    let restarted = check_converged_at(&final_addrs, &acks, CONVERGE_DEADLINE);
    for s in &restarted {
        assert_eq!(s.ring.len(), 3, "{}: the restarted view should hold n1, n2 and n4", s.member.id);
        assert_eq!(s.state_digest, statuses[0].state_digest, "{}: the state before the restart", s.member.id);
    }
    let out = run_harness(&["members", "--cluster", &cluster], COMMAND_DEADLINE);
    assert!(text(&out.stdout).contains(&new_addr.to_string()), "members printed:\n{}", text(&out.stdout));
    eprintln!(
        "members: after the full restart, view {} at digest {:#x}",
        restarted[0].view, restarted[0].state_digest
    );
}

#[test]
fn a_member_not_in_the_universe_or_without_the_key_cannot_join_and_is_told_why() {
    init_logging();
    let mut nodes = Nodes::new("members-refused", 1, RingMode::Bidirectional);
    nodes.token_timeout = Some(TOKEN_TIMEOUT);
    let key = nodes.dir().join("cluster.key");
    let made = run_harness(&["keygen", "--key-file", &key.display().to_string()], COMMAND_DEADLINE);
    assert!(made.status.success(), "keygen: {}", text(&made.stderr));
    nodes.key_file = Some(key.clone());
    nodes.start(1);
    let seed = nodes.addr(1);
    let join = seed.to_string();
    let keyed = key.display().to_string();
    wait_until(
        "the keyed ring of one to be primary",
        Duration::from_millis(100),
        300,
        SETTLE_DEADLINE,
        || {
            let out = run_harness(&["status", "--cluster", &join, "--key-file", &keyed], COMMAND_DEADLINE);
            out.status.success() && text(&out.stdout).contains("primary")
        },
    );
    let listen = free_ports(1)[0].to_string();

    // Restarting from files that hold no universe naming the member is refused, saying how to
    // start it instead (docs/PROTOCOL.md §5.9).
    let empty = nodes.dir().join("empty-data");
    let blank = run_harness(
        &[
            "node",
            "--id",
            "9",
            "--listen",
            &listen,
            "--data-dir",
            &empty.display().to_string(),
            "--durability",
            "checkpoint",
            "--key-file",
            &keyed,
        ],
        COMMAND_DEADLINE,
    );
    assert_eq!(blank.status.code(), Some(2), "empty files must be refused: {}", text(&blank.stderr));
    assert!(
        text(&blank.stderr).contains("holds no universe naming member 9")
            && text(&blank.stderr).contains("--join"),
        "the refusal should say why and what to do: {}",
        text(&blank.stderr)
    );

    let unknown = run_harness(
        &["node", "--id", "9", "--listen", &listen, "--join", &join, "--key-file", &keyed],
        COMMAND_DEADLINE,
    );
    assert_eq!(unknown.status.code(), Some(2), "an unknown id must be refused: {}", text(&unknown.stderr));
    assert!(
        text(&unknown.stderr).contains("member 9 is not in the cluster's universe")
            && text(&unknown.stderr).contains("harness member add 9"),
        "the refusal should say why and what to do: {}",
        text(&unknown.stderr)
    );

    let other_key = nodes.dir().join("other.key");
    let made = run_harness(&["keygen", "--key-file", &other_key.display().to_string()], COMMAND_DEADLINE);
    assert!(made.status.success(), "keygen: {}", text(&made.stderr));
    let wrong = run_harness(
        &[
            "node",
            "--id",
            "1",
            "--listen",
            &listen,
            "--join",
            &join,
            "--key-file",
            &other_key.display().to_string(),
            "--token-timeout",
            "300",
        ],
        COMMAND_DEADLINE,
    );
    assert_eq!(wrong.status.code(), Some(2), "a wrong key must be refused: {}", text(&wrong.stderr));
    assert!(
        text(&wrong.stderr).contains("cannot read the cluster's universe"),
        "the refusal should say the cluster could not be read: {}",
        text(&wrong.stderr)
    );
    eprintln!("members: refused with: {}", text(&wrong.stderr).trim());
}

#[test]
fn a_new_member_adds_itself_with_the_clusters_key_and_an_open_one_may_not() {
    init_logging();
    let mut nodes = Nodes::new("members-self-add", 1, RingMode::Bidirectional);
    nodes.token_timeout = Some(TOKEN_TIMEOUT);
    let key = nodes.dir().join("cluster.key");
    let made = run_harness(&["keygen", "--key-file", &key.display().to_string()], COMMAND_DEADLINE);
    assert!(made.status.success(), "keygen: {}", text(&made.stderr));
    nodes.key_file = Some(key.clone());
    nodes.start(1);
    let seed = nodes.addr(1).to_string();
    let keyed = key.display().to_string();
    let listen = free_ports(1)[0].to_string();

    // Without the key nothing entitles it: refused before anything is sent (§5.9).
    let open = run_harness(&["node", "--listen", &listen, "--join", &seed, "--self-add"], COMMAND_DEADLINE);
    assert_eq!(open.status.code(), Some(2), "an open --self-add must be refused: {}", text(&open.stderr));
    assert!(
        text(&open.stderr).contains("--self-add needs --key-file"),
        "the refusal should say why: {}",
        text(&open.stderr)
    );

    // With the key and no --id: it adds itself as the next free id (2), joins and takes part.
    let log = nodes.dir().join("self-added.log");
    let mut group = ProcessGroup::new(STOP_GRACE);
    let mut command = Command::new(HARNESS);
    command
        .args(["node", "--listen", &listen, "--join", &seed, "--key-file", &keyed, "--self-add"])
        .args(["--token-timeout", &TOKEN_TIMEOUT.as_millis().to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    group.spawn(2u16, command).unwrap();
    let both = format!("{seed},{listen}");
    let mut shown = String::new();
    wait_until("the self-added member in the view", Duration::from_millis(100), 300, SETTLE_DEADLINE, || {
        let out =
            run_harness(&["members", "--json", "--cluster", &both, "--key-file", &keyed], COMMAND_DEADLINE);
        shown = text(&out.stdout);
        out.status.success()
            && shown.contains("\"universe_epoch\":1")
            && shown.contains("\"changes_in_progress\":[]")
    });
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains(&format!("n2 added itself at {listen}")), "the joiner should log its id: {said}");
    let put = run_harness(
        &["put", "self-added", "yes", "--cluster", &listen, "--key-file", &keyed],
        COMMAND_DEADLINE,
    );
    assert!(put.status.success(), "a put through the new member: {}", text(&put.stderr));
    let got = run_harness(&["get", "self-added", "--cluster", &seed, "--key-file", &keyed], COMMAND_DEADLINE);
    assert!(text(&got.stdout).contains("yes"), "the seed should read the write: {}", text(&got.stdout));
    // An id another host holds is not taken over.
    let elsewhere = free_ports(1)[0].to_string();
    let taken = run_harness(
        &["node", "--id", "2", "--listen", &elsewhere, "--join", &seed, "--key-file", &keyed, "--self-add"],
        COMMAND_DEADLINE,
    );
    assert_eq!(taken.status.code(), Some(2), "a taken id must be refused: {}", text(&taken.stderr));
    assert!(
        text(&taken.stderr).contains(&format!("member 2 is already in the universe, at {listen}")),
        "the refusal should say who holds the id: {}",
        text(&taken.stderr)
    );
    eprintln!("members: self-added: {}", shown.trim());
    group.kill(2).unwrap();
}

/// Starts `harness node --slurm` as task `procid` of an allocation whose node list is
/// `nodelist`, with the Slurm variables faked; returns the process's exit status if it ends
/// within a second (a refused start), else `None` (it runs, under `group`).
fn slurm_node(
    group: &mut ProcessGroup<u16>,
    nodelist: &str,
    procid: u16,
    port: u16,
    log: &std::path::Path,
    extra: &[&str],
) -> Option<std::process::ExitStatus> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut command = Command::new(HARNESS);
    command
        .args(["node", "--slurm", "--port", &port.to_string(), "--token-timeout"])
        .arg(TOKEN_TIMEOUT.as_millis().to_string())
        .args(extra)
        .env("SLURM_JOB_NODELIST", nodelist)
        .env("SLURM_PROCID", procid.to_string())
        .env("RUST_LOG", std::env::var("HARNESS_NODE_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    group.spawn(procid + 1, command).unwrap();
    // A refused start exits at once: look for a second.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        if group.pid(procid + 1).is_none() {
            return group.kill(procid + 1).ok();
        }
    }
    None
}

#[test]
fn slurm_members_of_a_grown_allocation_join_the_running_ring() {
    // docs/PROTOCOL.md §5.9: three tasks seed the ring from the allocation's node list; the
    // allocation grows to five hosts. Task 4, added with `harness member add`, finds the
    // running cluster on the other hosts and joins it through them; task 5, never added, is
    // refused and told how to add it. Hosts are loopback addresses 127.0.0.1-5 on one port.
    init_logging();
    let port = free_ports(1)[0].port();
    let dir = std::env::temp_dir().join(format!("harness-test-members-slurm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut group: ProcessGroup<u16> = ProcessGroup::new(STOP_GRACE);
    let addr = |n: u16| -> SocketAddr { format!("127.0.0.{n}:{port}").parse().unwrap() };
    for procid in 0..3 {
        let log = dir.join(format!("node-{}.log", procid + 1));
        assert_eq!(
            slurm_node(&mut group, "127.0.0.[1-3]", procid, port, &log, &[]),
            None,
            "task {procid} ended"
        );
    }
    let seeds: Vec<SocketAddr> = (1..=3).map(addr).collect();
    // A view settles by committing: one write after each step.
    let put = |addrs: &[SocketAddr], key: &str| {
        let cluster = cluster_list(addrs);
        wait_until(&format!("put {key}"), Duration::from_millis(100), 100, SETTLE_DEADLINE, || {
            run_harness(&["put", key, "v", "--cluster", &cluster], COMMAND_DEADLINE).status.success()
        });
    };
    let committed = max_committed(&seeds);
    put(&seeds, "slurm/genesis");
    wait_settled_at(&seeds, committed, SETTLE_DEADLINE);

    member(&seeds, &["add", "4", &addr(4).to_string()]);
    let log = dir.join("node-4.log");
    assert_eq!(slurm_node(&mut group, "127.0.0.[1-5]", 3, port, &log, &[]), None, "task 3 ended");
    let four: Vec<SocketAddr> = (1..=4).map(addr).collect();
    let committed = max_committed(&four);
    wait_until("task 4 to be in the view", Duration::from_millis(100), 200, SETTLE_DEADLINE, || {
        status_at(addr(4)).is_some_and(|s| s.primary && s.ring.len() == 4)
    });
    put(&four, "slurm/grown");
    wait_settled_at(&four, committed, SETTLE_DEADLINE);

    let log = dir.join("node-5.log");
    let refused = slurm_node(&mut group, "127.0.0.[1-5]", 4, port, &log, &[]);
    assert_eq!(refused.and_then(|s| s.code()), Some(2), "task 4 (member 5) must be refused");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("harness member add 5"), "the refusal should say how to add it: {said}");
    drop(group);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_slurm_task_of_a_grown_keyed_allocation_adds_itself() {
    // docs/PROTOCOL.md §5.9: with the cluster's key, a task of a grown allocation that nobody
    // added adds itself (`--self-add`) at its node-list entry, as its rank's id, and joins.
    init_logging();
    let port = free_ports(1)[0].port();
    let dir = std::env::temp_dir().join(format!("harness-test-members-slurm-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("cluster.key");
    let made = run_harness(&["keygen", "--key-file", &key.display().to_string()], COMMAND_DEADLINE);
    assert!(made.status.success(), "keygen: {}", text(&made.stderr));
    let keyed = key.display().to_string();
    let extra = ["--key-file", keyed.as_str(), "--self-add"];
    let mut group: ProcessGroup<u16> = ProcessGroup::new(STOP_GRACE);
    let addr = |n: u16| -> SocketAddr { format!("127.0.0.{n}:{port}").parse().unwrap() };
    for procid in 0..2 {
        let log = dir.join(format!("node-{}.log", procid + 1));
        let ended = slurm_node(&mut group, "127.0.0.[1-2]", procid, port, &log, &extra);
        assert_eq!(ended, None, "task {procid} ended");
    }
    let log = dir.join("node-3.log");
    assert_eq!(slurm_node(&mut group, "127.0.0.[1-3]", 2, port, &log, &extra), None, "task 2 ended");
    let cluster = cluster_list(&[addr(1), addr(2), addr(3)]);
    let mut shown = String::new();
    wait_until("task 3 added and in the view", Duration::from_millis(100), 300, SETTLE_DEADLINE, || {
        let out = run_harness(
            &["members", "--json", "--cluster", &cluster, "--key-file", &keyed],
            COMMAND_DEADLINE,
        );
        shown = text(&out.stdout);
        out.status.success()
            && shown.contains("\"universe_epoch\":1")
            && shown.contains("\"changes_in_progress\":[]")
            && shown.contains(&format!("\"id\":3,\"addr\":\"{}\"", addr(3)))
    });
    eprintln!("members: slurm task 3 added itself: {}", shown.trim());
    drop(group);
    let _ = std::fs::remove_dir_all(&dir);
}
